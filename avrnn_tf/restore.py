"""Restoring a trained network from a workdir written by `avrnn-train`, without the trainer.

`load_run(workdir, checkpoint)` is the one way evaluation, export, the experiments, the data
benchmark and diagnostics read a run: it validates `config.json`, reads `data_stats.json`, builds
the network from the config and restores only the network (checkpointing.py: the network is its
own root child of the checkpoint; checkpoints written before that, which reach it only through the
trainer as model/network, are read through that path). No optimizer, critic or trainer is built,
and nothing in the workdir is written.

A run trained with weight averaging (`train.ema_decay`, averaging.py) keeps the averaged weights
as the checkpoint's network, so they are what is restored here (the line says so).

Then every network weight is checked to equal some tensor of the checkpoint: a restore can succeed
while matching nothing for a variable that is not a named child of the network, and a freshly
initialised weight never equals a saved one exactly, so the check catches a silent partial restore.

Which checkpoint: by default the run's best (checkpoints/best/, chosen by avrnn-train on the
validation value of the run's own objective, recorded in checkpoints/best.json), else the latest
when the run has no best one yet; "latest", "best", "ckpt-N", "N" or a path ask for one.
An unreadable checkpoint (a cut or corrupt file) is named in one line: with no checkpoint named
(or "latest"), the next newest readable one is used instead (`warn` reports the fallback); a named
one stops with RestoreError.
"""

import collections
import json
import os
import re

import numpy as np

from avrnn_tf.tf_setup import import_tensorflow


class RestoreError(ValueError):
    """The workdir holds no usable checkpoint for its config (one line, naming the file)."""


LoadedRun = collections.namedtuple("LoadedRun", "config stats network step checkpoint why")
LoadedRun.__doc__ = """What `load_run` read; `why` says which checkpoint this is and why it was chosen."""

STATS_FIELDS = ("sample_rate", "frame_size", "mean", "std")


def _read_json(path, what):
    if not os.path.exists(path):
        raise RestoreError(f"{path}: missing ({what}); is this a workdir written by avrnn-train?")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise RestoreError(f"{path}: cannot read as JSON ({e})") from None


def read_config(workdir):
    """The validated ConfigDict saved by avrnn-train in `workdir` (fields added to the package
    since the run was written take their defaults)."""
    import ml_collections

    from avrnn_tf import config as config_lib
    from avrnn_tf import workdir as workdir_lib

    if not os.path.isdir(workdir):
        raise RestoreError(f"workdir {workdir!r} does not exist")
    path = os.path.join(workdir, "config.json")
    config = _read_json(path, "the run's config")
    if not isinstance(config, dict):
        raise RestoreError(f"{path}: expected a JSON object, found {type(config).__name__}")
    try:
        workdir_lib.check_model_meaning(config, path)
    except workdir_lib.WorkdirError as e:
        raise RestoreError(str(e)) from None
    config = workdir_lib.with_defaults(config, config_lib.base_config().to_dict())
    try:
        return config_lib.validate(ml_collections.ConfigDict(config))
    except config_lib.ConfigError as e:
        raise RestoreError(f"{path}: {e}") from None


def read_stats(workdir):
    """data_stats.json of `workdir` (sample rate, frame size, standardization), checked."""
    path = os.path.join(workdir, "data_stats.json")
    stats = _read_json(path, "the data statistics; the run never started training")
    for key in STATS_FIELDS:
        if key not in stats:
            raise RestoreError(f"{path}: has no field {key!r}")
    return stats


def checkpoints_newest_first(workdir):
    """The checkpoint prefixes listed in checkpoints/checkpoint, newest first."""
    tf = import_tensorflow()
    folder = os.path.join(workdir, "checkpoints")
    state = tf.train.get_checkpoint_state(folder) if os.path.isdir(folder) else None
    if state is None:
        return []
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    return [p if os.path.isabs(p) else os.path.join(folder, p) for p in reversed(paths)]


def best_checkpoint(workdir):
    """(path, why) of the run's best checkpoint (checkpoints/best/), or None when it has none."""
    tf = import_tensorflow()
    folder = os.path.join(workdir, "checkpoints", "best")
    path = tf.train.latest_checkpoint(folder) if os.path.isdir(folder) else None
    if not path:
        return None
    info_path = os.path.join(workdir, "checkpoints", "best.json")
    info = _read_json(info_path, "the best checkpoint's record") if os.path.exists(info_path) else {}
    what = info.get("criterion", "loss")
    value = info.get("value", -info["valid_loss"] if "valid_loss" in info else float("nan"))
    why = (f"the best checkpoint: the highest validation {what} of the run ({value:.4f} "
           f"nats/frame; checkpoints/best.json); --checkpoint=latest for the newest")
    if re.search(r"ckpt-0$", path):  # E.g. A-VRNN at the paper's settings (BUILD_NOTES 8.4).
        why += ("; NOTE: that is the untrained initial model (step 0): the validation "
                f"{what} never improved on it during training")
    return path, why


def find_checkpoint(workdir, checkpoint=""):
    """The checkpoint prefix: the latest ("" or "latest"), "best", or one named "ckpt-N", "N" or a
    path (also looked up in checkpoints/best/)."""
    tf = import_tensorflow()
    folder = os.path.join(workdir, "checkpoints")
    if checkpoint in ("", "latest"):
        latest = tf.train.latest_checkpoint(folder) if os.path.isdir(folder) else None
        if not latest:
            raise RestoreError(f"{folder}: holds no checkpoint; train first (avrnn-train)")
        return latest
    if checkpoint == "best":
        best = best_checkpoint(workdir)
        if best is None:
            raise RestoreError(f"{os.path.join(folder, 'best')}: holds no best checkpoint (written "
                               "after the first validation pass); use --checkpoint=latest")
        return best[0]
    candidates = [checkpoint] + [os.path.join(d, name) for d in (folder, os.path.join(folder, "best"))
                                 for name in (checkpoint, f"ckpt-{checkpoint}")]
    for path in candidates:
        if os.path.exists(path + ".index"):
            return path
    available = sorted(n[:-len(".index")] for n in os.listdir(folder)
                       if n.endswith(".index")) if os.path.isdir(folder) else []
    raise RestoreError(f"checkpoint {checkpoint!r} not found in {folder} "
                       f"(available: {', '.join(available + ['best', 'latest'])})")


def verify_restored(network, path):
    """Raises RestoreError unless every trainable network weight equals a checkpoint tensor.

    (Non-trainable state such as a Keras SeedGenerator's counter is not a weight and may be
    absent from the checkpoint.)"""
    tf = import_tensorflow()
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


def root_children(path):
    """Names of the root's children in the object graph of the checkpoint `path`."""
    tf = import_tensorflow()
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return {child.local_name for child in graph.nodes[0].children}


def restore_into(network, path):
    """Restores `network` from the checkpoint `path` (its own root, else the pre-change
    model/network path); RestoreError with one line when the files cannot be read or hold
    another network."""
    tf = import_tensorflow()
    try:
        children = root_children(path)
    except Exception as e:  # A cut or corrupt file fails in many ways (DataLoss, IndexError...).
        raise RestoreError(f"checkpoint {path} is unreadable ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]})") from None
    if "network" in children:
        root = tf.train.Checkpoint(network=network)
    else:  # Written before the network was a root child: reach it as the trainer's attribute.
        root = tf.train.Checkpoint(model=tf.train.Checkpoint(network=network))
    try:
        status = root.restore(path)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        raise RestoreError(f"{path}: does not hold the network of this run's config.json "
                           f"({str(e).splitlines()[0][:200]})") from None
    except Exception as e:
        raise RestoreError(f"checkpoint {path} is unreadable ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]})") from None
    verify_restored(network, path)


def load_run(workdir, checkpoint="", warn=None):
    """Config, data statistics, the restored network and its step, from a training workdir.

    Args:
      workdir: a directory written by avrnn-train.
      checkpoint: "" (the best checkpoint, else the newest readable one), "best", "latest" (the
        newest readable one), "ckpt-N", "N" or a path.
      warn: called with one line when the chosen checkpoint is unreadable and another one is used
        (default: printed to stderr).

    Returns:
      LoadedRun(config, stats, network, step, checkpoint path, why: one line saying which
      checkpoint and why).

    Raises:
      RestoreError: one line naming the file (workdir, config, stats or checkpoint).
    """
    import sys

    from avrnn_tf import config as config_lib
    from avrnn_tf import registry

    config = read_config(workdir)
    stats = read_stats(workdir)
    network = registry.create_network(config_lib.model_spec(config, int(stats["frame_size"])))
    best = best_checkpoint(workdir) if checkpoint in ("", "best") else None
    if checkpoint not in ("", "latest"):
        candidates = [find_checkpoint(workdir, checkpoint)]
    else:
        candidates = checkpoints_newest_first(workdir) or [find_checkpoint(workdir)]
        if best:
            candidates.insert(0, best[0])
    whys = {best[0]: best[1]} if best else {}
    default_why = {"": "the latest checkpoint (the run has no best checkpoint yet)",
                   "latest": "the latest checkpoint (--checkpoint=latest)"}
    warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
    for i, path in enumerate(candidates):
        try:
            restore_into(network, path)
        except RestoreError as e:
            if i + 1 == len(candidates) or "unreadable" not in str(e):
                raise
            warn(f"{e}; using the previous checkpoint {os.path.basename(candidates[i + 1])}")
            continue
        match = re.search(r"ckpt-(\d+)$", path)
        why = whys.get(path) or default_why.get(checkpoint) or f"the checkpoint named {checkpoint!r}"
        if i and checkpoint in ("", "latest"):
            why = "the newest readable checkpoint (a newer one is unreadable)"
        if "training_weights" in root_children(path):  # averaging.CHECKPOINT_CHILD
            why += f"; its weights are the moving average (train.ema_decay = {config.train.ema_decay})"
        return LoadedRun(config, stats, network, int(match.group(1)) if match else -1, path, why)
