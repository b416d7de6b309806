"""Restoring a trained network from a workdir written by `avrnn-train` (evaluation and export).

The trainer is rebuilt exactly as training built it (`loop.build_trainer`, so A-VRNN's critic and
optimizers exist too) and restored through the same `tf.train.Checkpoint(model=..., optimizer=...)`
the training loop writes. Then every network weight is checked to equal some tensor of the
checkpoint: a restore can succeed while matching nothing for a variable that is not a named child
of the model, and a freshly initialised weight never equals a saved one exactly, so the check
catches a silent partial restore.
"""

import os

import numpy as np
import tensorflow as tf


class RestoreError(ValueError):
    """The workdir holds no usable checkpoint for its config."""


def find_checkpoint(workdir, checkpoint=""):
    """The checkpoint prefix: the latest, or one named "ckpt-N", "N" or a path."""
    folder = os.path.join(workdir, "checkpoints")
    if not checkpoint:
        latest = tf.train.latest_checkpoint(folder) if os.path.isdir(folder) else None
        if not latest:
            raise RestoreError(f"{folder}: holds no checkpoint; train first (avrnn-train)")
        return latest
    candidates = [checkpoint, os.path.join(folder, checkpoint),
                  os.path.join(folder, f"ckpt-{checkpoint}")]
    for path in candidates:
        if os.path.exists(path + ".index"):
            return path
    available = sorted(n[:-len(".index")] for n in os.listdir(folder)
                       if n.endswith(".index")) if os.path.isdir(folder) else []
    raise RestoreError(f"checkpoint {checkpoint!r} not found in {folder} "
                       f"(available: {', '.join(available) or 'none'})")


def verify_restored(network, path):
    """Raises RestoreError unless every trainable network weight equals a checkpoint tensor.

    (Non-trainable state such as a Keras SeedGenerator's counter is not a weight and may be
    absent from the checkpoint.)"""
    reader = tf.train.load_checkpoint(path)
    by_shape = {}
    for key, shape in reader.get_variable_to_shape_map().items():
        by_shape.setdefault(tuple(shape), []).append(key)
    missing = [v.path for v in network.trainable_variables
               if not any(np.array_equal(v.numpy(), reader.get_tensor(k))
                          for k in by_shape.get(tuple(v.shape), []))]
    if missing:
        raise RestoreError(f"{path}: restoring left {len(missing)} weight(s) of the network at "
                           f"their initial values, e.g. {missing[:3]}")


def restore_network(config, workdir, frame_size, checkpoint=""):
    """Rebuilds and restores the run's network; returns (network, checkpoint path, step)."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf import models
    from avrnn_tf import registry

    path = find_checkpoint(workdir, checkpoint)
    network = registry.create_network(config_lib.model_spec(config, int(frame_size)))
    trainer = loop.build_trainer(config, network)
    status = tf.train.Checkpoint(model=trainer, optimizer=trainer.optimizer).restore(path)
    try:
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise RestoreError(f"{path}: does not hold the network of {workdir}/config.json "
                           f"({str(e).splitlines()[0]})") from None
    verify_restored(network, path)
    return network, path, int(trainer.optimizer.iterations.numpy())
