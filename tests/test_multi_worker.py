"""--strategy=multi_worker: TF_CONFIG checking, and two worker processes on localhost training the
same model as one process does (MultiWorkerMirroredStrategy, collectives over gRPC)."""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import PROJECT_ROOT, read_events, run_cli
from avrnn_tf import multi_worker

GOOD = {"cluster": {"worker": ["localhost:2001", "localhost:2002"]},
        "task": {"type": "worker", "index": 1}}


def test_parse_tf_config_accepts_a_worker_cluster():
    assert multi_worker.parse_tf_config(json.dumps(GOOD)) == (GOOD["cluster"]["worker"], 1)


@pytest.mark.parametrize("value,expected", [
    (None, "not set"),
    ("", "not set"),
    ("{oops", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'no "cluster"'),
    (json.dumps(dict(GOOD, cluster={"worker": ["a:1"], "ps": ["b:2"]})), "['ps']"),
    (json.dumps(dict(GOOD, cluster={"chief": ["c:1"], "worker": ["a:1"]})), "['chief']"),
    (json.dumps(dict(GOOD, cluster={"worker": []})), "non-empty list"),
    (json.dumps(dict(GOOD, cluster={"worker": ["localhost"]})), "host:port"),
    (json.dumps(dict(GOOD, cluster={"worker": ["a:1", "a:1"]})), "twice"),
    (json.dumps(dict(GOOD, task={"type": "ps", "index": 0})), "task must be"),
    (json.dumps(dict(GOOD, task={"type": "worker"})), "task.index"),
    (json.dumps(dict(GOOD, task={"type": "worker", "index": 2})), "[0, 1]"),
    (json.dumps(dict(GOOD, task={"type": "worker", "index": True})), "task.index"),
])
def test_parse_tf_config_names_the_variable_and_what_is_wrong(value, expected):
    with pytest.raises(multi_worker.TFConfigError) as e:
        multi_worker.parse_tf_config(value)
    assert "TF_CONFIG" in str(e.value) and expected in str(e.value)


@pytest.mark.parametrize("tf_config", [None, '{"cluster": {"worker": ["localhost:1"]}}'])
def test_cli_without_a_usable_tf_config_fails_with_one_line(tmp_path, tf_config):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    out = subprocess.run(
        [sys.executable, "-m", "avrnn_tf.train", "--config=configs/vrnn_gauss.py:tiny",
         f"--workdir={tmp_path / 'w'}", "--strategy=multi_worker"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 2, out.stderr
    assert "TF_CONFIG" in out.stderr and "Traceback" not in out.stderr
    assert not os.path.exists(tmp_path / "w" / "checkpoints")


# ------------------------------------------------------------------------- two workers
def free_ports(n):
    """n distinct free localhost ports (bound, then released for the workers to take)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    except OSError as e:
        pytest.skip(f"cannot bind a localhost port for the workers: {e}")
    finally:
        for s in sockets:
            s.close()


def run_workers(workdir, config, *extra, num_workers=2, timeout=300):
    """Runs `num_workers` avrnn-train processes as one MultiWorkerMirroredStrategy cluster on
    localhost; returns their CompletedProcess-like (returncode, stdout, stderr) triples. Every
    worker is killed if any of them has not finished within `timeout` seconds."""
    addresses = [f"localhost:{p}" for p in free_ports(num_workers)]
    procs = []
    for i in range(num_workers):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "avrnn_tf.train", f"--config={config}", f"--workdir={workdir}",
             "--strategy=multi_worker", "--progress=none", *extra],
            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="3")))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            results.append((p.returncode, out, err))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the workers did not finish within {timeout} s (a collective hung?)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, (code, _, err) in enumerate(results):
        assert code == 0, f"worker {i} exited with {code}:\n{err[-3000:]}"
    return results


def digests(results):
    found = [re.findall(r"worker (\d+) of (\d+): final weights digest (\w+)", out)
             for _, out, _ in results]
    assert all(len(f) == 1 for f in found), [out for _, out, _ in results]
    return [f[0] for f in found]


def checkpoint_values(prefix):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.endswith("VARIABLE_VALUE")}


class Difference(float):
    """The largest absolute difference of two checkpoints, with the variable it is in (repr)."""

    def __repr__(self):
        return f"{float(self)!r} (in {self.key})"


def max_difference(a, b):
    """Absolute for weights and optimizer state; relative for the validation values the run keeps
    (checkpointing.ValidationCounters: a best ELBO of hundreds of nats, which validation on two
    workers sums in another order)."""
    assert sorted(a) == sorted(b)  # the same variables (model, optimizers, counters)

    def diff(k):
        d = np.abs(a[k].astype(np.float64) - b[k])
        return float(np.max(d / np.maximum(1.0, np.abs(a[k])) if k.startswith("validation/") else d))

    key, value = max(((k, diff(k)) for k in a if a[k].dtype.kind == "f"), key=lambda kv: kv[1])
    d = Difference(value)
    d.key = key
    return d


def single_run(workdir, config, *extra, env=None):
    result = run_cli("avrnn_tf.train", f"--config={config}", f"--workdir={workdir}",
                     "--progress=none", *extra, env=env)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_workers_train_vrnn_as_one_process_does_on_the_global_batch(tmp_path, tf):
    steps = ["--config.train.steps=6", "--config.train.checkpoint_every=3"]
    config = "configs/vrnn_gauss.py:tiny"
    results = run_workers(tmp_path / "mw", config, *steps)
    (i0, n0, d0), (i1, n1, d1) = digests(results)
    assert (i0, n0, i1, n1) == ("0", "2", "1", "2")
    assert d0 == d1  # every worker holds bitwise the same weights

    # The chief wrote the workdir; the other worker's scratch directory is gone.
    mw = tmp_path / "mw"
    for name in ("config.json", "data_stats.json", "checkpoints/best.json", "tensorboard"):
        assert (mw / name).exists(), name
    assert not (mw / ".worker-1").exists()
    assert [p for p in os.listdir(mw / "samples")]  # samples are the chief's

    # The same update as one process on the whole global batch (data.batch_size = 8 = 2 x 4).
    single_run(tmp_path / "single", config, *steps)
    final = checkpoint_values(str(mw / "checkpoints" / "ckpt-6"))
    assert max_difference(final, checkpoint_values(str(tmp_path / "single/checkpoints/ckpt-6"))) < 1e-5
    assert max_difference(final, checkpoint_values(str(mw / "checkpoints" / "ckpt-3"))) > 1e-3
    events = read_events(str(mw / "tensorboard"))
    reference = read_events(str(tmp_path / "single" / "tensorboard"))
    for tag in ("valid/elbo_per_frame", "valid/kl_per_frame"):
        assert [s for s, _ in events[tag]] == [s for s, _ in reference[tag]] == [0, 6]
        for (_, a), (_, b) in zip(events[tag], reference[tag]):
            assert a == pytest.approx(b, rel=1e-4), tag


def test_two_workers_train_and_resume_avrnn_as_one_process_does(tmp_path, tf):
    """A-VRNN: three optimizers, a fresh batch per phase ([P, B, ...] elements split along B),
    and a resumed run: both workers restore the chief's checkpoint."""
    config = "configs/avrnn.py:tiny"
    quiet = ["--config.train.audio_every=0", "--config.train.num_final_samples=0"]  # Unchecked.
    mw = tmp_path / "mw"
    run_workers(mw, config, "--config.train.steps=3", *quiet)
    results = run_workers(mw, config, "--config.train.steps=6", *quiet)
    assert all("resuming from" in out and "ckpt-3 at step 3" in out for _, out, _ in results)
    (_, _, d0), (_, _, d1) = digests(results)
    assert d0 == d1

    single_run(tmp_path / "single", config, "--config.train.steps=6", *quiet)
    final = checkpoint_values(str(mw / "checkpoints" / "ckpt-6"))
    assert max_difference(final, checkpoint_values(str(tmp_path / "single/checkpoints/ckpt-6"))) < 1e-5
    assert max_difference(final, checkpoint_values(str(mw / "checkpoints" / "ckpt-3"))) > 1e-3
    # The separate-batch A-VRNN step on two mirrored devices too (the same batch-axis split).
    single_run(tmp_path / "mirrored", config, "--config.train.steps=6", "--strategy=mirrored",
               *quiet, env={"AVRNN_VIRTUAL_CPUS": "2"})
    assert max_difference(final, checkpoint_values(
        str(tmp_path / "mirrored/checkpoints/ckpt-6"))) < 1e-5


def test_a_signal_to_one_worker_stops_both_at_the_same_step_then_both_resume(tmp_path):
    """SIGTERM to worker 1 only: it is agreed at the next multiple of SIGNAL_SYNC_EVERY steps, so
    both workers save the same checkpoint (a collective) and exit 143; rerunning resumes both."""
    import signal
    import threading
    import time

    from avrnn_tf import loop

    workdir = tmp_path / "run"
    addresses = [f"localhost:{p}" for p in free_ports(2)]
    common = ["--config=configs/vrnn_gauss.py:tiny", f"--workdir={workdir}",
              "--strategy=multi_worker", "--progress=bar", "--config.train.log_every=5",
              "--config.train.steps=100000",
              "--config.train.eval_every=100000", "--config.train.checkpoint_every=100000",
              "--config.train.audio_every=0", "--config.train.num_final_samples=0"]
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "avrnn_tf.train", *common], cwd=PROJECT_ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="3")))
    outputs, errors = [[], []], [[], []]
    readers = [threading.Thread(target=lambda f=f, o=o: o.extend(f), daemon=True)
               for p, o, e in zip(procs, outputs, errors)
               for f, o in ((p.stdout, o), (p.stderr, e))]
    for r in readers:
        r.start()
    try:
        # Wait until training has taken steps (a progress line, every 5 steps; a fixed sleep let
        # a loaded machine signal before the first step), then signal worker 1 alone.
        deadline = time.time() + 240
        stepped = re.compile(r"^step [1-9]\d*/100000 ")
        while not any(stepped.match(line) for o in outputs for line in list(o)):
            assert time.time() < deadline and all(p.poll() is None for p in procs), \
                ("the workers did not start training", ["".join(e)[-2000:] for e in errors])
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for r in readers:
        r.join(timeout=10)
    assert codes == [128 + signal.SIGTERM] * 2, (codes, ["".join(e)[-2000:] for e in errors])
    stops = [re.findall(r"stopped by SIGTERM at step (\d+)", "".join(o + e))
             for o, e in zip(outputs, errors)]
    assert all(len(s) == 1 for s in stops), (outputs, errors)
    step = int(stops[0][0])
    assert int(stops[1][0]) == step and step > 0 and step % loop.SIGNAL_SYNC_EVERY == 0
    assert "another worker was stopped by a signal" in "".join(outputs[0])
    assert os.path.exists(workdir / "checkpoints" / f"ckpt-{step}.index")
    # Both resume from that checkpoint and finish ten steps later with equal weights.
    results = run_workers(workdir, "configs/vrnn_gauss.py:tiny", f"--config.train.steps={step + 10}",
                          "--config.train.eval_every=100000", "--config.train.audio_every=0",
                          "--config.train.num_final_samples=0", "--force_resume")
    for _, out, _ in results:
        assert f"done at step {step + 10}" in out, out
    (_, _, d0), (_, _, d1) = digests(results)
    assert d0 == d1
