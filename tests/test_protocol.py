"""Conformance of every registered model kind to protocol.SequenceModel.

A new kind passes these without a line changed here: it is picked up from registry.NETWORKS.
"""

import numpy as np
import pytest

B, T, D = 2, 5, 3


def _kinds():
    from avrnn_tf import registry

    return sorted(registry.NETWORKS)


@pytest.fixture(scope="module")
def nets(tf):
    from avrnn_tf import models, registry

    return {kind: registry.create_network(models.ModelSpec(
        kind=kind, emission="gmm", x_dim=D, h_dim=6, z_dim=2, mlp_units=5, num_mixtures=2))
        for kind in _kinds()}


def _data(tf, net, seed=1):
    x = tf.random.stateless_normal([B, T, D], seed=[seed, 1])
    noise = tf.random.stateless_normal(net.noise_shape(x), seed=[seed, 2])
    return x, noise


def _per_step(tf, net, x, noise, mask=None):
    """The naive reference: the filter one frame at a time in Python, summed terms [B] and state."""
    inputs = net.step_inputs(x, mask)
    state = net.initial_state(B)
    total = 0.0
    for t in range(x.shape[1]):
        state, log_px, log_pz, log_qz = net.filter_step(state, inputs[:, t], noise[:, t], x[:, t])
        total = total + log_px + log_pz - log_qz
    return total, state


def test_registry_names_every_kind_and_only_protocol_classes():
    from avrnn_tf import names, protocol, registry

    assert tuple(registry.NETWORKS) == names.KINDS
    for cls in registry.NETWORKS.values():
        assert issubclass(cls, protocol.SequenceModel)
        assert not getattr(cls, "__abstractmethods__", None)
    with pytest.raises(ValueError, match="no_such_kind"):
        registry.network_class("no_such_kind")


@pytest.mark.parametrize("kind", _kinds())
def test_whole_sequence_terms_and_gradients_equal_the_per_step_reference(tf, nets, kind):
    net = nets[kind]
    x, noise = _data(tf, net)
    mask = tf.ones([B, T])

    @tf.function  # The fast path (hoisted weight gradients) runs inside tf.function only.
    def fast():
        with tf.GradientTape() as tape:
            terms = net.frame_terms(x, noise, mask)
            value = tf.reduce_sum(terms["log_px"] + terms["log_pz"] - terms["log_qz"], axis=1)
        return value, tape.gradient(tf.reduce_sum(value), net.trainable_variables)

    with tf.GradientTape() as tape:
        reference, _ = _per_step(tf, net, x, noise, mask)
    ref_grads = tape.gradient(tf.reduce_sum(reference), net.trainable_variables)
    value, grads = fast()
    np.testing.assert_allclose(value.numpy(), reference.numpy(), rtol=1e-5, atol=1e-4)
    for v, g, r in zip(net.trainable_variables, grads, ref_grads):
        if r is None:  # Unused by the bound's log-weights (e.g. Z-Forcing's auxiliary net).
            assert g is None or not np.any(g.numpy()), v.path
            continue
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-4, atol=1e-4, err_msg=v.path)


@pytest.mark.parametrize("kind", _kinds())
def test_parameter_groups_partition_the_trainable_variables(tf, nets, kind):
    net = nets[kind]
    listed = [id(v) for group in net.parameter_groups().values() for v in group]
    assert len(listed) == len(set(listed)), "a variable is in two groups"
    assert set(listed) == {id(v) for v in net.trainable_variables}


@pytest.mark.parametrize("kind", _kinds())
def test_avrnn_trains_every_variable_or_refuses_the_kind(tf, nets, kind):
    """A-VRNN on Z-Forcing used to leave the backward LSTM, posterior_b and the auxiliary net
    (9 variables) in no phase; now every accepted kind has each variable in some phase."""
    from avrnn_tf import adversarial, training

    net = nets[kind]
    critic = adversarial.Critic(4, 4, 1, name="critic")
    critic.build_for(max(net.z_dim, 1))
    try:
        trainer = training.AVRNNTrainer(net, critic)
    except ValueError as e:
        assert len(str(e).splitlines()) == 1
        return
    trained = {id(v) for v in trainer.recon_variables + trainer.adversarial_variables}
    missing = [v.path for v in net.trainable_variables if id(v) not in trained]
    assert not missing, f"A-VRNN leaves {missing} untrained"


@pytest.mark.parametrize("kind", _kinds())
def test_encoding_a_prefix_then_continuing_equals_the_whole_sequence(tf, nets, kind):
    net = nets[kind]
    x, noise = _data(tf, net, seed=3)
    whole = net.final_state(x, noise)
    _, reference = _per_step(tf, net, x, noise)
    for a, b in zip(whole, reference):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
    inputs = net.step_inputs(x)
    if not np.allclose(net.step_inputs(x[:, :2]).numpy(), inputs[:, :2].numpy(), atol=1e-6):
        return  # Inference reads the future (Z-Forcing): a prefix has its own backward states.
    state = net.final_state(x[:, :2], noise[:, :2])
    for t in range(2, T):
        state = net.filter_step(state, inputs[:, t], noise[:, t], x[:, t])[0]
    for a, b in zip(state, whole):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", _kinds())
def test_sampling_in_chunks_equals_one_call(tf, nets, kind):
    net = nets[kind]
    seed = tf.constant([5, 7], tf.int32)
    one = net.sample(3, 6, seed)
    first, state = net.sample(3, 4, seed, return_state=True)
    rest = net.sample(None, 2, seed, initial_state=state, start_step=4)
    np.testing.assert_allclose(tf.concat([first, rest], 1).numpy(), one.numpy(), rtol=1e-6,
                               atol=1e-6)
    assert sum(int(s.shape[-1]) for s in state) == net.state_size


@pytest.mark.parametrize("kind", _kinds())
def test_the_filtering_state_reads_only_trained_weights(tf, nets, kind):
    """final_state (behind the exported encode/continue_from) may read only variables the ELBO
    trains. Z-Forcing used to read posterior_x, a layer its training never touches (random
    weights in every export)."""
    net = nets[kind]
    x, noise = _data(tf, net, seed=4)
    with tf.GradientTape() as tape:
        terms = net.frame_terms(x, noise)
        elbo = tf.reduce_sum(terms["log_px"] - terms["kl"])
    # Compared as the tf.Variables under the Keras variables (what a tape watches).
    trained = {id(v.value) for v, g in zip(net.trainable_variables,
                                           tape.gradient(elbo, net.trainable_variables))
               if g is not None}
    with tf.GradientTape() as tape:
        net.final_state(x, noise)
    read = [v for v in tape.watched_variables() if v.trainable]
    untrained = [v.name for v in read if id(v) not in trained]
    assert read and not untrained, f"final_state reads untrained {untrained}"


@pytest.mark.parametrize("kind, srnn_posterior", [(k, "smoothing") for k in _kinds()]
                         + [("srnn", "filtering")])
def test_posterior_reads_future_is_what_the_posterior_reads_and_what_the_config_knows(
        tf, kind, srnn_posterior):
    """`posterior_reads_future` says whether q at frame 0 changes with the last frame, and its
    config-time twin (which refuses FIVO training for such a model) agrees."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import models, registry

    net = registry.create_network(models.ModelSpec(
        kind=kind, emission="gmm", x_dim=D, h_dim=6, z_dim=2, mlp_units=5, num_mixtures=2,
        srnn_posterior=srnn_posterior))
    config = config_lib.base_config()
    config.model.update(kind=kind, srnn_posterior=srnn_posterior)
    assert config_lib.posterior_reads_future(config.model) == net.posterior_reads_future
    if net.z_dim:
        x, noise = _data(tf, net)
        changed = tf.concat([x[:, :-1], x[:, -1:] + 1.0], axis=1)
        first = [net.frame_terms(v, noise)["trajectory"]["post_loc"][:, 0] for v in (x, changed)]
        assert (not np.allclose(*first)) == net.posterior_reads_future
    else:
        assert not net.posterior_reads_future
    config.train.update(objective="fivo", num_particles=2, kl_anneal=False)
    if net.posterior_reads_future:
        field = "srnn_posterior = 'smoothing'" if kind == "srnn" else f"kind = '{kind}'"
        with pytest.raises(config_lib.ConfigError,
                           match=rf"^config\.train\.objective = 'fivo' with config\.model\.{field}"
                                 r": FIVO's filtering bound needs a posterior that does not read "
                                 r"frames after t.*'elbo' or 'iwae'$") as refused:
            config_lib.validate(config)
        assert ("model.srnn_posterior = 'filtering'" in str(refused.value)) == (kind == "srnn")
    else:
        config_lib.validate(config)
