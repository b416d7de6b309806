"""Tests of the A-VRNN critic, its losses and the three-phase trainer (avrnn_tf.adversarial,
training.AVRNNTrainer), against the paper's Algorithms 1-2 and the signs of ../shared/docs/DESIGN.md section 4."""

import importlib.util
import math
import os

import numpy as np
import pytest

from conftest import PROJECT_ROOT

X_DIM = 12


def load_config(arg):
    spec = importlib.util.spec_from_file_location("avrnn_config", os.path.join(PROJECT_ROOT, "configs", "avrnn.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def make_trainer(arg="tiny", **overrides):
    """A built A-VRNN trainer (loop.build_trainer) on frames of size X_DIM."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf import registry

    config = load_config(arg)
    for key, value in overrides.items():
        group, field = key.split("__")
        config[group][field] = value
    config_lib.validate(config)
    network = registry.create_network(config_lib.model_spec(config, X_DIM))
    return loop.build_trainer(config, network), config


def batch(tf, seed=0, b=4, t=7, lengths=None):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal([b, t, X_DIM]).astype(np.float32)
    mask = np.ones([b, t], np.float32)
    for i, n in enumerate(lengths or []):
        mask[i, n:] = 0.0
    return tf.constant(x), tf.constant(mask)


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


def same(before, variables):
    return all(np.array_equal(a, v.numpy()) for a, v in zip(before, variables))


def seed_of(tf, k):
    return tf.constant([k, 0], tf.int32)


# --------------------------------------------------------------------------- pure losses

def test_wgan_losses_have_the_fixed_signs(tf):
    from avrnn_tf import adversarial as adv

    d_prior = tf.constant([3.0, 5.0])   # mean 4
    d_post = tf.constant([1.0, 0.0])    # mean 0.5
    assert float(adv.critic_loss(d_prior, d_post)) == pytest.approx(0.5 - 4.0)
    assert float(adv.wasserstein_estimate(d_prior, d_post)) == pytest.approx(3.5)
    assert float(adv.adversarial_loss(d_prior, d_post)) == pytest.approx(
        -float(adv.critic_loss(d_prior, d_post)))


def test_gan_losses_are_binary_cross_entropies(tf):
    from avrnn_tf import adversarial as adv

    lp = tf.constant([0.3, -1.2, 2.0])
    lq = tf.constant([-0.7, 0.4, 1.5])
    bce = lambda labels, logits: float(tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)))
    ones, zeros = tf.ones(3), tf.zeros(3)
    assert float(adv.gan_critic_loss(lp, lq)) == pytest.approx(bce(ones, lp) + bce(zeros, lq), rel=1e-6)
    assert float(adv.gan_adversarial_loss(lp, lq)) == pytest.approx(bce(zeros, lp) + bce(ones, lq), rel=1e-6)


def test_gradient_penalty_of_a_linear_critic(tf):
    """D(z) = <w, z> has gradient w everywhere: the penalty is (||w|| - 1)^2 exactly."""
    from avrnn_tf import adversarial as adv

    w = tf.constant(np.full([5, 3], 2.0 / math.sqrt(15.0), np.float32))  # ||w|| = 2
    critic = lambda z, mask: tf.reduce_sum(w * z, axis=[1, 2])
    z1, z2 = (tf.constant(np.random.default_rng(k).normal(size=[4, 5, 3]), tf.float32) for k in (1, 2))
    gp = adv.gradient_penalty(critic, z1, z2, tf.ones([4, 5]), seed_of(tf, 1))
    assert float(gp) == pytest.approx(1.0, rel=1e-5)


def test_interpolates_lie_between_the_pairs(tf):
    from avrnn_tf import adversarial as adv

    z1, z2 = tf.zeros([6, 4, 2]), tf.ones([6, 4, 2])
    z = adv.interpolate(z1, z2, seed_of(tf, 3)).numpy()
    assert np.all((z >= 0) & (z <= 1))
    assert np.all(z == z[:, :1, :1])        # One mixing weight per sequence.
    assert len(np.unique(z[:, 0, 0])) == 6


def test_critic_ignores_masked_frames(tf):
    from avrnn_tf import adversarial as adv

    critic = adv.Critic(8, 6, 2)
    critic.build_for(3)
    z = np.random.default_rng(0).standard_normal([2, 6, 3]).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], np.float32)
    changed = z.copy()
    changed[0, 4:] += 100.0
    d0, d1 = critic(tf.constant(z), tf.constant(mask)), critic(tf.constant(changed), tf.constant(mask))
    assert np.array_equal(d0.numpy()[0], d1.numpy()[0])
    changed[0, 2] += 1.0  # A valid frame does change the score.
    assert critic(tf.constant(changed), tf.constant(mask)).numpy()[0] != d0.numpy()[0]
    assert d0.shape == (2,)


# ----------------------------------------------------------------------- variable sets

def test_variable_sets_are_the_papers(tf):
    trainer, _ = make_trainer()
    net = trainer.network
    groups = net.parameter_groups()
    ids = {name: {id(v) for v in vs} for name, vs in groups.items()}
    every = [id(v) for v in net.trainable_variables]
    assert sorted(every) == sorted(i for s in ids.values() for i in s)  # A partition...
    assert sum(len(s) for s in ids.values()) == len(every)               # ...without overlap.
    assert all(ids[k] for k in ids)
    recon = {id(v) for v in trainer.recon_variables}
    adv = {id(v) for v in trainer.adversarial_variables}
    critic = {id(v) for v in trainer.critic.trainable_variables}
    assert recon == ids["rnn"] | ids["features"] | ids["emission"] | ids["posterior"]
    assert not recon & ids["prior"] and not recon & critic
    assert adv == ids["prior"] | ids["posterior"] | {id(net.cell.recurrent_kernel)}
    assert not adv & (ids["emission"] | ids["features"] | critic)
    assert not critic & set(every)


def test_hybrid_reconstruction_phase_trains_the_prior(tf):
    trainer, _ = make_trainer("tiny,hybrid")
    prior = {id(v) for v in trainer.network.prior_net.trainable_variables}
    assert prior <= {id(v) for v in trainer.recon_variables}


# ------------------------------------------------------------------------------ phases

def test_critic_weights_within_clip_after_every_critic_step(tf):
    trainer, config = make_trainer(adversarial__n_critic=3)
    c = config.adversarial.clip_value
    variables = trainer.critic.trainable_variables
    max_abs = lambda: max(float(np.max(np.abs(v.numpy()))) for v in variables)
    assert max_abs() > c  # Initial weights exceed c, so the check below is not vacuous.
    x, mask = batch(tf, lengths=[7, 5, 3, 7])
    critic_step = tf.function(trainer.critic_step)
    for k in range(3):
        critic_step(x, mask, seed_of(tf, k))
        assert max_abs() <= c
    xs, masks = tf.stack([x] * 5), tf.stack([mask] * 5)
    step = tf.function(trainer.train_step)
    for _ in range(2):
        logs = step((xs, masks))
        assert max_abs() <= c
        assert float(logs["critic_weight_max_abs"]) <= c
    assert int(trainer.critic_optimizer.iterations) == 3 + 2 * 3


def test_reconstruction_phase_leaves_prior_and_critic_unchanged(tf):
    trainer, _ = make_trainer()
    net = trainer.network
    frozen = net.prior_net.trainable_variables + trainer.critic.trainable_variables
    before, moving = snapshot(frozen), snapshot(trainer.recon_variables)
    x, mask = batch(tf)
    trainer.reconstruction_step(x, mask, seed_of(tf, 0))
    assert same(before, frozen)
    changed = [not np.array_equal(a, v.numpy()) for a, v in zip(moving, trainer.recon_variables)]
    assert all(changed)  # Every variable of the phase moved (RNN, encoders, emission, posterior).


def test_adversarial_phase_moves_only_prior_and_posterior(tf):
    trainer, _ = make_trainer()  # Fresh critic: not yet clipped, so its gradients are sizeable.
    net = trainer.network
    groups = net.parameter_groups()
    four_h = 4 * net.cell.h_dim
    kernel = net.cell.recurrent_kernel
    frozen = (groups["emission"] + groups["features"] + trainer.critic.trainable_variables
              + [v for v in groups["rnn"] if v is not kernel])
    before = snapshot(frozen)
    kernel_before = np.array(kernel.numpy())
    prior_before, post_before = snapshot(groups["prior"]), snapshot(groups["posterior"])
    x, mask = batch(tf, lengths=[7, 6, 2, 7])
    trainer.adversarial_step(x, mask, seed_of(tf, 5))
    assert same(before, frozen)
    assert np.array_equal(kernel_before[:, :four_h], kernel.numpy()[:, :four_h])  # LSTM columns.
    assert not np.array_equal(kernel_before[:, four_h:], kernel.numpy()[:, four_h:])  # PS columns.
    assert not same(prior_before, groups["prior"])
    assert not same(post_before, groups["posterior"])


def test_critic_phase_leaves_the_network_unchanged(tf):
    trainer, _ = make_trainer()
    before = snapshot(trainer.network.trainable_variables)
    critic_before = snapshot(trainer.critic.trainable_variables)
    x, mask = batch(tf)
    trainer.critic_step(x, mask, seed_of(tf, 2))
    assert same(before, trainer.network.trainable_variables)
    assert not same(critic_before, trainer.critic.trainable_variables)


def test_hybrid_without_adversarial_phases_is_the_elbo_step(tf):
    """kl_weight 1 and the critic/adversarial phases off: the step is ELBOTrainer's, exactly."""
    import keras
    from avrnn_tf import config as config_lib
    from avrnn_tf import registry
    from avrnn_tf import training

    trainer, config = make_trainer("tiny,hybrid", adversarial__regularize=False)
    twin = registry.create_network(config_lib.model_spec(config, X_DIM))
    for a, b in zip(twin.weights, trainer.network.weights):
        a.assign(b)
    elbo = training.ELBOTrainer(twin, seed=config.train.seed, clip_norm=config.train.clip_norm,
                                kl_weight=1.0)
    elbo.compile(optimizer=keras.optimizers.RMSprop(config.train.learning_rate))
    elbo.optimizer.build(twin.trainable_variables)
    data = batch(tf, lengths=[7, 4, 7, 1])
    for _ in range(3):
        a, b = trainer.train_step(data), elbo.train_step(data)
    for v, w in zip(trainer.network.trainable_variables, twin.trainable_variables):
        np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-6, atol=1e-7)
    assert float(a["elbo_per_frame"]) == pytest.approx(float(b["elbo_per_frame"]), rel=1e-6)
    assert "critic_loss" not in a


def test_w_hat_is_zero_for_identical_prior_and_posterior_and_grows_apart(tf):
    """q = p exactly (residual posterior with zero offset, h independent of z): the trained
    critic's W_hat on fresh samples is within noise of 0; shifting q's mean makes it positive."""
    trainer, _ = make_trainer("tiny,gp", model__residual_posterior=True,
                              adversarial__critic_learning_rate=3e-3)
    net = trainer.network
    net.cell.z_kernel.assign(tf.zeros_like(net.cell.z_kernel))          # h_t does not see z_t
    for v in net.cell.posterior_out.trainable_variables:
        v.assign(tf.zeros_like(v))                                      # delta = 0, raw scale 0
    out = net.prior_net.out
    z = net.z_dim
    out.kernel.assign(tf.concat([out.kernel[:, :z], tf.zeros_like(out.kernel[:, z:])], axis=1))
    out.bias.assign(tf.zeros_like(out.bias))                            # prior raw scale 0
    x, mask = batch(tf, b=64, t=6, seed=1)

    critic_step = tf.function(trainer.critic_step)

    def estimate(steps):
        for k in range(steps):
            critic_step(x, mask, seed_of(tf, 100 + k))
        z_p, z_q = trainer.latent_pairs(x, seed_of(tf, 999))
        d_p, d_q = trainer.critic(z_p, mask).numpy(), trainer.critic(z_q, mask).numpy()
        w = d_p.mean() - d_q.mean()
        se = math.sqrt(d_p.var() / len(d_p) + d_q.var() / len(d_q))
        return w, se

    w0, se0 = estimate(30)
    assert abs(w0) < 4 * se0
    bias = net.cell.posterior_out.bias
    bias.assign(tf.concat([tf.ones([z]) * 1.5, tf.zeros([z])], axis=0))  # q's mean moved by 1.5
    w1, se1 = estimate(30)
    assert w1 > 4 * se1 and w1 > 5 * abs(w0)


# --------------------------------------------------------------------------- the step loop

def test_step_counter_and_data_phases(tf):
    """One train_step = one global step; separate batches give each phase its own batch."""
    from avrnn_tf import loop

    trainer, config = make_trainer(adversarial__n_critic=2)
    assert trainer.num_batches_per_step == 4
    x = np.random.default_rng(0).standard_normal([40, 5, X_DIM]).astype(np.float32)
    mask = np.ones([40, 5], np.float32)
    ds = loop.train_dataset(config, trainer, x, mask, 0)
    xs, _ = next(iter(ds))
    assert xs.shape == (4, config.data.batch_size, 5, X_DIM)
    assert len({xs[p].numpy().tobytes() for p in range(4)}) == 4
    trainer.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)
    assert int(trainer.optimizer.iterations) == 3
    assert int(trainer.critic_optimizer.iterations) == 6
    assert int(trainer.adversarial_optimizer.iterations) == 3
    resumed = next(iter(loop.train_dataset(config, trainer, x, mask, 2)))[0]
    assert np.array_equal(resumed.numpy(), list(ds.skip(2).take(1))[0][0].numpy())


def test_checkpoint_restores_every_optimizer_and_the_critic(tf, tmp_path):
    trainer, config = make_trainer()
    x = np.random.default_rng(0).standard_normal([40, 5, X_DIM]).astype(np.float32)
    from avrnn_tf import loop

    trainer.fit(loop.train_dataset(config, trainer, x, np.ones([40, 5], np.float32), 0),
                steps_per_epoch=2, epochs=1, verbose=0)
    ckpt = tf.train.Checkpoint(model=trainer, optimizer=trainer.optimizer)
    path = ckpt.save(str(tmp_path / "ckpt"))
    fresh, _ = make_trainer(train__seed=5)
    tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(path).assert_existing_objects_matched()

    def state(t):
        return [v.numpy() for v in (t.network.weights + t.critic.weights + t.optimizer.variables
                                    + t.critic_optimizer.variables + t.adversarial_optimizer.variables)]

    a, b = state(trainer), state(fresh)
    assert len(a) == len(b)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert int(fresh.critic_optimizer.iterations) == 2 and int(fresh.adversarial_optimizer.iterations) == 2


@pytest.mark.parametrize("variant, extra", [("gp", "gradient_penalty"), ("gan", None),
                                            ("shared", None)])
def test_variants_run_with_finite_metrics(tf, variant, extra):
    from avrnn_tf import loop

    trainer, config = make_trainer(f"tiny,{variant}")
    x = np.random.default_rng(0).standard_normal([30, 5, X_DIM]).astype(np.float32)
    mask = np.ones([30, 5], np.float32)
    mask[::3, 3:] = 0.0
    history = trainer.fit(loop.train_dataset(config, trainer, x, mask, 0), steps_per_epoch=2,
                          epochs=1, verbose=0).history
    for name in ("critic_loss", "adversarial_loss", "wasserstein_estimate", "elbo_per_frame",
                 "grad_norm_critic", "grad_norm_adversarial") + ((extra,) if extra else ()):
        assert np.isfinite(history[name][-1]), name
    assert history["grad_norm_critic"][-1] > 0 and history["grad_norm_adversarial"][-1] > 0
    if variant == "gp":
        assert max(abs(float(np.max(np.abs(v.numpy())))) for v in trainer.critic.weights) > \
            config.adversarial.clip_value  # No clipping with the penalty.


# ------------------------------------------------------------------------------- config

def test_config_errors_name_the_field(tf):
    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf import registry

    config = load_config("tiny")
    config.adversarial.critic = "wgan2"
    config.adversarial.n_critic = 0
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.validate(config)
    assert "config.adversarial.critic = 'wgan2'" in str(err.value)
    assert "config.adversarial.n_critic = 0" in str(err.value)
    config = load_config("tiny")
    config.model.kind = "rnn"
    network = registry.create_network(config_lib.model_spec(config, X_DIM))
    with pytest.raises(config_lib.ConfigError, match="config.model.kind = 'rnn'"):
        loop.build_trainer(config, network)


@pytest.mark.parametrize("field,value", [("kl_anneal", True), ("aux_weight", 1.0),
                                         ("kl_weight", 0.5)])
def test_avrnn_refuses_train_settings_it_would_ignore(field, value):
    """kl_anneal and aux_weight used to be dropped silently with train.algorithm = avrnn."""
    from avrnn_tf import config as config_lib

    config = load_config("tiny")
    config.train[field] = value
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.validate(config)
    lines = [line for line in str(err.value).splitlines() if field in line]
    assert len(lines) == 1 and "not used by train.algorithm 'avrnn'" in lines[0]


def test_avrnn_on_zforcing_is_refused_in_one_line(tf):
    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf import registry

    config = load_config("tiny")
    config.model.kind = "zforcing"
    network = registry.create_network(config_lib.model_spec(config, X_DIM))
    with pytest.raises(config_lib.ConfigError) as err:
        loop.build_trainer(config, network)
    assert "auxiliary" in str(err.value) and len(str(err.value).splitlines()) == 1


def test_a_nan_batch_skips_every_phase(tf):
    trainer, _ = make_trainer(adversarial__n_critic=2)
    x, mask = batch(tf, lengths=[7, 5, 3, 7])
    step = tf.function(trainer.train_step)
    step((tf.stack([x] * 4), tf.stack([mask] * 4)))  # builds every optimizer's slots
    state = lambda: [v.numpy().copy() for v in trainer.network.variables + trainer.critic.variables
                     + trainer.optimizer.variables + trainer.critic_optimizer.variables
                     + trainer.adversarial_optimizer.variables if "iteration" not in v.path]
    before = state()
    logs = step((tf.fill([4] + x.shape.as_list(), float("nan")), tf.stack([mask] * 4)))
    assert int(logs["nonfinite_steps"]) == 1 and int(logs["nonfinite_streak"]) == 1
    for a, b in zip(before, state()):
        np.testing.assert_array_equal(a, b)
    assert int(trainer.optimizer.iterations) == 2  # the step counter still moves on
    logs = step((tf.stack([x] * 4), tf.stack([mask] * 4)))
    assert int(logs["nonfinite_streak"]) == 0
