"""tensorflow-io decoding and resampling, used only where tensorflow-io really works.

tensorflow-io 0.37.1 (its last release) is built against TF 2.16. On newer TensorFlow its import
succeeds but every op fails with an undefined symbol (../shared/docs/DESIGN.md section 6), so
`probe()` runs real ops - decoding a small in-memory WAV and resampling it - and reports why it
failed. Callers pick `"tfio"` only when the probe passes (`corpora.resolve_decoder`) and otherwise use soundfile.

`read_audio(path)` reads the header with soundfile first (libsndfile is hardened against malformed
headers; the header also tells the sample width), refuses files tensorflow-io cannot decode
(NIST SPHERE, i.e. TIMIT's .WAV files, and non-RIFF formats go to soundfile), and decodes RIFF WAV
and FLAC/OGG in the graph with `tfio.audio.AudioIOTensor`. `resample` is `tfio.audio.resample`
(an anti-aliasing resampler running as a TensorFlow op).
"""

import functools
import io
import os

import numpy as np

from avrnn_tf.data import audio

# libsndfile major formats tensorflow-io's audio reader handles (RIFF WAV, FLAC, OGG Vorbis).
TFIO_FORMATS = ("WAV", "FLAC", "OGG")
# Not PCM_32: tensorflow-io 0.37.1 returns 32-bit integer WAV samples reinterpreted as float32
# (values ~1e-30; found by tests/test_data_corpora.py), so those files go to soundfile.
TFIO_WAV_SUBTYPES = ("PCM_16", "PCM_24", "PCM_U8", "FLOAT")


@functools.lru_cache(maxsize=None)
def probe():
    """(usable, reason): whether tensorflow-io's audio ops run here, by running them."""
    from avrnn_tf.tf_setup import import_tensorflow

    tf = import_tensorflow()  # Quietly: a bare import prints TensorFlow's start-up chatter.
    try:
        import tensorflow_io as tfio
    except Exception as e:  # ImportError, or an error raised while it loads its libraries.
        return False, f"tensorflow_io does not import ({type(e).__name__}: {e})"
    try:
        import soundfile

        rate = 8000
        wave = (0.5 * np.sin(2 * np.pi * 440 * np.arange(800) / rate)).astype(np.float32)
        buf = io.BytesIO()
        soundfile.write(buf, wave, rate, format="WAV", subtype="PCM_16")
        decoded = tfio.audio.decode_wav(tf.constant(buf.getvalue()), dtype=tf.int16)
        halved = tfio.audio.resample(tf.cast(decoded, tf.float32), rate_in=rate, rate_out=rate // 2)
        if tuple(decoded.shape) != (800, 1) or int(halved.shape[0]) != 400:
            return False, f"tensorflow-io ops ran but returned shapes {decoded.shape}, {halved.shape}"
    except Exception as e:  # tf.errors.NotFoundError (undefined symbol) and friends.
        text = " ".join(str(e).split())
        return False, f"tensorflow_io imports but its ops fail ({type(e).__name__}: {text[:200]})"
    return True, f"tensorflow-io {tfio.__version__} ops run on TensorFlow {tf.__version__}"


def _soundfile_info(path):
    import soundfile

    try:
        return soundfile.info(path)
    except Exception as e:
        raise audio.DataError(f"{path}: cannot decode as audio ({e})") from None


def read_audio(path):
    """(samples float32 [n] mono, sample_rate) like `audio.read_audio`, decoded by tensorflow-io.

    Files tensorflow-io does not read (SPHERE, other subtypes) are decoded by soundfile.
    """
    info = _soundfile_info(path)
    if info.format not in TFIO_FORMATS or (info.format == "WAV" and info.subtype not in TFIO_WAV_SUBTYPES):
        return audio.read_audio(path)
    # tensorflow-io trusts the header's frame count: a FLAC header claiming 2^32 - 1 frames made
    # it decode for over 15 minutes (found by tests/test_data_fuzz.py). Only headers consistent
    # with the file size go to it (PCM: at most one value per byte; compressed: 64 per byte);
    # soundfile's block reader, which stops where the data ends, reads the rest.
    per_byte = 1 if info.format == "WAV" else 64
    if not 0 < info.channels <= audio.MAX_CHANNELS or \
            info.frames * info.channels > per_byte * os.path.getsize(path):
        return audio.read_audio(path)
    if info.frames == 0:
        raise audio.DataError(f"{path}: holds no samples")
    import tensorflow as tf
    import tensorflow_io as tfio

    try:
        tensor = tfio.audio.AudioIOTensor(path)
        values = tensor.to_tensor()
        rate = int(tensor.rate.numpy())
        dtype = values.dtype
        values = values.numpy()
    except Exception as e:  # tf.errors.* from the op: name the file, not the kernel.
        text = " ".join(str(e).split())
        raise audio.DataError(f"{path}: tensorflow-io cannot decode it ({text[:200]})") from None
    if dtype == tf.int16:
        samples = values.astype(np.float32) / 2.0 ** 15
    elif dtype == tf.int32:
        samples = values.astype(np.float32) / 2.0 ** 31
    elif dtype == tf.uint8:
        samples = (values.astype(np.float32) - 128.0) / 128.0
    else:
        samples = values.astype(np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.shape[0] == 0:
        raise audio.DataError(f"{path}: holds no samples")
    samples = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if not np.all(np.isfinite(samples)):
        raise audio.DataError(f"{path}: holds NaN or infinite samples")
    return samples.astype(np.float32), rate


def resample(samples, from_rate, to_rate):
    """[n] float32 samples at `from_rate` -> [m] at `to_rate` with `tfio.audio.resample`."""
    if from_rate == to_rate:
        return samples
    import tensorflow as tf
    import tensorflow_io as tfio

    out = tfio.audio.resample(tf.constant(samples[:, None], tf.float32),
                              rate_in=int(from_rate), rate_out=int(to_rate))
    return out.numpy()[:, 0].astype(np.float32)
