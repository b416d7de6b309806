"""The figures the package writes (PNG files and TensorBoard images), labelled the same way.

Every figure comes from `new_figure`, which titles it with the model, the training step and the
seed; audio clips are drawn by `clip_figure`: the waveform (amplitude over time in s) above its
spectrogram (frequency in Hz over time in s, colour bar in dBFS). Figures are matplotlib `Figure`
objects drawn with the Agg backend, without pyplot (no global state, no display needed).

export/generate_audio.py draws the same clip figure with its own code: it runs without this
package (TensorFlow, numpy and, for its PNGs, matplotlib).
"""

import numpy as np

DYNAMIC_RANGE_DB = 80.0  # The spectrogram's colour scale spans this many dB below its maximum.


def title(model, step, seed, what=""):
    """'<what> - <model>, step <step>, seed <seed>': the title every figure carries."""
    return f"{what + ' - ' if what else ''}{model}, step {step}, seed {seed}"


def new_figure(title_text, rows=1, cols=1, width=8.0, height=4.0, **subplots_kw):
    """(Figure, axes) with a suptitle; `axes` as matplotlib's `Figure.subplots` returns them."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = fig.subplots(rows, cols, **subplots_kw)
    fig.suptitle(title_text, fontsize=10)
    return fig, axes


def spectrogram(wave, sample_rate):
    """(times [F] s, frequencies [K] Hz, level [F, K] dBFS) of a Hann-window STFT of ~32 ms.

    The level is 20 log10 of the magnitude scaled so that a full-scale sine peaks at 0 dBFS.
    """
    n_fft = 1 << max(6, int(round(np.log2(max(64, 0.032 * sample_rate)))))
    hop = n_fft // 4
    x = np.pad(np.asarray(wave, np.float64), [0, max(0, n_fft - len(wave))])
    starts = np.arange(0, len(x) - n_fft + 1, hop)
    window = np.hanning(n_fft)
    frames = x[starts[:, None] + np.arange(n_fft)[None, :]] * window[None, :]
    magnitude = np.abs(np.fft.rfft(frames, axis=1)) * 2.0 / window.sum()
    level = 20.0 * np.log10(np.maximum(magnitude, 1e-10))
    times = (starts + n_fft / 2) / sample_rate
    return times, np.fft.rfftfreq(n_fft, 1.0 / sample_rate), level


def clip_figure(wave, sample_rate, title_text):
    """A Figure of one clip [samples] in [-1, 1]: waveform above spectrogram, shared time axis."""
    fig, (wave_ax, spec_ax) = new_figure(title_text, rows=2, height=5.0, sharex=True,
                                         height_ratios=[1, 2])
    wave = np.asarray(wave, np.float32)
    wave_ax.plot(np.arange(len(wave)) / sample_rate, wave, lw=0.5, color="#1f3c88")
    wave_ax.set(ylabel="amplitude", ylim=(-1.0, 1.0))
    times, freqs, level = spectrogram(wave, sample_rate)
    top = float(level.max())
    mesh = spec_ax.pcolormesh(times, freqs, level.T, shading="nearest", cmap="magma",
                              vmin=top - DYNAMIC_RANGE_DB, vmax=top)
    spec_ax.set(xlabel="time (s)", ylabel="frequency (Hz)", xlim=(0.0, len(wave) / sample_rate))
    fig.colorbar(mesh, ax=[wave_ax, spec_ax], label="level (dBFS)")
    return fig


def save(fig, path):
    """Writes the figure as a PNG."""
    fig.savefig(path, format="png")


def to_rgb(fig):
    """The rendered figure as uint8 RGB [H, W, 3] (for tf.summary.image)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def clip_figures(waves, sample_rate, model, step, seed):
    """One titled `clip_figure` per generated clip of waves [N, samples] ("clip k - ...")."""
    return [clip_figure(wave, sample_rate, title(model, step, seed, f"clip {k}"))
            for k, wave in enumerate(waves)]
