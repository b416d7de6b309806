"""Bounds on log p(x_{1:T}) as pure functions of per-frame terms and a mask.

`terms` is the dict returned by `SequenceNetwork.frame_terms` (per-frame [B, T] tensors); `mask`
is [B, T] with 1 for a real frame and 0 for padding. Padded frames contribute exactly zero: every
per-frame term is multiplied by the mask before anything is summed, so their values (even NaN-free
garbage from padding) never reach a bound or a gradient.

For "rnn" models the KL term is zero and `elbo` is the exact log-likelihood.

#### References
Chung et al. (2015), eq. 10 (the factorised ELBO with an analytic per-step KL).
"""

import tensorflow as tf


def masked(values, mask):
    """values where mask > 0, exactly 0 elsewhere (even where values are NaN or Inf)."""
    return tf.where(tf.cast(mask, tf.bool), values, tf.zeros_like(values))


def elbo(terms, mask, kl_weight=1.0):
    """Per-sequence ELBO pieces with the analytic KL.

    Returns a dict of [B] tensors: `elbo` = sum_t [log p(x_t|.) - KL_t], `log_px` = sum_t log
    p(x_t|.), `kl` = sum_t KL_t, `objective` = sum_t [log p(x_t|.) - kl_weight * KL_t] (what a
    trainer maximises; equal to `elbo` at kl_weight 1), and `num_frames` = sum_t mask_t.
    """
    log_px = tf.reduce_sum(masked(terms["log_px"], mask), axis=1)
    kl = tf.reduce_sum(masked(terms["kl"], mask), axis=1)
    return {
        "elbo": log_px - kl,
        "log_px": log_px,
        "kl": kl,
        "objective": log_px - kl_weight * kl,
        "num_frames": tf.reduce_sum(tf.cast(mask, log_px.dtype), axis=1),
    }
