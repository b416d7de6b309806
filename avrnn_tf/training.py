"""Training algorithms as `keras.Model` subclasses with custom `train_step` / `test_step`.

`ELBOTrainer` trains any member of the family on the ELBO (the exact log-likelihood for "rnn"
models) so that `fit`, its progress bar and callbacks work unchanged. Batches are `(x, mask)` with
x [B, T, D] float32 frames and mask [B, T] (1 = real frame).

Randomness is stateless (Philox, rng.py) and derived from the optimizer's step counter: the noise
of step s derives from `objectives.step_seed(seed, s)` = fold_in([seed, 0], s). A
resumed run therefore draws exactly the noise an uninterrupted run would, and evaluation (which
folds in a fixed value instead) sees the same noise every time it runs.

Metrics (keras.metrics.Mean, weighted so that averages over many batches are exact ratios):
  loss               -objective per frame (what is minimised)
  <name>_per_frame, <name>_per_sequence, scalars: what the objective returns (objectives.py; the
                     ELBO: elbo, log_px, kl, aux for Z-Forcing, kl_weight under a schedule)
  grad_norm          global gradient norm before clipping (training only)
  nonfinite_steps    how many steps so far had a non-finite loss or gradient (training only)
  nonfinite_streak   how many of the latest steps in a row did (training only)

Numerics guard: a step whose loss or gradients are not finite does not touch the weights or the
optimizer's slots (`apply_if_finite`); it still advances the step counter, so the next step takes the
next batch and fresh noise. Its values are left out of the metric averages. The run loop stops the
run when `nonfinite_streak` reaches its limit.
"""

import functools

import keras
import tensorflow as tf

from avrnn_tf import adversarial
from avrnn_tf import objectives
from avrnn_tf import protocol
from avrnn_tf import replicas
from avrnn_tf import rng
from avrnn_tf.replicas import global_sum, num_replicas, replica_sum

_ADVERSARIAL_FOLD = 1_000_003  # Folded into the step seed for the adversarial phase's noise.

def clip_gradients(grads, clip_norm):
    """Clips by global norm when clip_norm > 0; returns (grads, norm before clipping).

    On several replicas the norm is that of the summed (global) gradient, and every replica scales
    its local gradient by the same factor, so the sum the optimizer applies equals the
    single-device clipped gradient.
    """
    ctx = replicas.context()
    norm = tf.linalg.global_norm(replica_sum(ctx, grads) if ctx else grads)
    if clip_norm and clip_norm > 0:
        factor = clip_norm / tf.maximum(norm, clip_norm)
        grads = [None if g is None else g * factor for g in grads]
    return grads, norm


def apply_if_finite(optimizer, loss, grads, variables, clip_norm):
    """Clips and applies `grads` only if `loss` and every gradient are finite.

    Returns (finite: bool tensor, global norm before clipping). On a non-finite step the variables
    and the optimizer's slots are untouched and only `optimizer.iterations` advances. The optimizer
    must be built beforehand (`fit` builds it; so does `loop.build_trainer`), since no variable may
    be created inside the conditional.
    """
    grads, norm = clip_gradients(grads, clip_norm)
    finite = tf.math.is_finite(tf.cast(loss, tf.float32)) & tf.math.is_finite(norm)
    ctx = replicas.context()
    if ctx is None:
        def apply():
            optimizer.apply_gradients(zip(grads, variables))
            return tf.constant(True)

        def skip():
            optimizer.iterations.assign_add(1)
            return tf.constant(False)

        tf.cond(finite, apply, skip)
        return finite, norm

    # Several replicas: every replica must take the same branch, and a branch that applies
    # gradients synchronises (merge_call), which tf.distribute allows only from a cross-replica
    # context; so the decision is all-reduced and the cond runs there.
    finite = replica_sum(ctx, 1.0 - tf.cast(finite, tf.float32)) == 0

    def cross_replica(distribution, finite, grads):
        decision = distribution.experimental_local_results(finite)[0]

        def apply():
            distribution.extended.call_for_each_replica(
                lambda g: optimizer.apply_gradients(zip(g, variables)), args=(grads,))
            return tf.constant(True)

        def skip():
            optimizer.iterations.assign_add(1)
            return tf.constant(False)

        return tf.cond(decision, apply, skip)

    ctx.merge_call(cross_replica, args=(finite, grads))
    return finite, norm


class ELBOTrainer(keras.Model):
    """Maximises an objective (objectives.py) of a `protocol.SequenceModel` with one optimizer.

    Args:
      network: a built network.
      objective: `objective(network, x, mask, seed, step) -> dict` (objectives.py); None = the
        ELBO with `objective_options` (kl_weight, kl_schedule, aux_weight of `objectives.elbo`).
      seed: integer from which every step's noise is derived.
      clip_norm: global-norm gradient clipping threshold (<= 0 disables clipping).

    The metrics are `loss`, the names the objective returns (`objectives.metric_names`),
    `grad_norm` and the non-finite counters.
    """

    def __init__(self, network, objective=None, seed=0, clip_norm=10.0, **objective_options):
        super().__init__()
        self.network = network
        if objective is not None and objective_options:
            raise ValueError(f"options {sorted(objective_options)} given with an objective")
        self.objective = objective or functools.partial(objectives.elbo, **objective_options)
        self.seed = int(seed)
        self.clip_norm = float(clip_norm)
        self.trace_count = 0  # Incremented only when train_step is traced (Python side effect).
        names = objectives.metric_names(self.objective, network) + ["grad_norm"]
        self.eval_metric_names = objectives.metric_names(self.objective, network, training=False)
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        # Checkpointed with the model: a resumed run keeps counting where it stopped.
        self.nonfinite_total = self.add_weight(shape=(), dtype="int64", initializer="zeros",
                                               trainable=False, name="nonfinite_total")
        self.nonfinite_streak = self.add_weight(shape=(), dtype="int64", initializer="zeros",
                                                trainable=False, name="nonfinite_streak")

    def named_optimizers(self):
        """{phase: optimizer}: every optimizer a training step uses (the plateau decay of the
        learning rate scales them all)."""
        return {"training": self.optimizer}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def results(self, keep=lambda name: True):
        """{name: value} of the metrics. On several replicas each replica's Mean holds only its own
        sums, and Keras averages the returned logs over replicas, which would weight replicas
        equally; so the sums are all-reduced here and every replica returns the global ratio."""
        if replicas.context() is None:
            return {m.name: m.result() for m in self.metrics if keep(m.name)}
        return {m.name: global_sum(m.total) / tf.maximum(global_sum(m.count), 1e-12)
                for m in self.metrics if keep(m.name)}

    def count_finite(self, finite):
        """Updates the non-finite counters after a step; returns them as a dict of logs."""
        bad = tf.cast(tf.logical_not(finite), "int64")
        self.nonfinite_total.assign_add(bad)
        self.nonfinite_streak.assign((self.nonfinite_streak + bad) * bad)
        return {"nonfinite_steps": tf.convert_to_tensor(self.nonfinite_total),
                "nonfinite_streak": tf.convert_to_tensor(self.nonfinite_streak)}

    def call(self, inputs, training=False):
        """Per-sequence objective [B] of `(x, mask)` (or of x alone, every frame real), evaluation
        noise."""
        if isinstance(inputs, (tuple, list)):
            x, mask = inputs
        else:
            x = inputs
            mask = tf.ones(tf.shape(x)[:2], x.dtype)
        return self.evaluate_objective(x, mask)["objective"]

    def evaluate_objective(self, x, mask):
        """The objective's output on held-out frames: evaluation noise, no schedule."""
        return self.objective(self.network, x, mask,
                              objectives.step_seed(self.seed, objectives.EVAL_FOLD), None)

    def _loss(self, out):
        """-objective per frame of the global batch (replicas' gradients are summed)."""
        return -tf.reduce_sum(out["objective"]) / tf.maximum(
            global_sum(tf.reduce_sum(out["num_frames"])), 1.0)

    def _update_metrics(self, out, grad_norm=None, finite=None):
        """Adds one batch's objective output (and gradient norm) to the metric averages; a
        skipped (non-finite) step's values stay out of them."""
        for name, (value, weight) in objectives.batch_metrics(out).items():
            self._update(name, value, weight, finite)
        if grad_norm is not None:
            self._update("grad_norm", grad_norm, 1.0, finite)

    def _update(self, name, value, weight, finite=None):
        if finite is not None:
            value = tf.where(finite, value, tf.zeros_like(value))
            weight = weight * tf.cast(finite, tf.float32)
        self._trackers[name].update_state(value, sample_weight=weight)

    def train_step(self, data):
        self.trace_count += 1
        x, mask = data
        step = self.optimizer.iterations
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            out = self.objective(self.network, x, mask, objectives.step_seed(self.seed, step), step)
            loss = self._loss(out)
        finite, norm = apply_if_finite(self.optimizer, loss, tape.gradient(loss, variables),
                                       variables, self.clip_norm)
        self._update_metrics(out, norm, finite)
        return {**self.results(), **self.count_finite(finite)}

    def test_step(self, data):
        x, mask = data
        self._update_metrics(self.evaluate_objective(x, mask))
        return self.results(lambda name: name in self.eval_metric_names)


# ------------------------------------------------------------------------------------------
# A-VRNN (Huang & Xiao, Algorithms 1 and 2; signs as fixed in ../shared/docs/DESIGN.md section 4)

AVRNN_PHASE_METRICS = ("recon_per_frame", "grad_norm_recon")
AVRNN_CRITIC_METRICS = ("critic_loss", "adversarial_loss", "wasserstein_estimate",
                        "critic_weight_max_abs", "grad_norm_critic", "grad_norm_adversarial")


def _in_order(variables, chosen):
    """`variables` filtered to those in `chosen`, keeping the order of `variables`."""
    keep = {id(v) for v in chosen}
    return [v for v in variables if id(v) in keep]


class AVRNNTrainer(ELBOTrainer):
    """A-VRNN: one `train_step` = reconstruction phase, n_critic critic steps, adversarial step.

    Phases (Algorithm 1 and 2 of Huang & Xiao; ../shared/docs/DESIGN.md section 4):
      1. reconstruction: minimise (-sum_t log p(x_t | z~_t, h_{t-1}) + kl_weight * sum_t KL_t) per
         frame over the RNN, phi_x, phi_z, emission and posterior (plus the prior when
         kl_weight > 0: the "hybrid" A-VRNN+KL, which at kl_weight 1 is exactly the ELBO step);
         the compiled `optimizer`, whose `iterations` is the global step.
      2. critic (n_critic times): run the recurrence driven by posterior samples z~_t, draw prior
         samples z_t ~ p(z_t | h_{t-1}) from the same h_{t-1}, minimise the critic loss over the
         critic only (`critic_optimizer`), then clip every critic weight to [-c, c] ("wgan").
      3. adversarial: fresh samples as in 2, minimise the adversarial loss over the prior and the
         posterior only (`adversarial_optimizer`). For the posterior's first-layer weights that
         live inside the fused `recurrent_kernel`, the gradient of the LSTM's columns is zeroed,
         so RMSProp leaves them exactly unchanged.
    Each phase may read its own batch: with `separate_batches` a batch is (x [P, B, T, D],
    mask [P, B, T]) with P = n_critic + 2 (reconstruction, each critic step, adversarial);
    otherwise (x [B, T, D], mask [B, T]) shared by all phases. With `phase_axis = 1` the phases
    are the second axis instead (x [B, P, T, D], mask [B, P, T]): tf.distribute splits a batch
    along its first axis, which must then be the batch axis (loop.Run sets it on several replicas).

    Noise: the reconstruction phase draws exactly the noise `ELBOTrainer` draws at the same step;
    critic step k and the adversarial phase fold k + 1 and a fixed constant into that seed.

    Args:
      network: a built latent `SequenceNetwork` ("vrnn", or "vrnn_i" for a fixed prior).
      critic: an `adversarial.Critic` (built with `build_for(z_dim)`).
      seed, clip_norm: as `ELBOTrainer`; clip_norm applies to the reconstruction and adversarial
        gradients (the critic is constrained by clipping or the penalty instead).
      kl_weight: KL weight in the reconstruction phase (paper: 0).
      objective: the reconstruction phase's objective (objectives.py); None = the ELBO with
        `kl_weight` (its kl_weight must be the same: the phase selection reads `kl_weight`).
      critic_type: "wgan" (clipping), "wgan_gp" (gradient penalty) or "gan" (JS discriminator).
      n_critic: critic steps per iteration (paper: 1).
      clip_value: c of the weight clipping (WGAN: 0.01); used by "wgan" only.
      gp_weight: lambda of the gradient penalty (WGAN-GP: 10); used by "wgan_gp" only.
      separate_batches: whether batches hold one batch per phase (see above).
      regularize: False skips phases 2 and 3 (reconstruction only; for ablations and tests).
    """

    def __init__(self, network, critic, seed=0, clip_norm=10.0, kl_weight=0.0, critic_type="wgan",
                 n_critic=1, clip_value=0.01, gp_weight=10.0, separate_batches=True,
                 regularize=True, objective=None):
        objective = objective or functools.partial(objectives.elbo, kl_weight=kl_weight)
        super().__init__(network, objective, seed=seed, clip_norm=clip_norm)
        self.kl_weight = float(kl_weight)
        if not network.z_dim:
            raise ValueError("A-VRNN needs a latent model (e.g. kind 'vrnn' or 'vrnn_i'), not 'rnn'")
        if critic_type not in adversarial.CRITICS:
            raise ValueError(f"critic type {critic_type!r} is not one of {adversarial.CRITICS}")
        self.critic = critic
        self.critic_type = critic_type
        self.n_critic = int(n_critic)
        self.clip_value = float(clip_value)
        self.gp_weight = float(gp_weight)
        self.separate_batches = bool(separate_batches)
        self.regularize = bool(regularize)
        self.critic_optimizer = None
        self.adversarial_optimizer = None
        self.phase_axis = 0  # The axis of P in separate batches (see the class docstring).

        groups = network.parameter_groups()
        untrained = [name for name, variables in groups.items()
                     if variables and name not in protocol.AVRNN_GROUPS]
        if untrained:
            raise ValueError(
                f"A-VRNN has no phase that trains the {' and '.join(untrained)} parameters of "
                f"model kind {network.spec.kind!r}; use train.algorithm 'elbo' for it")
        every = network.trainable_variables
        recon = groups["rnn"] + groups["features"] + groups["emission"] + groups["posterior"]
        if self.kl_weight > 0:
            recon = recon + groups["prior"]
        self.recon_variables = _in_order(every, recon)
        adv = _in_order(every, groups["prior"] + groups["posterior"])
        shared = network.shared_posterior_columns()
        self.adversarial_variables = adv + [v for v, _ in shared]
        self._adversarial_masks = [None] * len(adv) + [m for _, m in shared]

        del self._trackers["grad_norm"]  # Replaced by the per-phase gradient norms.
        names = list(AVRNN_PHASE_METRICS)
        if self.regularize:
            names += AVRNN_CRITIC_METRICS
            if critic_type == "wgan_gp":
                names.append("gradient_penalty")
        self._trackers.update({name: keras.metrics.Mean(name=name) for name in names})

    @property
    def num_batches_per_step(self):
        """P: how many batches one step reads when `separate_batches` is on."""
        return self.n_critic + 2 if self.regularize else 1

    def named_optimizers(self):
        return {"reconstruction": self.optimizer, "critic": self.critic_optimizer,
                "adversarial": self.adversarial_optimizer}

    def set_phase_optimizers(self, critic_optimizer, adversarial_optimizer):
        """Attaches (and builds) the critic's and the adversarial phase's optimizers."""
        self.critic_optimizer = critic_optimizer
        self.adversarial_optimizer = adversarial_optimizer
        critic_optimizer.build(self.critic.trainable_variables)
        adversarial_optimizer.build(self.adversarial_variables)

    # ------------------------------------------------------------------------------ phases
    def latent_pairs(self, x, seed):
        """(z_prior, z_posterior), each [B, T, Z], along one posterior-driven trajectory.

        z~_t = mu_z + sigma_z * eps_t drives the recurrence; z_t = mu_0 + sigma_0 * eps'_t is drawn
        from the prior at the same h_{t-1}, with independent noise eps'.
        """
        q_seed, p_seed = rng.split(seed, 2)
        out = self.network.trajectory(x, replicas.normal(self.network.noise_shape(x), q_seed))
        eps = replicas.normal(tf.shape(out["z"]), p_seed)
        return out["prior_loc"] + out["prior_scale"] * eps, out["z"]

    def reconstruction_step(self, x, mask, seed):
        """Phase 1. Returns (bound pieces as `bounds.elbo`, gradient norm before clipping, whether
        the step was finite and applied)."""
        variables = self.recon_variables
        with tf.GradientTape() as tape:
            b = self.objective(self.network, x, mask, seed, None)
            loss = self._loss(b)
        finite, norm = apply_if_finite(self.optimizer, loss, tape.gradient(loss, variables),
                                       variables, self.clip_norm)
        return b, norm, finite

    def critic_step(self, x, mask, seed):
        """Phase 2, one step (update, then clip for "wgan"). Returns a dict of scalars."""
        z_prior, z_post = self.latent_pairs(x, seed)
        variables = self.critic.trainable_variables
        penalty = tf.constant(0.0)
        with tf.GradientTape() as tape:
            d_prior, d_post = self.critic(z_prior, mask), self.critic(z_post, mask)
            if self.critic_type == "gan":
                loss = adversarial.gan_critic_loss(d_prior, d_post)
            else:
                loss = adversarial.critic_loss(d_prior, d_post)
            if self.critic_type == "wgan_gp":
                gp_seed = rng.fold_in(seed, 7)
                penalty = adversarial.gradient_penalty(self.critic, z_prior, z_post, mask, gp_seed)
                loss = loss + self.gp_weight * penalty
            # Batch means: replicas' gradients are summed, so each contributes 1/replicas.
            replica_loss = loss / num_replicas()
        finite, norm = apply_if_finite(self.critic_optimizer, loss,
                                       tape.gradient(replica_loss, variables), variables, clip_norm=0.0)
        if self.critic_type == "wgan":
            adversarial.clip_weights(variables, self.clip_value)
        return {"critic_loss": loss, "gradient_penalty": penalty, "grad_norm_critic": norm,
                "wasserstein_estimate": adversarial.wasserstein_estimate(d_prior, d_post),
                "finite": finite}

    def adversarial_step(self, x, mask, seed):
        """Phase 3. Returns (adversarial loss, gradient norm before clipping, finite)."""
        variables = self.adversarial_variables
        with tf.GradientTape() as tape:
            z_prior, z_post = self.latent_pairs(x, seed)
            d_prior, d_post = self.critic(z_prior, mask), self.critic(z_post, mask)
            if self.critic_type == "gan":
                loss = adversarial.gan_adversarial_loss(d_prior, d_post)
            else:
                loss = adversarial.adversarial_loss(d_prior, d_post)
            replica_loss = loss / num_replicas()
        grads = tape.gradient(replica_loss, variables,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        grads = [g if m is None else g * m for g, m in zip(grads, self._adversarial_masks)]
        finite, norm = apply_if_finite(self.adversarial_optimizer, loss, grads, variables,
                                       self.clip_norm)
        return loss, norm, finite

    # --------------------------------------------------------------------------- the step
    def train_step(self, data):
        self.trace_count += 1
        x, mask = data
        if self.separate_batches and self.regularize:
            axis = self.phase_axis
            batch = lambda p: (tf.gather(x, p, axis=axis), tf.gather(mask, p, axis=axis))
        else:
            batch = lambda p: (x, mask)
        seed = objectives.step_seed(self.seed, self.optimizer.iterations)
        b, norm, finite = self.reconstruction_step(*batch(0), seed)
        self._update_metrics(b, finite=finite)
        t = self._trackers
        update = lambda name, value, ok: self._update(name, value, 1.0, ok)

        frames = tf.reduce_sum(b["num_frames"])
        update("recon_per_frame", -tf.reduce_sum(b["per_frame"]["log_px"]) / tf.maximum(frames, 1.0),
               finite)
        update("grad_norm_recon", norm, finite)
        all_finite = finite
        if self.regularize:
            for k in range(self.n_critic):
                c = self.critic_step(*batch(1 + k), rng.fold_in(seed, 1 + k))
                all_finite = all_finite & c["finite"]
            for name in ("critic_loss", "wasserstein_estimate", "grad_norm_critic"):
                update(name, c[name], c["finite"])
            if "gradient_penalty" in t:
                update("gradient_penalty", c["gradient_penalty"], c["finite"])
            t["critic_weight_max_abs"].update_state(
                adversarial.max_abs_weight(self.critic.trainable_variables))
            adv_seed = rng.fold_in(seed, _ADVERSARIAL_FOLD)
            loss, adv_norm, adv_finite = self.adversarial_step(*batch(self.n_critic + 1), adv_seed)
            update("adversarial_loss", loss, adv_finite)
            update("grad_norm_adversarial", adv_norm, adv_finite)
            all_finite = all_finite & adv_finite
        return {**self.results(), **self.count_finite(all_finite)}
