"""`train_and_evaluate(config, workdir)`: the training run behind `avrnn-train`.

Workdir layout (everything a run writes):
  config.json        the config of the latest invocation (also config.<step>.json per resume)
  data_stats.json    sample rate, frame size, standardization mean/std, split sizes, source
  checkpoints/       tf.train.Checkpoint files of the model and optimizer (ckpt-<step>)
  tensorboard/       event files (tags in the README)
  samples/           WAVs generated at the end of the run (step_<step>_<k>.wav)

The run is cut into rounds that end at multiples of `train.eval_every`; each round is one Keras
`fit` call over a dataset that starts at the current global step (see data/pipeline.py), so a rerun
with the same command restores the last checkpoint and continues the step count and the data order.
"""

import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from avrnn_tf import config as config_lib
from avrnn_tf import models
from avrnn_tf import training
from avrnn_tf.data import corpora
from avrnn_tf.data import pipeline
from avrnn_tf.data import prepared as prepared_lib
from avrnn_tf.data.audio import DataError


def log(message):
    print(f"avrnn-train: {message}", flush=True)


def make_optimizer(train):
    if train.optimizer == "adam":
        return keras.optimizers.Adam(train.learning_rate)
    return keras.optimizers.RMSprop(train.learning_rate)


def build_trainer(config, network):
    """The compiled training algorithm a config asks for, its optimizer(s) built."""
    t = config.train
    trainer = training.ELBOTrainer(network, seed=t.seed, clip_norm=t.clip_norm,
                                   kl_weight=t.kl_weight)
    trainer.compile(optimizer=make_optimizer(t))
    trainer.optimizer.build(network.trainable_variables)
    return trainer


class Run:
    """Everything a training run holds: data, trainer, checkpoint manager, summary writer."""

    def __init__(self, config, workdir):
        self.config = config_lib.validate(config)
        self.workdir = workdir
        data = config.data
        os.makedirs(workdir, exist_ok=True)
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
            if os.path.exists(stats_path):  # A resumed run keeps the statistics it started with.
                saved = pipeline.load_stats(stats_path)
                self.standardizer = pipeline.Standardizer(saved["mean"], saved["std"])
            else:
                self.standardizer = pipeline.Standardizer.fit(self.corpus.train)
            self.stats = pipeline.save_stats(stats_path, self.corpus, self.standardizer, data.frame_size)
            self.x, self.mask = pipeline.training_chunks(
                self.corpus.train, self.standardizer, data.frame_size, data.train_frames)
            self.valid_batches = pipeline.eval_batches(
                self.corpus.valid, self.standardizer, data.frame_size, data.valid_batch_size,
                data.max_valid_utterances)

        self.network = models.create_network(config_lib.model_spec(config, data.frame_size))
        self.trainer = build_trainer(config, self.network)
        self.checkpoint = tf.train.Checkpoint(model=self.trainer, optimizer=self.trainer.optimizer)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(workdir, "checkpoints"),
            max_to_keep=config.train.keep_checkpoints, checkpoint_name="ckpt")
        self.writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
        self.sampler = tf.function(self.network.sample)

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

    def train_dataset(self, step):
        """Training batches for global steps step, step + 1, ... (in memory or streamed)."""
        data, seed = self.config.data, self.config.train.seed
        if self.prepared is not None:
            return prepared_lib.train_dataset(self.prepared.path, self.prepared.stats,
                                              data.batch_size, data.train_frames, seed, step,
                                              data.shuffle_buffer)
        return pipeline.train_dataset(self.x, self.mask, data.batch_size, seed, step)

    @property
    def step(self):
        return int(self.trainer.optimizer.iterations.numpy())

    def restore(self):
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            log(f"resuming from {latest} at step {self.step}")
        return self.step

    def save(self):
        if self.manager.latest_checkpoint != os.path.join(self.manager.directory, f"ckpt-{self.step}"):
            self.manager.save(checkpoint_number=self.step)

    def save_config(self):
        text = config_lib.to_json(self.config)
        for name in ("config.json", f"config.{self.step}.json"):
            with open(os.path.join(self.workdir, name), "w") as f:
                f.write(text)

    # ----------------------------------------------------------------------- summaries
    def write_scalars(self, prefix, values, step):
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(f"{prefix}/{name}", float(value))

    def evaluate(self):
        ds = pipeline.eval_dataset(self.valid_batches, self.config.data.frame_size)
        result = self.trainer.evaluate(ds, verbose=0, return_dict=True)
        self.write_scalars("valid", result, self.step)
        self.write_latent_histograms()
        return result

    def write_latent_histograms(self):
        if not self.network.z_dim:
            return
        x, mask = self.valid_batches[0]
        noise = self.trainer.noise(x, training.step_seed(self.trainer.seed, training.EVAL_FOLD))
        out = self.network.trajectory(tf.constant(x), noise)
        valid = tf.constant(mask) > 0
        with self.writer.as_default(step=self.step):
            for key in ("post_loc", "post_scale", "prior_loc", "prior_scale"):
                tf.summary.histogram(f"latent/{key}", tf.boolean_mask(out[key], valid))

    def generate(self, num, seconds, seed):
        """Waveforms [num, samples] in [-1, 1] sampled from the model (de-standardized)."""
        frame_size = self.config.data.frame_size
        frames = max(1, int(round(seconds * self.corpus.sample_rate / frame_size)))
        out = self.sampler(num, frames, tf.constant([seed, 7], tf.int32))
        wave = self.standardizer.invert(tf.reshape(out, [num, -1]).numpy())
        return np.clip(wave, -1.0, 1.0).astype(np.float32)

    def write_audio(self):
        t = self.config.train
        if not t.num_audio_clips:
            return
        wave = self.generate(t.num_audio_clips, t.audio_seconds, seed=self.step)
        with self.writer.as_default(step=self.step):
            tf.summary.audio("audio/samples", wave[:, :, None], self.corpus.sample_rate,
                             max_outputs=t.num_audio_clips)

    def write_sample_files(self):
        import soundfile

        t = self.config.train
        if not t.num_final_samples:
            return []
        folder = os.path.join(self.workdir, "samples")
        os.makedirs(folder, exist_ok=True)
        paths = []
        for k, wave in enumerate(self.generate(t.num_final_samples, max(t.audio_seconds, 1.0),
                                               seed=self.step)):
            path = os.path.join(folder, f"step_{self.step}_{k}.wav")
            soundfile.write(path, wave, self.corpus.sample_rate, subtype="PCM_16")
            paths.append(path)
        return paths


class StepCallback(keras.callbacks.Callback):
    """Per-step duties inside `fit`: scalars every log_every, checkpoints, audio summaries.

    Metrics are reset after each write, so the scalars (and the progress bar) are averages over
    the last `log_every` steps rather than since the start of the round.
    """

    def __init__(self, run):
        super().__init__()
        self.run = run
        self.last_time = time.time()
        self.last_step = run.step

    def on_train_batch_end(self, batch, logs=None):
        run, t = self.run, self.run.config.train
        step = run.step
        if step % t.log_every == 0 and logs:
            now = time.time()
            values = {k: float(v) for k, v in logs.items()}
            values["learning_rate"] = float(keras.ops.convert_to_numpy(
                run.trainer.optimizer.learning_rate))
            frames = run.config.data.batch_size * run.config.data.train_frames
            values["frames_per_second"] = frames * (step - self.last_step) / max(now - self.last_time, 1e-9)
            self.last_time, self.last_step = now, step
            run.write_scalars("train", values, step)
            if batch + 1 < self.params.get("steps", 0):  # Keep the round's last values for fit.
                self.model.reset_metrics()
        if step % t.checkpoint_every == 0:
            run.save()
        if t.audio_every and step % t.audio_every == 0:
            run.write_audio()


def train_and_evaluate(config, workdir, verbose="auto"):
    """Trains (or resumes) the run in `workdir` up to `config.train.steps` steps.

    Returns a dict with the final step, the last validation metrics and the written sample files.
    """
    run = Run(config, workdir)
    t = config.train
    step = run.restore()
    run.save_config()
    log(f"{config.model.kind}/{config.model.emission} on {run.corpus.source}: "
        f"{run.corpus.sizes()} utterances at {run.corpus.sample_rate} Hz, {run.num_train_chunks} training "
        f"chunks; {sum(int(np.prod(v.shape)) for v in run.network.trainable_variables):,} "
        f"parameters; steps {step} -> {t.steps}; workdir {os.path.abspath(workdir)}")
    result = {}
    if step == 0:
        result = run.evaluate()
    callback = StepCallback(run)
    total_rounds = math.ceil(t.steps / t.eval_every)
    while step < t.steps:
        n = min(t.eval_every - step % t.eval_every, t.steps - step)
        ds = run.train_dataset(step)
        run.trainer.fit(ds, epochs=step // t.eval_every + 1, initial_epoch=step // t.eval_every,
                        steps_per_epoch=n, callbacks=[callback], verbose=verbose, shuffle=False)
        step = run.step
        result = run.evaluate()
        log(f"step {step}/{t.steps} (round {math.ceil(step / t.eval_every)}/{total_rounds}): "
            + ", ".join(f"valid {k} {v:.4f}" for k, v in result.items()))
    run.save()
    samples = run.write_sample_files()
    run.writer.flush()
    if samples:
        log(f"wrote {len(samples)} generated clip(s) to {os.path.dirname(samples[0])}")
    log(f"done at step {run.step}; TensorBoard: tensorboard --logdir {os.path.join(workdir, 'tensorboard')}")
    return {"step": run.step, "valid": {k: float(v) for k, v in result.items()}, "samples": samples}
