"""Is the input pipeline the bottleneck? Examples/s of the streamed pipeline alone vs the train step.

  python -m avrnn_tf.data.benchmark --prepared=DIR --config=configs/vrnn_gauss.py [--batches=200]
      [--train_steps=30] [--config.FIELD=VALUE ...]

Prints three rates in training chunks (examples) per second:
  pipeline   iterating `prepared.train_dataset` alone (decode records, chunk, shuffle, batch);
  step       `fit` on one batch cached in memory (the model's train step with a free input);
  fit        `fit` on the real streamed dataset (both together).
The pipeline keeps up when `pipeline` is well above `step` and `fit` is close to `step`.
"""

import time

from absl import app
from absl import flags
from ml_collections import config_flags

from avrnn_tf.tf_setup import import_tensorflow

import_tensorflow()

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/vrnn_gauss.py", "Model config (its data fields "
                                "give batch size, chunk length and shuffle buffer).")
flags.DEFINE_string("prepared", None, "A directory written by avrnn-prepare.")
flags.DEFINE_integer("batches", 200, "Batches timed for the pipeline alone (after 10 warm-up).")
flags.DEFINE_integer("train_steps", 30, "Train steps timed for `step` and `fit` (after warm-up).")
flags.mark_flags_as_required(["prepared"])


def _rate(fn, count, batch_size):
    start = time.perf_counter()
    fn()
    return count * batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    import tensorflow as tf

    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf import registry
    from avrnn_tf.data import pipeline
    from avrnn_tf.data import prepared

    config = config_lib.validate(FLAGS.config)
    d, path = config.data, FLAGS.prepared
    stats = prepared.load_stats(path)
    b = d.batch_size
    make = lambda: prepared.train_dataset(path, stats, b, d.train_frames, config.train.seed, 0,
                                          d.shuffle_buffer)
    it = iter(make())
    for _ in range(10):
        next(it)

    def drain():
        for _ in range(FLAGS.batches):
            next(it)

    pipeline_rate = _rate(drain, FLAGS.batches, b)

    network = registry.create_network(config_lib.model_spec(config, stats["frame_size"]))
    trainer = loop.build_trainer(config, network)
    batch = next(iter(make()))
    cached = pipeline.for_fit(tf.data.Dataset.from_tensors(batch).repeat())
    n = FLAGS.train_steps
    trainer.fit(cached, epochs=1, steps_per_epoch=3, verbose=0, shuffle=False)  # Trace and warm up.
    step_rate = _rate(lambda: trainer.fit(cached, epochs=1, steps_per_epoch=n, verbose=0, shuffle=False), n, b)
    streamed = make()
    trainer.fit(streamed, epochs=1, steps_per_epoch=3, verbose=0, shuffle=False)
    fit_rate = _rate(lambda: trainer.fit(streamed, epochs=1, steps_per_epoch=n, verbose=0, shuffle=False), n, b)
    frames = d.train_frames
    print(f"prepared {path}: batch {b} x {frames} frames x {stats['frame_size']} samples, "
          f"shuffle buffer {d.shuffle_buffer}, {len(stats['shards']['train'])} train shards")
    print(f"pipeline alone : {pipeline_rate:10.1f} examples/s ({pipeline_rate / b:.1f} batches/s)")
    print(f"train step     : {step_rate:10.1f} examples/s ({step_rate / b:.2f} steps/s, "
          f"model {config.model.kind}/{config.model.emission} h={config.model.h_dim})")
    print(f"fit, streamed  : {fit_rate:10.1f} examples/s")
    print(f"pipeline / step: {pipeline_rate / step_rate:.1f}x")


if __name__ == "__main__":
    app.run(main)
