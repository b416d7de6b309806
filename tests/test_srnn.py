"""SRNN (avrnn_tf/srnn.py) against a naive reference written from the paper's equations, and
the properties of its posterior and bounds. The protocol's conformance checks run on it from
tests/test_protocol.py."""

import numpy as np
import pytest

from conftest import seeded_network

B, T, D = 3, 6, 2
LENGTHS = [6, 4, 2]
VARIANTS = {  # name: (srnn_posterior, residual_posterior, head_layers)
    "smoothing_resq": ("smoothing", True, 2),
    "filtering": ("filtering", False, 1),
}


@pytest.fixture(scope="module")
def nets(tf):
    from avrnn_tf import models

    return {name: seeded_network(models.ModelSpec(
        kind="srnn", emission="gmm", x_dim=D, h_dim=4, z_dim=3, mlp_units=5, num_mixtures=2,
        head_layers=layers, srnn_posterior=posterior, residual_posterior=residual))
        for name, (posterior, residual, layers) in VARIANTS.items()}


def _batch(tf, seed=0):
    x = tf.random.stateless_normal([B, T, D], seed=[seed, 1])
    mask = tf.sequence_mask(LENGTHS, T, dtype=tf.float32)
    noise = tf.random.stateless_normal([B, T, 3], seed=[seed, 2])
    return x, mask, noise


def _lstm_step(tf, inputs, h, c, kernel, recurrent_kernel, bias):
    i, f, g, o = tf.split(inputs @ kernel + h @ recurrent_kernel + bias, 4, axis=-1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c


def _normal(tf, loc, scale, value):
    return tf.reduce_sum(-0.5 * ((value - loc) / scale) ** 2 - tf.math.log(scale)
                         - 0.5 * np.log(2 * np.pi), axis=-1)


def _mlp(tf, net, first_kernels_inputs, bias, hidden, out):
    """relu(sum of input @ kernel + bias) -> hidden layers -> (loc, softplus + floor)."""
    pre = bias + sum(v @ k for v, k in first_kernels_inputs)
    raw_loc, raw_scale = tf.split(out(hidden(tf.nn.relu(pre))), 2, axis=-1)
    return raw_loc, tf.nn.softplus(raw_scale) + net.spec.scale_floor


def _reference(tf, net, x, noise):
    """Sum over real frames of log p(x_t|.) + log p(z_t|.) - log q(z_t|.) and of the analytic KL,
    one sequence at a time, one frame at a time, from the equations (Fraccaro et al. 2016)."""
    h = net.spec.h_dim
    fx, fc = net.forward_x, net.forward_cell
    logw, kls = [], []
    for b, length in enumerate(LENGTHS):
        xb = x[b:b + 1, :length]
        d, c, prev = tf.zeros([1, h]), tf.zeros([1, h]), tf.zeros([1, D])
        ds = []
        for t in range(length):  # d_t = LSTM(d_{t-1}, x_{t-1}), x_0 = 0
            d, c = _lstm_step(tf, prev, d, c, fx.kernel, fc.recurrent_kernel, fx.bias)
            ds.append(d)
            prev = xb[:, t]
        if net.posterior_reads_future:  # a_t = backward LSTM over [d_s, x_s], s = t..length
            cell = net.backward_rnn.cell
            a, ca, feats = tf.zeros([1, h]), tf.zeros([1, h]), [None] * length
            for t in reversed(range(length)):
                a, ca = _lstm_step(tf, tf.concat([ds[t], xb[:, t]], -1), a, ca, cell.kernel,
                                   cell.recurrent_kernel, cell.bias)
                feats[t] = a
        else:
            feats = [tf.concat([ds[t], xb[:, t]], -1) for t in range(length)]
        z = tf.zeros([1, 3])
        total = kl = 0.0
        for t in range(length):
            p_loc, p_scale = _mlp(tf, net, [(ds[t], net.prior_d.kernel), (z, net.prior_z.kernel)],
                                  net.prior_d.bias, net.prior_hidden, net.prior_out)
            q_loc, q_scale = _mlp(tf, net, [(feats[t], net.posterior_a.kernel),
                                            (z, net.posterior_z.kernel)],
                                  net.posterior_a.bias, net.posterior_hidden, net.posterior_out)
            if net.spec.residual_posterior:
                q_loc = q_loc + p_loc
            z = q_loc + q_scale * noise[b:b + 1, t]
            emission = net.emission_head.new(net.emission_net(tf.concat([z, ds[t]], -1)))
            total += (emission.log_prob(xb[:, t]) + _normal(tf, p_loc, p_scale, z)
                      - _normal(tf, q_loc, q_scale, z))
            kl += tf.reduce_sum(tf.math.log(p_scale / q_scale) - 0.5 + (
                q_scale ** 2 + (q_loc - p_loc) ** 2) / (2 * p_scale ** 2), axis=-1)
        logw.append(total)
        kls.append(kl)
    return tf.concat(logw, 0), tf.concat(kls, 0)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_hoisted_terms_and_gradients_equal_the_naive_reference(tf, nets, variant):
    from avrnn_tf import bounds

    net = nets[variant]
    x, mask, noise = _batch(tf)

    @tf.function  # The training path.
    def fast():
        with tf.GradientTape() as tape:
            terms = net.frame_terms(x, noise, mask)
            logw = bounds.log_weights(terms, mask, 1)[0]
            kl = bounds.elbo(terms, mask)["kl"]
            loss = tf.reduce_sum(logw) + 0.5 * tf.reduce_sum(kl)
        return logw, kl, tape.gradient(loss, net.trainable_variables)

    with tf.GradientTape() as tape:
        ref_logw, ref_kl = _reference(tf, net, x, noise)
        loss = tf.reduce_sum(ref_logw) + 0.5 * tf.reduce_sum(ref_kl)
    ref_grads = tape.gradient(loss, net.trainable_variables)
    logw, kl, grads = fast()
    np.testing.assert_allclose(logw.numpy(), ref_logw.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(kl.numpy(), ref_kl.numpy(), rtol=1e-5, atol=1e-4)
    for v, g, r in zip(net.trainable_variables, grads, ref_grads):
        assert r is not None and g is not None, v.path
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-4, atol=1e-4, err_msg=v.path)


def _changes(before, after):
    return np.abs(after.numpy() - before.numpy()).max(axis=-1)[0]  # [T] for sequence 0


def test_smoothing_posterior_reads_the_future_and_the_past_only_through_d(tf, nets):
    """a_t (all the smoothing posterior reads besides z_{t-1}) depends on x_{t:T} and d_{t:T};
    with d held fixed, changing x_{<t} or d_{<t} leaves it unchanged."""
    net = nets["smoothing_resq"]
    x, _, _ = _batch(tf, seed=3)
    x = x[:1]
    d, _ = net.deterministic_states(x)
    a = net.posterior_features(d, x)
    t = 3
    bump = tf.constant((np.arange(T) < t).astype(np.float32))[None, :, None]
    for x2, d2 in ((x + bump, d), (x, d + bump)):  # The past only.
        changed = _changes(a, net.posterior_features(d2, x2))
        assert np.all(changed[t:] == 0) and np.all(changed[:t] > 1e-6), changed
    future = tf.constant((np.arange(T) == T - 1).astype(np.float32))[None, :, None]
    changed = _changes(a, net.posterior_features(d, x + future))
    assert np.all(changed > 1e-6), changed  # x_T reaches every a_t, t <= T.
    # Through the model: x_{<t} reaches frame t's posterior only through d (the forward LSTM).
    full = net.step_inputs(x + bump)
    assert np.any(np.abs(full[0, t:] - net.step_inputs(x)[0, t:]) > 1e-6)


def test_filtering_posterior_does_not_read_the_future(tf, nets):
    net = nets["filtering"]
    x, _, _ = _batch(tf, seed=4)
    x = x[:1]
    d, _ = net.deterministic_states(x)
    a = net.posterior_features(d, x)
    later = tf.constant((np.arange(T) >= 3).astype(np.float32))[None, :, None]
    changed = _changes(a, net.posterior_features(d, x + later))
    assert np.all(changed[:3] == 0) and np.all(changed[3:] > 1e-6), changed
    inputs = net.step_inputs(x)
    np.testing.assert_array_equal(net.step_inputs(x + later)[:, :3].numpy(), inputs[:, :3].numpy())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_iwae_1_is_the_elbo_with_a_sampled_kl(tf, nets, variant):
    """IWAE-1 is log w of one sample; averaged over many samples it matches the ELBO with the
    analytic KL (same expectation), within 4 standard errors."""
    from avrnn_tf import bounds

    net = nets[variant]
    x, mask, _ = _batch(tf, seed=5)
    k = 2000
    xk = bounds.tile_batch(x, k)
    terms = net.frame_terms(xk, tf.random.stateless_normal(net.noise_shape(xk), seed=[5, 9]),
                            bounds.tile_batch(mask, k))
    tiled_mask = bounds.tile_batch(mask, k)
    sampled = bounds.log_weights(terms, mask, k).numpy()  # [K, B]
    one = bounds.iwae({key: v[:B] for key, v in terms.items() if key != "trajectory"}, mask, 1)
    np.testing.assert_allclose(one["iwae"].numpy(), sampled[0], rtol=1e-6)
    np.testing.assert_allclose(one["elbo_sampled"].numpy(), sampled[0], rtol=1e-6)
    analytic = tf.reshape(bounds.elbo(terms, tiled_mask)["elbo"], [k, B]).numpy()
    diff = sampled - analytic
    error = diff.std(axis=0) / np.sqrt(k)
    assert np.all(np.abs(diff.mean(axis=0)) < 4 * error + 1e-3), (diff.mean(axis=0), error)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fivo_without_resampling_is_iwae(tf, nets, variant):
    from avrnn_tf import bounds

    net = nets[variant]
    x, mask, _ = _batch(tf, seed=6)
    k = 4
    xk = bounds.tile_batch(x, k)
    noise = tf.random.stateless_normal(net.noise_shape(xk), seed=[6, 3])
    iwae = bounds.iwae(net.frame_terms(xk, noise, bounds.tile_batch(mask, k)), mask, k)["iwae"]
    fivo = bounds.fivo(net, x, mask, noise, k, seed=[1, 2], resample=False)["fivo"]
    np.testing.assert_allclose(fivo.numpy(), iwae.numpy(), rtol=1e-5, atol=1e-4)
    resampled = bounds.fivo(net, x, mask, noise, k, seed=[1, 2], ess_threshold=1.0)
    assert np.all(resampled["num_resamples"].numpy() == LENGTHS)  # Every real frame resamples.
    assert np.all(np.isfinite(resampled["fivo"].numpy()))


def test_generation_feeds_each_frame_back_into_d(tf, nets):
    """Sampling T frames and scoring them with the filter: the state after filtering the
    sampled frames (d, c, x) equals the state the sampler returned (same d-chain)."""
    net = nets["filtering"]
    frames, state = net.sample(2, 4, tf.constant([3, 4], tf.int32), return_state=True)
    filtered = net.final_state(frames, tf.zeros(net.noise_shape(frames)))
    for i in (0, 1, 3):  # d, c, x (z differs: the sampler drew it from the prior)
        np.testing.assert_allclose(filtered[i].numpy(), state[i].numpy(), rtol=1e-5, atol=1e-5)
