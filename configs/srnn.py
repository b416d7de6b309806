"""SRNN (Fraccaro et al. 2016): forward LSTM d_t, state-space layer p(z_t | z_{t-1}, d_t), smoothing
posterior q(z_t | z_{t-1}, a_t) on a backward RNN over [d, x]_{t:T}; ELBO. See avrnn_tf/srnn.py.

Run (from the repository root):
  avrnn-train --config=configs/srnn.py --workdir=runs/srnn              # synthetic corpus
  avrnn-train --config=configs/srnn.py:fsdd --workdir=runs/srnn_fsdd    # speech (FSDD)
  avrnn-train --config=configs/srnn.py:jsb --workdir=runs/srnn_jsb      # JSB piano-rolls
  avrnn-train --config=configs/srnn.py:tiny --workdir=/tmp/srnn_tiny    # seconds; what tests run
  avrnn-eval --workdir=runs/srnn_fsdd --bound=iwae --num_samples=100 --split=test
The paper's "Resq" posterior mean (prior mean + a learned correction) is on; switch it off with
--config.model.residual_posterior=False. For FIVO use the filtering posterior
(--config.model.srnn_posterior=filtering), as FIVO's SRNN does.
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "srnn"
    config.model.emission = "gmm"
    config.model.residual_posterior = True
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS), __file__)
