"""avrnn-eval end to end on checkpoints of short runs, and the bounded-memory evaluator."""

import json
import os

import numpy as np
import pytest

from conftest import SHARED_DATA, run_cli

JSB_MAT = os.path.join(SHARED_DATA, "jsb", "JSB_Chorales.mat")


def train(workdir, config, *overrides):
    result = run_cli("avrnn_tf.train", f"--config={config}", f"--workdir={workdir}", "--progress=none",
                     "--config.train.steps=4", "--config.train.eval_every=2",
                     "--config.train.checkpoint_every=2", "--config.train.audio_every=0",
                     "--config.train.num_final_samples=0", *overrides)
    assert result.returncode == 0, result.stderr
    return workdir


@pytest.fixture(scope="module")
def vrnn_run(tmp_path_factory):
    return train(str(tmp_path_factory.mktemp("vrnn")), "configs/vrnn_gauss.py:tiny",
                 "--config.data.synthetic_utterances=12")


def test_eval_writes_finite_bounds_for_a_short_run(vrnn_run):
    out = os.path.join(vrnn_run, "result.json")
    result = run_cli("avrnn_tf.evaluate", f"--workdir={vrnn_run}", "--bound=elbo,iwae,fivo",
                     "--num_samples=4", "--split=valid", f"--output={out}", "--max_elements=30000")
    assert result.returncode == 0, result.stderr
    assert "iwae" in result.stdout and "fivo" in result.stdout
    with open(out) as f:
        data = json.load(f)
    assert data["step"] == 4 and data["checkpoint"].endswith("ckpt-4")
    assert data["num_sequences"] >= 1 and data["num_frames"] >= data["num_sequences"]
    assert "note" not in result.stdout and "note" not in data["bounds"]["fivo"]  # Filtering q.
    for bound in ("elbo", "iwae", "fivo"):
        entry = data["bounds"][bound]
        assert np.isfinite(entry["per_frame"]) and np.isfinite(entry["per_sequence"])
        np.testing.assert_allclose(entry["per_frame"] * data["num_frames"],
                                   entry["per_sequence"] * data["num_sequences"], rtol=1e-6)
    assert os.listdir(os.path.join(vrnn_run, "tensorboard"))


def test_eval_errors_are_one_clear_line(tf, vrnn_run, tmp_path):
    """The program turns an EvalError into one line and exit status 2 (checked on one); the other
    errors are EvalErrors of one line naming what is wrong."""
    from avrnn_tf import evaluate

    result = run_cli("avrnn_tf.evaluate", f"--workdir={vrnn_run}", "--split=test")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avrnn-eval: error: "), result.stderr
    assert "has no test split" in lines[0] and "--split=valid" in lines[0]
    for kwargs, text in [(dict(workdir=str(tmp_path)), "config.json: missing"),
                         (dict(checkpoint="ckpt-999"), "ckpt-999"),
                         (dict(bounds_to_run=("elbo", "exact")), "exact")]:
        with pytest.raises(evaluate.EvalError, match=text) as e:
            evaluate.evaluate_workdir(**dict(dict(workdir=vrnn_run, split="valid"), **kwargs))
        assert len(str(e.value).splitlines()) == 1


def test_eval_zforcing_on_the_jsb_test_split(tf, tmp_path):
    from avrnn_tf import loop
    from conftest import load_config_file

    run = str(tmp_path)  # Trained in this process, as `train` does with the program.
    config = load_config_file("zforcing_jsb.py", "tiny")
    config.train.update(steps=4, eval_every=2, checkpoint_every=2, audio_every=0,
                        num_final_samples=0)
    config.data.update(path=JSB_MAT, max_files=6)
    loop.train_and_evaluate(config, run, verbose=0)
    result = run_cli("avrnn_tf.evaluate", f"--workdir={run}", "--bound=elbo,iwae,fivo",
                     "--num_samples=3", "--checkpoint=ckpt-2")
    assert result.returncode == 0, result.stderr
    files = os.listdir(os.path.join(run, "eval"))
    assert files == ["test_elbo_iwae_fivo_k3_ckpt-2.json"]
    with open(os.path.join(run, "eval", files[0])) as f:
        data = json.load(f)
    assert data["step"] == 2 and data["num_sequences"] == 6 and data["split"] == "test"
    assert data["model"] == {"kind": "zforcing", "emission": "bernoulli"}
    assert all(np.isfinite(e["per_frame"]) for e in data["bounds"].values())
    # Z-Forcing's posterior reads the future: FIVO's value is not a filtering bound, and says so.
    notes = [line for line in result.stdout.splitlines() if "note" in line]
    assert notes == ["  note: fivo: " + data["bounds"]["fivo"]["note"]], result.stdout
    assert "not FIVO's filtering bound" in notes[0] and "note" not in data["bounds"]["iwae"]


def test_memory_budget_changes_nothing_for_an_exact_model(tf):
    # For a latent-free model every bound is the exact log-likelihood, whatever the chunking.
    from avrnn_tf import evaluate, models
    from avrnn_tf import registry

    net = registry.create_network(models.ModelSpec(kind="rnn", emission="gmm", x_dim=3, h_dim=8,
                                                 mlp_units=8, num_mixtures=2))
    x = np.random.default_rng(0).normal(size=(5, 8, 3)).astype(np.float32)
    mask = (np.arange(8)[None] < np.array([8, 8, 6, 3, 1])[:, None]).astype(np.float32)
    reference, _ = evaluate.BoundEvaluator(net, 6, 10 ** 6, 0)("elbo", x, mask, 0)
    for budget in (1, 3000, 10000):  # one sequence (and one sample) per call ... four sequences
        ev = evaluate.BoundEvaluator(net, 6, budget, 0)
        for bound in ("elbo", "iwae", "fivo"):
            values, _ = ev(bound, x, mask, 0)
            np.testing.assert_allclose(values, reference, rtol=1e-5, err_msg=f"{bound} {budget}")


def test_iwae_chunks_over_k_merge_exactly(tf):
    # Splitting K into chunks and merging with log-mean-exp is the same estimator: with a budget of
    # one sample per call, the mean over sequences stays above the ELBO like the unchunked one.
    from avrnn_tf import evaluate, models
    from avrnn_tf import registry

    net = registry.create_network(models.ModelSpec(kind="vrnn", emission="normal", x_dim=3, h_dim=8,
                                                 z_dim=2, mlp_units=8))
    x = np.tile(np.random.default_rng(1).normal(size=(1, 6, 3)).astype(np.float32), [32, 1, 1])
    mask = np.ones([32, 6], np.float32)
    chunked, _ = evaluate.BoundEvaluator(net, 8, 1, 0)("iwae", x, mask, 0)  # k_chunk = 1
    whole, _ = evaluate.BoundEvaluator(net, 8, 10 ** 6, 0)("iwae", x, mask, 0)
    elbo, _ = evaluate.BoundEvaluator(net, 8, 10 ** 6, 0)("elbo", x, mask, 0)
    spread = np.std(whole) / np.sqrt(32)
    assert abs(chunked.mean() - whole.mean()) < 5 * spread + 1e-3
    assert chunked.mean() > elbo.mean() and whole.mean() > elbo.mean()
