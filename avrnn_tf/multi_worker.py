"""`--strategy=multi_worker`: data-parallel training over several processes or machines.

Each process runs `tf.distribute.MultiWorkerMirroredStrategy` and learns from the TF_CONFIG
environment variable which cluster it belongs to and which worker it is:

  TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
              "task": {"type": "worker", "index": 0}}'

Every worker holds a full copy of the weights; each global step every worker takes its own slice of
the global batch (`data.batch_size` is the global batch, as with `--strategy=mirrored`) and the
gradients are summed across workers with collective all-reduces (ring over gRPC on CPU).

Who writes what (see `loop.Run`):
  * worker 0 is the chief: it holds the workdir lock and writes checkpoints, checkpoints/best,
    TensorBoard events, config.json, data_stats.json and samples to `--workdir`;
  * worker i > 0 takes part in every checkpoint save (a collective operation: all workers must
    call it at the same steps) but writes into its own scratch directory `<workdir>/.worker-<i>`,
    which it locks, and removes when the run ends;
  * every worker restores from the chief's `<workdir>/checkpoints`, so on several machines the
    workdir must be on a filesystem they all mount at the same path.
Decisions that decide whether a collective runs (save a checkpoint, keep a new best, stop on a
signal) are taken by the chief and broadcast, so the workers never disagree about them.

MultiWorkerMirroredStrategy must be created before TensorFlow initialises its devices; the CLI calls
`create_strategy` from `tf_setup.import_tensorflow(before_init=...)`.
"""

import json
import os

ENV = "TF_CONFIG"
EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
           '"task": {"type": "worker", "index": 0}}\'')

_strategy = None
_startup_error = None


class TFConfigError(ValueError):
    """TF_CONFIG is missing or does not describe a cluster of workers this process belongs to."""


def parse_tf_config(text):
    """Checks a TF_CONFIG value; returns (worker addresses [N], this worker's index).

    Raises TFConfigError naming TF_CONFIG and what was expected.
    """
    where = f"--strategy=multi_worker reads the cluster from the {ENV} environment variable"
    if text is None or not text.strip():
        raise TFConfigError(f"{where}, which is not set; set it on every worker, e.g. {EXAMPLE} "
                            "on the first machine and index 1 on the second")
    try:
        value = json.loads(text)
    except ValueError as e:
        raise TFConfigError(f"{ENV} is not valid JSON ({e}): {text!r}; expected e.g. {EXAMPLE}") from None
    if not isinstance(value, dict) or not isinstance(value.get("cluster"), dict):
        raise TFConfigError(f"{ENV} has no \"cluster\" object: {text!r}; expected e.g. {EXAMPLE}")
    cluster, task = value["cluster"], value.get("task")
    other = sorted(k for k in cluster if k != "worker")
    if other:
        raise TFConfigError(
            f"{ENV} cluster has job(s) {other}; --strategy=multi_worker expects only a \"worker\" "
            "list (worker 0 is the chief that writes the workdir; no ps, chief or evaluator jobs)")
    workers = cluster.get("worker")
    if (not isinstance(workers, list) or not workers
            or not all(isinstance(w, str) and _is_address(w) for w in workers)):
        raise TFConfigError(f"{ENV} cluster.worker must be a non-empty list of \"host:port\" "
                            f"strings, got {workers!r}")
    if len(set(workers)) != len(workers):
        raise TFConfigError(f"{ENV} cluster.worker lists an address twice: {workers!r}")
    if not isinstance(task, dict) or task.get("type") != "worker":
        raise TFConfigError(f"{ENV} task must be {{\"type\": \"worker\", \"index\": i}}, got "
                            f"{task!r}")
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(workers):
        raise TFConfigError(f"{ENV} task.index must be an integer in [0, {len(workers) - 1}] "
                            f"(one per cluster.worker entry), got {index!r}")
    return workers, index


def _is_address(text):
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def check_environment():
    """(addresses, index) from this process's TF_CONFIG (see `parse_tf_config`)."""
    return parse_tf_config(os.environ.get(ENV))


def create_strategy(tf):
    """Creates (once) this process's MultiWorkerMirroredStrategy; meant to run before TensorFlow
    initialises its devices (`tf_setup.import_tensorflow(before_init=create_strategy)`).

    Never raises: a failure is kept and reported by `strategy()` as a TFConfigError, so the CLI can
    print one line instead of a traceback.
    """
    global _strategy, _startup_error
    if _strategy is not None or _startup_error is not None:
        return _strategy
    try:
        addresses, index = check_environment()
    except TFConfigError as e:
        _startup_error = e
        return None
    comm = tf.distribute.experimental.CommunicationImplementation
    # Ring all-reduce over gRPC works on CPU; with GPUs let TF pick (NCCL).
    implementation = comm.AUTO if tf.config.list_physical_devices("GPU") else comm.RING
    try:
        _strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=implementation))
    except Exception as e:  # A port in use, an unreachable peer, a context already started.
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        if "program startup" in first:
            first = ("TensorFlow was already running; create the strategy first thing "
                     "(avrnn_tf.multi_worker.create_strategy(tf) right after importing TensorFlow)")
        _startup_error = TFConfigError(
            f"could not start worker {index} of {len(addresses)} at {addresses[index]} "
            f"(from {ENV}): {first}")
    return _strategy


def startup_error():
    return _startup_error


def strategy():
    """The process's MultiWorkerMirroredStrategy (created now if `create_strategy` was not called
    at start-up, which works only if TensorFlow has not run anything yet)."""
    if _strategy is None and _startup_error is None:
        import tensorflow as tf

        create_strategy(tf)
    if _startup_error is not None:
        raise _startup_error
    return _strategy


def is_multi_worker(strategy_):
    import tensorflow as tf

    return isinstance(strategy_, tf.distribute.MultiWorkerMirroredStrategy)


def worker_index(strategy_):
    """This process's task index (0 = the chief)."""
    return int(strategy_.cluster_resolver.task_id or 0)


def num_workers(strategy_):
    return len(strategy_.cluster_resolver.cluster_spec().as_dict().get("worker", [None]))


def scratch_dir(workdir, index):
    """Where non-chief worker `index` writes what the chief writes into `workdir`."""
    return os.path.join(workdir, f".worker-{index}")


class Collective:
    """Small cross-worker agreements, outside the training step.

    `broadcast(value)`: the chief's float `value`, the same on every worker. `total(value)`: the
    sum over workers of each worker's float `value`. Each is one all-reduce, so every worker must
    call them in the same order at the same points of the run.
    """

    def __init__(self, strategy_):
        import tensorflow as tf

        local = max(1, len(strategy_.extended.worker_devices))  # Replicas on this worker.

        def from_chief(value):
            ctx = tf.distribute.get_replica_context()
            return tf.where(tf.equal(ctx.replica_id_in_sync_group, 0), value, tf.zeros_like(value))

        def per_worker(value):  # Each worker's replicas contribute its value once in all.
            return value / local

        def reducer(contribute):
            @tf.function(autograph=False)
            def reduce(value):
                return strategy_.reduce(tf.distribute.ReduceOp.SUM,
                                        strategy_.run(contribute, args=(value,)), axis=None)
            return reduce

        self._broadcast, self._total = reducer(from_chief), reducer(per_worker)
        self._tf = tf

    def broadcast(self, value):
        return float(self._broadcast(self._tf.constant(float(value), self._tf.float64)))

    def total(self, value):
        return float(self._total(self._tf.constant(float(value), self._tf.float64)))


def patch_keras_fit(trainer):
    """The Keras-internal patches a multi-worker `fit` of a built trainer needs (Keras 3.15).

    Keras' fit reduces one input batch across replicas to build the model symbolically, which
    fails under MultiWorkerMirroredStrategy (a reduce of a nested PerReplica structure). The
    trainer and its optimizers are built already (loop.build_trainer), so that build has nothing
    to do and is skipped. Keras also reduces the logs of a multi-worker step with a mean along
    axis 0, which fails for scalars; train_step's logs are global values, the same on every
    replica (`results` all-reduces the metric sums), so as [1] vectors their mean is the value.
    """
    import tensorflow as tf

    if not all(layer.built for layer in trainer._flatten_layers()):
        raise RuntimeError("the trainer must be built before a multi-worker fit")
    trainer._maybe_symbolic_build = lambda *args, **kwargs: None
    if not getattr(trainer, "_logs_as_vectors", False):
        step = trainer.train_step
        trainer.train_step = lambda data: {k: tf.reshape(v, [1]) for k, v in step(data).items()}
        trainer._logs_as_vectors = True


def shard_by_data(ds):
    """`ds` with DATA auto-sharding: every worker builds the same global batches and keeps its
    own slice."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def weights_digest(variables):
    """A SHA-256 of the variables' values (bitwise), to compare the workers' copies."""
    import hashlib

    h = hashlib.sha256()
    for v in variables:
        h.update(v.numpy().tobytes())
    return h.hexdigest()[:16]
