"""Checkpoints of a training run: save (once per step), best, restore, rotation, disk check.

Object graph (what restore.py reads without a trainer):

    tf.train.Checkpoint(network=<the network>, model=<the trainer>, optimizer=<its optimizer>,
                        validation=<ValidationCounters: early stopping, plateau>
                        [, training_weights=<averaging.WeightAverage's copy>])

With train.ema_decay > 0 the network in every checkpoint holds the averaged weights and
`training_weights` the weights training steps (averaging.py), so readers of `network` get the
average and a resumed run swaps the two back.

The network is its own root child, so evaluation and export restore it alone
(`tf.train.Checkpoint(network=...)`). The trainer still holds the network (model/network/...), and
TensorFlow writes a shared object once, so the file holds each weight once. Checkpoints written
before the network was a root child (by 9f46e5e and earlier) reach it only as model/network;
restore.py falls back to that path, and a training run restores them through `model` as before.

Files: `checkpoints/ckpt-<step>` (the newest `train.keep_checkpoints` kept) and
`checkpoints/best/ckpt-<step>` with best.json. On start, the leftovers of a save killed half way
(`ckpt-N_temp/` directories, `checkpoint.tmp*` state files) are removed: TensorFlow never reads
them, and nothing else refers to them.
"""

import glob
import json
import math
import os
import shutil

import numpy as np
import tensorflow as tf

from avrnn_tf import averaging
from avrnn_tf import restore as restore_lib
from avrnn_tf import workdir as workdir_lib


class SaveFailed(RuntimeError):
    """A checkpoint could not be written (the message says why and what is intact)."""


def checkpoint_bytes(folder):
    """Bytes of the checkpoint files (ckpt-*) directly in `folder`."""
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(folder, "ckpt-*"))
               if os.path.isfile(p))


def remove_leftovers(folder, log):
    """Removes what a save killed half way leaves in `folder` and `folder`/best."""
    removed = []
    for sub in (folder, os.path.join(folder, "best")):
        for path in glob.glob(os.path.join(sub, "ckpt-*_temp")) + \
                glob.glob(os.path.join(sub, "checkpoint.tmp*")):
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
            removed.append(os.path.basename(path))
    if removed:
        log(f"removed {len(removed)} leftover(s) of an interrupted save in {folder}: "
            f"{', '.join(sorted(removed))}")


class ValidationCounters(tf.Module):
    """What early stopping and the plateau decay remember between validation passes, saved in
    every checkpoint (root child `validation`), so a resumed run stops and decays where an
    uninterrupted one would. (The learning rate itself is the optimizer's checkpointed variable.)

    best          the lowest validation loss so far (minus the bound the run trains); +inf at first
    since_best    validation rounds since `best` was reached (early stopping counts these)
    since_change  rounds since the last improvement or decay (the plateau decay counts these)
    evaluated     the step of the last validation pass (-1: none yet)
    """

    def __init__(self):
        super().__init__(name="validation")
        self.best = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best")
        self.since_best = tf.Variable(0, dtype=tf.int64, trainable=False, name="since_best")
        self.since_change = tf.Variable(0, dtype=tf.int64, trainable=False, name="since_change")
        self.evaluated = tf.Variable(-1, dtype=tf.int64, trainable=False, name="evaluated")

    def stopped(self, patience):
        """Whether early stopping (`patience` rounds; 0 = never) has ended the run."""
        return 0 < patience <= int(self.since_best.numpy())

    def record(self, loss, step, train, count_from=0):
        """Counts one validation pass of `loss` at `step` under config.train `train`; returns
        (improved, the decay factor or None when the learning rate does not change). A non-finite
        loss never improves. Rounds before step `count_from` (config.kl_anneal_end: the KL
        weight still annealing) keep a better loss but are not counted against the run."""
        improved = math.isfinite(loss) and loss < float(self.best.numpy())
        self.evaluated.assign(step)
        if improved:
            self.best.assign(loss)
            self.since_best.assign(0)
            self.since_change.assign(0)
            return True, None
        if step < count_from:
            return False, None
        self.since_best.assign_add(1)
        self.since_change.assign_add(1)
        if not train.lr_decay_on_plateau or int(self.since_change.numpy()) < train.lr_plateau_patience:
            return False, None
        self.since_change.assign(0)
        return False, train.lr_decay_on_plateau


class Checkpointer:
    """Save, best, restore and rotation for one run.

    Args:
      network, trainer: the run's network and (built) trainer.
      workdir: the directory this process writes; read_dir: where checkpoints are read (the
        chief's workdir on a multi-worker run; else the same).
      keep: checkpoints kept by rotation.
      collective: a multi_worker.Collective (saving is a collective: the chief decides for all),
        or None on one worker.
      log: prints one line.
    """

    def __init__(self, network, trainer, workdir, read_dir, keep, collective, log, average=None):
        self.trainer, self.collective, self.log = trainer, collective, log
        self.average = average
        self.validation = ValidationCounters()
        extra = {averaging.CHECKPOINT_CHILD: average.trackable} if average is not None else {}
        self.checkpoint = tf.train.Checkpoint(network=network, model=trainer,
                                              optimizer=trainer.optimizer, validation=self.validation,
                                              **extra)
        # Checkpoints written before the counters existed restore through this one (the counters
        # keep their initial values: no validation recorded yet).
        self.without_counters = tf.train.Checkpoint(network=network, model=trainer,
                                                    optimizer=trainer.optimizer, **extra)
        folder = os.path.join(workdir, "checkpoints")
        if os.path.isdir(folder):
            remove_leftovers(folder, log)
        self.manager = tf.train.CheckpointManager(self.checkpoint, folder, max_to_keep=keep,
                                                  checkpoint_name="ckpt")
        self.best_manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(folder, "best"), max_to_keep=1, checkpoint_name="ckpt")
        self.restore_manager = self.manager  # Non-chief workers restore the chief's checkpoints.
        if read_dir != workdir:
            self.restore_manager = tf.train.CheckpointManager(
                self.checkpoint, os.path.join(read_dir, "checkpoints"), max_to_keep=keep,
                checkpoint_name="ckpt")
        self.keep = keep
        self.damaged = set()  # Checkpoints found unreadable by `restore` (rewritten at their step).

    @property
    def step(self):
        return int(self.trainer.optimizer.iterations.numpy())

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def check_disk(self, workdir):
        """Refuses to start without room for the checkpoints still to be written.

        A checkpoint holds the weights and the optimizer's slots. Rotation keeps `keep` of them
        plus best, and deletes the oldest only after a new one is complete, so the run needs one
        more than it keeps: (keep + 2) checkpoints, of which those already on disk (they are
        overwritten or rotated away) need no new space, but at least one new checkpoint does.
        """
        size = 4 * sum(int(np.prod(v.shape)) for v in self.trainer.variables) + \
            4 * sum(int(np.prod(v.shape)) for v in self.trainer.optimizer.variables)
        present = checkpoint_bytes(self.manager.directory) + \
            checkpoint_bytes(self.best_manager.directory)
        workdir_lib.check_writable(workdir, needed_bytes=max(size, size * (self.keep + 2) - present))

    def restore(self):
        """Restores the newest readable checkpoint (an unreadable one is reported, remembered in
        `damaged` and skipped); returns the step (0 when there is none)."""
        for path in reversed(self.restore_manager.checkpoints):
            try:
                children = restore_lib.root_children(path)
                root = self.checkpoint if "validation" in children else self.without_counters
                root.restore(path).assert_existing_objects_matched()
                if self.average is not None:
                    self.average.after_restore(averaging.CHECKPOINT_CHILD in children)
            except Exception as e:  # A damaged file fails in many ways (DataLoss, IndexError, ...).
                self.log(f"checkpoint {path} is unreadable ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]}); trying the previous one")
                self.damaged.add(os.path.basename(path))
                continue
            self.log(f"resuming from {path} at step {self.step}")
            return self.step
        if self.restore_manager.checkpoints:
            raise workdir_lib.WorkdirError(
                f"no checkpoint in {self.restore_manager.directory!r} could be read; move the "
                "directory away to start the run afresh")
        return self.step

    def weights_finite(self):
        return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.trainer.variables
                   if "float" in str(v.dtype)) and (self.average is None or self.average.finite())

    def save(self, manager=None):
        """Writes a checkpoint of the current step (once per step) unless a weight is non-finite.

        A checkpoint of this step that `restore` found unreadable is written again. Returns the
        path (None when not saved); raises SaveFailed when the write fails.
        """
        manager = manager or self.manager
        name = f"ckpt-{self.step}"
        done = manager.latest_checkpoint == os.path.join(manager.directory, name) and \
            not (manager is self.manager and name in self.damaged)
        finite = done or self.weights_finite()
        if self.collective is not None:  # Saving is collective: the chief decides for all.
            code = int(self.collective.broadcast(2 * done + finite))
            done, finite = code >= 2, code % 2 == 1
        if done:
            return manager.latest_checkpoint
        if not finite:
            self.log(f"not saving a checkpoint at step {self.step}: some weights are not finite; "
                     f"the last checkpoint ({manager.latest_checkpoint}) is kept")
            return None
        try:
            with averaging.averaged(self.average):  # `network` holds the average (averaging.py).
                path = manager.save(checkpoint_number=self.step)
        except (tf.errors.OpError, OSError) as e:
            what = "the disk is full" if workdir_lib.is_disk_full(e) else str(e).splitlines()[0]
            raise SaveFailed(
                f"could not write the checkpoint of step {self.step} in {manager.directory!r}: "
                f"{what}. The previous checkpoint ({manager.latest_checkpoint}) is intact; free "
                "space and rerun the same command to resume from it") from None
        self.damaged.discard(name)
        return path

    def save_best(self, valid_loss, best_path, criterion):
        """Keeps checkpoints/best/ at the lowest `valid_loss` seen (best.json at `best_path`
        records it, with the name of the validation metric it is the negation of)."""
        best = json.load(open(best_path)) if os.path.exists(best_path) else None
        worse = not math.isfinite(valid_loss) or (best and best["valid_loss"] <= valid_loss)
        if self.collective is not None:  # Saving is collective: the chief decides for all.
            worse = self.collective.broadcast(float(bool(worse))) > 0.5
        if worse:
            return
        if self.save(self.best_manager):
            workdir_lib.atomic_write_text(best_path, json.dumps(
                {"step": self.step, "valid_loss": valid_loss, "criterion": criterion,
                 "value": -valid_loss, "checkpoint": self.best_manager.latest_checkpoint},
                indent=2))
