"""Which held-out frames got worse between two checkpoints of one run (BUILD_NOTES 8.2).

    python -m avrnn_tf.experiments.frame_changes --workdir=RUN [--late=latest] [--split=valid]

Scores every real frame of the split with the run's best checkpoint and with a later one (the
per-frame log p(x_t | x_<t) for RNNs, the per-frame ELBO term log p(x_t | z, .) - KL_t with the
posterior mean noise (zero noise) for latent models), then says how the change of the mean is
spread over the frames: the share carried by the few frames that got worst, how many frames got
better, and the change on onset frames (mean square more than `--onset_ratio` times the previous
frame's) against the rest. Written to find out why RNN-Gauss's held-out ELBO falls after its best
round on FSDD while its training ELBO keeps rising.
"""

import numpy as np


def fall_breakdown(score_best, score_late, energy, prev_energy, onset_ratio=4.0,
                   shares=(0.01, 0.05, 0.2)):
    """Per-frame scores (nats, [N]) at two checkpoints and each frame's energy and its previous
    frame's: a dict describing where the mean's change (best - late, positive = worse) sits."""
    score_best, score_late = np.asarray(score_best, float), np.asarray(score_late, float)
    change = score_best - score_late
    total = change.sum()
    order = np.argsort(-change)
    onset = (np.asarray(energy) + 1e-6) > onset_ratio * (np.asarray(prev_energy) + 1e-6)
    out = {
        "frames": int(change.size),
        "mean_best": float(score_best.mean()),
        "mean_late": float(score_late.mean()),
        "fall_per_frame": float(change.mean()),
        "fraction_better": float((change < 0).mean()),
        "onset_fraction": float(onset.mean()),
        "onset_change": float(change[onset].mean()) if onset.any() else float("nan"),
        "other_change": float(change[~onset].mean()) if (~onset).any() else float("nan"),
        "onset_share_of_fall": float(change[onset].sum() / total) if total else float("nan"),
    }
    for q in shares:
        k = max(1, int(round(q * change.size)))
        out[f"worst_{q:g}_share_of_fall"] = float(change[order[:k]].sum() / total) if total else float("nan")
    return out


def frame_scores(workdir, checkpoint, split):
    """(scores [N], energy [N], previous-frame energy [N], step) over the split's real frames."""
    from avrnn_tf import evaluate
    from avrnn_tf import restore
    from avrnn_tf.tf_setup import import_tensorflow

    tf = import_tensorflow()
    run = restore.load_run(workdir, checkpoint)
    batches, _ = evaluate.held_out_batches(run.config, run.stats, split, 16, 0)
    scores, energy, prev = [], [], []
    for x, mask in batches:
        xt = tf.constant(x, tf.float32)
        terms = run.network.frame_terms(xt, tf.zeros(run.network.noise_shape(xt)),
                                        tf.constant(mask, tf.float32))
        frame = (terms["log_px"] - terms["kl"]).numpy()
        e = (np.asarray(x) ** 2).mean(-1)
        e_prev = np.concatenate([np.zeros_like(e[:, :1]), e[:, :-1]], axis=1)
        real = np.asarray(mask) > 0
        scores.append(frame[real])
        energy.append(e[real])
        prev.append(e_prev[real])
    return np.concatenate(scores), np.concatenate(energy), np.concatenate(prev), run.step


def main(argv):
    del argv
    from absl import flags

    from avrnn_tf.tf_setup import import_tensorflow

    import_tensorflow()

    f = flags.FLAGS
    best, energy, prev, best_step = frame_scores(f.workdir, f.best, f.split)
    late, _, _, late_step = frame_scores(f.workdir, f.late, f.split)
    out = fall_breakdown(best, late, energy, prev, f.onset_ratio)
    print(f"{f.workdir}: {f.split} split, {out['frames']} frames; step {best_step} "
          f"{out['mean_best']:.2f} -> step {late_step} {out['mean_late']:.2f} nats/frame "
          f"(fall {out['fall_per_frame']:.2f})")
    for key in sorted(k for k in out if k.startswith("worst_")):
        share = key.split("_")[1]
        print(f"  the {float(share):.0%} of frames that changed most carry "
              f"{out[key]:.0%} of the fall")
    print(f"  frames that got better: {out['fraction_better']:.0%}")
    print(f"  onset frames (energy > {f.onset_ratio:g}x the previous frame's): "
          f"{out['onset_fraction']:.1%} of frames, {out['onset_share_of_fall']:.0%} of the fall; "
          f"mean change {out['onset_change']:.1f} nats there, {out['other_change']:.1f} elsewhere "
          "(positive = worse)")


def run():
    from absl import app
    from absl import flags

    flags.DEFINE_string("workdir", None, "a run written by avrnn-train", required=True)
    flags.DEFINE_string("best", "best", "the earlier checkpoint (best, latest, ckpt-N or a path)")
    flags.DEFINE_string("late", "latest", "the later checkpoint")
    flags.DEFINE_string("split", "valid", "held-out split: valid or test")
    flags.DEFINE_float("onset_ratio", 4.0, "an onset frame's energy over its previous frame's")
    app.run(main)


if __name__ == "__main__":
    run()
