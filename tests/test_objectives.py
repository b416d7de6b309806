"""Training objectives IWAE-K and FIVO-K (objectives.py) against the estimators of bounds.py and
the ELBO objective: K = 1 reduces to the ELBO with the sampled KL (value and gradient), K > 1 equals
bounds.iwae / bounds.fivo on the same noise, the hoisted fast gradient stays exact, latent-free
models train the exact likelihood, and the config refuses what an objective does not use."""

import numpy as np
import pytest

from test_bounds import batch, make_network

LATENT_KINDS = ["storn", "vrnn", "zforcing"]


@pytest.fixture(scope="module")
def lib(tf):
    import functools

    from avrnn_tf import bounds, models, objectives, rng

    return dict(bounds=bounds, models=models, objectives=objectives, rng=rng,
                partial=functools.partial)


def value_and_gradient(tf, net, fn, compiled=False):
    def run():
        with tf.GradientTape() as tape:
            value = fn()
            total = tf.reduce_sum(value)
        return value, tape.gradient(total, net.trainable_variables)

    return (tf.function(run) if compiled else run)()


def assert_gradients_close(net, a, b, rtol=1e-4):
    checked = 0
    for v, ga, gb in zip(net.trainable_variables, a, b):
        if ga is None or gb is None:  # Not connected: the other must be absent or zero.
            assert ga is gb or not np.any((ga if gb is None else gb).numpy()), v.path
            continue
        scale = float(np.abs(ga.numpy()).max()) + 1e-6
        np.testing.assert_allclose(gb.numpy(), ga.numpy(), rtol=rtol, atol=rtol * scale,
                                   err_msg=v.path)
        checked += scale > 1e-5
    assert checked > 5


@pytest.mark.parametrize("kind", LATENT_KINDS)
@pytest.mark.parametrize("name", ["iwae", "fivo"])
def test_one_particle_is_the_elbo_objective_with_a_sampled_kl(tf, lib, kind, name):
    objectives, bounds = lib["objectives"], lib["bounds"]
    net = make_network(lib["models"], kind)
    x, mask = batch(tf)
    seed = tf.constant([4, 9], tf.int32)
    one = lib["partial"](objectives.OBJECTIVES[name], num_particles=1)
    elbo_out = objectives.elbo(net, x, mask, seed, None)
    out = one(net, x, mask, seed, None)
    # The reported ELBO is the ELBO objective's, bit for bit (particle 0 = the ELBO's noise).
    for key in ("elbo", "log_px", "kl"):
        np.testing.assert_allclose(out["per_frame"][key].numpy(),
                                   elbo_out["per_frame"][key].numpy(), rtol=1e-6, atol=1e-5)

    def sampled_kl_elbo():  # The same noise, log p(x|z) + log p(z) - log q(z) summed over frames.
        from avrnn_tf import replicas

        terms = net.frame_terms(x, replicas.normal(net.noise_shape(x), seed), mask=mask)
        per_frame = terms["log_px"] + terms["log_pz"] - terms["log_qz"]
        return tf.reduce_sum(bounds.masked(per_frame, mask), axis=1)

    want, g_want = value_and_gradient(tf, net, sampled_kl_elbo)
    got, g_got = value_and_gradient(tf, net, lambda: one(net, x, mask, seed, None)["objective"])
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-3)
    assert_gradients_close(net, g_want, g_got)
    # The sampled KL is not the analytic one: the comparison above could tell them apart.
    assert np.abs(want.numpy() - elbo_out["objective"].numpy()).max() > 1e-3


@pytest.mark.parametrize("kind", LATENT_KINDS)
def test_k_particles_equal_the_bounds_on_the_same_noise(tf, lib, kind):
    objectives, bounds = lib["objectives"], lib["bounds"]
    net = make_network(lib["models"], kind)
    x, mask = batch(tf)
    seed = tf.constant([1, 2], tf.int32)
    k = 4
    noise = objectives.particle_noise(net, x, k, seed)
    terms = net.frame_terms(bounds.tile_batch(x, k), noise, mask=bounds.tile_batch(mask, k))
    want_iwae = bounds.iwae(terms, mask, k)["iwae"]
    want_fivo = bounds.fivo(net, x, mask, noise, k, lib["rng"].fold_in(seed, objectives.RESAMPLE_FOLD))
    iwae = objectives.iwae(net, x, mask, seed, tf.constant(3), num_particles=k)
    fivo = objectives.fivo(net, x, mask, seed, tf.constant(3), num_particles=k)
    np.testing.assert_allclose(iwae["objective"].numpy(), want_iwae.numpy(), rtol=1e-6)
    np.testing.assert_allclose(fivo["objective"].numpy(), want_fivo["fivo"].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(fivo["per_sequence"]["resamples"].numpy(),
                                  want_fivo["num_resamples"].numpy())
    # K particles are K different trajectories: IWAE-4 is not IWAE-1.
    one = objectives.iwae(net, x, mask, seed, None, num_particles=1)["objective"].numpy()
    assert np.abs(iwae["objective"].numpy() - one).max() > 1e-3
    # Particle 0's noise is the ELBO objective's noise at the same seed.
    from avrnn_tf import replicas

    np.testing.assert_array_equal(noise[:3].numpy(), replicas.normal(net.noise_shape(x), seed).numpy())


def test_fivo_resamples_with_many_particles(tf, lib):
    objectives = lib["objectives"]
    net = make_network(lib["models"], "vrnn")
    x, mask = batch(tf, t=30)
    mask = tf.ones_like(mask)
    out = objectives.fivo(net, x * 3.0, mask, tf.constant([0, 1]), None, num_particles=8)
    assert float(tf.reduce_sum(out["per_sequence"]["resamples"])) > 0


@pytest.mark.parametrize("name", ["iwae", "fivo"])
@pytest.mark.parametrize("kind", ["vrnn", "zforcing"])
def test_hoisted_gradient_of_the_particle_objectives_is_exact(tf, lib, name, kind):
    """Eager autodiff through the loop (plain path) vs tf.function (hoisted weight gradients)."""
    objectives = lib["objectives"]
    net = make_network(lib["models"], kind)
    x, mask = batch(tf)
    seed = tf.constant([2, 5], tf.int32)
    fn = lambda: objectives.OBJECTIVES[name](net, x, mask, seed, None, num_particles=3,
                                             aux_weight=0.5)["objective"]
    assert net.hoist_weight_gradients
    plain_value, plain = value_and_gradient(tf, net, fn)
    hoisted_value, hoisted = value_and_gradient(tf, net, fn, compiled=True)
    np.testing.assert_allclose(hoisted_value.numpy(), plain_value.numpy(), rtol=1e-5)
    assert_gradients_close(net, plain, hoisted)


@pytest.mark.parametrize("name", ["iwae", "fivo"])
def test_latent_free_models_train_the_exact_likelihood(tf, lib, name):
    objectives = lib["objectives"]
    net = make_network(lib["models"], "rnn")
    x, mask = batch(tf)
    seed = tf.constant([0, 3], tf.int32)
    exact = objectives.elbo(net, x, mask, seed, None)["objective"].numpy()
    out = objectives.OBJECTIVES[name](net, x, mask, seed, None, num_particles=5)
    np.testing.assert_allclose(out["objective"].numpy(), exact, rtol=1e-6)
    np.testing.assert_allclose(out["per_frame"][name].numpy(), exact, rtol=1e-6)


@pytest.mark.parametrize("name", ["iwae", "fivo"])
def test_metric_names_report_the_bound_beside_the_elbo(tf, lib, name):
    from avrnn_tf import config as config_lib

    config = config_lib.base_config()
    config.train.update(objective=name, num_particles=2)
    objective = lib["objectives"].from_config(config_lib.validate(config))
    names = lib["objectives"].metric_names(objective, make_network(lib["models"], "vrnn"))
    assert {f"{name}_per_frame", "elbo_per_frame", "kl_per_frame"} <= set(names)


@pytest.mark.parametrize("fields,message", [
    (dict(algorithm="avrnn", objective="iwae", kl_weight=1.0),
     r"^config\.train\.objective = 'iwae': train\.algorithm 'avrnn' trains the ELBO only"),
    (dict(objective="elbo", num_particles=4), r"^config\.train\.num_particles = 4: used only by"),
    (dict(objective="fivo", kl_anneal=True), r"^config\.train\.kl_anneal = True: the KL options"),
    (dict(objective="iwae", free_bits=0.5), r"^config\.train\.free_bits = 0\.5: the KL options"),
    (dict(lr_decay_on_plateau=1.0), r"^config\.train\.lr_decay_on_plateau = 1\.0: expected"),
])
def test_the_config_refuses_options_an_objective_does_not_use(fields, message):
    from avrnn_tf import config as config_lib

    config = config_lib.base_config()
    config.train.update(**fields)
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.validate(config)


# ---------------------------------------------------------------- a tiny run on JSB, killed
JSB = "configs/vrnn_gauss.py:tiny,jsb"


@pytest.mark.parametrize("name", ["fivo", "iwae"])
def test_a_tiny_particle_run_on_jsb_resumes_exactly_after_a_kill_and_evaluates(tf, tmp_path, name):
    import json
    import signal
    import subprocess
    import sys

    from conftest import PROJECT_ROOT, checkpoint_tensors, run_cli
    from test_reliability import wait_for_checkpoint

    args = [f"--config={JSB}", "--progress=none", f"--config.train.objective={name}",
            "--config.train.num_particles=4", "--config.train.deterministic=True",
            "--config.train.steps=8", "--config.train.checkpoint_every=2",
            "--config.train.eval_every=4", "--config.data.max_valid_utterances=8"]
    reference = tmp_path / "reference"
    done = run_cli("avrnn_tf.train", f"--workdir={reference}", *args)
    assert done.returncode == 0, done.stderr
    assert f"valid {name}_per_frame" in done.stdout and "valid elbo_per_frame" in done.stdout

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "avrnn_tf.train", f"--workdir={killed}", *args],
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for_checkpoint(killed)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    resumed = run_cli("avrnn_tf.train", f"--workdir={killed}", *args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    want = checkpoint_tensors(str(reference / "checkpoints" / "ckpt-8"))
    got = checkpoint_tensors(str(killed / "checkpoints" / "ckpt-8"))
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)

    from avrnn_tf import evaluate  # What avrnn-eval runs and prints.

    result = evaluate.evaluate_workdir(str(killed), ("elbo", "fivo"), 4, "test", max_sequences=4,
                                       output=str(tmp_path / "eval.json"))
    assert f"the best checkpoint: the highest validation {name}_per_frame" in \
        evaluate.format_result(result)
    result = json.load(open(tmp_path / "eval.json"))
    assert all(np.isfinite(b["per_frame"]) for b in result["bounds"].values())
