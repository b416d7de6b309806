"""Reliability: kill-and-resume exactness, signals, numerics guard, workdir safety, long sequences."""

import errno
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import checkpoint_tensors, PROJECT_ROOT, read_events, run_cli

TINY = "configs/vrnn_gauss.py:tiny"
EXACT = ["--config.train.deterministic=True", "--config.train.steps=40",
         "--config.train.checkpoint_every=5", "--config.train.eval_every=20",
         "--config.train.audio_every=0", "--config.train.num_final_samples=0"]


def start(workdir, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "avrnn_tf.train", f"--config={TINY}", f"--workdir={workdir}",
         "--progress=none", *args], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(workdir, timeout=120):
    state = os.path.join(workdir, "checkpoints", "checkpoint")
    deadline = time.time() + timeout
    while not os.path.exists(state) and time.time() < deadline:
        time.sleep(0.05)


def test_sigkill_at_random_moments_then_resume_reaches_the_same_weights(tmp_path, tf):
    reference = tmp_path / "reference"
    done = run_cli("avrnn_tf.train", f"--config={TINY}", f"--workdir={reference}",
                   "--progress=none", *EXACT)
    assert done.returncode == 0, done.stderr
    want = checkpoint_tensors(str(reference / "checkpoints" / "ckpt-40"))

    killed = tmp_path / "killed"
    rng = random.Random(1234)
    kills = 0
    for _ in range(3):
        proc = start(killed, *EXACT)
        wait_for_checkpoint(killed)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate()
    assert kills >= 1
    final = start(killed, *EXACT)
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    assert "resuming from" in out
    got = checkpoint_tensors(str(killed / "checkpoints" / "ckpt-40"))
    assert set(got) == set(want) and len(got) > 10
    for name in want:  # model weights, every optimizer slot and the step counter
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_sigterm_saves_and_exits_cleanly_then_resumes(tmp_path, tf):
    proc = start(tmp_path, "--config.train.steps=100000", "--config.train.checkpoint_every=100000",
                 "--config.train.eval_every=100000")
    wait_for_checkpoint(tmp_path, timeout=1)  # none yet: checkpoints are 100000 steps apart
    deadline = time.time() + 120
    events = os.path.join(tmp_path, "tensorboard")
    while time.time() < deadline and "train/loss" not in read_events(events):
        time.sleep(0.5)  # wait until training steps are running
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    step = int(latest.rsplit("-", 1)[1])
    assert step > 0
    again = run_cli("avrnn_tf.train", f"--config={TINY}", f"--workdir={tmp_path}", "--progress=none",
                    f"--config.train.steps={step + 3}", "--config.train.num_final_samples=0")
    assert again.returncode == 0, again.stderr
    assert f"at step {step}" in again.stdout


@pytest.fixture
def loop_mod(tf):
    from avrnn_tf import config, loop

    return loop, config


def tiny_config(config_mod, **train):
    import importlib.util

    spec = importlib.util.spec_from_file_location("vg", os.path.join(PROJECT_ROOT, "configs",
                                                                      "vrnn_gauss.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config("tiny")
    c.train.update(audio_every=0, num_final_samples=0, **train)
    return c


def test_nan_data_skips_updates_and_stops_after_the_limit(tmp_path, loop_mod, monkeypatch, tf):
    loop, config_mod = loop_mod
    real = loop.pipeline.training_chunks

    def poisoned(*args, **kwargs):
        x, mask = real(*args, **kwargs)
        return np.full_like(x, np.nan), mask

    monkeypatch.setattr(loop.pipeline, "training_chunks", poisoned)
    c = tiny_config(config_mod, steps=50, max_nonfinite_steps=7, checkpoint_every=5)
    with pytest.raises(loop.TrainingStopped) as e:
        loop.train_and_evaluate(c, str(tmp_path), verbose=0)
    assert e.value.exit_code == 3 and "7 consecutive steps" in str(e.value)
    events = read_events(str(tmp_path / "tensorboard"))
    assert [v for s, v in events["train/nonfinite_steps"]][-1] == 7
    # Every skipped step left the weights at their initial values, and those were checkpointed.
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-5")
    values = checkpoint_tensors(latest)
    assert all(np.all(np.isfinite(v)) for v in values.values() if v.dtype.kind == "f")


def test_a_nan_batch_leaves_weights_and_slots_untouched(tf):
    import keras

    from avrnn_tf import models, training

    from avrnn_tf import registry

    net = registry.create_network(models.ModelSpec(kind="vrnn", emission="normal", x_dim=4, h_dim=6,
                                                 z_dim=2, mlp_units=5))
    trainer = training.ELBOTrainer(net)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    good = (np.random.default_rng(0).normal(size=[1, 3, 5, 4]).astype(np.float32),
            np.ones([1, 3, 5], np.float32))
    bad = (np.full([1, 3, 5, 4], np.nan, np.float32), good[1])
    trainer.fit(tf.data.Dataset.from_tensor_slices(good), verbose=0, shuffle=False)

    def state():  # weights and every optimizer slot (not the step counter, which must move)
        return [v.numpy().copy() for v in net.variables + trainer.optimizer.variables
                if "iteration" not in v.path]

    before = state()
    logs = trainer.fit(tf.data.Dataset.from_tensor_slices(bad), verbose=0, shuffle=False).history
    assert int(trainer.nonfinite_total.numpy()) == 1 and int(trainer.optimizer.iterations) == 2
    after = state()
    assert len(before) == len(after) > 2 * len(net.trainable_variables)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(logs["loss"][-1])  # the skipped step is kept out of the averages
    trainer.fit(tf.data.Dataset.from_tensor_slices(good), verbose=0, shuffle=False)
    assert int(trainer.nonfinite_streak.numpy()) == 0 and int(trainer.nonfinite_total.numpy()) == 1


def test_resume_refuses_another_config_and_falls_back_from_an_unreadable_latest_checkpoint(
        tmp_path):
    """One workdir, four starts: a run of another config is refused without --force_resume; a
    longer run with another log interval resumes silently, and when its latest checkpoint is
    unreadable (truncated, as by a failing disk) it falls back to the previous one; a forced
    resume reports the changed learning rate."""
    args = [f"--config={TINY}", f"--workdir={tmp_path}", "--progress=none",
            "--config.train.checkpoint_every=10", "--config.train.eval_every=10",
            "--config.train.keep_checkpoints=3", "--config.train.audio_every=0",
            "--config.train.num_final_samples=0"]
    first = run_cli("avrnn_tf.train", *args, "--config.train.steps=20")
    assert first.returncode == 0, first.stderr
    other = run_cli("avrnn_tf.train", "--config=configs/vrnn_gmm.py:tiny", *args[1:],
                    "--config.train.steps=30")
    assert other.returncode == 2
    assert "model.emission: 'normal' -> 'gmm'" in other.stderr and "--force_resume" in other.stderr
    data = tmp_path / "checkpoints" / "ckpt-20.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])  # truncated, as by a failing disk
    # Only "how long / how often" fields may change silently.
    longer = run_cli("avrnn_tf.train", *args, "--config.train.steps=25",
                     "--config.train.log_every=2")
    assert longer.returncode == 0, longer.stderr
    assert "ckpt-20 is unreadable" in longer.stdout and "at step 10" in longer.stdout
    forced = run_cli("avrnn_tf.train", *args, "--config.train.steps=30",
                     "--config.train.learning_rate=0.01", "--force_resume")
    assert forced.returncode == 0, forced.stderr
    assert "train.learning_rate: 0.001 -> 0.01" in forced.stdout


def test_a_locked_workdir_is_refused(tmp_path, tf):
    from avrnn_tf import workdir

    lock = workdir.WorkdirLock(str(tmp_path))
    try:
        result = run_cli("avrnn_tf.train", f"--config={TINY}", f"--workdir={tmp_path}",
                         "--progress=none")
    finally:
        lock.release()
    assert result.returncode == 2
    assert f"in use by another training process (pid {os.getpid()})" in result.stderr


def test_unwritable_workdir_is_reported_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("avrnn_tf.train", f"--config={TINY}", f"--workdir={blocker}", "--progress=none")
    assert result.returncode == 2 and "is not a directory" in result.stderr
    result = run_cli("avrnn_tf.train", f"--config={TINY}", f"--workdir={blocker}/sub",
                     "--progress=none")
    assert result.returncode == 2 and "not writable" in result.stderr
    assert blocker.read_text() == "not a directory"


def test_full_disk_before_training_and_at_a_save(tmp_path, loop_mod, monkeypatch, tf):
    loop, config_mod = loop_mod
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 9, 10 ** 9 - 1000, 1000))
    with pytest.raises(loop.workdir_lib.WorkdirError, match="MiB free"):
        loop.train_and_evaluate(tiny_config(config_mod), str(tmp_path / "a"), verbose=0)
    monkeypatch.undo()

    c = tiny_config(config_mod, steps=20, checkpoint_every=10, eval_every=10)
    loop.train_and_evaluate(c, str(tmp_path / "b"), verbose=0)
    real_save = tf.train.CheckpointManager.save

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    c.train.steps = 30
    with pytest.raises(loop.TrainingStopped) as e:
        loop.train_and_evaluate(c, str(tmp_path / "b"), verbose=0)
    assert e.value.exit_code == 4 and "disk is full" in str(e.value) and "ckpt-20" in str(e.value)
    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    result = loop.train_and_evaluate(c, str(tmp_path / "b"), verbose=0)  # resumes from ckpt-20
    assert result["step"] == 30


def test_thousands_of_frames_evaluate_without_overflow(tf):
    from avrnn_tf import bounds, models
    from avrnn_tf import registry

    net = registry.create_network(models.ModelSpec(kind="vrnn", emission="gmm", x_dim=20, h_dim=16,
                                                 z_dim=4, mlp_units=16, num_mixtures=3))
    x = tf.random.stateless_normal([2, 4000, 20], seed=[0, 1]) * 30.0  # far from every component
    terms = net.frame_terms(x, tf.random.stateless_normal(net.noise_shape(x), seed=[2, 3]))
    b = bounds.elbo(terms, tf.ones([2, 4000]))
    assert np.all(np.isfinite(b["elbo"].numpy())) and np.all(b["elbo"].numpy() < 0)
