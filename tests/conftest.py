"""Shared test fixtures: project paths, the shared data, and running the CLIs as users do."""

import os
import subprocess
import sys

import pytest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(PROJECT_ROOT, "..", "shared", "data"))
FSDD = os.path.join(SHARED_DATA, "fsdd")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_cli(module, *args, timeout=600, env=None):
    """Runs `python -m module args...` from the project root; returns the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


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
