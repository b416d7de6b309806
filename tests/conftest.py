"""Shared test fixtures: project paths, the shared data, running the CLIs as users do, and the
exported test models (one tiny trained workdir and SavedModel per model kind and emission) with
the outputs of the process that uses them without avrnn_tf."""

import contextlib
import fcntl
import os
import site
import subprocess
import sys

import pytest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(PROJECT_ROOT, "..", "shared", "data"))
FSDD = os.path.join(SHARED_DATA, "fsdd")
SITE_DIRS = os.pathsep.join(site.getsitepackages())

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_cli(module, *args, timeout=600, env=None):
    """Runs `python -m module args...` from the project root; returns the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


# Test files whose tests share an expensive module or session fixture (a trained workdir, the
# exports): under pytest-xdist each group runs on one worker, so the fixture is built once instead
# of on every worker that gets one of its tests (and again after the worker ran other modules).
SHARED_FIXTURE_GROUPS = {
    "test_export.py": "exports", "test_export_matrix.py": "exports",
    "test_train_cli.py": "train_cli", "test_evaluate.py": "evaluate",
    "test_diagnostics.py": "diagnostics", "test_run_summary.py": "run_summary",
    "test_early_stopping.py": "early_stopping", "test_data_prepared.py": "data_prepared",
    "test_restore.py": "restore", "test_distributed.py": "distributed",
}


@pytest.hookimpl(optionalhook=True)  # An xdist hook: unknown (and unused) without pytest-xdist.
def pytest_xdist_make_scheduler(config, log):
    """`-n N` (dist "load"): xdist's load balancing, except that the tests of one
    SHARED_FIXTURE_GROUPS group are one unit of work. (xdist's own `xdist_group` mark does nothing
    with pytest 9: it renames the items through an attribute pytest 9 no longer reads.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return SHARED_FIXTURE_GROUPS.get(nodeid.split("::", 1)[0].rsplit("/", 1)[-1], nodeid)

    return SharedFixtureScheduling(config, log)


@pytest.fixture(scope="session")
def tf():
    from avrnn_tf.tf_setup import import_tensorflow

    return import_tensorflow()


@pytest.fixture(scope="session")
def fsdd_dir():
    if not os.path.isdir(FSDD):
        pytest.fail(f"the shared FSDD data is missing at {FSDD}: tests expect ../shared beside the project")
    return FSDD


def read_events(logdir):
    """{tag: [(step, value)]} from the TensorBoard event files under `logdir`.

    Scalars give floats; histograms, audio and other tensors give their numpy arrays.
    """
    import glob

    import tensorflow as tf

    found = {}
    for path in sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                item = float(array) if array.ndim == 0 and array.dtype.kind == "f" else array
                found.setdefault(value.tag, []).append((event.step, item))
    return found


def seeded_network(spec, seed=0):
    """`registry.create_network(spec)` with Keras' global seed set first, so that a test module's
    tiny network has the same weights whatever ran before it in the worker: with 4-5 units a
    random initialization can leave every ReLU of a layer dead at some step, which zeroes a
    dependence that the tests check is there (seen once in CI on test_storn)."""
    import keras

    from avrnn_tf import registry

    keras.utils.set_random_seed(seed)
    return registry.create_network(spec)


def checkpoint_tensors(path):
    """{name: value} of every tensor the checkpoint `path` saved (weights, optimizer slots,
    counters), without its save counter and object graph."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "_CHECKPOINTABLE" not in k and not k.startswith("save_counter")}


def load_config_file(name, arg=None):
    """`get_config(arg)` of configs/<name> loaded by path, as `--config=configs/<name>` does."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(PROJECT_ROOT, "configs", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg is not None else module.get_config()


@pytest.fixture(autouse=True)
def _op_determinism_stays_in_its_test():
    """A run with train.deterministic turns on TensorFlow's process-wide op determinism, under which
    any unseeded random op raises; tests share worker processes, so it is turned off after each test
    (through TensorFlow's own, non-exported switch, when TensorFlow was imported at all)."""
    yield
    import sys

    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config as tf_config

        if getattr(tf_config, "is_op_determinism_enabled", lambda: False)():
            tf_config.disable_op_determinism()


# ------------------------------------------------------------------ exported test models
EXPORT_STEPS = 2  # Training steps of every exported model: its checkpoints are ckpt-2 (and best).
SEED_SALT = 7  # export.SEED_SALT: the exported functions' seed k is the pair [k, 7].
EMISSIONS = ("normal", "gmm", "bernoulli")  # Bernoulli models train on JSB piano-rolls.
KIND_CONFIGS = {"rnn": "rnn_gauss.py", "vrnn": "vrnn_gauss.py", "vrnn_i": "vrnn_i.py",
                "storn": "storn.py", "zforcing": "zforcing.py", "srnn": "srnn.py"}
# name -> (config file, emission): every kind with every emission, and an A-VRNN-trained vrnn.
EXPORTS = {f"{kind}_{emission}": (path, emission) for kind, path in KIND_CONFIGS.items()
           for emission in EMISSIONS}
EXPORTS["avrnn_vrnn"] = ("avrnn.py", "normal")
# Checked in full by tests/standalone_consumer.py (every signature, argument errors, the
# session-based loader); every export gets tests/matrix_consumer.py's checks.
FULL_CHECKS = ("vrnn_normal", "rnn_gmm", "storn_normal")


@contextlib.contextmanager
def shared_dir(tmp_path_factory, name):
    """A directory shared by all pytest-xdist workers of the session, used under a file lock."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / name
    path.mkdir(exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def export_config(name):
    """The config of exported test model `name` (EXPORTS): its file's tiny variant, shrunk."""
    path, emission = EXPORTS[name]
    config = load_config_file(path, "tiny,jsb" if emission == "bernoulli" else "tiny")
    config.model.update(emission=emission, h_dim=8, z_dim=3, mlp_units=8, num_mixtures=2)
    config.train.update(steps=EXPORT_STEPS, eval_every=EXPORT_STEPS,
                        checkpoint_every=EXPORT_STEPS, audio_every=0, num_audio_clips=0,
                        num_final_samples=0)
    config.data.update(synthetic_utterances=8, max_valid_utterances=4)
    if emission == "bernoulli":
        config.data.path = os.path.join(SHARED_DATA, "jsb", "JSB_Chorales.mat")
    return config


@pytest.fixture(scope="session")
def exports(tf, tmp_path_factory):
    """{name: (workdir, saved_model_dir)} of every EXPORTS model, trained for EXPORT_STEPS steps
    and exported in this process (once per session, whichever worker comes first)."""
    from avrnn_tf import export
    from avrnn_tf import loop

    out = {}
    with shared_dir(tmp_path_factory, "exports") as root:
        for name in EXPORTS:
            workdir, saved = root / f"{name}_work", root / f"{name}_saved"
            if not (saved / "saved_model.pb").exists():
                loop.train_and_evaluate(export_config(name), str(workdir), verbose=0)
                # The trained weights (the best checkpoint of two steps may be step 0's).
                export.export(str(workdir), str(saved), checkpoint="latest")
            out[name] = (str(workdir), str(saved))
    return out


def standalone(args, cwd, timeout=600):
    """Runs python -S (no site: avrnn_tf's editable install invisible) with site-packages added."""
    return subprocess.run([sys.executable, "-S", "-E", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.fixture(scope="session")
def consumed(exports, tmp_path_factory):
    """The output directory of tests/matrix_consumer.py, run once over every export in a process
    that cannot import avrnn_tf: <name>.npz per model, <name>.full.npz for FULL_CHECKS."""
    with shared_dir(tmp_path_factory, "export_consumer") as out:
        if not (out / "ok").exists():
            script = os.path.join(PROJECT_ROOT, "tests", "matrix_consumer.py")
            result = standalone([script, SITE_DIRS, str(out), ",".join(FULL_CHECKS)]
                                + [f"{name}={saved}" for name, (_, saved) in exports.items()],
                                cwd=str(out), timeout=1200)
            assert result.returncode == 0 and "matrix ok" in result.stdout, (
                f"the consumer failed:\n{result.stdout}\n{result.stderr}")
            (out / "ok").write_text("ok")
    return out


def training_side(workdir):
    """The trainer of an exported model's workdir as the training loop builds and restores it
    (the full checkpoint: network, trainer, optimizer(s)); returns (trainer, data statistics)."""
    import json

    import tensorflow as tf

    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf import registry
    from avrnn_tf import restore

    config = restore.read_config(workdir)
    with open(os.path.join(workdir, "data_stats.json")) as f:
        stats = json.load(f)
    network = registry.create_network(config_lib.model_spec(config, stats["frame_size"]))
    trainer = loop.build_trainer(config, network)
    checkpoint = tf.train.Checkpoint(network=network, model=trainer, optimizer=trainer.optimizer)
    checkpoint.restore(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))) \
        .assert_existing_objects_matched()
    assert int(trainer.optimizer.iterations.numpy()) == EXPORT_STEPS
    return trainer, stats
