"""STORN (Bayer & Osendorfer 2014): a recognition RNN over x_{1:t} feeds q(z_t | x_{1:t}), the prior
is a fixed N(0, I), the generative RNN reads [x_{t-1}, z_t]; ELBO. See avrnn_tf/storn.py.

Until issue 12 model.kind "storn" was the VRNN paper's VRNN-I (configs/vrnn_i.py); workdirs
written then are refused with a message saying so.

Run (from the repository root):
  avrnn-train --config=configs/storn.py --workdir=runs/storn              # synthetic corpus
  avrnn-train --config=configs/storn.py:fsdd --workdir=runs/storn_fsdd    # ../shared/data/fsdd
  avrnn-train --config=configs/storn.py:jsb --workdir=runs/storn_jsb      # JSB piano-rolls
  avrnn-train --config=configs/storn.py:tiny --workdir=/tmp/storn_tiny    # seconds; what tests run
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "storn"
    config.model.emission = "normal"
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS), __file__)
