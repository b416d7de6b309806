"""Property tests for the built-in synthetic speech-like corpus (avrnn_tf.data.synthetic).

The checks are about what the audio must look like (periodic voiced stretches at a
speech pitch, speech-like spectral tilt, determinism, bounds), not golden values
copied from the generator's output.
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

from avrnn_tf.data.synthetic import (DEFAULT_SAMPLE_RATE, synthesize_corpus,
                                     synthesize_utterance)

SR = DEFAULT_SAMPLE_RATE
F0_MIN, F0_MAX = 80.0, 250.0
VOICED_NCCF = 0.9  # periodicity threshold; filtered noise stays well below it


@pytest.fixture(scope="module")
def corpus():
    """A small default corpus (kept small so the test file runs quickly)."""
    return synthesize_corpus(5, seed=0)


def periodicity(x, sr=SR, win=0.03, hop=0.01):
    """Per 30-ms window: (best normalised cross-correlation, f0 in Hz) over 80-250 Hz lags.

    For each window the correlation with the same-length stretch ``lag`` samples later
    is computed for every lag in [sr/250, sr/80]; the f0 reported is that of the first
    local peak within 0.05 of the best peak (avoids picking a multiple of the period).
    """
    x = np.asarray(x, dtype=np.float64)
    w, lo, hi = int(win * sr), int(np.floor(sr / F0_MAX)), int(np.ceil(sr / F0_MIN))
    out = []
    for s in range(0, x.size - w - hi, int(hop * sr)):
        frame = x[s:s + w]
        lagged = sliding_window_view(x[s + lo:s + hi + w], w)
        energy = np.sqrt((frame @ frame) * np.sum(lagged * lagged, axis=1)) + 1e-20
        r = lagged @ frame / energy
        peaks = np.flatnonzero((r[1:-1] >= r[:-2]) & (r[1:-1] >= r[2:])) + 1
        if peaks.size == 0:
            out.append((r.max(), np.nan))
            continue
        first = peaks[r[peaks] >= r[peaks].max() - 0.05][0]
        out.append((r[first], sr / (lo + first)))
    return np.array(out).reshape(-1, 2)


def median_pitch(x, sr=SR):
    """Median f0 over clearly periodic windows (nan if none)."""
    p = periodicity(x, sr)
    voiced = p[p[:, 0] > VOICED_NCCF]
    return float(np.median(voiced[:, 1])) if len(voiced) else float("nan")


def test_detector_rejects_noise():
    """Calibrate the helper: white and resonant noise must not count as voiced."""
    rng = np.random.default_rng(123)
    noise = rng.standard_normal(SR)
    b, a = signal.iirpeak(300.0, 3.0, fs=SR)
    for x in (noise, signal.lfilter(b, a, noise)):
        assert periodicity(x)[:, 0].max() < VOICED_NCCF


def test_same_seed_and_index_is_bit_identical():
    a = synthesize_utterance(3, seed=7)
    b = synthesize_utterance(3, seed=7)
    assert a.dtype == b.dtype and np.array_equal(a, b)


def test_different_seeds_and_indices_differ():
    base = synthesize_utterance(0, seed=0)
    for other in (synthesize_utterance(0, seed=1), synthesize_utterance(1, seed=0)):
        assert other.shape != base.shape or not np.allclose(other, base)


def test_utterance_does_not_depend_on_corpus_size():
    small = synthesize_corpus(3, seed=5)
    large = synthesize_corpus(10, seed=5)
    for (name_s, x_s), (name_l, x_l) in zip(small, large[:3]):
        assert name_s == name_l
        assert np.array_equal(x_s, x_l)
    assert np.array_equal(large[7][1], synthesize_utterance(7, seed=5))


def test_names():
    names = [name for name, _ in synthesize_corpus(3, seed=0, max_seconds=0.6)]
    assert names == ["synthetic_0000", "synthetic_0001", "synthetic_0002"]


@pytest.mark.parametrize("sample_rate,min_s,max_s", [(SR, 0.5, 2.0), (8000, 0.2, 0.4),
                                                     (4000, 0.3, 0.3)])
def test_samples_are_bounded_float32_of_valid_length(corpus, sample_rate, min_s, max_s):
    clips = ([x for _, x in corpus] if (sample_rate, min_s, max_s) == (SR, 0.5, 2.0) else
             [x for _, x in synthesize_corpus(4, 1, sample_rate, min_s, max_s)])
    for x in clips:
        assert x.dtype == np.float32 and x.ndim == 1
        assert np.all(np.isfinite(x))
        assert np.max(np.abs(x)) <= 0.95
        assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 0.01  # not near-silent
        assert min_s * sample_rate - 1 <= x.size <= max_s * sample_rate + 1


def test_voiced_parts_have_speech_pitch(corpus):
    aperiodic = []
    for _, x in corpus:
        p = periodicity(x)
        voiced = p[p[:, 0] > VOICED_NCCF]
        assert len(voiced) > 0, "no clearly periodic 30-ms window"
        assert np.all((voiced[:, 1] >= F0_MIN - 1) & (voiced[:, 1] <= F0_MAX + 1))
        aperiodic.append(np.mean(p[:, 0] < 0.5))
    # Unvoiced/silent stretches exist too: the corpus is not one long vowel.
    assert np.mean(aperiodic) > 0.05


def test_long_term_spectrum_is_speech_like(corpus):
    x = np.concatenate([clip for _, clip in corpus]).astype(np.float64)
    freqs, psd = signal.welch(x, SR, nperseg=1024)
    low_fraction = psd[freqs < 4000].sum() / psd.sum()
    assert low_fraction > 0.8  # white noise would give ~0.5
    flatness = np.exp(np.mean(np.log(psd[1:]))) / np.mean(psd[1:])
    assert 1e-4 < flatness < 0.5  # neither a pure tone (~0) nor white noise (~1)


def test_voiced_spectral_envelope_moves(corpus):
    """Formants glide between vowel targets, so the balance between the F1 region
    (200-900 Hz) and the F2/F3 region (900-3000 Hz) changes across voiced windows.
    Fixed or missing formants leave this balance nearly constant."""
    w, hop = int(0.03 * SR), int(0.01 * SR)
    freqs = np.fft.rfftfreq(1024, 1.0 / SR)
    f1_band, f2_band = (freqs >= 200) & (freqs < 900), (freqs >= 900) & (freqs < 3000)
    spreads = []
    for _, x in corpus:
        ratios = []
        for k, (r, _) in enumerate(periodicity(x)):
            if r > VOICED_NCCF:
                power = np.abs(np.fft.rfft(x[k * hop:k * hop + w] * np.hanning(w), 1024)) ** 2
                ratios.append(10 * np.log10(power[f1_band].sum() / power[f2_band].sum()))
        spreads.append(np.std(ratios))
    assert np.median(spreads) > 2.5  # dB


def test_length_and_pitch_vary_across_utterances(corpus):
    lengths = [x.size for _, x in corpus]
    assert len(set(lengths)) == len(lengths)
    pitches = np.array([median_pitch(x) for _, x in corpus])
    assert np.all(np.isfinite(pitches))
    assert pitches.max() / pitches.min() > 1.25


@pytest.mark.parametrize("kwargs,name", [
    (dict(num_utterances=0), "num_utterances"),
    (dict(num_utterances=2, sample_rate=3000), "sample_rate"),
    (dict(num_utterances=2, min_seconds=0.0), "min_seconds"),
    (dict(num_utterances=2, min_seconds=-1.0), "min_seconds"),
    (dict(num_utterances=2, min_seconds=1.0, max_seconds=0.5), "max_seconds"),
])
def test_corpus_argument_validation_names_argument(kwargs, name):
    with pytest.raises(ValueError, match=name) as info:
        synthesize_corpus(**kwargs)
    assert str(kwargs[name]) in str(info.value)


@pytest.mark.parametrize("kwargs,name", [
    (dict(sample_rate=1000), "sample_rate"),
    (dict(min_seconds=0.0), "min_seconds"),
    (dict(min_seconds=2.0, max_seconds=1.0), "max_seconds"),
])
def test_utterance_argument_validation_names_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        synthesize_utterance(0, **kwargs)
