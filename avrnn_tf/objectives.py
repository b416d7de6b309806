"""Training objectives as pure functions of a network and a batch.

An objective is `objective(network, x, mask, seed, step) -> dict`:
  network  a `protocol.SequenceModel`;
  x, mask  frames [B, T, D] and mask [B, T] (1 = real frame);
  seed     a stateless [2] int32 seed; every draw derives from it (noise of shape
           `network.noise_shape(x)`, or a K-particle version of it, through `replicas.normal`,
           so a mirrored step draws what one device would);
  step     the training step (a scalar tensor) for schedules, or None in evaluation;
and returns
  "objective"     [B] what training maximises, per sequence (summed over real frames);
  "num_frames"    [B] real frames per sequence;
  "per_frame"     {name: [B] per-sequence sums}: reported as `<name>_per_frame` (sum / frames);
  "per_sequence"  {name: [B]}: reported as `<name>_per_sequence` (mean over sequences);
  "scalars"       {name: scalar}: training-only values reported as they are (e.g. a schedule).
The trainer reports `loss` = -objective per frame plus the names above: metric names come from
what the objective returns (`metric_names`), never from a list in the trainer or the loop.

`OBJECTIVES` maps `config.train.objective` to the function; `from_config` binds its options. The
K-particle objectives (IWAE-K, FIVO-K) tile x and draw their noise with `particle_noise`; nothing in
the trainer changes. They report, beside the trained bound (`iwae` / `fivo`), the analytic-KL ELBO
of particle 0 (`elbo`, `log_px`, `kl`): particle 0's noise is the noise the ELBO objective draws at
the same seed, so `elbo_per_frame` means the same thing (same estimator, same numbers at the same
weights) whatever the objective, and the trained bound can be read against it.
"""

import functools

import numpy as np
import tensorflow as tf

from avrnn_tf import bounds
from avrnn_tf import replicas
from avrnn_tf import rng

EVAL_FOLD = -1  # Folded into the seed for evaluation noise (training folds in the step >= 0).


def step_seed(seed, step):
    """A stateless [2] int32 seed for `step` (a scalar int tensor) from an integer `seed`."""
    return rng.fold_in(tf.constant([seed, 0], tf.int32), tf.cast(step, tf.int32))


def elbo(network, x, mask, seed, step, kl_weight=1.0, kl_schedule=None, aux_weight=0.0,
         free_bits=0.0):
    """The ELBO (the exact log-likelihood for models without latent), one posterior sample.

    objective = sum_t mask_t [log p(x_t | .) - w KL_t] + aux_weight * sum_t mask_t aux_t, with w
    = kl_weight, or during training (step given) min(cap, start + increment * step) for
    kl_schedule = (start, increment, cap); aux_t is a model's auxiliary log-likelihood
    (Z-Forcing's log p(b_t | z_t), frame term "aux_log_prob"), reported as aux_per_frame.
    With `free_bits` > 0, training (step given) subtracts the KL with Kingma et al.'s per-dimension
    floor (`bounds.free_bits_kl`, over the global batch), reported as kl_trained_per_frame;
    `elbo` and `kl` stay the true values, and evaluation (step None) uses the plain KL.
    """
    weight = tf.constant(float(kl_weight))
    if kl_schedule is not None and step is not None:
        start, increment, cap = kl_schedule
        weight = tf.minimum(cap, start + increment * tf.cast(step, tf.float32))
    terms = network.frame_terms(x, replicas.normal(network.noise_shape(x), seed), mask=mask)
    floor = free_bits if step is not None else 0.0
    b = bounds.elbo(terms, mask, weight, free_bits=floor, batch_sum=replicas.global_sum)
    per_frame = {"elbo": b["elbo"], "log_px": b["log_px"], "kl": b["kl"]}
    if "kl_trained" in b:
        per_frame["kl_trained"] = b["kl_trained"]
    objective = b["objective"]
    if "aux_log_prob" in terms:
        per_frame["aux"] = tf.reduce_sum(bounds.masked(terms["aux_log_prob"], mask), axis=1)
        objective = objective + aux_weight * per_frame["aux"]
    scalars = {"kl_weight": weight} if kl_schedule is not None and step is not None else {}
    return {"objective": objective, "num_frames": b["num_frames"], "per_frame": per_frame,
            "per_sequence": {"elbo": b["elbo"]}, "scalars": scalars}


def particle_noise(network, x, num_particles, seed):
    """Posterior noise [K*B, T, Z] of K particles per sequence of x, sample-major (row k*B + b is
    particle k of sequence b, as `bounds.iwae` and `bounds.fivo` expect).

    Particle 0 gets exactly the noise `elbo` draws at `seed`; particles 1..K-1 are drawn
    batch-major as [B, K - 1, T, Z] from `seed` folded with OTHER_PARTICLES_FOLD. Both go through
    `replicas.normal`, so on several replicas each one draws the particles of its own rows of the
    global batch (a mirrored step draws what one device would).
    """
    k = int(num_particles)
    shape = network.noise_shape(x)
    first = replicas.normal(shape, seed)
    if k == 1:
        return first
    rest = replicas.normal(tf.concat([shape[:1], [k - 1], shape[1:]], 0),
                           rng.fold_in(seed, OTHER_PARTICLES_FOLD))
    rest = tf.reshape(tf.transpose(rest, [1, 0, 2, 3]), tf.concat([[-1], shape[1:]], 0))
    return tf.concat([first, rest], axis=0)


OTHER_PARTICLES_FOLD = 3  # Folded into a step's seed for the noise of particles 1..K-1.
RESAMPLE_FOLD = 2  # Folded into a step's seed for FIVO's resampling draws.


def _with_bound(name, out, bound, aux_weight, aux=None):
    """An objective output whose trained value is `bound` (+ aux_weight * aux), with `bound` and
    the ELBO pieces of `out` (an `elbo` output of particle 0) reported per frame."""
    per_frame = {name: bound, **out["per_frame"]}
    objective = bound
    if aux is not None:
        per_frame["aux"] = aux
        objective = objective + aux_weight * aux
    return {"objective": objective, "num_frames": out["num_frames"], "per_frame": per_frame,
            "per_sequence": {name: bound}, "scalars": {}}


def _exact(name, network, x, mask, seed, aux_weight):
    """A latent-free model: every particle has the same weight, so IWAE-K and FIVO-K are the
    exact log-likelihood for every K; it is computed once (the ELBO objective, KL = 0)."""
    out = elbo(network, x, mask, seed, None, aux_weight=aux_weight)
    return _with_bound(name, out, out["per_frame"]["elbo"], aux_weight)


def _first_particle(terms, mask):
    """Particle 0's analytic-KL ELBO pieces (an objective output without the objective) and its
    auxiliary log-likelihood (None without one), from `frame_terms` whose first B rows are
    particle 0 (a K-tiled batch, or the untiled batch)."""
    rows = lambda name: tf.reduce_sum(bounds.masked(terms[name][:tf.shape(mask)[0]], mask), axis=1)
    log_px, kl = rows("log_px"), rows("kl")
    first = {"num_frames": tf.reduce_sum(tf.cast(mask, log_px.dtype), axis=1),
             "per_frame": {"elbo": log_px - kl, "log_px": log_px, "kl": kl}}
    return first, rows("aux_log_prob") if "aux_log_prob" in terms else None


def iwae(network, x, mask, seed, step, num_particles=1, aux_weight=0.0):
    """IWAE-K (Burda et al. 2016): log (1/K) sum_k w^k of K independent posterior trajectories
    (`bounds.iwae` on the K-tiled batch); IWAE-1 is the ELBO with a sampled KL.

    Reports `iwae` (the trained bound), and particle 0's analytic-KL `elbo`, `log_px`, `kl`
    (read from the same forward pass: no extra cost). A model's auxiliary cost (Z-Forcing's
    log p(b_t | z_t)) is added as particle 0's, times `aux_weight`. `step` is unused (no schedule).
    """
    if not network.z_dim:
        return _exact("iwae", network, x, mask, seed, aux_weight)
    k = int(num_particles)
    tiled_mask = bounds.tile_batch(mask, k)
    terms = network.frame_terms(bounds.tile_batch(x, k), particle_noise(network, x, k, seed),
                                mask=tiled_mask)
    first, aux = _first_particle(terms, mask)
    return _with_bound("iwae", first, bounds.iwae(terms, mask, k)["iwae"], aux_weight, aux)


def fivo(network, x, mask, seed, step, num_particles=1, aux_weight=0.0, ess_threshold=0.5):
    """FIVO-K (Maddison et al. 2017): the log of a particle filter's estimate of p(x_{1:T}),
    `bounds.fivo` with K particles, resampling when ESS <= ess_threshold * K (K/2).

    Gradients: through the weights and the resampled states, not through the choice of ancestors
    (the score-function term of resampling is dropped, as in FIVO; see `bounds.fivo`). The
    resampling draws use `seed` folded with RESAMPLE_FOLD, so they too are a function of the step.
    Reports `fivo` (the trained bound), `resamples` per sequence, and particle 0's analytic-KL
    `elbo`, `log_px`, `kl` (one more forward pass on the untiled batch, 1/K of the filter's rows;
    it carries no gradient unless `aux_weight` adds Z-Forcing's auxiliary cost from it).
    """
    if not network.z_dim:
        return _exact("fivo", network, x, mask, seed, aux_weight)
    k = int(num_particles)
    noise = particle_noise(network, x, k, seed)
    f = bounds.fivo(network, x, mask, noise, k, rng.fold_in(seed, RESAMPLE_FOLD),
                    ess_threshold=ess_threshold)
    first, aux = _first_particle(network.frame_terms(x, noise[:tf.shape(x)[0]], mask=mask), mask)
    out = _with_bound("fivo", first, f["fivo"], aux_weight, aux)
    out["per_sequence"]["resamples"] = f["num_resamples"]
    return out


OBJECTIVES = {"elbo": elbo, "iwae": iwae, "fivo": fivo}


def from_config(config, kl_weight=None):
    """The objective `config.train.objective` names, its options bound from config.train
    (`kl_weight` overrides train.kl_weight: A-VRNN's reconstruction phase, which has no KL
    schedule and no auxiliary cost; `check_algorithm_settings` refuses those with it)."""
    t = config.train
    if t.objective != "elbo":  # config.validate refuses the ELBO's KL options with these.
        return functools.partial(OBJECTIVES[t.objective], num_particles=t.num_particles,
                                 aux_weight=float(t.aux_weight))
    if kl_weight is not None:
        return functools.partial(OBJECTIVES[t.objective], kl_weight=kl_weight)
    schedule = None
    if t.kl_anneal:
        schedule = (float(t.kl_anneal_start), float(t.kl_anneal_increment),
                    float(t.kl_anneal_cap))
    return functools.partial(OBJECTIVES[t.objective], kl_weight=t.kl_weight,
                             kl_schedule=schedule, aux_weight=float(t.aux_weight),
                             free_bits=float(t.free_bits))


def metric_names(objective, network, training=True):
    """The metric names `objective` yields on `network` ("loss" first), found by calling it once
    on one frame (eagerly; only the returned keys matter)."""
    x = tf.zeros([1, 1, network.spec.x_dim])
    out = objective(network, x, tf.ones([1, 1]), tf.constant([0, 0], tf.int32),
                    tf.constant(0) if training else None)
    return (["loss"] + [f"{k}_per_frame" for k in out["per_frame"]]
            + [f"{k}_per_sequence" for k in out["per_sequence"]] + list(out["scalars"]))


def batch_metrics(out):
    """{metric name: (value, weight)} of one batch's objective output: per-frame ratios weighted
    by frames, per-sequence means weighted by sequences, scalars weighted 1 (for keras Mean)."""
    frames = tf.reduce_sum(out["num_frames"])
    sequences = tf.reduce_sum(tf.cast(out["num_frames"] > 0, frames.dtype))
    per_frame = lambda v: tf.reduce_sum(v) / tf.maximum(frames, 1.0)
    result = {"loss": (-per_frame(out["objective"]), frames)}
    for k, v in out["per_frame"].items():
        result[f"{k}_per_frame"] = (per_frame(v), frames)
    for k, v in out["per_sequence"].items():
        result[f"{k}_per_sequence"] = (tf.reduce_sum(v) / tf.maximum(sequences, 1.0), sequences)
    for k, v in out["scalars"].items():
        result[k] = (v, tf.constant(1.0))
    return result


def batch_signature(x_dim, seed=False):
    """The input signature of (x [B, T, x_dim], mask [B, T]) for any batch size and length, and
    of a seed pair [2] after them when `seed`."""
    spec = [tf.TensorSpec([None, None, x_dim], tf.float32), tf.TensorSpec([None, None], tf.float32)]
    return spec + [tf.TensorSpec([2], tf.int32)] if seed else spec


def evaluator(objective, network, seed):
    """`evaluate` for one (objective, network, seed), traced once: a function of numpy
    (x, mask) batches. A training run validates through one of these every round, so each round
    reuses the graph instead of tracing the objective again. Traced once, for any batch size and
    length."""
    noise_seed = step_seed(seed, EVAL_FOLD)
    fn = tf.function(lambda x, m: objective(network, x, m, noise_seed, None), autograph=False,
                     input_signature=batch_signature(network.spec.x_dim))

    def run(batches):
        sums, frames, sequences = {}, 0.0, 0.0
        for x, mask in batches:
            out = fn(tf.constant(x, tf.float32), tf.constant(mask, tf.float32))
            f = out["num_frames"].numpy()
            frames, sequences = frames + float(f.sum()), sequences + float(np.sum(f > 0))
            sums["loss"] = sums.get("loss", 0.0) - float(np.sum(out["objective"].numpy()))
            for group, suffix in ((out["per_frame"], "_per_frame"),
                                  (out["per_sequence"], "_per_sequence")):
                for k, v in group.items():
                    sums[k + suffix] = sums.get(k + suffix, 0.0) + float(np.sum(v.numpy()))
        return {k: v / max(sequences if k.endswith("_per_sequence") else frames, 1.0)
                for k, v in sums.items()}

    run.function = fn  # The traced function (its tracing count is checked by the tests).
    return run


def evaluate(objective, network, batches, seed):
    """Held-out metrics of `objective` over numpy (x, mask) batches, as exact ratios of sums over
    all of them (evaluation noise from the integer `seed`; no schedule: step None)."""
    return evaluator(objective, network, seed)(batches)
