"""Run by tests/test_distributed.py in a fresh process (logical devices must be set before TF starts).

  python tests/distributed_check.py KIND:CLIP [KIND:CLIP ...]    e.g. vrnn:0.5 vrnn:fivo:0.5

For each case, trains the same model from the same initial weights on the same batches twice — on
the default strategy and with MirroredStrategy over two logical CPU devices — and prints one JSON
line with the case and the largest weight difference (all cases in one process: one TensorFlow
start-up).
"""

import json
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from avrnn_tf import models, training  # noqa: E402

from avrnn_tf import registry


def build(kind, clip_norm):
    if kind == "avrnn":  # The three-phase step with its critic and three optimizers.
        from avrnn_tf import config as config_lib
        from avrnn_tf import loop

        config = config_lib.base_config()
        config.model.update(h_dim=8, z_dim=3, mlp_units=5)
        config.train.update(algorithm="avrnn", clip_norm=clip_norm, seed=1, learning_rate=1e-2)
        config.adversarial.update(separate_batches=False, critic_lstm_units=6, critic_dense_units=4,
                                  critic_learning_rate=1e-2, adversarial_learning_rate=1e-2)
        net = registry.create_network(config_lib.model_spec(config, 6))
        return net, loop.build_trainer(config, net)
    # e.g. "vrnn:fivo": FIVO-3 resampling at every frame (so the ancestor draws are compared too).
    kind, _, objective = kind.partition(":")
    net = registry.create_network(models.ModelSpec(kind=kind, emission="normal", x_dim=6, h_dim=8,
                                                 z_dim=3, mlp_units=5))
    if objective:
        import functools

        from avrnn_tf import objectives

        options = {"ess_threshold": 1.0} if objective == "fivo" else {}
        trainer = training.ELBOTrainer(net, functools.partial(
            objectives.OBJECTIVES[objective], num_particles=3, **options), seed=1,
            clip_norm=clip_norm)
    else:
        trainer = training.ELBOTrainer(net, seed=1, clip_norm=clip_norm)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    trainer.optimizer.build(net.trainable_variables)
    return net, trainer


def train(strategy, kind, clip_norm):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        net, trainer = build(kind, clip_norm)
        trainer.built = True
    initial = [v.numpy().copy() for v in net.trainable_variables]
    rng = np.random.default_rng(0)
    x = rng.normal(size=[5, 4, 7, 6]).astype(np.float32)
    lengths = rng.integers(2, 8, size=[5, 4])
    mask = (np.arange(7)[None, None] < lengths[..., None]).astype(np.float32)
    trainer.fit(tf.data.Dataset.from_tensor_slices((x, mask)), epochs=1, verbose=0, shuffle=False)
    return initial, [v.numpy() for v in net.trainable_variables], int(trainer.optimizer.iterations.numpy())


# One strategy for every case: a second MirroredStrategy in the process reuses the collective
# instance keys of the first and its all-reduces fail with a shape mismatch.
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
for case in sys.argv[1:]:
    kind, clip = case.rsplit(":", 1)
    init_a, a, steps_a = train(tf.distribute.get_strategy(), kind, float(clip))
    init_b, b, steps_b = train(mirrored, kind, float(clip))
    print(json.dumps({
        "case": case,
        "initial_diff": max(float(np.max(np.abs(p - q))) for p, q in zip(init_a, init_b)),
        "final_diff": max(float(np.max(np.abs(p - q))) for p, q in zip(a, b)),
        "moved": max(float(np.max(np.abs(p - q))) for p, q in zip(init_a, a)),
        "steps": [steps_a, steps_b],
    }), flush=True)
