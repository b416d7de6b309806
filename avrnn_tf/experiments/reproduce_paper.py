"""avrnn-reproduce: Huang & Xiao's Figures 2-3, and A-VRNN against VRNN-Gauss on held-out speech.

  avrnn-reproduce --steps=100 --max_files=200 --out=/tmp/repro --workdir=/tmp/repro_runs  # minutes
  python -m avrnn_tf.experiments.reproduce_paper --out=docs/reproduction \
      --workdir=runs/reproduce [--steps=1500 --h_dim=64 ...]

Both models are the same VRNN-Gauss network (configs/avrnn.py and the same sizes), read the same
data in the same order and train for the same number of iterations with the same reconstruction
optimizer (RMSProp, train.learning_rate); the only difference is the training algorithm: the ELBO
(VRNN) against the three A-VRNN phases (reconstruction, critic, adversarial). Any directory of
audio works as --data (FSDD, or a TIMIT directory: SPHERE files are read by soundfile).

Writes into --out:
  fig2_elbo_vs_reconstruction.png   Figure 2 analogue: reconstruction loss and -ELBO per frame, the
                                    KL, and the KL split on validation at every checkpoint (the
                                    pooled part a z-only critic can see + the information term)
  fig3_critic_adversarial.png       Figure 3 analogue: critic and adversarial loss, the gradient
                                    norms of the three phases, and a fresh WGAN-GP critic's
                                    Wasserstein estimate on validation at every checkpoint beside
                                    the training critic's own
  results.md                        held-out ELBO per frame (validation and test splits), the
                                    diagnostics of the last checkpoint and what the curves say,
                                    with the command that made them
The training runs (checkpoints, TensorBoard) stay in --workdir; a rerun resumes them.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags

from avrnn_tf import cli
from avrnn_tf import config as config_lib
from avrnn_tf.experiments.scalars import read_scalars
from avrnn_tf.tf_setup import import_tensorflow

tf = import_tensorflow()

FLAGS = flags.FLAGS
flags.DEFINE_string("data", "", "Directory of audio files (FSDD, TIMIT, ...); '' = FSDD where "
                    "configs/avrnn.py:fsdd finds it (configs/datasets.py).")
flags.DEFINE_string("out", "docs/reproduction", "Where the plots and the table are written.")
flags.DEFINE_string("workdir", "runs/reproduce", "Where the training runs are kept.")
flags.DEFINE_integer("steps", 1500, "Training iterations of each model (the shared budget).")
flags.DEFINE_integer("max_files", 0, "Use a deterministic subset of the audio files (0 = all).")
flags.DEFINE_integer("sample_rate", 0, "Resample to this rate (0 = the data's own rate).")
flags.DEFINE_integer("h_dim", 64, "LSTM state of both models.")
flags.DEFINE_integer("z_dim", 16, "Latent size of both models.")
flags.DEFINE_integer("mlp_units", 64, "Width of the feature extractors and heads.")
flags.DEFINE_integer("critic_lstm_units", 128, "Critic LSTM state (paper: 128).")
flags.DEFINE_integer("critic_dense_units", 100, "Critic dense width (paper: 100).")
flags.DEFINE_integer("batch_size", 32, "Sequences per batch (each A-VRNN phase reads its own).")
flags.DEFINE_integer("train_frames", 40, "Frames per training chunk.")
flags.DEFINE_float("learning_rate", 1e-3, "RMSProp rate of the reconstruction / ELBO step.")
flags.DEFINE_list("critics", ["wgan"], "A-VRNN runs, one per critic: wgan (the paper) | wgan_gp | gan.")
flags.DEFINE_bool("ablation", False, "Also train A-VRNN with the critic and adversarial phases off "
                  "(reconstruction phase only), to see what the regulariser changes.")
flags.DEFINE_bool("hybrid", False, "Also train the hybrid (configs/avrnn.py:hybrid: the paper's "
                  "clipped critic with the KL kept in the reconstruction phase at weight 1).")
flags.DEFINE_integer("critic_steps", 300, "Training steps of the fresh WGAN-GP critic that the "
                     "diagnostics train on every checkpoint (avrnn_tf/diagnostics.py); 0 = no "
                     "diagnostics (the figures then lack the KL split and the fresh-critic W).")
flags.DEFINE_integer("diagnostics_sequences", 64, "Validation sequences the diagnostics read per "
                     "checkpoint (0 = all).")
flags.DEFINE_integer("log_every", 25, "Steps between logged training scalars.")
flags.DEFINE_integer("eval_every", 250, "Steps between validation passes.")

CRITIC_LABELS = {"wgan": "WGAN critic, clipped", "wgan_gp": "WGAN-GP critic", "gan": "JS (GAN) critic"}


def project_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_config(name):
    """get_config("fsdd") of configs/<name>.py from the project root."""
    return config_lib.load_file(os.path.join(project_root(), "configs", f"{name}.py") + ":fsdd")


def model_names():
    """Run names: one "avrnn_<critic>" per --critics entry, then "vrnn_gauss"."""
    return ([f"avrnn_{c}" for c in FLAGS.critics] + (["avrnn_hybrid"] if FLAGS.hybrid else [])
            + (["avrnn_none"] if FLAGS.ablation else []) + ["vrnn_gauss"])


def label(name):
    if name == "vrnn_gauss":
        return "VRNN-Gauss (ELBO)"
    if name == "avrnn_none":
        return "A-VRNN, phases 2-3 off (reconstruction only)"
    if name == "avrnn_hybrid":
        return "A-VRNN + KL (hybrid, clipped WGAN critic)"
    return f"A-VRNN ({CRITIC_LABELS[name[len('avrnn_'):]]})"


def experiment_config(name):
    """The config of a run of `model_names()` with the flags' shared settings."""
    c = load_config("avrnn" if name.startswith("avrnn") else name)
    c.model.update(h_dim=FLAGS.h_dim, z_dim=FLAGS.z_dim, mlp_units=FLAGS.mlp_units)
    c.data.update(path=FLAGS.data or c.data.path, max_files=FLAGS.max_files, sample_rate=FLAGS.sample_rate,
                  batch_size=FLAGS.batch_size, train_frames=FLAGS.train_frames)
    c.train.update(steps=FLAGS.steps, optimizer="rmsprop", learning_rate=FLAGS.learning_rate,
                   log_every=FLAGS.log_every, eval_every=FLAGS.eval_every,
                   checkpoint_every=FLAGS.eval_every, audio_every=0, num_final_samples=1,
                   keep_checkpoints=FLAGS.steps // FLAGS.eval_every + 2,  # All, for the diagnostics.
                   early_stopping_patience=0, lr_decay_on_plateau=0.0,  # The paper's fixed budget
                   ema_decay=0.0)  # and its own weights (the recipe's averaging is not the paper's).
    if name == "avrnn_none":
        c.adversarial.regularize = False
    elif name.startswith("avrnn"):
        hybrid = name == "avrnn_hybrid"  # The clipped WGAN critic with the KL at weight 1.
        c.adversarial.update(critic="wgan" if hybrid else name[len("avrnn_"):],
                             kl_weight=1.0 if hybrid else 0.0,
                             critic_lstm_units=FLAGS.critic_lstm_units,
                             critic_dense_units=FLAGS.critic_dense_units)
    return c


def held_out_metrics(workdir):
    """ELBO metrics of the last checkpoint: {"valid": ..., "test": ...} ({} for a missing split).

    Read-only: the network is restored alone (restore.load_run; no lock, no trainer, nothing
    written) and scored by the run's objective (objectives.evaluate) on the validation utterances
    the training run used and on the test split. Evaluation noise is fixed
    (objectives.EVAL_FOLD), so a rerun on finished runs gives the same table.
    """
    from avrnn_tf import objectives
    from avrnn_tf import restore
    from avrnn_tf.data import pipeline

    run = restore.load_run(workdir)
    config, stats, network = run.config, run.stats, run.network
    d = config.data
    corpus = pipeline.load_corpus(d)
    standardizer = pipeline.Standardizer(stats["mean"], stats["std"])
    objective = objectives.from_config(config)
    scorer = objectives.evaluator(objective, network, config.train.seed)  # Traced once for both.
    score = lambda utterances, limit=0: scorer(pipeline.eval_batches(
        utterances, standardizer, d.frame_size, d.valid_batch_size, limit))
    return {"valid": score(corpus.valid, d.max_valid_utterances),
            "test": score(corpus.test) if corpus.test else {}}


DIAGNOSTICS_FILE = "diagnostics_curve.json"


def diagnostics_curve(workdir, critic_steps, max_sequences):
    """The latent diagnostics of every checkpoint of a run, on its validation split, oldest first.

    Each checkpoint is restored alone (restore.load_run) and diagnosed as `avrnn-eval --diagnostics`
    does (diagnostics.diagnose_run, seed = the run's seed): the KL split (Gaussian moment fit) and a
    fresh WGAN-GP critic trained for `critic_steps` steps, beside the training critic's estimate
    for A-VRNN runs. Results are kept in <workdir>/diagnostics_curve.json, keyed by checkpoint step
    and settings, so a rerun only diagnoses new checkpoints. Returns a list of
    {"step", "kl_per_frame", "aggregate_kl", "information_term", "active_units",
     "fresh_w", "training_w"} (the W entries None where not measured).
    """
    from avrnn_tf import diagnostics
    from avrnn_tf import evaluate
    from avrnn_tf import restore

    path = os.path.join(workdir, DIAGNOSTICS_FILE)
    settings = {"critic_steps": int(critic_steps), "max_sequences": int(max_sequences)}
    cache = json.load(open(path)) if os.path.exists(path) else {}
    if cache.get("settings") != settings:
        cache = {"settings": settings, "points": {}}
    points = cache["points"]
    batches = None
    for ckpt in reversed(restore.checkpoints_newest_first(workdir)):
        if os.path.basename(ckpt).split("-")[-1] in points:  # ckpt-N is the checkpoint of step N.
            continue
        run = restore.load_run(workdir, checkpoint=ckpt)
        if batches is None:
            batches, _ = evaluate.held_out_batches(run.config, run.stats, "valid",
                                                   run.config.data.valid_batch_size, max_sequences)
        result = diagnostics.diagnose_run(run.config, run.network, batches, run.checkpoint,
                                          critic_steps, run.config.train.seed)
        values = diagnostics.scalars(result)
        points[str(run.step)] = {
            "step": int(run.step),
            **{k: float(values[k]) for k in ("kl_per_frame", "aggregate_kl", "information_term",
                                             "active_units")},
            "fresh_w": values.get("fresh_critic_wasserstein"),
            # A GAN discriminator's logit gap is not a W_1 estimate: not drawn beside the fresh W.
            "training_w": (values.get("training_critic_wasserstein")
                           if (result["training_critic"] or {}).get("type") != "gan" else None),
        }
        with open(path, "w") as f:  # After every checkpoint: an interrupted rerun keeps its work.
            json.dump(cache, f, indent=1)
    return sorted(points.values(), key=lambda p: p["step"])


def diagnostics_series(points, key):
    """(steps, values) arrays of one diagnostics entry, skipping checkpoints where it is None."""
    import numpy as np

    kept = [(p["step"], p[key]) for p in points if p.get(key) is not None]
    return np.array([s for s, _ in kept]), np.array([v for _, v in kept], dtype=float)


def plot(curves, out, diagnosed=None):
    from avrnn_tf import figures

    names = model_names()
    avrnns = names[:-1]
    v = curves["vrnn_gauss"]
    model = (f"A-VRNN vs VRNN-Gauss (h={FLAGS.h_dim}, z={FLAGS.z_dim}) on "
             f"{os.path.basename(os.path.normpath(FLAGS.data))}")
    step, seed = int(v["train/elbo_per_frame"][0][-1]), experiment_config(names[-1]).train.seed
    diagnosed = diagnosed or {}
    fig, ax = figures.new_figure(figures.title(model, step, seed, "Figures 2-3 analogue"),
                                 cols=3 if diagnosed else 2, width=15 if diagnosed else 10, height=3.8)
    for name in avrnns:
        s, y = curves[name]["train/recon_per_frame"]
        line, = ax[0].plot(s, y, label=f"{label(name)}: reconstruction loss")
        s, y = curves[name]["train/elbo_per_frame"]
        ax[0].plot(s, -y, ":", color=line.get_color(), label=f"{label(name)}: -ELBO (not trained on)")
    s, y = v["train/elbo_per_frame"]
    ax[0].plot(s, -y, "k--", label="VRNN-Gauss: -ELBO (trained on)")
    ax[0].set(xlabel="training step", ylabel="nats per frame (symlog)", title="Fig. 2 analogue (training batches)")
    ax[0].set_yscale("symlog", linthresh=10.0)
    ax[0].legend(fontsize=6)
    for name in names:
        s, y = curves[name]["train/kl_per_frame"]
        ax[1].plot(s, y, "k--" if name == "vrnn_gauss" else "-", label=f"{label(name)}")
    ax[1].set(xlabel="training step", ylabel="nats per frame", yscale="log",
              title="-ELBO minus reconstruction loss = KL")
    ax[1].legend(fontsize=7)
    if diagnosed:
        for name, points in diagnosed.items():
            s, y = diagnostics_series(points, "aggregate_kl")
            line, = ax[2].plot(s, y, "o-", ms=3, label=f"{label(name)}: pooled (aggregate) KL")
            s, y = diagnostics_series(points, "information_term")
            ax[2].plot(s, y, "x--", ms=4, color=line.get_color(), label=f"{label(name)}: information term")
        ax[2].set(xlabel="training step", ylabel="nats per frame (symlog)",
                  title="KL split on validation: pooled part + information term")
        ax[2].set_yscale("symlog", linthresh=1.0)
        ax[2].title.set_fontsize(9)
        ax[2].legend(fontsize=6)
    figures.save(fig, os.path.join(out, "fig2_elbo_vs_reconstruction.png"))

    critics = [n for n in avrnns if "train/critic_loss" in curves[n]]
    extra = 2 if diagnosed else 1
    fig, ax = figures.new_figure(figures.title(model, step, seed, "Figure 3 analogue"),
                                 cols=len(critics) + extra, width=5 * (len(critics) + extra),
                                 height=3.8, squeeze=False)
    ax = ax[0]
    for panel, name in zip(ax, critics):
        for tag, what in (("train/critic_loss", "critic loss"), ("train/adversarial_loss", "adversarial loss")):
            s, y = curves[name][tag]
            panel.plot(s, y, label=what)
        panel.axhline(0.0, color="k", lw=0.5)
        panel.set(xlabel="training step", ylabel="loss", title=f"Fig. 3 analogue: {label(name)}")
        panel.title.set_fontsize(9)
        panel.legend(fontsize=7)
    ax = [None] + list(ax[len(critics):])
    for name in critics:
        for tag, what, style in (("train/grad_norm_recon", "reconstruction", "-"),
                                 ("train/grad_norm_critic", "critic", ":"),
                                 ("train/grad_norm_adversarial", "adversarial", "--")):
            s, y = curves[name][tag]
            ax[1].plot(s, y, style, label=f"{label(name)}: {what}")
    ax[1].set(xlabel="training step", ylabel="gradient norm", yscale="log",
              title="per-phase gradient norms")
    ax[1].legend(fontsize=6)
    if diagnosed:
        for name, points in diagnosed.items():
            s, y = diagnostics_series(points, "fresh_w")
            line, = ax[2].plot(s, y, "k--" if name == "vrnn_gauss" else "o-", ms=3,
                               label=f"{label(name)}: fresh WGAN-GP critic")
            s, y = diagnostics_series(points, "training_w")
            if len(s):
                ax[2].plot(s, y, "x:", ms=4, color=line.get_color(),
                           label=f"{label(name)}: its training critic (rescaled)")
        ax[2].axhline(0.0, color="k", lw=0.5)
        ax[2].set(xlabel="training step", ylabel="Wasserstein-1 estimate (z units)",
                  title="prior vs posterior on validation: W_hat")
        ax[2].legend(fontsize=6)
    figures.save(fig, os.path.join(out, "fig3_critic_adversarial.png"))


def tail_mean(series, tag, fraction=0.1):
    steps, values = series[tag]
    n = max(1, int(len(values) * fraction))
    return float(values[-n:].mean())


def write_table(curves, results, seconds, out, command, diagnosed=None):
    lines = [
        "# A-VRNN vs VRNN-Gauss: reproduction of Huang & Xiao, Figures 2-3",
        "",
        f"Command (from the repository root): `{command}`",
        "",
        "Same network sizes, data, batch order, iterations and reconstruction optimizer for all "
        "runs; ELBO with the analytic KL, in nats per 200-sample frame (higher is better). "
        "valid = 5% validation split, test = the FSDD official test split (recordings 0-4).",
        "",
        "| model | steps | wall time (s) | valid ELBO/frame | valid log-lik. term/frame "
        "| valid KL/frame | test ELBO/frame | test KL/frame |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda d, k: f"{d[k]:.2f}" if k in d else "-"
    for name in model_names():
        r = results[name]
        valid, test = r["valid"], r["test"]
        lines.append(f"| {label(name)} | {r['step']} | {seconds[name]:.0f} | "
                     f"{fmt(valid, 'elbo_per_frame')} | {fmt(valid, 'log_px_per_frame')} | "
                     f"{fmt(valid, 'kl_per_frame')} | {fmt(test, 'elbo_per_frame')} | "
                     f"{fmt(test, 'kl_per_frame')} |")
    diagnosed = diagnosed or {}
    if diagnosed:
        lines += ["", f"Latent diagnostics of the last checkpoint on validation (avrnn_tf/diagnostics.py; "
                  f"{FLAGS.critic_steps} fresh-critic steps, up to "
                  f"{FLAGS.diagnostics_sequences or 'all'} sequences; nats per frame; W in z units):", "",
                  "| model | step | KL/frame | pooled (aggregate) KL | information term | active units "
                  "| fresh-critic W | training-critic W (rescaled) |",
                  "|---|---|---|---|---|---|---|---|"]
        number = lambda v: "-" if v is None else f"{v:.2f}"
        for name in model_names():
            if name in diagnosed:
                p = diagnosed[name][-1]
                lines.append(f"| {label(name)} | {p['step']} | {p['kl_per_frame']:.2f} | "
                             f"{p['aggregate_kl']:.2f} | {p['information_term']:.2f} | "
                             f"{p['active_units']:.0f} | {number(p['fresh_w'])} | "
                             f"{number(p['training_w'])} |")
    lines += ["", "Training curves (mean of the last 10% of logged points):", ""]
    for name in model_names():
        c = curves[name]
        text = (f"- {label(name)}: reconstruction loss/frame {tail_mean(c, 'train/recon_per_frame'):.2f}, "
                if "train/recon_per_frame" in c else f"- {label(name)}: ")
        text += (f"-ELBO/frame {-tail_mean(c, 'train/elbo_per_frame'):.2f}, "
                 f"KL/frame {tail_mean(c, 'train/kl_per_frame'):.2f}")
        if "train/critic_loss" in c:
            s_w, w = c["train/wasserstein_estimate"]
            text += (f"; critic loss {tail_mean(c, 'train/critic_loss'):.3g}, adversarial loss "
                     f"{tail_mean(c, 'train/adversarial_loss'):.3g}, max |W_hat| over the run "
                     f"{abs(w).max():.3g}, critic max |w| {tail_mean(c, 'train/critic_weight_max_abs'):.3g}; "
                     f"gradient norms: reconstruction {tail_mean(c, 'train/grad_norm_recon'):.3g}, "
                     f"critic {tail_mean(c, 'train/grad_norm_critic'):.3g}, adversarial "
                     f"{tail_mean(c, 'train/grad_norm_adversarial'):.3g}")
        lines.append(text)
    lines += [
        "",
        "![Figure 2 analogue](fig2_elbo_vs_reconstruction.png)",
        "",
        "![Figure 3 analogue](fig3_critic_adversarial.png)",
        "",
    ]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    from avrnn_tf import loop
    from avrnn_tf import restore
    from avrnn_tf.data.audio import DataError

    bad = [c for c in FLAGS.critics if c not in CRITIC_LABELS]
    if bad or not FLAGS.critics:
        raise app.UsageError(f"--critics={','.join(FLAGS.critics)}: expected a list of wgan, wgan_gp, gan")
    for flag in ("critic_steps", "diagnostics_sequences"):
        if FLAGS[flag].value < 0:
            raise app.UsageError(f"--{flag}={FLAGS[flag].value}: expected an integer >= 0")
    os.makedirs(FLAGS.out, exist_ok=True)
    command = "python -m avrnn_tf.experiments.reproduce_paper " + " ".join(sys.argv[1:])
    curves, results, seconds, diagnosed = {}, {}, {}, {}
    for name in model_names():
        config = experiment_config(name)
        workdir = os.path.join(FLAGS.workdir, name)
        timing = os.path.join(workdir, "wall_seconds.json")
        start = time.time()
        try:
            result = loop.train_and_evaluate(config, workdir, verbose=0)
            seconds[name] = time.time() - start
            result.update(held_out_metrics(workdir))
        except (config_lib.ConfigError, DataError, restore.RestoreError) as e:
            print(f"reproduce_paper: error: {e}", file=sys.stderr)
            sys.exit(2)
        except loop.TrainingStopped as e:  # A signal, non-finite steps, a failed save.
            print(f"reproduce_paper: {workdir}: {e}", file=sys.stderr, flush=True)
            sys.exit(e.exit_code)
        if os.path.exists(timing) and seconds[name] < 0.2 * json.load(open(timing))["seconds"]:
            seconds[name] = json.load(open(timing))["seconds"]  # Finished earlier; nothing trained now.
        else:
            with open(timing, "w") as f:
                json.dump({"seconds": seconds[name], "steps": result["step"]}, f)
        results[name] = result
        curves[name] = read_scalars(os.path.join(workdir, "tensorboard"))
        if FLAGS.critic_steps > 0:
            try:
                points = diagnostics_curve(workdir, FLAGS.critic_steps, FLAGS.diagnostics_sequences)
            except (restore.RestoreError, ValueError) as e:
                print(f"reproduce_paper: error: diagnostics of {workdir}: {e}", file=sys.stderr)
                sys.exit(2)
            if points:  # A run without checkpoints has nothing to draw.
                diagnosed[name] = points
    plot(curves, FLAGS.out, diagnosed)
    write_table(curves, results, seconds, FLAGS.out, command, diagnosed)
    print(f"reproduce_paper: wrote {FLAGS.out}/fig2_elbo_vs_reconstruction.png, "
          f"fig3_critic_adversarial.png and results.md")


def run():
    """Console-script entry point (avrnn-reproduce)."""
    cli.run(main, "avrnn-reproduce")


if __name__ == "__main__":
    run()
