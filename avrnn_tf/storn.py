"""STORN (Bayer & Osendorfer 2014, "Learning Stochastic Recurrent Networks").

    recognition   r_t = LSTM_r(r_{t-1}, x_t),  q(z_t | x_{1:t}) = N(mu(r_t), sigma(r_t))
    prior         p(z_t) = N(0, I), fixed
    generative    h_t = LSTM_g(h_{t-1}, [x_{t-1}, z_t]) (x_0 = 0),  emission p(x_t | h_t)

Unlike the VRNN family's VRNN-I (`models.VRNNINetwork`, also a fixed prior), the posterior has its
own recurrent network over the frames and never reads the generative state. So q(z_t) depends on
x_{1:t} alone and everything but the generative LSTM's recurrence is hoisted: the recognition
LSTM, the posterior head, the sample z_t and the input projection W_x x_{t-1} + W_z z_t + b of the
generative LSTM run on stacked [B, T, .] tensors; the loop is one h @ W_rec per frame; the
emission runs after it on the stacked h_t.

Per step (`filter_step`, FIVO and `final_state`): step_inputs holds the posterior's (loc, scale)
and the x_{t-1} part of the generative gates; the step draws z_t, adds W_z z_t and advances the
LSTM. State after frame t: [h_t, c_t, x_t] (x_t feeds the next generative step).
"""

import keras
import tensorflow as tf

from avrnn_tf import cells
from avrnn_tf import heads
from avrnn_tf import models
from avrnn_tf import protocol
from avrnn_tf import rng
from avrnn_tf import srnn


class STORNNetwork(keras.layers.Layer, models.EmissionTerms, protocol.SequenceModel):
    """See the module docstring. Parameter groups: "rnn" the generative LSTM, "features" none,
    "emission", "posterior" (recognition LSTM and head), "prior" none (fixed N(0, I))."""

    def __init__(self, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        h, m, self.z_dim = spec.h_dim, spec.mlp_units, spec.z_dim
        self.recognition_rnn = keras.layers.LSTM(h, return_sequences=True, name="recognition_lstm")
        self.posterior_net = models.HeadNet(heads.NormalHead(self.z_dim, spec.scale_floor), m,
                                            spec.head_layers, name="posterior")
        self.gate_x = cells.Dense(4 * h, bias_initializer=models.lstm_bias_init(h), name="gate_x")
        self.gate_z = cells.Dense(4 * h, use_bias=False, name="gate_z")
        self.cell = srnn.ForwardCell(h, name="generative_cell")
        self.rnn = keras.layers.RNN(self.cell, return_sequences=True, name="generative_rnn")
        self.make_emission(spec)

    def build(self, input_shape=None):
        x = tf.zeros([1, 1, self.spec.x_dim])
        self.frame_terms(x, tf.zeros(self.noise_shape(x)))
        self.built = True

    def posterior(self, x):
        """(loc, scale) [B, T, Z] of q(z_t | x_{1:t}): the recognition LSTM over the frames."""
        return self.posterior_net.loc_scale(self.recognition_rnn(x))

    def step_inputs(self, x, mask=None):
        """[B, T, 2Z + 4H]: the posterior's loc and scale and W_x x_{t-1} + b."""
        x_prev = tf.concat([tf.zeros_like(x[:, :1]), x[:, :-1]], axis=1)
        return tf.concat([*self.posterior(x), self.gate_x(x_prev)], axis=-1)

    def trajectory(self, x, noise, mask=None):
        """Per-frame tensors [B, T, .]: h (h_t), z, post_loc, post_scale, prior_loc (0),
        prior_scale (1), emission_params (of p(x_t | h_t))."""
        loc, scale, gates = tf.split(self.step_inputs(x), [self.z_dim, self.z_dim, -1], axis=-1)
        z = loc + scale * noise
        h = tf.split(self.rnn(gates + self.gate_z(z)), 2, axis=-1)[0]
        return {"h": h, "z": z, "post_loc": loc, "post_scale": scale,
                "prior_loc": tf.zeros_like(z), "prior_scale": tf.ones_like(z),
                "emission_params": self.emission_net(h)}

    def initial_state(self, batch_size):
        """[h_0, c_0, x_0], zeros."""
        zeros = lambda width: tf.zeros(tf.stack([batch_size, width]))
        return [zeros(self.spec.h_dim), zeros(self.spec.h_dim), zeros(self.spec.x_dim)]

    def _advance(self, state, gates_x, z):
        """The generative LSTM's step from state [h, c, .] on W_x x_{t-1} + b and z_t."""
        _, (h, c) = self.cell.call(gates_x + self.gate_z(z), state[:2])
        return h, c

    def filter_step(self, state, inputs_t, noise_t, x_t):
        loc, scale, gates = tf.split(inputs_t, [self.z_dim, self.z_dim, -1], axis=-1)
        z = loc + scale * noise_t
        h, c = self._advance(state, gates, z)
        log_px = self.emission_head.new(self.emission_net(h)).log_prob(x_t)
        log_pz = heads.normal_log_prob(z, tf.zeros_like(z), tf.ones_like(z))
        return [h, c, x_t], log_px, log_pz, heads.normal_log_prob(z, loc, scale)

    def generative_step(self, state, seed, temperature):
        """z_t ~ N(0, temperature^2 I), h_t from [x_{t-1}, z_t], x_t from the emission."""
        z_seed, x_seed = rng.split(seed, 2)
        batch = tf.shape(state[0])[0]
        z = temperature * rng.normal(tf.stack([batch, self.z_dim]), z_seed)
        h, c = self._advance(state, self.gate_x(state[2]), z)
        x = self.sample_emission(self.emission_net(h), x_seed, temperature)
        return [h, c, x], x

    @property
    def state_size(self):
        return 2 * self.spec.h_dim + self.spec.x_dim

    @property
    def row_width(self):
        """Emission parameters, both LSTMs' gates, the frame and the posterior's parameters."""
        s = self.spec
        return self.emission_head.params_size + 8 * s.h_dim + s.x_dim + 2 * s.z_dim

    def parameter_groups(self):
        of = lambda *layers: [v for layer in layers for v in layer.trainable_variables]
        return {"rnn": of(self.gate_x, self.gate_z, self.cell), "features": [],
                "emission": of(self.emission_net),
                "posterior": of(self.recognition_rnn, self.posterior_net), "prior": []}
