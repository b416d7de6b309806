"""Weight averaging (train.ema_decay, averaging.py): the average follows its recursion, validation
and every checkpoint's network are the average, the training weights survive a resume exactly, and
evaluation/export read the average."""

import json
import os

import numpy as np
import pytest

from conftest import checkpoint_tensors, load_config_file

DECAY = 0.9
STEPS, EVERY = 12, 4


def reference_average(initial, sequence, decay):
    """The documented recursion, written out: a <- d_n a + (1 - d_n) w_n, d_n = min(decay,
    (1 + n) / (10 + n)), from the initial weights."""
    a = [np.array(v, np.float64) for v in initial]
    for n, weights in enumerate(sequence):
        d = min(decay, (1.0 + n) / (10.0 + n))
        a = [d * x + (1.0 - d) * np.asarray(w, np.float64) for x, w in zip(a, weights)]
    return a


def test_the_average_follows_its_recursion_and_swaps_exactly(tf):
    from avrnn_tf import averaging

    rng = np.random.default_rng(0)
    variables = [tf.Variable(rng.standard_normal((3, 2)).astype(np.float32)),
                 tf.Variable(rng.standard_normal(5).astype(np.float32))]
    initial = [v.numpy() for v in variables]
    average = averaging.WeightAverage(variables, DECAY)
    seen = []
    for _ in range(30):  # Past the warm-up (d_n = DECAY from n = 80 / 10 on).
        for v in variables:
            v.assign(v + rng.standard_normal(v.shape).astype(np.float32))
        seen.append([v.numpy() for v in variables])
        average.update()
    want = reference_average(initial, seen, DECAY)
    for got, expected in zip(average.copy.weights, want):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    live = [v.numpy() for v in variables]
    with average.averaged():
        with average.averaged():  # Nested: one swap.
            for v, expected in zip(variables, want):
                np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, atol=1e-5)
        with pytest.raises(RuntimeError, match="swapped"):
            average.update()
    for v, w in zip(variables, live):  # Swapped back exactly.
        np.testing.assert_array_equal(v.numpy(), w)
    # Weights that stop moving: the average converges to them geometrically.
    for _ in range(200):
        average.update()
    for got, w in zip(average.copy.weights, live):
        np.testing.assert_allclose(got.numpy(), w, rtol=2e-6, atol=1e-6)
    with pytest.raises(ValueError, match="decay"):
        averaging.WeightAverage(variables, 1.0)


def config(steps=STEPS):
    c = load_config_file("vrnn_gauss.py", "tiny")
    c.train.update(steps=steps, eval_every=EVERY, checkpoint_every=EVERY, log_every=EVERY,
                   ema_decay=DECAY, deterministic=True, audio_every=0, num_final_samples=0)
    return c


@pytest.fixture(scope="module")
def averaged_run(tf, tmp_path_factory):
    """A tiny averaged run with a recorder: the training weights after every step and, at every
    validation pass, the weights the network held while it was scored."""
    from avrnn_tf import callbacks, loop

    record = {"initial": None, "steps": [], "validated": {}, "validators": set()}

    class Recorder(callbacks.RunCallback):
        def on_train_batch_end(self, batch, logs=None):  # After StepControl's update.
            record["steps"].append([v.numpy() for v in self.run.network.trainable_variables])

        def on_evaluate(self, metrics):
            run = self.run
            record["validated"][run.step] = {
                "live": [v.numpy() for v in run.network.trainable_variables],
                "training": [v.numpy() for v in run.average.copy.weights]}
            if record["initial"] is None:
                record["initial"] = record["validated"][run.step]["training"]
            record["validators"].add(run.validator)
            record["summaries"] = [c for c in run.callbacks
                                   if isinstance(c, callbacks.ValidationSummaries)]

    workdir = str(tmp_path_factory.mktemp("averaged"))
    result = loop.train_and_evaluate(config(), workdir, verbose=0, callbacks=[Recorder])
    return workdir, result, record


def test_every_validation_round_reuses_one_traced_graph(averaged_run):
    """Four rounds (steps 0, 4, 8, 12), one trace: the validation objective and the latent
    histograms' pass are traced on the first round and reused (not traced again per round, which
    cost seconds of every round of every run)."""
    _, result, record = averaged_run
    assert len(record["validated"]) == STEPS // EVERY + 1
    (validator,) = record["validators"]
    assert validator.function.experimental_get_tracing_count() == 1
    (summaries,) = record["summaries"]
    assert summaries._latents.experimental_get_tracing_count() == 1


def test_validation_and_checkpoints_hold_the_average_and_keep_the_training_weights(tf, averaged_run):
    workdir, result, record = averaged_run
    assert result["step"] == STEPS and len(record["steps"]) == STEPS
    # Scored at each validation pass: the recursion over the training weights of the steps so far
    # (not the training weights themselves, which it differs from).
    for step, held in record["validated"].items():
        want = reference_average(record["initial"], record["steps"][:step], DECAY)
        for got, expected in zip(held["live"], want):
            np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)
        if step:
            assert any(np.abs(a - w).max() > 1e-4 for a, w in zip(held["live"], held["training"]))
            for got, w in zip(held["training"], record["steps"][step - 1]):
                np.testing.assert_array_equal(got, w)
    # The checkpoint of each round: network = what validation scored, training_weights = the
    # training weights; the best one is the round best.json names.
    from avrnn_tf import restore

    best = json.load(open(os.path.join(workdir, "checkpoints", "best.json")))
    for path, step in [(os.path.join(workdir, "checkpoints", f"ckpt-{STEPS}"), STEPS),
                       (best["checkpoint"], best["step"])]:
        held = record["validated"][step]
        network = restore.load_run(workdir, path).network  # Restores the root child `network`.
        for got, w in zip(network.trainable_variables, held["live"], strict=True):
            np.testing.assert_array_equal(got.numpy(), w)
        saved = checkpoint_tensors(path)
        copy = sorted((k for k in saved if k.startswith("training_weights/weights/")),
                      key=lambda k: int(k.split("/")[2]))
        for k, w in zip(copy, held["training"], strict=True):
            np.testing.assert_array_equal(saved[k], w)


def test_eval_and_export_restore_the_average_and_say_so(tf, averaged_run):
    from avrnn_tf import restore

    workdir, _, record = averaged_run
    run = restore.load_run(workdir)
    best = json.load(open(os.path.join(workdir, "checkpoints", "best.json")))
    assert run.step == best["step"] and "moving average (train.ema_decay = 0.9)" in run.why
    for got, w in zip(run.network.trainable_variables, record["validated"][best["step"]]["live"],
                      strict=True):
        np.testing.assert_array_equal(got.numpy(), w)
    from avrnn_tf import export

    generator = export.build_generator(workdir)
    assert "moving average" in generator.checkpoint_why and generator._meta["step"] == best["step"]


def test_an_averaged_run_resumes_to_the_weights_of_an_uninterrupted_one(tf, averaged_run,
                                                                        tmp_path):
    from avrnn_tf import loop

    workdir, _, _ = averaged_run
    split = str(tmp_path / "split")
    loop.train_and_evaluate(config(steps=EVERY + 2), split, verbose=0)  # Ends between rounds.
    loop.train_and_evaluate(config(), split, verbose=0)
    want = checkpoint_tensors(os.path.join(workdir, "checkpoints", f"ckpt-{STEPS}"))
    got = checkpoint_tensors(os.path.join(split, "checkpoints", f"ckpt-{STEPS}"))
    assert set(got) == set(want) and any(k.startswith("training_weights/") for k in got)
    for name in want:  # Average, training weights, update count, optimizer slots, counters.
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
