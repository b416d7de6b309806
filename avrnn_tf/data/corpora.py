"""Real corpora: TIMIT, FSDD and any audio directory, read file by file with every bad file named.

Layouts (`detect_format` picks one when `data.format` is "auto"):
  prepared  a directory written by `avrnn-prepare` (it holds `stats.json`); see data/prepared.py.
  timit     LDC TIMIT: `TRAIN/` and `TEST/` (any case), utterances `DR*/SPEAKER/*.WAV` in NIST SPHERE.
            Splits follow the FIVO/SRNN protocol: TEST/ is the test split; 5% of TRAIN/, drawn by a
            permutation seeded with `split_seed` (1234), is the validation split.
  fsdd      Free Spoken Digit Dataset names `digit_speaker_index.wav`: the official test split is
            index 0-4, validation drawn from the rest (as `pipeline.split_names`).
  wav_dir   any folder of .wav/.flac/.ogg/.sph files: no test split; an utterance is in the
            validation split when a hash of its relative path falls below `valid_fraction`, so the
            split of a file never changes when other files are added or removed.

Reading (`scan`) decodes one file at a time and turns every problem into a `Problem` (the file and
why): a FIFO, socket or device (never opened), a zero-length file, a file libsndfile cannot decode (corrupt, truncated header, not audio), no
samples, NaN/Inf samples, a clip shorter than one frame after resampling, and - when no sample rate
is configured - a rate different from the corpus's most common one. `read_corpus` then either stops
with one `DataError` listing every problem (the default) or, with `skip_bad_files`, drops those
files, writes them to a report file and goes on. Nothing is decoded lazily during training, so no
data problem can surface mid-epoch.
"""

import collections
import dataclasses
import hashlib
import os
from typing import List

import numpy as np

from avrnn_tf.data import audio

FORMATS = ("prepared", "timit", "fsdd", "wav_dir")
TIMIT_EXTENSIONS = (".wav", ".sph")
STATS_FILE = "stats.json"


@dataclasses.dataclass(frozen=True)
class Problem:
    """A file that cannot be used and why (`path` relative to the corpus root); with `warning`,
    a file that is used but looks damaged (audio.check_samples)."""
    path: str
    reason: str
    warning: bool = False

    def __str__(self):
        return f"{self.path}: {'warning (file used): ' if self.warning else ''}{self.reason}"


def _subdir(root, name):
    """The child directory of `root` called `name` in any letter case, or None."""
    for entry in sorted(os.listdir(root)):
        if entry.lower() == name.lower() and os.path.isdir(os.path.join(root, entry)):
            return os.path.join(root, entry)
    return None


def _check_directory(path):
    if not path:
        raise audio.DataError("no data directory given (config.data.path / --source is empty)")
    if not os.path.exists(path):
        raise audio.DataError(f"data directory {path!r} does not exist "
                              f"(resolved to {os.path.abspath(path)!r})")
    if not os.path.isdir(path):
        raise audio.DataError(f"data path {path!r} is not a directory")


def detect_format(path):
    """'prepared', 'timit', 'fsdd' or 'wav_dir' for the directory `path` (see module docstring).

    None when the directory holds no audio files at all (another format's data, or nothing):
    the caller decides what that means.
    """
    _check_directory(path)
    if os.path.isfile(os.path.join(path, STATS_FILE)):
        return "prepared"
    if _subdir(path, "TRAIN") or _subdir(path, "TEST"):
        return "timit"
    names = [os.path.basename(p) for p in _list(path, audio.AUDIO_EXTENSIONS)]
    if not names:
        return None
    if all(_is_fsdd_name(n) for n in names):
        return "fsdd"
    return "wav_dir"


def _is_fsdd_name(name):
    from avrnn_tf.data.common import FSDD_NAME

    return bool(FSDD_NAME.match(name))


def _list(directory, extensions):
    return audio.list_files(directory, extensions)


def list_files(path, fmt):
    """{"train", "test", "all"} lists of absolute file paths for a raw corpus directory.

    For timit, "train" holds TRAIN/ and "test" TEST/; for the other formats "all" holds every file
    and the split is made later from the names. Raises DataError for an empty directory, one with
    no files of the format, or a TIMIT directory without TRAIN/ or TEST/.
    """
    _check_directory(path)
    if not any(os.scandir(path)):
        raise audio.DataError(f"data directory {path!r} is empty")
    if fmt == "timit":
        train_dir, test_dir = _subdir(path, "TRAIN"), _subdir(path, "TEST")
        missing = [n for n, d in (("TRAIN/", train_dir), ("TEST/", test_dir)) if d is None]
        if missing:
            raise audio.DataError(
                f"TIMIT directory {path!r} has no {' or '.join(missing)} subdirectory (a TIMIT "
                "copy holds TRAIN/ and TEST/; use --format=wav_dir for other layouts)")
        files = {"train": _list(train_dir, TIMIT_EXTENSIONS), "test": _list(test_dir, TIMIT_EXTENSIONS)}
        for key, folder in (("train", train_dir), ("test", test_dir)):
            if not files[key]:
                raise audio.DataError(f"TIMIT directory {folder!r} holds no .WAV/.SPH files")
        return files
    files = _list(path, audio.AUDIO_EXTENSIONS)
    if not files:
        others = sum(len(f) for _, _, f in os.walk(path))
        raise audio.DataError(
            f"data directory {path!r} holds no files of format {fmt} (looked for "
            f"{', '.join(audio.AUDIO_EXTENSIONS)} recursively; it holds {others} other file(s))")
    if fmt == "fsdd":
        bad = [os.path.relpath(p, path) for p in files if not _is_fsdd_name(os.path.basename(p))]
        if bad:
            raise audio.DataError(
                f"{len(bad)} file(s) in {path!r} are not named like FSDD recordings "
                f"(digit_speaker_index.wav), e.g. {bad[:5]}; use --format=wav_dir")
    return {"all": files}


def hashed_fraction(name):
    """A number in [0, 1) fixed by `name` alone (first 8 bytes of its SHA-1)."""
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_corpus(fmt, names_by_part, valid_fraction, seed):
    """{"train", "valid", "test"} lists of relative names.

    Args:
      fmt: 'timit', 'fsdd' or 'wav_dir'.
      names_by_part: for timit {"train": [...], "test": [...]}; otherwise {"all": [...]}.
    """
    from avrnn_tf.data import common as pipeline  # The shared types (a leaf: no import cycle).

    if fmt == "timit":
        train = sorted(names_by_part["train"])
        split = pipeline.split_names(train, valid_fraction, seed)  # No FSDD names: no test.
        return {"train": [train[i] for i in split["train"]],
                "valid": [train[i] for i in split["valid"]],
                "test": sorted(names_by_part["test"])}
    names = sorted(names_by_part["all"])
    if fmt == "fsdd":
        split = pipeline.split_names(names, valid_fraction, seed)
        return {k: [names[i] for i in v] for k, v in split.items()}
    if len(names) < 2:
        raise audio.DataError(f"only {len(names)} usable utterance(s): need at least 2 for a "
                              "training and a validation split")
    order = sorted(names, key=hashed_fraction)
    valid = {n for n in names if hashed_fraction(n) < valid_fraction} or {order[0]}
    if len(valid) == len(names):
        valid = set(order[:-1])
    return {"train": [n for n in names if n not in valid], "valid": sorted(valid), "test": []}


def decode(path, decoder="soundfile", warnings=None):
    """(samples float32 [n], rate) of one file; DataError naming the file for any failure.

    What deserves a warning but does not stop the file is appended to `warnings` (a list).
    """
    if audio.regular_file_size(path) == 0:
        raise audio.DataError(f"{path}: empty file (0 bytes)")
    if decoder == "tfio":
        from avrnn_tf.data import tfio_backend

        samples, rate = tfio_backend.read_audio(path)
    else:
        samples, rate = audio.read_audio(path)
    audio.check_samples(path, samples, rate, [] if warnings is None else warnings)
    return samples, rate


def header_rates(paths):
    """{path: sample rate} from the headers of the files libsndfile can open (others are left out)."""
    import soundfile

    rates = {}
    for path in paths:
        try:
            audio.regular_file_size(path)  # A FIFO would block soundfile.info forever.
            rates[path] = int(soundfile.info(path).samplerate)
        except Exception:  # Reported by `scan` with the decoder's reason.
            pass
    return rates


def choose_rate(rates, sample_rate):
    """The rate a corpus is resampled to: `sample_rate`, or the most common header rate when 0."""
    if sample_rate:
        return int(sample_rate)
    counts = collections.Counter(rates.values())
    if not counts:
        raise audio.DataError("none of the files has a readable audio header")
    return int(counts.most_common(1)[0][0])


def scan(paths, root, target, rates=None, frame_size=1, decoder="soundfile"):
    """Decodes `paths` one at a time, resampled to `target` Hz.

    Yields (name relative to `root`, samples float32 [n] or None, Problem or None). With `rates`
    (the header rates, given when no sample rate was configured) a file at a rate other than
    `target` is a Problem: a corpus of mixed rates needs an explicit rate to resample to.
    """
    for path in paths:
        name = os.path.relpath(path, root)
        if rates is not None and path in rates and rates[path] != target:
            yield name, None, Problem(name, f"sample rate {rates[path]} Hz differs from the "
                                      f"corpus's most common {target} Hz (the corpus mixes rates: "
                                      "set a sample rate to resample every file to it)")
            continue
        warnings = []
        try:
            samples, rate = decode(path, decoder, warnings)
            if decoder == "tfio":
                from avrnn_tf.data import tfio_backend

                samples = tfio_backend.resample(samples, rate, target)
            else:
                samples = audio.resample(samples, rate, target)
        except audio.DataError as e:
            yield name, None, Problem(name, str(e).split(": ", 1)[-1])
            continue
        if len(samples) < frame_size:
            yield name, None, Problem(name, f"{len(samples)} samples at {target} Hz is shorter than "
                                      f"one frame ({frame_size} samples)")
            continue
        yield name, samples, (Problem(name, "; ".join(warnings), warning=True) if warnings else None)


def report_problems(problems, total, source, skip_bad_files, report_path=None):
    """Stops with one DataError listing the bad files among `problems`, or (skipping) writes
    them to `report_path`; files used with a warning are printed and written there too."""
    bad = [p for p in problems if not p.warning]
    lines = "\n  ".join(str(p) for p in bad)
    if bad and not skip_bad_files:
        raise audio.DataError(
            f"{len(bad)} of {total} files in {source!r} cannot be used:\n  {lines}\n"
            "(fix or remove them, or pass --skip_bad_files / --config.data.skip_bad_files=True "
            "to skip them)")
    if not problems:
        return
    if report_path:
        os.makedirs(os.path.dirname(os.path.abspath(report_path)), exist_ok=True)
        write_skipped(report_path, problems, source)
    warned = [p for p in problems if p.warning]
    if warned:
        print(f"avrnn: warning: {len(warned)} of {total} file(s) in {source} are used but look "
              "damaged:\n  " + "\n  ".join(str(p) for p in warned), flush=True)
    if bad:
        print(f"avrnn: skipped {len(bad)} of {total} bad file(s) in {source}"
              + (f"; list in {report_path}" if report_path else f":\n  {lines}"), flush=True)


@dataclasses.dataclass
class RawCorpus:
    """The decoded utterances of a raw directory, split, plus what was skipped."""
    sample_rate: int
    splits: dict  # "train"/"valid"/"test" -> list of (name, samples float32 [n])
    skipped: List[Problem]
    fmt: str
    source: str


def read_corpus(path, fmt, sample_rate=0, frame_size=1, valid_fraction=0.05, split_seed=1234,
                max_files=0, skip_bad_files=False, report_path=None, decoder="soundfile"):
    """Reads and splits a raw corpus directory into memory (small corpora; see prepared.py else).

    `max_files` keeps the first files in sorted order (for timit, of TRAIN/ and TEST/ each).
    """
    files = list_files(path, fmt)
    if max_files:
        files = {k: v[:max_files] for k, v in files.items()}
    every = [p for v in files.values() for p in v]
    rates = None if sample_rate else header_rates(every)
    # No readable header at all: every file becomes a Problem below, so the rate is never used.
    rate = choose_rate(rates, sample_rate) if (sample_rate or rates) else 0
    decoded, problems = {}, []
    for name, samples, problem in scan(every, path, rate, rates, frame_size, decoder):
        if problem:
            problems.append(problem)
        if samples is not None:
            decoded[name] = samples
    report_problems(problems, len(every), path, skip_bad_files, report_path)
    if not decoded:
        raise audio.DataError(f"no usable audio files in {path!r}")
    names = {k: [os.path.relpath(p, path) for p in v] for k, v in files.items()}
    names = {k: [n for n in v if n in decoded] for k, v in names.items()}
    if fmt == "timit" and not names["test"]:
        raise audio.DataError(f"every file of the TIMIT TEST/ split in {path!r} was skipped")
    split = split_corpus(fmt, names, valid_fraction, split_seed)
    splits = {k: [(n, decoded[n]) for n in v] for k, v in split.items()}
    return RawCorpus(rate, splits, problems, fmt, os.path.abspath(path))


def resolve_decoder(decoder):
    """'soundfile' or 'tfio' for a requested 'auto' | 'soundfile' | 'tfio'."""
    if decoder == "soundfile":
        return decoder
    from avrnn_tf.data import tfio_backend

    ok, why = tfio_backend.probe()
    if decoder == "tfio" and not ok:
        raise audio.DataError(f"decoder 'tfio' requested but tensorflow-io is not usable here: {why}")
    return "tfio" if ok else "soundfile"


def load_raw_corpus(data, fmt, report_path=None):
    """A `pipeline.Corpus` of a raw directory for `load_corpus` (data config fields)."""
    from avrnn_tf.data import common as pipeline  # The shared types (a leaf: no import cycle).

    raw = read_corpus(data.path, fmt, data.sample_rate, data.frame_size, data.valid_fraction,
                      data.split_seed, data.max_files, data.get("skip_bad_files", False),
                      report_path, resolve_decoder(data.get("decoder", "soundfile")))
    s = raw.splits
    corpus = pipeline.Corpus(raw.sample_rate, s["train"], s["valid"], s["test"], raw.source)
    corpus.skipped = raw.skipped  # loop.Run writes them to <workdir>/skipped_files.txt.
    return corpus


def write_skipped(path, problems, source):
    """Writes the skipped files and why to `path` (one `name<TAB>reason` line each; a file used
    with a warning has `warning (file used): reason`)."""
    warned = sum(p.warning for p in problems)
    with open(path, "w") as f:
        f.write(f"# {len(problems) - warned} file(s) of {source} were skipped, {warned} used "
                "with a warning\n")
        for p in problems:
            f.write(f"{p.path}\t{'warning (file used): ' if p.warning else ''}{p.reason}\n")

