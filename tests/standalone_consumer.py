"""Checks an exported SavedModel the way a user without avrnn_tf would: TensorFlow + numpy only.

Imported by tests/matrix_consumer.py, which runs as `python -S -E` (no site module, so the editable
install of avrnn_tf is not on the path) with the interpreter's site-packages directories
(sys.argv[1]) added by hand here (TensorFlow and numpy, no .pth hooks). Importing this module
proves that `import avrnn_tf` fails; `check_model` then calls every signature of an audio model's
SavedModel and asserts shapes, dtypes, value ranges, determinism and the documented argument
errors, and writes an .npz of inputs and outputs that tests/test_export.py compares with the
training-side code. Raises AssertionError on the first failed check.
"""

import os
import sys

sys.path.extend(p for p in sys.argv[1].split(os.pathsep) if p)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

try:
    import avrnn_tf  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("avrnn_tf is importable in the standalone process: the check proves nothing")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

N, T, SEED = 3, 7, 11


def expect_error(fn, text):
    try:
        fn()
    except tf.errors.InvalidArgumentError as e:
        assert text in str(e), f"expected {text!r} in the error, got: {e}"
        return
    raise AssertionError(f"no InvalidArgumentError (expected {text!r})")


def check_model(kind, path, out_file):
    """`kind` starts with the model kind and "_" (e.g. "vrnn_normal")."""
    m = tf.saved_model.load(path)
    assert set(m.signatures) == {"sample", "sample_chunk", "encode", "continue_from", "score",
                                 "reconstruct", "metadata"}, sorted(m.signatures)
    meta = {k: v.numpy() for k, v in m.metadata().items()}
    d = int(meta["frame_size"])
    assert meta["model_kind"].decode() == kind.split("_")[0], meta["model_kind"]
    assert int(meta["sample_rate"]) > 0 and float(meta["std"]) > 0
    assert b'"frame_size"' in meta["data_stats_json"] and b'"model"' in meta["config_json"]
    assert meta["package_version"] and meta["checkpoint"].startswith(b"ckpt-")

    # sample: shapes, dtypes, ranges, determinism (same call, serving signature, a fresh load).
    a = m.sample(N, T, SEED)
    frames, wave = a["frames"].numpy(), a["waveform"].numpy()
    assert frames.shape == (N, T, d) and frames.dtype == np.float32, frames.shape
    assert wave.shape == (N, T * d) and wave.dtype == np.float32, wave.shape
    assert np.all(np.isfinite(frames)) and np.all(np.abs(wave) <= 1.0)
    assert np.array_equal(frames, m.sample(N, T, SEED)["frames"].numpy())
    sig = m.signatures["sample"](num_sequences=tf.constant(N), num_frames=tf.constant(T),
                                 seed=tf.constant(SEED), temperature=tf.constant(1.0))
    assert np.array_equal(frames, sig["frames"].numpy())
    reloaded = tf.saved_model.load(path)  # Kept in a variable: its functions need its weights.
    again = reloaded.sample(N, T, SEED)["frames"].numpy()
    assert np.array_equal(frames, again), "a fresh load gave other samples for the same seed"
    other = m.sample(N, T, SEED + 1)["frames"].numpy()
    assert not np.allclose(frames, other), "different seeds gave the same samples"
    assert not np.allclose(frames[0], frames[1]), "sequences of one batch are identical"
    # The waveform is the de-standardized frames, clipped.
    expected = np.clip(frames * meta["std"] + meta["mean"], -1, 1).reshape(N, -1)
    np.testing.assert_allclose(wave, expected, atol=1e-6)
    if meta["emission"] == b"normal":  # Temperature 0: no noise anywhere, so no seed dependence.
        cold = [m.sample(2, 4, s, 0.0)["frames"].numpy() for s in (1, 2)]
        np.testing.assert_array_equal(cold[0], cold[1])

    # sample_chunk: two chunks from the zero state are the one-call sample.
    zeros = tf.zeros([N, int(meta["state_size"])])
    c1 = m.sample_chunk(zeros, 4, SEED, 0, 1.0)
    c2 = m.sample_chunk(c1["state"], T - 4, SEED, 4, 1.0)
    np.testing.assert_allclose(np.concatenate([c1["frames"], c2["frames"]], 1), frames, atol=1e-5)

    # encode + continue_from: a continuation is the filtering state followed by sampling.
    prefix = frames[:, :3]
    cont = m.continue_from(prefix, 5, SEED)
    assert cont["frames"].shape == (N, 5, d) and cont["waveform"].shape == (N, 5 * d)
    state = m.encode(prefix, SEED)["state"]
    assert state.shape == (N, int(meta["state_size"]))
    np.testing.assert_allclose(m.sample_chunk(state, 5, SEED, 0, 1.0)["frames"], cont["frames"],
                               atol=1e-5)
    np.testing.assert_array_equal(cont["frames"], m.continue_from(prefix, 5, SEED)["frames"])

    # score and reconstruct on padded batches.
    rng = np.random.RandomState(0)
    x = rng.normal(size=[N, T, d]).astype(np.float32)
    mask = np.ones([N, T], np.float32)
    mask[1, 5:] = 0.0
    mask[2, 2:] = 0.0
    s = {k: v.numpy() for k, v in m.score(x, mask, SEED, 5).items()}
    for key in ("elbo", "log_px", "kl", "iwae", "num_frames"):
        assert s[key].shape == (N,) and s[key].dtype == np.float32 and np.all(np.isfinite(s[key]))
    np.testing.assert_array_equal(s["num_frames"], mask.sum(1))
    np.testing.assert_allclose(s["elbo"], s["log_px"] - s["kl"], rtol=1e-6)
    assert np.all(s["kl"] >= 0)
    if kind.startswith("rnn"):  # No latent: ELBO = IWAE = exact log-likelihood.
        np.testing.assert_array_equal(s["kl"], 0.0)
        np.testing.assert_allclose(s["iwae"], s["elbo"], rtol=1e-6)
    garbage = x.copy()
    garbage[mask == 0] = 1e3  # Padded frames must contribute exactly nothing.
    s2 = m.score(garbage, mask, SEED, 5)
    np.testing.assert_array_equal(s2["elbo"], s["elbo"])
    np.testing.assert_array_equal(s2["iwae"], s["iwae"])
    r = {k: v.numpy() for k, v in m.reconstruct(x, mask, SEED).items()}
    assert r["mean"].shape == (N, T, d) and r["sample"].shape == (N, T, d)
    assert r["waveform"].shape == (N, T * d) and r["log_px"].shape == (N, T)
    assert np.all(r["mean"][mask == 0] == 0) and np.all(r["log_px"][mask == 0] == 0)
    np.testing.assert_allclose(r["log_px"].sum(1), s["log_px"], rtol=1e-5)
    assert not np.allclose(r["sample"], r["mean"])

    # The documented argument errors.
    bad_mask = np.ones([N, T - 1], np.float32)
    nan_x = x.copy()
    nan_x[0, 0, 0] = np.nan
    for call, text in [
        (lambda: m.sample(0, T, 1), "sample: num_sequences must be an integer from 1 to"),
        (lambda: m.sample(N, -5, 1), "sample: num_frames must be an integer from 1 to"),
        (lambda: m.sample(N, T, 1, -1.0), "sample: temperature must be a number from 0 to"),
        (lambda: m.sample(4096, 1 << 20, 1), "memory bound"),
        (lambda: m.sample_chunk(zeros, 4, 1, -3, 1.0), "sample_chunk: start_frame"),
        (lambda: m.score(x, bad_mask, 1, 2), "score: mask must have shape frames.shape[:2]"),
        (lambda: m.score(x, mask, 1, 0), "score: num_samples must be an integer from 1 to"),
        (lambda: m.score(nan_x, mask, 1, 1), "score: frames holds NaN or infinite values"),
        (lambda: m.reconstruct(x, 2 * mask, 1), "reconstruct: mask values must be from 0 to 1"),
        (lambda: m.continue_from(np.zeros([N, 0, d], np.float32), 3, 1),
         "continue_from: prefix_frames.shape[1] (frames) must be an integer from 1 to"),
    ]:
        expect_error(call, text)

    # The session-based loader TensorFlow Serving uses (as saved_model_cli run): same samples.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        graph = tf.compat.v1.saved_model.load(sess, ["serve"], path)
        signature = graph.signature_def["sample"]
        feeds = {signature.inputs[k].name: v for k, v in
                 dict(num_sequences=N, num_frames=T, seed=SEED, temperature=1.0).items()}
        served = sess.run(signature.outputs["frames"].name, feed_dict=feeds)
    np.testing.assert_allclose(served, frames, atol=1e-5)

    np.savez(out_file, frames=frames, x=x, mask=mask, **{f"score_{k}": v for k, v in s.items()})
