"""avrnn-eval: held-out ELBO / IWAE-K / FIVO-K of a trained run, in nats per frame and per sequence.

  avrnn-eval --workdir=DIR [--bound=elbo,iwae,fivo] [--num_samples=K] [--split=test|valid]
             [--checkpoint=ckpt-2000] [--max_sequences=N] [--output=FILE.json]
             [--diagnostics [--critic_steps=500]]   (latent diagnostics: avrnn_tf/diagnostics.py)
  python -m avrnn_tf.evaluate ...   (the same program)
  e.g. avrnn-eval --workdir=runs/default --split=valid --bound=elbo,iwae --num_samples=100

Reads what `avrnn-train` wrote into DIR (config.json, data_stats.json, checkpoints/), restores the
best checkpoint (or the one named: --checkpoint=latest, ckpt-N; the output says which and why),
and evaluates whole held-out sequences with masks:

  elbo   sum_t [log p(x_t | z_t, h_{t-1}) - KL_t] with the analytic KL, one posterior sample;
  iwae   IWAE-K, K whole trajectories per sequence;
  fivo   FIVO-K, a particle filter with multinomial resampling when ESS <= K/2 (for a
         posterior that reads frames after t, Z-Forcing's or SRNN's smoothing one, still a lower
         bound but not a filtering bound: the output says so in a note).
For RNN-Gauss/GMM (no latent) every bound is the exact log-likelihood.

The K samples are batched ([K * B] rows, see bounds.py). Memory is bounded by --max_elements, a
budget on the widest per-frame tensor of one model call, K * B * T * W floats with W = emission
parameters + 4H + D (a GMM emission on 200-sample frames has W > 8,000): a batch of sequences is
split into smaller groups,
and for IWAE the K samples are split into chunks whose log-weights are merged exactly
(log-mean-exp over all K). FIVO's particles interact, so FIVO splits sequences only (one sequence
of K particles at least). Sequences are never truncated.

Output: a table on stdout; JSON (default DIR/eval/<split>_<bounds>_k<K>_<checkpoint>.json) with,
per bound, per_frame = sum of bounds / sum of frames and per_sequence = mean over sequences, plus
num_sequences and num_frames; TensorBoard scalars eval/<split>/<bound>_per_frame and
eval/<split>/<bound>_per_sequence in DIR/tensorboard at the checkpoint's step.

Splits: FSDD and piano-roll files have an official test split; the synthetic corpus and other
audio directories have none (use --split=valid: the run's validation utterances, all of them).
"""

import json
import math
import os
import time

from absl import flags
from absl import logging

from avrnn_tf import cli
from avrnn_tf.tf_setup import import_tensorflow

BOUNDS = ("elbo", "iwae", "fivo")
# FIVO of a model whose posterior reads frames after t (protocol.posterior_reads_future).
FIVO_LOOKAHEAD_NOTE = ("this posterior reads frames after t (a backward RNN), so the value is a "
                       "lower bound on log p(x) but not FIVO's filtering bound: the filter "
                       "resamples on proposals that saw the future")
DEFAULT_MAX_ELEMENTS = 25_000_000  # 100 MB of float32 in the widest tensor of one model call.

FLAGS = flags.FLAGS


def define_flags():
    """The program's flags (defined on demand so that importing the module defines none)."""
    flags.DEFINE_string("workdir", None, "A run directory written by avrnn-train.")
    flags.DEFINE_list("bound", ["elbo"], "Bounds to compute, any of elbo, iwae, fivo (comma-separated).")
    flags.DEFINE_integer("num_samples", 100, "K, samples (IWAE) or particles (FIVO).")
    flags.DEFINE_enum("split", "test", ["test", "valid"], "Held-out split to evaluate.")
    flags.DEFINE_string("checkpoint", "", "Checkpoint: '' = the best (checkpoints/best/, by the "
                        "validation value of the run's objective; the latest if there is none), "
                        "'best', 'latest', 'ckpt-N', 'N' or a path.")
    flags.DEFINE_integer("batch_size", 0, "Sequences per batch; 0 = config.data.valid_batch_size.")
    flags.DEFINE_integer("max_elements", DEFAULT_MAX_ELEMENTS,
                         "Memory budget: at most this many floats (K * B * T * W, W the widest "
                         "per-frame tensor) per model call.")
    flags.DEFINE_integer("max_sequences", 0, "Evaluate only the first N sequences of the split (0 = all).")
    flags.DEFINE_integer("seed", 0, "Seed of the evaluation noise and resampling draws.")
    flags.DEFINE_string("output", "", "JSON output path; default DIR/eval/<split>_<bounds>_k<K>_<ckpt>.json.")
    flags.DEFINE_bool("diagnostics", False, "Also run the latent diagnostics (avrnn_tf/diagnostics.py): "
                      "fresh-critic W, KL split, per-dimension scales, active units.")
    flags.DEFINE_integer("critic_steps", 500, "Training steps of the diagnostics' fresh critic.")


class EvalError(ValueError):
    """The workdir, checkpoint, split or arguments cannot be evaluated as asked."""


def log(message):
    print(f"avrnn-eval: {message}", flush=True)


# ------------------------------------------------------------------------------- the run
def resolve_data_path(config, stats):
    """config.data.path as given at training time, or the absolute source recorded in data_stats."""
    path = config.data.path
    if path and not os.path.exists(path) and os.path.exists(stats.get("source", "")):
        config.data.path = stats["source"]
    return config


def held_out_batches(config, stats, split, batch_size, max_sequences):
    """Whole held-out sequences as padded (x [B, T, D], mask [B, T]) numpy batches."""
    from avrnn_tf.data import pipeline

    corpus = pipeline.load_corpus(config.data)
    utterances = getattr(corpus, split)
    if not utterances:
        hint = " (use --split=valid)" if split == "test" else ""
        raise EvalError(f"the data of this run ({corpus.source}) has no {split} split{hint}; "
                        "only FSDD (recording indices 0-4) and piano-roll files have a test split")
    if max_sequences:
        utterances = utterances[:max_sequences]
    standardizer = pipeline.Standardizer(stats["mean"], stats["std"])
    return pipeline.eval_batches(utterances, standardizer, config.data.frame_size, batch_size), corpus


# ---------------------------------------------------------------------------- the bounds
class BoundEvaluator:
    """Per-sequence bounds of one network with bounded memory (see the module docstring)."""

    def __init__(self, network, num_samples, max_elements, seed):
        import tensorflow as tf

        from avrnn_tf import bounds
        from avrnn_tf import objectives
        from avrnn_tf import rng

        self.rng = rng
        self.network = network
        self.k = int(num_samples)
        self.max_elements = int(max_elements)
        self.seed = int(seed)
        self.tf, self.bounds = tf, bounds
        self.row_width = network.row_width
        self._spec = objectives.batch_signature(network.spec.x_dim, seed=True)
        self._elbo = tf.function(self._elbo_fn, autograph=False, input_signature=self._spec)
        self._iwae = {}
        self._fivo = tf.function(self._fivo_fn, autograph=False, input_signature=self._spec)

    def _noise(self, x, rows, seed):
        """Noise for `rows` copies of the batch x ([rows * B, T, Z], as bounds.tile_batch)."""
        shape = self.network.noise_shape(x)
        return self.rng.normal(self.tf.concat([[rows * shape[0]], shape[1:]], 0), seed)

    def _elbo_fn(self, x, mask, seed):
        terms = self.network.frame_terms(x, self._noise(x, 1, seed), mask=mask)
        return self.bounds.elbo(terms, mask)["elbo"]

    def _iwae_log_weights(self, k):
        if k not in self._iwae:
            tf = self.tf

            def fn(x, mask, seed):
                tiled = self.bounds.tile_batch
                terms = self.network.frame_terms(tiled(x, k), self._noise(x, k, seed),
                                                 mask=tiled(mask, k))
                return self.bounds.log_weights(terms, mask, k)

            self._iwae[k] = tf.function(fn, autograph=False, input_signature=self._spec)
        return self._iwae[k]

    def _fivo_fn(self, x, mask, seed):
        noise_seed, resample_seed = self.rng.split(seed, 2)
        out = self.bounds.fivo(self.network, x, mask, self._noise(x, self.k, noise_seed), self.k,
                               resample_seed)
        return out["fivo"], out["num_resamples"]

    def _seed(self, *parts):
        tf = self.tf
        seed = tf.constant([self.seed, 11], tf.int32)
        for p in parts:
            seed = self.rng.fold_in(seed, p)
        return seed

    def _groups(self, x, mask, rows):
        """Splits a batch into groups of sequences with rows * B * T * W <= max_elements (B >= 1)."""
        per_group = max(1, self.max_elements // max(1, rows * x.shape[1] * self.row_width))
        for start in range(0, x.shape[0], per_group):
            yield start, x[start:start + per_group], mask[start:start + per_group]

    def __call__(self, bound, x, mask, batch_index):
        """Per-sequence values [B] (numpy) of `bound` on one padded batch; plus extra stats."""
        import numpy as np

        tf = self.tf
        values, extra = [], {}
        if bound == "elbo":
            for g, xs, ms in self._groups(x, mask, 1):
                values.append(self._elbo(xs, ms, self._seed(batch_index, g)).numpy())
        elif bound == "iwae":
            # K split into chunks of k_chunk samples whose log-weights are merged exactly.
            k_chunk = max(1, min(self.k, self.max_elements // max(1, x.shape[1] * self.row_width)))
            for g, xs, ms in self._groups(x, mask, k_chunk):
                parts, done, c = [], 0, 0
                while done < self.k:
                    k = min(k_chunk, self.k - done)
                    parts.append(self._iwae_log_weights(k)(xs, ms, self._seed(batch_index, g, c)))
                    done, c = done + k, c + 1
                values.append(self.bounds.log_mean_exp(tf.concat(parts, axis=0), axis=0).numpy())
        elif bound == "fivo":
            resamples = []
            for g, xs, ms in self._groups(x, mask, self.k):
                value, count = self._fivo(xs, ms, self._seed(batch_index, g))
                values.append(value.numpy())
                resamples.append(count.numpy())
            extra["num_resamples"] = np.concatenate(resamples)
        else:
            raise EvalError(f"unknown bound {bound!r}; expected one of {', '.join(BOUNDS)}")
        return np.concatenate(values), extra


def evaluate_workdir(workdir, bounds_to_run=("elbo",), num_samples=100, split="test",
                     checkpoint="", batch_size=0, max_elements=DEFAULT_MAX_ELEMENTS,
                     max_sequences=0, seed=0, output="", write=True, diagnostics=False,
                     critic_steps=500):
    """Evaluates a run directory; returns the result dict (also written as JSON and TensorBoard).

    Raises:
      EvalError: bad workdir/checkpoint/split/arguments; data.audio.DataError: unreadable data.
    """
    import numpy as np
    import tensorflow as tf

    unknown = [b for b in bounds_to_run if b not in BOUNDS]
    if unknown or not bounds_to_run:
        raise EvalError(f"--bound={','.join(bounds_to_run)}: expected a comma-separated subset of "
                        f"{', '.join(BOUNDS)}")
    if num_samples < 1:
        raise EvalError(f"--num_samples={num_samples}: expected an integer >= 1")
    if max_elements < 1:
        raise EvalError(f"--max_elements={max_elements}: expected an integer >= 1")
    if critic_steps < 0:
        raise EvalError(f"--critic_steps={critic_steps}: expected an integer >= 0")
    from avrnn_tf import registry
    from avrnn_tf import restore

    try:
        if diagnostics:  # Checked before anything heavy is loaded.
            kind = restore.read_config(workdir).model.kind
            if not registry.has_latent(kind):
                raise EvalError(f"--diagnostics: model kind {kind!r} has no latent variables to "
                                "diagnose")
        run = restore.load_run(workdir, checkpoint, warn=log)
    except restore.RestoreError as e:
        raise EvalError(str(e)) from None
    config, stats, network, step, ckpt_path = run[:5]
    resolve_data_path(config, stats)
    batches, corpus = held_out_batches(config, stats, split, batch_size or config.data.valid_batch_size,
                                       max_sequences)
    evaluator = BoundEvaluator(network, num_samples, max_elements, seed)
    num_frames = np.concatenate([m.sum(axis=1) for _, m in batches])
    result = {
        "workdir": os.path.abspath(workdir), "checkpoint": ckpt_path, "step": step,
        "checkpoint_why": run.why, "split": split,
        "model": {"kind": config.model.kind, "emission": config.model.emission},
        "data": corpus.source, "num_sequences": int(len(num_frames)),
        "num_frames": int(num_frames.sum()), "num_samples": int(num_samples), "seed": int(seed),
        "num_parameters": int(sum(int(np.prod(v.shape)) for v in network.trainable_variables)),
        "units": "nats (natural log); per_frame = sum over sequences / sum of frames",
        "bounds": {},
    }
    for bound in bounds_to_run:
        start = time.time()
        per_seq, extras = [], {}
        for i, (x, mask) in enumerate(batches):
            values, extra = evaluator(bound, x, mask, i)
            per_seq.append(values)
            for k, v in extra.items():
                extras.setdefault(k, []).append(v)
        per_seq = np.concatenate(per_seq).astype(np.float64)
        entry = {
            "per_frame": float(per_seq.sum() / num_frames.sum()),
            "per_sequence": float(per_seq.mean()),
            "total": float(per_seq.sum()),
            "num_samples": 1 if bound == "elbo" else int(num_samples),
            "seconds": round(time.time() - start, 3),
        }
        if "num_resamples" in extras:
            entry["mean_resamples_per_sequence"] = float(np.concatenate(extras["num_resamples"]).mean())
        if not np.all(np.isfinite(per_seq)):
            entry["non_finite_sequences"] = int(np.sum(~np.isfinite(per_seq)))
        if bound == "fivo" and network.posterior_reads_future:
            entry["note"] = FIVO_LOOKAHEAD_NOTE
        result["bounds"][bound] = entry
    if diagnostics:
        from avrnn_tf import diagnostics as diagnostics_lib

        try:
            result["diagnostics"] = diagnostics_lib.diagnose_run(config, network, batches,
                                                                 ckpt_path, critic_steps, seed)
        except ValueError as e:
            raise EvalError(f"--diagnostics: {e}") from None
    if write:
        name = (f"{split}_{'_'.join(bounds_to_run)}_k{num_samples}_"
                f"{os.path.basename(ckpt_path)}{'_diagnostics' if diagnostics else ''}.json")
        output = output or os.path.join(workdir, "eval", name)
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
        result["output"] = output
        writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
        with writer.as_default(step=step):
            for bound, entry in result["bounds"].items():
                tf.summary.scalar(f"eval/{split}/{bound}_per_frame", entry["per_frame"])
                tf.summary.scalar(f"eval/{split}/{bound}_per_sequence", entry["per_sequence"])
        writer.flush()
        if diagnostics:
            diagnostics_lib.write_summaries(result["diagnostics"], writer, step,
                                            f"eval/{split}/diagnostics")
    return result


def format_result(result):
    lines = [f"{result['model']['kind']}/{result['model']['emission']} at step {result['step']} "
             f"({os.path.basename(result['checkpoint'])}), {result['split']} split: "
             f"{result['num_sequences']} sequences, {result['num_frames']} frames",
             f"  checkpoint: {os.path.relpath(result['checkpoint'], result['workdir'])} "
             f"(step {result['step']}), {result['checkpoint_why']}",
             f"  {'bound':<8} {'K':>5} {'nats/frame':>12} {'nats/sequence':>15}"]
    for bound, e in result["bounds"].items():
        lines.append(f"  {bound:<8} {e['num_samples']:>5} {e['per_frame']:>12.4f} "
                     f"{e['per_sequence']:>15.2f}")
    lines += [f"  note: {bound}: {e['note']}" for bound, e in result["bounds"].items()
              if "note" in e]
    if "diagnostics" in result:
        from avrnn_tf import diagnostics

        lines += ["  diagnostics:", diagnostics.format_result(result["diagnostics"])]
    return "\n".join(lines)


def fail(message):
    cli.fail("avrnn-eval", message)


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    import_tensorflow()
    from avrnn_tf.data.audio import DataError

    try:
        result = evaluate_workdir(
            FLAGS.workdir, tuple(FLAGS.bound), FLAGS.num_samples, FLAGS.split, FLAGS.checkpoint,
            FLAGS.batch_size, FLAGS.max_elements, FLAGS.max_sequences, FLAGS.seed, FLAGS.output,
            diagnostics=FLAGS.diagnostics, critic_steps=FLAGS.critic_steps)
    except (EvalError, DataError) as e:
        fail(str(e))
    print(format_result(result), flush=True)
    log(f"wrote {result['output']}")
    bad = [b for b, e in result["bounds"].items() if not math.isfinite(e["per_frame"])]
    if bad:
        fail(f"non-finite values for {', '.join(bad)}")


def run():
    """Console-script entry point (avrnn-eval)."""
    define_flags()
    flags.mark_flag_as_required("workdir")
    cli.run(main, "avrnn-eval")


if __name__ == "__main__":
    run()
