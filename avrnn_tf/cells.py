"""The recurrent cell: only what depends on the previous step.

In a VRNN step (Chung et al. 2015, eqs. 5-9), with h = h_{t-1}:

    prior      p(z_t | h)          = N(mu_0, sigma_0)        = prior_net(h)
    posterior  q(z_t | x_t, h)     = N(mu_z, sigma_z)        = posterior_net([phi_x(x_t), h])
    emission   p(x_t | z_t, h)                               = emission_net([phi_z(z_t), h])
    recurrence h_t = LSTM(h, [phi_x(x_t), phi_z(z_t)])

Only the posterior, its reparameterised sample, phi_z and the LSTM update need h_{t-1}; the prior
and the emission need h_{t-1} too but nothing later needs *them*, so they run once on the stacked
[batch*time, ...] states after the loop, and phi_x needs only x so it runs once before. Two more
things are hoisted: the phi_x part of the LSTM input projection (W_x phi_x(x_t) + b) and the phi_x
part of the posterior's first layer; both arrive as per-step inputs. The two products with h_{t-1}
(LSTM recurrent kernel, posterior first layer) share one matmul with a concatenated kernel. The
posterior noise eps_t ~ N(0, I) is also an input, drawn before the loop, so the loop body is a
deterministic function (reproducible, and the same noise can drive the naive reference in tests).

Keras' RNN layer wants one tensor of fixed width per step, so the cell returns one concatenation
[h_{t-1}, mu_z, sigma_z, z_t, phi_z(z_t)] that the model splits after the loop (`split_outputs`).
The LSTM uses Keras' gate order (input, forget, candidate, output) and sigmoid/tanh activations.
"""

import contextlib

import keras
import tensorflow as tf

from avrnn_tf import heads


SMALL_KERNEL = 1 << 16  # Kernels with fewer entries keep the transpose_b input gradient.

_custom_gradients = [True]  # Off inside `autodiff_only()`.


def custom_gradients_on():
    """Whether functions traced now get the training-speed custom gradients (`dense_product`,
    SequenceNetwork.recurrence)."""
    return _custom_gradients[0]


@contextlib.contextmanager
def autodiff_only():
    """Traces inside this block use TensorFlow's own gradients (the same forward computation).

    For graphs that are not trained, such as an exported SavedModel: it then holds no
    custom-gradient ops, so loading it does not warn that their gradients were not saved.
    """
    saved, _custom_gradients[0] = _custom_gradients[0], False
    try:
        yield
    finally:
        _custom_gradients[0] = saved


def dense_product(x, kernel):
    """x [..., K] @ kernel [K, N] -> [..., N], with a gradient that avoids transposed products.

    Autodiff of a matmul computes the input gradient as dy @ kernel^T with `transpose_b`, which
    oneDNN runs 1.1-4x slower than the same product with the transposed kernel stored (largest
    for [32, 2048] x [2048, 256]-like shapes; BUILD_NOTES 4.7). Here the kernel is transposed
    once and both gradients are plain (dx) or transpose_a (dW) products over all leading axes
    flattened into one, as tensordot would do.
    """
    k, n = kernel.shape[0], kernel.shape[1]
    if not custom_gradients_on():
        y = tf.matmul(tf.reshape(x, [-1, k]), kernel)
        y = tf.reshape(y, tf.concat([tf.shape(x)[:-1], [n]], 0)) if x.shape.rank != 2 else y
        y.set_shape(x.shape[:-1].concatenate([n]))
        return y

    @tf.custom_gradient
    def product(x, kernel):
        flat = x.shape.rank != 2  # [B, T, K] is flattened to [B*T, K] (as tensordot does).
        x2 = tf.reshape(x, [-1, k]) if flat else x

        def grad(dy):
            with tf.name_scope("gradient_dense"):  # Named for profiling.py.
                # Shapes come from dy, not from the forward pass: inside a while loop's gradient
                # a captured tf.shape would not be a compile-time constant for XLA.
                dy2 = tf.reshape(dy, [-1, n]) if flat else dy
                if k * n >= SMALL_KERNEL:
                    dx = tf.matmul(dy2, stored_transpose(kernel))
                else:  # Per-step layers in the loop: a transpose per call costs more.
                    dx = tf.matmul(dy2, kernel, transpose_b=True)
                if flat:
                    dx = tf.reshape(dx, tf.concat([tf.shape(dy)[:-1], [k]], 0))
                return dx, tf.matmul(x2, dy2, transpose_a=True)

        y = tf.matmul(x2, kernel)
        if flat:
            y = tf.reshape(y, tf.concat([tf.shape(x)[:-1], [n]], 0))
        return y, grad

    y = product(x, tf.convert_to_tensor(kernel))
    y.set_shape(x.shape[:-1].concatenate([n]))
    return y


class Dense(keras.layers.Dense):
    """keras.layers.Dense computed with `dense_product` (same weights, names and checkpoints).

    LoRA and quantized Dense layers fall back to Keras' own computation.
    """

    def call(self, inputs, training=None):
        if getattr(self, "lora_enabled", False) or getattr(self, "quantization_mode", None):
            return super().call(inputs, training=training)
        x = dense_product(inputs, self.kernel)
        if self.bias is not None:
            x = x + self.bias
        if self.activation is not None:
            x = self.activation(x)
        return x


class DenseStack(keras.layers.Layer):
    """A stack of ReLU Dense layers, applied in order (the identity when it has none).

    The layers are held as attributes (`layer_0`, `layer_1`, ...), not in a Python list: in
    Keras 3 on TensorFlow only attribute-held layers become named children in a
    `tf.train.Checkpoint`, so weights in a list would be saved only through the optimizer's
    positional variable list.
    """

    def __init__(self, units, num_layers, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        for i in range(self.num_layers):
            setattr(self, f"layer_{i}", Dense(
                units, activation="relu", name=f"{self.name}_{i}"))

    def __len__(self):
        return self.num_layers

    def __getitem__(self, i):
        if not -self.num_layers <= i < self.num_layers:
            raise IndexError(i)
        return getattr(self, f"layer_{i % self.num_layers}")

    def __iter__(self):
        return (self[i] for i in range(self.num_layers))

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        for layer in self:
            layer.build(shape)
            shape = shape[:-1].concatenate([layer.units])
        self.built = True

    def call(self, x):
        for layer in self:
            x = layer(x)
        return x


def dense_stack(units, num_layers, name):
    """`num_layers` ReLU Dense layers of `units` as one `DenseStack` (identity when 0)."""
    return DenseStack(units, num_layers, name=name)


def stored_transpose(w):
    """transpose(w) [N, K] of a matrix w [K, N], materialised as a tensor of its own.

    A plain tf.transpose feeding a MatMul is folded back by Grappler's arithmetic optimizer
    (FoldTransposeIntoMatMul) into the `transpose_b` product this module avoids; going through a
    rank-3 view keeps the transpose an op of its own.
    """
    k, n = w.shape[0], w.shape[1]
    return tf.reshape(tf.transpose(tf.reshape(w, [k, n, 1]), [1, 0, 2]), [n, k])


def matmul_pretransposed(x, w, w_t):
    """x @ w whose gradient with respect to x is dy @ w_t, with w_t = transpose(w) given.

    Autodiff's gradient of a matmul is dy @ w^T computed with transpose_b, which oneDNN runs 2-4x
    slower than a plain product with the transposed matrix stored (BUILD_NOTES 4.7). In the
    recurrent loop that product runs once per frame, so the transposes are taken once, outside
    the loop. No gradient flows to w or w_t here (the caller computes the weight gradients).
    """
    @tf.custom_gradient
    def product(x):
        def grad(dy):
            return tf.matmul(dy, w_t)
        return tf.matmul(x, w), grad

    return product(x)


def lstm_update(gates, c):
    """LSTM state update from pre-activation gates [B, 4H] (i, f, g, o order) and cell state c."""
    i, f, g, o = tf.split(gates, 4, axis=-1)
    c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    h_new = tf.sigmoid(o) * tf.tanh(c_new)
    return h_new, c_new


class LatentLSTMCell(keras.layers.Layer):
    """One recurrent step of the VRNN family, as a Keras RNN cell.

    Per-step input (concatenated, width 4H [+ M + Z]):
      gx_t  [B, 4H]  W_x phi_x(x_t) + b, the hoisted input projection into the LSTM gates;
      px_t  [B, M]   the hoisted phi_x part of the posterior's first layer (latent models only);
      eps_t [B, Z]   standard Normal noise for the reparameterised posterior sample.
    Per-step output (width H [+ 3Z + M]): [h_{t-1}, mu_z, sigma_z, z_t, phi_z(z_t)].
    State: [h, c], each [B, H].

    With z_dim == 0 (RNN-Gauss / RNN-GMM) the cell is a plain LSTM fed gx_t, returning h_{t-1}.
    `prior_net`, when given, makes the posterior mean residual: mu_z = mu_0(h_{t-1}) + delta
    (the A-VRNN paper's "proposal using the mean from the prior"); the prior then also runs inside
    the loop, which costs one more MLP per step.
    """

    def __init__(self, h_dim, z_dim, mlp_units, posterior_layers=1, phi_z_layers=1,
                 scale_floor=1e-4, prior_net=None, **kwargs):
        super().__init__(**kwargs)
        self.h_dim = int(h_dim)
        self.z_dim = int(z_dim)
        self.mlp_units = int(mlp_units)
        self.scale_floor = float(scale_floor)
        self.state_size = [self.h_dim, self.h_dim]
        self.prior_net = prior_net
        # (recurrent_kernel, z_kernel) tensors used instead of the variables, with no gradient
        # to them, while SequenceNetwork.recurrence computes those gradients itself.
        self.kernel_override = None
        if self.z_dim:
            self.output_size = self.h_dim + 3 * self.z_dim + self.mlp_units
            # The first posterior layer is split between px_t (hoisted) and the shared h-matmul.
            self.posterior_hidden = dense_stack(mlp_units, posterior_layers - 1, "posterior_hidden")
            self.posterior_out = Dense(2 * self.z_dim, name="posterior_out")
            self.phi_z = dense_stack(mlp_units, phi_z_layers, "phi_z")
            self.posterior_head = heads.NormalHead(self.z_dim, scale_floor)
        else:
            self.output_size = self.h_dim

    def build(self, input_shape):
        width = 4 * self.h_dim + (self.mlp_units if self.z_dim else 0)
        self.recurrent_kernel = self.add_weight(
            shape=(self.h_dim, width), initializer="glorot_uniform", name="recurrent_kernel")
        if self.z_dim:
            self.z_kernel = self.add_weight(
                shape=(self.mlp_units, 4 * self.h_dim), initializer="glorot_uniform",
                name="z_kernel")
            hidden = tf.TensorShape([None, self.mlp_units])
            self.posterior_hidden.build(hidden)
            self.posterior_out.build(hidden)
            self.phi_z.build(tf.TensorShape([None, self.z_dim]))
        self.built = True

    def posterior_sample(self, pre, eps, h):
        """mu_z, sigma_z, z and phi_z(z) from the posterior's first-layer pre-activation [B, M]."""
        a = tf.nn.relu(pre)
        a = self.posterior_hidden(a)
        loc, scale = self.posterior_head.loc_scale(self.posterior_out(a))
        if self.prior_net is not None:
            loc = loc + self.prior_net.loc_scale(h)[0]
        z = loc + scale * eps
        return loc, scale, z, self.phi_z(z)

    def recurrent_products(self):
        """The two state-dependent products of a step, h @ W_rec and phi_z @ W_z, as functions.

        Normally plain matmuls with the variables. Under `kernel_override` (set by
        SequenceNetwork.recurrence to (W_rec, W_rec^T, W_z, W_z^T) tensors taken outside the
        loop) they use `matmul_pretransposed` and pass no gradient to the kernels.
        """
        if self.kernel_override is None:
            z_kernel = self.z_kernel if self.z_dim else None
            return (lambda h: tf.matmul(h, self.recurrent_kernel),
                    lambda fz: tf.matmul(fz, z_kernel))
        w, w_t, wz, wz_t = [None if k is None else tf.stop_gradient(k) for k in self.kernel_override]
        return (lambda h: matmul_pretransposed(h, w, w_t),
                lambda fz: matmul_pretransposed(fz, wz, wz_t))

    def call(self, inputs, states):
        h, c = states[0], states[1]
        h_product, z_product = self.recurrent_products()
        rec = h_product(h)
        if not self.z_dim:
            h_new, c_new = lstm_update(inputs + rec, c)
            return h, [h_new, c_new]
        four_h = 4 * self.h_dim
        # [gx, px] + h @ W_rec = the pre-activations of the gates (without phi_z's part) and of
        # the posterior's first layer, added as one tensor and split once (each split costs a
        # concat in the backward loop).
        hoisted, eps = tf.split(inputs, [four_h + self.mlp_units, self.z_dim], axis=-1)
        gates, post = tf.split(hoisted + rec, [four_h, self.mlp_units], axis=-1)
        loc, scale, z, fz = self.posterior_sample(post, eps, h)
        h_new, c_new = lstm_update(gates + z_product(fz), c)
        return tf.concat([h, loc, scale, z, fz], axis=-1), [h_new, c_new]

    def split_outputs(self, outputs):
        """Splits the stacked cell outputs [B, T, width] into a dict of named tensors."""
        if not self.z_dim:
            return {"h_prev": outputs}
        h, loc, scale, z, fz = tf.split(
            outputs, [self.h_dim, self.z_dim, self.z_dim, self.z_dim, self.mlp_units], axis=-1)
        return {"h_prev": h, "post_loc": loc, "post_scale": scale, "z": z, "phi_z": fz}

    def recurrent_gates(self, h, fz):
        """The gate pre-activations that depend on the state (used by the sampler)."""
        gh = tf.matmul(h, self.recurrent_kernel[:, :4 * self.h_dim])
        if self.z_dim:
            gh += tf.matmul(fz, self.z_kernel)
        return gh
