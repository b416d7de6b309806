"""Labelled figures (avrnn_tf/figures.py, export/generate_audio.py, reproduce_paper.py), checked on
matplotlib's figure objects rather than pixels."""

import importlib.util
import os

import numpy as np
import pytest

from conftest import PROJECT_ROOT
from avrnn_tf import figures

RATE = 16000


def generate_audio_module():
    spec = importlib.util.spec_from_file_location(
        "generate_audio", os.path.join(PROJECT_ROOT, "export", "generate_audio.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sine(freq, amplitude=1.0, seconds=0.5):
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * RATE)) / RATE)).astype(
        np.float32)


def test_spectrogram_of_a_sine_peaks_at_its_frequency_and_level():
    # 1000 Hz is a whole bin of the 512-point STFT at 16 kHz: a full-scale sine is 0 dBFS there,
    # a half-scale one 20 log10(1/2) = -6.02 dB.
    for amplitude, level in ((1.0, 0.0), (0.5, -6.0206)):
        times, freqs, db = figures.spectrogram(sine(1000, amplitude), RATE)
        assert freqs[np.argmax(db.max(axis=0))] == 1000.0
        assert db.max() == pytest.approx(level, abs=1e-3)
        assert freqs[-1] == RATE / 2 and 0 < times[0] < times[-1] < 0.5


def clip_figures():
    """(implementation name, Figure) of the package's and generate_audio's clip figures."""
    wave, title = sine(440, 0.3), figures.title("vrnn/normal", 1234, 7, "clip 0")
    return [("avrnn_tf.figures", figures.clip_figure(wave, RATE, title)),
            ("generate_audio", generate_audio_module().clip_figure(wave, RATE, title))]


def parts(fig):
    """(waveform axes, spectrogram axes, colour bar axes) of a clip figure."""
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    meshes = [ax for ax in fig.axes if ax.collections and ax not in colorbars]
    lines = [ax for ax in fig.axes if ax.lines]
    assert len(meshes) == 1 and len(colorbars) == 1 and len(lines) == 1, fig.axes
    return lines[0], meshes[0], colorbars[0]


@pytest.mark.parametrize("name, fig", clip_figures())
def test_clip_figure_has_time_frequency_and_db_axes_and_a_title(name, fig):
    wave_ax, spec_ax, colorbar_ax = parts(fig)
    assert spec_ax.get_xlabel() == "time (s)" and spec_ax.get_ylabel() == "frequency (Hz)"
    assert wave_ax.get_ylabel() == "amplitude"
    assert "dB" in colorbar_ax.get_ylabel()
    assert fig.get_suptitle() == "clip 0 - vrnn/normal, step 1234, seed 7"
    assert spec_ax.get_xlim() == pytest.approx((0.0, 0.5))  # Seconds, not samples or frames.
    assert spec_ax.get_ylim()[1] == pytest.approx(RATE / 2, rel=0.01)  # Hz up to Nyquist.


def test_generate_audio_draws_the_same_spectrogram_as_the_package():
    (_, ours), (_, theirs) = clip_figures()
    a, b = parts(ours)[1].collections[0], parts(theirs)[1].collections[0]
    np.testing.assert_allclose(a.get_array(), b.get_array())
    assert a.get_clim() == b.get_clim()


def test_to_rgb_renders_the_figure():
    fig = figures.clip_figure(sine(300), RATE, "t")
    image = figures.to_rgb(fig)
    assert image.dtype == np.uint8 and image.shape == (500, 800, 3) and image.std() > 0


def test_reproduce_paper_figures_are_labelled_and_titled(monkeypatch, tmp_path):
    from absl import flags

    from avrnn_tf.experiments import reproduce_paper

    saved = []
    monkeypatch.setattr(figures, "save", lambda fig, path: saved.append((fig, path)))
    parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.mark_as_parsed()  # The flags' defaults.
    try:
        check_reproduce_figures(reproduce_paper, saved, tmp_path)
    finally:
        if not parsed:
            flags.FLAGS.unparse_flags()


def reproduce_curves():
    """Training curves of a VRNN-Gauss and a clipped-WGAN A-VRNN run, as read_scalars returns them."""
    steps = np.arange(25, 101, 25)
    ones = np.ones(len(steps))
    return {"vrnn_gauss": {"train/elbo_per_frame": (steps, -ones), "train/kl_per_frame": (steps, ones)},
            "avrnn_wgan": {tag: (steps, ones) for tag in (
                "train/recon_per_frame", "train/elbo_per_frame", "train/kl_per_frame",
                "train/critic_loss", "train/adversarial_loss", "train/grad_norm_recon",
                "train/grad_norm_critic", "train/grad_norm_adversarial")}}


def check_reproduce_figures(reproduce_paper, saved, tmp_path):
    curves = reproduce_curves()
    reproduce_paper.plot(curves, str(tmp_path))
    assert [os.path.basename(p) for _, p in saved] == ["fig2_elbo_vs_reconstruction.png",
                                                       "fig3_critic_adversarial.png"]
    seed = reproduce_paper.experiment_config("vrnn_gauss").train.seed
    for fig, _ in saved:
        assert fig.get_suptitle().endswith(f", step 100, seed {seed}")
        for ax in fig.axes:
            assert ax.get_xlabel() == "training step" and ax.get_ylabel() and ax.get_title()


def test_reproduce_paper_draws_the_kl_split_and_both_critics_when_diagnosed(monkeypatch, tmp_path):
    from absl import flags

    from avrnn_tf.experiments import reproduce_paper

    saved = []
    monkeypatch.setattr(figures, "save", lambda fig, path: saved.append((fig, path)))
    curves = reproduce_curves()
    point = lambda step, agg, info, fresh, training: {
        "step": step, "kl_per_frame": agg + info, "aggregate_kl": agg, "information_term": info,
        "active_units": 4, "fresh_w": fresh, "training_w": training}
    diagnosed = {"avrnn_wgan": [point(50, 30.0, 70.0, 20.0, 0.5), point(100, 40.0, 90.0, 25.0, 0.6)],
                 "vrnn_gauss": [point(50, 1.0, 9.0, 1.5, None), point(100, 1.0, 10.0, 1.4, None)]}
    parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.mark_as_parsed()
    try:
        reproduce_paper.plot(curves, str(tmp_path), diagnosed)
    finally:
        if not parsed:
            flags.FLAGS.unparse_flags()
    (fig2, _), (fig3, _) = saved
    split = fig2.axes[2]
    drawn = {line.get_label(): list(line.get_ydata()) for line in split.get_lines()}
    label = reproduce_paper.label
    assert drawn[f"{label('avrnn_wgan')}: pooled (aggregate) KL"] == [30.0, 40.0]
    assert drawn[f"{label('avrnn_wgan')}: information term"] == [70.0, 90.0]
    assert drawn[f"{label('vrnn_gauss')}: information term"] == [9.0, 10.0]
    w = fig3.axes[2]
    drawn = {line.get_label(): list(line.get_ydata()) for line in w.get_lines()}
    assert drawn[f"{label('avrnn_wgan')}: fresh WGAN-GP critic"] == [20.0, 25.0]
    assert drawn[f"{label('avrnn_wgan')}: its training critic (rescaled)"] == [0.5, 0.6]
    assert f"{label('vrnn_gauss')}: its training critic (rescaled)" not in drawn  # VRNN has none.
    for ax in (split, w):
        assert ax.get_xlabel() == "training step" and ax.get_ylabel() and ax.get_title()
