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
  fig2_elbo_vs_reconstruction.png   Figure 2 analogue: reconstruction loss and -ELBO per frame
  fig3_critic_adversarial.png       Figure 3 analogue: critic and adversarial loss, W_hat, and the
                                    gradient norms of the three phases
  results.md                        held-out ELBO per frame (validation and test splits) and what
                                    the curves say, with the command that made them
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
    return ([f"avrnn_{c}" for c in FLAGS.critics] + (["avrnn_none"] if FLAGS.ablation else [])
            + ["vrnn_gauss"])


def label(name):
    if name == "vrnn_gauss":
        return "VRNN-Gauss (ELBO)"
    if name == "avrnn_none":
        return "A-VRNN, phases 2-3 off (reconstruction only)"
    return f"A-VRNN ({CRITIC_LABELS[name[len('avrnn_'):]]})"


def experiment_config(name):
    """The config of a run of `model_names()` with the flags' shared settings."""
    c = load_config("avrnn" if name.startswith("avrnn") else name)
    c.model.update(h_dim=FLAGS.h_dim, z_dim=FLAGS.z_dim, mlp_units=FLAGS.mlp_units)
    c.data.update(path=FLAGS.data or c.data.path, max_files=FLAGS.max_files, sample_rate=FLAGS.sample_rate,
                  batch_size=FLAGS.batch_size, train_frames=FLAGS.train_frames)
    c.train.update(steps=FLAGS.steps, optimizer="rmsprop", learning_rate=FLAGS.learning_rate,
                   log_every=FLAGS.log_every, eval_every=FLAGS.eval_every,
                   checkpoint_every=FLAGS.eval_every, audio_every=0, num_final_samples=1)
    if name == "avrnn_none":
        c.adversarial.regularize = False
    elif name.startswith("avrnn"):
        c.adversarial.update(critic=name[len("avrnn_"):], critic_lstm_units=FLAGS.critic_lstm_units,
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
    score = lambda utterances, limit=0: objectives.evaluate(
        objective, network, pipeline.eval_batches(utterances, standardizer, d.frame_size,
                                                  d.valid_batch_size, limit), config.train.seed)
    return {"valid": score(corpus.valid, d.max_valid_utterances),
            "test": score(corpus.test) if corpus.test else {}}


def plot(curves, out):
    from avrnn_tf import figures

    names = model_names()
    avrnns = names[:-1]
    v = curves["vrnn_gauss"]
    model = (f"A-VRNN vs VRNN-Gauss (h={FLAGS.h_dim}, z={FLAGS.z_dim}) on "
             f"{os.path.basename(os.path.normpath(FLAGS.data))}")
    step, seed = int(v["train/elbo_per_frame"][0][-1]), experiment_config(names[-1]).train.seed
    fig, ax = figures.new_figure(figures.title(model, step, seed, "Figures 2-3 analogue"),
                                 cols=2, width=10, height=3.8)
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
    figures.save(fig, os.path.join(out, "fig2_elbo_vs_reconstruction.png"))

    critics = [n for n in avrnns if "train/critic_loss" in curves[n]]
    fig, ax = figures.new_figure(figures.title(model, step, seed, "Figure 3 analogue"),
                                 cols=len(critics) + 1, width=5 * (len(critics) + 1), height=3.8,
                                 squeeze=False)
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
    figures.save(fig, os.path.join(out, "fig3_critic_adversarial.png"))


def tail_mean(series, tag, fraction=0.1):
    steps, values = series[tag]
    n = max(1, int(len(values) * fraction))
    return float(values[-n:].mean())


def write_table(curves, results, seconds, out, command):
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
    os.makedirs(FLAGS.out, exist_ok=True)
    command = "python -m avrnn_tf.experiments.reproduce_paper " + " ".join(sys.argv[1:])
    curves, results, seconds = {}, {}, {}
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
        if os.path.exists(timing) and seconds[name] < 0.2 * json.load(open(timing))["seconds"]:
            seconds[name] = json.load(open(timing))["seconds"]  # Finished earlier; nothing trained now.
        else:
            with open(timing, "w") as f:
                json.dump({"seconds": seconds[name], "steps": result["step"]}, f)
        results[name] = result
        curves[name] = read_scalars(os.path.join(workdir, "tensorboard"))
    plot(curves, FLAGS.out)
    write_table(curves, results, seconds, FLAGS.out, command)
    print(f"reproduce_paper: wrote {FLAGS.out}/fig2_elbo_vs_reconstruction.png, "
          f"fig3_critic_adversarial.png and results.md")


def run():
    """Console-script entry point (avrnn-reproduce)."""
    cli.run(main, "avrnn-reproduce")


if __name__ == "__main__":
    run()
