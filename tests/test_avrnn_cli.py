"""End to end: `avrnn-train --config=configs/avrnn.py:tiny,fsdd` on the shared FSDD runs every
A-VRNN phase and writes finite values under the documented TensorBoard tags."""

import math
import os

from conftest import run_cli

TAGS = ("recon_per_frame", "elbo_per_frame", "kl_per_frame", "critic_loss", "adversarial_loss",
        "wasserstein_estimate", "critic_weight_max_abs", "grad_norm_recon", "grad_norm_critic",
        "grad_norm_adversarial")


def test_avrnn_cli_on_fsdd(tf, fsdd_dir, tmp_path):
    workdir = str(tmp_path / "run")
    proc = run_cli("avrnn_tf.train", "--config=configs/avrnn.py:tiny,fsdd", f"--workdir={workdir}",
                   "--config.data.max_files=60", "--config.train.steps=4",
                   "--config.train.log_every=2", "--config.train.eval_every=4",
                   "--config.train.num_final_samples=0", "--config.train.audio_every=0",
                   "--progress=none")
    assert proc.returncode == 0, proc.stderr
    assert "done at step 4" in proc.stdout
    from avrnn_tf.experiments.scalars import read_scalars

    scalars = read_scalars(os.path.join(workdir, "tensorboard"))
    for tag in TAGS:
        steps, values = scalars[f"train/{tag}"]
        assert list(steps) == [2, 4], tag
        assert all(math.isfinite(v) for v in values), tag
    for tag in ("grad_norm_recon", "grad_norm_critic", "grad_norm_adversarial"):
        assert min(scalars[f"train/{tag}"][1]) > 0, tag   # Every phase computed a gradient.
    assert max(scalars["train/critic_weight_max_abs"][1]) <= 0.01
    assert math.isfinite(scalars["valid/elbo_per_frame"][1][-1])


def test_avrnn_cli_rejects_a_bad_critic(tmp_path):
    proc = run_cli("avrnn_tf.train", "--config=configs/avrnn.py:tiny", f"--workdir={tmp_path}",
                   "--config.adversarial.critic=wgann")
    assert proc.returncode == 2
    assert "config.adversarial.critic = 'wgann'" in proc.stderr
    assert "Traceback" not in proc.stderr
