"""Every model kind exported and used without avrnn_tf (issue 12): rnn, vrnn, vrnn_i, storn,
zforcing, srnn, an A-VRNN-trained vrnn and a piano-roll (Bernoulli) srnn, each trained for two
steps, exported, then checked by tests/matrix_consumer.py in a process that cannot import
avrnn_tf; `score` is compared here with the training-side ELBO (objectives.elbo) for the seed."""

import os
import site
import subprocess
import sys

import numpy as np
import pytest

from conftest import PROJECT_ROOT, SHARED_DATA

MODELS = {  # name -> config file and variants
    "rnn": "configs/rnn_gmm.py:tiny",
    "vrnn": "configs/vrnn_gauss.py:tiny",
    "vrnn_i": "configs/vrnn_i.py:tiny",
    "storn": "configs/storn.py:tiny",
    "zforcing": "configs/zforcing.py:tiny",
    "srnn": "configs/srnn.py:tiny",
    "avrnn_vrnn": "configs/avrnn.py:tiny",
    "srnn_pianoroll": "configs/srnn.py:tiny,jsb",
}
SEED, SALT = 3, 7  # matrix_consumer.SEED; export.SEED_SALT


@pytest.fixture(scope="module")
def exported(tf, tmp_path_factory):
    """{name: (workdir, saved_model_dir)}: two training steps each, exported in this process."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import export, loop

    root = tmp_path_factory.mktemp("matrix")
    out = {}
    for name, spec in MODELS.items():
        config = config_lib.load_file(os.path.join(PROJECT_ROOT, spec))
        config.model.update(h_dim=8, z_dim=3, mlp_units=8, num_mixtures=2)
        config.train.update(steps=2, eval_every=2, checkpoint_every=2, audio_every=0,
                            num_audio_clips=0, num_final_samples=0)
        config.data.update(synthetic_utterances=8, max_valid_utterances=4)
        if config.data.format == "pianoroll":
            config.data.path = os.path.join(SHARED_DATA, "jsb", "JSB_Chorales.mat")
        workdir, saved = str(root / f"{name}_work"), str(root / f"{name}_saved")
        loop.train_and_evaluate(config_lib.validate(config), workdir, verbose=0)
        export.export(workdir, saved)
        out[name] = (workdir, saved)
    return out


@pytest.fixture(scope="module")
def consumed(exported, tmp_path_factory):
    out = tmp_path_factory.mktemp("matrix_consumer")
    script = os.path.join(PROJECT_ROOT, "tests", "matrix_consumer.py")
    result = subprocess.run(
        [sys.executable, "-S", "-E", script, os.pathsep.join(site.getsitepackages()), str(out)]
        + [f"{name}={saved}" for name, (_, saved) in exported.items()],
        cwd=str(out), capture_output=True, text=True, timeout=900,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0 and "matrix ok" in result.stdout, result.stdout + result.stderr
    return out


def test_every_kind_is_exported_and_trained_as_configured(exported):
    from avrnn_tf import restore

    kinds = {name: restore.read_config(work).model.kind for name, (work, _) in exported.items()}
    from avrnn_tf import names

    assert set(names.KINDS) <= set(kinds.values()), kinds
    assert restore.read_config(exported["avrnn_vrnn"][0]).train.algorithm == "avrnn"
    assert restore.read_config(exported["srnn_pianoroll"][0]).model.emission == "bernoulli"


@pytest.mark.parametrize("name", list(MODELS))
def test_exported_score_equals_the_training_side_elbo(tf, exported, consumed, name):
    from avrnn_tf import objectives, restore

    saved = np.load(consumed / f"{name}.npz")
    network = restore.load_run(exported[name][0]).network
    out = objectives.elbo(network, tf.constant(saved["x"]), tf.constant(saved["mask"]),
                          tf.constant([SEED, SALT], tf.int32), None)
    for key in ("elbo", "log_px", "kl"):
        np.testing.assert_allclose(saved[f"score_{key}"], out["per_frame"][key].numpy(),
                                   rtol=1e-5, atol=1e-3, err_msg=key)


@pytest.mark.parametrize("name", list(MODELS))
def test_exported_sample_is_the_training_sampler(tf, exported, consumed, name):
    from avrnn_tf import restore

    network = restore.load_run(exported[name][0]).network
    frames = tf.function(network.sample)(2, 5, tf.constant([SEED, SALT], tf.int32)).numpy()
    np.testing.assert_allclose(np.load(consumed / f"{name}.npz")["frames"], frames, atol=1e-5)


def _run_script(script, args, cwd):
    """An export/ program in a process that cannot import avrnn_tf (asserted at its end)."""
    from test_export import SITE_DIRS, _standalone

    code = ("import sys, runpy; sys.path.extend(p for p in sys.argv[1].split(':') if p); "
            "sys.argv = sys.argv[2:]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "finally:\n    assert 'avrnn_tf' not in sys.modules, 'imported avrnn_tf'")
    return _standalone(["-c", code, SITE_DIRS, os.path.join(PROJECT_ROOT, "export", script),
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


def test_piano_roll_program_writes_the_sampled_rolls_as_png_and_midi(tf, exported, tmp_path):
    saved = exported["srnn_pianoroll"][1]
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


def test_audio_and_piano_roll_programs_refuse_the_other_kind_in_one_line(exported, tmp_path):
    for script, name, text in (("generate_audio.py", "srnn_pianoroll", "generate_pianoroll.py"),
                               ("generate_pianoroll.py", "srnn", "generate_audio.py")):
        args = [f"--saved_model={exported[name][1]}", f"--output_dir={tmp_path / 'out'}"]
        result = _run_script(script, args, str(tmp_path))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and text in lines[0], result.stderr
        assert not (tmp_path / "out").exists()
