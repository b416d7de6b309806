"""avrnn-compare: trains every model of a list with one budget on FSDD and JSB, evaluates on the
test split, and writes one markdown table (ELBO and IWAE-K in nats per frame, training time).

  avrnn-compare --outdir=runs/compare --configs=configs/vrnn_gauss.py:tiny --datasets=jsb --steps=60
  python -m avrnn_tf.experiments.compare --outdir=runs/compare \\
      --configs=configs/rnn_gauss.py,configs/rnn_gmm.py,configs/vrnn_i.py,configs/storn.py,\\
configs/vrnn_gauss.py,configs/vrnn_gmm.py,configs/zforcing.py,configs/srnn.py,configs/avrnn.py \\
      --datasets=fsdd,jsb --steps=2000 --num_samples=100

Every config is loaded with the dataset's variant (`:fsdd` or `:jsb`, plus any variant written
after the path, e.g. configs/vrnn_gauss.py:tiny), then the budget flags override steps, batch size,
and (when non-zero) the model sizes, identically for every model. On piano-rolls the emission is
Bernoulli for every config, so configs that differ only in their (speech) emission are trained
once; the table says which. Each run lives in <outdir>/<dataset>/<config name>: rerunning the
command resumes finished runs from their checkpoints (training is skipped when the step count is
reached; the time column then reports the original training time from <run>/compare.json).

Numbers are nats per frame (natural log) on whole test sequences: FSDD frames are 200 samples
standardized with the training mean/std; JSB frames are 88 binary notes.
"""

import json
import os
import sys
import time

from absl import flags

from avrnn_tf import cli
from avrnn_tf import config as config_lib
from avrnn_tf.tf_setup import import_tensorflow

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["configs/rnn_gauss.py", "configs/rnn_gmm.py", "configs/vrnn_i.py",
                              "configs/storn.py", "configs/vrnn_gauss.py", "configs/vrnn_gmm.py",
                              "configs/zforcing.py", "configs/srnn.py"],
                  "Config files (path[:variants]); add configs/avrnn.py when it exists.")
flags.DEFINE_list("datasets", ["fsdd", "jsb"], "Datasets: fsdd and/or jsb.")
flags.DEFINE_string("outdir", None, "Directory of the runs and of comparison.md.")
flags.DEFINE_integer("steps", 2000, "Training steps for every model.")
flags.DEFINE_integer("batch_size", 0, "Training batch size for every model (0 = config's).")
flags.DEFINE_integer("h_dim", 0, "LSTM state for every model (0 = config's).")
flags.DEFINE_integer("z_dim", 0, "Latent size for every model (0 = config's).")
flags.DEFINE_integer("mlp_units", 0, "MLP width for every model (0 = config's).")
flags.DEFINE_integer("fsdd_max_files", 0, "Read only the first N FSDD files (0 = all 3,000).")
flags.DEFINE_integer("num_samples", 100, "K of the IWAE-K column.")
flags.DEFINE_integer("max_test_sequences", 0, "Evaluate the first N test sequences (0 = all).")
flags.DEFINE_string("fsdd_path", "", "FSDD directory ('' = the configs' :fsdd variant, "
                    "configs/datasets.py).")
flags.DEFINE_string("jsb_path", "", "JSB Chorales file ('' = the configs' :jsb variant, "
                    "configs/datasets.py).")
flags.mark_flag_as_required("outdir")


def load_config(spec, dataset):
    """Config of `spec` ("path" or "path:variants") with the dataset's variant added."""
    path, _, variants = spec.partition(":")
    try:
        return config_lib.load_file(f"{path}:{','.join(filter(None, [variants, dataset]))}")
    except config_lib.ConfigError as e:
        cli.fail("avrnn-compare", str(e))


def apply_budget(config, dataset):
    t = config.train
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
    return config


def model_signature(config):
    """What makes two runs the same model: the config without its name-only differences."""
    return json.dumps(config.to_dict(), sort_keys=True)


def run_one(config, workdir):
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
        with open(record_path, "w") as f:
            json.dump(record, f)
    result = evaluate.evaluate_workdir(workdir, ("elbo", "iwae"), FLAGS.num_samples, "test",
                                       max_sequences=FLAGS.max_test_sequences)
    return record, result


def table(rows):
    k = FLAGS.num_samples
    lines = [f"| dataset | model (config) | kind / emission | params | steps | train time (s) | "
             f"test ELBO / frame | test IWAE-{k} / frame | test sequences / frames |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "same_as" in r:
            lines.append(f"| {r['dataset']} | {r['name']} | (trained once as {r['same_as']}: same "
                         "model on piano-rolls) | | | | | | |")
            continue
        res, b = r["result"], r["result"]["bounds"]
        lines.append(
            f"| {r['dataset']} | {r['name']} | {res['model']['kind']} / {res['model']['emission']} | "
            f"{res['num_parameters']:,} | {res['step']} | {r['record']['train_seconds']:.0f} | "
            f"{b['elbo']['per_frame']:.3f} | {b['iwae']['per_frame']:.3f} | "
            f"{res['num_sequences']} / {res['num_frames']} |")
    return "\n".join(lines)


def main(argv):
    del argv
    import_tensorflow()
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    os.makedirs(FLAGS.outdir, exist_ok=True)
    rows = []
    for dataset in FLAGS.datasets:
        if dataset not in ("fsdd", "jsb"):
            cli.fail("avrnn-compare", f"unknown dataset {dataset!r} (expected fsdd or jsb)")
        seen = {}
        for spec in FLAGS.configs:
            name = os.path.basename(spec.partition(":")[0])[:-3] + (
                ":" + spec.partition(":")[2] if spec.partition(":")[2] else "")
            config = apply_budget(load_config(spec, dataset), dataset)
            signature = model_signature(config)
            if signature in seen:
                rows.append({"dataset": dataset, "name": name, "same_as": seen[signature]})
                continue
            seen[signature] = name
            workdir = os.path.join(FLAGS.outdir, dataset, name.replace(":", "_"))
            print(f"compare: {dataset} / {name} -> {workdir}", flush=True)
            record, result = run_one(config, workdir)
            rows.append({"dataset": dataset, "name": name, "record": record, "result": result})
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows)
    command = "python -m avrnn_tf.experiments.compare " + " ".join(sys.argv[1:])
    with open(os.path.join(FLAGS.outdir, "comparison.md"), "w") as f:
        f.write(f"Command: `{command}`\n\n{text}\n")
    print(text)


def run():
    """Console-script entry point (avrnn-compare)."""
    cli.run(main, "avrnn-compare")


if __name__ == "__main__":
    run()
