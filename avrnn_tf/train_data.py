"""The data of a training run: the corpus, its standardization statistics, the training batches
and the validation batches.

Three sources, one interface (`TrainingData`):
  - a corpus read into memory (data/pipeline.py): fixed-length training chunks
    (`data.train_frames` > 0) or whole utterances in length-bucketed batches (`train_frames` = 0);
  - a prepared directory (data/prepared.py), streamed in chunks;
  - a raw directory prepared on the fly into <workdir>/prepared (`data.stream`), then streamed.
Every training dataset starts at a global step and is a function of (train.seed, step), which is
what makes a resumed run read the batches an uninterrupted one would. Nothing here knows models,
checkpoints or summaries; `loop.Run` builds one `TrainingData` and asks it for datasets.
"""

import json
import os

import tensorflow as tf

from avrnn_tf.data import corpora
from avrnn_tf.data import pipeline
from avrnn_tf.data import prepared as prepared_lib
from avrnn_tf.data.audio import DataError


def in_memory_dataset(config, trainer, x, mask, start_step):
    """The in-memory training batches `trainer` reads, one element per global step from
    `start_step` (x, mask: the training chunks; or x a pipeline.WholeSequenceBatches)."""
    d, t = config.data, config.train
    if not d.train_frames:  # Whole utterances: x is a pipeline.WholeSequenceBatches.
        return x.dataset(start_step)
    phases = getattr(trainer, "num_batches_per_step", 1)
    if getattr(trainer, "separate_batches", False) and phases > 1:
        return pipeline.phase_train_dataset(x, mask, d.batch_size, t.seed, start_step, phases)
    return pipeline.train_dataset(x, mask, d.batch_size, t.seed, start_step)


class TrainingData:
    """The corpus of a run and its batches.

    Attributes: `corpus` (a data Corpus, or prepared.PreparedInfo when streamed), `prepared`
    (PreparedInfo or None), `standardizer`, `stats` (what data_stats.json holds), `x`/`mask` (the
    in-memory training chunks, None when streamed) and `valid_batches` (numpy (x, mask) pairs).
    Writes <workdir>/data_stats.json (and skipped_files.txt for bad files); a resumed run
    (`resuming`) keeps the statistics saved in `read_dir`.
    """

    def __init__(self, config, workdir, read_dir, resuming, log):
        self.config = config
        data, t = config.data, config.train
        stats_path = os.path.join(workdir, "data_stats.json")
        self.prepared = None  # A prepared corpus (data/prepared.py) is streamed, never loaded.
        if prepared_lib.is_prepared(data.path) and data.format in ("auto", "prepared"):
            self._use_prepared(data, stats_path, data.path)
        elif data.stream and data.path:  # Raw corpus prepared on the fly, then streamed.
            self._use_prepared(data, stats_path, prepared_lib.prepare_for_run(
                data, os.path.join(workdir, "prepared"), log=log))
        else:
            self.corpus = pipeline.load_corpus(data)
            if getattr(self.corpus, "skipped", None):
                corpora.write_skipped(os.path.join(workdir, prepared_lib.SKIPPED_FILE),
                                      self.corpus.skipped, self.corpus.source)
            saved_path = os.path.join(read_dir, "data_stats.json")
            if resuming and os.path.exists(saved_path):  # A resumed run keeps its statistics.
                saved = pipeline.load_stats(saved_path)
                self.standardizer = pipeline.Standardizer(saved["mean"], saved["std"])
            else:
                self.standardizer = pipeline.fit_standardizer(self.corpus)
            self.stats = pipeline.save_stats(stats_path, self.corpus, self.standardizer, data.frame_size)
            if data.train_frames:
                self.x, self.mask = pipeline.training_chunks(
                    self.corpus.train, self.standardizer, data.frame_size, data.train_frames)
            else:
                self.x, self.mask = pipeline.WholeSequenceBatches(pipeline.whole_sequences(
                    self.corpus.train, self.standardizer, data.frame_size, data.max_batch_frames),
                    data.batch_size, data.max_batch_frames, t.seed), None
            self.valid_batches = pipeline.eval_batches(
                self.corpus.valid, self.standardizer, data.frame_size, data.valid_batch_size,
                data.max_valid_utterances)

    def _use_prepared(self, data, stats_path, path):
        """Data from the prepared directory `path`: statistics from its stats.json, training streamed."""
        stats = prepared_lib.load_stats(path)
        prepared_lib.check_config(stats, data, path)
        if os.path.exists(stats_path):
            saved = pipeline.load_stats(stats_path)
            if (saved.get("mean"), saved.get("std")) != (stats["mean"], stats["std"]):
                raise DataError(f"{path} was prepared again since this workdir's run started "
                                f"(its mean/std differ from {stats_path}); use a new workdir")
        self.prepared = prepared_lib.PreparedInfo(path, stats)
        self.corpus = self.prepared
        self.standardizer = pipeline.Standardizer(stats["mean"], stats["std"])
        self.stats = dict(stats, prepared=os.path.abspath(path))
        with open(stats_path, "w") as f:
            json.dump(self.stats, f, indent=2, sort_keys=True)
        self.x = self.mask = None
        self.valid_batches = prepared_lib.eval_batches(
            path, stats, "valid", data.valid_batch_size, data.max_valid_utterances)
        if not self.valid_batches:
            raise DataError(f"the prepared corpus {path} has an empty validation split")

    @property
    def num_train_chunks(self):
        if self.prepared is not None:
            return prepared_lib.num_chunks(self.prepared.stats, self.config.data.train_frames)
        return len(self.x)

    def dataset(self, trainer, step):
        """Training batches for global steps step, step + 1, ... (in memory or streamed).

        An A-VRNN trainer with `separate_batches` reads P = n_critic + 2 batches per step, as one
        [P, B, T, D] element (streamed: one batch of P*B chunks, split in P).
        """
        data, seed = self.config.data, self.config.train.seed
        if self.prepared is None:
            return in_memory_dataset(self.config, trainer, self.x, self.mask, step)
        phases = getattr(trainer, "num_batches_per_step", 1)
        phases = phases if getattr(trainer, "separate_batches", False) else 1
        ds = prepared_lib.train_dataset(self.prepared.path, self.prepared.stats,
                                        data.batch_size * phases, data.train_frames, seed, step,
                                        data.shuffle_buffer)
        if phases == 1:
            return ds
        split = lambda v: tf.reshape(v, tf.concat([[phases, data.batch_size], tf.shape(v)[1:]], 0))
        return ds.map(lambda x, m: (split(x), split(m)))
