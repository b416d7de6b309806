"""Run by tests/test_hardening.py (item 6) in a fresh process: calls every exported function of the
SavedModel argv[1] at 90% of its memory bound and at 110%, plus the requests that took GB before,
and prints one JSON line: the peak-RSS growth of the calls at the bound and every refusal message."""

import importlib.util
import json
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")
model = tf.saved_model.load(sys.argv[1])
meta = {k: v.numpy() for k, v in model.metadata().items()}
d, h2 = int(meta["frame_size"]), int(meta["state_size"])
bound = int(meta["max_memory_mb"]) * 2 ** 20
per_frame = json.loads(meta["memory_per_frame_json"].decode())
zeros = lambda *shape: tf.zeros(shape, tf.float32)


def call(fn, fraction, rows=8):
    """One call of `fn` with rows x frames sized to `fraction` of the bound (rows=8 sequences)."""
    frames = max(8, int(fraction * bound / per_frame[fn]) // rows)
    if fn == "sample":
        return model.sample(rows, frames, 1, 1.0)
    if fn == "sample_chunk":
        return model.sample_chunk(zeros(rows, h2), frames, 1, 0, 1.0)
    if fn == "encode":
        return model.encode(zeros(rows, frames, d), 1)
    if fn == "continue_from":
        return model.continue_from(zeros(rows, 4, d), frames - 4, 1, 1.0)
    if fn == "score":  # K = 7: (K + 1) * B = 8 rows.
        return model.score(zeros(1, frames, d), zeros(1, frames) + 1.0, 1, rows - 1)
    return model.reconstruct(zeros(rows, frames, d), zeros(rows, frames) + 1.0, 1)


def refusal(thunk):
    try:
        thunk()
    except tf.errors.InvalidArgumentError as e:
        found = re.search(r"assertion failed: \[(.*?)\](?: \[|$)", str(e))
        return found.group(1) if found else str(e)
    return None


def status_kb(field):
    """A field of /proc/self/status in kB (VmRSS: resident now; VmHWM: its high-water mark)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


for fn in per_frame:  # Trace and warm up with small calls: the baseline includes the runtime.
    call(fn, 0.001)
# The high-water mark is reset to the current RSS (Linux: clear_refs 5), so the peak below is the
# calls' own; loading the SavedModel may have peaked higher than they do.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status_kb("VmRSS")
for fn in per_frame:
    call(fn, 0.9)
grown_mb = (status_kb("VmHWM") - base) / 1024
refused = {fn: refusal(lambda: call(fn, 1.1)) for fn in per_frame}
attacks = {
    "score K=1000 T=1342": lambda: model.score(zeros(1, 1342, d), zeros(1, 1342) + 1, 1, 1000),
    "sample(4096, 327)": lambda: model.sample(4096, 327, 1, 1.0),
    "continue_from 131072 frames": lambda: model.continue_from(zeros(4, 4, d), 1 << 17, 1, 1.0),
    "reconstruct 128 x 1000": lambda: model.reconstruct(zeros(128, 1000, d), zeros(128, 1000), 1),
}
attacks = {name: refusal(thunk) for name, thunk in attacks.items()}
spec = importlib.util.spec_from_file_location("generate_audio", sys.argv[2])
generate_audio = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate_audio)
try:
    generate_audio.generate(model, meta, 2 ** 32 + 1, 2, 0, 1.0, 2)
    wrapped = None
except generate_audio.UsageError as e:
    wrapped = str(e)
print(json.dumps({"grown_mb": grown_mb, "bound_mb": bound / 2 ** 20, "refused": refused,
                  "attacks": attacks, "int32": wrapped}))
