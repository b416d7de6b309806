"""Built-in synthetic, speech-like corpus (the package's default training data).

Why it exists: the training and evaluation code should run end to end with no
download and no licensed corpus.  This module generates, from a seed alone, a
deterministic set of short clips that share the broad character of raw speech:

* quasi-periodic *voiced* stretches: a glottal-pulse source whose pitch follows
  a smooth per-utterance contour (80-250 Hz, with declination, drift and
  jitter) filtered by 3-4 formant resonators whose frequencies glide between
  vowel targets;
* noisy *unvoiced* stretches: noise shaped by a high-frequency resonance
  (fricative-like), plus short silences that may end in a stop burst;
* smooth onsets/offsets, per-segment loudness changes, a faint noise floor and
  a random overall gain (peak |x| <= 0.95, float32).

Limits: this is *not* speech.  There is no language, no coarticulation model
beyond linear formant interpolation, no nasals or realistic glottal dynamics.
Log-likelihoods measured on this corpus are not comparable with published
TIMIT/Blizzard numbers; use it for smoke tests, debugging and demos.

Each utterance is generated from its own RNG seeded with ``(seed, index)``, so
utterance ``i`` is bit-identical whatever the corpus size.  Generation uses
vectorised numpy plus ``scipy.signal`` filters; the time-varying formant filter
runs over short blocks (5 ms) with its state carried from block to block.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

DEFAULT_SAMPLE_RATE = 16000

F0_RANGE = (80.0, 250.0)  # hard limits of the pitch contour, Hz
BLOCK_SECONDS = 0.005  # formant-update interval of the time-varying filter
SEGMENT_SECONDS = (0.04, 0.20)  # phone segment durations
PEAK_LIMIT = 0.95

# Approximate adult (male) vowel formant targets F1..F4 in Hz, in the range of the
# classic American-English vowel measurements, and typical formant bandwidths in Hz.
_VOWELS = np.array([
    [270, 2290, 3010, 3700], [390, 1990, 2550, 3600], [530, 1840, 2480, 3500],
    [660, 1720, 2410, 3500], [730, 1090, 2440, 3400], [570, 840, 2410, 3300],
    [440, 1020, 2240, 3300], [300, 870, 2240, 3300], [640, 1190, 2390, 3400],
    [490, 1350, 1690, 3300],
], dtype=np.float64)
_BANDWIDTHS = np.array([70.0, 100.0, 140.0, 200.0])

_VOICED, _FRICATIVE, _SILENCE = 0, 1, 2


def _check_args(sample_rate, min_seconds, max_seconds, **nonneg):
    """Raise ValueError naming the offending argument and its value."""
    if sample_rate < 4000:
        raise ValueError(f"sample_rate must be >= 4000, got {sample_rate!r}")
    if not min_seconds > 0:
        raise ValueError(f"min_seconds must be > 0, got {min_seconds!r}")
    if not max_seconds >= min_seconds:
        raise ValueError(f"max_seconds must be >= min_seconds ({min_seconds!r}), "
                         f"got {max_seconds!r}")
    for name, value in nonneg.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")


def _smooth_noise(rng, n, sr, interval, scale):
    """Zero-mean random curve of n samples: Gaussian knots every ``interval`` s, linearly joined."""
    knots = rng.normal(0.0, scale, int(n / (interval * sr)) + 2)
    return np.interp(np.arange(n) / (interval * sr), np.arange(knots.size), knots)


def _make_segments(rng, n, sr):
    """Split n samples into phone segments; return (starts, ends, kinds)."""
    lengths, total = [], 0
    while total < n:
        lengths.append(int(rng.uniform(*SEGMENT_SECONDS) * sr))
        total += lengths[-1]
    ends = np.minimum(np.cumsum(lengths), n)
    starts = np.concatenate([[0], ends[:-1]])
    kinds = rng.choice([_VOICED, _FRICATIVE, _SILENCE], size=len(lengths), p=[0.6, 0.25, 0.15])
    lengths = ends - starts
    while lengths[kinds == _VOICED].sum() < 0.35 * n:  # keep utterances mostly voiced
        kinds[np.argmax(np.where(kinds == _VOICED, -1, lengths))] = _VOICED
    return starts, ends, kinds


def _pitch_contour(rng, n, sr):
    """Per-sample f0 (Hz): speaker base x declination x slow drift x jitter, clipped to F0_RANGE."""
    base = np.exp(rng.uniform(np.log(90.0), np.log(220.0)))
    t = np.linspace(0.0, 1.0, n)
    declination = 1.0 + rng.uniform(0.05, 0.15) - rng.uniform(0.1, 0.3) * t
    drift = 1.0 + _smooth_noise(rng, n, sr, 0.25, 0.06)
    jitter = 1.0 + _smooth_noise(rng, n, sr, 0.005, 0.01)
    return np.clip(base * declination * drift * jitter, *F0_RANGE)


def _glottal_source(rng, f0, sr):
    """Differentiated Rosenberg-style glottal flow driven by the f0 contour, plus aspiration."""
    phase = rng.uniform() + np.cumsum(f0) / sr
    frac = phase - np.floor(phase)
    t_open, t_close = rng.uniform(0.35, 0.45), rng.uniform(0.12, 0.2)
    flow = np.where(frac < t_open, 0.5 - 0.5 * np.cos(np.pi * frac / t_open), 0.0)
    closing = (frac >= t_open) & (frac < t_open + t_close)
    flow[closing] = np.cos(0.5 * np.pi * (frac[closing] - t_open) / t_close)
    source = np.diff(flow, prepend=flow[0]) * (sr / f0)  # lip radiation ~ derivative
    aspiration = rng.uniform(0.02, 0.08) * rng.standard_normal(f0.size) * (0.3 + flow)
    return source + aspiration


def _resonator(freq, bw, sr):
    """Coefficients (num, den) of 2nd-order resonators, unit gain at 0 Hz, always stable.

    Elementwise over array inputs; outputs gain a trailing axis of length 1 and 3.
    """
    r = np.exp(-np.pi * np.asarray(bw, dtype=np.float64) / sr)
    a1, a2 = -2.0 * r * np.cos(2.0 * np.pi * np.asarray(freq) / sr), r * r
    return (1.0 + a1 + a2)[..., None], np.stack([np.ones_like(a1), a1, a2], axis=-1)


def _formant_filter(x, freqs, bws, sr, block):
    """Filter x through cascaded 2nd-order resonators whose (freq, bw) change per block.

    ``freqs``/``bws`` have shape (num_blocks, num_formants).  Each block is run
    through ``lfilter`` once per resonator with that block's coefficients, and each
    resonator's state is carried to the next block, so the output stays continuous
    while the formants move.  Each resonator has unit gain at 0 Hz.
    """
    gain, den = _resonator(freqs, bws, sr)
    y = np.array(x, dtype=np.float64)
    state = np.zeros((freqs.shape[1], 2))
    for b in range(freqs.shape[0]):
        sl = slice(b * block, (b + 1) * block)
        for k in range(freqs.shape[1]):
            y[sl], state[k] = signal.lfilter(gain[b, k], den[b, k], y[sl], zi=state[k])
    return y


def _smooth_gate(levels, width):
    """Smooth a piecewise-constant gain curve with a Hann kernel of ``width`` samples."""
    kernel = np.hanning(max(3, width))
    return signal.oaconvolve(levels, kernel / kernel.sum(), mode="same")


def synthesize_utterance(index: int, seed: int = 0, sample_rate: int = DEFAULT_SAMPLE_RATE,
                         min_seconds: float = 0.5, max_seconds: float = 2.0) -> np.ndarray:
    """One utterance, float32 1-D array in [-1, 1].

    Deterministic in ``(seed, index)``; its length is drawn uniformly from
    ``[min_seconds, max_seconds] * sample_rate`` samples.
    """
    _check_args(sample_rate, min_seconds, max_seconds, index=index, seed=seed)
    sr = sample_rate
    rng = np.random.default_rng([seed, index])
    lo = max(1, int(np.ceil(min_seconds * sr - 1e-6)))
    n = int(rng.integers(lo, max(lo, int(np.floor(max_seconds * sr + 1e-6))) + 1))
    starts, ends, kinds = _make_segments(rng, n, sr)
    centres = 0.5 * (starts + ends)

    # Voiced path: glottal source through formants gliding between vowel targets.
    f0 = _pitch_contour(rng, n, sr)
    source = _glottal_source(rng, f0, sr) * (1.0 + _smooth_noise(rng, n, sr, 0.01, 0.04))
    # Per-speaker formant scale (shorter vocal tract ~ higher formants, loosely tied to pitch).
    scale = rng.uniform(0.9, 1.15) * (1.0 + 0.1 * (f0.mean() - 90.0) / 160.0)
    targets = _VOWELS[rng.integers(0, len(_VOWELS), len(kinds))] * scale
    targets *= rng.uniform(0.93, 1.07, targets.shape)
    voiced = kinds == _VOICED
    keep = np.median(targets[voiced], axis=0) < 0.4 * sr  # low sample rates: fewer formants
    block = max(1, int(round(BLOCK_SECONDS * sr)))
    block_t = (np.arange(-(-n // block)) + 0.5) * block
    freqs = np.stack([np.interp(block_t, centres[voiced], targets[voiced, k])
                      for k in np.flatnonzero(keep)], axis=1).clip(max=0.45 * sr)
    bws = _BANDWIDTHS[keep] * rng.uniform(0.8, 1.3, keep.sum()) * (1.0 + 0.3 * freqs / 4000.0)
    voice = _formant_filter(source, freqs, bws, sr, block)

    seg_level = 10.0 ** (rng.uniform(-6.0, 3.0, len(kinds)) / 20.0)
    per_sample = np.repeat(np.arange(len(kinds)), ends - starts)
    edge = int(0.02 * sr)
    voice_gate = _smooth_gate(np.where(voiced, seg_level, 0.0)[per_sample], edge)
    loud = voice_gate > 0.5 * voice_gate.max()
    voice *= voice_gate / (np.sqrt(np.mean(voice[loud] ** 2)) + 1e-12)

    # Unvoiced path: fricative noise per segment, stop bursts at the end of silences.
    noise = np.zeros(n)
    for i in np.flatnonzero(kinds != _VOICED):
        s0, s1 = max(0, starts[i] - edge), min(n, ends[i] + edge)
        if kinds[i] == _FRICATIVE:
            fc = min(rng.uniform(2500.0, 7000.0), 0.4 * sr)
            b, a = _resonator(fc, min(rng.uniform(1000.0, 2500.0), 0.25 * sr), sr)
            burst = signal.lfilter(b, a, np.diff(rng.standard_normal(s1 - s0 + 1)))
            burst *= rng.uniform(0.1, 0.35) * seg_level[i] / (np.std(burst) + 1e-12)
            inside = (np.arange(s0, s1) >= starts[i]) & (np.arange(s0, s1) < ends[i])
            noise[s0:s1] += burst * _smooth_gate(inside.astype(np.float64), edge)
        elif i + 1 < len(kinds) and rng.uniform() < 0.6:  # release burst of a stop
            m = min(int(rng.uniform(0.005, 0.015) * sr), ends[i] - starts[i])
            decay = np.exp(-np.arange(m) / (rng.uniform(0.002, 0.006) * sr))
            noise[ends[i] - m:ends[i]] += rng.uniform(0.3, 0.8) * decay * np.diff(
                rng.standard_normal(m + 1))

    x = voice + noise
    fade = np.minimum(1.0, np.minimum(np.arange(n) + 1, n - np.arange(n)) / (0.01 * sr))
    x *= fade
    x /= np.max(np.abs(x)) + 1e-12
    x += 10.0 ** (rng.uniform(-60.0, -45.0) / 20.0) * rng.standard_normal(n)  # noise floor
    x *= rng.uniform(0.3, PEAK_LIMIT) / np.max(np.abs(x))  # random overall gain
    return np.clip(x, -PEAK_LIMIT, PEAK_LIMIT).astype(np.float32)


def synthesize_corpus(num_utterances: int, seed: int = 0, sample_rate: int = DEFAULT_SAMPLE_RATE,
                      min_seconds: float = 0.5, max_seconds: float = 2.0
                      ) -> list[tuple[str, np.ndarray]]:
    """[(name, samples)] with names like 'synthetic_0000'.

    Utterance ``i`` equals ``synthesize_utterance(i, seed, ...)`` regardless of
    ``num_utterances``.
    """
    if num_utterances < 1:
        raise ValueError(f"num_utterances must be >= 1, got {num_utterances!r}")
    _check_args(sample_rate, min_seconds, max_seconds, seed=seed)
    return [(f"synthetic_{i:04d}",
             synthesize_utterance(i, seed, sample_rate, min_seconds, max_seconds))
            for i in range(num_utterances)]
