"""Profiles reference-size VRNN-Gauss training of any checkout of this repository.

    python docs/perf/scripts/profile_checkout.py CHECKOUT FRAMES OUTDIR

CHECKOUT is a directory holding an `avrnn_tf` package (e.g. a `git worktree` of an older commit,
which may predate `avrnn_tf/profiling.py`); the trace is read with this repository's
profiling.py. tf.data autotuning is off so `fit`'s teardown wait is not in the trace
(BUILD_NOTES 4.7). Used for the session-1 vs session-2 profile table.
"""

import importlib.util
import os
import sys

checkout, frames, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, os.path.abspath(checkout))
from avrnn_tf.tf_setup import import_tensorflow  # noqa: E402

tf = import_tensorflow()
from avrnn_tf import bench  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "profiling", os.path.join(here, "..", "..", "..", "avrnn_tf", "profiling.py"))
profiling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(profiling)

size = dict(bench.REFERENCE, frames=frames)
trainer = bench.build_trainer(tf, size)
b, t, d = size["batch"], size["frames"], size["x_dim"]
x = tf.random.stateless_normal([b, t, d], seed=[1, 2])
options = tf.data.Options()
options.autotune.enabled = False
ds = tf.data.Dataset.from_tensors((x, tf.ones([b, t]))).repeat().with_options(options)
trainer.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)
tf.profiler.experimental.start(outdir)
trainer.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)
tf.profiler.experimental.stop()
summary = profiling.summarize_trace(outdir, 5)
print(f"{checkout}, {frames} frames: {b * t / summary['step_ms'] * 1e3:.0f} frames/s while traced")
print(profiling.format_summary(summary))
