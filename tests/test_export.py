"""Export: `avrnn-export`, then the SavedModel used without avrnn_tf.

The exported models are the session's (conftest `exports`: trained for two steps and exported
once). Three audio models (conftest.FULL_CHECKS) have every signature checked in a separate
interpreter that cannot import avrnn_tf (tests/standalone_consumer.py, run with `python -S` by
conftest `consumed`); its `score` is compared here with the trainer's ELBO objective for the same
noise (tests/test_export_matrix.py does the same, and compares `sample` and `encode`, for every
exported model).
"""

import importlib.util
import json
import math
import os
import re
import sys
import wave

import numpy as np
import pytest

from conftest import EXPORT_STEPS, FULL_CHECKS, PROJECT_ROOT, SEED_SALT, SITE_DIRS
from conftest import run_cli, standalone, training_side

SEED = 11  # As in standalone_consumer.py.
GENERATE = os.path.join(PROJECT_ROOT, "export", "generate_audio.py")


def _check(result, what):
    assert result.returncode == 0, f"{what} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _run_generate(args, cwd):
    """generate_audio.py in a process that cannot import avrnn_tf.

    Afterwards the process asserts that neither avrnn_tf nor soundfile was imported. (TensorFlow's
    own import pulls in scipy and matplotlib when they are installed, so those are not checked
    here; the program's own imports are checked statically below.)
    """
    code = ("import sys, runpy; sys.path.extend(p for p in sys.argv[1].split(':') if p); "
            "sys.argv = sys.argv[2:]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "finally:\n    extra = sorted({'avrnn_tf', 'soundfile'} "
            "& set(sys.modules))\n    assert not extra, f'generate_audio imported {extra}'")
    return standalone(["-c", code, SITE_DIRS, GENERATE, *args], cwd=cwd)


# ----------------------------------------------------------------------------- standalone
@pytest.mark.parametrize("name", FULL_CHECKS)
def test_standalone_process_calls_every_signature_and_scores_the_training_elbo(
        tf, exports, consumed, name):
    """The full check passed (it wrote its file), and its score of a batch with two padded
    sequences equals the trainer's ELBO objective for the same noise."""
    trainer, _ = training_side(exports[name][0])
    saved = np.load(consumed / f"{name}.full.npz")
    out = trainer.objective(trainer.network, tf.constant(saved["x"]), tf.constant(saved["mask"]),
                            tf.constant([SEED, SEED_SALT], tf.int32), None)
    for key in ("elbo", "log_px", "kl"):
        np.testing.assert_allclose(saved[f"score_{key}"], out["per_frame"][key].numpy(), rtol=1e-5,
                                   atol=1e-3)


@pytest.mark.parametrize("name", ["vrnn_normal", "storn_normal"])
def test_exported_iwae_is_the_log_mean_exp_of_trajectory_weights(tf, exports, name):
    """score's IWAE-K equals log (1/K) sum_k exp(log w_k), recomputed with the training network."""
    trainer, stats = training_side(exports[name][0])
    model = tf.saved_model.load(exports[name][1])
    k, d = 4, stats["frame_size"]
    rng = np.random.RandomState(1)
    x = rng.normal(size=[2, 5, d]).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.float32)
    got = model.score(x, mask, SEED, k)["iwae"].numpy()

    net = trainer.network
    xk = np.tile(x, [k, 1, 1])
    seed = tf.random.experimental.stateless_fold_in(tf.constant([SEED, SEED_SALT], tf.int32), 1)
    terms = net.frame_terms(tf.constant(xk), tf.random.stateless_normal(
        net.noise_shape(xk), seed=seed))
    log_w = ((terms["log_px"] + terms["log_pz"] - terms["log_qz"]).numpy().astype(np.float64)
             * np.tile(mask, [k, 1])).sum(1).reshape(k, 2)
    expected = np.logaddexp.reduce(log_w, axis=0) - math.log(k)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # A log-mean-exp lies between the mean and the largest of its log-weights (Jensen).
    assert np.all(got <= log_w.max(0) + 1e-3) and np.all(got >= log_w.mean(0) - 1e-3)


def test_final_state_continues_the_trajectory(tf):
    """final_state over x[:, :k] is the h_prev that trajectory reports at step k."""
    from avrnn_tf import models
    from avrnn_tf import registry

    for kind in ("vrnn", "rnn"):
        net = registry.create_network(models.ModelSpec(kind=kind, emission="normal", x_dim=6,
                                                     h_dim=5, z_dim=3, mlp_units=4))
        x = tf.random.stateless_normal([2, 6, 6], seed=[1, 2])
        noise = tf.random.stateless_normal(net.noise_shape(x), seed=[3, 4])
        h_prev = net.trajectory(x, noise)["h_prev"].numpy()
        for k in (1, 4):
            h, c = net.final_state(x[:, :k], noise[:, :k])
            np.testing.assert_allclose(h.numpy(), h_prev[:, k], atol=1e-6)
            assert c.shape == h.shape


def test_chunked_sampling_equals_one_call(tf):
    """sample(T1) then sample(T2, initial_state, start_step=T1) == sample(T1 + T2)."""
    from avrnn_tf import models
    from avrnn_tf import registry

    net = registry.create_network(models.ModelSpec(kind="vrnn", emission="gmm", x_dim=6, h_dim=5,
                                                 z_dim=3, mlp_units=4, num_mixtures=2))
    seed = tf.constant([5, 6], tf.int32)
    whole = net.sample(2, 7, seed)
    first, state = net.sample(2, 3, seed, return_state=True)
    rest = net.sample(None, 4, seed, initial_state=state, start_step=3)
    np.testing.assert_allclose(np.concatenate([first, rest], 1), whole.numpy(), atol=1e-6)


# -------------------------------------------------------------------------- generate_audio
def _read_wav(path):
    with wave.open(str(path), "rb") as f:
        assert f.getnchannels() == 1 and f.getsampwidth() == 2
        return f.getframerate(), np.frombuffer(f.readframes(f.getnframes()), "<i2")


def test_generate_audio_writes_wavs_and_pngs(tf, exports, tmp_path):
    saved = exports["vrnn_normal"][1]
    out = tmp_path / "out"
    result = _run_generate([f"--saved_model={saved}", "--num_samples=2", "--seconds=0.3",
                            "--seed=5", "--chunk_seconds=0.1", f"--output_dir={out}"],
                           cwd=str(tmp_path))
    _check(result, "generate_audio")
    assert "WARNING" not in result.stderr, result.stderr  # Only the progress bar.
    assert re.fullmatch(r"generate_audio: wrote 2 clip\(s\) of 0\.30 s at 16000 Hz \(vrnn/normal, "
                        rf"ckpt-{EXPORT_STEPS}, seed 5\) to \S+ in [\d.]+ s \([\d.]+x real time, "
                        r"[\d.]+x per clip\)\n", result.stdout), result.stdout
    model = tf.saved_model.load(saved)
    rate, frame = int(model.metadata()["sample_rate"]), int(model.metadata()["frame_size"])
    num_frames = math.ceil(0.3 * rate / frame)
    expected = model.sample(2, num_frames, 5)["waveform"].numpy()  # One call, not chunked.
    import matplotlib.image

    for k in range(2):
        got_rate, pcm = _read_wav(out / f"sample_5_{k}.wav")
        assert got_rate == rate and len(pcm) == num_frames * frame
        assert np.abs(pcm.astype(np.int32) - np.round(expected[k] * 32767)).max() <= 1
        image = matplotlib.image.imread(out / f"sample_5_{k}.png")
        assert image.shape[:2] == (500, 800) and image.std() > 0


def test_generate_audio_continues_a_recording(tf, exports, tmp_path):
    saved = exports["storn_normal"][1]
    prefix = tmp_path / "prefix.wav"
    t = np.arange(800) / 8000.0  # 0.1 s at 8 kHz: resampled to the model's 16 kHz.
    pcm = np.round(0.4 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2")
    with wave.open(str(prefix), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(8000)
        f.writeframes(pcm.tobytes())
    result = _check(_run_generate(
        [f"--saved_model={saved}", "--num_samples=2", "--seconds=0.1", "--seed=1", "--quiet",
         "--no_png", "--verbose",
         f"--prefix_wav={prefix}", f"--output_dir={tmp_path / 'out'}"], cwd=str(tmp_path)),
        "generate_audio --prefix_wav")
    # Shows every absl warning: the export holds no custom-gradient functions to warn about.
    assert "unsaved custom gradients" not in result.stderr, result.stderr
    assert "wrote 2 clip(s) of prefix.wav (0.10 s) continued by 0.10 s at 16000 Hz (storn/" \
        in result.stdout, result.stdout
    spec = importlib.util.spec_from_file_location("generate_audio", GENERATE)
    generate_audio = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate_audio)
    resampled = generate_audio.resample(pcm / 32768.0, 8000, 16000)
    assert len(resampled) == 1600
    model = tf.saved_model.load(saved)
    prefix_frames = ((resampled - float(model.metadata()["mean"]))
                     / float(model.metadata()["std"])).reshape(1, 8, 200).astype(np.float32)
    continuation = model.continue_from(np.repeat(prefix_frames, 2, 0), 8, 1)["waveform"].numpy()
    for k in range(2):
        rate, got = _read_wav(tmp_path / "out" / f"sample_1_{k}.wav")
        assert rate == 16000 and len(got) == 1600 + 1600
        assert np.abs(got[:1600] - np.round(np.clip(resampled, -1, 1) * 32767)).max() <= 1
        assert np.abs(got[1600:] - np.round(continuation[k] * 32767)).max() <= 1
        assert not (tmp_path / "out" / f"sample_1_{k}.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--seconds=0"], "generate_audio: error: --seconds=0.0: expected seconds in (0, 3600]"),
    (["--num_samples=0"], "generate_audio: error: --num_samples=0"),
    (["--temperature=-1"], "generate_audio: error: --temperature=-1.0"),
    (["--prefix_wav=missing.wav"], "generate_audio: error: --prefix_wav=missing.wav: no such file"),
])
def test_generate_audio_rejects_bad_arguments(exports, tmp_path, args, message):
    result = _run_generate([f"--saved_model={exports['rnn_gmm'][1]}",
                            f"--output_dir={tmp_path}", *args], cwd=str(tmp_path))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_generate_audio_rejects_a_missing_model(tmp_path):
    result = _run_generate([f"--saved_model={tmp_path}", f"--output_dir={tmp_path}"],
                           cwd=str(tmp_path))
    assert result.returncode == 2 and "no saved_model.pb there" in result.stderr, result.stderr


@pytest.mark.parametrize("script, allowed", [
    ("generate_audio.py", {"numpy", "tensorflow", "matplotlib"}),  # matplotlib: PNGs, optional.
    ("benchmark_generation.py", {"numpy", "generate_audio"})])
def test_export_programs_import_only_tensorflow_numpy_and_the_standard_library(script, allowed):
    import ast

    with open(os.path.join(PROJECT_ROOT, "export", script)) as f:
        tree = ast.parse(f.read())
    names = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for a in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module}
    assert names - set(sys.stdlib_module_names) == allowed, names


# --------------------------------------------------------------------------- avrnn-export
def test_export_serving_layout_and_errors(tf, exports, tmp_path):
    from avrnn_tf import export

    workdir = exports["rnn_gmm"][0]
    base = tmp_path / "serving"
    result = _check(run_cli("avrnn_tf.export", f"--workdir={workdir}", f"--export_dir={base}",
                            "--serving_version=auto", f"--checkpoint={EXPORT_STEPS}"),
                    "export --serving")
    assert (base / "1" / "saved_model.pb").exists(), result.stdout
    assert f"avrnn-export: wrote {base / '1'} (rnn/gmm, ckpt-{EXPORT_STEPS}," in result.stdout
    path, generator = export.export(workdir, str(base), serving_version="auto")  # The best one.
    assert path == str(base / "2") and (base / "2" / "saved_model.pb").exists()
    # Each signature is traced once (by tf.saved_model.save), not once before saving and again.
    assert {name: getattr(generator, name).experimental_get_tracing_count()
            for name in generator.SIGNATURES} == {name: 1 for name in generator.SIGNATURES}
    with open(os.path.join(workdir, "checkpoints", "best.json")) as f:
        assert tf.saved_model.load(path).metadata()["step"].numpy() == json.load(f)["step"]

    result = run_cli("avrnn_tf.export", f"--workdir={tmp_path / 'nowhere'}",
                     f"--export_dir={tmp_path / 'x'}")
    assert result.returncode == 2 and "does not exist" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    for kwargs, message in [
        (dict(export_dir=str(tmp_path / "x"), checkpoint="ckpt-999"),
         rf"checkpoint 'ckpt-999' not found .*\(available: ckpt-{EXPORT_STEPS}, best, latest\)"),
        (dict(export_dir=str(base / "1")), "exists and is not empty"),
        (dict(export_dir=str(base), serving_version="v2"), "expected 'auto' or an integer >= 1"),
    ]:
        with pytest.raises(export.ExportError, match=message):
            export.export(workdir, **kwargs)


def test_export_detects_weights_left_at_their_initial_values(tf, exports):
    """A restore that silently skips weights (fresh initial values) is an error, not an export."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import export
    from avrnn_tf import registry
    from avrnn_tf import restore

    run = export.load_network(exports["vrnn_normal"][0])
    network, config, stats, path = run.network, run.config, run.stats, run.checkpoint
    restore.verify_restored(network, path)  # the restored network passes
    fresh = registry.create_network(config_lib.model_spec(config, stats["frame_size"]))
    with pytest.raises(restore.RestoreError, match="left .* weight"):
        restore.verify_restored(fresh, path)


def test_score_and_reconstruct_ignore_padded_frames(tf):
    """Z-Forcing's backward LSTM used to read the padding in score/reconstruct (the mask was not
    passed to frame_terms/trajectory): a padded sequence must score as the unpadded one."""
    from avrnn_tf import export, models, registry

    net = registry.create_network(models.ModelSpec(kind="zforcing", emission="normal", x_dim=4,
                                                   h_dim=6, z_dim=2, mlp_units=5))
    gen = export.Generator(net, {"sample_rate": 8000, "frame_size": 4, "mean": 0.0, "std": 1.0})
    x = tf.random.stateless_normal([1, 6, 4], seed=[8, 8])
    padded = tf.concat([x, 40.0 * tf.ones([1, 3, 4])], axis=1)
    mask = tf.constant([[1.0] * 6 + [0.0] * 3])
    seed = tf.constant(3)
    full, cut = gen.score(x, tf.ones([1, 6]), seed, 1), gen.score(padded, mask, seed, 1)
    for key in ("elbo", "log_px", "kl"):
        np.testing.assert_allclose(cut[key].numpy(), full[key].numpy(), rtol=1e-5, atol=1e-4)
    a, b = gen.reconstruct(x, tf.ones([1, 6]), seed), gen.reconstruct(padded, mask, seed)
    np.testing.assert_allclose(b["log_px"].numpy()[:, :6], a["log_px"].numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(b["mean"].numpy()[:, :6], a["mean"].numpy(), rtol=1e-5, atol=1e-5)
