"""Whole-sequence training (`data.train_frames = 0`): padding contributes nothing to the trained
objective or its gradient, and a run on real FSDD utterances trains and resumes exactly."""

import numpy as np
import pytest

from conftest import FSDD, load_config_file


@pytest.mark.parametrize("kind", ["vrnn", "zforcing"])
def test_padding_contributes_nothing_to_the_objective_or_its_gradient(tf, kind):
    """A padded whole-sequence batch gives the objective and gradient of its sequences run one
    by one without padding, whatever the padded frames and their noise hold. (Z-Forcing's
    backward LSTM reads the future, so a mask that leaked would show there first.)"""
    from avrnn_tf import bounds, models, registry
    from avrnn_tf.data import pipeline

    spec = models.ModelSpec(kind=kind, emission="gmm", x_dim=4, h_dim=12, z_dim=3, mlp_units=10,
                            num_mixtures=2)
    net = registry.create_network(spec)
    rng = np.random.default_rng(0)
    lengths = [9, 3, 6]
    frames = [rng.normal(size=[n, 4]).astype(np.float32) for n in lengths]
    noises = [rng.normal(size=[n, 3]).astype(np.float32) for n in lengths]
    x, mask = pipeline.pad_group(frames, pipeline.padded_length(max(lengths)))
    noise, _ = pipeline.pad_group(noises, x.shape[1])
    x[mask == 0], noise[mask == 0] = 1e3, 5.0  # Garbage in every padded frame.

    # As in training: the hoisted recurrence gradient runs inside tf.function only. One trace.
    @tf.function(input_signature=[tf.TensorSpec([None, None, 4]), tf.TensorSpec([None, None, 3]),
                                  tf.TensorSpec([None, None])])
    def objective_and_gradient(x, noise, mask):
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(bounds.elbo(net.frame_terms(x, noise, mask=mask), mask)["objective"])
        return total, tape.gradient(total, net.trainable_variables)

    batched, batched_grads = objective_and_gradient(x, noise, tf.constant(mask))
    alone = [objective_and_gradient(f[None], n[None], tf.ones([1, len(f)]))
             for f, n in zip(frames, noises)]
    np.testing.assert_allclose(float(batched), sum(float(v) for v, _ in alone), rtol=1e-5)
    for i, g in enumerate(batched_grads):
        if g is None:  # Z-Forcing's auxiliary head is not part of the ELBO.
            assert all(grads[i] is None for _, grads in alone)
            continue
        np.testing.assert_allclose(g.numpy(), sum(grads[i].numpy() for _, grads in alone),
                                   rtol=1e-4, atol=1e-5, err_msg=net.trainable_variables[i].name)


def whole_sequence_config(steps):
    c = load_config_file("vrnn_gauss.py", "tiny")
    c.data.update(path=FSDD, max_files=24, train_frames=0, max_batch_frames=64, batch_size=4)
    c.train.update(steps=steps, eval_every=3, checkpoint_every=3, log_every=1, deterministic=True,
                   audio_every=0, num_final_samples=0)
    return c


def test_whole_sequence_training_on_fsdd_trains_and_resumes(tmp_path, tf, fsdd_dir):
    from avrnn_tf import loop
    from conftest import checkpoint_tensors, read_events

    reference = loop.train_and_evaluate(whole_sequence_config(6), str(tmp_path / "ref"), verbose=0)
    assert reference["step"] == 6
    # The same run stopped after 3 steps and resumed with the same command's longer budget.
    loop.train_and_evaluate(whole_sequence_config(3), str(tmp_path / "resumed"), verbose=0)
    resumed = loop.train_and_evaluate(whole_sequence_config(6), str(tmp_path / "resumed"), verbose=0)
    assert resumed["step"] == 6 and resumed["valid"] == reference["valid"]
    want = checkpoint_tensors(str(tmp_path / "ref" / "checkpoints" / "ckpt-6"))
    got = checkpoint_tensors(str(tmp_path / "resumed" / "checkpoints" / "ckpt-6"))
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    events = read_events(str(tmp_path / "ref" / "tensorboard"))
    elbo = [v for _, v in events["valid/elbo_per_frame"]]
    assert len(elbo) == 3 and elbo[-1] > elbo[0], elbo  # Steps 0, 3 and 6: it learns.
    assert all(np.isfinite(v) for _, v in events["train/loss"])


def test_whole_sequences_are_refused_where_they_cannot_work(tf, tmp_path):
    from avrnn_tf import config as config_lib
    from avrnn_tf.data import audio, prepared

    c = whole_sequence_config(2)
    c.data.stream = True
    with pytest.raises(config_lib.ConfigError, match="data.stream"):
        config_lib.validate(c)
    c = whole_sequence_config(2)
    c.train.algorithm = "avrnn"
    with pytest.raises(config_lib.ConfigError, match="separate_batches"):
        config_lib.validate(c)
    c.adversarial.separate_batches = False
    config_lib.validate(c)
    stats = {"frame_size": c.data.frame_size, "sample_rate": 8000}
    with pytest.raises(audio.DataError, match="train_frames = 0"):
        prepared.check_config(stats, c.data, str(tmp_path))
