"""Reading audio files from a directory into mono float32 arrays at one sample rate.

Decoding is libsndfile's (through `soundfile`): RIFF WAV of any PCM width or float, FLAC, OGG and
NIST SPHERE. Multi-channel audio is down-mixed by averaging channels. Files at another rate are
resampled with a polyphase anti-aliasing filter (`scipy.signal.resample_poly`).

Every problem is reported as a `DataError` that names the file or directory and what was expected.
"""

import collections
import math
import os
import stat

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
