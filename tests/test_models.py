"""The model family: hoisted computation == naive per-step VRNN, masking, sampling, retracing."""

import numpy as np
import pytest

KINDS = [("vrnn", "normal", False), ("vrnn", "gmm", True), ("vrnn_i", "normal", False),
         ("rnn", "gmm", False), ("rnn", "normal", False), ("vrnn", "bernoulli", False)]


@pytest.fixture(scope="module")
def lib(tf):
    import keras
    import tensorflow_probability as tfp

    from avrnn_tf import bounds, models, registry, training

    return dict(keras=keras, tfd=tfp.distributions, bounds=bounds, models=models,
                registry=registry, training=training)


def make(lib, kind, emission, residual=False, x_dim=6):
    spec = lib["models"].ModelSpec(kind=kind, emission=emission, x_dim=x_dim, h_dim=10, z_dim=3,
                                   mlp_units=7, num_mixtures=2, residual_posterior=residual)
    return lib["registry"].create_network(spec)


def data(tf, emission, b=3, t=5, d=6, seed=0):
    rng = np.random.default_rng(seed)
    if emission == "bernoulli":
        return tf.constant((rng.uniform(size=[b, t, d]) < 0.4).astype(np.float32))
    return tf.constant(rng.normal(size=[b, t, d]).astype(np.float32))


def dense(layer, x, relu=False):
    y = x @ layer.kernel + layer.bias
    return np.maximum(y, 0) if relu else y


def naive_terms(tf, lib, net, x, noise):
    """The VRNN equations of ../shared/docs/DESIGN.md section 2, every network applied per step, in numpy/TFP.

    It rebuilds the unsplit weights (posterior first layer on [phi_x(x_t), h_{t-1}], LSTM input
    kernel on [phi_x(x_t), phi_z(z_t)]) from the network's split ones, and loops over time.
    """
    tfd = lib["tfd"]
    spec, cell = net.spec, net.cell
    x, noise = x.numpy().astype(np.float64), noise.numpy().astype(np.float64)
    b, t_total, _ = x.shape
    h = np.zeros([b, spec.h_dim])
    c = np.zeros([b, spec.h_dim])
    sigm = lambda v: 1 / (1 + np.exp(-v))
    softplus = lambda v: np.log1p(np.exp(v))
    rec = cell.recurrent_kernel.numpy()
    four_h = 4 * spec.h_dim
    w = lambda layer: type("W", (), {"kernel": layer.kernel.numpy(), "bias": layer.bias.numpy()})
    log_px, kl = np.zeros([b, t_total]), np.zeros([b, t_total])
    for t in range(t_total):
        fx = x[:, t]
        for layer in net.phi_x:
            fx = dense(w(layer), fx, relu=True)
        if net.z_dim:
            # Posterior q(z_t | x_t, h_{t-1}) from the concatenated input.
            w1 = np.concatenate([net.posterior_x.kernel.numpy(), rec[:, four_h:]], 0)
            a = np.maximum(np.concatenate([fx, h], -1) @ w1 + net.posterior_x.bias.numpy(), 0)
            for layer in cell.posterior_hidden:
                a = dense(w(layer), a, relu=True)
            q = dense(w(cell.posterior_out), a)
            q_loc, q_scale = q[:, :spec.z_dim], softplus(q[:, spec.z_dim:]) + spec.scale_floor
            if net.prior_net is not None:
                p = dense(w(net.prior_net.out), dense(w(net.prior_net.hidden[0]), h, relu=True))
                p_loc, p_scale = p[:, :spec.z_dim], softplus(p[:, spec.z_dim:]) + spec.scale_floor
            else:
                p_loc, p_scale = np.zeros_like(q_loc), np.ones_like(q_scale)
            if spec.residual_posterior:
                q_loc = q_loc + p_loc
            z = q_loc + q_scale * noise[:, t]
            kl[:, t] = tf.reduce_sum(lib["tfd"].kl_divergence(
                tfd.Normal(q_loc, q_scale), tfd.Normal(p_loc, p_scale)), -1).numpy()
            fz = z
            for layer in cell.phi_z:
                fz = dense(w(layer), fz, relu=True)
            em_in = np.concatenate([fz, h], -1)
            lstm_in = np.concatenate([fx, fz], -1)
            w_in = np.concatenate([net.gate_x.kernel.numpy(), cell.z_kernel.numpy()], 0)
        else:
            em_in, lstm_in, w_in = h, fx, net.gate_x.kernel.numpy()
        params = dense(w(net.emission_net.out), dense(w(net.emission_net.hidden[0]), em_in, relu=True))
        dist = net.emission_head.new(tf.constant(params, tf.float64))
        log_px[:, t] = dist.log_prob(x[:, t]).numpy()
        gates = lstm_in @ w_in + net.gate_x.bias.numpy() + h @ rec[:, :four_h]
        i, f, g, o = np.split(gates, 4, -1)
        c = sigm(f) * c + sigm(i) * np.tanh(g)
        h = sigm(o) * np.tanh(c)
    return log_px, kl


@pytest.mark.parametrize("kind,emission,residual", KINDS)
def test_hoisted_loop_equals_naive_per_step_model(tf, lib, kind, emission, residual):
    net = make(lib, kind, emission, residual)
    x = data(tf, emission)
    noise = tf.random.stateless_normal(net.noise_shape(x), seed=[1, 2])
    terms = net.frame_terms(x, noise)
    want_px, want_kl = naive_terms(tf, lib, net, x, noise)
    np.testing.assert_allclose(terms["log_px"].numpy(), want_px, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(terms["kl"].numpy(), want_kl, rtol=1e-4, atol=1e-4)
    if kind != "rnn":
        # The sampled-KL identity: log q - log p at the sample, averaged, approaches the KL.
        assert terms["log_qz"].shape == terms["log_pz"].shape == terms["kl"].shape


def test_masked_frames_contribute_exactly_zero(tf, lib):
    net = make(lib, "vrnn", "normal")
    x = data(tf, "normal", b=3, t=6)
    mask = tf.constant([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]], tf.float32)
    noise = tf.random.stateless_normal(net.noise_shape(x), seed=[3, 4])
    garbage = tf.where(mask[..., None] > 0, x, 1e3 * tf.ones_like(x))
    variables = net.trainable_variables

    def bound(frames):
        with tf.GradientTape() as tape:
            b = lib["bounds"].elbo(net.frame_terms(frames, noise), mask)
            total = tf.reduce_sum(b["elbo"])
        return b, tape.gradient(total, variables)

    b1, g1 = bound(x)
    b2, g2 = bound(garbage)
    np.testing.assert_array_equal(b1["elbo"].numpy(), b2["elbo"].numpy())
    np.testing.assert_array_equal(b1["num_frames"].numpy(), [6, 3, 2])
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    # And a truncated batch gives the same per-sequence values as the padded one (causality).
    short = lib["bounds"].elbo(net.frame_terms(x[1:2, :3], noise[1:2, :3]), tf.ones([1, 3]))
    np.testing.assert_allclose(short["elbo"].numpy()[0], b1["elbo"].numpy()[1], rtol=1e-5)


def test_rnn_elbo_is_the_exact_log_likelihood(tf, lib):
    net = make(lib, "rnn", "normal")
    x = data(tf, "normal")
    terms = net.frame_terms(x, tf.zeros(net.noise_shape(x)))
    b = lib["bounds"].elbo(terms, tf.ones(x.shape[:2]))
    np.testing.assert_array_equal(b["kl"].numpy(), 0.0)
    np.testing.assert_allclose(b["elbo"].numpy(), tf.reduce_sum(terms["log_px"], 1).numpy())


@pytest.mark.parametrize("kind,emission", [("vrnn", "normal"), ("vrnn", "gmm"), ("vrnn_i", "normal"),
                                           ("rnn", "normal"), ("vrnn", "bernoulli")])
def test_sampling_is_reproducible_and_seed_dependent(tf, lib, kind, emission):
    net = make(lib, kind, emission)
    sample = tf.function(net.sample)
    a = sample(2, 7, tf.constant([5, 6]))
    b = sample(2, 7, tf.constant([5, 6]))
    c = sample(2, 7, tf.constant([5, 7]))
    assert a.shape == (2, 7, 6)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())
    if emission == "bernoulli":
        assert set(np.unique(a.numpy())) <= {0.0, 1.0}


def test_zero_temperature_sampling_is_deterministic_mean_path(tf, lib):
    net = make(lib, "vrnn", "normal")
    sample = tf.function(net.sample)
    a = sample(1, 4, tf.constant([1, 1]), 0.0)
    b = sample(1, 4, tf.constant([9, 9]), 0.0)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_train_step_does_not_retrace(tf, lib):
    keras = lib["keras"]
    net = make(lib, "vrnn", "gmm")
    trainer = lib["training"].ELBOTrainer(net, seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = data(tf, "normal", b=4, t=5)
    mask = tf.ones([4, 5])

    def batches(n, seed):
        rng = np.random.default_rng(seed)  # Fresh values each step, same shapes.
        return tf.data.Dataset.from_tensor_slices(
            (rng.normal(size=[n, 4, 5, 6]).astype(np.float32), np.ones([n, 4, 5], np.float32)))

    trainer.fit(batches(2, 0), epochs=1, verbose=0, shuffle=False)
    traces = trainer.trace_count
    trainer.fit(batches(25, 1), epochs=3, verbose=0, shuffle=False)
    assert trainer.trace_count == traces
    assert int(trainer.optimizer.iterations) == 2 + 75
    assert x.shape == (4, 5, 6) and mask.shape == (4, 5)


def test_train_step_noise_follows_the_step_counter(tf, lib):
    """Two trainers from the same weights take identical steps: noise depends only on the step."""
    keras = lib["keras"]
    x = data(tf, "normal", b=4, t=5)
    results = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        net = make(lib, "vrnn", "normal")
        trainer = lib["training"].ELBOTrainer(net, seed=3)
        trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
        ds = tf.data.Dataset.from_tensors((x, tf.ones([4, 5]))).repeat(4)
        trainer.fit(ds, epochs=1, verbose=0, shuffle=False)
        results.append([v.numpy() for v in net.trainable_variables])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_gradient_clipping_bounds_the_update(tf, lib):
    clipped, norm = lib["training"].clip_gradients([tf.constant([3.0, 4.0])], 1.0)
    assert float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose(clipped[0].numpy(), [0.6, 0.8], rtol=1e-6)
    same, norm = lib["training"].clip_gradients([tf.constant([3.0, 4.0])], 0.0)
    np.testing.assert_allclose(same[0].numpy(), [3.0, 4.0])


def test_unknown_kind_is_rejected(tf, lib):
    with pytest.raises(ValueError, match="no_such_kind"):
        lib["registry"].create_network(lib["models"].ModelSpec(kind="no_such_kind", emission="normal", x_dim=2))


def test_loop_validation_equals_keras_evaluate_of_the_test_step(tmp_path, tf):
    """The run's own validation pass reports what `trainer.evaluate` (test_step) reports."""
    from conftest import load_config_file

    from avrnn_tf import loop
    from avrnn_tf.data import pipeline

    config = load_config_file("zforcing.py", "tiny")  # has the auxiliary metric too
    config.train.update(audio_every=0, num_final_samples=0)
    run = loop.Run(config, str(tmp_path))
    try:
        ours = run.validation_metrics()
        ds = pipeline.eval_dataset(run.data.valid_batches, config.data.frame_size)
        keras_result = run.trainer.evaluate(ds, verbose=0, return_dict=True)
    finally:
        run.lock.release()
    assert set(ours) == set(keras_result) and "aux_per_frame" in ours
    for name in ours:
        assert ours[name] == pytest.approx(keras_result[name], rel=1e-5), name
