"""Generate speech-like audio from an exported avrnn_tf SavedModel, with TensorFlow alone.

  python export/generate_audio.py --saved_model=DIR --num_samples=4 --seconds=3 --seed=0 \
      --output_dir=OUT [--temperature=1.0] [--prefix_wav=FILE] [--no_png]

Imports only tensorflow, numpy, the Python standard library and (for the PNGs) matplotlib: the SavedModel written by
`avrnn-export` carries the weights, the sampler and the metadata (sample rate, frame size,
standardization), so this program needs nothing of the package that trained the model.

Writes, per clip k: OUT/sample_<seed>_<k>.wav (16-bit PCM at the model's sample rate) and
OUT/sample_<seed>_<k>.png (waveform above its spectrogram, with time, frequency and dB axes; drawn
with matplotlib when it is installed), then prints one summary line. With --prefix_wav, each clip is the recording followed by the model's continuation of it
(the posterior filters the recording, then sampling continues from that state); a recording at
another rate is resampled (FFT method) to the model's rate first.

Long clips are generated in chunks of --chunk_seconds with the SavedModel's `sample_chunk`,
which carries the recurrent state across calls; the result is bit-identical to one call (each
frame's noise depends on the seed and its frame index only), and a progress bar shows the audio
generated so far. The same seed gives the same audio on every load and machine.

Exit status 2 with one line "generate_audio: error: ..." for a bad argument, a missing model, a
piano-roll model (export/generate_pianoroll.py is its program) or an unreadable prefix; the model's own argument checks report as "<signature>: <argument> ...".
"""

import argparse
import logging
import math
import os
import re
import sys
import time
import wave

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

PROGRAM = "generate_audio"


class UsageError(Exception):
    """A bad argument or input file; the message is printed as one line."""


# ------------------------------------------------------------------------------- audio I/O
def write_wav(path, samples, sample_rate):
    """Writes float samples in [-1, 1] [n] as mono 16-bit PCM."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm.tobytes())


def read_wav(path):
    """Returns (float32 mono samples in [-1, 1], sample_rate) of a PCM WAV (8/16/24/32-bit)."""
    try:
        with wave.open(path, "rb") as f:
            channels, width, rate = f.getnchannels(), f.getsampwidth(), f.getframerate()
            data = f.readframes(f.getnframes())
    except FileNotFoundError:
        raise UsageError(f"--prefix_wav={path}: no such file") from None
    except (wave.Error, EOFError, OSError) as e:
        raise UsageError(f"--prefix_wav={path}: not a PCM WAV file the wave module reads ({e})") from None
    if width == 1:
        x = (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(data, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise UsageError(f"--prefix_wav={path}: unsupported sample width {width} bytes")
    x = x.reshape(-1, channels).mean(axis=1)
    if x.size == 0:
        raise UsageError(f"--prefix_wav={path}: holds no samples")
    return x.astype(np.float32), rate


def resample(x, from_rate, to_rate):
    """Band-limited resampling by zero-padding / truncating the spectrum (numpy only)."""
    if from_rate == to_rate:
        return x
    n_out = max(1, int(round(len(x) * to_rate / from_rate)))
    spectrum = np.fft.rfft(x)
    keep = min(len(spectrum), n_out // 2 + 1)
    out = np.zeros(n_out // 2 + 1, np.complex128)
    out[:keep] = spectrum[:keep]
    return (np.fft.irfft(out, n_out) * (n_out / len(x))).astype(np.float32)


# ---------------------------------------------------------------------------------- figure
def clip_figure(x, sample_rate, title):
    """A matplotlib Figure of one clip: the waveform (amplitude over time in s) above its
    spectrogram (frequency in Hz over time in s, Hann STFT of ~32 ms, colour bar in dBFS: a
    full-scale sine peaks at 0 dB). The same layout as avrnn_tf/figures.py, which this program
    does not import."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 5.0), dpi=100, layout="constrained")
    wave_ax, spec_ax = fig.subplots(2, 1, sharex=True, height_ratios=[1, 2])
    fig.suptitle(title, fontsize=10)
    wave_ax.plot(np.arange(len(x)) / sample_rate, x, lw=0.5, color="#1f3c88")
    wave_ax.set(ylabel="amplitude", ylim=(-1.0, 1.0))
    n_fft = 1 << max(6, int(round(math.log2(max(64, 0.032 * sample_rate)))))
    padded = np.pad(np.asarray(x, np.float64), [0, max(0, n_fft - len(x))])
    starts = np.arange(0, len(padded) - n_fft + 1, n_fft // 4)
    window = np.hanning(n_fft)
    frames = padded[starts[:, None] + np.arange(n_fft)[None, :]] * window[None, :]
    level = 20 * np.log10(np.maximum(np.abs(np.fft.rfft(frames, axis=1)) * 2 / window.sum(), 1e-10))
    top = float(level.max())
    mesh = spec_ax.pcolormesh((starts + n_fft / 2) / sample_rate,
                              np.fft.rfftfreq(n_fft, 1.0 / sample_rate), level.T,
                              shading="nearest", cmap="magma", vmin=top - 80.0, vmax=top)
    spec_ax.set(xlabel="time (s)", ylabel="frequency (Hz)", xlim=(0.0, len(x) / sample_rate))
    fig.colorbar(mesh, ax=[wave_ax, spec_ax], label="level (dBFS)")
    return fig


def matplotlib_missing():
    """Why PNGs cannot be drawn here ('' when matplotlib imports)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib, or pass --no_png)"
    return ""


# ------------------------------------------------------------------------------ progress
class Progress:
    """A plain-text progress bar on stderr (redrawn in place on a terminal, else every 25%)."""

    def __init__(self, total_seconds, enabled=True):
        self.total = total_seconds
        self.start = time.time()
        self.tty = sys.stderr.isatty()
        self.enabled = enabled
        self.next_mark = 0.25

    def update(self, done_seconds, streams):
        if not self.enabled:
            return
        frac = done_seconds / self.total if self.total else 1.0
        if not self.tty and frac < self.next_mark and frac < 1.0:
            return
        self.next_mark = math.floor(frac * 4 + 1) / 4
        elapsed = max(time.time() - self.start, 1e-9)
        bar = "#" * int(round(30 * frac))
        line = (f"[{bar:<30}] {100 * frac:5.1f}%  {done_seconds:.2f}/{self.total:.2f} s x "
                f"{streams} clip(s)  {done_seconds / elapsed:.1f}x real time")
        sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
        if self.tty and frac >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()


# ---------------------------------------------------------------------------- generation
def read_metadata(model):
    meta = {}
    for key, value in model.metadata().items():
        v = value.numpy()
        meta[key] = v.decode() if isinstance(v, bytes) else v.item()
    return meta


def int32_arg(name, value, low=-2 ** 31):
    """`value` as an int when it fits the SavedModel's int32 inputs and is >= `low`; UsageError
    otherwise. TensorFlow wraps an out-of-range Python int silently (2**32 + 1 becomes 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
            not low <= int(value) < 2 ** 31:
        raise UsageError(f"{name}={value!r}: expected an int32 integer from {low} to {2 ** 31 - 1}")
    return int(value)


def generate(model, meta, num_samples, num_frames, seed, temperature, chunk_frames,
             prefix_frames=None, progress=None):
    """Waveforms [N, num_frames * frame_size] sampled in chunks through `sample_chunk`."""
    import tensorflow as tf

    num_samples = int32_arg("num_samples", num_samples, 1)
    num_frames = int32_arg("num_frames", num_frames, 1)
    seed = int32_arg("seed", seed)
    chunk_frames = int32_arg("chunk_frames", chunk_frames, 1)
    frame_size = int(meta["frame_size"])
    if prefix_frames is not None:
        prefix = np.repeat(prefix_frames[None], num_samples, axis=0)
        state = model.encode(tf.constant(prefix, tf.float32), seed)["state"]
    else:
        state = tf.zeros([num_samples, int(meta["state_size"])], tf.float32)
    pieces, done = [], 0
    while done < num_frames:
        n = min(chunk_frames, num_frames - done)
        out = model.sample_chunk(state, n, seed, done, float(temperature))
        state = out["state"]
        pieces.append(out["waveform"].numpy())
        done += n
        if progress is not None:
            progress.update(done * frame_size / meta["sample_rate"], num_samples)
    return np.concatenate(pieces, axis=1)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="generate_audio.py", description=__doc__.split("\n")[0])
    p.add_argument("--saved_model", required=True, help="Directory written by avrnn-export.")
    p.add_argument("--output_dir", required=True, help="Where to write the WAVs and PNGs.")
    p.add_argument("--num_samples", type=int, default=4, help="Number of clips (batch size).")
    p.add_argument("--seconds", type=float, default=4.0, help="Generated seconds per clip.")
    p.add_argument("--seed", type=int, default=0, help="Stateless seed (int32): same seed, same audio.")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="Scales latent and emission noise (0 = means only).")
    p.add_argument("--prefix_wav", default="", help="A recording to continue (PCM WAV).")
    p.add_argument("--chunk_seconds", type=float, default=1.0,
                   help="Audio generated per SavedModel call (progress granularity).")
    p.add_argument("--threads", type=int, default=1,
                   help="TensorFlow threads (0 = its default, all cores). The sampler is a chain "
                        "of small per-frame ops, and one thread was fastest at batch 1 and 16 on a "
                        "busy 2-core machine (export/README.md).")
    p.add_argument("--no_png", action="store_true", help="Skip the PNG images.")
    p.add_argument("--quiet", action="store_true", help="No progress bar.")
    p.add_argument("--verbose", action="store_true",
                   help="Show TensorFlow's start-up lines and every absl warning.")
    args = p.parse_args(argv)
    if not 1 <= args.num_samples <= 4096:
        raise UsageError(f"--num_samples={args.num_samples}: expected an integer in [1, 4096]")
    if not (math.isfinite(args.seconds) and 0 < args.seconds <= 3600):
        raise UsageError(f"--seconds={args.seconds}: expected seconds in (0, 3600]")
    int32_arg("--seed", args.seed)
    if not (math.isfinite(args.temperature) and 0 <= args.temperature <= 10):
        raise UsageError(f"--temperature={args.temperature}: expected a number from 0 to 10")
    if args.threads < 0:
        raise UsageError(f"--threads={args.threads}: expected an integer >= 0")
    if not (math.isfinite(args.chunk_seconds) and args.chunk_seconds > 0):
        raise UsageError(f"--chunk_seconds={args.chunk_seconds}: expected seconds > 0")
    if args.prefix_wav and not os.path.isfile(args.prefix_wav):
        raise UsageError(f"--prefix_wav={args.prefix_wav}: no such file")
    if not os.path.isfile(os.path.join(args.saved_model, "saved_model.pb")):
        raise UsageError(f"--saved_model={args.saved_model}: no saved_model.pb there (for a "
                         "TensorFlow Serving layout, point at the numbered version directory)")
    return args


# Logged (absl, WARNING) for each function of a SavedModel written before avrnn-export traced its
# signatures without custom gradients; harmless: nothing differentiates through them here.
KNOWN_NOTICE = "with ops with unsaved custom gradients"


def import_tensorflow(threads=0, verbose=False):
    """Imports TensorFlow with its start-up notices (printed to fd 2 before logging is set up)
    captured, and replayed only if the import fails; `threads` > 0 sets TensorFlow's intra- and
    inter-op thread pools (possible only before the runtime starts). With `verbose`, nothing is
    hidden; otherwise TensorFlow's Python warnings and KNOWN_NOTICE are."""
    import tempfile

    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        import tensorflow as tf
        set_threads(tf, threads)
        return tf
    logging.getLogger("absl").addFilter(lambda record: KNOWN_NOTICE not in record.getMessage())
    sys.stderr.flush()
    saved, capture = os.dup(2), tempfile.TemporaryFile()
    os.dup2(capture.fileno(), 2)
    try:
        import tensorflow as tf
        set_threads(tf, threads)
        tf.constant(0.0) + 1.0  # Device initialisation prints too.
    except BaseException:
        os.dup2(saved, 2)
        capture.seek(0)
        sys.stderr.write(capture.read().decode("utf-8", "replace"))
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        capture.close()
    tf.get_logger().setLevel("ERROR")
    # Loading a SavedModel warns through absl's logger about the custom gradients it holds.
    logging.getLogger("absl").setLevel(logging.ERROR)
    return tf


def set_threads(tf, threads):
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def main(argv):
    args = parse_args(argv)
    no_png = args.no_png or matplotlib_missing()
    if no_png and not args.no_png:
        print(f"{PROGRAM}: writing no PNGs: {no_png}", file=sys.stderr, flush=True)
    tf = import_tensorflow(args.threads, args.verbose)
    model = tf.saved_model.load(args.saved_model)
    meta = read_metadata(model)
    if meta["emission"] == "bernoulli":
        raise UsageError(f"--saved_model={args.saved_model}: a piano-roll model "
                         f"({meta['model_kind']}/bernoulli) has no audio; use "
                         f"export/generate_pianoroll.py")
    rate, frame_size = int(meta["sample_rate"]), int(meta["frame_size"])
    num_frames = max(1, int(math.ceil(args.seconds * rate / frame_size)))
    chunk_frames = max(1, int(round(args.chunk_seconds * rate / frame_size)))

    prefix_wave, prefix_frames = None, None
    if args.prefix_wav:
        samples, file_rate = read_wav(args.prefix_wav)
        samples = resample(samples, file_rate, rate)
        usable = len(samples) // frame_size * frame_size
        if usable == 0:
            raise UsageError(f"--prefix_wav={args.prefix_wav}: shorter than one frame "
                             f"({frame_size} samples at {rate} Hz)")
        prefix_wave = samples[:usable]
        prefix_frames = ((prefix_wave - meta["mean"]) / meta["std"]).reshape(-1, frame_size)

    os.makedirs(args.output_dir, exist_ok=True)
    start = time.time()
    progress = Progress(num_frames * frame_size / rate, enabled=not args.quiet)
    waves = generate(model, meta, args.num_samples, num_frames, args.seed, args.temperature,
                     chunk_frames, prefix_frames, progress)
    elapsed = time.time() - start
    written = []
    for k, clip in enumerate(waves):
        if prefix_wave is not None:
            clip = np.concatenate([prefix_wave, clip])
        base = os.path.join(args.output_dir, f"sample_{args.seed}_{k}")
        write_wav(base + ".wav", clip, rate)
        if not no_png:
            clip_figure(clip, rate, f"clip {k} - {meta['model_kind']}/{meta['emission']}, step "
                                    f"{meta.get('step', '?')}, seed {args.seed}").savefig(base + ".png")
        written.append(base + ".wav")
    seconds = waves.shape[1] / rate
    what = f"clip(s) of {seconds:.2f} s"
    if prefix_wave is not None:
        what = (f"clip(s) of {os.path.basename(args.prefix_wav)} ({len(prefix_wave) / rate:.2f} s) "
                f"continued by {seconds:.2f} s")
    print(f"{PROGRAM}: wrote {len(written)} {what} at {rate} Hz "
          f"({meta['model_kind']}/{meta['emission']}, {meta['checkpoint']}, seed {args.seed}) "
          f"to {args.output_dir} in {elapsed:.2f} s ({seconds * len(written) / elapsed:.1f}x "
          f"real time, {seconds / elapsed:.1f}x per clip)", flush=True)
    return written


def _assert_message(error):
    """The message of a failed in-graph assert (the first bracketed text), else the first line."""
    found = re.search(r"assertion failed: \[(.*?)\](?: \[|$)", str(error))
    return found.group(1) if found else str(error).strip().splitlines()[0]


def run(argv=None):
    try:
        main(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"{PROGRAM}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except Exception as e:
        tf = sys.modules.get("tensorflow")
        if tf is None or not isinstance(e, tf.errors.InvalidArgumentError):
            raise
        # The model's own argument checks (see avrnn_tf/export.py).
        print(f"{PROGRAM}: error: {_assert_message(e)}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
