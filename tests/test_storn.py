"""STORN proper (avrnn_tf/storn.py) against a naive reference written from Bayer & Osendorfer's
equations; its posterior reads only x_{1:t}; its prior is fixed; workdirs written when "storn"
meant VRNN-I are refused on resume, eval and export (tests/fixtures/pre_family_storn, written by
the code before the change: see tests/fixtures/README.md)."""

import os
import shutil

import numpy as np
import pytest

from conftest import PROJECT_ROOT, run_cli, seeded_network

B, T, D = 3, 5, 2
LENGTHS = [5, 3, 1]
OLD_STORN = os.path.join(PROJECT_ROOT, "tests", "fixtures", "pre_family_storn")


@pytest.fixture(scope="module")
def net(tf):
    from avrnn_tf import models

    return seeded_network(models.ModelSpec(
        kind="storn", emission="gmm", x_dim=D, h_dim=4, z_dim=3, mlp_units=5, num_mixtures=2,
        head_layers=2))


def _batch(tf, seed=0):
    x = tf.random.stateless_normal([B, T, D], seed=[seed, 1])
    noise = tf.random.stateless_normal([B, T, 3], seed=[seed, 2])
    return x, tf.sequence_mask(LENGTHS, T, dtype=tf.float32), noise


def _lstm_step(tf, inputs, h, c, kernel, recurrent_kernel, bias):
    i, f, g, o = tf.split(inputs @ kernel + h @ recurrent_kernel + bias, 4, axis=-1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c


def _reference(tf, net, x, noise):
    """Per sequence, per frame: sum over real frames of log p(x_t | h_t) + log N(z_t; 0, I)
    - log q(z_t | x_{1:t})."""
    h_dim = net.spec.h_dim
    rec = net.recognition_rnn.cell
    gen_kernel = tf.concat([net.gate_x.kernel, net.gate_z.kernel], axis=0)
    out = []
    for b, length in enumerate(LENGTHS):
        r, rc, h, c = (tf.zeros([1, h_dim]) for _ in range(4))
        prev = tf.zeros([1, D])
        total = 0.0
        for t in range(length):
            xt = x[b:b + 1, t]
            r, rc = _lstm_step(tf, xt, r, rc, rec.kernel, rec.recurrent_kernel, rec.bias)
            raw_loc, raw_scale = tf.split(net.posterior_net(r), 2, axis=-1)
            scale = tf.nn.softplus(raw_scale) + net.spec.scale_floor
            z = raw_loc + scale * noise[b:b + 1, t]
            h, c = _lstm_step(tf, tf.concat([prev, z], -1), h, c, gen_kernel,
                              net.cell.recurrent_kernel, net.gate_x.bias)
            log_q = tf.reduce_sum(-0.5 * noise[b:b + 1, t] ** 2 - tf.math.log(scale), -1)
            log_p = tf.reduce_sum(-0.5 * z ** 2, -1)  # The 2 pi terms cancel.
            total += net.emission_head.new(net.emission_net(h)).log_prob(xt) + log_p - log_q
            prev = xt
        out.append(total)
    return tf.concat(out, 0)


def test_terms_and_gradients_equal_the_naive_reference(tf, net):
    from avrnn_tf import bounds

    x, mask, noise = _batch(tf)

    @tf.function
    def fast():
        with tf.GradientTape() as tape:
            logw = bounds.log_weights(net.frame_terms(x, noise, mask), mask, 1)[0]
            total = tf.reduce_sum(logw)
        return logw, tape.gradient(total, net.trainable_variables)

    with tf.GradientTape() as tape:
        reference = _reference(tf, net, x, noise)
        total = tf.reduce_sum(reference)
    ref_grads = tape.gradient(total, net.trainable_variables)
    logw, grads = fast()
    np.testing.assert_allclose(logw.numpy(), reference.numpy(), rtol=1e-5, atol=1e-4)
    for v, g, r in zip(net.trainable_variables, grads, ref_grads):
        assert g is not None, ("fast", v.path)
        assert r is not None, ("reference", v.path)
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-4, atol=1e-4, err_msg=v.path)


def test_the_posterior_at_t_reads_only_x_1_to_t(tf, net):
    x, _, noise = _batch(tf, seed=2)
    before = net.trajectory(x, noise)
    for t in range(T):
        later = tf.constant((np.arange(T) >= t).astype(np.float32))[None, :, None]
        after = net.trajectory(x + later, noise)
        for key in ("post_loc", "post_scale"):
            change = np.abs(after[key].numpy() - before[key].numpy()).max(axis=(0, 2))
            assert np.all(change[:t] == 0) and np.all(change[t:] > 1e-7), (key, t, change)


def test_the_prior_is_a_fixed_standard_normal(tf, net):
    x, mask, noise = _batch(tf, seed=3)
    out = net.trajectory(x, noise)
    np.testing.assert_array_equal(out["prior_loc"].numpy(), 0.0)
    np.testing.assert_array_equal(out["prior_scale"].numpy(), 1.0)
    assert net.parameter_groups()["prior"] == []
    terms = net.frame_terms(x, noise)
    z = out["z"].numpy()
    np.testing.assert_allclose(terms["log_pz"].numpy(),
                               (-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi)).sum(-1), rtol=1e-5)
    # Generation draws z from N(0, I): at temperature 0 every sequence is the same path.
    frames = net.sample(2, 3, tf.constant([1, 2], tf.int32), temperature=0.0).numpy()
    np.testing.assert_allclose(frames[0], frames[1], rtol=1e-6)


@pytest.fixture
def old_storn(tmp_path):
    path = tmp_path / "run"
    shutil.copytree(OLD_STORN, path)
    return str(path)


def test_a_workdir_where_storn_meant_vrnn_i_is_refused_in_one_line(tf, old_storn, tmp_path):
    """No silent change of model: resume, eval and export refuse the old "storn" run with one
    line saying what changed; renamed to vrnn_i as the message says, it restores."""
    from avrnn_tf import models, restore

    files = sorted(os.listdir(old_storn))
    for module, args in (
            ("avrnn_tf.train", ["--config=configs/storn.py:tiny", f"--workdir={old_storn}"]),
            ("avrnn_tf.evaluate", [f"--workdir={old_storn}", "--split=valid"]),
            ("avrnn_tf.export", [f"--workdir={old_storn}", f"--export_dir={tmp_path / 'e'}"])):
        result = run_cli(module, *args)
        assert result.returncode == 2, (module, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "'vrnn_i'" in lines[0] and "config.json" in lines[0], lines
        assert "Traceback" not in result.stderr
    assert sorted(f for f in os.listdir(old_storn) if f != ".lock") == files
    assert not os.path.exists(tmp_path / "e")
    path = os.path.join(old_storn, "config.json")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace('"kind": "storn"', '"kind": "vrnn_i"'))
    run = restore.load_run(old_storn)
    assert isinstance(run.network, models.VRNNINetwork) and run.step == 2
    restore.verify_restored(run.network, run.checkpoint)
