"""avrnn-train: train (or resume) a model of the family from a config file.

  avrnn-train --config=configs/vrnn_gauss.py[:variant] --workdir=DIR [--config.FIELD=VALUE ...]
  python -m avrnn_tf.train ...   (the same program)

Running the same command again resumes from the workdir's last checkpoint; a larger
--config.train.steps continues the run. Exit status: 0 done; 2 bad config, data or workdir (before
training, naming the field, file or directory); 3 stopped after too many non-finite steps; 4 a
checkpoint could not be written (the previous one is intact); 130/143 stopped by SIGINT/SIGTERM
after saving a checkpoint.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from avrnn_tf import cli
from avrnn_tf import multi_worker
from avrnn_tf.tf_setup import import_tensorflow

# Before the config file (which imports TensorFlow) is loaded by flag parsing. A multi-worker
# strategy has to exist before TensorFlow initialises its devices, so it is made here.
import_tensorflow(before_init=multi_worker.create_strategy
                  if multi_worker.requested(sys.argv) else None)

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
    logging.set_verbosity(logging.WARNING)  # absl INFO lines from TF's checkpoint saver.
    from avrnn_tf import config as config_lib
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
    for arg in argv[1:]:
        if arg.startswith("--config="):
            path = arg[len("--config="):].split(":")[0]
            if not os.path.isfile(path):
                fail(f"config file {path!r} does not exist (resolved to {os.path.abspath(path)!r})")
    try:
        return FLAGS(argv)
    except flags.Error as e:
        text = str(e).strip()
        if "Traceback (most recent call last)" in text:  # An exception inside the config file.
            last = [line for line in text.splitlines() if line.strip()][-1]
            text = f"{text.split('Traceback')[0].strip()} {last.strip()}"
        fail(" ".join(text.split()))
    except (AttributeError, KeyError):
        # ml_collections raises these for an override of a field the config does not have.
        from avrnn_tf import config as config_lib

        known = config_lib.field_names(config_lib.base_config())
        culprits = [a.split("=")[0] for a in argv[1:]
                    if a.startswith("--config.") and a.split("=")[0][len("--config."):] not in known]
        fail(f"unknown config field(s): {', '.join(culprits) or 'in the --config overrides'}; "
             "the fields that exist are listed in avrnn_tf/config.py (base_config)")


def run():
    """Console-script entry point."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
