"""STORN: latent z_t with a fixed N(0, I) prior (the VRNN paper's VRNN-I row); ELBO.

Run (from the repository root):
  avrnn-train --config=configs/storn.py --workdir=runs/storn              # synthetic corpus
  avrnn-train --config=configs/storn.py:fsdd --workdir=runs/storn_fsdd    # ../shared/data/fsdd
  avrnn-train --config=configs/storn.py:tiny --workdir=/tmp/storn_tiny    # seconds; what tests run
Variants combine: `:tiny,fsdd`. Any field can be overridden, e.g. --config.train.steps=5000.
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "storn"
    config.model.emission = "normal"
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS), __file__)
