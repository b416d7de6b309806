"""Export: train briefly with the CLI, `avrnn-export`, then use the SavedModel without avrnn_tf.

The exported functions are checked in a separate interpreter that cannot import avrnn_tf
(tests/standalone_consumer.py, run with `python -S`), and its outputs are compared here with the
training-side code: `score` against the ELBO objective (objectives.elbo) for the same noise,
`sample` against the `SequenceNetwork.sample` call the training loop uses for its TensorBoard audio.
"""

import contextlib
import fcntl
import importlib.util
import json
import math
import os
import re
import site
import subprocess
import sys
import wave

import numpy as np
import pytest

from conftest import PROJECT_ROOT, run_cli

MODELS = {  # name -> config; the family's three kinds (A-VRNN exports as its vrnn network).
    "vrnn_gauss": "configs/vrnn_gauss.py:tiny",
    "rnn_gmm": "configs/rnn_gmm.py:tiny",
    "storn": "configs/storn.py:tiny",
}
N, T, SEED = 3, 7, 11  # As in standalone_consumer.py.
SALT = 7  # export.SEED_SALT: the seed pair of seed k is [k, 7].
SITE_DIRS = os.pathsep.join(site.getsitepackages())
GENERATE = os.path.join(PROJECT_ROOT, "export", "generate_audio.py")


@contextlib.contextmanager
def _shared_dir(tmp_path_factory, name):
    """A directory shared by all pytest-xdist workers, built once under a file lock."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / name
    path.mkdir(exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check(result, what):
    assert result.returncode == 0, f"{what} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _train_args(name, workdir):
    return [f"--config={MODELS[name]}", f"--workdir={workdir}", "--config.train.steps=3",
            "--config.train.num_final_samples=0", "--config.data.synthetic_utterances=12"]


@pytest.fixture(scope="session")
def exported(tf, tmp_path_factory):
    """{name: (workdir, saved_model_dir)} after 3 training steps and an export.

    The first model goes through the command lines (avrnn-train, avrnn-export) as a user runs
    them; the others through the same functions in this process, to spare two TensorFlow starts.
    """
    from avrnn_tf import export
    from avrnn_tf import loop

    with _shared_dir(tmp_path_factory, "export_models") as root:
        out = {}
        for i, name in enumerate(MODELS):
            workdir, saved = root / f"{name}_work", root / f"{name}_saved"
            if not (saved / "saved_model.pb").exists():
                if i == 0:
                    _check(run_cli("avrnn_tf.train", *_train_args(name, workdir), "--progress=none"),
                           f"training {name}")
                    result = _check(run_cli("avrnn_tf.export", f"--workdir={workdir}",
                                            f"--export_dir={saved}"), f"exporting {name}")
                    assert "avrnn-export: wrote" in result.stdout
                else:
                    path, variant = MODELS[name].split(":")
                    spec = importlib.util.spec_from_file_location(
                        f"config_{name}", os.path.join(PROJECT_ROOT, path))
                    module = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(module)
                    config = module.get_config(variant)
                    config.train.update(steps=3, num_final_samples=0)  # As _train_args.
                    config.data.synthetic_utterances = 12
                    loop.train_and_evaluate(config, str(workdir), verbose=0)
                    export.export(str(workdir), str(saved))
            out[name] = (str(workdir), str(saved))
        return out


def _standalone(args, cwd, timeout=600):
    """Runs python -S (no site: avrnn_tf's editable install invisible) with site-packages added."""
    return subprocess.run([sys.executable, "-S", "-E", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.fixture(scope="session")
def consumer_outputs(exported, tmp_path_factory):
    """Runs tests/standalone_consumer.py over every export; returns its output directory."""
    with _shared_dir(tmp_path_factory, "export_consumer") as out:
        if not (out / "ok").exists():
            script = os.path.join(PROJECT_ROOT, "tests", "standalone_consumer.py")
            result = _standalone([script, SITE_DIRS, str(out)]
                                 + [f"{k}={v[1]}" for k, v in exported.items()], cwd=str(out))
            assert result.returncode == 0 and "standalone ok" in result.stdout, (
                f"standalone check failed:\n{result.stdout}\n{result.stderr}")
            (out / "ok").write_text("ok")
        return out


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
    return _standalone(["-c", code, SITE_DIRS, GENERATE, *args], cwd=cwd)


def _training_side(tf, workdir):
    """The trainer as the training loop builds and restores it (full checkpoint, optimizer too)."""
    import ml_collections

    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf import registry

    with open(os.path.join(workdir, "config.json")) as f:
        config = ml_collections.ConfigDict(json.load(f))
    with open(os.path.join(workdir, "data_stats.json")) as f:
        stats = json.load(f)
    network = registry.create_network(config_lib.model_spec(config, stats["frame_size"]))
    trainer = loop.build_trainer(config, network)
    checkpoint = tf.train.Checkpoint(network=network, model=trainer, optimizer=trainer.optimizer)
    checkpoint.restore(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))) \
        .assert_existing_objects_matched()
    assert int(trainer.optimizer.iterations.numpy()) == 3
    return trainer, stats


# ----------------------------------------------------------------------------- standalone
def test_standalone_process_calls_every_signature(consumer_outputs):
    for name in MODELS:
        assert (consumer_outputs / f"{name}.npz").exists()


@pytest.mark.parametrize("name", list(MODELS))
def test_exported_score_equals_training_elbo(tf, exported, consumer_outputs, name):
    trainer, _ = _training_side(tf, exported[name][0])
    saved = np.load(consumer_outputs / f"{name}.npz")
    out = trainer.objective(trainer.network, tf.constant(saved["x"]), tf.constant(saved["mask"]),
                            tf.constant([SEED, SALT], tf.int32), None)
    for key in ("elbo", "log_px", "kl"):
        np.testing.assert_allclose(saved[f"score_{key}"], out["per_frame"][key].numpy(), rtol=1e-5,
                                   atol=1e-3)


@pytest.mark.parametrize("name", list(MODELS))
def test_exported_sample_is_the_training_sampler(tf, exported, consumer_outputs, name):
    """The frames a plain-TF process sampled are those of loop.Run's audio sampler."""
    trainer, _ = _training_side(tf, exported[name][0])
    sampler = tf.function(trainer.network.sample)  # As loop.Run.sampler.
    frames = sampler(N, T, tf.constant([SEED, SALT], tf.int32)).numpy()
    np.testing.assert_allclose(np.load(consumer_outputs / f"{name}.npz")["frames"], frames,
                               atol=1e-5)


@pytest.mark.parametrize("name", ["vrnn_gauss", "storn"])
def test_exported_iwae_is_the_log_mean_exp_of_trajectory_weights(tf, exported, name):
    """score's IWAE-K equals log (1/K) sum_k exp(log w_k), recomputed with the training network."""
    trainer, stats = _training_side(tf, exported[name][0])
    model = tf.saved_model.load(exported[name][1])
    k, d = 4, stats["frame_size"]
    rng = np.random.RandomState(1)
    x = rng.normal(size=[2, 5, d]).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.float32)
    got = model.score(x, mask, SEED, k)["iwae"].numpy()

    net = trainer.network
    xk = np.tile(x, [k, 1, 1])
    seed = tf.random.experimental.stateless_fold_in(tf.constant([SEED, SALT], tf.int32), 1)
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


def test_generate_audio_writes_wavs_and_pngs(tf, exported, tmp_path):
    saved = exported["vrnn_gauss"][1]
    out = tmp_path / "out"
    result = _run_generate([f"--saved_model={saved}", "--num_samples=2", "--seconds=0.3",
                            "--seed=5", "--chunk_seconds=0.1", f"--output_dir={out}"],
                           cwd=str(tmp_path))
    _check(result, "generate_audio")
    assert "WARNING" not in result.stderr, result.stderr  # Only the progress bar.
    assert re.fullmatch(r"generate_audio: wrote 2 clip\(s\) of 0\.30 s at 16000 Hz \(vrnn/normal, "
                        r"ckpt-3, seed 5\) to \S+ in [\d.]+ s \([\d.]+x real time, [\d.]+x per clip\)\n",
                        result.stdout), result.stdout
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


def test_generate_audio_continues_a_recording(tf, exported, tmp_path):
    saved = exported["storn"][1]
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
def test_generate_audio_rejects_bad_arguments(exported, tmp_path, args, message):
    result = _run_generate([f"--saved_model={exported['rnn_gmm'][1]}",
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
def test_export_serving_layout_and_errors(tf, exported, tmp_path):
    from avrnn_tf import export

    workdir = exported["rnn_gmm"][0]
    base = tmp_path / "serving"
    result = _check(run_cli("avrnn_tf.export", f"--workdir={workdir}", f"--export_dir={base}",
                            "--serving_version=auto", "--checkpoint=3"), "export --serving")
    assert (base / "1" / "saved_model.pb").exists(), result.stdout
    path, _ = export.export(workdir, str(base), serving_version="auto")
    assert path == str(base / "2") and (base / "2" / "saved_model.pb").exists()
    assert tf.saved_model.load(path).metadata()["step"].numpy() == 3

    result = run_cli("avrnn_tf.export", f"--workdir={tmp_path / 'nowhere'}",
                     f"--export_dir={tmp_path / 'x'}")
    assert result.returncode == 2 and "does not exist" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    for kwargs, message in [
        (dict(export_dir=str(tmp_path / "x"), checkpoint="ckpt-999"),
         r"checkpoint 'ckpt-999' not found .*\(available: ckpt-3, best, latest\)"),
        (dict(export_dir=str(base / "1")), "exists and is not empty"),
        (dict(export_dir=str(base), serving_version="v2"), "expected 'auto' or an integer >= 1"),
    ]:
        with pytest.raises(export.ExportError, match=message):
            export.export(workdir, **kwargs)


def test_export_detects_weights_left_at_their_initial_values(tf, exported):
    """A restore that silently skips weights (fresh initial values) is an error, not an export."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import export
    from avrnn_tf import registry
    from avrnn_tf import restore

    run = export.load_network(exported["vrnn_gauss"][0])
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
