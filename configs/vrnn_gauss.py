"""VRNN-Gauss (Chung et al. 2015): learned prior p(z_t | h_{t-1}), diagonal Normal emission; ELBO.

Run (from the repository root):
  avrnn-train --config=configs/vrnn_gauss.py --workdir=runs/vrnn_gauss              # synthetic corpus
  avrnn-train --config=configs/vrnn_gauss.py:fsdd --workdir=runs/vrnn_gauss_fsdd    # ../shared/data/fsdd
  avrnn-train --config=configs/vrnn_gauss.py:tiny --workdir=/tmp/vrnn_gauss_tiny    # seconds; what tests run
Variants combine: `:tiny,fsdd`. Any field can be overridden, e.g. --config.train.steps=5000.
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "vrnn"
    config.model.emission = "normal"
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS), __file__)
