"""RNN-Gauss: an LSTM with a diagonal Normal output p(x_t | h_{t-1}); exact log-likelihood.

Run (from the repository root):
  avrnn-train --config=configs/rnn_gauss.py --workdir=runs/rnn_gauss              # synthetic corpus
  avrnn-train --config=configs/rnn_gauss.py:fsdd --workdir=runs/rnn_gauss_fsdd    # ../shared/data/fsdd
  avrnn-train --config=configs/rnn_gauss.py:tiny --workdir=/tmp/rnn_gauss_tiny    # seconds; what tests run
Variants combine: `:tiny,fsdd`. Any field can be overridden, e.g. --config.train.steps=5000.
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "rnn"
    config.model.emission = "normal"
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS), __file__)
