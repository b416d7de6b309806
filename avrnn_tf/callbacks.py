"""TensorBoard summaries of a training run as Keras callbacks (loop.py passes them to `fit`).

Every callback here is a `RunCallback`: a `keras.callbacks.Callback` that holds the `loop.Run`
(its writer, network, config, step) and also hears `on_evaluate(metrics)` after each validation
pass (validation runs between `fit` rounds, outside Keras). Diagnostics plug in the same way: pass
more RunCallbacks to `loop.train_and_evaluate(..., callbacks=[...])`.

  TrainScalars        train/<metric>, learning_rate, frames_per_second every train.log_every steps
                      (metrics are then reset: each value averages the last log_every steps)
  AudioClips          audio/samples every train.audio_every steps (speech only, chief only)
  ValidationSummaries valid/<metric> and latent/<prior|posterior>_<loc|scale> histograms
"""

import time

import keras
import numpy as np
import tensorflow as tf

from avrnn_tf import figures
from avrnn_tf import objectives
from avrnn_tf import rng


def write_scalars(writer, prefix, values, step):
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(f"{prefix}/{name}", float(value))


class RunCallback(keras.callbacks.Callback):
    """A Keras callback bound to a training run, with a hook after every validation pass."""

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_evaluate(self, metrics):
        """Called with the validation metrics (a dict) at `self.run.step`."""


class TrainScalars(RunCallback):
    """Training scalars every train.log_every steps (and on the step that stops a diverged run)."""

    def __init__(self, run):
        super().__init__(run)
        self.last_time = time.time()
        self.last_step = run.step

    def on_train_batch_end(self, batch, logs=None):
        run, t = self.run, self.run.config.train
        step = run.step
        diverged = bool(logs) and int(logs.get("nonfinite_streak", 0)) >= t.max_nonfinite_steps
        if not (logs and (step % t.log_every == 0 or diverged)):
            return
        now = time.time()
        values = {k: float(v) for k, v in logs.items()}
        values["learning_rate"] = float(keras.ops.convert_to_numpy(
            run.trainer.optimizer.learning_rate))
        frames = run.config.data.batch_size * run.config.data.train_frames
        if frames:  # Whole-utterance batches (train_frames = 0) have no fixed frame count.
            values["frames_per_second"] = frames * (step - self.last_step) / max(
                now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        write_scalars(run.writer, "train", values, step)
        if batch + 1 < self.params.get("steps", 0):  # Keep the round's last values for fit.
            self.model.reset_metrics()


class AudioClips(RunCallback):
    """Generated clips as TensorBoard audio every train.audio_every steps."""

    def on_train_batch_end(self, batch, logs=None):
        run, t = self.run, self.run.config.train
        if run.interrupted or run.stop_reason or not t.audio_every or run.step % t.audio_every:
            return
        if not t.num_audio_clips or run.data.corpus.binary or not run.is_chief:
            return
        wave = run.generate(t.num_audio_clips, t.audio_seconds, seed=run.step)
        images = [figures.to_rgb(f) for f in run.clip_figures(wave)]
        with run.writer.as_default(step=run.step):
            tf.summary.audio("audio/samples", wave[:, :, None], run.data.corpus.sample_rate,
                             max_outputs=t.num_audio_clips)
            tf.summary.image("audio/spectrograms", np.stack(images), max_outputs=len(images))


class ValidationSummaries(RunCallback):
    """valid/<metric> scalars and histograms of the latent distributions on a validation batch."""

    KEYS = ("post_loc", "post_scale", "prior_loc", "prior_scale")

    def __init__(self, run):
        super().__init__(run)
        self._latents = None  # The traced pass of `latents`, built on the first round.

    def latents(self, x, mask):
        """The four latent tensors on batch (x, mask) with the evaluation noise, traced once (the
        same batch every round: run eagerly, the recurrence would cost a Python step per frame)."""
        network = self.run.network
        if self._latents is None:
            seed = objectives.step_seed(self.run.trainer.seed, objectives.EVAL_FOLD)

            def latents(x, mask):
                out = network.trajectory(x, rng.normal(network.noise_shape(x), seed), mask)
                return {key: out[key] for key in self.KEYS}

            self._latents = tf.function(latents, autograph=False, input_signature=(
                objectives.batch_signature(network.spec.x_dim)))
        return self._latents(tf.constant(x, tf.float32), tf.constant(mask, tf.float32))

    def on_evaluate(self, metrics):
        run = self.run
        write_scalars(run.writer, "valid", metrics, run.step)
        if not run.network.z_dim:
            return
        x, mask = run.data.valid_batches[0]
        out = self.latents(x, mask)
        valid = tf.constant(np.asarray(mask) > 0)
        with run.writer.as_default(step=run.step):
            for key in self.KEYS:
                tf.summary.histogram(f"latent/{key}", tf.boolean_mask(out[key], valid))


def summary_callbacks(run):
    """The summaries every run writes, in the order `fit` calls them (after TrainScalars comes the
    loop's step control, which checkpoints and stops; AudioClips runs last)."""
    return [TrainScalars(run)], [AudioClips(run), ValidationSummaries(run)]
