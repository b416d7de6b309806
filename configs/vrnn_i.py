"""VRNN-I: a VRNN whose prior is fixed at N(0, I) (the VRNN paper's VRNN-I row); ELBO.

Until issue 12 this config was configs/storn.py with model.kind "storn"; STORN proper (its own
recognition RNN) is now configs/storn.py.

Run (from the repository root):
  avrnn-train --config=configs/vrnn_i.py --workdir=runs/vrnn_i              # synthetic corpus
  avrnn-train --config=configs/vrnn_i.py:fsdd --workdir=runs/vrnn_i_fsdd    # ../shared/data/fsdd
  avrnn-train --config=configs/vrnn_i.py:tiny --workdir=/tmp/vrnn_i_tiny    # seconds; what tests run
Variants combine: `:tiny,fsdd`. Any field can be overridden, e.g. --config.train.steps=5000.
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "vrnn_i"
    config.model.emission = "normal"
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS), __file__)
