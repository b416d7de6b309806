"""train.weight_decay: decoupled decay on weight matrices, none on biases (closed form)."""

import numpy as np
import pytest

from avrnn_tf import config as cfg


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_weight_decay_shrinks_kernels_by_lr_times_decay_and_leaves_biases(optimizer):
    import keras
    import tensorflow as tf

    from avrnn_tf.loop import make_optimizer

    config = cfg.base_config()
    config.train.optimizer = optimizer
    config.train.learning_rate = 0.01
    config.train.weight_decay = 0.5
    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    layer.bias.assign(np.ones(3, np.float32))
    kernel0, bias0 = layer.kernel.numpy(), layer.bias.numpy()
    opt = make_optimizer(config.train)
    # Zero gradients: Adam's and RMSprop's own updates are exactly zero, so only the decay moves w.
    for _ in range(3):
        opt.apply_gradients([(tf.zeros_like(v), v) for v in layer.trainable_variables])
    np.testing.assert_allclose(layer.kernel.numpy(), kernel0 * (1 - 0.01 * 0.5) ** 3, rtol=1e-6)
    np.testing.assert_array_equal(layer.bias.numpy(), bias0)


def test_no_weight_decay_by_default():
    from avrnn_tf.loop import make_optimizer

    assert not make_optimizer(cfg.base_config().train).weight_decay
