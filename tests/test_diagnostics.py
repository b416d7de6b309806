"""Diagnostics of latent models (avrnn_tf.diagnostics): the KL split against closed forms, the fresh
critic against exact Wasserstein distances, and that diagnosing never disturbs a run."""

import json
import os
import random

import numpy as np
import pytest

from conftest import load_config_file, read_events, run_cli

Z = 3
N_FRAMES = 20_000
X_DIM = 12


def moment_fit_tolerance(z_dim, n):
    """10x the stated finite-sample error of the moment fit, Z (Z + 3) / (4 N)."""
    return 10 * z_dim * (z_dim + 3) / (4 * n)


def gaussian_kl_1d(m1, v1, m2, v2):
    return 0.5 * (np.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)


# ------------------------------------------------------------------------------- KL split

@pytest.mark.parametrize("s", [0.6, 1e-4])
def test_kl_split_of_the_toy_is_all_information(tf, s):
    """x ~ N(0, 1), q = N(a x, s^2), p = N(0, 1), a^2 + s^2 = 1: the aggregate posterior is exactly
    N(0, 1), so the aggregate KL is 0 and the whole per-frame KL, -log s per dimension, is the
    information term (even when it is 9.2 nats per dimension, at s = 1e-4)."""
    from avrnn_tf import diagnostics

    a = np.sqrt(1 - s ** 2)
    x = np.random.default_rng(1).standard_normal([N_FRAMES, Z])
    stats = diagnostics.LatentStatistics(Z)
    stats.add(a * x, np.full_like(x, s), np.zeros_like(x), np.ones_like(x))
    split = stats.result()["kl_split"]
    exact = -Z * np.log(s)
    assert abs(split["aggregate_kl"]) < moment_fit_tolerance(Z, N_FRAMES)
    # The analytic mean KL has sampling noise ~0.5 a^2 sqrt(2 / N) per dimension.
    assert split["kl_per_frame"] == pytest.approx(exact, abs=0.05)
    assert split["information_term"] == pytest.approx(exact, abs=0.05)
    assert split["mutual_information"] == pytest.approx(exact, abs=0.05)


def test_kl_split_matches_closed_forms_with_a_conditional_prior(tf):
    """q_n = N(a x + b, s^2), p_n = N(c x, r^2), x ~ N(0, 1): both aggregates are Gaussian,
    N(b, a^2 + s^2) and N(0, c^2 + r^2), so every term has a closed form; frames of weight 0
    change nothing."""
    from avrnn_tf import diagnostics

    a, b, s, c, r = 0.8, 0.5, 0.3, 0.4, 0.7
    x = np.random.default_rng(2).standard_normal([N_FRAMES, Z])
    ones = np.ones_like(x)
    stats = diagnostics.LatentStatistics(Z)
    garbage = np.full([7, Z], 50.0)
    weights = np.concatenate([np.ones(N_FRAMES), np.zeros(7)])
    stack = lambda v: np.concatenate([v, garbage])
    stats.add(stack(a * x + b), stack(s * ones), stack(c * x), stack(r * ones), weights)
    result = stats.result()
    split = result["kl_split"]
    aggregate = Z * gaussian_kl_1d(b, a ** 2 + s ** 2, 0.0, c ** 2 + r ** 2)
    mean_kl = Z * (np.log(r / s) + (s ** 2 + (a - c) ** 2 + b ** 2) / (2 * r ** 2) - 0.5)
    assert split["num_frames"] == N_FRAMES
    assert split["aggregate_kl"] == pytest.approx(aggregate, abs=0.03)
    assert split["kl_per_frame"] == pytest.approx(mean_kl, abs=0.03)
    assert split["information_term"] == pytest.approx(mean_kl - aggregate, abs=0.05)
    assert split["information_term"] > 0  # KL is jointly convex.
    # I(n; z) of the Gaussian channel: 0.5 log((a^2 + s^2) / s^2) per dimension.
    assert split["mutual_information"] == pytest.approx(Z * 0.5 * np.log((a ** 2 + s ** 2) / s ** 2),
                                                        abs=0.03)
    dims = result["latent_dims"]
    np.testing.assert_allclose(dims["posterior_scale"], s, rtol=1e-9)
    np.testing.assert_allclose(dims["prior_scale"], r, rtol=1e-9)
    np.testing.assert_allclose(dims["posterior_mean_variance"], a ** 2, rtol=0.05)
    assert result["active_units"] == Z


def test_active_units_count_dimensions_whose_mean_varies(tf):
    from avrnn_tf import diagnostics

    x = np.random.default_rng(3).standard_normal([5000, 4])
    loc = x * np.array([1.0, 0.3, 0.05, 0.0])  # Var(E_q[z_d]) = 1, 0.09, 0.0025, 0
    stats = diagnostics.LatentStatistics(4)
    stats.add(loc, np.ones_like(x), np.zeros_like(x), np.ones_like(x))
    result = stats.result()
    assert result["active_units"] == 2
    np.testing.assert_allclose(result["latent_dims"]["posterior_mean_variance"],
                               [1.0, 0.09, 0.0025, 0.0], rtol=0.1, atol=1e-12)


@pytest.mark.parametrize("config_file", ["storn.py", "vrnn_gauss.py", "zforcing.py"])
def test_statistics_of_a_network_match_its_own_distributions(tf, config_file):
    """On a real network, the KL the diagnostics accumulate from a trajectory equals the masked
    mean of the network's own analytic KL (tfd.kl_divergence) on it; STORN's prior scale is 1."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import diagnostics
    from avrnn_tf import registry

    config = load_config_file(config_file, "tiny")
    network = registry.create_network(config_lib.model_spec(config, X_DIM))
    rng = np.random.default_rng(4)
    x = rng.standard_normal([3, 9, X_DIM]).astype(np.float32)
    mask = np.ones([3, 9], np.float32)
    mask[1, 5:] = mask[2, 2:] = 0.0
    out = diagnostics.latent_pairs(network, x, mask, diagnostics.stream_seed(0, 1))
    dists = network.distributions(out)
    kl = dists["posterior"].kl_divergence(dists["prior"]).numpy()
    stats = diagnostics.LatentStatistics(network.z_dim)
    stats.add(out["post_loc"], out["post_scale"], out["prior_loc"], out["prior_scale"], mask)
    result = stats.result()
    assert result["kl_split"]["num_frames"] == mask.sum()
    assert result["kl_split"]["kl_per_frame"] == pytest.approx((kl * mask).sum() / mask.sum(),
                                                               rel=1e-5)
    if config_file == "storn.py":
        np.testing.assert_allclose(result["latent_dims"]["prior_scale"], 1.0)
    full = diagnostics.Diagnostics(network, critic_steps=0)([(x, mask)], seed=3)
    assert full["fresh_critic"] is None
    assert np.isfinite(list(diagnostics.scalars(full).values())).all()


# --------------------------------------------------------------------------- fresh critic

def shifted_gaussians(tf, shift):
    """draw(x, mask, seed) -> (z_prior ~ N(0, 1), z_post ~ N(shift, 1)), sequences of length 1."""
    def draw(x, mask, seed):
        shape = tf.shape(x)
        seeds = tf.random.experimental.stateless_split(seed, 2)
        return (tf.random.stateless_normal(shape, seed=seeds[0]),
                shift + tf.random.stateless_normal(shape, seed=seeds[1]))
    return draw


@pytest.mark.parametrize("shift", [1.5, 0.0])
def test_fresh_critic_recovers_the_exact_w1_of_shifted_gaussians(tf, shift):
    """W_1(N(0, 1), N(mu, 1)) = |mu| (1-D): a WGAN-GP critic fitted on one sample measures it on
    another (held out), and finds ~0 when the two distributions are the same. The raw W_hat of a
    soft-penalty critic overshoots (its slope exceeds 1); rescaled by its largest gradient norm it
    does not."""
    from avrnn_tf import diagnostics

    fit = (np.zeros([256, 1, 1], np.float32), np.ones([256, 1], np.float32))
    held_out = (np.zeros([1024, 1, 1], np.float32), np.ones([1024, 1], np.float32))
    critic = diagnostics.FreshCritic(shifted_gaussians(tf, shift), 1, (16, 16, 2), seed=5)
    result = critic([fit], [held_out], steps=300, seed=5)
    fresh = result["fresh_critic"]
    assert fresh["num_sequences"] == 1024 and result["training_critic"] is None
    tolerance = 0.15 + 3 * fresh["stderr"]
    assert abs(fresh["wasserstein"] - shift) < tolerance, fresh
    if shift:
        assert fresh["wasserstein_raw"] > fresh["wasserstein"]


# ------------------------------------------------------------- nothing of a run is disturbed


def tiny_avrnn():
    """A tiny A-VRNN trainer (as avrnn-train builds it) and its config."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf import registry

    config = load_config_file("avrnn.py", "tiny")
    config_lib.validate(config)
    network = registry.create_network(config_lib.model_spec(config, X_DIM))
    return loop.build_trainer(config, network), config


def global_random_state():
    from keras.src.random import seed_generator

    generator = seed_generator.global_seed_generator()
    return random.getstate(), np.random.get_state()[1].tolist(), generator.state.numpy().tolist()


def test_diagnostics_change_neither_the_weights_nor_the_random_streams_of_a_run(tf, tmp_path):
    """3 steps of a tiny A-VRNN with `fit`, then the same 3 steps again from the same state with
    the diagnostics run after every step (as a Keras callback, with the run's own critic):
    the same weights, and Python's, numpy's and Keras' global random states untouched."""
    import keras

    from avrnn_tf import diagnostics
    from avrnn_tf import loop

    trainer, config = tiny_avrnn()
    state = (trainer.variables + trainer.optimizer.variables + trainer.critic_optimizer.variables
             + trainer.adversarial_optimizer.variables)
    start = [v.numpy() for v in state]
    rng = np.random.default_rng(0)
    x = rng.standard_normal([24, 10, X_DIM]).astype(np.float32)
    mask = np.ones([24, 10], np.float32)
    mask[::3, 6:] = 0.0
    held_out = [(x[:6], mask[:6]), (x[6:10], mask[6:10])]
    writer = tf.summary.create_file_writer(str(tmp_path))

    def run(callbacks):
        for v, value in zip(state, start):
            v.assign(value)
        trainer.fit(loop.train_dataset(config, trainer, x, mask, 0), steps_per_epoch=3, epochs=1,
                    verbose=0, shuffle=False, callbacks=callbacks)
        return [v.numpy() for v in trainer.network.weights + trainer.critic.weights]

    plain = run([])
    before = global_random_state()
    diagnose = diagnostics.Diagnostics(trainer.network, (8, 8, 1), critic_steps=2)
    unchanged = [before == global_random_state()]

    class Diagnose(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            step = int(trainer.optimizer.iterations.numpy())
            before = global_random_state()
            result = diagnose(held_out, seed=step, training_critic=trainer.critic)
            unchanged.append(before == global_random_state())
            diagnostics.write_summaries(result, writer, step)

    diagnosed = run([Diagnose()])
    assert unchanged == [True] * 4
    assert len(plain) == len(diagnosed)
    for a, b in zip(plain, diagnosed):
        np.testing.assert_array_equal(a, b)
    events = read_events(str(tmp_path))
    for tag in ("kl_per_frame", "aggregate_kl", "information_term", "mutual_information",
                "active_units", "fresh_critic_wasserstein", "training_critic_wasserstein"):
        assert [s for s, _ in events[f"diagnostics/{tag}"]] == [1, 2, 3], tag
    assert "diagnostics/posterior_scale_per_dim" in events


# --------------------------------------------------------------------------- avrnn-eval

@pytest.fixture(scope="module")
def avrnn_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("avrnn"))
    result = run_cli("avrnn_tf.train", "--config=configs/avrnn.py:tiny", f"--workdir={workdir}",
                     "--progress=none", "--config.train.steps=4", "--config.train.eval_every=4",
                     "--config.train.checkpoint_every=4", "--config.train.audio_every=0",
                     "--config.train.num_final_samples=0", "--config.data.synthetic_utterances=80")
    assert result.returncode == 0, result.stderr
    return workdir


def test_eval_diagnostics_writes_the_split_and_both_critics(avrnn_run):
    out = os.path.join(avrnn_run, "diag.json")
    result = run_cli("avrnn_tf.evaluate", f"--workdir={avrnn_run}", "--split=valid", "--diagnostics",
                     "--critic_steps=5", f"--output={out}")
    assert result.returncode == 0, result.stderr
    assert "information term" in result.stdout and "fresh critic W_hat" in result.stdout
    assert "training critic W_hat" in result.stdout
    assert "Traceback" not in result.stderr and "WARNING" not in result.stderr
    with open(out) as f:
        diag = json.load(f)["diagnostics"]
    split = diag["kl_split"]
    assert split["estimator"] == "gaussian_moment_fit"
    assert split["kl_per_frame"] == pytest.approx(split["aggregate_kl"] + split["information_term"])
    assert diag["fresh_critic"]["steps"] == 5 and diag["training_critic"]["type"] == "wgan"
    assert len(diag["latent_dims"]["posterior_scale"]) == diag["z_dim"] == 8
    events = read_events(os.path.join(avrnn_run, "tensorboard"))
    assert [s for s, _ in events["eval/valid/diagnostics/fresh_critic_wasserstein"]] == [4]


def test_eval_diagnostics_refuses_a_model_without_latents(tmp_path):
    config = load_config_file("rnn_gauss.py", "tiny")
    (tmp_path / "config.json").write_text(config.to_json())
    result = run_cli("avrnn_tf.evaluate", f"--workdir={tmp_path}", "--split=valid", "--diagnostics")
    assert result.returncode == 2
    assert "'rnn' has no latent" in result.stderr and "Traceback" not in result.stderr


# ----------------------------------------------------------------- avrnn-reproduce's curves

def test_reproduce_diagnoses_every_checkpoint_once_and_as_eval_does(tf, tmp_path, monkeypatch):
    """avrnn-reproduce draws the KL split and the fresh-critic W at every checkpoint of a run:
    each point must be what diagnose_run gives for that checkpoint alone (same seed), the cache
    must spare a rerun the work, and new settings must not reuse old points."""
    from avrnn_tf import diagnostics, evaluate, restore
    from avrnn_tf.experiments import reproduce_paper

    workdir = str(tmp_path / "run")
    result = run_cli("avrnn_tf.train", "--config=configs/avrnn.py:tiny", f"--workdir={workdir}",
                     "--progress=none", "--config.train.steps=4", "--config.train.eval_every=2",
                     "--config.train.checkpoint_every=2", "--config.train.keep_checkpoints=5",
                     "--config.train.audio_every=0", "--config.train.num_final_samples=0",
                     "--config.data.synthetic_utterances=80")
    assert result.returncode == 0, result.stderr
    points = reproduce_paper.diagnostics_curve(workdir, critic_steps=3, max_sequences=4)
    assert [p["step"] for p in points] == [2, 4]
    for p in points:
        assert p["kl_per_frame"] == pytest.approx(p["aggregate_kl"] + p["information_term"])
        assert np.isfinite(p["fresh_w"]) and np.isfinite(p["training_w"])

    run = restore.load_run(workdir, checkpoint="ckpt-2")
    batches, _ = evaluate.held_out_batches(run.config, run.stats, "valid",
                                           run.config.data.valid_batch_size, 4)
    alone = diagnostics.scalars(diagnostics.diagnose_run(run.config, run.network, batches,
                                                         run.checkpoint, 3, run.config.train.seed))
    assert points[0]["aggregate_kl"] == pytest.approx(alone["aggregate_kl"], rel=1e-5)
    assert points[0]["fresh_w"] == pytest.approx(alone["fresh_critic_wasserstein"], rel=1e-4)
    assert points[0]["training_w"] == pytest.approx(alone["training_critic_wasserstein"], rel=1e-4)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a cached checkpoint was diagnosed again")

    monkeypatch.setattr(diagnostics, "diagnose_run", must_not_run)
    assert reproduce_paper.diagnostics_curve(workdir, critic_steps=3, max_sequences=4) == points
    with pytest.raises(AssertionError, match="diagnosed again"):  # Other settings: recomputed.
        reproduce_paper.diagnostics_curve(workdir, critic_steps=4, max_sequences=4)
