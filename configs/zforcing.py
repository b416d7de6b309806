"""Z-Forcing (Goyal et al. 2017): backward LSTM feeding the posterior, auxiliary cost, KL annealing.

The posterior is q(z_t | h_{t-1}, b_t) with b_t a backward LSTM over x_{t:T}; the objective adds
beta * log p(b_t | z_t) (train.aux_weight) and anneals the KL weight with the paper's schedule
(0.2, +5e-5 per step, capped at 1; train.kl_anneal*). Variants as for every model (`:tiny`, `:fsdd`;
under `:fsdd` the anneal's increment is 5e-4, weight 1 at step 1,600, chosen on FSDD's validation
split, BUILD_NOTES 7.4), plus `:jsb` for JSB Chorales piano-rolls (Bernoulli emission; there beta
is 0.01, chosen on validation: at beta = 1 the run never beats its initial weights, BUILD_NOTES
15.1 and 16.2).

Run (from the repository root):
  avrnn-train --config=configs/zforcing.py:fsdd --workdir=runs/zforcing_fsdd    # speech
  avrnn-train --config=configs/zforcing.py:jsb --workdir=runs/zforcing_jsb      # piano-rolls
  avrnn-train --config=configs/zforcing.py:tiny --workdir=/tmp/zforcing_tiny    # seconds
  avrnn-eval --workdir=runs/zforcing_fsdd --bound=iwae --num_samples=100 --split=test
Switch the annealing off with --config.train.kl_anneal=False (constant train.kl_weight).
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "zforcing"
    config.model.emission = "gmm"
    config.train.update(aux_weight=1.0, kl_anneal=True, kl_anneal_start=0.2,
                        kl_anneal_increment=5e-5, kl_anneal_cap=1.0)
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS), __file__)
