"""Reading a run's TensorBoard scalars back (for tables and figures made after training)."""

import glob
import os


def read_scalars(logdir):
    """{tag: (steps [n], values [n])} from the TensorBoard event files under logdir (sorted by step).

    A resumed run writes a new event file; where two files hold the same step, the later file's
    value wins.
    """
    import numpy as np
    import tensorflow as tf

    series = {}
    for path in sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField("tensor") and not value.tensor.tensor_shape.dim and \
                        value.tensor.dtype != tf.string.as_datatype_enum:  # Not text/hparams.
                    v = float(tf.make_ndarray(value.tensor))
                elif value.HasField("simple_value"):
                    v = float(value.simple_value)
                else:
                    continue
                series.setdefault(value.tag, {})[int(event.step)] = v
    return {tag: (np.array(sorted(d)), np.array([d[s] for s in sorted(d)])) for tag, d in series.items()}


def training_seconds(logdir, prefixes=("train/", "valid/")):
    """Wall seconds a run spent training, summed over its segments (one event file per
    invocation, so a resumed run adds up): in each event file, the span between the first and the
    last event with a tag starting with one of `prefixes` (training scalars and the validation
    rounds, the first of which runs before step 1; not avrnn-eval's later `eval/` scalars).
    Start-up before the first validation round is not counted. 0.0 without event files."""
    import tensorflow as tf

    total = 0.0
    for path in sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True)):
        times = [event.wall_time for event in tf.compat.v1.train.summary_iterator(path)
                 if any(v.tag.startswith(prefixes) for v in event.summary.value)]
        if times:
            total += max(times) - min(times)
    return total
