"""Diagnostics of a trained latent model on held-out data: what a critic can see, and what it cannot.

For any latent member of the family (STORN, VRNN, Z-Forcing, and a VRNN trained as A-VRNN), on
held-out sequences and with the network frozen:

1. **Fresh-critic Wasserstein estimate.** A WGAN-GP critic of the run's own critic architecture
   (`adversarial.Critic`, `adversarial.gradient_penalty`) is trained from scratch for `critic_steps`
   steps to tell prior latent sequences z_{1:T} from posterior ones z~_{1:T}, drawn as the A-VRNN
   critic phase draws them: the recurrence is driven by posterior samples z~_t, and z_t is drawn
   from p(z_t | h_{t-1}) at the same h_{t-1}. The held-out sequences are split in two (alternate
   sequences in length order): the critic is fitted on one half, and measured on pairs drawn from
   the other half with noise never used in fitting, so a critic that memorised its own samples
   gains nothing. Reported: the raw W_hat = mean D(z) - mean D(z~), the largest gradient norm
   K_hat of D at the held-out points, and W_hat / K_hat, the estimate of W_1(P(z_{1:T}),
   Q(z_{1:T})) by the critic rescaled to be 1-Lipschitz on those points (a lower bound on W_1 if
   K_hat were D's Lipschitz constant; measured on samples, K_hat is from below). The rescaling
   matters: the gradient penalty is soft, and the fitted slope exceeds 1 where that pays (for
   shifted 1-D Gaussians the raw W_hat is ~ W_1 (1 + W_1 / (2 lambda)), 15% high at W_1 = 3).
   The training critic of an A-VRNN run, when there is one, is measured the same way on the very
   same held-out pairs: its rescaled W_hat is comparable with the fresh one even for a clipped
   critic (whose raw W_hat is K * W_1 with a tiny K). A training W_hat near 0 beside a large fresh
   W_hat means "critic too weak", not "distributions matched". The fit is finite (N steps): a
   small fresh W_hat can also be a critic not trained long enough.

2. **KL split** ("ELBO surgery", Hoffman & Johnson 2016). Over the held-out frames n = (sequence,
   t) of posterior-driven trajectories, with q_n = q(z_t | x_t, h_{t-1}) and p_n = p(z_t | h_{t-1}):

       mean_n KL(q_n || p_n) = KL(qbar || pbar) + information term,

   qbar = mean_n q_n and pbar = mean_n p_n the aggregate (pooled) posterior and prior. A critic that
   reads z alone can at best match qbar to pbar: it can remove the first term only. The exact
   information term is >= 0 (KL is jointly convex; the estimate below need not be); for a prior shared by all frames (STORN) it is
   the mutual information I(n; z) between the frame and its latent, and in general it is
   I(n; z) - E_q[log p_n(z) / pbar(z)].

   Estimator: a **Gaussian moment fit**. qbar and pbar are replaced by the Gaussians with their
   exact mean and full covariance (from the per-frame means and scales: Cov = mean(S_n + mu_n
   mu_n^T) - mean mu_n mean mu_n^T), and KL(qbar || pbar) is the closed-form KL between the two;
   the per-frame KL is the exact analytic mean, so the information term is their difference.
   `mutual_information` is mean_n KL(q_n || G(qbar)) = 0.5 (log det Cov(qbar) - mean_n sum_d log
   sigma_nd^2), an upper bound on I(n; z) (exact when qbar is Gaussian).
   Bias: exact when both aggregates are Gaussian (e.g. the toy x ~ N(0, 1), q = N(a x, s^2),
   p = N(0, 1), a^2 + s^2 = 1, where it returns 0 and -log s per dimension); when pbar is Gaussian
   (STORN) the fit is a lower bound on the aggregate KL, short by KL(qbar || G(qbar)), the
   aggregate posterior's non-Gaussian shape; in general it can err either way, and shapes with
   equal first two moments look matched (the fresh critic sees those). The finite-sample error of
   the moments adds about Z (Z + 3) / (4 N_eff) nats, N_eff the number of independent frames.
   Why not the minibatch mixture estimator (qbar as the mixture of a batch's M per-frame
   Gaussians): its mutual-information estimate can never exceed log M (e.g. 8.3 nats for M = 4096
   frames), while the per-frame KLs of A-VRNN runs are hundreds of nats, so it would book nearly
   all of it as aggregate KL.
   `num_samples` trajectories are drawn per sequence.

3. **Per-dimension scale statistics and active units.** Per latent dimension d: the geometric mean
   over frames of the posterior and prior scales, the per-frame KL of that dimension, and
   Var_n(E_q[z_d]) (over frames and trajectories); a dimension is active (Burda et al. 2016) when
   that variance exceeds 0.01. With a learned prior a posterior mean can vary only because it
   follows the prior (h_{t-1}); the per-dimension KL says which dimensions carry information.

Nothing here changes the network's weights or any random state of a run: every draw is stateless
from the diagnostics' own `seed`, and the fresh critic (seeded initial weights) and its optimizer
are separate objects.

#### References
Hoffman & Johnson (2016), "ELBO surgery: yet another way to carve up the variational evidence
lower bound". Burda et al. (2016), "Importance Weighted Autoencoders" (active units). Gulrajani et
al. (2017), "Improved Training of Wasserstein GANs". Huang & Xiao (A-VRNN, Algorithm 2).
"""

import numpy as np
import tensorflow as tf

from avrnn_tf import adversarial
from avrnn_tf import objectives
from avrnn_tf import rng

ESTIMATOR = "gaussian_moment_fit"
ACTIVE_THRESHOLD = 0.01  # Burda et al. (2016): Cov_x(E_q[z_d]) > 0.01.
DEFAULT_CRITIC_STEPS = 500
LEARNING_RATE = 3e-3  # Adam's, for the fresh critic.
_FIT, _HELDOUT, _KL = 1, 2, 3  # Folded into the base seed: the three streams never share noise.


def stream_seed(seed, *parts):
    """A stateless [2] int32 seed: `seed` folded with each of `parts` in turn."""
    s = tf.constant([int(seed), 13], tf.int32)
    for p in parts:
        s = rng.fold_in(s, p)
    return s


def latent_pairs(network, x, mask, seed):
    """Prior and posterior latent sequences along one posterior-driven trajectory.

    Args:
      network: a latent `models.SequenceNetwork` (frozen: nothing is trained here).
      x: frames [B, T, D]; mask: [B, T] (1 = real frame).
      seed: stateless [2] int32 seed.

    Returns:
      The network's trajectory dict (post_loc, post_scale, prior_loc, prior_scale, z = z~, ...,
      each [B, T, .]) plus "z_prior" [B, T, Z]: z_t = prior_loc + prior_scale * eps', eps'
      independent of the posterior noise (the pairs A-VRNN's critic phase compares).
    """
    q_seed, p_seed = tf.unstack(rng.split(seed, 2))
    noise = rng.normal(network.noise_shape(x), q_seed)
    out = network.trajectory(x, noise, mask=mask)
    eps = rng.normal(tf.shape(out["z"]), p_seed)
    out["z_prior"] = out["prior_loc"] + out["prior_scale"] * eps
    return {k: tf.stop_gradient(v) for k, v in out.items()}


# ------------------------------------------------------------------------------ KL split
def gaussian_kl(mean_q, cov_q, mean_p, cov_p):
    """KL(N(mean_q, cov_q) || N(mean_p, cov_p)) for full covariances [Z, Z] (numpy, float64)."""
    z = len(mean_q)
    diff = mean_p - mean_q
    _, logdet_q = np.linalg.slogdet(cov_q)
    _, logdet_p = np.linalg.slogdet(cov_p)
    return 0.5 * (np.trace(np.linalg.solve(cov_p, cov_q)) + diff @ np.linalg.solve(cov_p, diff)
                  - z + logdet_p - logdet_q)


class LatentStatistics:
    """Accumulates weighted per-frame posterior and prior Gaussians; `result()` gives the KL split,
    the per-dimension scale statistics and the active units (module docstring, parts 2 and 3).

    Sums are kept in float64, so any number of frames can be added in batches.
    """

    def __init__(self, z_dim):
        self.z_dim = int(z_dim)
        zeros = lambda *shape: np.zeros(shape, np.float64)
        self.weight = 0.0
        self.kl = zeros(z_dim)
        self.log_scale = {"posterior": zeros(z_dim), "prior": zeros(z_dim)}
        self.first = {"posterior": zeros(z_dim), "prior": zeros(z_dim)}
        self.outer = {"posterior": zeros(z_dim, z_dim), "prior": zeros(z_dim, z_dim)}
        self.variance = {"posterior": zeros(z_dim), "prior": zeros(z_dim)}

    def add(self, post_loc, post_scale, prior_loc, prior_scale, weights=None):
        """Adds frames: each argument [..., Z] (weights [...], default 1; 0 drops a frame)."""
        arrays = [np.asarray(a, np.float64).reshape(-1, self.z_dim)
                  for a in (post_loc, post_scale, prior_loc, prior_scale)]
        w = (np.ones(len(arrays[0])) if weights is None
             else np.asarray(weights, np.float64).reshape(-1))
        keep = w > 0
        mq, sq, mp, sp = (a[keep] for a in arrays)
        w = w[keep]
        self.weight += w.sum()
        # Analytic KL of two diagonal Normals, per dimension.
        self.kl += w @ (np.log(sp / sq) + (sq ** 2 + (mq - mp) ** 2) / (2 * sp ** 2) - 0.5)
        for name, loc, scale in (("posterior", mq, sq), ("prior", mp, sp)):
            self.log_scale[name] += w @ np.log(scale)
            self.first[name] += w @ loc
            self.outer[name] += (loc * w[:, None]).T @ loc
            self.variance[name] += w @ scale ** 2

    def moments(self, name):
        """(mean [Z], covariance [Z, Z]) of the aggregate ("posterior" or "prior"), and the
        covariance of the per-frame means alone [Z, Z] (the first without the mean variances)."""
        mean = self.first[name] / self.weight
        of_means = self.outer[name] / self.weight - np.outer(mean, mean)
        return mean, of_means + np.diag(self.variance[name] / self.weight), of_means

    def result(self):
        if self.weight <= 0:
            raise ValueError("no frames were added")
        w = self.weight
        mean_q, cov_q, cov_of_means = self.moments("posterior")
        mean_p, cov_p, _ = self.moments("prior")
        kl = float(self.kl.sum() / w)
        aggregate = float(gaussian_kl(mean_q, cov_q, mean_p, cov_p))
        mutual_information = 0.5 * (np.linalg.slogdet(cov_q)[1]
                                    - 2.0 * self.log_scale["posterior"].sum() / w)
        mean_variance = np.diag(cov_of_means)  # Var_n(E_q[z_d]) (Burda et al.'s activity).
        return {
            "kl_split": {
                "estimator": ESTIMATOR,
                "kl_per_frame": kl,
                "aggregate_kl": aggregate,
                "information_term": kl - aggregate,
                "mutual_information": float(mutual_information),
                "num_frames": float(w),
            },
            "latent_dims": {
                "posterior_scale": np.exp(self.log_scale["posterior"] / w).tolist(),
                "prior_scale": np.exp(self.log_scale["prior"] / w).tolist(),
                "posterior_mean_variance": mean_variance.tolist(),
                "kl": (self.kl / w).tolist(),
            },
            "active_units": int(np.sum(mean_variance > ACTIVE_THRESHOLD)),
            "active_units_threshold": ACTIVE_THRESHOLD,
            "z_dim": self.z_dim,
        }


# ---------------------------------------------------------------------------- fresh critic
def split_sequences(batches, batch_size):
    """Padded (x [B, T, D], mask [B, T]) batches -> (fit batches, held-out batches).

    The sequences (real frames only; masks are prefixes) are sorted by length and dealt
    alternately to the two halves, so both see the same lengths; each half is padded again.
    """
    from avrnn_tf.data import pipeline

    frames = sorted((x[i, :int(np.sum(m[i]))] for x, m in batches for i in range(len(x))), key=len)
    if len(frames) < 2:
        raise ValueError(f"the fresh critic needs at least 2 held-out sequences, got {len(frames)}")
    return pipeline.pad_batches(frames[0::2], batch_size), pipeline.pad_batches(frames[1::2], batch_size)


class FreshCritic:
    """A WGAN-GP critic fitted from scratch on latent pairs, then measured on held-out pairs.

    One object can be fitted many times (e.g. every N training steps): each `__call__` resets the
    critic and its optimizer to their initial (seeded) values, so the compiled steps are traced
    once.

    Args:
      draw: (x [B, T, D], mask [B, T], seed [2]) -> (z_prior, z_posterior), each [B, T, Z].
      z_dim: latent size Z.
      shape: (lstm_units, dense_units, dense_layers) of `adversarial.Critic`.
      seed: integer fixing the critic's initial weights.
      learning_rate, gp_weight: Adam (beta_1 0.5, beta_2 0.9) rate and penalty weight lambda.
    """

    def __init__(self, draw, z_dim, shape, seed=0, learning_rate=LEARNING_RATE, gp_weight=10.0):
        import keras

        self.draw = draw
        self.shape = tuple(int(v) for v in shape)
        self.learning_rate, self.gp_weight = float(learning_rate), float(gp_weight)
        self.critic = adversarial.Critic(*self.shape, seed=int(seed), name="fresh_critic")
        self.critic.build_for(z_dim)
        self.optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.5, beta_2=0.9)
        self.optimizer.build(self.critic.trainable_variables)
        self._state = self.critic.variables + self.optimizer.variables
        self._initial = [v.numpy() for v in self._state]
        self._step = tf.function(self._step_fn, autograph=False, reduce_retracing=True)
        self._measures = {}

    def _step_fn(self, x, mask, seed):
        pair_seed, gp_seed = tf.unstack(rng.split(seed, 2))
        z_prior, z_post = self.draw(x, mask, pair_seed)
        critic, variables = self.critic, self.critic.trainable_variables
        with tf.GradientTape() as tape:
            w = adversarial.wasserstein_estimate(critic(z_prior, mask), critic(z_post, mask))
            penalty = adversarial.gradient_penalty(critic, z_prior, z_post, mask, gp_seed)
            loss = self.gp_weight * penalty - w  # = critic_loss + lambda * penalty
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return w, penalty

    def fit(self, batches, steps, seed):
        """Resets the critic, then trains it for `steps` steps on (x, mask) `batches` in turn;
        step s draws its pairs and interpolates from stream_seed(seed, _FIT, s). Returns the
        last step's (W_hat, gradient penalty) on its training pairs (NaN if steps == 0)."""
        for v, value in zip(self._state, self._initial):
            v.assign(value)
        w = penalty = float("nan")
        for s in range(int(steps)):
            x, mask = batches[s % len(batches)]
            w, penalty = self._step(x, mask, stream_seed(seed, _FIT, s))
        return float(w), float(penalty)

    def _measure(self, critic):
        """The compiled measurement of `critic` (one per critic object, traced once)."""
        if id(critic) not in self._measures:
            def measure(z_prior, z_post, mask, seed):
                z_hat = adversarial.interpolate(z_prior, z_post, seed)
                norms, scores = [], []
                for z in (z_prior, z_post, z_hat):
                    with tf.GradientTape() as tape:
                        tape.watch(z)
                        d = critic(z, mask)
                    norms.append(tf.sqrt(tf.reduce_sum(tf.square(tape.gradient(d, z)), axis=[1, 2])))
                    scores.append(d)
                return scores[0] - scores[1], tf.reduce_max(tf.stack(norms))

            self._measures[id(critic)] = (critic, tf.function(measure, autograph=False,
                                                              reduce_retracing=True))
        return self._measures[id(critic)][1]

    def estimate(self, critic, pairs, seed):
        """W_hat of `critic` on held-out pairs [(z_prior, z_posterior, mask)], raw and rescaled.

        Returns a dict: "wasserstein_raw" = mean over sequences of D(z) - D(z~) (both sides of a
        pair share the trajectory); "lipschitz" K_hat = the largest ||grad_z D|| (over the whole
        sequence) at the held-out z, z~ and random interpolates between them; "wasserstein" =
        wasserstein_raw / K_hat, the estimate of W_1 by D / K_hat, which is 1-Lipschitz on the
        points seen (a lower bound on W_1 if K_hat is D's Lipschitz constant; K_hat is measured
        from below), with its standard error "stderr" over sequences (K_hat taken as fixed).
        The rescaling puts critics of any constraint on the W_1 scale: a clipped critic's raw
        W_hat is K * W_1 with a tiny K, and a WGAN-GP critic's slope exceeds 1 where that pays
        (for a linear critic by W_1 / (2 lambda): raw W_hat ~ W_1 (1 + W_1 / (2 lambda))).
        """
        measure = self._measure(critic)
        diffs, lipschitz = [], 0.0
        for i, (z_prior, z_post, mask) in enumerate(pairs):
            d, k = measure(z_prior, z_post, mask, stream_seed(seed, _HELDOUT, i, 1))
            diffs.append(d.numpy())
            lipschitz = max(lipschitz, float(k))
        diffs = np.concatenate(diffs)
        raw = float(np.mean(diffs))
        stderr = float(np.std(diffs, ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else None
        rescale = lambda v: None if v is None or lipschitz <= 0 else v / lipschitz  # JSON: no NaN.
        return {"wasserstein": rescale(raw), "stderr": rescale(stderr), "wasserstein_raw": raw,
                "lipschitz": lipschitz, "num_sequences": int(len(diffs))}

    def __call__(self, fit, heldout, steps, seed, training_critic=None):
        """Fits on the `fit` batches, then measures the fresh critic (and `training_critic`, if
        given) on pairs drawn from the `heldout` batches with noise the fit never used.

        Returns {"fresh_critic": {...}, "training_critic": {...} or None}.
        """
        last_w, last_penalty = self.fit(fit, steps, seed)
        pairs = [tuple(self.draw(x, m, stream_seed(seed, _HELDOUT, i))) + (m,)
                 for i, (x, m) in enumerate(heldout)]
        fresh = self.estimate(self.critic, pairs, seed)
        fresh.update(steps=int(steps), fit_sequences=int(sum(len(x) for x, _ in fit)),
                     learning_rate=self.learning_rate, gp_weight=self.gp_weight,
                     lstm_units=self.shape[0], dense_units=self.shape[1],
                     dense_layers=self.shape[2], last_fit_wasserstein_raw=last_w,
                     last_fit_gradient_penalty=last_penalty)
        return {"fresh_critic": fresh, "training_critic": (
            None if training_critic is None else self.estimate(training_critic, pairs, seed))}


# -------------------------------------------------------------------------- one network
class Diagnostics:
    """All diagnostics of a frozen latent network on held-out batches (see the module docstring).

    Build once, call as often as wanted (every call resets the fresh critic; nothing is traced
    again for batches of known shapes).

    Args:
      network: a latent `models.SequenceNetwork`.
      critic_shape: (lstm_units, dense_units, dense_layers) of the run's critic.
      critic_steps: updates of the fresh critic; 0 skips it (KL split and scales only).
      num_samples: posterior-driven trajectories per sequence for the KL split and scale stats.
      learning_rate, gp_weight: of the fresh critic (`FreshCritic`).
    """

    def __init__(self, network, critic_shape=(128, 100, 2), critic_steps=DEFAULT_CRITIC_STEPS,
                 num_samples=1, learning_rate=LEARNING_RATE, gp_weight=10.0):
        if not network.z_dim:
            raise ValueError(f"diagnostics need a latent model; kind {network.spec.kind!r} has none")
        self.network = network
        self.critic_steps, self.num_samples = int(critic_steps), int(num_samples)
        self.trajectory = tf.function(lambda x, m, s: latent_pairs(network, x, m, s),
                                      autograph=False,
                                      input_signature=objectives.batch_signature(
                                          network.spec.x_dim, seed=True))
        self.fresh_critic = None
        if self.critic_steps > 0:
            def draw(x, mask, seed):
                out = self.trajectory(x, mask, seed)
                return out["z_prior"], out["z"]

            self.fresh_critic = FreshCritic(draw, network.z_dim, critic_shape,
                                            learning_rate=learning_rate, gp_weight=gp_weight)

    def __call__(self, batches, seed=0, training_critic=None):
        """Diagnoses the network on held-out (x [B, T, D], mask [B, T]) numpy batches (whole
        sequences, prefix masks); every draw is stateless from the integer `seed`.
        `training_critic`, the run's own trained critic, is measured on the same held-out pairs.

        Returns a JSON-ready dict: kl_split, latent_dims, active_units, active_units_threshold,
        z_dim, fresh_critic and training_critic (None when not computed), seed, num_samples.
        """
        stats = LatentStatistics(self.network.z_dim)
        for i, (x, mask) in enumerate(batches):
            for k in range(self.num_samples):
                out = self.trajectory(x, mask, stream_seed(seed, _KL, i, k))
                stats.add(out["post_loc"], out["post_scale"], out["prior_loc"], out["prior_scale"],
                          mask)
        result = stats.result()
        result.update(seed=int(seed), num_samples=self.num_samples, fresh_critic=None,
                      training_critic=None)
        if self.fresh_critic is not None:
            fit, heldout = split_sequences(batches, max(len(x) for x, _ in batches))
            result.update(self.fresh_critic(fit, heldout, self.critic_steps, seed, training_critic))
        return result


def restore_training_critic(config, checkpoint_path, z_dim):
    """The trained critic of an A-VRNN run from its checkpoint, or None for runs without one.

    The critic's weights are reached in the checkpoint through its optimizer (as a resumed
    run restores them), so the critic and an RMSProp built on its variables are restored
    together; every weight is then checked against the checkpoint (`restore.verify_restored`).
    """
    import keras

    from avrnn_tf import restore

    a = config.adversarial
    if config.train.algorithm != "avrnn" or not a.regularize:
        return None
    critic = adversarial.Critic(a.critic_lstm_units, a.critic_dense_units, a.critic_dense_layers,
                                seed=0, name="critic")
    critic.build_for(z_dim)
    optimizer = keras.optimizers.RMSprop(a.critic_learning_rate)
    optimizer.build(critic.trainable_variables)
    holder = tf.train.Checkpoint(critic=critic, critic_optimizer=optimizer)
    tf.train.Checkpoint(model=holder).restore(checkpoint_path).expect_partial()
    restore.verify_restored(critic, checkpoint_path)
    return critic


def diagnose_run(config, network, batches, checkpoint_path, critic_steps, seed):
    """`Diagnostics` of a run restored from `checkpoint_path`, with its config's critic shape and
    (for A-VRNN) its training critic beside the fresh one (what `avrnn-eval --diagnostics` runs)."""
    a = config.adversarial
    diagnose = Diagnostics(network, (a.critic_lstm_units, a.critic_dense_units,
                                     a.critic_dense_layers), critic_steps)
    result = diagnose(batches, seed, restore_training_critic(config, checkpoint_path, network.z_dim))
    if result["training_critic"]:
        result["training_critic"]["type"] = a.critic  # wgan: raw W_hat is K * W_1; gan: a logit gap.
    return result


# ------------------------------------------------------------------------------- output
def scalars(result):
    """{tag suffix: value} of the headline numbers of a `diagnose` result."""
    split = result["kl_split"]
    values = {name: split[name] for name in
              ("kl_per_frame", "aggregate_kl", "information_term", "mutual_information")}
    values["active_units"] = result["active_units"]
    for name in ("fresh_critic", "training_critic"):
        if result.get(name) and result[name]["wasserstein"] is not None:
            values[f"{name}_wasserstein"] = result[name]["wasserstein"]
            values[f"{name}_wasserstein_raw"] = result[name]["wasserstein_raw"]
    return values


def write_summaries(result, writer, step, prefix="diagnostics"):
    """Writes a `diagnose` result to TensorBoard at `step`: the headline numbers as scalars
    `<prefix>/<name>` and the per-dimension statistics as histograms `<prefix>/<name>_per_dim`."""
    with writer.as_default(step=int(step)):
        for name, value in scalars(result).items():
            tf.summary.scalar(f"{prefix}/{name}", float(value))
        for name, values in result["latent_dims"].items():
            tf.summary.histogram(f"{prefix}/{name}_per_dim", np.asarray(values))
    writer.flush()


def format_result(result):
    """Human-readable lines of a `Diagnostics` result."""
    s = result["kl_split"]
    lines = [f"  KL per frame {s['kl_per_frame']:.4f} = aggregate KL {s['aggregate_kl']:.4f} "
             f"+ information term {s['information_term']:.4f} nats "
             f"(Gaussian moment fit; I(n; z) <= {s['mutual_information']:.4f})",
             f"  active units {result['active_units']} of {result['z_dim']} "
             f"(Var(E_q[z_d]) > {result['active_units_threshold']})"]
    number = lambda v: "n/a" if v is None else f"{v:.4f}"
    for name, label in (("fresh_critic", "fresh critic"), ("training_critic", "training critic")):
        c = result.get(name)
        if c:
            lines.append(f"  {label} W_hat {number(c['wasserstein'])} +- {number(c['stderr'])} "
                         f"(raw {c['wasserstein_raw']:.4g}, max |grad D| {c['lipschitz']:.4g}) "
                         f"on {c['num_sequences']} held-out sequences")
    return "\n".join(lines)
