"""Training algorithms as `keras.Model` subclasses with custom `train_step` / `test_step`.

`ELBOTrainer` trains any member of the family on the ELBO (the exact log-likelihood for "rnn"
models) so that `fit`, its progress bar and callbacks work unchanged. Batches are `(x, mask)` with
x [B, T, D] float32 frames and mask [B, T] (1 = real frame).

Randomness is stateless and derived from the optimizer's step counter: the posterior noise of step
s is `stateless_normal(seed=fold_in([seed, 0], s))`, drawn before the recurrence and passed in. A
resumed run therefore draws exactly the noise an uninterrupted run would, and evaluation (which
folds in a fixed value instead) sees the same noise every time it runs.

Metrics (keras.metrics.Mean, weighted so that averages over many batches are exact ratios):
  loss               -objective per frame (what is minimised)
  elbo_per_frame     sum ELBO / sum frames (nats)        elbo_per_sequence  mean per-sequence ELBO
  log_px_per_frame   reconstruction log-likelihood       kl_per_frame       analytic KL per frame
  grad_norm          global gradient norm before clipping (training only)
  nonfinite_steps    how many steps so far had a non-finite loss or gradient (training only)
  nonfinite_streak   how many of the latest steps in a row did (training only)

Numerics guard: a step whose loss or gradients are not finite does not touch the weights or the
optimizer's slots (`apply_if_finite`); it still advances the step counter, so the next step takes the
next batch and fresh noise. Its values are left out of the metric averages. The run loop stops the
run when `nonfinite_streak` reaches its limit.
  kl_weight          the scheduled KL weight (training only, when kl_schedule is set)
  aux_per_frame      Z-Forcing's log p(b_t | z_t) per frame (zforcing models; `loss` includes
                     -aux_weight times it)
"""

import keras
import tensorflow as tf

from avrnn_tf import bounds

EVAL_FOLD = -1  # Folded into the seed for evaluation noise (training folds in the step >= 0).


def step_seed(seed, step):
    """A stateless [2] int32 seed for `step` (a scalar int tensor) from an integer `seed`."""
    base = tf.constant([seed, 0], tf.int32)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int32))


def clip_gradients(grads, clip_norm):
    """Clips by global norm when clip_norm > 0; returns (grads, norm before clipping)."""
    if clip_norm and clip_norm > 0:
        return tf.clip_by_global_norm(grads, clip_norm)
    return grads, tf.linalg.global_norm(grads)


def apply_if_finite(optimizer, loss, grads, variables, clip_norm):
    """Clips and applies `grads` only if `loss` and every gradient are finite.

    Returns (finite: bool tensor, global norm before clipping). On a non-finite step the variables
    and the optimizer's slots are untouched and only `optimizer.iterations` advances. The optimizer
    must be built beforehand (`fit` builds it; so does `loop.build_trainer`), since no variable may
    be created inside the conditional.
    """
    grads, norm = clip_gradients(grads, clip_norm)
    finite = tf.math.is_finite(tf.cast(loss, tf.float32)) & tf.math.is_finite(norm)

    def apply():
        optimizer.apply_gradients(zip(grads, variables))
        return tf.constant(True)

    def skip():
        optimizer.iterations.assign_add(1)
        return tf.constant(False)

    tf.cond(finite, apply, skip)
    return finite, norm


class ELBOTrainer(keras.Model):
    """Maximises the ELBO of a `SequenceNetwork` with one optimizer.

    Args:
      network: a built `models.SequenceNetwork`.
      seed: integer from which every step's noise is derived.
      clip_norm: global-norm gradient clipping threshold (<= 0 disables clipping).
      kl_weight: weight of the KL term in the objective (1 is the ELBO).
      kl_schedule: optional (start, increment, cap): the KL weight of training step s is
        min(cap, start + increment * s) instead of kl_weight (Z-Forcing: (0.2, 5e-5, 1.0)).
        Evaluation always uses kl_weight.
      aux_weight: weight beta of an auxiliary log-likelihood the network returns as
        `aux_log_prob` in its frame terms (Z-Forcing's log p(b_t | z_t)); added to the objective.
    """

    def __init__(self, network, seed=0, clip_norm=10.0, kl_weight=1.0, kl_schedule=None,
                 aux_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.seed = int(seed)
        self.clip_norm = float(clip_norm)
        self.kl_weight = float(kl_weight)
        self.trace_count = 0  # Incremented only when train_step is traced (Python side effect).
        self._trackers = {name: keras.metrics.Mean(name=name) for name in (
            "loss", "elbo_per_frame", "elbo_per_sequence", "log_px_per_frame", "kl_per_frame",
            "grad_norm")}
        # Checkpointed with the model: a resumed run keeps counting where it stopped.
        self.nonfinite_total = self.add_weight(shape=(), dtype="int64", initializer="zeros",
                                               trainable=False, name="nonfinite_total")
        self.nonfinite_streak = self.add_weight(shape=(), dtype="int64", initializer="zeros",
                                                trainable=False, name="nonfinite_streak")
        self.kl_schedule = None if kl_schedule is None else tuple(float(v) for v in kl_schedule)
        self.aux_weight = float(aux_weight)
        if self.kl_schedule is not None:
            self._trackers["kl_weight"] = keras.metrics.Mean(name="kl_weight")
        if network.spec.kind == "zforcing":
            self._trackers["aux_per_frame"] = keras.metrics.Mean(name="aux_per_frame")

    @property
    def metrics(self):
        return list(self._trackers.values())

    def count_finite(self, finite):
        """Updates the non-finite counters after a step; returns them as a dict of logs."""
        bad = tf.cast(tf.logical_not(finite), "int64")
        self.nonfinite_total.assign_add(bad)
        self.nonfinite_streak.assign((self.nonfinite_streak + bad) * bad)
        return {"nonfinite_steps": tf.convert_to_tensor(self.nonfinite_total),
                "nonfinite_streak": tf.convert_to_tensor(self.nonfinite_streak)}

    def call(self, inputs, training=False):
        """Per-sequence ELBO [B] of `(x, mask)` with evaluation noise."""
        x, mask = inputs
        return self.bound_terms(x, mask, step_seed(self.seed, EVAL_FOLD))["elbo"]

    def noise(self, x, seed):
        return tf.random.stateless_normal(self.network.noise_shape(x), seed=seed)

    def scheduled_kl_weight(self, step):
        """The KL weight at training step `step` (a scalar tensor)."""
        if self.kl_schedule is None:
            return tf.constant(self.kl_weight)
        start, increment, cap = self.kl_schedule
        return tf.minimum(cap, start + increment * tf.cast(step, tf.float32))

    def bound_terms(self, x, mask, seed, kl_weight=None):
        terms = self.network.frame_terms(x, self.noise(x, seed), mask=mask)
        b = bounds.elbo(terms, mask, self.kl_weight if kl_weight is None else kl_weight)
        if "aux_log_prob" in terms:
            b["aux"] = tf.reduce_sum(bounds.masked(terms["aux_log_prob"], mask), axis=1)
            b["objective"] = b["objective"] + self.aux_weight * b["aux"]
        return b

    def _update_metrics(self, b, grad_norm=None, finite=None):
        frames = tf.reduce_sum(b["num_frames"])
        if finite is not None:  # A skipped step's values stay out of the averages.
            weight = tf.cast(finite, frames.dtype)
            b = {k: tf.where(finite, v, tf.zeros_like(v)) for k, v in b.items()}
            frames = frames * weight
            grad_norm = tf.where(finite, grad_norm, tf.zeros_like(grad_norm))
        sequences = tf.reduce_sum(tf.cast(b["num_frames"] > 0, frames.dtype))
        per_frame = lambda v: tf.reduce_sum(v) / tf.maximum(frames, 1.0)
        t = self._trackers
        t["loss"].update_state(-per_frame(b["objective"]), sample_weight=frames)
        t["elbo_per_frame"].update_state(per_frame(b["elbo"]), sample_weight=frames)
        t["log_px_per_frame"].update_state(per_frame(b["log_px"]), sample_weight=frames)
        t["kl_per_frame"].update_state(per_frame(b["kl"]), sample_weight=frames)
        t["elbo_per_sequence"].update_state(
            tf.reduce_sum(b["elbo"]) / tf.maximum(sequences, 1.0), sample_weight=sequences)
        if grad_norm is not None:
            t["grad_norm"].update_state(grad_norm, sample_weight=1.0 if finite is None else weight)
        if "aux" in b:
            t["aux_per_frame"].update_state(per_frame(b["aux"]), sample_weight=frames)

    def train_step(self, data):
        self.trace_count += 1
        x, mask = data
        seed = step_seed(self.seed, self.optimizer.iterations)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            kl_weight = self.scheduled_kl_weight(self.optimizer.iterations)
            b = self.bound_terms(x, mask, seed, kl_weight)
            loss = -tf.reduce_sum(b["objective"]) / tf.maximum(tf.reduce_sum(b["num_frames"]), 1.0)
        finite, norm = apply_if_finite(self.optimizer, loss, tape.gradient(loss, variables),
                                       variables, self.clip_norm)
        self._update_metrics(b, norm, finite)
        if self.kl_schedule is not None:
            self._trackers["kl_weight"].update_state(kl_weight)
        return {**{m.name: m.result() for m in self.metrics}, **self.count_finite(finite)}

    def test_step(self, data):
        x, mask = data
        self._update_metrics(self.bound_terms(x, mask, step_seed(self.seed, EVAL_FOLD)))
        return {m.name: m.result() for m in self.metrics if m.name not in ("grad_norm", "kl_weight")}
