"""Properties of the bounds (bounds.py): IWAE-1 = ELBO, monotonicity in K, FIVO without resampling
= IWAE, exactness where the likelihood is known (latent-free models, a linear-Gaussian model against
its closed form and against a Kalman filter), and masked frames contributing nothing."""

import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def lib(tf):
    from avrnn_tf import bounds, models

    return bounds, models


def make_network(models, kind, emission="gmm", x_dim=5):
    from avrnn_tf import registry

    spec = models.ModelSpec(kind=kind, emission=emission, x_dim=x_dim, h_dim=12, z_dim=3,
                            mlp_units=10, num_mixtures=2)
    return registry.create_network(spec)


def batch(tf, b=3, t=7, d=5, seed=0):
    x = tf.random.stateless_normal([b, t, d], seed=[seed, 1])
    lengths = np.array([t, t - 3, 2][:b])
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
    return x, tf.constant(mask)


def noise_for(tf, net, b, t, k, seed=3):
    return tf.random.stateless_normal([k * b, t, net.z_dim], seed=[seed, 2])


@pytest.mark.parametrize("kind", ["vrnn_i", "vrnn", "zforcing"])
def test_iwae_one_sample_is_the_sampled_kl_elbo(tf, lib, kind):
    bounds, models = lib
    net = make_network(models, kind)
    x, mask = batch(tf)
    noise = noise_for(tf, net, 3, 7, 1)
    terms = net.frame_terms(x, noise, mask=mask)
    sampled_kl = tf.reduce_sum(bounds.masked(terms["log_qz"] - terms["log_pz"], mask), axis=1)
    elbo_sampled = bounds.elbo(terms, mask)["log_px"] - sampled_kl
    iwae1 = bounds.iwae(terms, mask, 1)["iwae"]
    np.testing.assert_allclose(iwae1.numpy(), elbo_sampled.numpy(), rtol=1e-6, atol=1e-5)
    # The step-by-step particle filter with one particle is the same number (never resamples).
    fivo1 = bounds.fivo(net, x, mask, noise, 1, [5, 6])
    np.testing.assert_allclose(fivo1["fivo"].numpy(), elbo_sampled.numpy(), rtol=1e-5, atol=1e-3)
    assert float(tf.reduce_sum(fivo1["num_resamples"])) == 0.0


def test_sampled_kl_averages_to_the_analytic_kl(tf, lib):
    # E_q[log q - log p] = KL(q || p): the per-frame log-densities agree with heads.normal_kl.
    bounds, models = lib
    net = make_network(models, "vrnn")
    x, mask = batch(tf, b=1, t=4)
    k = 4000
    terms = net.frame_terms(bounds.tile_batch(x, k), noise_for(tf, net, 1, 4, k),
                            mask=bounds.tile_batch(mask, k))
    # With the same posterior mean/scale in every replica only z differs; the analytic KL of
    # replica 0 is the exact expectation of log q - log p over the replicas' samples.
    # (The recurrence makes later frames' q and p depend on earlier samples, so compare frame 0.)
    sampled = tf.reduce_mean(terms["log_qz"][:, 0] - terms["log_pz"][:, 0])
    sd = tf.math.reduce_std(terms["log_qz"][:, 0] - terms["log_pz"][:, 0])
    assert abs(float(sampled - terms["kl"][0, 0])) < 4 * float(sd) / math.sqrt(k)


@pytest.mark.parametrize("kind", ["vrnn_i", "vrnn"])
def test_iwae_is_above_the_elbo_and_grows_with_k_on_average(tf, lib, kind):
    bounds, models = lib
    net = make_network(models, kind)
    x, _ = batch(tf, b=1, t=6)
    reps = 64  # The same sequence 64 times: averages over independent noise.
    xr = tf.tile(x, [reps, 1, 1])
    mask = tf.ones([reps, 6])
    means = []
    for k in (1, 4, 16):
        noise = noise_for(tf, net, reps, 6, k, seed=10 + k)
        terms = net.frame_terms(bounds.tile_batch(xr, k), noise, mask=bounds.tile_batch(mask, k))
        means.append(float(tf.reduce_mean(bounds.iwae(terms, mask, k)["iwae"])))
    elbo_noise = noise_for(tf, net, reps, 6, 1, seed=99)
    elbo = float(tf.reduce_mean(bounds.elbo(net.frame_terms(xr, elbo_noise), mask)["elbo"]))
    assert means[0] < means[1] < means[2], means
    assert means[1] > elbo and means[2] > elbo, (means, elbo)


@pytest.mark.parametrize("kind", ["rnn", "vrnn_i", "vrnn", "zforcing"])
def test_fivo_without_resampling_equals_iwae(tf, lib, kind):
    bounds, models = lib
    net = make_network(models, kind, emission="normal")
    x, mask = batch(tf)
    k = 6
    noise = noise_for(tf, net, 3, 7, k)
    terms = net.frame_terms(bounds.tile_batch(x, k), noise, mask=bounds.tile_batch(mask, k))
    iwae = bounds.iwae(terms, mask, k)["iwae"].numpy()
    fivo = bounds.fivo(net, x, mask, noise, k, [1, 1], resample=False)
    np.testing.assert_allclose(fivo["fivo"].numpy(), iwae, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(fivo["num_frames"].numpy(), mask.numpy().sum(axis=1))


@pytest.mark.parametrize("emission", ["normal", "gmm", "bernoulli"])
def test_latent_free_models_every_bound_is_the_exact_likelihood(tf, lib, emission):
    bounds, models = lib
    net = make_network(models, "rnn", emission=emission)
    x, mask = batch(tf)
    if emission == "bernoulli":
        x = tf.cast(x > 0, tf.float32)
    exact = bounds.elbo(net.frame_terms(x, tf.zeros([3, 7, 0])), mask)["elbo"].numpy()
    # The exact log-likelihood by hand: the emission at h_{t-1} from the hoisted LSTM pass.
    out = net.trajectory(x, tf.zeros([3, 7, 0]))
    log_px = net.emission_head.new(out["emission_params"]).log_prob(x).numpy()
    np.testing.assert_allclose(exact, (log_px * mask.numpy()).sum(axis=1), rtol=1e-6)
    k = 5
    noise = tf.zeros([k * 3, 7, 0])
    terms = net.frame_terms(bounds.tile_batch(x, k), noise, mask=bounds.tile_batch(mask, k))
    np.testing.assert_allclose(bounds.iwae(terms, mask, k)["iwae"].numpy(), exact, rtol=1e-5)
    fivo = bounds.fivo(net, x, mask, noise, k, [2, 3])
    np.testing.assert_allclose(fivo["fivo"].numpy(), exact, rtol=1e-5)


def test_padded_frames_contribute_nothing(tf, lib):
    bounds, models = lib
    net = make_network(models, "vrnn")
    x, mask = batch(tf, b=1, t=7)
    k = 4
    noise = noise_for(tf, net, 1, 7, k)
    padded_x = tf.concat([x, 1e3 * tf.ones([1, 5, 5])], axis=1)
    padded_mask = tf.concat([mask, tf.zeros([1, 5])], axis=1)
    padded_noise = tf.concat([noise, tf.ones([k, 5, net.z_dim])], axis=1)
    for seed in ([0, 1], [0, 2]):
        a = bounds.fivo(net, x, mask, noise, k, seed)["fivo"]
        b = bounds.fivo(net, padded_x, padded_mask, padded_noise, k, seed)["fivo"]
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
    t1 = net.frame_terms(bounds.tile_batch(x, k), noise)
    t2 = net.frame_terms(bounds.tile_batch(padded_x, k), padded_noise)
    np.testing.assert_allclose(bounds.iwae(t1, mask, k)["iwae"].numpy(),
                               bounds.iwae(t2, padded_mask, k)["iwae"].numpy(), rtol=1e-5)


# ------------------------------------------------------------------ linear-Gaussian state space
class LinearGaussian:
    """z_t = a z_{t-1} + q e_t (z_0 = 0), x_t = z_t + r u_t, scalar; the per-step interface of
    bounds.fivo. proposal "prior" is the bootstrap filter; "optimal" is p(z_t | z_{t-1}, x_t)."""

    def __init__(self, tf, a, q, r, proposal):
        self.tf, self.a, self.q, self.r, self.proposal = tf, a, q, r, proposal

    def step_inputs(self, x, mask=None):
        return x

    def initial_state(self, n):
        return [self.tf.zeros(self.tf.stack([n, 1]))]

    def filter_step(self, state, inputs_t, noise_t, x_t):
        from avrnn_tf.heads import normal_log_prob

        tf = self.tf
        prior_loc, prior_scale = self.a * state[0], self.q * tf.ones_like(state[0])
        if self.proposal == "prior":
            loc, scale = prior_loc, prior_scale
        else:  # Gaussian conditioning of N(prior_loc, q^2) on x_t = z_t + N(0, r^2).
            var = 1.0 / (1.0 / self.q ** 2 + 1.0 / self.r ** 2)
            loc = var * (prior_loc / self.q ** 2 + x_t / self.r ** 2)
            scale = math.sqrt(var) * tf.ones_like(loc)
        z = loc + scale * noise_t
        log_px = normal_log_prob(x_t, z, self.r * tf.ones_like(z))
        return [z], log_px, normal_log_prob(z, prior_loc, prior_scale), normal_log_prob(z, loc, scale)


def kalman_log_likelihood(x, a, q, r):
    """Exact log p(x_{1:T}) of the scalar model above, by the Kalman filter."""
    mean, var, total = 0.0, 0.0, 0.0
    for xt in x:
        mean, var = a * mean, a * a * var + q * q
        s = var + r * r
        total += -0.5 * (math.log(2 * math.pi * s) + (xt - mean) ** 2 / s)
        gain = var / s
        mean, var = mean + gain * (xt - mean), (1 - gain) * var
    return total


def test_exact_when_the_proposal_is_the_posterior(tf, lib):
    # With a = 0 the frames are independent and q(z_t | x_t) is the exact posterior: every
    # importance weight equals p(x_t) exactly, so IWAE and FIVO equal log p for any K and noise.
    bounds, _ = lib
    model = LinearGaussian(tf, 0.0, 1.0, 0.5, "optimal")
    x = tf.random.stateless_normal([2, 6, 1], seed=[4, 4])
    mask = tf.constant([[1.0] * 6, [1.0] * 4 + [0.0] * 2])
    exact = [kalman_log_likelihood(x.numpy()[i, :n, 0], 0.0, 1.0, 0.5) for i, n in enumerate([6, 4])]
    k = 7
    noise = tf.random.stateless_normal([k * 2, 6, 1], seed=[5, 5])
    for resample in (True, False):
        out = bounds.fivo(model, x, mask, noise, k, [0, 0], resample=resample)
        np.testing.assert_allclose(out["fivo"].numpy(), exact, rtol=1e-5)


def test_fivo_matches_the_kalman_filter(tf, lib):
    # Bootstrap particle filter on a random walk: FIVO-K -> log p as K grows (bias O(1/K)), and it
    # must resample; IWAE-K with the same proposal is much further below (weight degeneracy).
    bounds, _ = lib
    a, q, r, t, reps, k = 0.9, 1.0, 0.6, 12, 8, 256
    rng = np.random.default_rng(0)
    z, xs = 0.0, []
    for _ in range(t):
        z = a * z + q * rng.normal()
        xs.append(z + r * rng.normal())
    exact = kalman_log_likelihood(xs, a, q, r)
    model = LinearGaussian(tf, a, q, r, "prior")
    x = tf.tile(tf.constant(xs, tf.float32)[None, :, None], [reps, 1, 1])
    mask = tf.ones([reps, t])
    noise = tf.random.stateless_normal([k * reps, t, 1], seed=[6, 6])
    out = bounds.fivo(model, x, mask, noise, k, [7, 7])
    iwae = bounds.fivo(model, x, mask, noise, k, [7, 7], resample=False)["fivo"]
    fivo = out["fivo"].numpy()
    assert float(tf.reduce_min(out["num_resamples"])) > 0
    assert abs(fivo.mean() - exact) < 0.1, (fivo.mean(), exact)
    assert fivo.mean() > float(tf.reduce_mean(iwae))


# ------------------------------------------------------------------------------------ free bits
def test_free_bits_floor_the_batch_averaged_kl_of_each_dimension(tf, lib):
    """Kingma et al.'s free bits: the objective subtracts N * sum_d max(floor, KL_d), KL_d being
    dimension d's KL per real frame of the batch; the gradient w.r.t. the posterior and prior
    parameters of a dimension below the floor is exactly zero, above it the plain ELBO's. (In the
    objective those [B, T, Z] tensors feed only the KL: the sample z is drawn inside the cell.)"""
    bounds, models = lib
    net = make_network(models, "vrnn")
    x, mask = batch(tf)
    noise = noise_for(tf, net, 3, 7, 1)
    names = ("post_loc", "post_scale", "prior_loc", "prior_scale")
    m = mask.numpy()
    kl_dims = bounds.kl_per_dimension(net.frame_terms(x, noise, mask=mask)).numpy()
    mean_kl = (kl_dims * m[..., None]).sum(axis=(0, 1)) / m.sum()
    order = np.argsort(mean_kl)
    floor = float(mean_kl[order[:2]].mean())  # One dimension below the floor, two above.
    below, above = order[:1], order[1:]
    with tf.GradientTape(persistent=True) as tape:
        terms = net.frame_terms(x, noise, mask=mask)
        params = [terms["trajectory"][n] for n in names]
        plain = bounds.elbo(terms, mask)
        free = bounds.elbo(terms, mask, free_bits=floor)
        plain_total, free_total = tf.reduce_sum(plain["objective"]), tf.reduce_sum(free["objective"])
    np.testing.assert_allclose(kl_dims.sum(-1), terms["kl"].numpy(), rtol=1e-5, atol=1e-6)
    expected = float(tf.reduce_sum(plain["log_px"])) - m.sum() * np.maximum(floor, mean_kl).sum()
    np.testing.assert_allclose(float(free_total), expected, rtol=1e-5)
    for key in ("elbo", "kl", "log_px"):  # What metrics report stays the true value.
        np.testing.assert_array_equal(free[key].numpy(), plain[key].numpy())
    for name, g_free, g_plain in zip(names, tape.gradient(free_total, params),
                                     tape.gradient(plain_total, params)):
        assert np.all(g_free.numpy()[..., below] == 0.0), name
        assert np.any(g_plain.numpy()[..., below] != 0.0), name
        # float32 gradients of two graphs: 2.6e-7 apart at 0.0134 (2e-5 relative) was seen under
        # load; a wrong gradient differs in the leading digits.
        np.testing.assert_allclose(g_free.numpy()[..., above], g_plain.numpy()[..., above],
                                   rtol=1e-4, atol=1e-7, err_msg=name)


def test_free_bits_of_a_split_batch_equal_the_whole_batch(tf, lib):
    # A batch split over replicas: with `batch_sum` adding the other part's sums, every part
    # floors the whole batch's KL_d and its sequences get the whole batch's per-sequence terms.
    bounds, models = lib
    net = make_network(models, "vrnn_i")
    x, mask = batch(tf)
    kl_dims = bounds.kl_per_dimension(net.frame_terms(x, noise_for(tf, net, 3, 7, 1), mask=mask))
    m = mask.numpy()
    mean = lambda rows: (kl_dims.numpy()[rows] * m[rows][..., None]).sum(axis=(0, 1)) / m[rows].sum()
    whole_kl, first_kl = mean(slice(0, 3)), mean(slice(0, 1))
    d = np.argmax(np.abs(whole_kl - first_kl))
    floor = float(whole_kl[d] + first_kl[d]) / 2  # Dimension d is above it in one, below in the other.
    whole = bounds.free_bits_kl(kl_dims, mask, floor).numpy()
    parts = []
    for mine, other in ((slice(0, 1), slice(1, 3)), (slice(1, 3), slice(0, 1))):
        other_sums = np.concatenate([(kl_dims.numpy()[other] * m[other][..., None]).sum(axis=(0, 1)),
                                     [m[other].sum()]]).astype(np.float32)
        parts.append(bounds.free_bits_kl(kl_dims[mine], mask[mine], floor,
                                         batch_sum=lambda v: v + other_sums).numpy())
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-6)
    # Alone, the first sequence's own KL_d would be floored differently.
    assert not np.allclose(bounds.free_bits_kl(kl_dims[:1], mask[:1], floor).numpy(), whole[:1])


def test_free_bits_objective_floors_training_and_not_evaluation(tf, lib):
    """objectives.elbo with train.free_bits: a floor above every dimension's KL makes the trained
    objective log p(x) - N * Z * floor (step given) and reports kl_trained_per_frame; evaluation
    (step None) and the reported ELBO/KL are the plain ones."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import objectives

    bounds, models = lib
    net = make_network(models, "vrnn")
    x, mask = batch(tf)
    c = config_lib.base_config()
    c.train.free_bits = 1e3  # Far above any dimension's KL per frame.
    trained = objectives.from_config(c)
    seed = tf.constant([4, 5], tf.int32)
    out = trained(net, x, mask, seed, tf.constant(3))
    frames = float(tf.reduce_sum(mask))
    np.testing.assert_allclose(float(tf.reduce_sum(out["objective"])),
                               float(tf.reduce_sum(out["per_frame"]["log_px"])) - frames * net.z_dim * 1e3,
                               rtol=1e-5)
    assert "kl_trained" in out["per_frame"]
    assert "kl_trained_per_frame" in objectives.metric_names(trained, net)
    c.train.free_bits = 0.0
    plain = objectives.from_config(c)(net, x, mask, seed, tf.constant(3))
    np.testing.assert_allclose(out["per_frame"]["elbo"].numpy(), plain["per_frame"]["elbo"].numpy())
    held_out = trained(net, x, mask, seed, None)
    np.testing.assert_allclose(held_out["objective"].numpy(), plain["objective"].numpy(), rtol=1e-6)
    assert "kl_trained" not in held_out["per_frame"]
