"""avrnn-export: a trained workdir -> a SavedModel that plain TensorFlow can sample and score.

  avrnn-export --workdir=DIR --export_dir=OUT [--checkpoint=ckpt-600] [--serving_version=auto]
  python -m avrnn_tf.export ...   (the same program)

The SavedModel holds the network's weights and these functions, each a named serving signature
and an attribute of the object `tf.saved_model.load` returns (D = frame size, H = LSTM state):

  sample(num_sequences, num_frames, seed, temperature=1.0)
      -> frames [N, T, D] (standardized, model space), waveform [N, T*D] in [-1, 1]
  continue_from(prefix_frames [N, P, D], num_frames, seed, temperature=1.0)
      -> frames, waveform (of the continuation only), state [N, 2H]
  encode(prefix_frames [N, P, D], seed) -> state [N, 2H]  (posterior-driven filtering state)
  sample_chunk(state [N, 2H], num_frames, seed, start_frame, temperature)
      -> frames, waveform, state  (long generation in pieces, bit-identical to one call)
  score(frames [B, T, D], mask [B, T], seed, num_samples)
      -> elbo, log_px, kl, iwae (IWAE-K, K = num_samples), num_frames; each [B]
  reconstruct(frames, mask, seed)
      -> mean [B, T, D] (emission mean), sample [B, T, D], waveform [B, T*D], log_px [B, T]
  metadata() -> sample_rate, frame_size, mean, std, model_kind, emission, config_json,
      data_stats_json, package_version, checkpoint, step, state_size, limits

`frames` are always standardized frames, (samples - mean) / std cut into D-sample frames: what the
model was trained on; `waveform` outputs are de-standardized and clipped to [-1, 1].
A piano-roll model (emission "bernoulli", metadata emission == "bernoulli") has no audio: its
`frames` are 0/1 note frames (D = the notes, 88 from A0 = MIDI 21 up for JSB) and every `waveform`
output above is replaced by `piano_roll`, the same frames as uint8 [N, T, D] (reconstruct: of its
`sample`). export/generate_pianoroll.py turns them into a PNG and a MIDI file.

Seeds. `seed` is an int32 scalar k; every stateless draw derives from the pair [k, 7], the pair
the training loop uses for its TensorBoard audio (loop.Run.generate), so `sample(seed=k)` returns
the frames `SequenceNetwork.sample` gives the training-side code for [k, 7] — it *is* that code.
The posterior noise of score/reconstruct/encode is `stateless_normal([B, T, Z], seed=[k, 7])`, the
noise the ELBO objective (objectives.elbo) draws for the seed [k, 7], so `score` equals the
training-side ELBO for the same seed exactly (every draw is Philox, rng.py, on every device). IWAE-K draws its K trajectories from fold_in([k, 7], 1).

Arguments are checked inside the graph (tf.debugging asserts under control dependencies), so a
bad value raises `tf.errors.InvalidArgumentError` whose message contains "<function>: <arg> ...",
e.g. "sample: num_frames must be an integer from 1 to 1048576", before any work is done.

Memory. Every function refuses, before any work, a call whose working memory would exceed the
bound fixed at export (--max_memory_mb, default 1024 MiB; metadata `max_memory_mb`): the estimate
is sequences x frames x the function's bytes per sequence-frame (MEMORY_FACTORS x 4 x
network.row_width), calibrated on measured peaks (tests/test_hardening.py checks the peak RSS of
calls at the bound). Long generations go through `sample_chunk` in pieces; long scores in batches.

Integer inputs are int32 scalars. TensorFlow converts a Python int outside [-2^31, 2^31) by
wrapping it (2**32 + 1 becomes 1) before the function sees it, so a caller must check its ints
(export/generate_audio.py does: `int32_arg`).

With --serving_version the SavedModel goes to <export_dir>/<version>/, the layout TensorFlow
Serving watches ("auto" picks one more than the largest existing version number).
"""

import json
import os
import shutil

from absl import flags
from absl import logging

from avrnn_tf import cli
from avrnn_tf.tf_setup import import_tensorflow

tf = import_tensorflow()

from avrnn_tf import restore  # noqa: E402  (after TensorFlow's quiet import)
from avrnn_tf import rng  # noqa: E402

SEED_SALT = 7          # Second word of every stateless seed pair (as loop.Run.generate).
IWAE_STREAM = 1        # fold_in stream of the IWAE trajectories' noise.
EMISSION_STREAM = 2    # fold_in stream of reconstruct's emission sample.
MAX_SEQUENCES = 4096   # Upper bound of num_sequences / batch sizes.
MAX_FRAMES = 1 << 20   # Upper bound of num_frames (~3.6 h at 16 kHz with 200-sample frames).
MAX_SAMPLES = 1000     # Upper bound of IWAE's K.
MAX_ELEMENTS = 1 << 28  # Upper bound of N * T * D (and K * B * T * D): 1 GiB of float32.
MAX_TEMPERATURE = 10.0
MAX_MEMORY_MB = 1024   # Default bound of one call's estimated working memory (--max_memory_mb).
# Working bytes per sequence-frame of each function, in units of network.row_width float32
# values: measured peaks of a tiny vrnn/normal model were 3.2 (reconstruct), 2.0 (score, per
# IWAE row), 1.2 (encode), 1.1 (continue_from, sample) and 1.0 (sample_chunk) such units; the
# factors leave room for the allocator's fragmentation over a series of calls (BUILD_NOTES).
MEMORY_FACTORS = {"reconstruct": 5, "score": 4, "encode": 2, "continue_from": 2, "sample": 2,
                  "sample_chunk": 2}


class ExportError(ValueError):
    """The workdir or the export directory is not usable; the message names the file."""


# ------------------------------------------------------------------------ in-graph checks
def _check_count(fn, name, value, upper):
    return tf.debugging.assert_equal(
        tf.logical_and(value >= 1, value <= upper), True,
        message=f"{fn}: {name} must be an integer from 1 to {upper}")


def _check_elements(fn, names, *factors, limit=MAX_ELEMENTS, message=None):
    """Asserts prod(factors) <= limit (in float64: int32 products overflow)."""
    total = tf.constant(1.0, tf.float64)
    for f in factors:
        total *= tf.cast(f, tf.float64)
    return tf.debugging.assert_less_equal(
        total, tf.constant(limit, tf.float64),
        message=message or f"{fn}: {names} must be at most {limit} values (memory bound)")


def _check_temperature(fn, temperature):
    ok = tf.logical_and(tf.math.is_finite(temperature),
                        tf.logical_and(temperature >= 0.0, temperature <= MAX_TEMPERATURE))
    return tf.debugging.assert_equal(
        ok, True, message=f"{fn}: temperature must be a number from 0 to {MAX_TEMPERATURE:g}")


def _check_frames(fn, name, frames):
    shape = tf.shape(frames)
    return [
        _check_count(fn, f"{name}.shape[0] (sequences)", shape[0], MAX_SEQUENCES),
        _check_count(fn, f"{name}.shape[1] (frames)", shape[1], MAX_FRAMES),
        tf.debugging.assert_equal(tf.reduce_all(tf.math.is_finite(frames)), True,
                                  message=f"{fn}: {name} holds NaN or infinite values"),
    ]


def _check_mask(fn, frames, mask):
    return [
        tf.debugging.assert_equal(tf.shape(mask), tf.shape(frames)[:2],
                                  message=f"{fn}: mask must have shape frames.shape[:2]"),
        tf.debugging.assert_equal(tf.reduce_all((mask >= 0.0) & (mask <= 1.0)), True,
                                  message=f"{fn}: mask values must be from 0 to 1"),
    ]


# --------------------------------------------------------------------------------- maths
def iwae_bound(network, x, mask, num_samples, seed):
    """IWAE-K per sequence [B] (Burda et al. 2016) over K whole posterior trajectories.

    log (1/K) sum_k exp( sum_t mask_t [log p(x_t|.) + log p(z_t^k|.) - log q(z_t^k|.)] ), with the
    K trajectories run as one batch of K*B sequences (sequence b of sample k at row k*B + b) on
    noise `stateless_normal([K*B, T, Z], seed)`. For "rnn" models every log-weight is the exact
    log-likelihood, so IWAE-K equals the ELBO. (A shared `bounds.iwae` may replace this helper.)
    """
    from avrnn_tf import bounds

    k = tf.convert_to_tensor(num_samples, tf.int32)
    xk = tf.tile(x, [k, 1, 1])
    mk = tf.tile(mask, [k, 1])
    terms = network.frame_terms(xk, rng.normal(network.noise_shape(xk), seed), mask=mk)
    log_w = tf.reduce_sum(
        bounds.masked(terms["log_px"] + terms["log_pz"] - terms["log_qz"], mk), axis=1)
    log_w = tf.reshape(log_w, [k, tf.shape(x)[0]])
    return tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(tf.cast(k, log_w.dtype))


class Generator(tf.Module):
    """The exported object: a built `SequenceNetwork` plus its data statistics and metadata.

    Args:
      network: a built `models.SequenceNetwork` with trained weights.
      metadata: dict with sample_rate, frame_size, mean, std and the strings of `metadata()`.
    """

    def __init__(self, network, metadata, max_memory_mb=MAX_MEMORY_MB):
        super().__init__(name="avrnn_generator")
        self._max_memory_mb = int(max_memory_mb)
        self._row_bytes = 4 * network.row_width
        self.network = network
        # The tf.Variables under the Keras 3 variables, tracked here so the SavedModel's restore op
        # covers them: without this the TF2 loader works but the session-based loader (TensorFlow
        # Serving, saved_model_cli run) reports "Could not find variable ...".
        self.tf_variables = [v.value for v in network.variables]
        spec = network.spec
        d = spec.x_dim
        # The exported state is the model's state parts concatenated (protocol.state_size).
        self._state_widths = [int(part.shape[-1]) for part in network.initial_state(1)]
        self._piano_roll = metadata.get("emission") == "bernoulli"
        self._mean = float(metadata["mean"])
        self._std = float(metadata["std"])
        self._meta = dict(metadata)
        self._meta.update(state_size=network.state_size, max_sequences=MAX_SEQUENCES,
                          max_frames=MAX_FRAMES, max_samples=MAX_SAMPLES,
                          max_elements=MAX_ELEMENTS, max_temperature=MAX_TEMPERATURE,
                          max_memory_mb=self._max_memory_mb,
                          memory_per_frame_json=json.dumps(  # Bytes per sequence-frame.
                              {fn: f * self._row_bytes for fn, f in MEMORY_FACTORS.items()}))
        scalar = lambda dtype, name: tf.TensorSpec([], dtype, name=name)
        frames = lambda name: tf.TensorSpec([None, None, d], tf.float32, name=name)
        mask = tf.TensorSpec([None, None], tf.float32, name="mask")
        state = tf.TensorSpec([None, network.state_size], tf.float32, name="state")
        count = lambda name: scalar(tf.int32, name)
        seed = scalar(tf.int32, "seed")
        temp = scalar(tf.float32, "temperature")
        self.sample = tf.function(self._sample, autograph=False, input_signature=[
            count("num_sequences"), count("num_frames"), seed, temp])
        self.sample_chunk = tf.function(self._sample_chunk, autograph=False, input_signature=[
            state, count("num_frames"), seed, count("start_frame"), temp])
        self.encode = tf.function(self._encode, autograph=False,
                                  input_signature=[frames("prefix_frames"), seed])
        self.continue_from = tf.function(self._continue_from, autograph=False, input_signature=[
            frames("prefix_frames"), count("num_frames"), seed, temp])
        self.score = tf.function(self._score, autograph=False, input_signature=[
            frames("frames"), mask, seed, count("num_samples")])
        self.reconstruct = tf.function(self._reconstruct, autograph=False, input_signature=[
            frames("frames"), mask, seed])
        self.metadata = tf.function(self._metadata, autograph=False, input_signature=[])

    SIGNATURES = ("sample", "sample_chunk", "encode", "continue_from", "score", "reconstruct",
                  "metadata")

    def signatures(self):
        """{name: tf.function} of the serving signatures. Handed to tf.saved_model.save as
        functions, not as concrete functions: save traces each one in its own save context, so
        tracing them beforehand would only trace every signature twice."""
        return {name: getattr(self, name) for name in self.SIGNATURES}

    # ------------------------------------------------------------------------- helpers
    @staticmethod
    def seed_pair(seed):
        return tf.stack([tf.cast(seed, tf.int32), tf.constant(SEED_SALT, tf.int32)])

    def waveform(self, frames):
        """Standardized frames [N, T, D] -> samples [N, T*D] in [-1, 1]."""
        wave = frames * self._std + self._mean
        return tf.reshape(tf.clip_by_value(wave, -1.0, 1.0), [tf.shape(frames)[0], -1])

    def rendered(self, frames):
        """What a caller plays or shows besides the frames [N, T, D]: {"waveform": [N, T*D]},
        or {"piano_roll": uint8 [N, T, D]} for a piano-roll model."""
        if self._piano_roll:
            return {"piano_roll": tf.cast(frames, tf.uint8)}
        return {"waveform": self.waveform(frames)}

    def _check_memory(self, fn, rows, frames):
        """Refuses a call whose working memory, estimated as rows x frames x the per-frame bytes
        of `fn` (MEMORY_FACTORS), exceeds the export's bound (max_memory_mb)."""
        per_frame = MEMORY_FACTORS[fn] * self._row_bytes
        return _check_elements(
            fn, "", rows, frames, per_frame, limit=self._max_memory_mb * 2 ** 20,
            message=f"{fn}: the request needs more than the memory bound of {self._max_memory_mb} "
                    f"MiB (estimated {per_frame} bytes per sequence and frame); split it into "
                    "smaller calls or export with a larger --max_memory_mb")

    def _generate(self, state, num_frames, seed, start, temperature):
        frames, state = self.network.sample(
            None, num_frames, self.seed_pair(seed), temperature,
            initial_state=tf.split(state, self._state_widths, axis=-1), start_step=start,
            return_state=True)
        return {"frames": frames, "state": tf.concat(state, axis=-1), **self.rendered(frames)}

    # ------------------------------------------------------------------------ signatures
    def _sample(self, num_sequences, num_frames, seed, temperature=1.0):
        checks = [_check_count("sample", "num_sequences", num_sequences, MAX_SEQUENCES),
                  _check_count("sample", "num_frames", num_frames, MAX_FRAMES),
                  _check_elements("sample", "num_sequences * num_frames * frame_size",
                                  num_sequences, num_frames, self.network.spec.x_dim),
                  self._check_memory("sample", num_sequences, num_frames),
                  _check_temperature("sample", temperature)]
        with tf.control_dependencies(checks):
            frames = self.network.sample(num_sequences, num_frames, self.seed_pair(seed),
                                         temperature)
        return {"frames": frames, **self.rendered(frames)}

    def _sample_chunk(self, state, num_frames, seed, start_frame, temperature=1.0):
        n = tf.shape(state)[0]
        checks = [_check_count("sample_chunk", "state.shape[0] (sequences)", n, MAX_SEQUENCES),
                  _check_count("sample_chunk", "num_frames", num_frames, MAX_FRAMES),
                  tf.debugging.assert_equal(
                      tf.logical_and(start_frame >= 0, start_frame <= MAX_FRAMES), True,
                      message=f"sample_chunk: start_frame must be an integer from 0 to {MAX_FRAMES}"),
                  _check_elements("sample_chunk", "state.shape[0] * num_frames * frame_size",
                                  n, num_frames, self.network.spec.x_dim),
                  self._check_memory("sample_chunk", n, num_frames),
                  tf.debugging.assert_equal(tf.reduce_all(tf.math.is_finite(state)), True,
                                            message="sample_chunk: state holds NaN or infinite values"),
                  _check_temperature("sample_chunk", temperature)]
        with tf.control_dependencies(checks):
            return self._generate(state, num_frames, seed, start_frame,
                                  temperature)

    def _posterior_noise(self, x, seed):
        return rng.normal(self.network.noise_shape(x), self.seed_pair(seed))

    def _encode(self, prefix_frames, seed):
        shape = tf.shape(prefix_frames)
        checks = _check_frames("encode", "prefix_frames", prefix_frames) + [
            self._check_memory("encode", shape[0], shape[1])]
        with tf.control_dependencies(checks):
            state = self.network.final_state(prefix_frames,
                                             self._posterior_noise(prefix_frames, seed))
        return {"state": tf.concat(state, axis=-1)}

    def _continue_from(self, prefix_frames, num_frames, seed, temperature=1.0):
        n = tf.shape(prefix_frames)[0]
        checks = _check_frames("continue_from", "prefix_frames", prefix_frames) + [
            _check_count("continue_from", "num_frames", num_frames, MAX_FRAMES),
            _check_elements("continue_from", "prefix_frames.shape[0] * num_frames * frame_size",
                            n, num_frames, self.network.spec.x_dim),
            self._check_memory("continue_from", n, tf.shape(prefix_frames)[1] + num_frames),
            _check_temperature("continue_from", temperature)]
        with tf.control_dependencies(checks):
            state = self._encode(prefix_frames, seed)["state"]
            return self._generate(state, num_frames, seed, 0, temperature)

    def _score(self, frames, mask, seed, num_samples):
        from avrnn_tf import bounds

        shape = tf.shape(frames)
        checks = _check_frames("score", "frames", frames) + _check_mask("score", frames, mask) + [
            _check_count("score", "num_samples", num_samples, MAX_SAMPLES),
            _check_elements("score", "num_samples * frames.size", num_samples, shape[0],
                            shape[1], shape[2]),
            self._check_memory("score", (num_samples + 1) * shape[0], shape[1])]
        with tf.control_dependencies(checks):
            b = bounds.elbo(self.network.frame_terms(
                frames, self._posterior_noise(frames, seed), mask=mask), mask)
            iwae = iwae_bound(self.network, frames, mask, num_samples,
                              rng.fold_in(self.seed_pair(seed), IWAE_STREAM))
        return {"elbo": b["elbo"], "log_px": b["log_px"], "kl": b["kl"], "iwae": iwae,
                "num_frames": b["num_frames"]}

    def _reconstruct(self, frames, mask, seed):
        from avrnn_tf import bounds

        shape = tf.shape(frames)
        checks = _check_frames("reconstruct", "frames", frames) + _check_mask(
            "reconstruct", frames, mask) + [self._check_memory("reconstruct", shape[0], shape[1])]
        with tf.control_dependencies(checks):
            net = self.network
            out = net.trajectory(frames, self._posterior_noise(frames, seed), mask=mask)
            params = out["emission_params"]
            dist = net.emission_head.new(params)
            keep = tf.cast(mask > 0, tf.float32)[:, :, None]
            mean = dist.mean() * keep
            flat = tf.reshape(params, [-1, tf.shape(params)[-1]])
            drawn = net.sample_emission(flat, rng.fold_in(self.seed_pair(seed), EMISSION_STREAM),
                                        1.0)
            drawn = tf.reshape(drawn, tf.shape(frames)) * keep
            log_px = bounds.masked(dist.log_prob(frames), mask)
        rendered = self.rendered(drawn) if self._piano_roll else self.rendered(mean)
        return {"mean": mean, "sample": drawn, "log_px": log_px, **rendered}

    def _metadata(self):
        out = {}
        for key, value in sorted(self._meta.items()):
            if isinstance(value, bool) or isinstance(value, str):
                out[key] = tf.constant(str(value))
            elif isinstance(value, int):
                out[key] = tf.constant(value, tf.int64)
            else:
                out[key] = tf.constant(float(value), tf.float64)
        return out


# ------------------------------------------------------------------------ from a workdir
def load_network(workdir, checkpoint=""):
    """The workdir's network restored alone: `restore.load_run`'s LoadedRun (network, config,
    stats, checkpoint path, step, why). ExportError with one line naming the file otherwise."""
    try:
        run = restore.load_run(workdir, checkpoint,
                               warn=lambda line: print(f"avrnn-export: {line}", flush=True))
    except restore.RestoreError as e:
        raise ExportError(str(e)) from None
    return run


def build_generator(workdir, checkpoint="", max_memory_mb=MAX_MEMORY_MB):
    """The `Generator` of a workdir's best (or named) checkpoint (`restore.load_run`)."""
    import avrnn_tf
    from avrnn_tf import config as config_lib

    run = load_network(workdir, checkpoint)
    network, config, stats, path = run.network, run.config, run.stats, run.checkpoint
    metadata = {
        "sample_rate": int(stats["sample_rate"]), "frame_size": int(stats["frame_size"]),
        "mean": float(stats["mean"]), "std": float(stats["std"]),
        "model_kind": config.model.kind, "emission": config.model.emission,
        "config_json": config_lib.to_json(config),
        "data_stats_json": json.dumps(stats, sort_keys=True),
        "package_version": avrnn_tf.__version__,
        "checkpoint": os.path.basename(path), "step": run.step,
    }
    generator = Generator(network, metadata, max_memory_mb)
    generator.checkpoint_why = run.why  # For the CLI's output; not part of the SavedModel.
    return generator


def serving_path(export_dir, serving_version):
    """export_dir itself, or <export_dir>/<version> for TensorFlow Serving ("auto" = next)."""
    if not serving_version:
        return export_dir
    if serving_version == "auto":
        existing = [int(n) for n in os.listdir(export_dir) if n.isdigit()] \
            if os.path.isdir(export_dir) else []
        return os.path.join(export_dir, str(max(existing, default=0) + 1))
    if not serving_version.isdigit() or int(serving_version) < 1:
        raise ExportError(f"--serving_version={serving_version!r}: expected 'auto' or an "
                          "integer >= 1")
    return os.path.join(export_dir, str(int(serving_version)))


def export(workdir, export_dir, checkpoint="", serving_version="", overwrite=False,
           max_memory_mb=MAX_MEMORY_MB):
    """Writes the SavedModel; returns (path written, Generator)."""
    path = serving_path(export_dir, serving_version)
    if os.path.exists(path) and os.listdir(path):
        if not overwrite:
            raise ExportError(f"{path}: exists and is not empty (pass --overwrite to replace it)")
        shutil.rmtree(path)
    generator = build_generator(workdir, checkpoint, max_memory_mb)
    # The signatures are traced without the training-speed custom gradients (cells.dense_product,
    # SequenceNetwork.recurrence): nothing differentiates through sample or score, and a loaded
    # SavedModel warns about every function holding custom-gradient ops it has no gradient for.
    from avrnn_tf import cells

    with cells.autodiff_only():
        tf.saved_model.save(generator, path, signatures=generator.signatures())
    return path, generator


# ---------------------------------------------------------------------------------- CLI
FLAGS = flags.FLAGS


def define_flags():
    """The CLI's flags, defined only when the program runs (importing this module for its
    functions must not claim flag names such as --workdir in the global FLAGS)."""
    flags.DEFINE_string("workdir", None, "A workdir written by avrnn-train.")
    flags.DEFINE_string("export_dir", None, "Where to write the SavedModel.")
    flags.DEFINE_string("checkpoint", "",
                        "Checkpoint to export: '' = the best (checkpoints/best/; the latest if "
                        "there is none), 'best', 'latest', 'ckpt-N', 'N' or a path.")
    flags.DEFINE_string("serving_version", "",
                        "'' = write the SavedModel into export_dir; an integer N or 'auto' = write "
                        "TensorFlow Serving's layout export_dir/N/ ('auto': one more than the "
                        "largest existing N).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing non-empty export directory.")
    flags.DEFINE_integer("max_memory_mb", MAX_MEMORY_MB,
                         "Bound of the working memory of one call of any exported function "
                         "(estimated before any work; a larger request is refused with this "
                         "bound in the message).")


def fail(message):
    cli.fail("avrnn-export", message)


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    if not FLAGS.workdir or not FLAGS.export_dir:
        fail("--workdir and --export_dir are required")
    if not 16 <= FLAGS.max_memory_mb <= 1 << 20:
        fail(f"--max_memory_mb={FLAGS.max_memory_mb}: expected MiB from 16 to {1 << 20}")
    try:
        path, generator = export(FLAGS.workdir, FLAGS.export_dir, FLAGS.checkpoint,
                                 FLAGS.serving_version, FLAGS.overwrite, FLAGS.max_memory_mb)
    except ExportError as e:
        fail(str(e))
    meta = generator._meta
    print(f"avrnn-export: wrote {os.path.abspath(path)} ({meta['model_kind']}/{meta['emission']}, "
          f"{meta['checkpoint']}, {meta['sample_rate']} Hz, frame {meta['frame_size']}; "
          f"signatures: {', '.join(Generator.SIGNATURES)})", flush=True)
    print(f"avrnn-export: exported {meta['checkpoint']} (step {meta['step']}), "
          f"{generator.checkpoint_why}", flush=True)


def run():
    """Console-script entry point."""
    define_flags()
    cli.run(main, "avrnn-export")


if __name__ == "__main__":
    run()
