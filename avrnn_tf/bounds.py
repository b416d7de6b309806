"""Bounds on log p(x_{1:T}) as pure functions of per-frame terms and a mask.

`terms` is the dict returned by `SequenceNetwork.frame_terms` (per-frame [B, T] tensors); `mask`
is [B, T] with 1 for a real frame and 0 for padding. Padded frames contribute exactly zero: every
per-frame term is multiplied by the mask before anything is summed, so their values (even NaN-free
garbage from padding) never reach a bound or a gradient.

For "rnn" models the KL term is zero and `elbo` is the exact log-likelihood.

#### References
Chung et al. (2015), eq. 10 (the factorised ELBO with an analytic per-step KL).
Kingma et al. (2016), "Improved Variational Inference with Inverse Autoregressive Flow" (free bits).
"""

import math

import tensorflow as tf

from avrnn_tf import heads
from avrnn_tf import replicas
from avrnn_tf import rng


def masked(values, mask):
    """values where mask > 0, exactly 0 elsewhere (even where values are NaN or Inf)."""
    return tf.where(tf.cast(mask, tf.bool), values, tf.zeros_like(values))


def elbo(terms, mask, kl_weight=1.0, free_bits=0.0, batch_sum=None):
    """Per-sequence ELBO pieces with the analytic KL.

    Returns a dict of [B] tensors: `elbo` = sum_t [log p(x_t|.) - KL_t], `log_px` = sum_t log
    p(x_t|.), `kl` = sum_t KL_t, `objective` = sum_t [log p(x_t|.) - kl_weight * KL_t] (what a
    trainer maximises; equal to `elbo` at kl_weight 1), and `num_frames` = sum_t mask_t.

    With `free_bits` > 0 (nats per frame and latent dimension; latent models only) the objective
    subtracts kl_weight * `kl_trained` instead, the KL with Kingma et al.'s per-dimension floor
    (`free_bits_kl`; `batch_sum` as there); `elbo` and `kl` stay the true values.
    """
    log_px = tf.reduce_sum(masked(terms["log_px"], mask), axis=1)
    kl = tf.reduce_sum(masked(terms["kl"], mask), axis=1)
    out = {
        "elbo": log_px - kl,
        "log_px": log_px,
        "kl": kl,
        "num_frames": tf.reduce_sum(tf.cast(mask, log_px.dtype), axis=1),
    }
    trained_kl = kl
    if free_bits > 0 and "post_loc" in terms["trajectory"]:
        trained_kl = out["kl_trained"] = free_bits_kl(kl_per_dimension(terms), mask, free_bits,
                                                      batch_sum)
    out["objective"] = log_px - kl_weight * trained_kl
    return out


def kl_per_dimension(terms):
    """KL(q(z_t,d | .) || p(z_t,d | .)) [B, T, Z] of each latent dimension (unmasked), from the
    posterior and prior parameters in `terms["trajectory"]`; summed over d it is `terms["kl"]`."""
    out = terms["trajectory"]
    params = (out["post_loc"], out["post_scale"], out["prior_loc"], out["prior_scale"])
    return heads.normal_kl(*(v[..., None] for v in params))  # A trailing event axis of size 1.


def free_bits_kl(kl_dims, mask, floor, batch_sum=None):
    """The KL term of a free-bits objective ("free bits" of Kingma et al. 2016), [B].

    Each latent dimension d gets a floor on its KL averaged over the batch: with
      KL_d = sum_{b,t} mask_bt kl_btd / sum_{b,t} mask_bt
    (nats per frame, averaged over every real frame of every sequence in the batch), the objective
    subtracts N * sum_d max(floor, KL_d) instead of the batch's total KL (N = the batch's real
    frames). The batch's trained KL is split over its sequences as
      kl_trained_b = sum_d [ sum_t mask_bt kl_btd   if KL_d > floor   else   n_b * floor ],
    (n_b = sequence b's frames), which sums to exactly that. Whether a dimension is above its
    floor is decided on stopped values, so a dimension below the floor gets exactly zero gradient
    from the KL (the posterior is free to use it up to the floor) and one above it gets the plain
    KL's gradient.

    Args:
      kl_dims: [B, T, Z] per-dimension KL (`kl_per_dimension`).
      mask: [B, T].
      floor: the free bits lambda, nats per frame and latent dimension (> 0).
      batch_sum: optional callable summing a tensor over the whole batch when the batch is split
        (e.g. over tf.distribute replicas, each holding some of its sequences); it receives the
        local sums [Z + 1] (per-dimension KL, then frames). Default: this batch is the whole batch.

    Returns:
      kl_trained [B].
    """
    mask = tf.cast(mask, kl_dims.dtype)
    per_sequence = tf.reduce_sum(masked(kl_dims, mask[..., None]), axis=1)  # [B, Z]
    frames = tf.reduce_sum(mask, axis=1)  # [B]
    totals = tf.stop_gradient(tf.concat([tf.reduce_sum(per_sequence, axis=0),
                                         tf.reduce_sum(frames)[None]], axis=0))
    if batch_sum is not None:
        totals = batch_sum(totals)
    mean_kl = totals[:-1] / tf.maximum(totals[-1], 1.0)  # KL_d [Z]
    floored = tf.broadcast_to(floor * frames[:, None], tf.shape(per_sequence))
    return tf.reduce_sum(tf.where(mean_kl > floor, per_sequence, floored), axis=1)


# ----------------------------------------------------------------------------------------------
# Importance-weighted bounds: IWAE-K (Burda et al. 2016) and FIVO-K (Maddison et al. 2017).
#
# K samples are batched, never looped over in Python: the batch is tiled sample-major
# (`tile_batch`: row k*B + b is a copy of sequence b), the model runs once on [K*B, ...] with noise
# [K*B, T, Z], and the per-sample log-weights are reshaped to [K, B].
#
#   log w^k = sum_t mask_t [log p(x_t | z^k_{<=t}, x_{<t}) + log p(z^k_t | .) - log q(z^k_t | .)]
#   IWAE-K  = log (1/K) sum_k w^k  >= E[log w] (the ELBO with a sampled KL); IWAE-1 is that ELBO.
#   FIVO-K  = sum over resampling epochs of log (1/K) sum_k w^k_epoch, where a particle filter
#             replaces the particles by K ancestors drawn in proportion to their weights whenever the
#             effective sample size (sum w)^2 / sum w^2 is at most ess_threshold * K (FIVO's rule:
#             ESS <= K/2, so at K = 2 a filter whose weight sits on one particle resamples).
# exp(IWAE-K) and exp(FIVO-K) are unbiased estimates of p(x_{1:T}), so both are lower bounds on
# log p in expectation; with resampling off FIVO-K is IWAE-K computed step by step.
# ----------------------------------------------------------------------------------------------


def tile_batch(x, num_samples):
    """[B, ...] -> [K*B, ...] sample-major: row k*B + b is a copy of row b."""
    x = tf.convert_to_tensor(x)
    multiples = tf.concat([[num_samples], tf.ones([tf.rank(x) - 1], tf.int32)], axis=0)
    return tf.tile(x, multiples)


def log_weights(terms, mask, num_samples):
    """Per-sample, per-sequence log importance weights [K, B].

    Args:
      terms: `frame_terms` of the K-tiled batch (log_px, log_pz, log_qz, each [K*B, T]).
      mask: [B, T] mask of the untiled batch.
      num_samples: K.
    """
    tiled_mask = tile_batch(mask, num_samples)
    per_frame = terms["log_px"] + terms["log_pz"] - terms["log_qz"]
    total = tf.reduce_sum(masked(per_frame, tiled_mask), axis=1)
    return tf.reshape(total, tf.stack([num_samples, tf.shape(mask)[0]]))


def log_mean_exp(values, axis=0):
    """log mean exp(values) along `axis`, stably (through logsumexp)."""
    count = tf.cast(tf.shape(values)[axis], values.dtype)
    return tf.reduce_logsumexp(values, axis=axis) - tf.math.log(count)


def iwae(terms, mask, num_samples):
    """IWAE-K per sequence from the frame terms of a K-tiled batch.

    Returns a dict of [B] tensors: `iwae` = log (1/K) sum_k w^k, `elbo_sampled` = (1/K) sum_k
    log w^k (the single-sample ELBO with the sampled KL, averaged over the K samples) and
    `num_frames`; plus `log_weights` [K, B] (so chunks over K can be merged with `log_mean_exp`).
    """
    lw = log_weights(terms, mask, num_samples)
    return {
        "iwae": log_mean_exp(lw, axis=0),
        "elbo_sampled": tf.reduce_mean(lw, axis=0),
        "num_frames": tf.reduce_sum(tf.cast(mask, lw.dtype), axis=1),
        "log_weights": lw,
    }


def fivo(model, x, mask, noise, num_samples, seed, resample=True, ess_threshold=0.5):
    """FIVO-K per sequence: the log of a particle filter's estimate of p(x_{1:T}).

    The filter runs over K particles per sequence, batched as [K*B] rows (sample-major), inside one
    tf.while_loop over frames. After frame t's weights are added, a sequence whose effective
    sample size is at most `ess_threshold * K` (and whose frame t is real) adds log mean_k w^k to
    its estimate, draws K ancestors from Categorical(w) (multinomial resampling), copies the
    ancestors' recurrent states and resets its weights to 1. At the end the remaining log mean_k
    w^k is added. Padded frames add nothing and never trigger resampling.

    Gradients: the ancestors are integer draws, so a gradient of the result flows through the
    weights and through the copied states but not through the choice of ancestors. The
    score-function term of the resampling distribution, part of the exact gradient of
    E[FIVO-K], is dropped: the choice of Maddison et al. (2017) for training, whose code
    (research/fivo, smc.py) likewise stops the gradient at the ancestor indices. Padded frames
    and the resampling decision itself carry no gradient either.

    Args:
      model: the per-step interface of `models.SequenceNetwork`: `step_inputs(x, mask)`,
        `initial_state(n)` and `filter_step(state, inputs_t, noise_t, x_t) -> (state, log_px, log_pz,
        log_qz)`.
      x: [B, T, D] frames; mask: [B, T].
      noise: [K*B, T, Z] posterior noise, sample-major (the same noise `iwae` would use).
      num_samples: K (a Python int).
      seed: [2] int stateless seed of the resampling draws (step t folds in t).
      resample: False turns the filter into K independent trajectories (FIVO == IWAE).
      ess_threshold: resample when ESS <= ess_threshold * K (0.5, i.e. K/2, in Maddison et al.
        and their code); 0 never resamples (as resample=False), 1 at every real frame (ESS <= K
        always holds; where all weights are equal, ESS = K up to rounding). The ESS is computed
        in the weights' dtype: in float32 (as in FIVO) a filter of K = 2 whose weights differ by
        more than about 17 nats has ESS exactly 1 = K/2 and resamples.

    Returns:
      dict of [B] tensors: `fivo`, `num_frames`, `num_resamples` (resampling events per sequence).

    Raises:
      ValueError: if ess_threshold is outside [0, 1].

    #### References
    Maddison et al. (2017), "Filtering Variational Objectives", Algorithm 1.
    """
    if not 0.0 <= ess_threshold <= 1.0:
        raise ValueError(f"ess_threshold = {ess_threshold!r}: expected a fraction of K in [0, 1]")
    resample = resample and ess_threshold > 0
    k = int(num_samples)
    x = tf.convert_to_tensor(x)
    mask = tf.cast(mask, x.dtype)
    batch = tf.shape(x)[0]
    num_frames = tf.shape(x)[1]
    tiled_x = tile_batch(x, k)
    inputs = tf.transpose(model.step_inputs(tiled_x, tile_batch(mask, k)), [1, 0, 2])
    x_tm = tf.transpose(tiled_x, [1, 0, 2])
    noise_tm = tf.transpose(noise, [1, 0, 2])
    mask_tm = tf.transpose(mask)  # [T, B]
    seed = tf.convert_to_tensor(seed, tf.int32)
    log_k = math.log(k)
    columns = tf.range(batch)[None, :]  # [1, B]

    def body(t, state, log_w, log_p, count):
        state, log_px, log_pz, log_qz = model.filter_step(state, inputs[t], noise_tm[t], x_tm[t])
        real = mask_tm[t] > 0  # [B]
        increment = tf.reshape(log_px + log_pz - log_qz, tf.stack([k, batch]))
        log_w = log_w + tf.where(real[None, :], increment, tf.zeros_like(increment))
        if resample:
            log_sum = tf.reduce_logsumexp(log_w, axis=0)
            log_ess = 2.0 * log_sum - tf.reduce_logsumexp(2.0 * log_w, axis=0)
            now = tf.logical_and(real, log_ess <= math.log(ess_threshold * k))
            # Per sequence (the batch rows of a global batch when tf.distribute splits it).
            ancestors = tf.transpose(rng.categorical(
                tf.transpose(log_w), k, rng.fold_in(seed, t), replicas.uniform))  # [K, B]
            ancestors = tf.where(now[None, :], ancestors, tf.range(k)[:, None] + 0 * columns)
            rows = tf.reshape(ancestors * batch + columns, [-1])
            state = [tf.gather(s, rows) for s in state]
            log_p = log_p + tf.where(now, log_sum - log_k, tf.zeros_like(log_sum))
            log_w = tf.where(now[None, :], tf.zeros_like(log_w), log_w)
            count = count + tf.cast(now, count.dtype)
        return t + 1, state, log_w, log_p, count

    zeros_b = tf.zeros(tf.expand_dims(batch, 0), x.dtype)
    init = (tf.constant(0), model.initial_state(k * batch), tf.zeros(tf.stack([k, batch]), x.dtype),
            zeros_b, zeros_b)
    _, _, log_w, log_p, count = tf.while_loop(lambda t, *_: t < num_frames, body, init)
    return {
        "fivo": log_p + log_mean_exp(log_w, axis=0),
        "num_frames": tf.reduce_sum(mask, axis=1),
        "num_resamples": count,
    }
