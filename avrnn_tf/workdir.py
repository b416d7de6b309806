"""Workdir safety: one run at a time, no resuming a different experiment, writes that can't tear.

* `WorkdirLock` holds an exclusive `flock` on `<workdir>/.lock` for the life of the process; a second
  `avrnn-train` on the same workdir stops at once with the first one's pid. The kernel drops the
  lock when the holder dies, even by SIGKILL, so a stale lock never blocks a restart.
* `check_resume_config` compares the config being started with the one saved in the workdir and
  refuses (listing every differing field) when they describe a different experiment. Fields that
  only say how long or how often (steps, logging and checkpoint cadence, audio, eval size) may change.
* `check_writable` writes and removes a probe file and checks free space before training starts.
* `atomic_write_text` writes a temporary file in the same directory, fsyncs it and renames it over
  the target, so readers see the old or the new file, never half of one. TensorFlow's checkpoint
  writer already works this way (temporary files, then the `checkpoint` index is replaced).
"""

import errno
import fcntl
import json
import os
import shutil
import tempfile

# Fields that can change between invocations of one run without changing what is being trained.
MAY_CHANGE = {
    "train.steps", "train.log_every", "train.eval_every", "train.checkpoint_every",
    "train.keep_checkpoints", "train.audio_every", "train.num_audio_clips", "train.audio_seconds",
    "train.num_final_samples", "train.max_nonfinite_steps", "data.valid_batch_size",
    "data.max_valid_utterances",
}


class WorkdirError(RuntimeError):
    """The workdir cannot be used as asked (locked, another experiment, unwritable, full)."""


def atomic_write_text(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class WorkdirLock:
    """An exclusive advisory lock on a workdir, released on `release()` or process exit."""

    def __init__(self, workdir):
        self.path = os.path.join(workdir, ".lock")
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "unknown"
            self.file.close()
            raise WorkdirError(
                f"workdir {workdir!r} is in use by another training process (pid {holder}); "
                "wait for it to finish or stop it, or use another --workdir") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()

    def release(self):
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


def check_writable(workdir, needed_bytes=0):
    """Creates `workdir` if needed; raises WorkdirError if it cannot be written or lacks space."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"workdir {workdir!r} exists and is not a directory")
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write-test")
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        os.unlink(probe)
    except OSError as e:
        raise WorkdirError(f"workdir {workdir!r} is not writable: {e.strerror or e}") from None
    free = shutil.disk_usage(workdir).free
    if free < needed_bytes:
        raise WorkdirError(
            f"workdir {workdir!r} has {free / 2**20:.1f} MiB free but checkpoints need about "
            f"{needed_bytes / 2**20:.1f} MiB; free some space or use another --workdir")


def is_disk_full(error):
    """True if an exception (OSError or a TensorFlow error) reports a full disk."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error).lower()
    return "no space left" in text or "quota exceeded" in text


def _flatten(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def with_defaults(saved, defaults):
    """The saved config dict with every field it lacks taken from `defaults` (a nested dict):
    fields added to the package after a run was written mean what their default means."""
    out = dict(saved)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = with_defaults(out[key], value)
    return out


def config_differences(saved, current):
    """["field: saved -> current", ...] for fields that may not change between invocations."""
    a, b = dict(_flatten(saved)), dict(_flatten(current))
    return [f"{name}: {a.get(name, '<absent>')!r} -> {b.get(name, '<absent>')!r}"
            for name in sorted(set(a) | set(b))
            if name not in MAY_CHANGE and a.get(name) != b.get(name)]


def check_model_meaning(saved, path):
    """Refuses (WorkdirError, one line) a saved config dict whose model.kind meant another model
    when it was written.

    Until issue 12 kind "storn" was VRNN-I (a VRNN with a fixed N(0, I) prior); it now names
    Bayer & Osendorfer's STORN, a different network. A config.json written before that change has
    no model.srnn_posterior (a field added by the same change and written by every run since),
    so "storn" without it is the old model: refused, never silently rebuilt as the new one.
    """
    model = saved.get("model") if isinstance(saved, dict) else None
    if isinstance(model, dict) and model.get("kind") == "storn" and "srnn_posterior" not in model:
        raise WorkdirError(
            f"{path}: model.kind 'storn' in this run means VRNN-I (a VRNN with a fixed N(0, I) "
            f"prior), which is now called 'vrnn_i'; 'storn' now names STORN with its own "
            f"recognition RNN, a different model: set \"kind\": \"vrnn_i\" in this config.json to "
            f"use the run (same network and checkpoints)")


def check_resume_config(workdir, config_dict, force=False, defaults=None):
    """Refuses to continue a run in `workdir` whose saved config differs in an experiment field.

    Fields the saved config lacks count as their value in `defaults` (see `with_defaults`).
    Returns the list of differences (empty when there is nothing to compare or they agree).
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        saved = json.load(f)
    check_model_meaning(saved, path)
    saved = with_defaults(saved, defaults or {})
    diffs = config_differences(saved, config_dict)
    if diffs and not force:
        raise WorkdirError(
            f"workdir {workdir!r} holds a run of a different config; refusing to resume it with:\n  "
            + "\n  ".join(diffs)
            + "\nuse another --workdir, or pass --force_resume to continue this run with the new "
              "config anyway")
    return diffs
