"""Soak test: train with random SIGKILLs and restarts, then check nothing was lost or corrupted.

For N cycles it starts `avrnn-train` on one workdir, watches its TensorBoard event file until the
process has logged a training step (start-up - importing TensorFlow, building, tracing - takes
seconds and varies from machine to machine, so a fixed delay from launch would mostly kill during
start-up), kills it with SIGKILL a random [0, max_delay] seconds later, and restarts it with the
same command; then it lets the run finish and checks that

  * the checkpointed step never went backwards across restarts (monotone),
  * every checkpoint left in the workdir reads back completely (no torn files),
  * the final weights equal those of an uninterrupted run of the same command (bitwise: the runs
    use `train.deterministic`),
  * how many steps each kill cost (the last step logged before the kill minus the step resumed
    from), which is bounded by `train.checkpoint_every`, and
  * at least half of the kills landed mid-training (the killed process had logged a step beyond
    the one it resumed from); otherwise the soak tested start-up, not training, and fails.

  python -m avrnn_tf.experiments.soak --cycles=20 --workdir=/tmp/soak

It prints one JSON summary line (and writes it to <workdir>/soak.json); exit status 1 when a check
fails. CI runs a two-cycle soak (tests/test_hardening.py::test_item8_soak_kills_mid_training).
"""

import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

from absl import flags

from avrnn_tf import cli
from avrnn_tf.tf_setup import import_tensorflow

FLAGS = flags.FLAGS


def define_flags():
    """Defined only when the program runs (importing this module defines no global flags)."""
    flags.DEFINE_integer("cycles", 20, "How many kill-and-restart cycles.")
    flags.DEFINE_string("workdir", "/tmp/avrnn_soak", "Scratch directory (emptied first).")
    flags.DEFINE_string("config", "configs/vrnn_gauss.py:tiny", "Config of the soaked run.")
    flags.DEFINE_integer("steps", 400, "Total training steps of the run.")
    flags.DEFINE_integer("checkpoint_every", 10, "Checkpoint interval of the run.")
    flags.DEFINE_float("max_delay", 2.0, "Kill a random [0, max_delay] seconds after the process "
                       "has logged its first training step.")
    flags.DEFINE_float("start_timeout", 300.0, "Seconds to wait for a process's first step.")
    flags.DEFINE_integer("seed", 0, "Seed of the kill delays.")


PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def command(workdir):
    return [sys.executable, "-m", "avrnn_tf.train", f"--config={FLAGS.config}",
            f"--workdir={workdir}", "--progress=none", "--config.train.deterministic=True",
            f"--config.train.steps={FLAGS.steps}", "--config.train.log_every=1",
            f"--config.train.checkpoint_every={FLAGS.checkpoint_every}",
            f"--config.train.eval_every={max(FLAGS.steps // 4, 1)}",
            "--config.train.audio_every=0", "--config.train.num_final_samples=0"]


def latest_step(tf, workdir):
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def event_files(workdir):
    return set(glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*")))


def last_logged_step(tf, workdir, ignore=()):
    """The largest train/loss step in the event files of `workdir` (those in `ignore` left out)."""
    last = 0
    for path in event_files(workdir) - set(ignore):
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                if any(v.tag == "train/loss" for v in event.summary.value):
                    last = max(last, event.step)
        except tf.errors.DataLossError:
            pass  # The killed writer's last record may be cut off; earlier records are whole.
    return last


def wait_for_first_step(tf, proc, workdir, old_files, resumed_from):
    """Polls the event files `proc` writes (those not in `old_files`) until they hold a step
    beyond `resumed_from`; True when one appears, False when the process ends or time runs out."""
    deadline = time.time() + FLAGS.start_timeout
    while proc.poll() is None and time.time() < deadline:
        if last_logged_step(tf, workdir, old_files) > resumed_from:
            return True
        time.sleep(0.1)
    return False


def read_all(tf, prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if not k.startswith("save_counter") and "_CHECKPOINTABLE" not in k}


def main(argv):
    del argv
    tf = import_tensorflow()
    import numpy as np

    shutil.rmtree(FLAGS.workdir, ignore_errors=True)
    reference, soaked = (os.path.join(FLAGS.workdir, n) for n in ("reference", "soaked"))
    start = time.time()
    subprocess.run(command(reference), cwd=PROJECT_ROOT, check=True, capture_output=True)
    reference_seconds = time.time() - start

    rng = random.Random(FLAGS.seed)
    steps, lost, corrupt, kills, mid_training = [], [], [], 0, 0
    killed_at = []  # Per kill: the last step the killed process logged.
    for cycle in range(FLAGS.cycles):
        resumed_from = latest_step(tf, soaked)
        old_files = event_files(soaked)
        proc = subprocess.Popen(command(soaked), cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if wait_for_first_step(tf, proc, soaked, old_files, resumed_from):
            time.sleep(rng.uniform(0.0, FLAGS.max_delay))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            proc.wait()
            killed_at.append(last_logged_step(tf, soaked, old_files))
            mid_training += killed_at[-1] > resumed_from
        proc.wait()
        logged = last_logged_step(tf, soaked)
        now = latest_step(tf, soaked)
        steps.append(now)
        lost.append(max(0, logged - now) if logged > resumed_from else 0)
        for index in glob.glob(os.path.join(soaked, "checkpoints", "**", "ckpt-*.index"),
                               recursive=True):
            try:
                read_all(tf, index[:-len(".index")])
            except Exception as e:  # pylint: disable=broad-except
                corrupt.append(f"{index}: {type(e).__name__}")
        print(f"soak: cycle {cycle + 1}/{FLAGS.cycles}: checkpoint step {now}, "
              f"last logged step {logged}", flush=True)
        if now >= FLAGS.steps:
            break
    final = subprocess.run(command(soaked), cwd=PROJECT_ROOT, capture_output=True, text=True)
    want = read_all(tf, os.path.join(reference, "checkpoints", f"ckpt-{FLAGS.steps}"))
    got = read_all(tf, os.path.join(soaked, "checkpoints", f"ckpt-{FLAGS.steps}"))
    mismatched = sorted(k for k in want if k not in got or not np.array_equal(want[k], got[k]))
    summary = {
        "cycles": len(steps), "kills": kills, "kills_mid_training": mid_training,
        "steps_logged_at_each_kill": killed_at, "steps": FLAGS.steps,
        "checkpoint_every": FLAGS.checkpoint_every, "final_exit_code": final.returncode,
        "checkpoint_steps_after_each_kill": steps,
        "monotone": all(a <= b for a, b in zip(steps, steps[1:])),
        "corrupt_checkpoints": corrupt, "steps_lost_per_kill": lost,
        "max_steps_lost": max(lost or [0]),
        "final_weights_equal_uninterrupted": not mismatched and len(want) > 0,
        "mismatched_tensors": mismatched[:10], "reference_seconds": round(reference_seconds, 1),
        "total_seconds": round(time.time() - start, 1),
    }
    text = json.dumps(summary)
    print(text)
    with open(os.path.join(FLAGS.workdir, "soak.json"), "w") as f:
        f.write(text + "\n")
    ok = summary["monotone"] and not corrupt and summary["final_weights_equal_uninterrupted"] \
        and final.returncode == 0 and kills > 0 and 2 * mid_training >= kills
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    define_flags()
    cli.run(main, "soak")
