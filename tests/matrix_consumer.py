"""The consumer of every exported test model (tests/conftest.py `consumed`): TensorFlow + numpy only.

  python -S -E tests/matrix_consumer.py SITE_DIRS OUT_DIR FULL_NAMES NAME=SAVED_MODEL_DIR ...

Proves `import avrnn_tf` fails, then per SavedModel: `sample` is deterministic per seed (same call,
a fresh load) and differs across seeds; a piano-roll model's frames are 0/1 and its `piano_roll`
is them as uint8 (no waveform), an audio model's waveform has T*D samples; `continue_from` shapes;
`encode` of a prefix and `score` on a padded batch, saved to OUT_DIR/NAME.npz with their inputs so
that the tests compare them with the training-side code. The models named in the comma-separated
FULL_NAMES also get tests/standalone_consumer.py's checks of every signature (OUT_DIR/NAME.full.npz).
Prints "matrix ok" at the end.
"""

import os
import sys

import standalone_consumer  # (adds SITE_DIRS to the path, proves avrnn_tf is absent)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

N, T, SEED, PREFIX = 2, 5, 3, 3


def check(name, path, out_dir):
    m = tf.saved_model.load(path)
    meta = {k: v.numpy() for k, v in m.metadata().items()}
    d, piano = int(meta["frame_size"]), meta["emission"] == b"bernoulli"
    a = m.sample(N, T, SEED)
    frames = a["frames"].numpy()
    assert frames.shape == (N, T, d) and np.all(np.isfinite(frames)), name
    assert np.array_equal(frames, m.sample(N, T, SEED)["frames"].numpy()), name
    reloaded = tf.saved_model.load(path)  # Kept in a variable: its functions need its weights.
    assert np.array_equal(frames, reloaded.sample(N, T, SEED)["frames"].numpy()), name
    assert not np.array_equal(frames, m.sample(N, T, SEED + 1)["frames"].numpy()), name
    if piano:
        assert set(np.unique(frames)) <= {0.0, 1.0} and "waveform" not in a, (name, sorted(a))
        roll = a["piano_roll"].numpy()
        assert roll.dtype == np.uint8 and np.array_equal(roll, frames.astype(np.uint8)), name
    else:
        assert a["waveform"].shape == (N, T * d) and "piano_roll" not in a, (name, sorted(a))
    cont = m.continue_from(frames[:, :PREFIX], 4, SEED)
    assert cont["frames"].shape == (N, 4, d), name
    assert cont["state"].shape == (N, int(meta["state_size"])), name
    assert ("piano_roll" in cont) == piano and ("waveform" in cont) != piano, name
    x = frames if piano else np.random.RandomState(0).normal(size=[N, T, d]).astype(np.float32)
    prefix = x[:, :PREFIX]
    state = m.encode(prefix, SEED)["state"].numpy()
    assert state.shape == (N, int(meta["state_size"])), name
    mask = np.ones([N, T], np.float32)
    mask[1, 3:] = 0.0
    s = {k: v.numpy() for k, v in m.score(x, mask, SEED, 2).items()}
    assert all(np.all(np.isfinite(v)) for v in s.values()), name
    np.savez(os.path.join(out_dir, f"{name}.npz"), x=x, mask=mask, frames=frames,
             encode_prefix=prefix, encode_state=state, **{f"score_{k}": v for k, v in s.items()})


def main():
    out_dir, full = sys.argv[2], set(filter(None, sys.argv[3].split(",")))
    for arg in sys.argv[4:]:
        name, path = arg.split("=", 1)
        check(name, path, out_dir)
        if name in full:
            standalone_consumer.check_model(name, path, os.path.join(out_dir, f"{name}.full.npz"))
        print(f"checked {name}", flush=True)
    print("matrix ok", flush=True)


if __name__ == "__main__":
    main()
