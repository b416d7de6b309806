"""The main job: a small VRNN-Gauss trained on the built-in synthetic speech-like corpus.

Runs on a 2-core CPU in a few minutes with no download and leaves TensorBoard logs, checkpoints and
generated WAVs in the workdir:
  avrnn-train --config=configs/default.py --workdir=runs/default
Variants as in the model configs (`:tiny`, `:fsdd`).
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.update(kind="vrnn", emission="normal", h_dim=128, z_dim=32, mlp_units=128)
    config.data.synthetic_utterances = 200
    config.train.update(steps=3000, eval_every=500, checkpoint_every=500, audio_every=1000)
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS), __file__)
