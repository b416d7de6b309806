"""Builders of small audio corpora for the data tests (TIMIT layout in SPHERE, WAV folders, bad files)."""

import os

import numpy as np
import soundfile


def tone(seconds, rate, freq=220.0, amp=0.3, seed=0):
    """A sine plus a little noise: float32 [seconds * rate], values well inside [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write(path, samples, rate, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, samples, rate, **kwargs)
    return path


def make_timit(root, speakers_train=4, speakers_test=2, utterances=3, rate=16000, test=True):
    """A TIMIT-layout tree: {TRAIN,TEST}/DR1/<speaker>/SX<k>.WAV in NIST SPHERE, plus .PHN/.TXT files.

    Returns {"train": [relative names], "test": [...]}.
    """
    names = {"train": [], "test": []}
    parts = [("TRAIN", "train", speakers_train)] + ([("TEST", "test", speakers_test)] if test else [])
    for folder, key, num in parts:
        for s in range(num):
            speaker = f"{'MF'[s % 2]}{key[:2].upper()}{s}0"
            for u in range(utterances):
                rel = os.path.join(folder, "DR1", speaker, f"SX{u}.WAV")
                wave = tone(0.2 + 0.05 * u, rate, freq=150 + 40 * s + 10 * u, seed=s * 10 + u)
                write(os.path.join(root, rel), wave, rate, format="NIST", subtype="PCM_16")
                with open(os.path.join(root, folder, "DR1", speaker, f"SX{u}.PHN"), "w") as f:
                    f.write("0 100 h#\n")  # Transcriptions sit beside the audio in TIMIT.
                names[key].append(rel)
    return names


def make_wav_dir(root, n=12, rate=8000, seconds=0.3):
    """n RIFF WAVs (16-bit PCM) named clip_<k>.wav in two subfolders; returns their relative names."""
    names = []
    for k in range(n):
        rel = os.path.join(f"spk{k % 2}", f"clip_{k:02d}.wav")
        write(os.path.join(root, rel), tone(seconds, rate, freq=200 + 20 * k, seed=k), rate,
              subtype="PCM_16")
        names.append(rel)
    return names


def read_text(path):
    with open(path) as f:
        return f.read()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()
