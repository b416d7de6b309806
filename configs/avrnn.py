"""A-VRNN (Huang & Xiao): the VRNN-Gauss network trained by the adversarial two-phase algorithm.

Per step: reconstruction phase (-log p(x|z~), RMSProp), one WGAN critic step on prior vs posterior
latent sequences (critic: LSTM 128 -> 2 x FC 100 -> scalar, weights clipped to [-0.01, 0.01]), one
adversarial step on prior and posterior; a fresh batch for each phase. See DESIGN.md section 4.

Run (from the repository root):
  avrnn-train --config=configs/avrnn.py:fsdd --workdir=runs/avrnn_fsdd        # ../shared/data/fsdd
  avrnn-train --config=configs/avrnn.py --workdir=runs/avrnn                  # synthetic corpus
  avrnn-train --config=configs/avrnn.py:tiny,fsdd --workdir=/tmp/avrnn_tiny   # seconds; what tests run
Extensions (variants, combinable with the shared ones):
  :hybrid   KL weight 1 in the reconstruction phase (A-VRNN + KL)
  :best     the recommended A-VRNN variant, chosen on validation (BUILD_NOTES 9.2): the hybrid.
            It does not beat ELBO-trained VRNN-Gauss (FSDD test IWAE-100 105.6 +- 1.8 against
            109.4 +- 8.0; JSB -8.501 +- 0.021 against -8.449 +- 0.006 nats/frame, 3 seeds each)
  :gp       WGAN-GP critic (gradient penalty 10, no clipping)
  :gan      JS-divergence (AAE-style) discriminator
  :shared   one batch shared by all phases
e.g. --config=configs/avrnn.py:tiny,fsdd,gp. Any field can be overridden, e.g.
--config.adversarial.n_critic=5 --config.adversarial.clip_value=0.05.
"""

from avrnn_tf import config as cfg

EXTENSIONS = ("hybrid", "best", "gp", "gan", "shared")


def get_config(arg=None):
    config = cfg.base_config()
    config.model.kind = "vrnn"
    config.model.emission = "normal"
    config.train.algorithm = "avrnn"
    config.train.optimizer = "rmsprop"  # RMSProp in all three phases (paper, after WGAN).
    config.train.learning_rate = 1e-3
    variants = cfg.parse_arg(arg, cfg.VARIANTS + EXTENSIONS)
    a = config.adversarial
    if "tiny" in variants:
        a.update(critic_lstm_units=16, critic_dense_units=16)
    if variants & {"hybrid", "best"}:
        a.kl_weight = 1.0
    if "gp" in variants:
        a.critic = "wgan_gp"
        a.update(critic_learning_rate=1e-4, adversarial_learning_rate=1e-4)
    if "gan" in variants:
        a.critic = "gan"
    if "shared" in variants:
        a.separate_batches = False
    return cfg.apply_variants(config, variants & set(cfg.VARIANTS), __file__)
