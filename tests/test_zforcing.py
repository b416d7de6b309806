"""Z-Forcing: the backward state reads only the future, the auxiliary cost, the KL schedule."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def net(tf):
    from avrnn_tf import models
    from avrnn_tf import registry

    spec = models.ModelSpec(kind="zforcing", emission="normal", x_dim=4, h_dim=8, z_dim=3,
                            mlp_units=8)
    return registry.create_network(spec)


def test_backward_state_at_t_depends_only_on_x_t_to_T(tf, net):
    x = tf.random.stateless_normal([1, 9, 4], seed=[1, 1])
    s = 5
    changed = tf.tensor_scatter_nd_update(x, [[0, s]], tf.ones([1, 4]) * 3.0)
    b, b2 = net.backward_states(x).numpy()[0], net.backward_states(changed).numpy()[0]
    np.testing.assert_array_equal(b[s + 1:], b2[s + 1:])  # later frames: unaffected
    assert np.all(np.abs(b[:s + 1] - b2[:s + 1]).max(axis=1) > 1e-6)  # x_s reaches every b_t, t <= s


def test_backward_state_ignores_padding(tf, net):
    x = tf.random.stateless_normal([1, 6, 4], seed=[2, 2])
    padded = tf.concat([x, 50.0 * tf.ones([1, 3, 4])], axis=1)
    mask = tf.constant([[1.0] * 6 + [0.0] * 3])
    np.testing.assert_allclose(net.backward_states(padded, mask).numpy()[0, :6],
                               net.backward_states(x).numpy()[0], rtol=1e-5, atol=1e-6)


def test_auxiliary_target_is_held_constant(tf, net):
    # d aux / d(backward LSTM) flows only through z_t (the posterior reads b_t), never through the
    # target: replacing the target by a constant copy changes no gradient.
    from avrnn_tf import heads

    x = tf.random.stateless_normal([2, 5, 4], seed=[3, 3])
    noise = tf.random.stateless_normal([2, 5, 3], seed=[4, 4])
    variables = net.trainable_variables
    with tf.GradientTape() as tape:
        aux = tf.reduce_sum(net.frame_terms(x, noise)["aux_log_prob"])
    with tf.GradientTape() as tape2:
        out = net.trajectory(x, noise)
        loc, scale = net.aux_net.loc_scale(out["z"])
        target = tf.constant(out["backward"].numpy())
        aux2 = tf.reduce_sum(heads.normal_log_prob(target, loc, scale))
    np.testing.assert_allclose(float(aux), float(aux2), rtol=1e-5)
    grads = tape.gradient(aux, variables)
    for v, g, g2 in zip(variables, grads, tape2.gradient(aux2, variables)):
        if g2 is None:
            assert g is None, v.path
        else:
            np.testing.assert_allclose(g.numpy(), g2.numpy(), rtol=1e-4, atol=1e-5, err_msg=v.path)
    names = [v.path for v, g in zip(variables, grads) if g is not None]
    assert any("aux" in n for n in names) and any("posterior_out" in n for n in names)


def test_kl_schedule_is_the_papers_ramp(tf, net):
    from avrnn_tf import objectives

    x = tf.random.stateless_normal([1, 3, 4], seed=[6, 6])
    mask, seed = tf.ones([1, 3]), tf.constant([0, 0])
    weight = lambda step, **options: objectives.elbo(net, x, mask, seed, step, **options)["scalars"]
    for step, expected in ((0, 0.2), (8000, 0.6), (16000, 1.0), (10 ** 6, 1.0)):
        got = weight(tf.constant(step), kl_schedule=(0.2, 5e-5, 1.0))["kl_weight"]
        assert float(got) == pytest.approx(expected, abs=1e-6)
    assert weight(None, kl_schedule=(0.2, 5e-5, 1.0)) == {}  # evaluation: no schedule
    out = objectives.elbo(net, x, mask, seed, tf.constant(12345), kl_weight=0.7)
    np.testing.assert_allclose(out["objective"].numpy(), (out["per_frame"]["log_px"] - 0.7 * out[
        "per_frame"]["kl"]).numpy(), rtol=1e-5)


def test_objective_adds_beta_times_aux(tf, net):
    from avrnn_tf import objectives

    x = tf.random.stateless_normal([2, 5, 4], seed=[5, 5])
    mask = tf.ones([2, 5])
    seed = tf.constant([0, 0])
    b0 = objectives.elbo(net, x, mask, seed, None, kl_weight=0.3, aux_weight=0.0)
    b1 = objectives.elbo(net, x, mask, seed, None, kl_weight=0.3, aux_weight=2.0)
    f0, f1 = b0["per_frame"], b1["per_frame"]
    np.testing.assert_allclose(b0["objective"].numpy(), (f0["log_px"] - 0.3 * f0["kl"]).numpy(), rtol=1e-5)
    np.testing.assert_allclose((b1["objective"] - b0["objective"]).numpy(), 2.0 * f0["aux"].numpy(),
                               rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(f1["elbo"].numpy(), f0["elbo"].numpy())  # the bound is untouched
