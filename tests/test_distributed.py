"""tf.distribute: a MirroredStrategy step over two devices equals the single-device step."""

import json
import os
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT


CASES = [("vrnn", 0.0), ("vrnn", 0.5), ("rnn", 0.5), ("avrnn", 0.5), ("vrnn:iwae", 0.5),
         ("vrnn:fivo", 0.5)]


@pytest.fixture(scope="module")
def checked():
    """{case: result} of tests/distributed_check.py run once over every case (one start-up)."""
    out = subprocess.run([sys.executable, os.path.join(PROJECT_ROOT, "tests", "distributed_check.py"),
                          *(f"{kind}:{clip}" for kind, clip in CASES)], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=1200,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-3000:]
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in results}


@pytest.mark.parametrize("kind,clip", CASES)
def test_mirrored_update_equals_single_device_on_the_concatenated_batch(checked, kind, clip):
    r = checked[f"{kind}:{clip}"]
    assert r["steps"] == [5, 5]
    assert r["initial_diff"] == 0.0
    assert r["moved"] > 1e-2  # the comparison is not between two unchanged models
    # Same masks, noise rows (K particles per row for iwae/fivo, and FIVO's resampling draws),
    # global frame count and clipping.
    assert r["final_diff"] < 1e-5, r


def test_cli_mirrored_run_on_two_virtual_cpus_matches_the_single_device_run(tmp_path, tf):
    """The whole loop, with weight averaging on (its update and swaps run in cross-replica
    context on mirrored variables): validation scores the average, so it must agree too."""
    from conftest import read_events, run_cli

    logs = {}
    for name, env, extra in (("single", {}, []),
                             ("mirrored", {"AVRNN_VIRTUAL_CPUS": "2"}, ["--strategy=mirrored"])):
        result = run_cli("avrnn_tf.train", "--config=configs/vrnn_gauss.py:tiny",
                         f"--workdir={tmp_path / name}", "--progress=none",
                         "--config.train.steps=30", "--config.train.audio_every=0",
                         "--config.train.num_final_samples=0", "--config.train.ema_decay=0.95",
                         *extra, env=env)
        assert result.returncode == 0, result.stderr
        logs[name] = read_events(str(tmp_path / name / "tensorboard"))
    for tag in ("train/loss", "valid/elbo_per_frame", "valid/elbo_per_sequence"):
        single, mirrored = logs["single"][tag], logs["mirrored"][tag]
        assert [s for s, _ in single] == [s for s, _ in mirrored]
        for (_, a), (_, b) in zip(single, mirrored):
            assert b == pytest.approx(a, rel=1e-4), tag  # metrics are global ratios, not replica means
