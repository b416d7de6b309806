"""SRNN (Fraccaro et al. 2016, "Sequential Neural Models with Stochastic Layers").

Generative model, with x_0 = 0 and z_0 = 0:
    deterministic layer  d_t = LSTM(d_{t-1}, x_{t-1})           (teacher-forced on x_{1:t-1})
    state-space layer    p(z_t | z_{t-1}, d_t)                   (diagonal Normal, MLP)
    emission             p(x_t | z_t, d_t)
Inference (`spec.srnn_posterior`):
    "smoothing"  q(z_t | z_{t-1}, a_t), a_t = a backward LSTM over [d_s, x_s] for s = t..len
                 (the paper's model; a_t sees the future of its own sequence, never padding);
    "filtering"  q(z_t | z_{t-1}, d_t, x_t): a_t = [d_t, x_t], no future (FIVO's SRNN).
With `spec.residual_posterior` ("Resq" in the paper) the posterior mean is the prior mean at the
same z_{t-1}, d_t plus the posterior network's output.

Hoisting: d_t for all t (the forward LSTM on its hoisted input projection), a_t (the backward
LSTM) and every first-layer product with d_t or a_t run once on the stacked [B, T, .] tensors
(`hoisted_inputs`); the emission runs once after the loop on the stacked [z_t, d_t]. Only the
z-chain (`latent_step`: the products with z_{t-1}, the rest of the prior and posterior MLPs and
the sample) runs in the loop.

The protocol's per-step filter (`step_inputs` + `filter_step`, used by FIVO and by
`final_state` behind the exported `encode`/`continue_from`) is the model's own posterior, the
same one `frame_terms` uses: step_inputs holds d_t, its LSTM cell state and the hoisted prior and
posterior first-layer parts, so with the smoothing posterior the filter's proposal reads a_t,
which was computed from the whole (given) sequence before the loop. That keeps every bound of
one model on one inference network, and FIVO's estimate stays unbiased (the proposal is a
valid conditional given all of x); but its resampling decisions are then made with a proposal
that already looked ahead, which is why FIVO's SRNN uses the filtering posterior: train an SRNN
for FIVO with model.srnn_posterior = "filtering" (`posterior_reads_future` says which).

State after frame t: [d_t, c_t (the forward LSTM's cell), z_t, x_t]; a generative step advances
the LSTM with x_t, draws z_{t+1} from the prior and x_{t+1} from the emission.
"""

import keras
import tensorflow as tf

from avrnn_tf import cells
from avrnn_tf import heads
from avrnn_tf import models
from avrnn_tf import protocol
from avrnn_tf import rng
from avrnn_tf import zforcing


class ForwardCell(keras.layers.Layer):
    """The LSTM step of d_t on a hoisted input projection gx [B, 4H]; outputs [d, c] so that the
    filter has the cell state of every step too. State [d, c]."""

    def __init__(self, h_dim, **kwargs):
        super().__init__(**kwargs)
        self.h_dim = int(h_dim)
        self.state_size = [self.h_dim, self.h_dim]
        self.output_size = 2 * self.h_dim

    def build(self, input_shape):
        self.recurrent_kernel = self.add_weight(
            shape=(self.h_dim, 4 * self.h_dim), initializer="orthogonal", name="recurrent_kernel")
        self.built = True

    def call(self, inputs, states):
        d, c = cells.lstm_update(inputs + tf.matmul(states[0], self.recurrent_kernel), states[1])
        return tf.concat([d, c], axis=-1), [d, c]


class SRNNNetwork(keras.layers.Layer, models.EmissionTerms, protocol.SequenceModel):
    """See the module docstring. Parameter groups: "rnn" the forward LSTM, "features" none,
    "emission", "posterior" (backward LSTM and the posterior MLP), "prior" (the state-space
    layer)."""

    def __init__(self, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        h, m, self.z_dim = spec.h_dim, spec.mlp_units, spec.z_dim
        self.posterior_reads_future = spec.srnn_posterior == "smoothing"
        self.forward_x = cells.Dense(4 * h, bias_initializer=models.lstm_bias_init(h),
                                     name="forward_x")
        self.forward_cell = ForwardCell(h, name="forward_cell")
        self.forward_rnn = keras.layers.RNN(self.forward_cell, return_sequences=True,
                                            name="forward_rnn")
        if self.posterior_reads_future:
            self.backward_rnn = keras.layers.LSTM(h, return_sequences=True, name="backward_lstm")
        self.latent_head = heads.NormalHead(self.z_dim, spec.scale_floor)
        # Prior and posterior MLPs with their first layer split: the d_t / a_t part (with the
        # bias) is hoisted, the z_{t-1} part runs in the loop.
        self.prior_d = cells.Dense(m, name="prior_d")
        self.prior_z = cells.Dense(m, use_bias=False, name="prior_z")
        self.prior_hidden = cells.dense_stack(m, spec.head_layers - 1, "prior_hidden")
        self.prior_out = cells.Dense(2 * self.z_dim, name="prior_out")
        self.posterior_a = cells.Dense(m, name="posterior_a")
        self.posterior_z = cells.Dense(m, use_bias=False, name="posterior_z")
        self.posterior_hidden = cells.dense_stack(m, spec.head_layers - 1, "posterior_hidden")
        self.posterior_out = cells.Dense(2 * self.z_dim, name="posterior_out")
        self.make_emission(spec)

    def build(self, input_shape=None):
        x = tf.zeros([1, 1, self.spec.x_dim])
        self.frame_terms(x, tf.zeros(self.noise_shape(x)))
        self.built = True

    # --------------------------------------------------------------- hoisted (no z-chain)
    def hoisted_inputs(self, x, mask=None):
        """(d, c, prior_pre, posterior_pre, a), each [B, T, .]: d_t and its cell state, the d_t
        part of the prior's first layer, the a_t part of the posterior's, and a_t itself."""
        d, c = self.deterministic_states(x)
        a = self.posterior_features(d, x, mask)
        return d, c, self.prior_d(d), self.posterior_a(a), a

    def deterministic_states(self, x):
        """(d, c) [B, T, H] each: d_t and its cell state after x_0 = 0, x_1, ..., x_{t-1}."""
        x_prev = tf.concat([tf.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
        return tuple(tf.split(self.forward_rnn(self.forward_x(x_prev)), 2, axis=-1))

    def posterior_features(self, d, x, mask=None):
        """a [B, T, .]: what the posterior reads besides z_{t-1}; the backward LSTM over
        [d_s, x_s], s = t..len ("smoothing") or [d_t, x_t] itself ("filtering")."""
        a = tf.concat([d, x], axis=-1)
        if self.posterior_reads_future:
            a = zforcing.run_backward(self.backward_rnn, a, mask)
        return a

    def step_inputs(self, x, mask=None):
        """[B, T, 2H + 2M]: d_t, c_t and the hoisted first-layer parts of prior and posterior."""
        return tf.concat(self.hoisted_inputs(x, mask)[:4], axis=-1)

    # ------------------------------------------------------------------------ the z-chain
    def prior_params(self, z_prev, prior_pre):
        """(loc, scale) of p(z_t | z_{t-1}, d_t) from z_{t-1} and the hoisted d_t part."""
        hidden = self.prior_hidden(tf.nn.relu(prior_pre + self.prior_z(z_prev)))
        return self.latent_head.loc_scale(self.prior_out(hidden))

    def latent_step(self, z_prev, prior_pre, posterior_pre, eps):
        """One step of the z-chain: (z_t, post_loc, post_scale, prior_loc, prior_scale)."""
        p_loc, p_scale = self.prior_params(z_prev, prior_pre)
        hidden = self.posterior_hidden(tf.nn.relu(posterior_pre + self.posterior_z(z_prev)))
        q_loc, q_scale = self.latent_head.loc_scale(self.posterior_out(hidden))
        if self.spec.residual_posterior:
            q_loc = q_loc + p_loc
        return q_loc + q_scale * eps, q_loc, q_scale, p_loc, p_scale

    def trajectory(self, x, noise, mask=None):
        """Per-frame tensors [B, T, .]: d, a, z, post_loc, post_scale, prior_loc, prior_scale,
        emission_params (of p(x_t | z_t, d_t))."""
        d, _, prior_pre, posterior_pre, a = self.hoisted_inputs(x, mask)
        time_major = lambda v: tf.transpose(v, [1, 0, 2])
        zeros = tf.zeros(tf.stack([tf.shape(x)[0], self.z_dim]))
        chain = tf.scan(lambda carry, inputs: self.latent_step(carry[0], *inputs),
                        (time_major(prior_pre), time_major(posterior_pre), time_major(noise)),
                        initializer=(zeros,) * 5)
        z, q_loc, q_scale, p_loc, p_scale = [time_major(v) for v in chain]
        return {"d": d, "a": a, "z": z, "post_loc": q_loc, "post_scale": q_scale,
                "prior_loc": p_loc, "prior_scale": p_scale,
                "emission_params": self.emission_net(tf.concat([z, d], axis=-1))}

    # ------------------------------------------------------------------------ per step
    def initial_state(self, batch_size):
        """[d_0, c_0, z_0, x_0], all zeros."""
        zeros = lambda width: tf.zeros(tf.stack([batch_size, width]))
        h = self.spec.h_dim
        return [zeros(h), zeros(h), zeros(self.z_dim), zeros(self.spec.x_dim)]

    def filter_step(self, state, inputs_t, noise_t, x_t):
        """The z-chain step at frame t with the hoisted inputs_t; the new state is
        [d_t, c_t, z_t, x_t]."""
        h, m = self.spec.h_dim, self.spec.mlp_units
        d, c, prior_pre, posterior_pre = tf.split(inputs_t, [h, h, m, m], axis=-1)
        z, q_loc, q_scale, p_loc, p_scale = self.latent_step(state[2], prior_pre, posterior_pre,
                                                             noise_t)
        params = self.emission_net(tf.concat([z, d], axis=-1))
        log_px = self.emission_head.new(params).log_prob(x_t)
        return ([d, c, z, x_t], log_px, heads.normal_log_prob(z, p_loc, p_scale),
                heads.normal_log_prob(z, q_loc, q_scale))

    def generative_step(self, state, seed, temperature):
        """d_{t+1} from x_t, z_{t+1} from the prior (noise scaled by `temperature`), x_{t+1} from
        the emission at `temperature`."""
        d, c, z, x = state
        z_seed, x_seed = rng.split(seed, 2)
        _, (d, c) = self.forward_cell.call(self.forward_x(x), [d, c])
        loc, scale = self.prior_params(z, self.prior_d(d))
        z = loc + temperature * scale * rng.normal(tf.shape(loc), z_seed)
        x = self.sample_emission(self.emission_net(tf.concat([z, d], axis=-1)), x_seed,
                                 temperature)
        return [d, c, z, x], x

    # ------------------------------------------------------------------- sizes and groups
    @property
    def state_size(self):
        return 2 * self.spec.h_dim + self.z_dim + self.spec.x_dim

    @property
    def row_width(self):
        """Emission parameters, the gates of both LSTMs, the frame and the hoisted inputs."""
        s = self.spec
        return self.emission_head.params_size + 8 * s.h_dim + s.x_dim + 2 * s.mlp_units

    def parameter_groups(self):
        of = lambda *layers: [v for layer in layers for v in layer.trainable_variables]
        posterior = [self.backward_rnn] if self.posterior_reads_future else []
        return {
            "rnn": of(self.forward_x, self.forward_cell),
            "features": [],
            "emission": of(self.emission_net),
            "posterior": of(*posterior, self.posterior_a, self.posterior_z,
                            self.posterior_hidden, self.posterior_out),
            "prior": of(self.prior_d, self.prior_z, self.prior_hidden, self.prior_out),
        }
