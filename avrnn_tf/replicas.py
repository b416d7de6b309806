"""tf.distribute helpers shared by the objectives and the trainers.

On one device every function here is the identity of its single-device meaning; on several
replicas they make a mirrored step compute what one device would (noise of the global batch,
sums over replicas).
"""

import tensorflow as tf

from avrnn_tf import rng


def context():
    """The replica context when running on several replicas (tf.distribute), else None."""
    ctx = tf.distribute.get_replica_context()
    return ctx if ctx is not None and ctx.num_replicas_in_sync > 1 else None


def replica_sum(ctx, value):
    """`ctx.all_reduce(SUM, value)` for a nest of tensors in replica context `ctx`.

    tf.distribute sends an all-reduce of plain tensors to the tensors' device; under
    MultiWorkerMirroredStrategy with one device per worker the replica function runs without a
    device scope, so the tensors have none and the all-reduce fails ("destinations can not be
    empty"). The values are then first placed on the worker's device. (With several local
    devices every replica already runs under its device's scope.)
    """
    local = ctx.strategy.extended.worker_devices
    if len(local) == 1:
        with tf.device(local[0]):
            value = tf.nest.map_structure(lambda v: None if v is None else tf.identity(v), value)
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def num_replicas():
    ctx = context()
    return ctx.num_replicas_in_sync if ctx else 1


def _global_rows(draw, shape, seed):
    """`draw(shape, seed)`; on several replicas, this replica's rows of the draw for the global
    batch [B * replicas, ...], so a mirrored step draws what one device would."""
    ctx = context()
    if ctx is None:
        return draw(shape, seed)
    n, r = ctx.num_replicas_in_sync, ctx.replica_id_in_sync_group
    shape = tf.convert_to_tensor(shape)
    full = draw(tf.concat([[shape[0] * n], shape[1:]], 0), seed)
    return full[r * shape[0]:(r + 1) * shape[0]]


def normal(shape, seed):
    """Standard Normal noise of `shape` [B, ...] (this replica's rows of the global batch's)."""
    return _global_rows(rng.normal, shape, seed)


def uniform(shape, seed, dtype=tf.float32):
    """Uniform [0, 1) draws of `shape` [B, ...] (this replica's rows of the global batch's)."""
    return _global_rows(lambda s, seed: rng.uniform(s, seed, dtype), shape, seed)


def global_sum(value):
    """`value` summed over the replicas (itself on one device)."""
    ctx = context()
    return replica_sum(ctx, value) if ctx else value
