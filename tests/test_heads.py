"""Distribution heads against closed forms computed independently with numpy."""

import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def mods(tf):
    from avrnn_tf import heads
    import tensorflow_probability as tfp

    return heads, tfp.distributions


def softplus(v):
    return np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0)


def test_normal_head_log_prob_matches_closed_form(tf, mods):
    heads, _ = mods
    rng = np.random.default_rng(0)
    d = 5
    params = rng.normal(size=[3, 4, 2 * d]).astype(np.float32)
    x = rng.normal(size=[3, 4, d]).astype(np.float32)
    head = heads.NormalHead(d, scale_floor=1e-3)
    got = head.new(tf.constant(params)).log_prob(x).numpy()
    loc, raw = params[..., :d], params[..., d:]
    scale = softplus(raw.astype(np.float64)) + 1e-3
    want = np.sum(-0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi), -1)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(heads.normal_log_prob(x, loc, scale.astype(np.float32)).numpy(),
                               want, rtol=1e-5, atol=1e-4)


def test_scale_floor_bounds_the_density(tf, mods):
    heads, _ = mods
    head = heads.NormalHead(1, scale_floor=1e-2)
    params = tf.constant([[0.0, -1e4]])  # softplus(-1e4) == 0: the scale is exactly the floor.
    _, scale = head.loc_scale(params)
    assert scale.numpy()[0, 0] == pytest.approx(1e-2)
    assert np.isfinite(head.new(params).log_prob([[0.0]]).numpy()).all()


def test_gmm_head_is_logsumexp_of_weighted_components(tf, mods):
    heads, _ = mods
    rng = np.random.default_rng(1)
    k, d = 4, 3
    head = heads.GMMHead(d, num_components=k, scale_floor=1e-4)
    assert head.params_size == k * (1 + 2 * d)
    params = rng.normal(size=[6, head.params_size]).astype(np.float32)
    x = rng.normal(size=[6, d]).astype(np.float32) * 3
    got = head.new(tf.constant(params)).log_prob(x).numpy()

    logits = params[:, :k].astype(np.float64)
    loc = params[:, k:k + k * d].reshape(6, k, d)
    scale = softplus(params[:, k + k * d:].reshape(6, k, d).astype(np.float64)) + 1e-4
    log_w = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
    comp = np.sum(-0.5 * ((x[:, None] - loc) / scale) ** 2 - np.log(scale)
                  - 0.5 * math.log(2 * math.pi), -1)
    a = log_w + comp
    want = a.max(-1) + np.log(np.sum(np.exp(a - a.max(-1, keepdims=True)), -1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_gmm_stays_finite_far_from_every_component(tf, mods):
    heads, _ = mods
    head = heads.GMMHead(2, num_components=3)
    params = tf.zeros([1, head.params_size])
    value = head.new(params).log_prob(tf.constant([[300.0, -300.0]])).numpy()
    assert np.isfinite(value).all() and value[0] < -1e4  # exp() would underflow to log(0) = -inf


def test_one_component_gmm_equals_normal(tf, mods):
    heads, _ = mods
    rng = np.random.default_rng(2)
    d = 4
    normal_params = rng.normal(size=[5, 2 * d]).astype(np.float32)
    gmm_params = np.concatenate([np.zeros([5, 1], np.float32), normal_params], -1)
    x = rng.normal(size=[5, d]).astype(np.float32)
    a = heads.NormalHead(d).new(tf.constant(normal_params)).log_prob(x).numpy()
    b = heads.GMMHead(d, 1).new(tf.constant(gmm_params)).log_prob(x).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-5)


def test_bernoulli_head_matches_closed_form(tf, mods):
    heads, _ = mods
    rng = np.random.default_rng(3)
    logits = rng.normal(size=[4, 88]).astype(np.float32) * 3
    x = (rng.uniform(size=[4, 88]) < 0.3).astype(np.float32)
    got = heads.BernoulliHead(88).new(tf.constant(logits)).log_prob(x).numpy()
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    want = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), -1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_normal_kl_matches_tfp_and_vanishes_for_equal_arguments(tf, mods):
    heads, tfd = mods
    rng = np.random.default_rng(4)
    shape = [3, 7, 6]
    mq, mp = rng.normal(size=shape), rng.normal(size=shape)
    sq, sp = np.exp(rng.normal(size=shape) * 0.5), np.exp(rng.normal(size=shape) * 0.5)
    mq, mp, sq, sp = (v.astype(np.float32) for v in (mq, mp, sq, sp))
    got = heads.normal_kl(mq, sq, mp, sp).numpy()
    want = tf.reduce_sum(tfd.kl_divergence(tfd.Normal(mq, sq), tfd.Normal(mp, sp)), -1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.all(got >= 0)
    np.testing.assert_allclose(heads.normal_kl(mq, sq, mq, sq).numpy(), 0.0, atol=1e-6)


def test_unknown_emission_is_named(tf, mods):
    heads, _ = mods
    with pytest.raises(ValueError, match="laplace"):
        heads.make_emission_head("laplace", 3)


def test_tfp_kl_of_heads_matches_numpy_closed_form(tf, mods):
    heads, tfd = mods
    rng = np.random.default_rng(5)
    shape = [2, 3, 4]
    mq, mp = rng.normal(size=shape), rng.normal(size=shape)
    sq, sp = np.exp(rng.normal(size=shape) * 0.5), np.exp(rng.normal(size=shape) * 0.5)
    want = np.sum(np.log(sp / sq) + (sq ** 2 + (mq - mp) ** 2) / (2 * sp ** 2) - 0.5, -1)
    q, p = heads.diagonal_normal(mq, sq), heads.diagonal_normal(mp, sp)
    np.testing.assert_allclose(tfd.kl_divergence(q, p).numpy(), want, rtol=1e-6)
    assert q.event_shape == [4] and q.batch_shape == [2, 3]
