"""Best checkpoint by default, early stopping and the plateau learning-rate decay (issue 17.2).

The runs damage their own weights after step DAMAGE_AFTER (a callback adds noise that is a
function of the step), so validation gets worse late: the best checkpoint is an early one, the
latest is worse, and patience runs out. What must happen is computed from the run's own recorded
validation history by a naive reference (`expected`), not copied from its output.
"""

import json
import os

import numpy as np
import pytest

from conftest import checkpoint_tensors, load_config_file, read_events, run_cli

DAMAGE_AFTER = 10
STEPS = 60
EVERY = 5
LR = 1e-3
FIELDS = dict(steps=STEPS, eval_every=EVERY, checkpoint_every=EVERY, log_every=EVERY,
              early_stopping_patience=3, lr_decay_on_plateau=0.5, lr_plateau_patience=1,
              min_learning_rate=3e-4, learning_rate=LR, deterministic=True, audio_every=0,
              num_final_samples=0)


@pytest.fixture(scope="module")
def libs(tf):
    from avrnn_tf import callbacks, loop

    class Damage(callbacks.RunCallback):
        """Adds noise to every network weight at each step after DAMAGE_AFTER (seeded by it)."""

        def on_train_batch_end(self, batch, logs=None):
            step = self.run.step
            if step > DAMAGE_AFTER:
                rng = np.random.default_rng(step)
                for v in self.run.network.trainable_variables:
                    v.assign_add(0.2 * rng.standard_normal(v.shape).astype(np.float32))

    return loop, Damage


def config(steps=STEPS):
    c = load_config_file("vrnn_gauss.py", "tiny")
    c.train.update(**dict(FIELDS, steps=steps))
    return c


def expected(history, patience, decay, decay_patience, min_lr, count_from=0):
    """(step where early stopping ends the run or None, learning rate then, best step) from the
    validation history [(step, value)] (higher is better): the rules written out naively. Rounds
    before `count_from` (the KL weight still annealing) count for nothing but a new best."""
    best, best_step, since_best, since_change, lr = -np.inf, None, 0, 0, LR
    for step, value in history:
        if value > best:
            best, best_step, since_best, since_change = value, step, 0, 0
        elif step >= count_from:
            since_best += 1
            since_change += 1
            if since_change >= decay_patience:
                lr, since_change = max(lr * decay, min_lr), 0
        if since_best >= patience:
            return step, lr, best_step
    return None, lr, best_step


def history(workdir):
    events = read_events(os.path.join(workdir, "tensorboard"))
    return sorted(dict(events["valid/elbo_per_frame"]).items())


@pytest.fixture(scope="module")
def uninterrupted(libs, tmp_path_factory):
    loop, damage = libs
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    result = loop.train_and_evaluate(config(), workdir, verbose=0, callbacks=[damage])
    return workdir, result


def test_early_stopping_and_plateau_decay_follow_the_validation_history(tf, uninterrupted):
    workdir, result = uninterrupted
    seen = history(workdir)
    stop, lr, best_step = expected(seen, 3, 0.5, 1, 3e-4)
    assert stop is not None and stop < STEPS and best_step <= DAMAGE_AFTER  # The damage worked.
    assert result["stopped_early"] and result["step"] == stop == seen[-1][0]
    values = checkpoint_tensors(os.path.join(workdir, "checkpoints", f"ckpt-{stop}"))
    rate = [v for k, v in values.items() if k.startswith("optimizer/_learning_rate")]
    assert len(rate) == 1 and lr < LR
    np.testing.assert_allclose(float(rate[0]), lr, rtol=1e-6)
    logged = dict(read_events(os.path.join(workdir, "tensorboard"))["train/learning_rate"])
    assert min(logged.values()) < LR  # TensorBoard shows the decayed rate.
    best = json.load(open(os.path.join(workdir, "checkpoints", "best.json")))
    assert best["step"] == best_step and best["criterion"] == "elbo_per_frame"


ANNEAL_END = 40  # steps: the KL weight 0.2 + 0.02 * step reaches its cap 1 there


def test_rounds_before_a_kl_anneal_reaches_its_cap_do_not_count(tf, libs, tmp_path, uninterrupted):
    """With the KL weight annealing until step 40 the same damage cannot stop the run (nor decay
    its rate) before 40; from 40 on the rules are the usual ones."""
    from avrnn_tf import config as config_lib

    loop, damage = libs
    c = config()
    c.train.update(kl_anneal=True, kl_anneal_start=0.2, kl_anneal_increment=0.02, kl_anneal_cap=1.0)
    assert config_lib.kl_anneal_end(c) == ANNEAL_END
    workdir = str(tmp_path / "annealed")
    result = loop.train_and_evaluate(c, workdir, verbose=0, callbacks=[damage])
    seen = history(workdir)
    assert expected(seen, 3, 0.5, 1, 3e-4)[0] < ANNEAL_END  # Counted, these rounds would stop it.
    stop, lr, best_step = expected(seen, 3, 0.5, 1, 3e-4, count_from=ANNEAL_END)
    assert result["step"] == (stop or STEPS) and result["stopped_early"] == (stop is not None)
    assert stop is None or stop >= ANNEAL_END + 2 * EVERY
    logged = dict(read_events(os.path.join(workdir, "tensorboard"))["train/learning_rate"])
    assert all(rate == pytest.approx(LR, rel=1e-6) for step, rate in logged.items()
               if step <= ANNEAL_END) and lr < LR  # decayed only once the rounds count
    best = json.load(open(os.path.join(workdir, "checkpoints", "best.json")))
    assert best["step"] == best_step


def test_the_anneal_end_is_where_the_trained_kl_weight_reaches_its_cap(tf):
    """config.kl_anneal_end against the weight the ELBO objective actually applies (its
    `kl_weight` scalar): below the cap one step before, at it from there; 0 where nothing anneals."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import objectives, registry

    c = load_config_file("vrnn_gauss.py", "tiny")
    network = registry.create_network(config_lib.model_spec(c, 3))
    x, mask = tf.zeros([2, 4, 3]), tf.ones([2, 4])
    for start, increment, cap in ((0.2, 5e-4, 1.0), (0.2, 5e-5, 1.0), (0.0, 0.3, 1.0), (0.5, 0.07, 0.9)):
        c.train.update(kl_anneal=True, kl_anneal_start=start, kl_anneal_increment=increment,
                       kl_anneal_cap=cap)
        end, objective = config_lib.kl_anneal_end(c), objectives.from_config(c)
        weight = lambda step: float(objective(network, x, mask, tf.constant([1, 2]),
                                              tf.constant(step))["scalars"]["kl_weight"])
        assert weight(end - 1) < cap and weight(end) == pytest.approx(cap, abs=1e-6)
    c.train.kl_anneal_increment = 0.0  # a constant weight: nothing to wait for
    assert config_lib.kl_anneal_end(c) == 0
    c.train.update(kl_anneal_increment=5e-4, objective="fivo", num_particles=2)
    assert config_lib.kl_anneal_end(c) == 0
    assert config_lib.kl_anneal_end(load_config_file("rnn_gauss.py", "tiny")) == 0


def test_a_resumed_run_stops_and_decays_where_an_uninterrupted_one_does(tf, libs, tmp_path,
                                                                         uninterrupted):
    loop, damage = libs
    workdir, result = uninterrupted
    split = str(tmp_path / "split")
    first = loop.train_and_evaluate(config(steps=DAMAGE_AFTER + EVERY), split, verbose=0,
                                    callbacks=[damage])
    assert not first["stopped_early"]
    second = loop.train_and_evaluate(config(), split, verbose=0, callbacks=[damage])
    assert second["stopped_early"] and second["step"] == result["step"]
    want = checkpoint_tensors(os.path.join(workdir, "checkpoints", f"ckpt-{result['step']}"))
    got = checkpoint_tensors(os.path.join(split, "checkpoints", f"ckpt-{result['step']}"))
    assert set(got) == set(want)
    for name in want:  # weights, optimizer slots and rate, the early-stopping counters
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    # Rerunning a run that stopped early trains nothing more.
    third = loop.train_and_evaluate(config(), split, verbose=0, callbacks=[damage])
    assert third["step"] == result["step"] and third["stopped_early"]


def test_eval_and_export_use_the_best_checkpoint_by_default(tf, uninterrupted):
    """avrnn-eval (the program, by default) and its evaluate_workdir (latest, by name)."""
    from avrnn_tf import evaluate, export

    workdir, result = uninterrupted
    best = json.load(open(os.path.join(workdir, "checkpoints", "best.json")))
    assert best["step"] < result["step"]  # The latest checkpoint is a later, worse one.
    output = os.path.join(workdir, "default.json")
    default = run_cli("avrnn_tf.evaluate", "--workdir=" + workdir, "--split=valid", "--bound=elbo",
                      "--max_sequences=8", "--output=" + output)
    assert default.returncode == 0, default.stderr
    assert f"checkpoints/best/ckpt-{best['step']} (step {best['step']}), the best checkpoint" \
        in default.stdout and "elbo_per_frame" in default.stdout
    run = lambda checkpoint: evaluate.evaluate_workdir(
        workdir, ("elbo",), split="valid", checkpoint=checkpoint, max_sequences=8, write=False)
    latest, named = run("latest"), run(f"ckpt-{best['step']}")
    text = evaluate.format_result(latest)
    assert f"step {result['step']}" in text and "--checkpoint=latest" in text
    score = lambda r: r["bounds"]["elbo"]["per_frame"]
    assert score(json.load(open(output))) > score(latest)
    # ckpt-N finds the best one by name too (the same numbers, computed in another process).
    assert score(named) == pytest.approx(score(json.load(open(output))), rel=1e-6, abs=0)
    generator = export.build_generator(workdir)
    assert generator._meta["step"] == best["step"] and "best checkpoint" in generator.checkpoint_why
    assert export.build_generator(workdir, "latest")._meta["step"] == result["step"]


def test_a_plateau_decays_every_optimizer_of_an_avrnn_run_by_the_same_factor(tf, tmp_path,
                                                                             capsys):
    """A-VRNN steps three optimizers (reconstruction, critic, adversarial): a plateau multiplies
    each rate by the factor (none below train.min_learning_rate), and the checkpoint holds the
    decayed rates (so a resumed run goes on with them). Validation values are given, worsening."""
    from avrnn_tf import loop

    c = load_config_file("avrnn.py", "tiny")
    c.train.update(lr_decay_on_plateau=0.5, lr_plateau_patience=1, min_learning_rate=4e-5)
    c.adversarial.update(critic_learning_rate=1e-4, adversarial_learning_rate=2e-4)
    run = loop.Run(c, str(tmp_path / "w"))
    try:
        values = iter([-10.0, -11.0, -12.0])  # The first is a new best; then two plateau rounds.
        run.validation_metrics = lambda: {run.criterion: next(values)}
        rates = lambda: {name: float(o.learning_rate.numpy())
                         for name, o in run.trainer.named_optimizers().items()}
        assert rates() == pytest.approx(dict(reconstruction=1e-3, critic=1e-4, adversarial=2e-4))
        for _ in range(3):
            run.evaluate()
        # Halved twice, the critic's second halving stopped at the floor.
        want = dict(reconstruction=2.5e-4, critic=4e-5, adversarial=5e-5)
        assert rates() == pytest.approx(want, rel=1e-6)
        saved = checkpoint_tensors(run.save())
    finally:
        run.lock.release()
    held = sorted(float(v) for k, v in saved.items() if k.endswith("_learning_rate/.ATTRIBUTES/"
                                                                   "VARIABLE_VALUE"))
    assert held == pytest.approx(sorted(want.values()), rel=1e-6), saved.keys()
    assert "learning rates reconstruction 0.0005 -> 0.00025, critic 5e-05 -> 4e-05, " \
           "adversarial 0.0001 -> 5e-05" in capsys.readouterr().out
