"""The A-VRNN critic and its losses (Huang & Xiao, Algorithm 2), as a layer and pure functions.

The critic D_eta reads a whole latent sequence z_{1:T} [B, T, Z] with its mask [B, T] and returns
one scalar per sequence [B]: one LSTM layer (128 units in the paper) whose state after the last
valid frame feeds two fully connected ReLU layers (100 units) and a linear scalar. Masked frames are
skipped by the LSTM (Keras masking carries the state over them), so their values never reach D.

Sign conventions (../shared/docs/DESIGN.md section 4; prior samples z are the "real" side, posterior samples z~
the "fake" side):

    critic loss        L_D   = mean_i D(z~_i) - mean_i D(z_i)      minimised over eta
    adversarial loss   L_adv = mean_i D(z_i)  - mean_i D(z~_i)     minimised over prior and posterior
    W_hat              = -L_D = mean D(z) - mean D(z~)             the critic's Wasserstein-1 estimate

With weights clipped to [-c, c] (WGAN) D is K-Lipschitz for some K fixed by c and the sizes, so
W_hat estimates K * W_1(P(z_{1:T}), Q(z_{1:T})); its scale therefore depends on c and says nothing
absolute. The gradient-penalty critic (WGAN-GP) instead keeps ||grad D|| near 1 on interpolates, so
its W_hat is on the scale of W_1 itself. The "gan" critic is the Jensen-Shannon (AAE-style)
discriminator: D returns a logit of "z came from the prior".

Shapes: B sequences, T frames, Z latent size.

#### References
Huang & Xiao, "Regularized Sequential Latent Variable Models with Adversarial Neural Networks"
(Algorithm 2, Section VI: critic sizes). Arjovsky et al. (2017), "Wasserstein GAN" (clipping,
c = 0.01, RMSProp). Gulrajani et al. (2017), "Improved Training of Wasserstein GANs" (gradient
penalty, weight 10). Makhzani et al. (2016), "Adversarial Autoencoders" (JS regulariser).
"""

import keras
import tensorflow as tf

from avrnn_tf import rng
from avrnn_tf.names import CRITICS  # noqa: F401  (adversarial.CRITICS)



class Critic(keras.layers.Layer):
    """D_eta: latent sequence [B, T, Z] and mask [B, T] -> one score per sequence [B].

    Args:
      lstm_units: LSTM state size (paper: 128).
      dense_units: width of the fully connected layers (paper: 100).
      dense_layers: number of fully connected ReLU layers before the scalar (paper: 2).
      seed: None draws the initial weights as every Keras layer does (from Python's `random`
        and Keras' global seed generator); an integer fixes them and leaves every global random
        state untouched (the diagnostics' fresh critic, which must not disturb a run).
    """

    def __init__(self, lstm_units=128, dense_units=100, dense_layers=2, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is None:
            init = lambda k: {}
            lstm_init = {}
        else:
            init = lambda k: {"kernel_initializer": keras.initializers.GlorotUniform(seed=seed + k)}
            lstm_init = dict(init(0), seed=seed,
                             recurrent_initializer=keras.initializers.Orthogonal(seed=seed))
        self.lstm = keras.layers.LSTM(lstm_units, name="critic_lstm", **lstm_init)
        self.dense = [keras.layers.Dense(dense_units, activation="relu", name=f"critic_dense_{i}",
                                         **init(1 + i))
                      for i in range(dense_layers)]
        self.out = keras.layers.Dense(1, name="critic_out", **init(1 + dense_layers))

    def build_for(self, z_dim):
        """Creates the variables for latents of size z_dim (so optimizers can be built early)."""
        self(tf.zeros([1, 1, z_dim]), tf.ones([1, 1]))

    def call(self, z, mask):
        a = self.lstm(z, mask=tf.cast(mask, tf.bool))
        for layer in self.dense:
            a = layer(a)
        return self.out(a)[:, 0]


def critic_loss(d_prior, d_posterior):
    """WGAN critic loss L_D = mean D(z~) - mean D(z); d_* are scores [B]."""
    return tf.reduce_mean(d_posterior) - tf.reduce_mean(d_prior)


def adversarial_loss(d_prior, d_posterior):
    """WGAN adversarial loss L_adv = mean D(z) - mean D(z~) (= W_hat, minimised by prior/posterior)."""
    return tf.reduce_mean(d_prior) - tf.reduce_mean(d_posterior)


def wasserstein_estimate(d_prior, d_posterior):
    """W_hat = mean D(z) - mean D(z~) = -L_D."""
    return tf.reduce_mean(d_prior) - tf.reduce_mean(d_posterior)


def gan_critic_loss(logit_prior, logit_posterior):
    """JS discriminator loss: cross-entropy with prior samples labelled 1, posterior samples 0.

    -mean log sigmoid(l_z) - mean log(1 - sigmoid(l_z~)) = mean softplus(-l_z) + mean softplus(l_z~).
    """
    return (tf.reduce_mean(tf.nn.softplus(-logit_prior))
            + tf.reduce_mean(tf.nn.softplus(logit_posterior)))


def gan_adversarial_loss(logit_prior, logit_posterior):
    """The non-saturating adversarial loss for both players: labels swapped (prior 0, posterior 1).

    The posterior is pushed to look like the prior (-log D(z~), as in the AAE) and the prior to look
    like the posterior (-log(1 - D(z))), since A-VRNN moves both (Algorithm 2).
    """
    return (tf.reduce_mean(tf.nn.softplus(logit_prior))
            + tf.reduce_mean(tf.nn.softplus(-logit_posterior)))


def interpolate(z_prior, z_posterior, seed):
    """Random points on the segments between paired sequences: a z + (1 - a) z~, a ~ U[0, 1] per sequence."""
    shape = tf.concat([tf.shape(z_prior)[:1], tf.ones([tf.rank(z_prior) - 1], tf.int32)], axis=0)
    a = rng.uniform(shape, seed, z_prior.dtype)
    return a * z_prior + (1.0 - a) * z_posterior


def gradient_penalty(critic, z_prior, z_posterior, mask, seed):
    """WGAN-GP penalty mean_i (||grad_z D(z_hat_i)||_2 - 1)^2 at interpolates z_hat [B, T, Z].

    The norm is over the whole sequence (all T x Z entries); masked frames have zero gradient since
    the critic skips them. Must be called inside the critic's GradientTape (second-order gradients).
    """
    z_hat = interpolate(z_prior, z_posterior, seed)
    with tf.GradientTape() as tape:
        tape.watch(z_hat)
        d = critic(z_hat, mask)
    grad = tape.gradient(d, z_hat)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2]) + 1e-12)
    return tf.reduce_mean(tf.square(norm - 1.0))


def clip_weights(variables, clip_value):
    """Clips every variable to [-clip_value, clip_value] in place (WGAN's Lipschitz constraint)."""
    for v in variables:
        v.assign(tf.clip_by_value(v, -clip_value, clip_value))


def max_abs_weight(variables):
    """max_i |w_i| over all entries of all variables (a scalar)."""
    return tf.reduce_max(tf.stack([tf.reduce_max(tf.abs(v)) for v in variables]))
