"""avrnn-train: train (or resume) a model of the family from a config file.

  avrnn-train --config=configs/vrnn_gauss.py[:variant] --workdir=DIR [--config.FIELD=VALUE ...]
  python -m avrnn_tf.train ...   (the same program)

Examples:
  avrnn-train --config=configs/default.py --workdir=runs/default        # the main job (minutes)
  avrnn-train --config=configs/vrnn_gauss.py:tiny --workdir=/tmp/tiny --config.train.steps=100
  avrnn-train --config=configs/avrnn.py:fsdd --workdir=runs/avrnn_fsdd --config.model.h_dim=512

Running the same command again resumes from the workdir's last checkpoint; a larger
--config.train.steps continues the run. Exit status: 0 done; 2 bad config, data or workdir (before
training, naming the field, file or directory); 3 stopped after too many non-finite steps; 4 a
checkpoint could not be written (the previous one is intact); 130/143 stopped by SIGINT/SIGTERM
after saving a checkpoint.
"""

import signal
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

from avrnn_tf import cli
from avrnn_tf import config as config_lib
from avrnn_tf import multi_worker
from avrnn_tf.tf_setup import import_tensorflow


def _stopped_during_startup(signum, frame):
    """SIGTERM before training installs its own handler (loop.py): the same one line, exit 143."""
    print(f"avrnn-train: stopped by {signal.Signals(signum).name} during start-up; nothing was "
          "saved yet; rerun the same command to start", file=sys.stderr, flush=True)
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _stopped_during_startup)

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/vrnn_gauss.py or configs/vrnn_gauss.py:tiny,fsdd.",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and samples.")
flags.DEFINE_enum("progress", "auto", ["auto", "bar", "epoch", "full", "none"],
                  "Terminal progress: one line that fits the terminal (bar), one line per round "
                  "(epoch), every metric every train.log_every steps (full), or nothing.")
flags.DEFINE_bool("force_resume", False,
                  "Continue the run in --workdir even though its saved config differs from this one "
                  "in fields that define the experiment (model, data, optimizer, seed).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy: one device, or data-parallel over every local GPU (every "
                  "logical CPU device without GPUs; AVRNN_VIRTUAL_CPUS=N makes N of them), or "
                  "data-parallel over the workers the TF_CONFIG environment variable lists "
                  "(MultiWorkerMirroredStrategy; worker 0 writes the workdir).")
flags.mark_flags_as_required(["config", "workdir"])

_VERBOSE = {"auto": 1 if sys.stdout.isatty() else 2, "bar": 1, "epoch": 2, "full": "full", "none": 0}


def fail(message):
    cli.fail("avrnn-train", message)


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; give settings as --config.FIELD=VALUE")
    try:  # Before TensorFlow starts: a bad field is reported in about a second.
        config_lib.validate(FLAGS.config)
    except config_lib.ConfigError as e:
        fail(str(e))
    # A multi-worker strategy has to exist before TensorFlow initialises its devices.
    import_tensorflow(before_init=multi_worker.create_strategy
                      if FLAGS.strategy == "multi_worker" else None)
    logging.set_verbosity(logging.WARNING)  # absl INFO lines from TF's checkpoint saver.
    from avrnn_tf import loop
    from avrnn_tf.data.audio import DataError
    from avrnn_tf.workdir import WorkdirError

    if FLAGS.strategy == "multi_worker" and multi_worker.startup_error():
        fail(str(multi_worker.startup_error()))
    try:
        loop.train_and_evaluate(FLAGS.config, FLAGS.workdir, verbose=_VERBOSE[FLAGS.progress],
                                force_resume=FLAGS.force_resume, strategy=FLAGS.strategy)
    except (config_lib.ConfigError, DataError, WorkdirError, multi_worker.TFConfigError) as e:
        fail(str(e))
    except loop.TrainingStopped as e:
        print(f"avrnn-train: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("avrnn-train: interrupted; the last complete checkpoint in the workdir is intact",
              file=sys.stderr, flush=True)
        sys.exit(130)


def parse_flags(argv):
    """absl flag parsing with every failure turned into one clear line (no traceback)."""
    specs = [a[len("--config="):] if a.startswith("--config=") else b
             for a, b in zip(argv[1:], argv[2:] + [""]) if a.startswith("--config=") or a == "--config"]
    try:
        known = config_lib.field_names(config_lib.load_file(specs[-1])) if specs else set()
    except config_lib.ConfigError as e:  # Missing file, syntax error, exception, not a ConfigDict.
        fail(str(e))
    try:
        return cli.flags_parser("avrnn-train", [f.name for f in cli.own_flags(__name__)])(argv)
    except (AttributeError, KeyError):
        # ml_collections raises these for an override of a field the config does not have.
        culprits = [a.split("=")[0][len("--config."):] for a in argv[1:] if a.startswith("--config.")]
        culprits = [c for c in culprits if c not in known]
        fail("; ".join(f"unknown config field --config.{c}{config_lib.suggest(c, known)}"
                       for c in culprits) or "unknown config field in the --config overrides")


def run():
    """Console-script entry point."""
    cli.run(main, "avrnn-train", parse=parse_flags, extra_help=config_lib.help_text)


if __name__ == "__main__":
    run()
