"""VRNN-GMM (Chung et al. 2015): learned prior, 20-component diagonal GMM emission; ELBO.

Run (from the repository root):
  avrnn-train --config=configs/vrnn_gmm.py --workdir=runs/vrnn_gmm              # synthetic corpus
  avrnn-train --config=configs/vrnn_gmm.py:fsdd --workdir=runs/vrnn_gmm_fsdd    # ../shared/data/fsdd
  avrnn-train --config=configs/vrnn_gmm.py:tiny --workdir=/tmp/vrnn_gmm_tiny    # seconds; what tests run
Variants combine: `:tiny,fsdd`. Any field can be overridden, e.g. --config.train.steps=5000.
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "vrnn"
    config.model.emission = "gmm"
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS), __file__)
