"""The speed-motivated gradients (cells.dense_product, SequenceNetwork.recurrence, XLA) are exact.

Each is compared against plain TensorFlow autodiff of the same function: a wrong transpose, a
missing term of the hoisted weight gradients or a dropped variable would change the numbers.
"""

import numpy as np
import pytest

from test_models import KINDS, data, make


@pytest.fixture(scope="module")
def lib(tf):
    import keras
    import tensorflow_probability as tfp

    from avrnn_tf import bounds, cells, models, registry, training

    return dict(keras=keras, tfd=tfp.distributions, bounds=bounds, cells=cells, models=models,
                registry=registry, training=training)


@pytest.mark.parametrize("shape", [(5, 4), (3, 6, 4), (2, 3, 2, 4)])
@pytest.mark.parametrize("in_function", [False, True])
def test_dense_product_value_and_gradients_equal_matmul(tf, lib, shape, in_function):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    w = tf.Variable(rng.normal(size=[4, 3]).astype(np.float32))
    weights = tf.constant(rng.normal(size=shape[:-1] + (3,)).astype(np.float32))

    def both(x):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            fast = lib["cells"].dense_product(x, w)
            plain = tf.tensordot(x, w, axes=1)
            # A non-uniform output gradient, so a transposed or mis-shaped gradient shows.
            lf, lp = tf.reduce_sum(weights * fast ** 2), tf.reduce_sum(weights * plain ** 2)
        return fast, plain, tape.gradient(lf, [x, w]), tape.gradient(lp, [x, w])

    fast, plain, g_fast, g_plain = (tf.function(both) if in_function else both)(x)
    assert fast.shape == plain.shape == shape[:-1] + (3,)
    np.testing.assert_allclose(fast.numpy(), plain.numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_plain):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_dense_layer_is_a_drop_in_keras_dense(tf, lib):
    keras = lib["keras"]
    ours = lib["cells"].Dense(3, activation="relu", name="d")
    theirs = keras.layers.Dense(3, activation="relu", name="d")
    x = tf.random.stateless_normal([2, 5, 4], seed=[1, 1])
    ours(x), theirs(x)
    theirs.set_weights(ours.get_weights())
    assert [v.path.split("/")[-1] for v in ours.weights] == ["kernel", "bias"]
    np.testing.assert_allclose(ours(x).numpy(), theirs(x).numpy(), rtol=1e-6)


def _gradients(tf, net, x, noise, mask, compiled, aux=False):
    variables = net.trainable_variables

    def grads(x, noise):
        with tf.GradientTape() as tape:
            terms = net.frame_terms(x, noise, mask=mask)
            loss = -tf.reduce_sum((terms["log_px"] - terms["kl"]) * mask)
            if aux:
                loss -= tf.reduce_sum(terms["aux_log_prob"] * mask)
        return tape.gradient(loss, variables)

    return (tf.function(grads) if compiled else grads)(x, noise)


@pytest.mark.parametrize("kind,emission,residual", KINDS + [("zforcing", "normal", False)])
def test_hoisted_weight_gradients_equal_autodiff_through_the_loop(tf, lib, kind, emission, residual):
    net = make(lib, kind, emission, residual)
    x = data(tf, emission, b=4, t=7)
    noise = tf.random.stateless_normal(net.noise_shape(x), seed=[5, 6])
    mask = tf.constant(np.array([[1] * 7, [1] * 5 + [0] * 2, [1] * 7, [1] * 2 + [0] * 5], np.float32))
    aux = kind == "zforcing"
    # Eager mode takes the plain path (autodiff through the while loop, every weight gradient
    # inside it); tf.function takes the hoisted one.
    assert net.hoist_weight_gradients
    plain = _gradients(tf, net, x, noise, mask, compiled=False, aux=aux)
    hoisted = _gradients(tf, net, x, noise, mask, compiled=True, aux=aux)
    net.hoist_weight_gradients = False
    compiled_plain = _gradients(tf, net, x, noise, mask, compiled=True, aux=aux)
    kernels = {id(net.cell.recurrent_kernel)} | ({id(net.cell.z_kernel)} if net.z_dim else set())
    checked = 0
    for v, a, b, c in zip(net.trainable_variables, plain, hoisted, compiled_plain):
        assert (a is None) == (b is None) == (c is None), v.path
        if a is None:
            continue
        scale = float(np.abs(a.numpy()).max()) + 1e-6
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-4 * scale, err_msg=v.path)
        np.testing.assert_allclose(c.numpy(), a.numpy(), rtol=1e-4, atol=1e-4 * scale, err_msg=v.path)
        checked += id(v) in kernels and float(np.abs(a.numpy()).max()) > 0
    assert checked == len(kernels)  # The hoisted kernels got real, non-zero gradients.


def test_xla_train_step_equals_the_graph_step(tf, lib, monkeypatch):
    """train.xla = on: the compiled step makes the same update as the default graph step.

    XLA's stateless Philox maps a runtime seed to other numbers than TensorFlow's kernel, so the
    noise is replaced here by a deterministic function of shape and seed (plain maths ops).
    """
    import keras

    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf import replicas

    def fake_normal(shape, seed):
        n = tf.reduce_prod(shape)
        phase = tf.cast(seed[0] % 1000, tf.float32) * 0.37 + tf.cast(seed[1] % 1000, tf.float32)
        return tf.reshape(tf.sin(tf.cast(tf.range(n), tf.float32) * 1.3 + phase), shape)

    monkeypatch.setattr(replicas, "normal", fake_normal)

    x = tf.random.stateless_normal([4, 6, 5], seed=[1, 2])
    mask = tf.constant(np.array([[1] * 6, [1] * 6, [1] * 4 + [0] * 2, [1] * 6], np.float32))
    results = {}
    for algorithm in ("elbo", "avrnn"):
        for xla in ("off", "on"):
            config = config_lib.base_config()
            config.model.update(h_dim=8, z_dim=3, mlp_units=6)
            config.train.update(algorithm=algorithm, xla=xla)
            config.adversarial.update(separate_batches=False, critic_lstm_units=5,
                                      critic_dense_units=4)
            keras.utils.set_random_seed(3)
            net = lib["registry"].create_network(config_lib.model_spec(config, 5))
            trainer = loop.build_trainer(config, net)
            assert trainer.jit_compile == (xla == "on")
            start = [v.numpy() for v in net.trainable_variables]
            ds = tf.data.Dataset.from_tensors((x, mask)).repeat()
            trainer.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
            results[algorithm, xla] = [v.numpy() - s for v, s in zip(net.trainable_variables, start)]
    tf.random.set_seed(None)
    for algorithm in ("elbo", "avrnn"):
        off, on = results[algorithm, "off"], results[algorithm, "on"]
        assert max(np.abs(d).max() for d in off) > 1e-4  # Two real updates happened.
        for a, b in zip(off, on):
            np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-6)


def test_xla_setting_is_validated(tf):
    from avrnn_tf import config as config_lib

    config = config_lib.base_config()
    config.train.xla = "yes"
    with pytest.raises(config_lib.ConfigError, match=r"train\.xla.*'auto', 'on', 'off'"):
        config_lib.validate(config)
