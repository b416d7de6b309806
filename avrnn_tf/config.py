"""The configuration every `configs/*.py` file starts from, its validation, and its typed views.

A config is an `ml_collections.ConfigDict` with these groups:

  model  the network (kind, emission and sizes): becomes a frozen `models.ModelSpec`;
  data   where frames come from and how they are cut and batched;
  train  optimisation, and how often to log, evaluate, write audio and checkpoint;
  adversarial  the A-VRNN phases (used when train.algorithm = "avrnn").

Config files call `base_config()`, change what they need and return it from `get_config(arg)`.
`validate(config)` checks every field's type and range and names each bad field in one
`ConfigError`; the model code only ever sees the `ModelSpec` built by `model_spec(...)`.
"""

import json
import math

import ml_collections

from avrnn_tf import models
from avrnn_tf.adversarial import CRITICS
from avrnn_tf.heads import EMISSIONS

OPTIMIZERS = ("adam", "rmsprop")
ALGORITHMS = ("elbo", "avrnn")
XLA_CHOICES = ("auto", "on", "off")
DATA_FORMATS = ("auto", "synthetic", "wav_dir", "pianoroll")
DATA_FORMATS = DATA_FORMATS + ("timit", "fsdd", "prepared")  # data/corpora.py, data/prepared.py
DECODERS = ("auto", "soundfile", "tfio")


class ConfigError(ValueError):
    """A config field has a wrong type, an out-of-range value or an unknown name."""


def base_config():
    """The defaults: a small VRNN-Gauss on the built-in synthetic corpus, sized for a CPU."""
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        kind="vrnn",            # rnn | storn | vrnn | zforcing
        emission="normal",      # normal | gmm | bernoulli
        h_dim=256,              # LSTM state
        z_dim=64,               # latent size (ignored by kind=rnn)
        mlp_units=256,          # width of feature extractors and heads
        phi_x_layers=2,
        phi_z_layers=1,
        head_layers=1,          # hidden layers of prior / posterior / emission MLPs
        num_mixtures=20,        # GMM components (VRNN paper: 20)
        scale_floor=1e-4,       # sigma = softplus(raw) + scale_floor
        residual_posterior=False,
    ))
    c.data = ml_collections.ConfigDict(dict(
        path="",                # "" = built-in synthetic corpus; else a directory of WAV files
                                # (or, for format pianoroll, a .pickle / .mat / .json file)
        format="auto",          # auto | synthetic | wav_dir | pianoroll
        sample_rate=0,          # Hz; 0 = the data's own rate (16000 for the synthetic corpus)
        frame_size=200,         # samples per frame (x_dim)
        train_frames=40,        # frames per training chunk (0.5 s at 16 kHz with 200-sample frames)
        batch_size=32,
        valid_batch_size=16,
        valid_fraction=0.05,    # share of training utterances held out for validation
        split_seed=1234,        # the literature's validation-split seed
        max_files=0,            # 0 = all; else a deterministic subset (quick runs)
        max_valid_utterances=200,  # bound on validation cost; 0 = all
        synthetic_utterances=400,
        synthetic_seed=0,
        skip_bad_files=False,   # True: skip unreadable/bad files (listed in <workdir>/skipped_files.txt)
        decoder="auto",         # auto | soundfile | tfio (auto: tensorflow-io when its ops run)
        shuffle_buffer=1024,    # chunks held by the shuffle buffer when streaming a prepared corpus
        stream=False,           # True: prepare a raw data.path into <workdir>/prepared and stream it
        max_pianoroll_frames=1_000_000,  # bound on a piano-roll file's frames (352 MB of rolls),
                                # checked while reading (data/pianoroll.py); raise it for bigger files
    ))
    c.train = ml_collections.ConfigDict(dict(
        steps=2000,
        optimizer="adam",       # adam | rmsprop
        learning_rate=1e-3,
        clip_norm=10.0,         # global-norm gradient clipping; <= 0 disables
        kl_weight=1.0,
        kl_anneal=False,        # KL weight min(cap, start + increment * step) instead of kl_weight
        kl_anneal_start=0.2,    # (Z-Forcing's schedule: 0.2, +5e-5 per step, capped at 1)
        kl_anneal_increment=5e-5,
        kl_anneal_cap=1.0,
        aux_weight=0.0,         # Z-Forcing's beta on the auxiliary cost -log p(b_t | z_t)
        seed=0,
        log_every=20,           # TensorBoard scalars
        eval_every=200,         # validation pass + latent histograms
        checkpoint_every=200,
        keep_checkpoints=3,
        audio_every=500,        # generated clips as TensorBoard audio
        num_audio_clips=3,
        audio_seconds=2.0,
        num_final_samples=4,    # WAVs written to <workdir>/samples at the end
        max_nonfinite_steps=20,  # stop after this many consecutive non-finite steps
        deterministic=False,    # TF op determinism: bitwise-reproducible (slower) runs
        algorithm="elbo",       # elbo | avrnn (the adversarial phases; settings in `adversarial`)
        xla="auto",             # XLA-compile the train step: auto (GPU only) | on | off
    ))
    # A-VRNN (train.algorithm = "avrnn"; Huang & Xiao, Algorithms 1-2). The reconstruction phase
    # uses train.optimizer / train.learning_rate / train.clip_norm; train.kl_weight is not used.
    c.adversarial = ml_collections.ConfigDict(dict(
        critic="wgan",          # wgan (weight clipping) | wgan_gp (gradient penalty) | gan (JS)
        critic_lstm_units=128,  # paper: one LSTM layer, state 128
        critic_dense_units=100, # paper: two fully connected layers of 100
        critic_dense_layers=2,
        n_critic=1,             # critic steps per iteration (Algorithm 2: 1)
        clip_value=0.01,        # c: critic weights clipped to [-c, c] (wgan only; WGAN: 0.01)
        gp_weight=10.0,         # gradient-penalty weight (wgan_gp only; WGAN-GP: 10)
        critic_learning_rate=5e-5,       # RMSProp (WGAN's 5e-5)
        adversarial_learning_rate=5e-5,  # RMSProp on prior + posterior
        kl_weight=0.0,          # KL weight in the reconstruction phase (0 = paper; >0 = hybrid)
        separate_batches=True,  # a fresh batch per phase (paper) or one shared batch
        regularize=True,        # False skips the critic and adversarial phases (ablation)
    ))
    return c


def parse_arg(arg, known):
    """Splits a config argument like "tiny,fsdd" into a set, rejecting unknown variants."""
    parts = {p.strip() for p in (arg or "").split(",") if p.strip()}
    unknown = parts - set(known)
    if unknown:
        raise ConfigError(f"unknown config variant(s) {sorted(unknown)}; known: {sorted(known)}")
    return parts


def apply_variants(config, variants):
    """Applies the variants every model config understands: `tiny`, `fsdd` and `jsb`."""
    if "tiny" in variants:
        config.model.update(h_dim=32, z_dim=8, mlp_units=32, phi_x_layers=1, num_mixtures=3)
        config.data.update(batch_size=8, valid_batch_size=8, train_frames=20,
                           synthetic_utterances=40, max_valid_utterances=24)
        config.train.update(steps=60, log_every=10, eval_every=30, checkpoint_every=30,
                            audio_every=30, num_audio_clips=1, audio_seconds=0.25,
                            num_final_samples=1)
    if "fsdd" in variants:
        config.data.path = "../shared/data/fsdd"
    if "jsb" in variants:
        if "fsdd" in variants:
            raise ConfigError("config variants 'fsdd' and 'jsb' pick two datasets; give one")
        apply_jsb(config, tiny="tiny" in variants)
    return config


VARIANTS = ("tiny", "fsdd", "jsb")

JSB_PATH = "../shared/data/jsb/JSB_Chorales.mat"


def apply_jsb(config, tiny=False):
    """JSB Chorales piano-rolls (88 binary notes per frame, Bernoulli emission, no audio).

    Whole chorales are training sequences (at most 160 frames in the train split), as in FIVO;
    `tiny` keeps the tiny variant's short chunks.
    """
    config.data.update(format="pianoroll", path=JSB_PATH, frame_size=88)
    if not tiny:
        config.data.train_frames = 160
    config.model.emission = "bernoulli"
    config.train.update(audio_every=0, num_audio_clips=0, num_final_samples=0)
    return config

# field -> (type, check, what is expected)
_CHECKS = {
    "model.kind": (str, lambda v: v in models.KINDS, f"one of {models.KINDS}"),
    "model.emission": (str, lambda v: v in EMISSIONS, f"one of {EMISSIONS}"),
    "model.h_dim": (int, lambda v: v >= 1, "an integer >= 1"),
    "model.z_dim": (int, lambda v: v >= 1, "an integer >= 1"),
    "model.mlp_units": (int, lambda v: v >= 1, "an integer >= 1"),
    "model.phi_x_layers": (int, lambda v: v >= 1, "an integer >= 1"),
    "model.phi_z_layers": (int, lambda v: v >= 1, "an integer >= 1"),
    "model.head_layers": (int, lambda v: v >= 1, "an integer >= 1"),
    "model.num_mixtures": (int, lambda v: v >= 1, "an integer >= 1"),
    "model.scale_floor": (float, lambda v: 0 < v < 1, "a float in (0, 1)"),
    "model.residual_posterior": (bool, None, "true or false"),
    "data.path": (str, None, "a directory path, or '' for the synthetic corpus"),
    "data.format": (str, lambda v: v in DATA_FORMATS, f"one of {DATA_FORMATS}"),
    "data.sample_rate": (int, lambda v: v == 0 or 1000 <= v <= 192000, "0 or a rate in Hz (1000-192000)"),
    "data.frame_size": (int, lambda v: v >= 1, "an integer >= 1"),
    "data.train_frames": (int, lambda v: v >= 1, "an integer >= 1"),
    "data.batch_size": (int, lambda v: v >= 1, "an integer >= 1"),
    "data.valid_batch_size": (int, lambda v: v >= 1, "an integer >= 1"),
    "data.valid_fraction": (float, lambda v: 0 < v < 1, "a fraction in (0, 1)"),
    "data.split_seed": (int, None, "an integer"),
    "data.max_files": (int, lambda v: v >= 0, "an integer >= 0"),
    "data.max_valid_utterances": (int, lambda v: v >= 0, "an integer >= 0"),
    "data.synthetic_utterances": (int, lambda v: v >= 4, "an integer >= 4"),
    "data.synthetic_seed": (int, None, "an integer"),
    "data.skip_bad_files": (bool, None, "true or false"),
    "data.decoder": (str, lambda v: v in DECODERS, f"one of {DECODERS}"),
    "data.shuffle_buffer": (int, lambda v: v >= 1, "an integer >= 1"),
    "data.stream": (bool, None, "true or false"),
    "data.max_pianoroll_frames": (int, lambda v: v >= 1, "an integer >= 1"),
    "train.steps": (int, lambda v: v >= 1, "an integer >= 1"),
    "train.optimizer": (str, lambda v: v in OPTIMIZERS, f"one of {OPTIMIZERS}"),
    "train.learning_rate": (float, lambda v: 0 < v < 10, "a float in (0, 10)"),
    "train.clip_norm": (float, None, "a float (<= 0 disables clipping)"),
    "train.kl_weight": (float, lambda v: v >= 0, "a float >= 0"),
    "train.kl_anneal": (bool, None, "true or false"),
    "train.kl_anneal_start": (float, lambda v: v >= 0, "a float >= 0"),
    "train.kl_anneal_increment": (float, lambda v: v >= 0, "a float >= 0"),
    "train.kl_anneal_cap": (float, lambda v: v >= 0, "a float >= 0"),
    "train.aux_weight": (float, lambda v: v >= 0, "a float >= 0"),
    "train.seed": (int, None, "an integer"),
    "train.log_every": (int, lambda v: v >= 1, "an integer >= 1"),
    "train.eval_every": (int, lambda v: v >= 1, "an integer >= 1"),
    "train.checkpoint_every": (int, lambda v: v >= 1, "an integer >= 1"),
    "train.keep_checkpoints": (int, lambda v: v >= 1, "an integer >= 1"),
    "train.audio_every": (int, lambda v: v >= 0, "an integer >= 0 (0 disables)"),
    "train.num_audio_clips": (int, lambda v: v >= 0, "an integer >= 0"),
    "train.audio_seconds": (float, lambda v: 0 < v <= 60, "seconds in (0, 60]"),
    "train.num_final_samples": (int, lambda v: v >= 0, "an integer >= 0"),
    "train.max_nonfinite_steps": (int, lambda v: v >= 1, "an integer >= 1"),
    "train.deterministic": (bool, None, "true or false"),
    "train.algorithm": (str, lambda v: v in ALGORITHMS, f"one of {ALGORITHMS}"),
    "train.xla": (str, lambda v: v in XLA_CHOICES, f"one of {XLA_CHOICES}"),
    "adversarial.critic": (str, lambda v: v in CRITICS, f"one of {CRITICS}"),
    "adversarial.critic_lstm_units": (int, lambda v: v >= 1, "an integer >= 1"),
    "adversarial.critic_dense_units": (int, lambda v: v >= 1, "an integer >= 1"),
    "adversarial.critic_dense_layers": (int, lambda v: v >= 0, "an integer >= 0"),
    "adversarial.n_critic": (int, lambda v: v >= 1, "an integer >= 1"),
    "adversarial.clip_value": (float, lambda v: v > 0, "a float > 0"),
    "adversarial.gp_weight": (float, lambda v: v >= 0, "a float >= 0"),
    "adversarial.critic_learning_rate": (float, lambda v: 0 < v < 10, "a float in (0, 10)"),
    "adversarial.adversarial_learning_rate": (float, lambda v: 0 < v < 10, "a float in (0, 10)"),
    "adversarial.kl_weight": (float, lambda v: v >= 0, "a float >= 0"),
    "adversarial.separate_batches": (bool, None, "true or false"),
    "adversarial.regularize": (bool, None, "true or false"),
}


def _get(config, dotted):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _leaves(config, prefix=""):
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict):
            yield from _leaves(value, name + ".")
        else:
            yield name


def field_names(config):
    """The dotted names of every leaf field, e.g. {"train.steps", ...}."""
    return set(_leaves(config))


def validate(config):
    """Raises ConfigError naming every bad field (type, range, unknown or missing name)."""
    problems = []
    present = field_names(config)
    for name in sorted(present - set(_CHECKS)):
        problems.append(f"config.{name}: unknown field")
    for name, (kind, check, expected) in _CHECKS.items():
        if name not in present:
            problems.append(f"config.{name}: missing (expected {expected})")
            continue
        value = _get(config, name)
        ok_type = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok_type = True
        if not ok_type or (kind is float and not math.isfinite(value)):
            problems.append(f"config.{name} = {value!r}: expected {expected}")
        elif check is not None and not check(value):
            problems.append(f"config.{name} = {value!r}: expected {expected}")
    if not problems and config.train.algorithm == "avrnn" and config.train.kl_weight != 1.0:
        problems.append(f"config.train.kl_weight = {config.train.kl_weight!r}: not used by "
                        "train.algorithm 'avrnn'; its KL weight is config.adversarial.kl_weight")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def model_spec(config, x_dim, emission_bias=None):
    """The frozen `ModelSpec` for a validated config and a frame size."""
    m = config.model
    return models.ModelSpec(
        kind=m.kind, emission=m.emission, x_dim=int(x_dim), h_dim=m.h_dim, z_dim=m.z_dim,
        mlp_units=m.mlp_units, phi_x_layers=m.phi_x_layers, phi_z_layers=m.phi_z_layers,
        head_layers=m.head_layers, num_mixtures=m.num_mixtures, scale_floor=float(m.scale_floor),
        residual_posterior=m.residual_posterior,
        emission_bias=None if emission_bias is None else tuple(float(v) for v in emission_bias))


def to_json(config):
    """A stable JSON text of a config (what is saved into the workdir)."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def trainer_options(train):
    """ELBOTrainer keyword arguments from `config.train` beyond the original ones (KL schedule,
    auxiliary weight)."""
    schedule = None
    if train.kl_anneal:
        schedule = (float(train.kl_anneal_start), float(train.kl_anneal_increment),
                    float(train.kl_anneal_cap))
    return {"kl_schedule": schedule, "aux_weight": float(train.aux_weight)}
