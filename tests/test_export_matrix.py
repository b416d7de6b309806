"""Every model kind with every emission exported and used without avrnn_tf (issue 12): rnn, vrnn,
vrnn_i, storn, zforcing and srnn, each with a normal, a GMM and a Bernoulli (JSB piano-roll)
emission, and an A-VRNN-trained vrnn (conftest.EXPORTS), each trained for two steps and exported
once per session (conftest `exports`), then checked by tests/matrix_consumer.py in a process that
cannot import avrnn_tf (conftest `consumed`). Its `score`, `sample` and `encode` are compared here
with the training side: the trainer as the training loop builds and restores it, for the same
seed."""

import os

import numpy as np
import pytest

from conftest import EMISSIONS, EXPORTS, KIND_CONFIGS, PROJECT_ROOT, SEED_SALT, SITE_DIRS
from conftest import standalone, training_side

SEED = 3  # matrix_consumer.SEED


def test_every_kind_and_emission_is_exported_and_trained_as_configured(exports):
    from avrnn_tf import names
    from avrnn_tf import restore

    configs = {name: restore.read_config(work) for name, (work, _) in exports.items()}
    trained = {(c.model.kind, c.model.emission) for c in configs.values()}
    assert set(names.KINDS) == set(KIND_CONFIGS)
    assert {(kind, e) for kind in names.KINDS for e in EMISSIONS} <= trained, trained
    assert configs["avrnn_vrnn"].train.algorithm == "avrnn"
    assert {c.data.format for c in configs.values() if c.model.emission == "bernoulli"} == {
        "pianoroll"}


def filtering_state(network, x, noise):
    """The state the training-side whole-sequence pass reaches after the last frame of x [B, P, D]
    with posterior noise [B, P, Z]: what `encode` must return (protocol.final_state runs the
    per-step filter instead). Built from each network's hoisted inputs and its recurrent layer."""
    import keras
    import tensorflow as tf

    from avrnn_tf import models
    from avrnn_tf import srnn

    if isinstance(network, models.SequenceNetwork):  # [h_P, c_P]
        inputs, _ = network.hoisted_inputs(x)  # Z-Forcing: with b_t of the backward LSTM.
        if network.z_dim:
            inputs = tf.concat([inputs, noise], axis=-1)
        _, h, c = keras.layers.RNN(network.cell, return_state=True)(inputs)
        return np.concatenate([h, c], axis=-1)
    if isinstance(network, srnn.SRNNNetwork):  # [d_P, c_P, z_P, x_P]
        d, c = network.deterministic_states(x)
        z = network.trajectory(x, noise)["z"]
        return np.concatenate([d[:, -1], c[:, -1], z[:, -1], x[:, -1]], axis=-1)
    loc, scale, gates = tf.split(network.step_inputs(x), [network.z_dim, network.z_dim, -1], -1)
    h_c = network.rnn(gates + network.gate_z(loc + scale * noise))  # STORN: [h_P, c_P, x_P]
    return np.concatenate([h_c[:, -1], x[:, -1]], axis=-1)


@pytest.mark.parametrize("name", list(EXPORTS))
def test_exported_score_sample_and_encode_equal_the_training_side(tf, exports, consumed, name):
    """score = the trainer's ELBO objective, sample = the training loop's sampler, and encode =
    the state the training-side pass reaches on the prefix (for Z-Forcing and the smoothing SRNN
    after the backward LSTM over the prefix), all for the seed pair [SEED, 7]."""
    from avrnn_tf import replicas

    saved = np.load(consumed / f"{name}.npz")
    trainer, _ = training_side(exports[name][0])
    network = trainer.network
    seed = tf.constant([SEED, SEED_SALT], tf.int32)
    out = trainer.objective(network, tf.constant(saved["x"]), tf.constant(saved["mask"]), seed,
                            None)
    for key in ("elbo", "log_px", "kl"):
        np.testing.assert_allclose(saved[f"score_{key}"], out["per_frame"][key].numpy(),
                                   rtol=1e-5, atol=1e-3, err_msg=f"score {key}")
    n, t = saved["frames"].shape[:2]
    frames = tf.function(network.sample)(n, t, seed).numpy()  # As loop.Run.sampler.
    np.testing.assert_allclose(saved["frames"], frames, atol=1e-5, err_msg="sample")
    prefix = tf.constant(saved["encode_prefix"])
    noise = replicas.normal(network.noise_shape(prefix), seed)  # objectives.elbo's noise.
    np.testing.assert_allclose(saved["encode_state"], filtering_state(network, prefix, noise),
                               rtol=1e-5, atol=1e-5, err_msg="encode")


def _run_script(script, args, cwd):
    """An export/ program in a process that cannot import avrnn_tf (asserted at its end)."""
    code = ("import sys, runpy; sys.path.extend(p for p in sys.argv[1].split(':') if p); "
            "sys.argv = sys.argv[2:]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "finally:\n    assert 'avrnn_tf' not in sys.modules, 'imported avrnn_tf'")
    return standalone(["-c", code, SITE_DIRS, os.path.join(PROJECT_ROOT, "export", script),
                        *args], cwd=cwd)


def _midi_roll(data, frames, notes, lowest=21, frame_ticks=240):
    """The 0/1 roll [frames, notes] a format-0 MIDI file of generate_pianoroll.py plays."""
    assert data[:4] == b"MThd" and int.from_bytes(data[4:8], "big") == 6
    assert int.from_bytes(data[8:10], "big") == 0 and int.from_bytes(data[10:12], "big") == 1
    assert data[14:18] == b"MTrk" and int.from_bytes(data[18:22], "big") == len(data) - 22
    roll, pos, tick, since = np.zeros([frames, notes], np.uint8), 22, 0, {}
    while pos < len(data):
        delta = 0
        while True:
            byte = data[pos]
            pos += 1
            delta = (delta << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        tick += delta
        if data[pos] == 0xFF:  # Meta event: type, length, body.
            pos += 3 + data[pos + 2]
            continue
        status, note, velocity = data[pos:pos + 3]
        pos += 3
        if status == 0x90 and velocity:
            since[note] = tick
        else:
            assert status == 0x80 and note in since
            roll[since.pop(note) // frame_ticks:tick // frame_ticks, note - lowest] = 1
    assert not since and tick <= frames * frame_ticks
    return roll


def test_piano_roll_program_writes_the_sampled_rolls_as_png_and_midi(tf, exports, tmp_path):
    saved = exports["srnn_bernoulli"][1]
    result = _run_script("generate_pianoroll.py", [f"--saved_model={saved}", "--output_dir=out",
                                                   "--num_samples=2", "--num_frames=12",
                                                   "--seed=5"], str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "generate_pianoroll: wrote 2 roll(s)" in result.stdout
    model = tf.saved_model.load(saved)  # Kept in a variable: its functions need its weights.
    rolls = model.sample(2, 12, 5)["piano_roll"].numpy()
    assert rolls.any()
    for k, roll in enumerate(rolls):
        with open(tmp_path / "out" / f"roll_5_{k}.mid", "rb") as f:
            np.testing.assert_array_equal(_midi_roll(f.read(), 12, roll.shape[1]), roll)
        with open(tmp_path / "out" / f"roll_5_{k}.png", "rb") as f:
            png = f.read()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
        assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (
            4 * 12, 4 * roll.shape[1])


def test_audio_and_piano_roll_programs_refuse_the_other_kind_in_one_line(exports, tmp_path):
    for script, name, text in (("generate_audio.py", "srnn_bernoulli", "generate_pianoroll.py"),
                               ("generate_pianoroll.py", "srnn_gmm", "generate_audio.py")):
        args = [f"--saved_model={exports[name][1]}", f"--output_dir={tmp_path / 'out'}"]
        result = _run_script(script, args, str(tmp_path))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and text in lines[0], result.stderr
        assert not (tmp_path / "out").exists()
