"""avrnn-prepare: turn a raw corpus directory into sharded TFRecords of standardized frames.

  avrnn-prepare --source=DIR --output=DIR [--format=auto|timit|fsdd|wav_dir] [--sample_rate=16000]
                [--frame_size=200] [--skip_bad_files] [--decoder=auto|soundfile|tfio]
  python -m avrnn_tf.prepare ...   (the same program)

The output directory (layout in avrnn_tf/data/prepared.py) holds `stats.json` (sample rate, frame
size, mean, std, counts, split sizes, source hash) and the shards; pass it to avrnn-train as
--config.data.path. Every unusable file stops the program before any shard is written, with one
message listing each file and why (exit status 2); --skip_bad_files skips them instead and lists
them in <output>/skipped_files.txt.
"""

import time

from absl import flags

from avrnn_tf import cli
from avrnn_tf import config as config_lib
from avrnn_tf.tf_setup import import_tensorflow

FLAGS = flags.FLAGS
flags.DEFINE_string("source", None, "The raw corpus directory (TIMIT root, FSDD recordings, any folder).")
flags.DEFINE_string("output", None, "Directory to write stats.json and the TFRecord shards to.")
flags.DEFINE_enum("format", "auto", ["auto", "timit", "fsdd", "wav_dir", "pianoroll"],
                  "Layout of --source; auto detects TRAIN/+TEST/ (timit), FSDD names, else wav_dir.")
flags.DEFINE_integer("sample_rate", 0, "Resample every file to this rate (Hz); 0 = the files' own "
                     "rate, which must then be the same for all files.")
flags.DEFINE_integer("frame_size", 200, "Samples per frame (the model's x_dim).")
flags.DEFINE_float("valid_fraction", 0.05, "Share of the training utterances held out for validation.")
flags.DEFINE_integer("split_seed", 1234, "Seed of the validation split (1234: FIVO/SRNN protocol).")
flags.DEFINE_integer("max_files", 0, "If > 0, only the first files in sorted order (quick trials).")
flags.DEFINE_bool("skip_bad_files", False, "Skip unusable files (listed in <output>/skipped_files.txt) "
                  "instead of stopping.")
flags.DEFINE_enum("decoder", "auto", ["auto", "soundfile", "tfio"],
                  "Audio decoding/resampling: tensorflow-io ops (tfio), libsndfile + scipy "
                  "(soundfile), or tfio when its ops run here (auto).")
flags.DEFINE_integer("shard_mb", 32, "Target size of one shard in MB.")
flags.mark_flags_as_required(["source", "output"])


def fail(message):
    cli.fail("avrnn-prepare", message)


def log(message):
    print(f"avrnn-prepare: {message}", flush=True)


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}")
    if FLAGS.format == "pianoroll":
        fail("--format=pianoroll is not prepared into audio frames by this tool; train on the "
             "piano-roll files directly (--config.data.path)")
    for name in ("sample_rate", "frame_size", "valid_fraction", "split_seed", "max_files"):
        # The same ranges as the config fields these flags become (before TensorFlow starts).
        problem = config_lib.BY_NAME[f"data.{name}"].problem(getattr(FLAGS, name), f"--{name}")
        if problem:
            fail(problem)
    import_tensorflow()
    from avrnn_tf.data import corpora
    from avrnn_tf.data import prepared
    from avrnn_tf.data.audio import DataError

    start = time.time()
    try:
        decoder = corpora.resolve_decoder(FLAGS.decoder)
        log(f"decoding with {decoder}")
        stats = prepared.prepare(
            FLAGS.source, FLAGS.output, fmt=FLAGS.format, sample_rate=FLAGS.sample_rate,
            frame_size=FLAGS.frame_size, valid_fraction=FLAGS.valid_fraction,
            split_seed=FLAGS.split_seed, max_files=FLAGS.max_files,
            skip_bad_files=FLAGS.skip_bad_files, decoder=decoder, shard_mb=FLAGS.shard_mb, log=log)
    except DataError as e:
        fail(str(e))
    log(f"{stats['source_format']} corpus at {stats['sample_rate']} Hz: splits {stats['split_sizes']}, "
        f"mean {stats['mean']:.6g}, std {stats['std']:.6g}, {stats['skipped_files']} skipped; "
        f"wrote {FLAGS.output} in {time.time() - start:.1f} s")


def run():
    """Console-script entry point."""
    cli.run(main, "avrnn-prepare")


if __name__ == "__main__":
    run()
