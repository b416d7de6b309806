"""frames/s of the reference VRNN-Gauss train_step of a checkout, without fit and tf.data.

    python docs/perf/scripts/step_rate_checkout.py CHECKOUT

The compiled `train_step` is called 10 times on one fixed batch, 8 repeats after 3 warm-up
calls; prints the sorted rates. Run two checkouts alternately in fresh processes to compare them
(BUILD_NOTES 4.7, session-to-session comparison).
"""

import os
import sys
import time

checkout = sys.argv[1]
sys.path.insert(0, os.path.abspath(checkout))
from avrnn_tf.tf_setup import import_tensorflow  # noqa: E402

tf = import_tensorflow()
from avrnn_tf import bench  # noqa: E402

trainer = bench.build_trainer(tf, bench.REFERENCE)
x = tf.random.stateless_normal([32, 40, 200], seed=[1, 2])
mask = tf.ones([32, 40])
step = tf.function(trainer.train_step)
for _ in range(3):
    step((x, mask))
rates = []
for _ in range(8):
    start = time.perf_counter()
    for _ in range(10):
        logs = step((x, mask))
    float(logs["loss"])
    rates.append(int(10 * 32 * 40 / (time.perf_counter() - start)))
print(checkout, sorted(rates))
