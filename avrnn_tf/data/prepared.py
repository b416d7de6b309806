"""Prepared corpora: sharded TFRecords of standardized frames plus `stats.json`, streamed for training.

`prepare(...)` (behind `avrnn-prepare`) never holds a corpus in memory: pass 1 decodes each file
once to check it and to record its length and its sample statistics (count, mean, sum of squared
deviations, merged exactly with Chan et al.'s pairwise formula), then the split is drawn from the
usable names and the training split's mean/std are combined; pass 2 decodes each file again,
standardizes it, cuts it into frames and appends it to a shard. Utterances are dealt to shards in a
seeded random order so every shard is a mix of speakers.

Directory layout:
  stats.json                       sample_rate, frame_size, mean, std, counts, split_sizes,
                                   source, source_format, source_hash, shards, train length histogram
  train-00000-of-00004.tfrecord    tf.train.Example per utterance: name, num_frames,
  valid-00000-of-00001.tfrecord    frames (float32 bytes of [num_frames, frame_size], standardized)
  test-...
  skipped_files.txt                with --skip_bad_files: every skipped file and why

Training stream (`train_dataset`): the infinite sequence of training chunks is epoch 0's chunks,
then epoch 1's, ...; epoch e reads the shards in an order drawn from (seed, e), interleaves them,
cuts each utterance into `chunk_frames`-frame chunks (the last one padded and masked, as
`pipeline.training_chunks`) and shuffles them in a buffer seeded from (seed, e). Batch s is chunks
[s*B, (s+1)*B) of that sequence, so the batches are a function of (seed, step) alone: a run resumed
at step s starts at epoch (s*B) // N and skips (s*B) mod N chunks, re-reading at most one epoch of
shards, and then sees exactly the batches an uninterrupted run would.
"""

import dataclasses
import hashlib
import json
import math
import os

import numpy as np

from avrnn_tf.data import audio
from avrnn_tf.data import corpora

STATS_FILE = corpora.STATS_FILE
SKIPPED_FILE = "skipped_files.txt"
FORMAT_VERSION = 1
PARALLEL_READS = 2  # Shards read and records parsed in parallel by the streamed training dataset.
SPLITS = ("train", "valid", "test")


def is_prepared(path):
    return bool(path) and os.path.isfile(os.path.join(path, STATS_FILE))


# ----------------------------------------------------------------------------- writing
@dataclasses.dataclass
class Moments:
    """Count, mean and sum of squared deviations of a set of samples (float64)."""
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, samples):
        x = samples.astype(np.float64)
        mean = float(x.mean())
        return cls(len(x), mean, float(np.sum((x - mean) ** 2)))

    def merge(self, other):
        """The moments of the union (Chan, Golub & LeVeque's pairwise update)."""
        n = self.n + other.n
        if n == 0:
            return Moments()
        delta = other.mean - self.mean
        return Moments(n, self.mean + delta * other.n / n,
                       self.m2 + other.m2 + delta ** 2 * self.n * other.n / n)


def _example(name, frames):
    import tensorflow as tf

    feature = {
        "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode("utf-8")])),
        "num_frames": tf.train.Feature(int64_list=tf.train.Int64List(value=[len(frames)])),
        "frames": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[np.ascontiguousarray(frames, np.float32).tobytes()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def shard_names(split, num_shards):
    return [f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]


def prepare(source, output, fmt="auto", sample_rate=0, frame_size=200, valid_fraction=0.05,
            split_seed=1234, max_files=0, skip_bad_files=False, decoder="soundfile",
            shard_mb=32, min_train_shards=4, log=print):
    """Writes a prepared corpus of the raw directory `source` into `output`; returns the stats dict.

    Raises DataError (before writing any shard) listing every unusable file, unless
    `skip_bad_files`, in which case they are listed in `output/skipped_files.txt`.
    """
    import tensorflow as tf

    if fmt == "auto":
        fmt = corpora.detect_format(source) or "wav_dir"  # No audio: list_files says so below.
    if fmt == "prepared":
        raise audio.DataError(f"{source!r} is already a prepared corpus (it holds {STATS_FILE})")
    if fmt not in corpora.FORMATS:
        raise audio.DataError(f"avrnn-prepare cannot read format {fmt!r} (it reads "
                              f"{', '.join(f for f in corpora.FORMATS if f != 'prepared')})")
    if os.path.abspath(output) == os.path.abspath(source):
        raise audio.DataError("--output must differ from --source")
    files = corpora.list_files(source, fmt)
    if max_files:
        files = {k: v[:max_files] for k, v in files.items()}
    every = [p for v in files.values() for p in v]
    rates = None if sample_rate else corpora.header_rates(every)
    rate = corpora.choose_rate(rates, sample_rate) if (sample_rate or rates) else 0

    # Pass 1: check every file; lengths and moments of the usable ones; the source hash.
    lengths, moments, problems = {}, {}, []
    digest = hashlib.sha256()
    for path in every:
        name = os.path.relpath(path, source)
        digest.update(name.encode("utf-8") + b"\0")
        try:
            audio.regular_file_size(path)  # Never open a FIFO or device (it would block).
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
        except (OSError, audio.DataError):
            pass  # Reported by the decode in `scan`.
    for name, samples, problem in corpora.scan(every, source, rate, rates, frame_size, decoder):
        if problem:
            problems.append(problem)
        if samples is None:
            continue
        usable = samples[: (len(samples) // frame_size) * frame_size]
        lengths[name] = len(usable) // frame_size
        moments[name] = Moments.of(usable)
    os.makedirs(output, exist_ok=True)
    corpora.report_problems(problems, len(every), source, skip_bad_files,
                            os.path.join(output, SKIPPED_FILE))
    if not lengths:
        raise audio.DataError(f"no usable audio files in {source!r}")
    names = {k: [n for n in (os.path.relpath(p, source) for p in v) if n in lengths]
             for k, v in files.items()}
    if fmt == "timit" and not names["test"]:
        raise audio.DataError(f"every file of the TIMIT TEST/ split in {source!r} was skipped")
    split = corpora.split_corpus(fmt, names, valid_fraction, split_seed)
    total = Moments()
    for name in split["train"]:
        total = total.merge(moments[name])
    if not total.m2 > 0:
        raise audio.DataError("the training split is silent (its standard deviation is 0)")
    mean, std = total.mean, math.sqrt(total.m2 / total.n)

    # Pass 2: standardized frames into shards.
    bytes_per_frame = 4 * frame_size
    shards, counts = {}, {}
    rng = np.random.default_rng(split_seed)
    for key in SPLITS:
        members = split[key]
        size_mb = sum(lengths[n] for n in members) * bytes_per_frame / 2 ** 20
        num = max(1, math.ceil(size_mb / shard_mb), min_train_shards if key == "train" else 1)
        num = max(1, min(num, len(members)))
        shards[key] = shard_names(key, num) if members else []
        counts[key] = {"utterances": len(members), "frames": int(sum(lengths[n] for n in members))}
        if not members:
            continue
        order = [members[i] for i in rng.permutation(len(members))]
        writers = [tf.io.TFRecordWriter(os.path.join(output, s)) for s in shards[key]]
        paths = [os.path.join(source, n) for n in order]
        for k, (name, samples, problem) in enumerate(
                corpora.scan(paths, source, rate, None, frame_size, decoder)):
            if samples is None:  # Read fine in pass 1: the file changed while preparing.
                raise audio.DataError(f"{os.path.join(source, name)} changed during preparation "
                                      f"({problem.reason})")
            frames = ((samples[: lengths[name] * frame_size] - mean) / std).astype(np.float32)
            writers[k % len(writers)].write(_example(name, frames.reshape(-1, frame_size)))
        for w in writers:
            w.close()
        log(f"wrote {len(members)} {key} utterance(s) to {len(writers)} shard(s)")
    histogram = {}
    for name in split["train"]:
        histogram[lengths[name]] = histogram.get(lengths[name], 0) + 1
    stats = {
        "format_version": FORMAT_VERSION, "sample_rate": int(rate), "frame_size": int(frame_size),
        "mean": float(mean), "std": float(std), "counts": counts,
        "split_sizes": {k: len(split[k]) for k in SPLITS},
        "train_samples": int(total.n), "source": os.path.abspath(source), "source_format": fmt,
        "source_hash": digest.hexdigest(), "decoder": decoder, "skipped_files": sum(not p.warning for p in problems),
        "warned_files": sum(p.warning for p in problems),
        "valid_fraction": valid_fraction, "split_seed": split_seed, "shards": shards,
        "train_length_histogram": {str(k): v for k, v in sorted(histogram.items())},
        "shard_bytes": {name: os.path.getsize(os.path.join(output, name))
                        for key in SPLITS for name in shards[key]},
    }
    with open(os.path.join(output, STATS_FILE), "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
    return stats


# ----------------------------------------------------------------------------- reading
def load_stats(path):
    """The stats dict of a prepared directory, checked; DataError naming what is wrong."""
    stats_path = os.path.join(path, STATS_FILE)
    try:
        with open(stats_path) as f:
            stats = json.load(f)
    except (OSError, ValueError) as e:
        raise audio.DataError(f"{stats_path}: cannot be read as JSON ({e})") from None
    need = ("sample_rate", "frame_size", "mean", "std", "shards", "split_sizes",
            "train_length_histogram", "counts")
    missing = [k for k in need if k not in stats]
    if missing:
        raise audio.DataError(f"{stats_path}: not written by avrnn-prepare (missing {missing})")
    sizes = stats.get("shard_bytes", {})
    for key in SPLITS:
        for shard in stats["shards"].get(key, []):
            if not os.path.lexists(os.path.join(path, shard)):
                raise audio.DataError(f"{stats_path} lists shard {shard!r}, which is missing")
            # A truncated or rewritten shard would fail mid-epoch, a FIFO would block: catch them
            # before training.
            size = audio.regular_file_size(os.path.join(path, shard))
            if shard in sizes and size != sizes[shard]:
                raise audio.DataError(f"{os.path.join(path, shard)} is {size} bytes but {stats_path} "
                                      f"says {sizes[shard]} (truncated or changed?): prepare again")
    if not stats["shards"].get("train"):
        raise audio.DataError(f"{stats_path}: the prepared corpus has no training split")
    return stats


def check_config(stats, data, path):
    """DataError when the data config disagrees with the prepared corpus."""
    problems = []
    if data.frame_size != stats["frame_size"]:
        problems.append(f"config.data.frame_size = {data.frame_size} but {path} was prepared with "
                        f"frame_size {stats['frame_size']}")
    if data.sample_rate and data.sample_rate != stats["sample_rate"]:
        problems.append(f"config.data.sample_rate = {data.sample_rate} but {path} was prepared at "
                        f"{stats['sample_rate']} Hz (use 0, or prepare again)")
    if data.train_frames == 0:
        problems.append(f"config.data.train_frames = 0 (whole utterances) is not available for "
                        f"the prepared corpus {path}, which is streamed in chunks; use "
                        "data.train_frames > 0, or train on the raw directory")
    if problems:
        raise audio.DataError("; ".join(problems))


def num_chunks(stats, chunk_frames):
    """Training chunks of `chunk_frames` frames in the prepared training split."""
    return sum(v * -(-int(k) // chunk_frames) for k, v in stats["train_length_histogram"].items())


def _parse(frame_size):
    import tensorflow as tf

    spec = {"name": tf.io.FixedLenFeature([], tf.string),
            "num_frames": tf.io.FixedLenFeature([], tf.int64),
            "frames": tf.io.FixedLenFeature([], tf.string)}

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        frames = tf.reshape(tf.io.decode_raw(ex["frames"], tf.float32), [-1, frame_size])
        return ex["name"], frames

    return parse


def _chunks(chunk_frames, frame_size):
    import tensorflow as tf

    def cut(name, frames):
        """[T, D] frames -> dataset of (x [C, D], mask [C]) chunks, the last padded."""
        t = tf.shape(frames)[0]
        k = (t + chunk_frames - 1) // chunk_frames
        pad = k * chunk_frames - t
        x = tf.reshape(tf.pad(frames, [[0, pad], [0, 0]]), [k, chunk_frames, frame_size])
        mask = tf.reshape(tf.concat([tf.ones([t]), tf.zeros([pad])], 0), [k, chunk_frames])
        return tf.data.Dataset.from_tensor_slices((x, mask))

    return cut


def records(path, stats, split):
    """A dataset of (name, frames [T, D]) of one split, in shard order (deterministic)."""
    import tensorflow as tf

    files = [os.path.join(path, s) for s in stats["shards"].get(split, [])]
    return tf.data.TFRecordDataset(files).map(_parse(stats["frame_size"]))


def train_dataset(path, stats, batch_size, chunk_frames, seed, start_step, shuffle_buffer=1024,
                  cycle_length=4):
    """Endless batches (x [B, C, D], mask [B, C]) for global steps start_step, start_step + 1, ...

    Streams the shards (see module docstring); memory is bounded by the shuffle buffer
    (`shuffle_buffer` chunks of C*D floats) plus the interleave's open records.
    """
    import tensorflow as tf

    from avrnn_tf.rng import RNG_ALG

    files = tf.constant([os.path.join(path, s) for s in stats["shards"]["train"]])
    num_files = len(stats["shards"]["train"])
    frame_size = stats["frame_size"]
    n = num_chunks(stats, chunk_frames)
    first = start_step * batch_size
    start_epoch, offset = first // n, first % n
    parse, cut = _parse(frame_size), _chunks(chunk_frames, frame_size)

    def epoch(e):
        key = tf.random.experimental.stateless_fold_in(tf.constant([seed, 2], tf.int64), e,
                                                       alg=RNG_ALG)
        order = tf.random.experimental.stateless_shuffle(tf.range(num_files), seed=key, alg=RNG_ALG)
        shard_ds = tf.data.Dataset.from_tensor_slices(tf.gather(files, order))
        recs = shard_ds.interleave(tf.data.TFRecordDataset, cycle_length=min(cycle_length, num_files),
                                   block_length=1, num_parallel_calls=PARALLEL_READS,
                                   deterministic=True)
        chunks = recs.map(parse, num_parallel_calls=PARALLEL_READS, deterministic=True).flat_map(cut)
        return chunks.shuffle(shuffle_buffer, seed=key[0] % (2 ** 62), reshuffle_each_iteration=False)

    ds = tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max).flat_map(epoch)
    from avrnn_tf.data import common as pipeline  # The shared helpers (a leaf: no import cycle).

    return pipeline.for_fit(ds.skip(offset).batch(batch_size, drop_remainder=True).prefetch(2))


def eval_batches(path, stats, split, batch_size, max_utterances=0):
    """Whole utterances of a split in padded batches, as `pipeline.eval_batches` builds them.

    Reads the first `max_utterances` records (all when 0) of the split into memory; the
    validation split is small (5%), and `max_valid_utterances` bounds it.
    """
    ds = records(path, stats, split)
    if max_utterances:
        ds = ds.take(max_utterances)
    from avrnn_tf.data import common as pipeline  # The shared helpers (a leaf: no import cycle).

    return pipeline.pad_batches([f.numpy() for _, f in ds], batch_size)


def load_split(path, stats, split, max_utterances=0):
    """[(name, samples float32 [T * D])] of a split, de-standardized back to waveform values."""
    ds = records(path, stats, split)
    if max_utterances:
        ds = ds.take(max_utterances)
    out = [(n.numpy().decode("utf-8"), (f.numpy().reshape(-1) * stats["std"] + stats["mean"])
            .astype(np.float32)) for n, f in ds]
    return sorted(out)


def load_corpus(data):
    """A `pipeline.Corpus` of a prepared directory, in memory (for tools and small corpora)."""
    from avrnn_tf.data import common as pipeline  # The shared helpers (a leaf: no import cycle).

    stats = load_stats(data.path)
    check_config(stats, data, data.path)
    limit = data.max_files
    parts = {k: load_split(data.path, stats, k, limit) for k in SPLITS}
    return pipeline.Corpus(stats["sample_rate"], parts["train"], parts["valid"], parts["test"],
                           stats.get("source", os.path.abspath(data.path)))


def prepare_for_run(data, directory, log=print):
    """Prepares the raw corpus `data.path` into `directory` once; returns `directory`.

    A rerun (resume) finds `directory/stats.json` and reuses it after checking that it was made
    from the same source with the same frame size and rate.
    """
    if is_prepared(directory):
        stats = load_stats(directory)
        if stats.get("source") != os.path.abspath(data.path):
            raise audio.DataError(f"{directory} was prepared from {stats.get('source')!r}, not "
                                  f"config.data.path = {data.path!r}; use a new workdir")
        check_config(stats, data, directory)
        return directory
    fmt = data.format if data.format in corpora.FORMATS else "auto"
    log(f"preparing {data.path} into {directory} (config.data.stream=True)")
    prepare(data.path, directory, fmt=fmt, sample_rate=data.sample_rate, frame_size=data.frame_size,
            valid_fraction=data.valid_fraction, split_seed=data.split_seed, max_files=data.max_files,
            skip_bad_files=data.skip_bad_files, decoder=corpora.resolve_decoder(data.decoder),
            log=log)
    return directory


class PreparedInfo:
    """What `loop.Run` needs of a prepared corpus without reading it: rate, source, split sizes."""

    def __init__(self, path, stats):
        self.path = path
        self.stats = stats
        self.sample_rate = int(stats["sample_rate"])
        self.source = f"{os.path.abspath(path)} (prepared from {stats.get('source', '?')})"
        self.train, self.test = [], []  # Never loaded: training streams the shards.
        self.valid = []
        self.binary = False  # Prepared corpora are audio (piano-rolls are read directly).

    def sizes(self):
        return {k: int(self.stats["split_sizes"][k]) for k in SPLITS}
