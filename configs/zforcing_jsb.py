"""Z-Forcing on JSB Chorales piano-rolls (Bernoulli emission); the same as configs/zforcing.py:jsb,
auxiliary weight included (beta = `config.ZFORCING_JSB_AUX_WEIGHT`, 0.01).

  avrnn-train --config=configs/zforcing_jsb.py --workdir=runs/zforcing_jsb
  avrnn-train --config=configs/zforcing_jsb.py:tiny --workdir=/tmp/zforcing_jsb_tiny
  avrnn-eval --workdir=runs/zforcing_jsb --bound=fivo --num_samples=4 --split=test
"""

from avrnn_tf import config as cfg


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "zforcing"
    config.train.update(aux_weight=1.0, kl_anneal=True, kl_anneal_start=0.2,
                        kl_anneal_increment=5e-5, kl_anneal_cap=1.0)
    return cfg.apply_variants(config, cfg.parse_arg(arg, cfg.VARIANTS) | {"jsb"}, __file__)
