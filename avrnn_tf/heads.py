"""Distribution heads: a parameter tensor in, a TFP distribution out.

A head is a small pure object in the style of `tfp.layers`' `params_size` / `new`: the network that
produces the parameters is an ordinary Keras layer elsewhere, and the head only says how many
numbers it needs (`params_size`) and how to turn them into a distribution over one event (`new`).
All distributions have event shape [event_size] (the last axis), so `log_prob` of a [..., event_size]
value returns [...]: one log-density per frame.

Scales are `softplus(raw) + scale_floor`, never `exp(raw)` (an unbounded exp overflows the first
time a layer's output drifts; a floor keeps log-densities bounded when a scale collapses).

#### References
Chung et al. (2015), "A Recurrent Latent Variable Model for Sequential Data" (Normal and GMM
emissions, K=20 components for speech). Maddison et al. (2017), FIVO (Bernoulli piano-roll emission,
bias initialised to the logit of the training mean).
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

from avrnn_tf.names import EMISSIONS

tfd = tfp.distributions


def diagonal_normal(loc, scale):
    """N(loc, diag(scale^2)): independent Normals over the last axis (event shape [D])."""
    return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)


def positive_scale(raw, scale_floor):
    """softplus(raw) + scale_floor, elementwise."""
    return tf.nn.softplus(raw) + scale_floor


class NormalHead:
    """Diagonal Normal over an event of `event_size`; params = [loc, raw_scale]."""

    def __init__(self, event_size, scale_floor=1e-4):
        self.event_size = int(event_size)
        self.scale_floor = float(scale_floor)

    @property
    def params_size(self):
        return 2 * self.event_size

    def loc_scale(self, params):
        """Splits [..., 2*event_size] params into (loc, scale), each [..., event_size]."""
        loc, raw = tf.split(params, 2, axis=-1)
        return loc, positive_scale(raw, self.scale_floor)

    def new(self, params):
        return diagonal_normal(*self.loc_scale(params))


class GMMHead:
    """Mixture of `num_components` diagonal Normals over an event of `event_size`.

    params = [logits (K), loc (K*event_size), raw_scale (K*event_size)]. TFP's MixtureSameFamily
    evaluates log p(x) = logsumexp_k [log pi_k + log N(x; mu_k, sigma_k)], which is stable for
    components that are far from x.
    """

    def __init__(self, event_size, num_components=20, scale_floor=1e-4):
        self.event_size = int(event_size)
        self.num_components = int(num_components)
        self.scale_floor = float(scale_floor)

    @property
    def params_size(self):
        return self.num_components * (1 + 2 * self.event_size)

    def split(self, params):
        """Returns (logits [..., K], loc [..., K, D], scale [..., K, D])."""
        k, d = self.num_components, self.event_size
        logits, loc, raw = tf.split(params, [k, k * d, k * d], axis=-1)
        batch_shape = tf.shape(params)[:-1]
        shape = tf.concat([batch_shape, [k, d]], axis=0)
        loc = tf.reshape(loc, shape)
        scale = positive_scale(tf.reshape(raw, shape), self.scale_floor)
        return logits, loc, scale

    def new(self, params):
        logits, loc, scale = self.split(params)
        components = tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)
        return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), components)


class BernoulliHead:
    """Independent Bernoullis over an event of `event_size` (piano-roll notes); params = logits."""

    def __init__(self, event_size):
        self.event_size = int(event_size)

    @property
    def params_size(self):
        return self.event_size

    def new(self, params):
        return tfd.Independent(tfd.Bernoulli(logits=params, dtype=params.dtype),
                               reinterpreted_batch_ndims=1)


def make_emission_head(name, event_size, num_mixtures=20, scale_floor=1e-4):
    """Returns the emission head called `name` (one of EMISSIONS)."""
    if name == "normal":
        return NormalHead(event_size, scale_floor)
    if name == "gmm":
        return GMMHead(event_size, num_mixtures, scale_floor)
    if name == "bernoulli":
        return BernoulliHead(event_size)
    raise ValueError(f"unknown emission {name!r}; expected one of {', '.join(EMISSIONS)}")


def normal_kl(loc_q, scale_q, loc_p, scale_p):
    """KL(N(loc_q, scale_q) || N(loc_p, scale_p)) for diagonal Normals, summed over the last axis.

    The closed form, for code that holds raw tensors rather than distributions (`tfd.kl_divergence`
    of two `diagonal_normal`s computes the same):
      KL = sum_i [ log(s_p / s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2 ].
    """
    ratio = tf.square(scale_q / scale_p)
    diff = tf.square((loc_q - loc_p) / scale_p)
    return 0.5 * tf.reduce_sum(ratio + diff - 1.0 - tf.math.log(ratio), axis=-1)


def normal_log_prob(x, loc, scale):
    """log N(x; loc, scale) for diagonal Normals, summed over the last axis."""
    z = (x - loc) / scale
    return tf.reduce_sum(-0.5 * tf.square(z) - tf.math.log(scale)
                         - 0.5 * math.log(2.0 * math.pi), axis=-1)
