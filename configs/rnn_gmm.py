"""RNN-GMM: an LSTM with a 20-component diagonal GMM output; exact log-likelihood.

Run (from the repository root):
  avrnn-train --config=configs/rnn_gmm.py --workdir=runs/rnn_gmm              # synthetic corpus
  avrnn-train --config=configs/rnn_gmm.py:fsdd --workdir=runs/rnn_gmm_fsdd    # ../shared/data/fsdd
  avrnn-train --config=configs/rnn_gmm.py:tiny --workdir=/tmp/rnn_gmm_tiny    # seconds; what tests run
Variants combine: `:tiny,fsdd`. Any field can be overridden, e.g. --config.train.steps=5000.
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "rnn"
    config.model.emission = "gmm"
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS), __file__)
