"""Restore without the trainer (restore.load_run), checkpoints of the pre-change code, and the
checkpointing breaks of issue 14 (items 1, 7, 9).

tests/fixtures/pre_arch_vrnn is a workdir written by the code before the network became its own
checkpoint root (see tests/fixtures/README.md).
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import PROJECT_ROOT

FIXTURE = os.path.join(PROJECT_ROOT, "tests", "fixtures", "pre_arch_vrnn")


@pytest.fixture
def old_run(tmp_path):
    path = tmp_path / "run"
    shutil.copytree(FIXTURE, path)
    return str(path)


@pytest.fixture(scope="module")
def resumed(tf, tmp_path_factory):
    """The fixture run resumed by the current code to step 3, a checkpoint at every step (shared:
    tests that change it take a copy, `resumed_copy`)."""
    from avrnn_tf import loop

    path = str(tmp_path_factory.mktemp("resumed") / "run")
    shutil.copytree(FIXTURE, path)
    result = loop.train_and_evaluate(_config(path, steps=3, checkpoint_every=1), path, verbose=0)
    assert result["step"] == 3
    return path


@pytest.fixture
def resumed_copy(resumed, tmp_path):
    path = tmp_path / "resumed"
    shutil.copytree(resumed, path)
    return str(path)


def _config(workdir, **train):
    from avrnn_tf import restore

    config = restore.read_config(workdir)
    config.train.update(train)
    return config


def _snapshot(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = (os.stat(path).st_mtime_ns,
                                                       hashlib.sha256(f.read()).hexdigest())
    return out


def _cut(path):
    data = path + ".data-00000-of-00001"
    with open(data, "rb") as f:
        content = f.read()
    with open(data, "wb") as f:
        f.write(content[:len(content) // 2])


def test_a_pre_change_checkpoint_loads_evaluates_and_exports_without_a_trainer(tf, old_run, tmp_path):
    from avrnn_tf import evaluate, export, restore

    before = _snapshot(old_run)
    run = restore.load_run(old_run)
    assert run.step == 2 and run.checkpoint.endswith("ckpt-2")
    assert "network" not in restore.root_children(run.checkpoint)  # the old layout
    restore.verify_restored(run.network, run.checkpoint)
    assert _snapshot(old_run) == before  # load_run writes nothing
    result = evaluate.evaluate_workdir(old_run, split="valid", write=False)
    assert np.isfinite(result["bounds"]["elbo"]["per_frame"]) and result["step"] == 2
    path, generator = export.export(old_run, str(tmp_path / "export"))
    loaded = tf.saved_model.load(path)
    frames = loaded.sample(num_sequences=2, num_frames=3, seed=1, temperature=1.0)["frames"]
    assert frames.shape == (2, 3, 8) and np.all(np.isfinite(frames.numpy()))


def test_a_pre_change_checkpoint_resumes_and_new_checkpoints_hold_the_network_as_a_root(
        tf, old_run, resumed):
    from avrnn_tf import loop, restore

    before = restore.load_run(old_run).network
    weights = [v.numpy() for v in before.trainable_variables]
    run = loop.Run(_config(old_run, steps=3), old_run)
    try:
        assert run.restore() == 2
        for v, w in zip(run.network.trainable_variables, weights):
            np.testing.assert_array_equal(v.numpy(), w)  # the optimizer's step and the weights
    finally:
        run.lock.release()
    # Resumed to step 3 (the `resumed` fixture): the new checkpoints have the new layout.
    latest = tf.train.latest_checkpoint(os.path.join(resumed, "checkpoints"))
    assert latest.endswith("ckpt-3")
    assert {"network", "model", "optimizer"} <= restore.root_children(latest)
    assert restore.load_run(resumed).step == 3


def test_held_out_metrics_has_no_side_effects(tf, old_run):
    """reproduce_paper.held_out_metrics used to build a training Run: it took the workdir lock
    and never released it, rewrote data_stats.json and could write checkpoints/best and
    TensorBoard scalars. Now it only reads."""
    from avrnn_tf import workdir as workdir_lib
    from avrnn_tf.experiments import reproduce_paper

    before = _snapshot(old_run)
    metrics = reproduce_paper.held_out_metrics(old_run)
    assert _snapshot(old_run) == before
    lock = workdir_lib.WorkdirLock(old_run)  # nobody holds the lock
    lock.release()
    assert metrics["test"] == {} and np.isfinite(metrics["valid"]["elbo_per_frame"])
    assert metrics["valid"]["loss"] == pytest.approx(-metrics["valid"]["elbo_per_frame"])


def test_issue14_item1_damaged_final_checkpoint_is_resaved_and_named(tf, resumed_copy, tmp_path,
                                                                   capsys):
    from avrnn_tf import export, loop, restore

    old_run = resumed_copy  # Trained to step 3, a checkpoint at every step.
    final = os.path.join(old_run, "checkpoints", "ckpt-3")
    _cut(final)
    loop.train_and_evaluate(_config(old_run, steps=3, checkpoint_every=1), old_run, verbose=0)
    out = capsys.readouterr().out
    assert "ckpt-3 is unreadable" in out and "at step 2" in out
    tf.train.load_checkpoint(final)  # rewritten: readable again
    assert restore.load_run(old_run, "ckpt-3").step == 3

    _cut(final)
    warnings = []
    run = restore.load_run(old_run, "latest", warn=warnings.append)  # falls back, one line
    assert run.step == 2 and len(warnings) == 1 and "ckpt-3" in warnings[0]
    with pytest.raises(restore.RestoreError) as e:
        restore.load_run(old_run, "ckpt-3")  # named: stops with one line
    assert "ckpt-3 is unreadable" in str(e.value) and len(str(e.value).splitlines()) == 1
    with pytest.raises(export.ExportError, match="unreadable"):
        export.export(old_run, str(tmp_path / "export"), checkpoint="ckpt-3")


def test_issue14_item7_disk_precheck_counts_what_rotation_deletes(tf, resumed_copy, monkeypatch):
    """After a full disk, "rerun the same command" must resume when rotation makes room: the
    checkpoints already on disk are replaced, not added to."""
    from collections import namedtuple

    from avrnn_tf import loop

    old_run = resumed_copy  # Trained to step 3, a checkpoint at every step.
    one = os.path.getsize(os.path.join(old_run, "checkpoints", "ckpt-3.data-00000-of-00001"))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 9, 10 ** 9 - 2 * one, 2 * one))
    result = loop.train_and_evaluate(_config(old_run, steps=4, checkpoint_every=1), old_run,
                                     verbose=0)
    assert result["step"] == 4


def test_issue14_item9_leftovers_are_removed_and_startup_sigterm_prints_one_line(tf, old_run,
                                                                                  tmp_path):
    from avrnn_tf import loop

    folder = os.path.join(old_run, "checkpoints")
    os.makedirs(os.path.join(folder, "ckpt-7_temp"))
    open(os.path.join(folder, "checkpoint.tmp1234"), "w").close()
    loop.train_and_evaluate(_config(old_run), old_run, verbose=0)  # at step 2 already: no training
    assert sorted(n for n in os.listdir(folder) if "temp" in n or "tmp" in n) == []

    proc = subprocess.Popen(
        [sys.executable, "-m", "avrnn_tf.train", "--config=configs/vrnn_gauss.py:tiny",
         f"--workdir={tmp_path / 'fresh'}", "--progress=none"], cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # Start-up (importing TensorFlow alone) takes longer.
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    ours = [line for line in err.splitlines() if line.startswith("avrnn-train:")]
    assert len(ours) == 1 and "stopped by SIGTERM during start-up" in ours[0]


def test_a_signal_during_the_tensorflow_import_is_held_until_the_import_returns():
    """SIGTERM that arrives while `import_tensorflow` runs reaches the handler only after the
    import has finished (TensorFlow Probability, its last step, loaded), not inside TensorFlow's
    own import code, where a raising handler once ended a CI run with exit status 1 instead of
    the start-up handler's one line and 143."""
    script = textwrap.dedent("""\
        import os, signal, sys

        def handler(signum, frame):
            done = "tensorflow_probability" in sys.modules
            print("handled after the import" if done else "handled inside the import", flush=True)
            sys.exit(143)

        signal.signal(signal.SIGTERM, handler)
        from avrnn_tf.tf_setup import import_tensorflow
        import_tensorflow(before_init=lambda tf: os.kill(os.getpid(), signal.SIGTERM))
        print("not stopped", flush=True)
        """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["handled after the import"], proc.stdout


@pytest.mark.parametrize("step, flagged", [(0, True), (200, False)])
def test_a_best_checkpoint_at_step_0_is_named_as_the_untrained_model(tmp_path, step, flagged):
    from avrnn_tf import restore

    best = tmp_path / "checkpoints" / "best"
    best.mkdir(parents=True)
    (best / f"ckpt-{step}.index").write_bytes(b"")
    (best / "checkpoint").write_text(f'model_checkpoint_path: "ckpt-{step}"\n')
    (tmp_path / "checkpoints" / "best.json").write_text(
        '{"criterion": "elbo_per_frame", "value": -354.4}')
    path, why = restore.best_checkpoint(str(tmp_path))
    assert path.endswith(f"ckpt-{step}") and "-354.4000" in why
    assert ("untrained initial model (step 0)" in why) == flagged
