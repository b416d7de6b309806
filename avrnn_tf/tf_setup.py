"""Import TensorFlow without its C++ start-up chatter.

TensorFlow 2.21 prints oneDNN, CUDA-stub and cuInit notices straight to file descriptor 2 before
absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL alone does not silence them. The command-line
programs call `import_tensorflow()` first: it points fd 2 at a temporary file while TensorFlow loads
and initialises its devices, then restores it. If the import fails, what was captured is replayed so
a real error is never hidden.

SIGTERM and SIGINT are held (blocked, not lost) for the length of the import and delivered when it
returns: a handler that raises (avrnn-train's start-up SIGTERM handler exits with one line) would
otherwise raise inside TensorFlow's own import machinery, where an extension module's
initialisation can turn the exit into an import-error traceback.

`AVRNN_VIRTUAL_CPUS=N` (N > 1) splits the CPU into N logical devices before TensorFlow starts, so
`--strategy=mirrored` can be tried (and tested) on a machine without accelerators.
"""

import os
import signal
import sys
import tempfile

_done = False


def import_tensorflow(before_init=None):
    """Returns the `tensorflow` module, imported with its start-up logging suppressed.

    `before_init(tf)`, if given, runs after the import and before TensorFlow initialises its
    devices (MultiWorkerMirroredStrategy must be created then; see multi_worker.py).
    """
    global _done
    if _done or "tensorflow" in sys.modules:
        import tensorflow as tf
        _done = True
        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    old_mask = None
    if hasattr(signal, "pthread_sigmask"):  # POSIX only.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sys.stderr.flush()
    saved = os.dup(2)
    capture = tempfile.TemporaryFile()
    os.dup2(capture.fileno(), 2)
    try:
        import tensorflow as tf
        cpus = tf.config.list_physical_devices("CPU")
        virtual = int(os.environ.get("AVRNN_VIRTUAL_CPUS", "0") or 0)
        if virtual > 1 and cpus:  # Several logical CPU devices, e.g. to try --strategy=mirrored.
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * virtual)
        if before_init is not None:
            before_init(tf)
        tf.constant(0.0) + 1.0  # Device initialisation also prints (cuInit on CPU-only machines).
        tf.get_logger().setLevel("ERROR")
        import tensorflow_probability  # noqa: F401  (its tf-keras import logs too)
    except BaseException:
        os.dup2(saved, 2)
        capture.seek(0)
        sys.stderr.write(capture.read().decode("utf-8", "replace"))
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        capture.close()
        if old_mask is not None:  # A signal that arrived meanwhile is delivered here.
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    _done = True
    return tf
