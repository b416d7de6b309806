"""Reading a run's TensorBoard scalars back (for tables and figures made after training)."""

import glob
import os


def read_run(logdir, span_prefixes=("train/", "valid/")):
    """One pass over the event files under logdir: ({tag: (steps [n], values [n])} sorted by step,
    training wall seconds).

    A resumed run writes a new event file; where two files hold the same step, the later file's
    value wins. The seconds sum, over the event files (one per invocation, so a resumed run adds
    up), the span between the first and the last event with a tag starting with one of
    `span_prefixes` (training scalars and the validation rounds, the first of which runs before
    step 1; not avrnn-eval's later `eval/` scalars). Start-up before the first validation round is
    not counted; 0.0 without event files.
    """
    import numpy as np
    import tensorflow as tf

    series = {}
    seconds = 0.0
    for path in sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True)):
        times = []
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith(span_prefixes):
                    times.append(event.wall_time)
                if value.HasField("tensor") and not value.tensor.tensor_shape.dim and \
                        value.tensor.dtype != tf.string.as_datatype_enum:  # Not text/hparams.
                    v = float(tf.make_ndarray(value.tensor))
                elif value.HasField("simple_value"):
                    v = float(value.simple_value)
                else:
                    continue
                series.setdefault(value.tag, {})[int(event.step)] = v
        if times:
            seconds += max(times) - min(times)
    curves = {tag: (np.array(sorted(d)), np.array([d[s] for s in sorted(d)]))
              for tag, d in series.items()}
    return curves, seconds


def read_scalars(logdir):
    """{tag: (steps [n], values [n])} from the TensorBoard event files under logdir (`read_run`)."""
    return read_run(logdir)[0]


def training_seconds(logdir):
    """Training wall seconds summed over a run's segments (`read_run`)."""
    return read_run(logdir)[1]
