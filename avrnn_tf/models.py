"""The model family: RNN-Gauss, RNN-GMM, VRNN-I and VRNN-Gauss/GMM as switches of one network.

| kind    | latent | prior p(z_t | h_{t-1})   | trained on (see training.py)         |
|---------|--------|---------------------------|--------------------------------------|
| "rnn"   | none   | -                         | exact log-likelihood                 |
| "vrnn_i" | z_t   | N(0, I), fixed            | ELBO ("VRNN-I" row of Chung et al.)  |
| "vrnn"  | z_t    | learned MLP on h_{t-1}    | ELBO (or A-VRNN's phases)            |
| "zforcing" | z_t | learned MLP on h_{t-1}    | ELBO + beta * log p(b_t | z_t)        |

Z-Forcing's posterior reads a backward LSTM state b_t over x_{t:T} instead of phi_x(x_t)
(`ZForcingNetwork`, Goyal et al. 2017); its generative model is the VRNN's. SRNN (srnn.py) and
STORN proper (storn.py, Bayer & Osendorfer's own recognition RNN) are separate networks that
share `EmissionTerms`; until issue 12 the kind "storn" was the VRNN-I row here.

The emission is "normal", "gmm" or "bernoulli" for every kind. Each kind is a class implementing
`protocol.SequenceModel` (here `RNNNetwork`, `VRNNINetwork`, `VRNNNetwork`; Z-Forcing in
zforcing.py); `registry.create_network(spec)` builds the network from a frozen `ModelSpec`; the
network never reads flags or config files.

Shapes: B batch, T frames, D frame size (x_dim), H RNN state, Z latent, M MLP width.

#### References
Chung et al. (2015), "A Recurrent Latent Variable Model for Sequential Data".
Bayer & Osendorfer (2014), "Learning Stochastic Recurrent Networks" (STORN).
Huang & Xiao, "Regularized Sequential Latent Variable Models with Adversarial Neural Networks".
"""

import dataclasses
from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from avrnn_tf import cells
from avrnn_tf import heads
from avrnn_tf import protocol
from avrnn_tf import rng
from avrnn_tf.names import KINDS  # noqa: F401  (models.KINDS, as before)

tfd = tfp.distributions


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything that fixes a network's shape; built from a config by `config.model_spec`.

    Attributes:
      kind: one of names.KINDS.
      emission: "normal", "gmm" or "bernoulli".
      x_dim: frame size D.
      h_dim: LSTM state size H.
      z_dim: latent size Z (ignored for "rnn").
      mlp_units: width M of every feature extractor and head hidden layer.
      phi_x_layers, phi_z_layers: depth of the feature extractors.
      head_layers: hidden layers before the output layer of prior, posterior and emission.
      num_mixtures: GMM components.
      scale_floor: added to softplus scales.
      residual_posterior: mu_z = mu_0 + delta.
      srnn_posterior: SRNN's inference network, "smoothing" or "filtering" (srnn.py).
      emission_bias: optional initial emission output bias (Bernoulli: logit of training mean).
    """
    kind: str
    emission: str
    x_dim: int
    h_dim: int = 256
    z_dim: int = 64
    mlp_units: int = 256
    phi_x_layers: int = 2
    phi_z_layers: int = 1
    head_layers: int = 1
    num_mixtures: int = 20
    scale_floor: float = 1e-4
    residual_posterior: bool = False
    srnn_posterior: str = "smoothing"
    emission_bias: Optional[Tuple[float, ...]] = None


class HeadNet(keras.layers.Layer):
    """MLP -> distribution parameters -> TFP distribution, for prior, posterior or emission."""

    def __init__(self, head, units, hidden_layers, bias_init=None, **kwargs):
        super().__init__(**kwargs)
        self.head = head
        self.hidden = cells.dense_stack(units, hidden_layers, self.name + "_hidden")
        init = "zeros" if bias_init is None else keras.initializers.Constant(bias_init)
        self.out = cells.Dense(head.params_size, bias_initializer=init, name=self.name + "_out")

    def build(self, input_shape):
        self.hidden.build(input_shape)
        width = self.hidden[-1].units if len(self.hidden) else input_shape[-1]
        self.out.build(tf.TensorShape(input_shape)[:-1].concatenate([width]))
        self.built = True

    def call(self, x):
        return self.out(self.hidden(x))

    def loc_scale(self, x):
        return self.head.loc_scale(self(x))


def lstm_bias_init(h_dim):
    """Forget-gate bias 1 (Jozefowicz et al. 2015), other gates 0, in (i, f, g, o) order."""
    bias = np.zeros([4 * h_dim], np.float32)
    bias[h_dim:2 * h_dim] = 1.0
    return keras.initializers.Constant(bias)


class EmissionTerms:
    """The per-frame terms and the emission draw of a latent model with a diagonal Normal prior
    and posterior, written once on `trajectory` (a dict with "emission_params" and, with a
    latent, "z", "post_loc", "post_scale", "prior_loc", "prior_scale"), `emission_head` and
    `z_dim`: the VRNN family, SRNN and STORN share it."""

    def make_emission(self, spec):
        """Creates `emission_head` and `emission_net` (an MLP head on whatever the model feeds
        it; Bernoulli output bias from `spec.emission_bias`)."""
        self.emission_head = heads.make_emission_head(
            spec.emission, spec.x_dim, spec.num_mixtures, spec.scale_floor)
        self.emission_net = HeadNet(self.emission_head, spec.mlp_units, spec.head_layers,
                                    bias_init=spec.emission_bias, name="emission")

    def noise_shape(self, x):
        """Shape of the posterior noise for frames x [B, T, D]: [B, T, Z] (Z = 0 for "rnn")."""
        shape = tf.shape(x)
        return tf.stack([shape[0], shape[1], self.z_dim])

    def frame_terms(self, x, noise, mask=None):
        """Per-frame terms of every bound, each [B, T] (unmasked; bounds.py applies the mask).

          log_px: log p(x_t | z_t, h_{t-1}) at the posterior sample (log p(x_t | h_{t-1}) for rnn)
          kl:     KL(q(z_t | x_t, h_{t-1}) || p(z_t | h_{t-1})), analytic (0 for rnn)
          log_pz, log_qz: log p(z_t | h_{t-1}) and log q(z_t | x_t, h_{t-1}) at the sample
        """
        out = self.trajectory(x, noise, mask=mask)
        dists = self.distributions(out)
        log_px = dists["emission"].log_prob(x)
        if not self.z_dim:
            zero = tf.zeros_like(log_px)
            return {"log_px": log_px, "kl": zero, "log_pz": zero, "log_qz": zero, "trajectory": out}
        q, p, z = dists["posterior"], dists["prior"], out["z"]
        return {
            "log_px": log_px,
            "kl": tfd.kl_divergence(q, p),  # Analytic for two diagonal Normals.
            "log_pz": p.log_prob(z),
            "log_qz": q.log_prob(z),
            "trajectory": out,
        }

    def distributions(self, out):
        """The TFP distributions of a trajectory, each with batch shape [B, T]:
        "emission" p(x_t | z_t, h_{t-1}) and, for latent models, "prior" p(z_t | h_{t-1}) and
        "posterior" q(z_t | x_t, h_{t-1})."""
        dists = {"emission": self.emission_head.new(out["emission_params"])}
        if self.z_dim:
            dists["prior"] = heads.diagonal_normal(out["prior_loc"], out["prior_scale"])
            dists["posterior"] = heads.diagonal_normal(out["post_loc"], out["post_scale"])
        return dists

    def sample_emission(self, params, seed, temperature):
        """Draws x_t [N, D] from the emission at `temperature` with a stateless seed."""
        head = self.emission_head
        if isinstance(head, heads.NormalHead):
            loc, scale = head.loc_scale(params)
            return loc + temperature * scale * rng.normal(tf.shape(loc), seed)
        if isinstance(head, heads.GMMHead):
            logits, loc, scale = head.split(params)
            k_seed, n_seed = rng.split(seed, 2)
            k = rng.categorical(logits, 1, k_seed)[:, 0]
            loc = tf.gather(loc, k, batch_dims=1)
            scale = tf.gather(scale, k, batch_dims=1)
            return loc + temperature * scale * rng.normal(tf.shape(loc), n_seed)
        u = rng.uniform(tf.shape(params), seed)
        return tf.cast(u < tf.sigmoid(params / temperature), tf.float32)


class SequenceNetwork(keras.layers.Layer, EmissionTerms, protocol.SequenceModel):
    """The parameters and the forward maths of the VRNN family (`protocol.SequenceModel`).

    `trajectory(x, noise)` runs the model on observed frames with the posterior noise given, and
    returns per-frame tensors; `frame_terms` turns them into the per-frame quantities every bound
    needs; `sample` generates. Training algorithms live in training.py, bounds in bounds.py.
    The kinds are subclasses that set two switches: `latent` (z_t exists) and `learned_prior`
    (p(z_t | h_{t-1}) is an MLP rather than N(0, I)).
    """

    latent = True
    learned_prior = True

    def __init__(self, spec: ModelSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        m = spec.mlp_units
        z_dim = spec.z_dim if self.latent else 0
        self.z_dim = z_dim
        self.phi_x = cells.dense_stack(m, spec.phi_x_layers, "phi_x")
        # Hoisted input projections (see cells.py): phi_x into the LSTM gates and into the
        # posterior's first layer. Biases of the split layers live here, once.
        self.gate_x = cells.Dense(4 * spec.h_dim, bias_initializer=lstm_bias_init(spec.h_dim),
                                         name="gate_x")
        self.make_emission(spec)
        self.prior_net = None
        if z_dim:
            self.make_posterior_input()
            if self.learned_prior:
                self.prior_net = HeadNet(heads.NormalHead(z_dim, spec.scale_floor), m,
                                         spec.head_layers, name="prior")
        self.cell = cells.LatentLSTMCell(
            spec.h_dim, z_dim, m, posterior_layers=spec.head_layers,
            phi_z_layers=spec.phi_z_layers, scale_floor=spec.scale_floor,
            prior_net=self.prior_net if spec.residual_posterior else None, name="cell")
        self.rnn = keras.layers.RNN(self.cell, return_sequences=True, name="rnn")
        # Weight gradients of the two big recurrent matmuls outside the backward loop (see
        # `recurrence`); False gives plain autodiff through the loop (the reference in tests).
        self.hoist_weight_gradients = True

    def build(self, input_shape=None):
        x = tf.zeros([1, 1, self.spec.x_dim])
        self.frame_terms(x, tf.zeros(self.noise_shape(x)))
        self.built = True

    # ---------------------------------------------------------------- inference network pass
    def make_posterior_input(self):
        """Creates the layers that feed the posterior's first layer from the frames (VRNN:
        `posterior_x` on phi_x(x_t)); `hoisted_inputs` applies them."""
        self.posterior_x = cells.Dense(self.spec.mlp_units, name="posterior_x")

    def hoisted_inputs(self, x, mask=None):
        """(per-step cell inputs without noise [B, T, 4H (+ M)], extra trajectory tensors).

        The inputs are the hoisted gate projection W_x phi_x(x_t) + b and, for latent models, the
        frame-dependent part of the posterior's first pre-activation (VRNN: posterior_x(phi_x(x_t));
        `mask` is unused here, Z-Forcing's backward LSTM needs the lengths).
        """
        fx = self.features(x)
        inputs = [self.gate_x(fx)]
        if self.z_dim:
            inputs.append(self.posterior_x(fx))
        return tf.concat(inputs, axis=-1), {}

    def features(self, x):
        """phi_x(x) [B, T, M]: depends on x alone, so it runs once over all frames."""
        return self.phi_x(x)

    def trajectory(self, x, noise, mask=None):
        """Runs the recurrence on frames x [B, T, D] with posterior noise [B, T, Z].

        `mask` [B, T] reaches `posterior_input` (models whose inference reads the future,
        Z-Forcing, need the lengths).

        Returns a dict of [B, T, .] tensors: h_prev (h_{t-1}), and for latent models post_loc,
        post_scale, z (the reparameterised posterior sample), phi_z, prior_loc, prior_scale; and
        emission_params, the parameters of p(x_t | z_t, h_{t-1}) (of p(x_t | h_{t-1}) for "rnn").
        """
        inputs, extra = self.hoisted_inputs(x, mask)
        if self.z_dim:
            inputs = tf.concat([inputs, noise], axis=-1)
        out = self.cell.split_outputs(self.recurrence(inputs))
        out.update(extra)
        h_prev = out["h_prev"]
        if self.z_dim:
            out["prior_loc"], out["prior_scale"] = self.prior(h_prev)
            emission_input = tf.concat([out["phi_z"], h_prev], axis=-1)
        else:
            emission_input = h_prev
        out["emission_params"] = self.emission_net(emission_input)
        return out

    def recurrence(self, inputs):
        """The cell run over per-step inputs [B, T, width]: stacked cell outputs [B, T, out].

        Forward, this is `self.rnn(inputs)`. Backward, autodiff through a while loop computes
        every weight gradient inside the loop: for the recurrent kernel W [H, 4H + M] that is one
        product h_{t-1}^T dgates_t per step, with an inner dimension of only B, plus an
        accumulation of the [H, 4H + M] result: the slowest part of the whole step on a CPU
        (BUILD_NOTES 4.7). Here the loop's backward pass computes only what is sequential (the
        gradients of the states and of the per-step inputs) and the two big kernels get their
        gradients afterwards as single matmuls over all B*T frames:

            dL/dW_rec = sum_t h_{t-1}^T [dgates_t, dpre_t],   dL/dW_z = sum_t phi_z(z_t)^T dgates_t,

        which is exact because gx_t enters the gate pre-activations additively (dgates_t =
        dL/dgx_t) and px_t enters the posterior's first pre-activation additively (dpre_t =
        dL/dpx_t); h_{t-1} and phi_z(z_t) are outputs of the loop. The small kernels inside the
        cell (posterior head, phi_z) keep their in-loop gradients.

        Used inside tf.function only (in eager mode a custom gradient's forward pass is not
        recorded by an inner tape); `hoist_weight_gradients = False` or `cells.autodiff_only()`
        turns it off.
        """
        cell = self.cell
        if not (self.hoist_weight_gradients and cell.built and tf.inside_function()
                and cells.custom_gradients_on()):
            return self.rnn(inputs)
        four_h = 4 * self.spec.h_dim
        kernels = [tf.convert_to_tensor(cell.recurrent_kernel)]
        if self.z_dim:
            kernels.append(tf.convert_to_tensor(cell.z_kernel))
        transposed = [cells.stored_transpose(k) for k in kernels]  # For the backward products.

        @tf.custom_gradient
        def run(inputs, *kernels):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                pairs = [t for pair in zip(kernels, transposed) for t in pair]
                cell.kernel_override = tuple(pairs) + (None,) * (4 - len(pairs))
                try:
                    out = self.rnn(inputs)
                finally:
                    cell.kernel_override = None

            def grad(d_out, variables=None):
                with tf.name_scope("gradient_recurrence"):  # Named for profiling.py.
                    return grad_impl(d_out, list(variables or []))

            def grad_impl(d_out, variables):
                grads = tape.gradient(out, [inputs] + variables, output_gradients=d_out)
                d_in = grads[0]
                d_vars = [tf.zeros_like(v) if g is None else g for v, g in zip(variables, grads[1:])]
                parts = cell.split_outputs(out)
                width = kernels[0].shape[-1]
                # One [rows, B*T] x [B*T, cols] product per kernel (transpose_a runs at full
                # speed in oneDNN, unlike transpose_b).
                d_gates = tf.reshape(d_in[..., :width], [-1, width])
                h_prev = tf.reshape(parts["h_prev"], [-1, self.spec.h_dim])
                d_kernels = [tf.matmul(h_prev, d_gates, transpose_a=True)]
                if self.z_dim:
                    phi_z = tf.reshape(parts["phi_z"], [-1, self.spec.mlp_units])
                    d_kernels.append(tf.matmul(phi_z, d_gates[:, :four_h], transpose_a=True))
                return (d_in, *d_kernels), d_vars

            return out, grad

        return run(inputs, *kernels)

    def prior(self, h_prev):
        """(loc, scale) of p(z_t | h_{t-1}); N(0, I) for VRNN-I."""
        if self.prior_net is None:
            zeros = tf.zeros(tf.concat([tf.shape(h_prev)[:-1], [self.z_dim]], axis=0), h_prev.dtype)
            return zeros, tf.ones_like(zeros)
        return self.prior_net.loc_scale(h_prev)

    # ------------------------------------------------------------------------- generation
    def generative_step(self, state, seed, temperature):
        """prior -> z -> phi_z -> emission -> x -> phi_x -> LSTM, one frame (`protocol.sample`).

        `temperature` scales the latent noise and the emission's spread (Normal/GMM scales;
        Bernoulli logits are divided by it).
        """
        h, c = state
        z_seed, x_seed = rng.split(seed, 2)
        fz = None
        if self.z_dim:
            loc, scale = self.prior(h)
            fz = self.cell.phi_z(loc + temperature * scale * rng.normal(tf.shape(loc), z_seed))
            emission_input = tf.concat([fz, h], axis=-1)
        else:
            emission_input = h
        x = self.sample_emission(self.emission_net(emission_input), x_seed, temperature)
        gates = self.gate_x(self.features(x)) + self.cell.recurrent_gates(h, fz)
        return list(cells.lstm_update(gates, c)), x

    # ------------------------------------------------- per-step interface (particle filters)
    # The bounds that resample (bounds.fivo) need the recurrence one step at a time, so that the
    # state of each particle can be replaced by its ancestor's between steps. Everything that
    # depends on x alone is still computed for all frames first (`step_inputs`).

    def step_inputs(self, x, mask=None):
        """The hoisted per-step cell inputs without noise: [B, T, 4H (+ M)] for frames x [B, T, D]."""
        return self.hoisted_inputs(x, mask)[0]

    def initial_state(self, batch_size):
        """The recurrent state before the first frame: [h, c], each [N, H] zeros."""
        zeros = tf.zeros(tf.stack([batch_size, self.spec.h_dim]))
        return [zeros, zeros]

    def filter_step(self, state, inputs_t, noise_t, x_t):
        """One step of the recurrence with its log-weight terms.

        Args:
          state: [h_{t-1}, c_{t-1}], each [N, H].
          inputs_t: [N, 4H (+ M)], frame t of `step_inputs`.
          noise_t: [N, Z] posterior noise (ignored for "rnn").
          x_t: [N, D] the observed frame.

        Returns:
          (new_state, log_px [N], log_pz [N], log_qz [N]); for "rnn" log_pz = log_qz = 0 and
          log_px = log p(x_t | h_{t-1}). Summed over t these equal `frame_terms`' sums.
        """
        if self.z_dim:
            out, new_state = self.cell.call(tf.concat([inputs_t, noise_t], axis=-1), state)
            parts = self.cell.split_outputs(out)
            h = parts["h_prev"]
            p_loc, p_scale = self.prior(h)
            params = self.emission_net(tf.concat([parts["phi_z"], h], axis=-1))
            log_pz = heads.normal_log_prob(parts["z"], p_loc, p_scale)
            log_qz = heads.normal_log_prob(parts["z"], parts["post_loc"], parts["post_scale"])
        else:
            h, new_state = self.cell.call(inputs_t, state)
            params = self.emission_net(h)
        log_px = self.emission_head.new(params).log_prob(x_t)
        if not self.z_dim:
            log_pz = log_qz = tf.zeros_like(log_px)
        return list(new_state), log_px, log_pz, log_qz

    # ------------------------------------------------------------------- sizes and groups
    @property
    def state_size(self):
        return 2 * self.spec.h_dim  # [h, c]

    @property
    def row_width(self):
        """Emission parameters + LSTM gates + the frame: the widest per-frame tensors."""
        return self.emission_head.params_size + 4 * self.spec.h_dim + self.spec.x_dim

    def parameter_groups(self):
        """The paper's parameter sets (protocol.py): "rnn" theta (gate_x, recurrent_kernel,
        z_kernel), "features" (phi_x, phi_z), "emission", "posterior" tau (posterior_x,
        posterior_hidden, posterior_out), "prior" omega (empty for VRNN-I's fixed N(0, I)).

        One caveat, from the fused matmul (cells.py): `recurrent_kernel` [H, 4H + M] holds the
        LSTM's recurrent weights in its first 4H columns and the h_{t-1} part of the posterior's
        first layer in its last M columns. It is listed under "rnn"; `shared_posterior_columns`
        says which columns are the posterior's.
        """
        of = lambda *layers: [v for layer in layers if layer is not None
                              for v in layer.trainable_variables]
        cell = self.cell
        if not self.z_dim:
            return {"rnn": of(self.gate_x, cell), "features": of(self.phi_x),
                    "emission": of(self.emission_net)}
        return {
            "rnn": of(self.gate_x) + [cell.recurrent_kernel, cell.z_kernel],
            "features": of(self.phi_x, cell.phi_z),
            "emission": of(self.emission_net),
            "posterior": self.posterior_variables() + of(cell.posterior_hidden, cell.posterior_out),
            "prior": of(self.prior_net),
        }

    def posterior_variables(self):
        """The frame-side layers of the posterior (`make_posterior_input`)."""
        return list(self.posterior_x.trainable_variables)

    def shared_posterior_columns(self):
        if not self.z_dim:
            return []
        four_h = 4 * self.cell.h_dim
        mask = tf.concat([tf.zeros([1, four_h]), tf.ones([1, self.cell.mlp_units])], axis=1)
        return [(self.cell.recurrent_kernel, mask)]


class RNNNetwork(SequenceNetwork):
    """RNN-Gauss / RNN-GMM: no latent; p(x_t | h_{t-1}), exact log-likelihood."""
    latent = False
    learned_prior = False


class VRNNINetwork(SequenceNetwork):
    """VRNN-I (the VRNN paper's row): a VRNN whose prior is fixed at N(0, I). Earlier versions
    called this kind "storn"; STORN proper (own recognition RNN) is storn.py."""
    learned_prior = False


class VRNNNetwork(SequenceNetwork):
    """VRNN-Gauss / VRNN-GMM (Chung et al. 2015): learned prior p(z_t | h_{t-1})."""
