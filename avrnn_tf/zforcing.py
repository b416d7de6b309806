"""Z-Forcing (Goyal et al. 2017): a VRNN whose posterior reads a backward LSTM.

Inference: b_t = LSTM_backward(x_t, b_{t+1}), a summary of x_{t:T}; the posterior is
q(z_t | h_{t-1}, b_t) (its first layer sees W_b b_t + W_h h_{t-1} instead of phi_x(x_t)).
The generative model (prior, emission, forward recurrence h_t = f(h_{t-1}, phi_x(x_t),
phi_z(z_t))) is the VRNN's, so sampling is inherited unchanged. The network has no `posterior_x`
layer: every inference path (trajectory, the per-step filter, `final_state` behind the exported
`encode`) reads `posterior_b`.

Auxiliary cost: `frame_terms` adds `aux_log_prob` [B, T] = log p(b_t | z_t), a diagonal Normal
from an MLP on z_t. The objective adds beta * sum_t aux_log_prob (objectives.py; it is not part
of any bound). The target b_t is held constant (stop_gradient) in this term: the auxiliary cost
reaches the backward LSTM only through z_t (the posterior reads b_t), so it cannot be lowered by
moving the target towards z_t (e.g. collapsing b_t to a constant).

Padding: the backward LSTM runs over each sequence reversed by its own length
(tf.reverse_sequence), so b_t at a real frame never sees padded frames; this is why every
inference path takes the mask.
"""

import keras
import tensorflow as tf

from avrnn_tf import cells
from avrnn_tf import heads
from avrnn_tf import models


def run_backward(rnn, inputs, mask=None):
    """`rnn` (a return_sequences layer) run backwards over each sequence of inputs [B, T, .]
    reversed by its own length (from `mask` [B, T]; all T without): output t summarises
    inputs_{t:len} and never sees padded frames (SRNN's a_t uses it too)."""
    if mask is None:
        lengths = tf.fill(tf.shape(inputs)[:1], tf.shape(inputs)[1])
    else:
        lengths = tf.cast(tf.reduce_sum(tf.cast(mask > 0, tf.int32), axis=1), tf.int32)
    reversed_inputs = tf.reverse_sequence(inputs, lengths, seq_axis=1, batch_axis=0)
    return tf.reverse_sequence(rnn(reversed_inputs), lengths, seq_axis=1, batch_axis=0)


class ZForcingNetwork(models.SequenceNetwork):
    """See the module docstring. Parameter groups: the VRNN's, with the backward LSTM and
    `posterior_b` in "posterior" (they serve inference only) and the auxiliary net in
    "auxiliary" (trained by the auxiliary cost only; A-VRNN has no phase for it)."""

    posterior_reads_future = True

    def __init__(self, spec, **kwargs):
        super().__init__(spec, **kwargs)
        # Created after the VRNN's layers (the order of the variables, which the optimizer's slot
        # list in a checkpoint follows, is that of earlier versions).
        self.backward_rnn = keras.layers.LSTM(spec.h_dim, return_sequences=True,
                                              name="backward_lstm")
        self.posterior_b = cells.Dense(spec.mlp_units, name="posterior_b")
        self.aux_net = models.HeadNet(heads.NormalHead(spec.h_dim, spec.scale_floor),
                                      spec.mlp_units, spec.head_layers, name="aux")

    def make_posterior_input(self):
        """No posterior_x: the posterior reads posterior_b(b_t) (created in __init__)."""

    def backward_states(self, x, mask=None):
        """b [B, T, H]: b_t summarises x_{t:len} of its own sequence (len from the mask)."""
        return run_backward(self.backward_rnn, x, mask)

    def hoisted_inputs(self, x, mask=None):
        """As the VRNN's, with posterior_b(b_t) in place of posterior_x(phi_x(x_t)); the extra
        trajectory tensor is `backward` [B, T, H] (b_t)."""
        b = self.backward_states(x, mask)
        return tf.concat([self.gate_x(self.features(x)), self.posterior_b(b)], axis=-1), \
            {"backward": b}

    def frame_terms(self, x, noise, mask=None):
        """As SequenceNetwork.frame_terms, plus `aux_log_prob` [B, T] = log p(b_t | z_t)."""
        terms = super().frame_terms(x, noise, mask=mask)
        out = terms["trajectory"]
        loc, scale = self.aux_net.loc_scale(out["z"])
        terms["aux_log_prob"] = heads.normal_log_prob(tf.stop_gradient(out["backward"]), loc, scale)
        return terms

    @property
    def row_width(self):
        return super().row_width + 4 * self.spec.h_dim  # The backward LSTM's gates.

    def posterior_variables(self):
        return self.backward_rnn.trainable_variables + self.posterior_b.trainable_variables

    def parameter_groups(self):
        groups = super().parameter_groups()
        groups["auxiliary"] = list(self.aux_net.trainable_variables)
        return groups
