"""From a data config to tf.data pipelines of standardized frames with masks.

The literature's speech protocol (VRNN, SRNN, FIVO, Z-Forcing): waveforms cut into frames of 200
samples, standardized with the training split's mean and std, trained on fixed-length chunks of 40
frames, evaluated on whole utterances with masks, a 5% validation split drawn with seed 1234.

Splits:
  * FSDD (names like `7_jackson_32.wav`): the official test split is recording index 0-4; the
    validation split is drawn from the rest.
  * anything else: no test split; validation drawn from all utterances.
  The validation draw is a seeded permutation of the sorted names, so it depends only on the set
  of names and the seed.

Training batches are a pure function of the global step: step s of data-epoch e = s // S takes
chunk positions [(s mod S) * B, ...) of a stateless shuffle seeded by (seed, e). A run resumed at
step s therefore sees exactly the batches an uninterrupted run would, with no iterator state.

Whole-sequence training (`data.train_frames = 0`): each training utterance is one sequence (cut
into pieces of at most `data.max_batch_frames` frames only if it is longer than that). Every
data-epoch is planned from the seed alone: the utterances are permuted (seeded by (seed, e)),
taken in pools of POOL_BATCHES * B, each pool is sorted by length and cut greedily into batches of
at most B sequences whose padded size (sequences x padded length, the longest rounded up to a
multiple of 8) stays within `max_batch_frames`, and the batches are permuted. Global step s is the
batch at position s of the concatenated plans, so a resumed run again sees the same batches.
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from avrnn_tf import rng
from avrnn_tf.data import audio
from avrnn_tf.data import corpora
from avrnn_tf.data import prepared
from avrnn_tf.data import synthetic
# The shared types and helpers the readers use too (a leaf module: no import cycle).
from avrnn_tf.data.common import FSDD_NAME, Corpus, Utterance, for_fit, pad_batches, pad_group, split_names  # noqa: F401

@dataclasses.dataclass(frozen=True)
class Standardizer:
    """x -> (x - mean) / std with scalar statistics of the training split's samples."""
    mean: float
    std: float

    @classmethod
    def fit(cls, utterances):
        total = sum(len(s) for _, s in utterances)
        mean = sum(float(np.sum(s, dtype=np.float64)) for _, s in utterances) / total
        var = sum(float(np.sum((s.astype(np.float64) - mean) ** 2)) for _, s in utterances) / total
        if not var > 0:
            raise audio.DataError("the training split is silent (its standard deviation is 0)")
        return cls(mean, float(np.sqrt(var)))

    def apply(self, samples):
        return ((samples - self.mean) / self.std).astype(np.float32)

    def invert(self, values):
        return values * self.std + self.mean


def load_corpus(data):
    """Reads the corpus a data config describes (synthetic when data.path is empty)."""
    fmt = data.format
    if fmt == "pianoroll":
        from avrnn_tf.data import pianoroll

        return pianoroll.load_corpus(data)
    if fmt == "auto" and data.path and os.path.isdir(data.path):
        fmt = corpora.detect_format(data.path) or fmt  # Prepared, TIMIT, FSDD or audio (corpora.py).
    if fmt == "prepared":
        return prepared.load_corpus(data)
    if fmt in corpora.FORMATS:
        return corpora.load_raw_corpus(data, fmt)
    if fmt == "auto":
        fmt = "wav_dir" if data.path else "synthetic"
    if fmt == "synthetic":
        rate = data.sample_rate or synthetic.DEFAULT_SAMPLE_RATE
        utterances = synthetic.synthesize_corpus(data.synthetic_utterances, seed=data.synthetic_seed,
                                                 sample_rate=rate)
        source = f"synthetic(n={data.synthetic_utterances}, seed={data.synthetic_seed})"
    else:
        utterances, rate = audio.read_directory(data.path, data.sample_rate, data.max_files)
        source = os.path.abspath(data.path)
    names = [n for n, _ in utterances]
    split = split_names(names, data.valid_fraction, data.split_seed)
    pick = lambda key: [utterances[i] for i in split[key]]
    short = [n for n, s in utterances if len(s) < data.frame_size]
    if short:
        raise audio.DataError(
            f"{len(short)} utterance(s) are shorter than one frame ({data.frame_size} samples), "
            f"e.g. {short[:5]}")
    return Corpus(rate, pick("train"), pick("valid"), pick("test"), source)


def frame(samples, frame_size):
    """[n] samples -> [n // frame_size, frame_size] frames (a trailing partial frame is dropped)."""
    n = len(samples) // frame_size
    return samples[: n * frame_size].reshape(n, frame_size)


def training_chunks(utterances, standardizer, frame_size, chunk_frames):
    """All non-overlapping chunks of `chunk_frames` frames, the last of each utterance padded.

    Returns (x [N, chunk_frames, frame_size] float32, mask [N, chunk_frames] float32).
    """
    xs, masks = [], []
    for _, samples in utterances:
        frames = frame(standardizer.apply(samples), frame_size)
        for start in range(0, len(frames), chunk_frames):
            piece = frames[start:start + chunk_frames]
            pad = chunk_frames - len(piece)
            xs.append(np.pad(piece, [(0, pad), (0, 0)]))
            masks.append(np.concatenate([np.ones(len(piece)), np.zeros(pad)]))
    return np.stack(xs).astype(np.float32), np.stack(masks).astype(np.float32)


def batch_indices(step, num_items, batch_size, seed):
    """Indices [batch_size] of the items in training batch `step` (a scalar int64 tensor)."""
    per_epoch = max(1, num_items // batch_size)
    epoch = step // per_epoch
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(num_items, dtype=tf.int64), seed=rng.fold_in(tf.constant([seed, 1], tf.int64), epoch),
        alg=rng.RNG_ALG)
    start = (step % per_epoch) * batch_size
    return tf.gather(perm, (start + tf.range(batch_size, dtype=tf.int64)) % num_items)


PARALLEL_CALLS = 2  # Batches assembled in parallel (a gather each; the step is far slower).


def train_dataset(x, mask, batch_size, seed, start_step):
    """Batches (x [B, T, D], mask [B, T]) for global steps start_step, start_step + 1, ...

    The dataset is endless; `fit(steps_per_epoch=...)` decides how many batches a round takes.
    """
    x, mask = tf.constant(x), tf.constant(mask)
    n = int(x.shape[0])

    def batch(step):
        idx = batch_indices(step, n, batch_size, seed)
        return tf.gather(x, idx), tf.gather(mask, idx)

    ds = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
    return for_fit(ds.map(batch, num_parallel_calls=PARALLEL_CALLS, deterministic=True).prefetch(2))


def phase_train_dataset(x, mask, batch_size, seed, start_step, num_phases):
    """Like `train_dataset`, but each global step s yields `num_phases` distinct batches stacked:
    (x [P, B, T, D], mask [P, B, T]), phase p holding batch number s * P + p of the step-indexed
    batch sequence. Used by A-VRNN, which draws a fresh batch for each phase (Algorithms 1-2);
    resuming at step s again sees exactly the batches an uninterrupted run would.
    """
    x, mask = tf.constant(x), tf.constant(mask)
    n = int(x.shape[0])

    def batches(step):
        idx = tf.stack([batch_indices(step * num_phases + p, n, batch_size, seed)
                        for p in range(num_phases)])
        return tf.gather(x, idx), tf.gather(mask, idx)

    ds = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max // num_phases)
    return for_fit(ds.map(batches, num_parallel_calls=PARALLEL_CALLS, deterministic=True).prefetch(2))


POOL_BATCHES = 20  # Whole-sequence batches are bucketed by length within pools of this many.


def whole_sequences(utterances, standardizer, frame_size, max_frames):
    """Standardized frames [T_i, frame_size] of every utterance, in order; an utterance longer
    than `max_frames` frames is cut into consecutive pieces of at most `max_frames`."""
    pieces = []
    for _, samples in utterances:
        frames = frame(standardizer.apply(samples), frame_size)
        pieces.extend(frames[start:start + max_frames] for start in range(0, len(frames), max_frames))
    return pieces


def padded_length(longest, cap=None):
    """The padded length of a batch whose longest sequence has `longest` frames: rounded up to a
    multiple of 8 frames (fewer distinct shapes to trace), never above `cap` when given."""
    length = -(-longest // 8) * 8
    return length if cap is None else min(length, cap)


def whole_sequence_plan(lengths, batch_size, max_batch_frames, seed, epoch):
    """The batches of data-epoch `epoch`: a list of index arrays into `lengths` (see the module
    docstring). Every index appears once; every batch has at most `batch_size` indices and
    len(batch) * padded_length(longest, max_batch_frames) <= max_batch_frames. Needs
    max(lengths) <= max_batch_frames."""
    lengths = np.asarray(lengths)
    rng = np.random.default_rng([seed % 2 ** 32, epoch])
    order = rng.permutation(len(lengths))
    pool = POOL_BATCHES * batch_size
    batches = []
    for start in range(0, len(order), pool):
        members = order[start:start + pool]
        current = []
        for i in members[np.argsort(lengths[members], kind="stable")]:
            size = (len(current) + 1) * padded_length(int(lengths[i]), max_batch_frames)
            if current and (len(current) == batch_size or size > max_batch_frames):
                batches.append(current)
                current = []
            current.append(i)
        batches.append(current)
    return [np.array(batches[j]) for j in rng.permutation(len(batches))]


class WholeSequenceBatches:
    """Training batches (x [b, T_b, D], mask [b, T_b]) of whole sequences, b <= batch_size and
    b * T_b <= max_batch_frames, as a function of the global step (`whole_sequence_plan`).

    `sequences` is the list of `whole_sequences`. The number of batches of each data-epoch is
    remembered, so locating a step costs one plan per new epoch.
    """

    def __init__(self, sequences, batch_size, max_batch_frames, seed):
        self.sequences = sequences
        self.lengths = [len(f) for f in sequences]
        self.batch_size, self.max_batch_frames, self.seed = batch_size, max_batch_frames, seed
        self.epoch_sizes = []

    def __len__(self):
        return len(self.sequences)

    def plan(self, epoch):
        return whole_sequence_plan(self.lengths, self.batch_size, self.max_batch_frames, self.seed,
                                   epoch)

    def locate(self, step):
        """(data-epoch, position in its plan) of global step `step`."""
        epoch = 0
        while True:
            if epoch == len(self.epoch_sizes):
                self.epoch_sizes.append(len(self.plan(epoch)))
            if step < self.epoch_sizes[epoch]:
                return epoch, step
            step -= self.epoch_sizes[epoch]
            epoch += 1

    def dataset(self, start_step):
        """The endless tf.data.Dataset of the batches of steps start_step, start_step + 1, ..."""
        def batches():
            epoch, position = self.locate(start_step)
            while True:
                for idx in self.plan(epoch)[position:]:
                    group = [self.sequences[i] for i in idx]
                    yield pad_group(group, padded_length(max(len(f) for f in group),
                                                         self.max_batch_frames))
                epoch, position = epoch + 1, 0

        width = self.sequences[0].shape[-1]
        spec = (tf.TensorSpec([None, None, width], tf.float32),
                tf.TensorSpec([None, None], tf.float32))
        return for_fit(tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(2))


def eval_batches(utterances, standardizer, frame_size, batch_size, max_utterances=0):
    """Whole utterances in padded batches: a list of (x [B, T_b, D], mask [B, T_b]) numpy pairs.

    Utterances are sorted by length so padding is small; T_b is rounded up to a multiple of 8
    frames to bound the number of distinct shapes (each new shape traces the eval step once).
    """
    if max_utterances:
        utterances = utterances[:max_utterances]
    return pad_batches([frame(standardizer.apply(s), frame_size) for _, s in utterances],
                       batch_size)


def eval_dataset(batches, frame_size):
    """A tf.data.Dataset over `eval_batches(...)` output."""
    spec = (tf.TensorSpec([None, None, frame_size], tf.float32), tf.TensorSpec([None, None], tf.float32))
    ds = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec)
    return ds.apply(tf.data.experimental.assert_cardinality(len(batches)))


def fit_standardizer(corpus):
    """The training split's Standardizer; the identity for binary (piano-roll) corpora."""
    if corpus.binary:
        return Standardizer(0.0, 1.0)
    return Standardizer.fit(corpus.train)


def save_stats(path, corpus, standardizer, frame_size):
    """Writes what evaluation, generation and resumed runs need to know about the data."""
    stats = {"sample_rate": corpus.sample_rate, "frame_size": frame_size,
             "mean": standardizer.mean, "std": standardizer.std, "source": corpus.source,
             "split_sizes": corpus.sizes(),
             "train_samples": int(sum(len(s) for _, s in corpus.train))}
    # Atomic: the other workers of a multi-worker run read the chief's copy while it is rewritten.
    from avrnn_tf.workdir import atomic_write_text

    atomic_write_text(path, json.dumps(stats, indent=2, sort_keys=True))
    return stats


def load_stats(path):
    with open(path) as f:
        return json.load(f)
