"""What a training run leaves for TensorBoard and on disk to compare runs: config text, hparams,
spectrogram images next to the audio, labelled sample PNGs (real event files of a real run)."""

import json
import os

import numpy as np
import pytest

from conftest import read_events, run_cli

TINY = "configs/vrnn_gauss.py:tiny"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run in <parent>/tiny (60 steps, audio at 30 and 60, one final sample)."""
    workdir = tmp_path_factory.mktemp("runs") / "tiny"
    result = run_cli("avrnn_tf.train", f"--config={TINY}", f"--workdir={workdir}", "--progress=none",
                     "--config.model.h_dim=24")
    assert result.returncode == 0, result.stderr
    return workdir, result


def plugin_data(logdir, tag):
    """The plugin metadata bytes of every event with `tag`."""
    import glob

    import tensorflow as tf

    found = []
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            found += [v.metadata.plugin_data.content for v in event.summary.value if v.tag == tag]
    return found


def test_config_text_summary_is_the_saved_config(run):
    workdir, _ = run
    events = read_events(str(workdir / "tensorboard"))
    [(step, text)] = events["config"]
    body = text.item().decode()
    assert step == 0 and body.startswith("```\n") and body.endswith("\n```")
    assert json.loads(body[4:-4]) == json.load(open(workdir / "config.json"))


def test_hparams_hold_the_config_fields_and_name_validation_metrics(run):
    from tensorboard.plugins.hparams import metadata

    workdir, _ = run
    logdir = str(workdir / "tensorboard")
    config = json.load(open(workdir / "config.json"))
    [start] = [metadata.parse_session_start_info_plugin_data(c)
               for c in plugin_data(logdir, metadata.SESSION_START_INFO_TAG)]
    hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
               for k, v in start.hparams.items()}
    assert hparams["model.h_dim"] == 24 == config["model"]["h_dim"]  # The command-line override.
    assert hparams["model.kind"] == "vrnn" and hparams["train.steps"] == config["train"]["steps"]
    assert hparams["train.deterministic"] is config["train"]["deterministic"]
    leaves = {f"{group}.{key}" for group, fields in config.items() for key in fields}
    assert set(hparams) == leaves

    [experiment] = [metadata.parse_experiment_plugin_data(c)
                    for c in plugin_data(logdir, metadata.EXPERIMENT_TAG)]
    assert {h.name for h in experiment.hparam_infos} == leaves
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    scalars = read_events(logdir)
    assert metric_tags and all(tag.startswith("valid/") for tag in metric_tags)
    for tag in metric_tags:  # Each metric is a validation scalar with its final value at the end.
        assert [s for s, _ in scalars[tag]][-1] == 60


def test_spectrogram_images_are_written_next_to_the_audio(run):
    import tensorflow as tf

    workdir, _ = run
    events = read_events(str(workdir / "tensorboard"))
    audio_steps = [s for s, _ in events["audio/samples"]]
    assert audio_steps == [30, 60]
    assert [s for s, _ in events["audio/spectrograms"]] == audio_steps
    for _, value in events["audio/spectrograms"]:
        width, height, png = value  # tf.summary.image: [width, height, encoded image...].
        image = tf.io.decode_png(png).numpy()
        assert image.shape == (int(height), int(width), 3) and image.std() > 0


def test_final_samples_have_labelled_pngs_and_tensorboard_points_at_the_parent(run):
    import matplotlib.image

    workdir, result = run
    wavs = sorted(p for p in os.listdir(workdir / "samples") if p.endswith(".wav"))
    assert wavs == ["step_60_0.wav"]
    image = matplotlib.image.imread(workdir / "samples" / "step_60_0.png")
    assert image.shape[:2] == (500, 800) and np.std(image) > 0
    assert f"tensorboard --logdir {workdir.parent}\n" in result.stdout
