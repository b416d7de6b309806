"""avrnn-compare: trains every model of a list on FSDD and/or JSB with one protocol and several
seeds, evaluates each run's best checkpoint (or, --checkpoint=latest, its last) on the test split,
and writes one markdown table (mean +- std over seeds of every bound, in nats per frame) with
validation curves; --diagnostics adds the KL split and a fresh critic's Wasserstein estimate.

  avrnn-compare --outdir=runs/compare --configs=configs/vrnn_gauss.py:tiny --datasets=jsb --steps=60
  avrnn-compare --outdir=runs/jsb --datasets=jsb --steps=0 --seeds=0,1,2 --bounds=elbo,iwae,fivo \\
      --configs=configs/rnn_gauss.py,configs/vrnn_gauss.py,configs/vrnn_gauss.py+train.objective=fivo+train.num_particles=4
  python -m avrnn_tf.experiments.compare ...     # the same program

A config is "path[:variants][+field=value...]": it is loaded with the dataset's variant added
(`:fsdd` or `:jsb`, the recipes of avrnn_tf/config.py), then each `+field=value` sets one config
field (typed and checked like --config.field=value), then the budget flags override steps, batch
size and (when non-zero) the model sizes, identically for every model. On piano-rolls the emission
is Bernoulli for every config, so configs that differ only in their (speech) emission are trained
once; the table says which.

Each run lives in <outdir>/<dataset>/<config name>/seed<N>. Rerunning the command resumes: a run
whose step count is reached is not trained again, and an evaluation already made with the same
bounds, K and checkpoint is read back (<run>/compare.json). So one table can be filled by several
processes at once (e.g. one per seed, with --seeds=N) and then assembled by the full command.

Numbers are nats per frame (natural log) on whole test sequences: FSDD frames are 200 samples
standardized with the training mean/std; JSB frames are 88 binary notes. For JSB the table also
has the independent-notes baseline (each note on with its training frequency, exact).
"""

import json
import os
import sys
import time

from absl import flags

from avrnn_tf import cli
from avrnn_tf import config as config_lib
from avrnn_tf.experiments import specs
from avrnn_tf.tf_setup import import_tensorflow

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["configs/rnn_gauss.py", "configs/rnn_gmm.py", "configs/vrnn_i.py",
                              "configs/storn.py", "configs/vrnn_gauss.py", "configs/vrnn_gmm.py",
                              "configs/zforcing.py", "configs/srnn.py"],
                  "Configs, each path[:variants][+field=value...].")
flags.DEFINE_list("datasets", ["fsdd", "jsb"], "Datasets: fsdd and/or jsb.")
flags.DEFINE_string("outdir", None, "Directory of the runs and of comparison.md.")
flags.DEFINE_integer("steps", 2000, "Training steps for every model (0 = each config's own "
                     "budget, e.g. a recipe with early stopping).")
flags.DEFINE_list("seeds", ["0"], "train.seed of each run of every config; the table shows the "
                  "mean and standard deviation over them.")
flags.DEFINE_bool("report_only", False, "Train and evaluate nothing: tabulate the runs already "
                  "finished and evaluated in --outdir (a row says how many seeds it has).")
flags.DEFINE_list("bounds", ["elbo", "iwae"], "Bounds evaluated on the test split: elbo, iwae, fivo.")
flags.DEFINE_integer("batch_size", 0, "Training batch size for every model (0 = config's).")
flags.DEFINE_integer("h_dim", 0, "LSTM state for every model (0 = config's).")
flags.DEFINE_integer("z_dim", 0, "Latent size for every model (0 = config's).")
flags.DEFINE_integer("mlp_units", 0, "MLP width for every model (0 = config's).")
flags.DEFINE_integer("fsdd_max_files", 0, "Read only the first N FSDD files (0 = all 3,000).")
flags.DEFINE_integer("num_samples", 100, "K of the IWAE-K and FIVO-K columns.")
flags.DEFINE_integer("max_test_sequences", 0, "Evaluate the first N test sequences (0 = all).")
flags.DEFINE_string("checkpoint", "best", "Checkpoint evaluated in every run: best (by the run's "
                    "own validation objective) or latest (a fixed budget, e.g. with early "
                    "stopping off).")
flags.DEFINE_bool("diagnostics", False, "Also run avrnn-eval's latent diagnostics on the test "
                  "split: columns for the KL split (aggregate + information term) and the fresh "
                  "critic's Wasserstein estimate (avrnn_tf/diagnostics.py).")
flags.DEFINE_integer("critic_steps", 1000, "Training steps of the diagnostics' fresh critic.")
flags.DEFINE_string("fsdd_path", "", "FSDD directory ('' = the configs' :fsdd variant, "
                    "configs/datasets.py).")
flags.DEFINE_string("jsb_path", "", "JSB Chorales file ('' = the configs' :jsb variant, "
                    "configs/datasets.py).")
flags.mark_flag_as_required("outdir")

CURVE_TAG = "valid/elbo_per_frame"  # Every model kind and objective logs it at each validation.


def fail(message):
    cli.fail("avrnn-compare", message)


def load_config(spec, dataset):
    """Config of `spec` ("path[:variants][+field=value...]") with the dataset's variant added."""
    try:
        return specs.load_config(spec, dataset)
    except config_lib.ConfigError as e:
        fail(str(e))


def apply_budget(config, dataset):
    t = config.train
    if FLAGS.steps:
        t.steps = FLAGS.steps
        t.eval_every = max(1, min(t.eval_every, FLAGS.steps))
        t.checkpoint_every = max(1, min(t.checkpoint_every, FLAGS.steps))
    t.audio_every, t.num_final_samples = 0, 0
    if FLAGS.batch_size:
        config.data.batch_size = FLAGS.batch_size
    for field in ("h_dim", "z_dim", "mlp_units"):
        if getattr(FLAGS, field):
            config.model[field] = getattr(FLAGS, field)
    if dataset == "fsdd":
        config.data.path = FLAGS.fsdd_path or config.data.path
        config.data.max_files = FLAGS.fsdd_max_files
    else:
        config.data.path = FLAGS.jsb_path or config.data.path
    try:
        config_lib.validate(config)
    except config_lib.ConfigError as e:
        fail(str(e))
    return config


def model_signature(config):
    """What makes two runs the same model: the config without its name-only differences."""
    return json.dumps(config.to_dict(), sort_keys=True)


def eval_key():
    key = f"test:{','.join(FLAGS.bounds)}:k{FLAGS.num_samples}:max{FLAGS.max_test_sequences}"
    if FLAGS.checkpoint != "best":
        key += f":{FLAGS.checkpoint}"
    if FLAGS.diagnostics:
        key += f":diagnostics{FLAGS.critic_steps}"
    return key


def run_one(config, workdir):
    """Trains (unless done) and evaluates one run; returns its record (compare.json)."""
    from avrnn_tf import evaluate
    from avrnn_tf import loop

    record_path = os.path.join(workdir, "compare.json")
    record = {}
    if os.path.exists(record_path):
        with open(record_path) as f:
            record = json.load(f)
    if record.get("steps") != config.train.steps:
        start = time.time()
        loop.train_and_evaluate(config, workdir, verbose=0)
        record = {"steps": config.train.steps, "train_seconds": round(time.time() - start, 1)}
    key = eval_key()
    if key not in record.get("eval", {}):
        from avrnn_tf import registry

        result = evaluate.evaluate_workdir(
            workdir, tuple(FLAGS.bounds), FLAGS.num_samples, "test",
            checkpoint="" if FLAGS.checkpoint == "best" else FLAGS.checkpoint,
            max_sequences=FLAGS.max_test_sequences,
            diagnostics=FLAGS.diagnostics and registry.has_latent(config.model.kind),
            critic_steps=FLAGS.critic_steps)
        record.setdefault("eval", {})[key] = result
    add_curve_and_time(record, workdir)
    with open(record_path, "w") as f:
        json.dump(record, f, indent=1)
    return record


def finished_record(workdir, config):
    """The run's record (with its validation curve) if it trained to `config.train.steps` and has
    this table's evaluation, else None."""
    path = os.path.join(workdir, "compare.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    if record.get("steps") != config.train.steps or eval_key() not in record.get("eval", {}):
        return None
    add_curve_and_time(record, workdir)
    return record


def add_curve_and_time(record, workdir):
    """Sets record["curve"], [(step, valid ELBO per frame)] from the run's TensorBoard files (the
    last step trained - where early stopping ended the run, or the budget - is the last entry),
    and record["train_seconds_all_segments"], the training wall time of every segment of a resumed
    run (`train_seconds` counts only the invocation that finished it); one pass over the files."""
    from avrnn_tf.experiments.scalars import read_run

    curves, seconds = read_run(os.path.join(workdir, "tensorboard"))
    steps, values = curves.get(CURVE_TAG, ([], []))
    record["curve"] = [[int(s), float(v)] for s, v in zip(steps, values)]
    record["train_seconds_all_segments"] = round(seconds, 1)


def fall_after_best(curve):
    """How far the last validation ELBO is below the best one: (nats per frame, share of |best|);
    (0, 0) when the last round is the best. The share depends on where zero falls on the scale
    (a log-density per frame has no natural zero), so the table shows both."""
    values = [v for _, v in curve]
    best = max(values)
    return best - values[-1], (best - values[-1]) / abs(best)


def mean_std(values):
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if len(values) == 1:  # No spread to report from one seed.
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def table(rows):
    k = FLAGS.num_samples
    names = {"elbo": "ELBO", "iwae": f"IWAE-{k}", "fivo": f"FIVO-{k}"}
    lines = ["| dataset | model (config) | kind / emission | params | seeds | "
             f"{'best' if FLAGS.checkpoint == 'best' else 'evaluated'} step / steps | "
             "train wall time (s) | " + " | ".join(f"test {names[b]} / frame" for b in FLAGS.bounds) +
             " | valid ELBO fall after best, worst seed: nats/frame (%) | test sequences / frames |" +
             DIAGNOSTIC_HEADER * FLAGS.diagnostics,
             "|---|---|---|---:|---:|---:|---:|" + "---:|" * len(FLAGS.bounds) + "---:|---|" +
             "---:|---:|---:|---:|" * FLAGS.diagnostics]
    extra = " |" * (4 * FLAGS.diagnostics)
    for r in rows:
        if "same_as" in r:
            lines.append(f"| {r['dataset']} | {r['name']} | (trained once as {r['same_as']}: same "
                         "model on piano-rolls) |" + " |" * (6 + len(FLAGS.bounds)) + extra)
            continue
        if "missing" in r:
            lines.append(f"| {r['dataset']} | {r['name']} | (no finished run yet) |" +
                         " |" * (6 + len(FLAGS.bounds)) + extra)
            continue
        if "baseline" in r:
            value, seqs, frames = r["baseline"]
            lines.append(f"| {r['dataset']} | {r['name']} | exact | 88 | | | | " +
                         " | ".join(f"{value:.3f}" for _ in FLAGS.bounds) +
                         f" | | {seqs} / {frames} |" + extra)
            continue
        runs = r["runs"]
        evals = [run["eval"][eval_key()] for run in runs]
        first = evals[0]
        cells = [mean_std([e["bounds"][b]["per_frame"] for e in evals]) for b in FLAGS.bounds]
        best_steps = sum(e["step"] for e in evals) / len(evals)
        steps = sum((run["curve"][-1][0] if run["curve"] else run["steps"]) for run in runs) / len(runs)
        seconds = sum(run.get("train_seconds_all_segments") or run["train_seconds"]
                      for run in runs) / len(runs)
        fall = max(fall_after_best(run["curve"]) for run in runs) if all(
            run["curve"] for run in runs) else (float("nan"), float("nan"))
        lines.append(
            f"| {r['dataset']} | {r['name']} | {first['model']['kind']} / {first['model']['emission']} | "
            f"{first['num_parameters']:,} | {len(runs)} | {best_steps:,.0f} / {steps:,.0f} | "
            f"{seconds:.0f} | " + " | ".join(cells) + f" | {fall[0]:.2f} ({100 * fall[1]:.1f}%) | "
            f"{first['num_sequences']} / {first['num_frames']} |" +
            (diagnostic_cells(evals) if FLAGS.diagnostics else ""))
    return "\n".join(lines)


DIAGNOSTIC_HEADER = (" test KL / frame | aggregate KL / frame | information term / frame |"
                     " fresh-critic W |")


def diagnostic_cells(evals):
    """Mean ± std over seeds of the KL split and the fresh critic's W (blank for models without a
    latent variable, whose evaluations carry no diagnostics)."""
    diags = [e.get("diagnostics") for e in evals]
    if not all(diags) or any(d.get("kl_split") is None for d in diags):
        return " |" * 4
    split = [d["kl_split"] for d in diags]
    cells = [mean_std([k[name] for k in split])
             for name in ("kl_per_frame", "aggregate_kl", "information_term")]
    cells.append(mean_std([d["fresh_critic"]["wasserstein"] for d in diags]))
    return " " + " | ".join(cells) + " |"


def plot_curves(rows, dataset, path):
    """Validation ELBO per frame against step, one line per run (colour per config)."""
    from avrnn_tf import figures

    fig, ax = figures.new_figure(f"{dataset}: validation ELBO per frame (each seed; the dot is the "
                                 "checkpoint evaluated)", width=9, height=5)
    colours = [f"C{i}" for i in range(10)]
    for i, r in enumerate(x for x in rows if x["dataset"] == dataset and "runs" in x):
        for j, run in enumerate(r["runs"]):
            if not run["curve"]:
                continue
            steps, values = zip(*run["curve"])
            ax.plot(steps, values, color=colours[i % 10], lw=1, label=r["name"] if j == 0 else None)
            best = run["eval"][eval_key()]["step"]
            if best in steps:
                ax.plot([best], [values[steps.index(best)]], "o", color=colours[i % 10], ms=3)
    all_values = sorted(v for r in rows if r["dataset"] == dataset and "runs" in r
                        for run in r["runs"] for _, v in run["curve"])
    if all_values:  # Early rounds can be orders of magnitude lower; show the useful range.
        low = all_values[len(all_values) // 10]
        ax.set_ylim(low - 0.1 * abs(all_values[-1] - low), all_values[-1] + 0.05 * abs(all_values[-1] - low))
    ax.set_xlabel("training step")
    ax.set_ylabel("valid ELBO / frame (nats)")
    ax.legend(fontsize=7)
    figures.save(fig, path)


def main(argv):
    del argv
    import_tensorflow()
    from absl import logging

    from avrnn_tf import loop

    logging.set_verbosity(logging.WARNING)
    unknown = [b for b in FLAGS.bounds if b not in ("elbo", "iwae", "fivo")]
    if unknown or not FLAGS.bounds:
        fail(f"--bounds={','.join(FLAGS.bounds)}: expected a comma-separated subset of elbo, iwae, fivo")
    try:
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError:
        fail(f"--seeds={','.join(FLAGS.seeds)}: expected comma-separated integers")
    if FLAGS.checkpoint not in ("best", "latest"):
        fail(f"--checkpoint={FLAGS.checkpoint}: expected best or latest")
    if FLAGS.critic_steps < 1:
        fail(f"--critic_steps={FLAGS.critic_steps}: expected at least 1")
    os.makedirs(FLAGS.outdir, exist_ok=True)
    rows = []
    for dataset in FLAGS.datasets:
        if dataset not in ("fsdd", "jsb"):
            fail(f"unknown dataset {dataset!r} (expected fsdd or jsb)")
        seen = {}
        for spec in FLAGS.configs:
            name = specs.config_name(spec)
            config = apply_budget(load_config(spec, dataset), dataset)
            signature = model_signature(config)
            if signature in seen:
                rows.append({"dataset": dataset, "name": name, "same_as": seen[signature]})
                continue
            seen[signature] = name
            runs = []
            for seed in seeds:
                config.train.seed = seed
                workdir = os.path.join(FLAGS.outdir, dataset, name.replace(":", "_"), f"seed{seed}")
                print(f"compare: {dataset} / {name} / seed {seed} -> {workdir}", flush=True)
                if FLAGS.report_only:
                    record = finished_record(workdir, config)
                    if record:
                        runs.append(record)
                    continue
                try:
                    runs.append(run_one(config, workdir))
                except loop.TrainingStopped as e:  # A signal, non-finite steps, a failed save.
                    print(f"avrnn-compare: {workdir}: {e}", file=sys.stderr, flush=True)
                    sys.exit(e.exit_code)
            if not runs:
                rows.append({"dataset": dataset, "name": name, "missing": True})
                continue
            rows.append({"dataset": dataset, "name": name, "runs": runs})
            print(table(rows[-1:]).splitlines()[-1], flush=True)
        if dataset == "jsb":
            rows.append({"dataset": dataset, "name": "independent notes (training frequencies)",
                         "baseline": specs.independent_notes(config.data.path)})
        plot_curves(rows, dataset, os.path.join(FLAGS.outdir, f"{dataset}_valid_curves.png"))
    text = table(rows)
    command = "avrnn-compare " + " ".join(sys.argv[1:])
    evaluated = ("the best checkpoint (by each run's own validation objective)"
                 if FLAGS.checkpoint == "best" else "each run's latest checkpoint")
    with open(os.path.join(FLAGS.outdir, "comparison.md"), "w") as f:
        f.write(f"Command: `{command}`\n\nSeeds {', '.join(map(str, seeds))}; mean ± sample std over "
                f"seeds; {evaluated} is evaluated. "
                f"Curves: {', '.join(d + '_valid_curves.png' for d in FLAGS.datasets)}.\n\n{text}\n")
    print(text)


def run():
    """Console-script entry point (avrnn-compare)."""
    cli.run(main, "avrnn-compare")


if __name__ == "__main__":
    run()
