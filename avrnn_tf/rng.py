"""The one random-number algorithm of the package, and the stateless helpers that name it.

Every random draw (training noise, evaluation, export, sampling, resampling, shuffling) is a
stateless function of a seed and names its algorithm, Philox, instead of "auto_select": the default
resolves to Philox on CPUs but to ThreeFry or others elsewhere, so "the exported `score` equals the
training ELBO for the same seed" would otherwise hold only on some devices. (An XLA-compiled step
still maps seeds differently from TensorFlow's kernel; BUILD_NOTES 4.7.)
"""

import tensorflow as tf

RNG_ALG = "philox"


def fold_in(seed, value):
    """The stateless [2] seed `seed` folded with the integer `value`."""
    return tf.random.experimental.stateless_fold_in(seed, value, alg=RNG_ALG)


def split(seed, num):
    """`num` independent [2] seeds from `seed`, as a list."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num, alg=RNG_ALG))


def normal(shape, seed, dtype=tf.float32):
    return tf.random.stateless_normal(shape, seed=seed, dtype=dtype, alg=RNG_ALG)


def uniform(shape, seed, dtype=tf.float32):
    return tf.random.stateless_uniform(shape, seed=seed, dtype=dtype, alg=RNG_ALG)


def categorical(logits, num_samples, seed, uniform_fn=uniform):
    """[N, num_samples] int32 indices drawn from the rows of `logits` [N, K] (Gumbel-max on Philox
    uniforms: tf.random.stateless_categorical has no algorithm argument). `uniform_fn(shape, seed,
    dtype)` draws the uniforms (replicas.uniform: rows of a global batch)."""
    shape = tf.concat([tf.shape(logits)[:1], [num_samples], tf.shape(logits)[1:]], 0)
    u = uniform_fn(shape, seed, logits.dtype)
    tiny = tf.constant(1e-20, logits.dtype)
    gumbel = -tf.math.log(-tf.math.log(u + tiny) + tiny)
    return tf.argmax(logits[:, None, :] + gumbel, axis=-1, output_type=tf.int32)
