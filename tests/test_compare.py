"""avrnn-compare: seeds aggregated into mean and sample std, resumable, config overrides, and the
independent-notes baseline against its closed form."""

import json
import math
import os
import re

import numpy as np
import pytest

from conftest import PROJECT_ROOT, SHARED_DATA, run_cli

JSB = os.path.join(SHARED_DATA, "jsb", "JSB_Chorales.mat")


def test_independent_notes_baseline_matches_its_closed_form(tmp_path):
    from avrnn_tf.experiments import specs

    # Note 60 is on in 1 of 4 training frames, note 40 in every one, the rest never; the test
    # frames hold note 60 twice and nothing else once.
    path = tmp_path / "rolls.json"
    path.write_text(json.dumps({"train": [[[40, 60], [40], [40], [40]]], "valid": [[[60]]],
                                "test": [[[60], [60], []]]}))
    value, seqs, frames = specs.independent_notes(str(path))
    eps = 1e-4  # Frequencies are clipped to [eps, 1 - eps].
    silent = 86 * math.log1p(-eps) + math.log(eps)  # 86 never-played notes off, note 40 off.
    expected = (2 * (math.log(0.25) + silent) + (math.log(0.75) + silent)) / 3
    assert (seqs, frames) == (1, 3)
    assert value == pytest.approx(expected, rel=1e-9)


def test_config_overrides_are_typed_and_checked():
    from avrnn_tf.experiments import specs

    config = specs.load_config("configs/vrnn_gauss.py:tiny+train.objective=fivo+"
                                 "train.num_particles=4+model.residual_posterior=true", "jsb")
    assert (config.train.objective, config.train.num_particles) == ("fivo", 4)
    assert config.model.residual_posterior is True and config.data.format == "pianoroll"
    assert specs.config_name("configs/vrnn_gauss.py:tiny+train.objective=fivo") == \
        "vrnn_gauss:tiny+objective=fivo"


def test_bad_override_is_one_line(tmp_path):
    r = run_cli("avrnn_tf.experiments.compare", f"--outdir={tmp_path}", "--datasets=jsb",
                "--configs=configs/vrnn_gauss.py:tiny+train.objectiv=fivo")
    assert r.returncode == 2, r.stderr
    assert "train.objectiv=fivo" in r.stderr and "did you mean train.objective" in r.stderr
    assert "Traceback" not in r.stderr


def test_two_seeds_give_mean_and_std_of_their_runs_and_a_rerun_trains_nothing(tmp_path):
    args = (f"--outdir={tmp_path}", "--datasets=jsb", "--configs=configs/vrnn_gauss.py:tiny",
            "--steps=12", "--seeds=3,4", "--bounds=elbo,iwae", "--num_samples=3",
            "--max_test_sequences=4")
    r = run_cli("avrnn_tf.experiments.compare", *args)
    assert r.returncode == 0, r.stderr
    runs = [tmp_path / "jsb" / "vrnn_gauss_tiny" / f"seed{s}" for s in (3, 4)]
    records = [json.loads((run / "compare.json").read_text()) for run in runs]
    evals = [next(iter(rec["eval"].values())) for rec in records]
    # Different seeds are different runs.
    assert evals[0]["bounds"]["elbo"]["per_frame"] != evals[1]["bounds"]["elbo"]["per_frame"]
    text = (tmp_path / "comparison.md").read_text()
    row = next(line for line in text.splitlines() if "vrnn_gauss:tiny" in line)
    cells = re.findall(r"(-?\d+\.\d+) ± (\d+\.\d+)", row)
    for (mean, std), bound in zip(cells, ("elbo", "iwae")):
        values = [e["bounds"][bound]["per_frame"] for e in evals]
        assert float(mean) == pytest.approx(np.mean(values), abs=1e-3)
        assert float(std) == pytest.approx(np.std(values, ddof=1), abs=1e-3)
    assert "independent notes" in text and os.path.getsize(tmp_path / "jsb_valid_curves.png") > 0
    assert all(rec["curve"] and rec["curve"][-1][0] == 12 for rec in records)
    # One segment each: the event files' training span is inside the invocation's wall time.
    assert all(0 < rec["train_seconds_all_segments"] <= rec["train_seconds"] for rec in records), [
        (rec["train_seconds_all_segments"], rec["train_seconds"]) for rec in records]
    # The fall column: the worst seed's (best - last) validation ELBO, in nats and as a share.
    falls = [max(v for _, v in rec["curve"]) - rec["curve"][-1][1] for rec in records]
    worst = int(np.argmax(falls))
    best_worst = max(v for _, v in records[worst]["curve"])
    nats, share = re.search(r"\| (\d+\.\d+) \((\d+\.\d)%\) \|", row).groups()
    assert float(nats) == pytest.approx(falls[worst], abs=6e-3)
    assert float(share) == pytest.approx(100 * falls[worst] / abs(best_worst), abs=0.06)
    stamps = [os.path.getmtime(run / "checkpoints") for run in runs]
    r = run_cli("avrnn_tf.experiments.compare", *args)
    assert r.returncode == 0, r.stderr
    assert [os.path.getmtime(run / "checkpoints") for run in runs] == stamps  # Nothing retrained.
    assert (tmp_path / "comparison.md").read_text() == text
    # --report_only tabulates what exists and trains nothing: seed 5 stays missing.
    r = run_cli("avrnn_tf.experiments.compare", *args[:4], "--seeds=3,4,5", *args[5:],
                "--report_only")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "jsb" / "vrnn_gauss_tiny" / "seed5").exists()
    row = next(line for line in (tmp_path / "comparison.md").read_text().splitlines()
               if "vrnn_gauss:tiny" in line)
    assert row.split("|")[5].strip() == "2" and re.findall(r"(-?\d+\.\d+) ± ", row)[0] == cells[0][0]


def test_latest_checkpoint_and_diagnostics_columns(tmp_path):
    args = (f"--outdir={tmp_path}", "--datasets=jsb", "--steps=12", "--bounds=elbo",
            "--configs=configs/vrnn_gauss.py:tiny,configs/rnn_gauss.py:tiny", "--num_samples=2",
            "--max_test_sequences=4", "--checkpoint=latest", "--diagnostics", "--critic_steps=5")
    r = run_cli("avrnn_tf.experiments.compare", *args)
    assert r.returncode == 0, r.stderr
    record = json.loads((tmp_path / "jsb" / "vrnn_gauss_tiny" / "seed0" / "compare.json").read_text())
    (key, result), = record["eval"].items()
    assert key.endswith(":latest:diagnostics5")
    assert result["step"] == 12 and "/best/" not in result["checkpoint"]  # Not the best one.
    assert result["diagnostics"]["fresh_critic"]["steps"] == 5
    text = (tmp_path / "comparison.md").read_text()
    assert "latest checkpoint is evaluated" in text and "evaluated step / steps" in text
    assert "fresh-critic W" in text.splitlines()[4]  # The header row.
    vrnn = next(line for line in text.splitlines() if "| vrnn_gauss:tiny |" in line)
    kl, aggregate, information, w = (float(c) for c in vrnn.rstrip(" |").split("|")[-4:])
    split = result["diagnostics"]["kl_split"]
    assert kl == pytest.approx(split["kl_per_frame"], abs=1e-3)
    assert kl == pytest.approx(aggregate + information, abs=3e-3)  # KL = aggregate + information.
    assert w == pytest.approx(result["diagnostics"]["fresh_critic"]["wasserstein"], abs=1e-3)
    # A model without a latent variable is evaluated without diagnostics: blank cells.
    rnn = next(line for line in text.splitlines() if "| rnn_gauss:tiny |" in line)
    assert rnn.endswith("| | | | |")
    r = run_cli("avrnn_tf.experiments.compare", *args[:-3], "--checkpoint=newest")
    assert r.returncode == 2 and "--checkpoint=newest: expected best or latest" in r.stderr
