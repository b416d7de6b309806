"""Reading audio files from a directory into mono float32 arrays at one sample rate.

Decoding is libsndfile's (through `soundfile`): RIFF WAV of any PCM width or float, FLAC, OGG and
NIST SPHERE. Multi-channel audio is down-mixed by averaging channels. Files at another rate are
resampled with a polyphase anti-aliasing filter (`scipy.signal.resample_poly`).

Every problem is reported as a `DataError` that names the file or directory and what was expected.
"""

import collections
import math
import os
import re
import stat
import struct

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".sph")


class DataError(ValueError):
    """The data (a directory, a file, its contents) is not what the package can use."""


def list_files(directory, extensions):
    """Sorted paths below `directory` (recursively) whose names end with one of `extensions`."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(tuple(extensions)):
                found.append(os.path.join(root, name))
    return found


def find_audio_files(directory, extensions=AUDIO_EXTENSIONS):
    """Sorted paths of the audio files below `directory` (recursively, case-insensitive suffix)."""
    if not directory:
        raise DataError("no data directory given (config.data.path is empty)")
    if not os.path.exists(directory):
        raise DataError(f"data directory {directory!r} does not exist "
                        f"(resolved to {os.path.abspath(directory)!r})")
    if not os.path.isdir(directory):
        raise DataError(f"data path {directory!r} is not a directory")
    found = list_files(directory, extensions)
    if not found:
        raise DataError(f"data directory {directory!r} holds no audio files "
                        f"(looked for {', '.join(extensions)}, recursively)")
    return found


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


def regular_file_size(path):
    """The size in bytes of `path`, a regular file; DataError (naming the file) otherwise.

    A FIFO, socket or device named like audio is refused before anything opens it: opening a FIFO
    blocks until a writer appears (forever, in a data directory) and a device never ends.
    """
    try:
        mode = os.stat(path)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(mode.st_mode):
        kind = next((name for test, name in _KINDS if test(mode.st_mode)), "not a plain file")
        raise DataError(f"{path}: not a regular file ({kind}); not opened")
    return mode.st_size


def read_audio(path):
    """Returns (samples float32 [n] mono, sample_rate) of one audio file."""
    import soundfile  # Imported here so that the package imports without libsndfile.

    regular_file_size(path)

    try:
        samples, rate = _read_blocks(soundfile, path)
    except DataError:
        raise
    except Exception as e:  # soundfile raises several types (LibsndfileError, RuntimeError, ...)
        raise DataError(f"{path}: cannot decode as audio ({e})") from None
    if samples.shape[0] == 0:
        raise DataError(f"{path}: holds no samples")
    samples = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if not np.all(np.isfinite(samples)):
        raise DataError(f"{path}: holds NaN or infinite samples")
    return samples.astype(np.float32), int(rate)


MAX_CHANNELS = 64
_BLOCK_VALUES = 1 << 22  # float32 values decoded per block (16 MB)


def _read_blocks(soundfile, path):
    """(float32 [frames, channels], rate) decoded block by block until the data ends.

    A header's frame count is not trusted for the allocation (a mutated FLAC header claiming
    2^32 - 1 frames would make `soundfile.read` allocate 16 GB); the data decides the length.
    """
    with soundfile.SoundFile(path) as f:
        if not 1 <= f.channels <= MAX_CHANNELS:
            raise DataError(f"{path}: header claims {f.channels} channels (at most {MAX_CHANNELS} "
                            "are read)")
        if f.samplerate <= 0:
            raise DataError(f"{path}: header claims sample rate {f.samplerate}")
        step = max(1, _BLOCK_VALUES // f.channels)
        blocks = []
        while True:
            block = f.read(step, dtype="float32", always_2d=True)
            if len(block) == 0:
                break
            blocks.append(block)
            if len(block) < step:
                break
        rate = f.samplerate
        samples = np.concatenate(blocks) if blocks else np.zeros([0, f.channels], np.float32)
    return samples, int(rate)


# Float samples beyond this are refused: no encoding stores audio there (int32 PCM scaled to floats
# peaks at 2^31), and squaring them overflows float32 (1e30 ** 2). Between 1 and this a file is
# used with a warning: standardization copes when every file shares the scale.
MAX_PEAK = 2.0 ** 31


def check_samples(path, samples, rate, warnings):
    """Refuses samples no audio holds; appends to `warnings` what deserves one (see README).

    Args:
      samples: the decoded mono samples [n] of `path` at `rate`, before resampling.
      warnings: a list that gets one message per problem that does not stop the file.
    """
    peak = float(np.max(np.abs(samples)))
    if peak > MAX_PEAK:
        raise DataError(f"{path}: samples reach {peak:.3g}, beyond any audio scale (at most "
                        f"{MAX_PEAK:.3g}); their squares overflow float32")
    if peak > 1.0:
        warnings.append(f"samples reach {peak:.3g}, outside [-1, 1] (fine if every file shares "
                        "this scale; a file at another scale distorts the corpus statistics)")
    claimed = header_frames(path)
    if claimed is not None and claimed > len(samples):
        warnings.append(f"header claims {claimed} samples ({claimed / rate:.4g} s) but the file "
                        f"holds {len(samples)} ({len(samples) / rate:.4g} s): cut short or a wrong "
                        "header; the samples present are used")


def header_frames(path):
    """The frames a RIFF WAV or NIST SPHERE header claims; None for other formats or when the
    header leaves the length open (0 or 0xFFFFFFFF, as streaming writers do).

    libsndfile clamps these counts to the bytes present, so a file cut short looks whole through
    it; only the header's own number shows the loss.
    """
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if head.startswith(b"NIST_1A"):
        found = re.search(rb"\nsample_count -i (\d+)", head[:1024])
        return int(found.group(1)) if found else None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, align = 12, 0
    while pos + 8 <= len(head):
        kind, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if kind == b"fmt " and pos + 22 <= len(head):
            align = struct.unpack("<H", head[pos + 20:pos + 22])[0]
        elif kind == b"data":
            return size // align if align and 0 < size < 0xFFFFFFFF else None
        pos += 8 + size + (size & 1)
    return None


def resample(samples, from_rate, to_rate):
    """Resamples with a polyphase anti-aliasing filter; a no-op when the rates agree."""
    if from_rate == to_rate:
        return samples
    from scipy import signal

    g = math.gcd(int(from_rate), int(to_rate))
    return signal.resample_poly(samples, to_rate // g, from_rate // g).astype(np.float32)


def read_directory(directory, sample_rate=0, max_files=0):
    """Reads every audio file below `directory`.

    Args:
      directory: the folder to search (recursively).
      sample_rate: target rate in Hz; 0 takes the most common rate among the files.
      max_files: if > 0, only the first `max_files` files in sorted order.

    Returns:
      (list of (name, samples) with names relative to `directory`, sample_rate).

    Raises:
      DataError: listing every file that could not be read, and why.
    """
    paths = find_audio_files(directory)
    if max_files:
        paths = paths[:max_files]
    decoded, problems = [], []
    for path in paths:
        try:
            decoded.append((path, *read_audio(path)))
        except DataError as e:
            problems.append(str(e))
    if problems:
        raise DataError(f"{len(problems)} of {len(paths)} files in {directory!r} could not be "
                        "read:\n  " + "\n  ".join(problems))
    if not sample_rate:
        sample_rate = collections.Counter(rate for _, _, rate in decoded).most_common(1)[0][0]
    return [(os.path.relpath(path, directory), resample(samples, rate, sample_rate))
            for path, samples, rate in decoded], int(sample_rate)
