"""End-to-end: `python -m avrnn_tf.train` as a user runs it, on the synthetic corpus and on FSDD."""

import json
import os
import wave

import numpy as np
import pytest

from conftest import read_events, run_cli

TRAIN_SCALARS = ("loss", "elbo_per_frame", "elbo_per_sequence", "log_px_per_frame", "kl_per_frame",
                 "grad_norm", "learning_rate", "frames_per_second")
VALID_SCALARS = ("loss", "elbo_per_frame", "elbo_per_sequence", "log_px_per_frame", "kl_per_frame")


def train(workdir, config="configs/vrnn_gauss.py:tiny", *overrides):
    return run_cli("avrnn_tf.train", f"--config={config}", f"--workdir={workdir}", "--progress=none",
                   *overrides)


def assert_ok(result):
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory, tf):
    workdir = str(tmp_path_factory.mktemp("synthetic"))
    first = train(workdir)
    assert_ok(first)
    events_first = read_events(os.path.join(workdir, "tensorboard"))
    second = train(workdir, "configs/vrnn_gauss.py:tiny", "--config.train.steps=90")
    assert_ok(second)
    return workdir, first, second, events_first, read_events(os.path.join(workdir, "tensorboard"))


def test_run_writes_tensorboard_scalars_histograms_and_audio(synthetic_run):
    workdir, first, _, events, _ = synthetic_run
    for name in TRAIN_SCALARS:
        steps = [s for s, _ in events[f"train/{name}"]]
        assert steps == list(range(10, 61, 10)), name  # log_every=10 in the tiny config
        assert all(np.isfinite(v) for _, v in events[f"train/{name}"])
    for name in VALID_SCALARS:
        assert [s for s, _ in events[f"valid/{name}"]] == [0, 30, 60]
    for key in ("post_loc", "post_scale", "prior_loc", "prior_scale"):
        assert f"latent/{key}" in events
    audio = events["audio/samples/audio_summary"] if "audio/samples/audio_summary" in events else \
        events["audio/samples"]
    assert [s for s, _ in audio] == [30, 60]
    assert "Traceback" not in first.stderr


def test_short_synthetic_run_lowers_the_validation_loss(synthetic_run):
    events = synthetic_run[3]
    loss = dict(events["valid/loss"])
    assert loss[60] < loss[0] - 10.0, loss  # nats per frame
    lr = [v for _, v in events["train/learning_rate"]]
    assert lr == pytest.approx([1e-3] * len(lr))


def test_workdir_holds_config_stats_checkpoint_and_decodable_samples(synthetic_run, tf):
    workdir = synthetic_run[0]
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["model"]["kind"] == "vrnn" and config["train"]["steps"] == 90
    stats = json.load(open(os.path.join(workdir, "data_stats.json")))
    assert stats["sample_rate"] == 16000 and stats["frame_size"] == 200 and stats["std"] > 0
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-90")
    wavs = sorted(os.listdir(os.path.join(workdir, "samples")))
    assert "step_60_0.wav" in wavs and "step_90_0.wav" in wavs
    with wave.open(os.path.join(workdir, "samples", "step_90_0.wav")) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        assert w.getnframes() == 16000  # 1 s, a whole number of 200-sample frames
        samples = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert samples.std() > 0


def test_rerun_resumes_and_continues_the_step_count(synthetic_run):
    _, _, second, events_first, events = synthetic_run
    assert "resuming from" in second.stdout and "at step 60" in second.stdout
    steps = [s for s, _ in events["train/loss"]]
    assert steps == list(range(10, 91, 10))  # 70..90 appended; nothing re-run from step 0
    assert [s for s, _ in events["valid/loss"]] == [0, 30, 60, 90]
    # The first run's values are kept untouched by the resumed run.
    assert events["train/loss"][:6] == events_first["train/loss"]


def test_short_fsdd_run_lowers_the_validation_loss(tmp_path, fsdd_dir, tf):
    result = train(str(tmp_path), "configs/vrnn_gauss.py:tiny,fsdd", f"--config.data.path={fsdd_dir}",
                   "--config.data.max_files=400", "--config.train.steps=80",
                   "--config.train.eval_every=40")
    assert_ok(result)
    stats = json.load(open(os.path.join(tmp_path, "data_stats.json")))
    assert stats["sample_rate"] == 8000  # FSDD's own rate
    assert stats["split_sizes"]["test"] > 0  # the official test split (indices 0-4) is held out
    events = read_events(os.path.join(tmp_path, "tensorboard"))
    loss = dict(events["valid/loss"])
    assert loss[80] < loss[0] - 5.0, loss
    assert "audio/samples" in events or "audio/samples/audio_summary" in events


@pytest.mark.parametrize("override,expected", [
    ("--config.train.learnin_rate=0.1", "--config.train.learnin_rate"),
    ("--config.model.kind=lstm", "config.model.kind = 'lstm'"),
    ("--config.data.batch_size=0", "config.data.batch_size = 0"),
    ("--config.train.steps=many", "--config.train.steps=many"),
])
def test_bad_config_gives_a_clear_error(tmp_path, override, expected):
    result = train(str(tmp_path / "w"), "configs/vrnn_gauss.py:tiny", override)
    assert result.returncode == 2
    assert expected in result.stderr and "avrnn-train: error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "w" / "checkpoints")


def test_missing_data_directory_gives_a_clear_error(tmp_path):
    result = train(str(tmp_path / "w"), "configs/vrnn_gauss.py:tiny", "--config.data.path=/no/such/dir")
    assert result.returncode == 2
    assert "data directory '/no/such/dir' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_variant_gives_a_clear_error(tmp_path):
    result = train(str(tmp_path / "w"), "configs/vrnn_gauss.py:huge")
    assert result.returncode == 2 and "huge" in result.stderr and "Traceback" not in result.stderr


def test_missing_config_file_gives_a_clear_error(tmp_path):
    result = train(str(tmp_path / "w"), "configs/no_such_model.py:tiny")
    assert result.returncode == 2 and "configs/no_such_model.py" in result.stderr
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_best_checkpoint_is_the_highest_validation_elbo(synthetic_run, tf):
    workdir, events = synthetic_run[0], synthetic_run[4]
    best = json.load(open(os.path.join(workdir, "checkpoints", "best.json")))
    elbo = dict(events["valid/elbo_per_frame"])
    assert set(elbo) == {0, 30, 60, 90}
    assert best["step"] == max(elbo, key=elbo.get)
    assert best["valid_loss"] == pytest.approx(-elbo[best["step"]], rel=1e-5)
    best_dir = os.path.join(workdir, "checkpoints", "best")
    assert tf.train.latest_checkpoint(best_dir).endswith(f"ckpt-{best['step']}")
