"""What the data readers and the pipeline share: the corpus type, the split rule, batching helpers.

A leaf of the data package (it imports no other data module but `audio` for DataError), so that
the readers (corpora, prepared, pianoroll) and the pipeline that dispatches to them import it
without an import cycle; `pipeline` re-exports every name.
"""

import dataclasses
import os
import re
from typing import List, Tuple

import numpy as np

from avrnn_tf.data import audio

FSDD_NAME = re.compile(r"^\d_[A-Za-z]+_(\d+)\.wav$")

Utterance = Tuple[str, np.ndarray]


@dataclasses.dataclass
class Corpus:
    """Utterances (name, float32 samples) per split at one sample rate."""
    sample_rate: int
    train: List[Utterance]
    valid: List[Utterance]
    test: List[Utterance]
    source: str
    binary: bool = False  # Piano-rolls: values are 0/1 notes, flattened [T * 88]; never standardized.

    def sizes(self):
        return {k: len(getattr(self, k)) for k in ("train", "valid", "test")}


def split_names(names, valid_fraction, seed):
    """Returns {"train", "valid", "test"} lists of indices into `names` (see module docstring)."""
    test, rest = [], []
    is_fsdd = bool(names) and all(FSDD_NAME.match(os.path.basename(n)) for n in names)
    for i, name in enumerate(names):
        match = FSDD_NAME.match(os.path.basename(name)) if is_fsdd else None
        (test if match and int(match.group(1)) <= 4 else rest).append(i)
    rest = sorted(rest, key=lambda i: names[i])
    order = np.random.default_rng(seed).permutation(len(rest))
    num_valid = max(1, int(round(valid_fraction * len(rest))))
    if len(rest) - num_valid < 1:
        raise audio.DataError(f"only {len(rest)} utterance(s) outside the test split: "
                              "need at least 2 for a training and a validation split")
    valid = sorted(rest[j] for j in order[:num_valid])
    train = sorted(rest[j] for j in order[num_valid:])
    return {"train": train, "valid": valid, "test": sorted(test)}


def for_fit(ds):
    """`ds` with tf.data's autotuning turned off, for a `fit` call that ends before the data does.

    Measured (BUILD_NOTES 4.7): with autotuning on, deleting an iterator waits for the autotune
    thread, which sleeps 10, 20, 40, ... ms between optimisation passes, so a `fit` of 10 steps
    that computed for 0.8 s returned after 1.27 s (= 10 * (2^7 - 1) ms) in most calls, and a
    training round ends at the thread's next wake-up (up to 2x its compute time). The pipelines
    here set their parallelism and buffers themselves, so nothing is left to tune.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def pad_batches(frames, batch_size):
    """Frame arrays [T_i, D] -> padded (x [B, T_b, D], mask [B, T_b]) batches, sorted by length,
    T_b rounded up to a multiple of 8 frames."""
    frames = sorted(frames, key=len)
    batches = []
    for start in range(0, len(frames), batch_size):
        group = frames[start:start + batch_size]
        batches.append(pad_group(group, -(-max(len(f) for f in group) // 8) * 8))
    return batches


def pad_group(frames, length):
    """Frame arrays [T_i, D] (T_i <= length) -> (x [N, length, D], mask [N, length]), zero-padded."""
    x = np.zeros([len(frames), length, frames[0].shape[-1]], np.float32)
    mask = np.zeros([len(frames), length], np.float32)
    for i, f in enumerate(frames):
        x[i, :len(f)] = f
        mask[i, :len(f)] = 1.0
    return x, mask
