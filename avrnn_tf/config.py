"""Every config field, declared once; the base config, its validation and its help text.

A config is an `ml_collections.ConfigDict` with these groups:

  model  the network (kind, emission and sizes): becomes a frozen `models.ModelSpec`;
  data   where frames come from and how they are cut and batched;
  train  optimisation, and how often to log, evaluate, write audio and checkpoint;
  adversarial  the A-VRNN phases (used when train.algorithm = "avrnn").

Each field is one `Field(name, default, doc, check)` line in `FIELDS` below: the default (whose
Python type is the field's type), a one-line meaning, and the accepted range or choices.
`base_config()`, `validate()` and the field list of `avrnn-train --help` are generated from it, so
adding a field is adding one line there (and reading it where it is used).

Config files call `base_config()`, change what they need and return it from `get_config(arg)`.
`validate(config)` checks every field's type and range and names each bad field in one
`ConfigError`; the model code only ever sees the `ModelSpec` built by `model_spec(...)`.

This module imports neither TensorFlow nor a module that does, so a config file is loaded and
checked (and a typo reported) before TensorFlow starts.
"""

import dataclasses
import difflib
import importlib.util
import json
import math
import os
import runpy
import textwrap
import traceback
from typing import Callable, NamedTuple, Optional

import ml_collections

from avrnn_tf import names

# Size bounds: far above every published setting of these models (VRNN's TIMIT model has 2000
# LSTM units), low enough that an absurd value is refused before TensorFlow allocates anything.
MAX_UNITS = 4096
MAX_LAYERS = 16
MAX_BATCH = 4096
MAX_SEED = 2**31 - 1  # seeds become int32 tensors and numpy generator seeds (both need >= 0)
# The recurrence runs once per frame: frames below 8 samples (0.5 ms at 16 kHz) make a second of
# audio more than 2000 sequential LSTM steps, a run that crawls rather than trains. (8, not more:
# the tiny test fixtures written before this bound use 8-sample frames and must keep restoring.)
MIN_FRAME_SIZE = 8
MAX_FRAME_SIZE = 16384


class ConfigError(ValueError):
    """A config field has a wrong type, an out-of-range value or an unknown name."""


class Check(NamedTuple):
    """What a field accepts beyond its type: `ok(value)`, and `expected` for the message ("{type}"
    stands for the type's words, e.g. "an integer")."""
    ok: Callable[[object], bool]
    expected: str


def one_of(choices):
    return Check(lambda v: v in choices, f"one of {choices}")


def at_least(low):
    return Check(lambda v: v >= low, f"{{type}} >= {low}")


def between(low, high, open_low=False, open_high=False):
    """low <= v <= high, with either end excluded when open."""
    def ok(v):
        return (v > low if open_low else v >= low) and (v < high if open_high else v <= high)
    return Check(ok, f"{{type}} in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}")


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a float", str: "a string"}


@dataclasses.dataclass(frozen=True)
class Field:
    """One config field: `name` ("group.field"), `default` (its type is the field's type: bool,
    int, float or str), a one-line `doc`, and an optional `check` (range or choices)."""
    name: str
    default: object
    doc: str
    check: Optional[Check] = None

    @property
    def expected(self):
        words = _TYPE_WORDS[type(self.default)]
        return self.check.expected.format(type=words) if self.check else words

    def problem(self, value, label=None):
        """None if `value` is acceptable, else the message for it (naming `label`, by default
        config.<name>)."""
        kind = type(self.default)
        if kind is float:  # An int is a fine float; a bool is neither.
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if ok and (self.check is None or self.check.ok(value)):
            return None
        return f"{label or 'config.' + self.name} = {value!r}: expected {self.expected}"


GROUPS = {
    "model": "the network: kind, emission and sizes",
    "data": "where frames come from and how they are cut and batched",
    "train": "optimisation; how often to log, evaluate, write audio and checkpoint",
    "adversarial": "the A-VRNN phases (train.algorithm = avrnn; Huang & Xiao, Algorithms 1-2)",
}

FIELDS = (
    Field("model.kind", "vrnn", "network family", one_of(names.KINDS)),
    Field("model.emission", "normal", "output distribution per frame", one_of(names.EMISSIONS)),
    Field("model.h_dim", 256, "LSTM state size", between(1, MAX_UNITS)),
    Field("model.z_dim", 64, "latent size (ignored by kind=rnn)", between(1, MAX_UNITS)),
    Field("model.mlp_units", 256, "width of the feature extractors and heads", between(1, MAX_UNITS)),
    Field("model.phi_x_layers", 2, "depth of the frame feature extractor", between(1, MAX_LAYERS)),
    Field("model.phi_z_layers", 1, "depth of the latent feature extractor", between(1, MAX_LAYERS)),
    Field("model.head_layers", 1, "hidden layers of the prior, posterior and emission MLPs",
          between(1, MAX_LAYERS)),
    Field("model.num_mixtures", 20, "GMM components (VRNN paper: 20)", between(1, 256)),
    Field("model.scale_floor", 1e-4, "sigma = softplus(raw) + scale_floor", between(0, 1, True, True)),
    Field("model.residual_posterior", False, "posterior mean = prior mean + a learned offset"),
    Field("model.srnn_posterior", "smoothing", "SRNN's q(z_t | z_{t-1}, .): 'smoothing' reads a "
          "backward RNN over [d, x]_{t:T}, 'filtering' only d_t, x_t (for FIVO)",
          one_of(names.SRNN_POSTERIORS)),

    Field("data.path", "", "'' = the built-in synthetic corpus; else a directory of audio files "
          "(or, for format pianoroll, a .pickle / .mat / .json file)"),
    Field("data.format", "auto", "how data.path is read", one_of(names.DATA_FORMATS)),
    Field("data.max_pianoroll_frames", 1_000_000, "bound on a piano-roll file's frames (352 MB of "
          "rolls), checked while reading, before arrays are built; raise it for bigger files",
          at_least(1)),
    Field("data.sample_rate", 0, "Hz; 0 = the data's own rate (16000 for the synthetic corpus)",
          Check(lambda v: v == 0 or 1000 <= v <= 192000, "0 or a rate in Hz (1000-192000)")),
    Field("data.frame_size", 200, f"samples per frame (x_dim); at least {MIN_FRAME_SIZE}, since the "
          "recurrence runs once per frame", between(MIN_FRAME_SIZE, MAX_FRAME_SIZE)),
    Field("data.train_frames", 40, "frames per training chunk (0.5 s at 16 kHz, 200-sample frames); "
          "0 = whole utterances (length-bucketed batches with masks)", between(0, 100000)),
    Field("data.max_batch_frames", 4096, "with train_frames = 0: bound on a batch's padded frames "
          "(sequences x padded length); longer utterances are cut to this many frames",
          between(1, 10**7)),
    Field("data.batch_size", 32, "training sequences per batch (the global batch)",
          between(1, MAX_BATCH)),
    Field("data.valid_batch_size", 16, "validation sequences per batch", between(1, MAX_BATCH)),
    Field("data.valid_fraction", 0.05, "share of the training utterances held out for validation",
          between(0, 1, True, True)),
    Field("data.split_seed", 1234, "seed of the validation split (the literature's 1234)",
          between(0, MAX_SEED)),
    Field("data.max_files", 0, "0 = all files; else a deterministic subset (quick runs)", at_least(0)),
    Field("data.max_valid_utterances", 200, "bound on the validation cost; 0 = all", at_least(0)),
    Field("data.synthetic_utterances", 400, "utterances of the synthetic corpus", at_least(4)),
    Field("data.synthetic_seed", 0, "seed of the synthetic corpus", between(0, MAX_SEED)),
    Field("data.skip_bad_files", False, "skip unreadable files (listed in "
          "<workdir>/skipped_files.txt) instead of stopping"),
    Field("data.decoder", "auto", "audio decoder (auto: tensorflow-io when its ops run)",
          one_of(names.DECODERS)),
    Field("data.shuffle_buffer", 1024, "chunks held by the shuffle buffer when streaming a prepared "
          "corpus", at_least(1)),
    Field("data.stream", False, "prepare a raw data.path into <workdir>/prepared and stream it"),

    Field("train.steps", 2000, "training steps (a larger value continues a finished run)",
          at_least(1)),
    Field("train.optimizer", "adam", "optimizer", one_of(names.OPTIMIZERS)),
    Field("train.learning_rate", 1e-3, "learning rate", between(0, 10, True, True)),
    Field("train.weight_decay", 0.0, "decoupled weight decay (AdamW / Loshchilov & Hutter 2019): "
          "each step w -= learning_rate * weight_decay * w on weight matrices (biases excluded); "
          "0 = off", between(0, 1, open_high=True)),
    Field("train.ema_decay", 0.0, "exponential moving average of the weights (averaging.py): "
          "validation, checkpoints, samples, evaluation and export use the average with this "
          "decay (e.g. 0.999); 0 = off", between(0, 1, open_high=True)),
    Field("train.clip_norm", 10.0, "global-norm gradient clipping; <= 0 disables it"),
    Field("train.kl_weight", 1.0, "weight of the KL term of the ELBO", at_least(0)),
    Field("train.kl_anneal", False, "KL weight min(cap, start + increment * step) instead of "
          "kl_weight"),
    Field("train.kl_anneal_start", 0.2, "annealing start (Z-Forcing: 0.2)", at_least(0)),
    Field("train.kl_anneal_increment", 5e-5, "annealing increment per step (Z-Forcing: 5e-5)",
          at_least(0)),
    Field("train.kl_anneal_cap", 1.0, "annealing cap (Z-Forcing: 1)", at_least(0)),
    Field("train.kl_anneal_from_recipe", False, "set by a dataset recipe (`:jsb`) that turned "
          "train.kl_anneal on: where nothing anneals (train.objective 'iwae'/'fivo', "
          "train.algorithm 'avrnn', model.kind 'rnn') the recipe's anneal steps aside instead of "
          "being refused; switch it off with train.kl_anneal = False"),
    Field("train.free_bits", 0.0, "KL floor per latent dimension in nats per frame, on the KL "
          "averaged over the batch's real frames (Kingma et al. 2016); 0 = off", at_least(0)),
    Field("train.aux_weight", 0.0, "Z-Forcing's beta on the auxiliary cost -log p(b_t | z_t)",
          at_least(0)),
    Field("train.seed", 0, "seed of the initial weights and the training noise", between(0, MAX_SEED)),
    Field("train.log_every", 20, "steps between TensorBoard training scalars", at_least(1)),
    Field("train.eval_every", 200, "steps between validation passes (and latent histograms)",
          at_least(1)),
    Field("train.checkpoint_every", 200, "steps between checkpoints", at_least(1)),
    Field("train.keep_checkpoints", 3, "checkpoints kept", at_least(1)),
    Field("train.audio_every", 500, "steps between generated clips in TensorBoard; 0 disables",
          at_least(0)),
    Field("train.num_audio_clips", 3, "clips per audio summary", at_least(0)),
    Field("train.audio_seconds", 2.0, "length of a generated clip", between(0, 60, open_low=True)),
    Field("train.num_final_samples", 4, "WAVs written to <workdir>/samples at the end", at_least(0)),
    Field("train.max_nonfinite_steps", 20, "stop after this many consecutive non-finite steps",
          at_least(1)),
    Field("train.deterministic", False, "TF op determinism: bitwise-reproducible (slower) runs"),
    Field("train.algorithm", "elbo", "training algorithm (avrnn: the adversarial phases)",
          one_of(names.ALGORITHMS)),
    Field("train.objective", "elbo", "what the ELBO trainer maximises (objectives.py): elbo, or the "
          "K-particle bounds iwae | fivo", one_of(names.OBJECTIVES)),
    Field("train.num_particles", 1, "K of train.objective = iwae | fivo (FIVO paper: 4)",
          between(1, 1024)),
    Field("train.early_stopping_patience", 0, "stop after this many validation rounds without a "
          "better best checkpoint (rounds before a KL anneal reaches its cap do not count, nor "
          "for the plateau decay); 0 = never", at_least(0)),
    Field("train.lr_decay_on_plateau", 0.0, "multiply the learning rate by this factor after "
          "train.lr_plateau_patience rounds without improvement (A-VRNN: the critic's and "
          "adversarial rates too); 0 = off", between(0, 1, False, True)),
    Field("train.lr_plateau_patience", 3, "validation rounds without improvement before a decay",
          at_least(1)),
    Field("train.min_learning_rate", 0.0, "plateau decay never goes below this rate", at_least(0)),
    Field("train.xla", "auto", "XLA-compile the train step (auto: on GPU only)",
          one_of(names.XLA_CHOICES)),

    Field("adversarial.critic", "wgan", "wgan (weight clipping) | wgan_gp (gradient penalty) | "
          "gan (JS)", one_of(names.CRITICS)),
    Field("adversarial.critic_lstm_units", 128, "critic LSTM state (paper: 128)",
          between(1, MAX_UNITS)),
    Field("adversarial.critic_dense_units", 100, "critic dense width (paper: 100)",
          between(1, MAX_UNITS)),
    Field("adversarial.critic_dense_layers", 2, "critic dense layers (paper: 2)",
          between(0, MAX_LAYERS)),
    Field("adversarial.n_critic", 1, "critic steps per iteration (Algorithm 2: 1)", at_least(1)),
    Field("adversarial.clip_value", 0.01, "critic weights clipped to [-c, c] (wgan only)",
          Check(lambda v: v > 0, "{type} > 0")),
    Field("adversarial.gp_weight", 10.0, "gradient-penalty weight (wgan_gp only)", at_least(0)),
    Field("adversarial.critic_learning_rate", 5e-5, "critic RMSProp rate (WGAN: 5e-5)",
          between(0, 10, True, True)),
    Field("adversarial.adversarial_learning_rate", 5e-5, "RMSProp rate on prior + posterior",
          between(0, 10, True, True)),
    Field("adversarial.kl_weight", 0.0, "KL weight of the reconstruction phase (0 = paper; "
          ">0 = hybrid)", at_least(0)),
    Field("adversarial.separate_batches", True, "a fresh batch per phase (paper), else one shared"),
    Field("adversarial.regularize", True, "False skips the critic and adversarial phases "
          "(ablation)"),
)

BY_NAME = {f.name: f for f in FIELDS}


def base_config():
    """The defaults: a small VRNN-Gauss on the built-in synthetic corpus, sized for a CPU."""
    c = ml_collections.ConfigDict()
    for group in GROUPS:
        c[group] = ml_collections.ConfigDict()
    for f in FIELDS:
        group, key = f.name.split(".")
        c[group][key] = f.default
    return c


def help_text():
    """The field list of `avrnn-train --help`: one line per field with its default and range."""
    lines = ["Config fields (--config.GROUP.FIELD=VALUE; the defaults of base_config(), which a "
             "config file changes):"]
    for group, doc in GROUPS.items():
        lines.append(f"\n  {group}: {doc}")
        for f in FIELDS:
            if f.name.startswith(group + "."):
                default = json.dumps(f.default) if isinstance(f.default, str) else f.default
                lines.append(textwrap.fill(f"{f.name}={default}: {f.doc} ({f.expected})", 100,
                                           initial_indent=" " * 4, subsequent_indent=" " * 8))
    return "\n".join(lines)


def closest(word, candidates):
    """The candidate closest to a mistyped `word` (fields here, flags in cli.py), or None."""
    found = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def suggest(name, known=None):
    """" (did you mean X?)" for the known field closest to `name`, or ""."""
    close = closest(name, known or BY_NAME)
    return f" (did you mean {close}?)" if close else ""


def parse_arg(arg, known):
    """Splits a config argument like "tiny,fsdd" into a set, rejecting unknown variants."""
    parts = {p.strip() for p in (arg or "").split(",") if p.strip()}
    unknown = parts - set(known)
    if unknown:
        raise ConfigError(f"unknown config variant(s) {sorted(unknown)}; known: {sorted(known)}")
    return parts


VARIANTS = ("tiny", "fsdd", "jsb", "timit")
DATASETS_FILE = "datasets.py"  # beside the config files: where the :fsdd and :jsb data live


def apply_variants(config, variants, config_file):
    """Applies the variants every model config understands: `tiny`, and the dataset recipes
    `fsdd`, `jsb` and `timit` (data plus the training protocol that reaches a converged number on
    it; see `speech_recipe`, `apply_jsb`, `timit_recipe`).

    `config_file` is the calling config's `__file__`; the dataset paths of `fsdd` and `jsb` are
    read from the `datasets.py` beside it (they are local to a checkout, not the library's).
    With `tiny`, a recipe only points at the data: tests keep the tiny sizes and budget.
    """
    if "tiny" in variants:
        config.model.update(h_dim=32, z_dim=8, mlp_units=32, phi_x_layers=1, num_mixtures=3)
        config.data.update(batch_size=8, valid_batch_size=8, train_frames=20,
                           synthetic_utterances=40, max_valid_utterances=24)
        config.train.update(steps=60, log_every=10, eval_every=30, checkpoint_every=30,
                            audio_every=30, num_audio_clips=1, audio_seconds=0.25,
                            num_final_samples=1)
    datasets = variants & {"fsdd", "jsb", "timit"}
    if len(datasets) > 1:
        raise ConfigError(f"config variants {sorted(datasets)} pick {len(datasets)} datasets; give one")
    tiny = "tiny" in variants
    if "fsdd" in variants:
        config.data.path = _datasets(config_file)["FSDD"]
        if not tiny:
            speech_recipe(config)
    if "jsb" in variants:
        apply_jsb(config, _datasets(config_file)["JSB"], tiny=tiny)
    if "timit" in variants:
        timit_recipe(config, tiny)
    return config


def _datasets(config_file):
    return runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(config_file)), DATASETS_FILE))


def converge(config, eval_every, patience, ema_decay=0.0):
    """Train until validation stops improving: the budget `train.steps` is a cap; validation every
    `eval_every` steps keeps the best checkpoint (what avrnn-eval and avrnn-export use), halves the
    learning rates after 3 rounds without a new best and stops after `patience` rounds. With
    `ema_decay`, validation and everything after it use the weights' moving average."""
    config.train.update(eval_every=eval_every, checkpoint_every=eval_every,
                        early_stopping_patience=patience, lr_decay_on_plateau=0.5,
                        lr_plateau_patience=3, min_learning_rate=1e-5, ema_decay=ema_decay)


# The `:fsdd` and `:jsb` recipes' stopping rule (BUILD_NOTES 10.2): the weights' moving average
# (decay 0.999) makes the validation curve smooth (without it, rounds differ by 2-3 nats/frame on
# FSDD), so the run can stop 4 rounds after its best one; measured on validation, the average was
# 3-4.5 nats/frame better at its best round for STORN, SRNN and VRNN-GMM on FSDD, and after the
# best round it falls steadily where those models over-fit, which 4 rounds of patience keep
# within 3% (patience 10 let it fall 5-20%). On JSB (VRNN) it was as good or slightly better.
RECIPE_EMA_DECAY = 0.999
RECIPE_PATIENCE = 4

# Z-Forcing's KL anneal increment under `:fsdd` (BUILD_NOTES 7.4): the paper's 5e-5 per step
# reaches weight 1 at step 16,000, near the end of the recipe's budget; of 5e-5 and 5e-4 (weight 1
# at step 1,600), chosen on FSDD's validation split at the paper's beta = 1, 5e-4 (87.9 against
# 75.8 nats/frame at 4,000 steps). The FSDD table's Z-Forcing rows are trained with it.
ZFORCING_FSDD_KL_ANNEAL_INCREMENT = 5e-4


def speech_recipe(config):
    """The `:fsdd` recipe (BUILD_NOTES 7): whole utterances, early stopping on validation.

    Whole utterances (data.train_frames = 0): the held-out likelihood is measured on whole
    utterances, and chunked training measured no better there (BUILD_NOTES 7.2). Sizes that train
    on a CPU in minutes (h 128, z 32, MLPs 128); A-VRNN's phases share one batch, since
    whole-utterance batches differ in shape (adversarial.separate_batches). Z-Forcing's KL anneal
    reaches weight 1 at step 1,600 (`ZFORCING_FSDD_KL_ANNEAL_INCREMENT`).
    """
    config.model.update(h_dim=128, z_dim=32, mlp_units=128)
    config.data.update(train_frames=0, batch_size=32)
    config.train.update(steps=20000, audio_every=2000)
    converge(config, eval_every=200, patience=RECIPE_PATIENCE, ema_decay=RECIPE_EMA_DECAY)
    if config.model.kind == "zforcing" and config.train.kl_anneal:
        config.train.kl_anneal_increment = ZFORCING_FSDD_KL_ANNEAL_INCREMENT
    if config.train.algorithm == "avrnn":
        config.adversarial.separate_batches = False


def timit_recipe(config, tiny=False):
    """The `:timit` recipe: FIVO's TIMIT protocol (tensorflow/models research/fivo, bin/run_train.sh
    and fivo.py defaults): whole utterances of 200-sample frames at 16 kHz standardized with the
    training mean/std, batch 4, Adam 1e-4, every layer 64 units (FIVO's latent_size, which also
    sizes its LSTM and MLPs), FIVO-4 for the latent kinds (a smoothing SRNN uses its filtering
    posterior, as FIVO's SRNN does; A-VRNN keeps its phases and Z-Forcing its ELBO with the
    auxiliary cost and KL annealing, which a FIVO bound has no term for; RNNs are exact). FIVO trains
    without a stopping rule; here validation every 1,000 steps stops the run after 20 rounds
    without a new best. The data path is yours: --config.data.path=/path/to/TIMIT.
    """
    config.data.update(sample_rate=16000, frame_size=200, train_frames=0)
    config.train.update(audio_every=0 if tiny else 10000)
    if not tiny:
        config.model.update(h_dim=64, z_dim=64, mlp_units=64)
        config.data.batch_size = 4
        config.train.update(steps=1_000_000, learning_rate=1e-4)
        converge(config, eval_every=1000, patience=20)
    t = config.train
    if config.model.kind != "rnn" and t.algorithm != "avrnn" and not t.kl_anneal and \
            t.aux_weight == 0 and t.free_bits == 0:
        config.train.update(objective="fivo", num_particles=4)
        if config.model.kind == "srnn":
            config.model.srnn_posterior = "filtering"
    if config.train.algorithm == "avrnn":
        config.adversarial.separate_batches = False


# The `:jsb` recipe's KL anneal (start, increment per step, cap; BUILD_NOTES 14.2 and 15): with the
# full KL weight from step 0, VRNN's latent on JSB collapses within the first 200 steps and never
# recovers. These are Z-Forcing's start and cap with ten times its increment (weight 1 by step
# 1,600), the setting first used on FSDD, not tuned on JSB.
JSB_KL_ANNEAL = (0.2, 5e-4, 1.0)

# Z-Forcing's auxiliary weight (beta) under `:jsb` (BUILD_NOTES 15.1 and 16.2): at the paper's
# beta = 1 the latent serves the auxiliary term (~21 nats/frame of KL against a whole frame's
# reconstruction term under 4) and the run never beats its initial weights on validation. Of
# 1, 0.1 and 0.01, chosen on validation (seed 0), 0.01.
ZFORCING_JSB_AUX_WEIGHT = 0.01


def kl_anneal_end(config):
    """The first step at which the trained KL weight has reached train.kl_anneal_cap, or 0 when
    the run's objective anneals nothing (no anneal, a constant weight, IWAE/FIVO, A-VRNN, RNNs).
    Until then validation measures the full-weight ELBO while training follows a lighter KL, so
    the validation rounds before it do not count for early stopping or the plateau decay (on JSB,
    Z-Forcing's KL grows while its weight is low and its validation ELBO falls for the first
    rounds: counted, they stopped it at its initial weights; BUILD_NOTES 15.1)."""
    t = config.train
    if not t.kl_anneal or t.objective != "elbo" or t.algorithm == "avrnn" or \
            config.model.kind == "rnn" or t.kl_anneal_increment <= 0 or \
            t.kl_anneal_start >= t.kl_anneal_cap:
        return 0
    return math.ceil((t.kl_anneal_cap - t.kl_anneal_start) / t.kl_anneal_increment - 1e-9)


def recipe_notes(config):
    """Lines saying which of a recipe's settings step aside for this run, and why."""
    t = config.train
    if not (t.kl_anneal and t.kl_anneal_from_recipe):
        return []
    why = ("train.algorithm 'avrnn' weighs its KL by adversarial.kl_weight"
           if t.algorithm == "avrnn" else
           f"train.objective {t.objective!r} has no separate KL term" if t.objective != "elbo" else
           "model.kind 'rnn' has no latent" if config.model.kind == "rnn" else None)
    return [] if why is None else [f"the recipe's KL anneal is not used: {why}"]


def apply_jsb(config, path, tiny=False):
    """The `:jsb` recipe: JSB Chorales piano-rolls (88 binary notes per frame, Bernoulli emission,
    no audio), or any Boulanger-Lewandowski file given as --config.data.path.

    Whole chorales are training sequences (at most 160 frames in the train split), as in FIVO,
    with FIVO's sizes (every layer 64 units) and batch 4; Adam 1e-3 (FIVO's 1e-4 is for days of
    training) with early stopping on validation every 200 steps (BUILD_NOTES 7.1), and the KL
    weight annealed from 0.2 to 1 over the first 1,600 steps (`JSB_KL_ANNEAL`) for latent models
    without a schedule of their own. Where nothing anneals (IWAE/FIVO training, A-VRNN) the anneal
    steps aside (`train.kl_anneal_from_recipe`). Z-Forcing's auxiliary weight becomes
    `ZFORCING_JSB_AUX_WEIGHT`. `tiny` keeps the tiny variant's short chunks and budget.
    """
    config.data.update(format="pianoroll", path=path, frame_size=88)
    if not tiny:
        config.data.update(train_frames=160, batch_size=4)
        config.model.update(h_dim=64, z_dim=64, mlp_units=64)
        config.train.steps = 20000
        converge(config, eval_every=200, patience=RECIPE_PATIENCE, ema_decay=RECIPE_EMA_DECAY)
        t = config.train
        if config.model.kind != "rnn" and t.algorithm != "avrnn" and not t.kl_anneal:
            # A config with its own schedule (Z-Forcing's) keeps it.
            t.update(kl_anneal=True, kl_anneal_start=JSB_KL_ANNEAL[0],
                     kl_anneal_increment=JSB_KL_ANNEAL[1], kl_anneal_cap=JSB_KL_ANNEAL[2],
                     kl_anneal_from_recipe=True)
    if config.model.kind == "zforcing":
        config.train.aux_weight = ZFORCING_JSB_AUX_WEIGHT
    config.model.emission = "bernoulli"
    config.train.update(audio_every=0, num_audio_clips=0, num_final_samples=0)
    return config


def load_file(spec):
    """`get_config(arg)` of a config file given as "path[:arg]", as `--config=` loads it.

    Raises ConfigError in one line for a missing file, a syntax error or an exception in the file
    (naming the file and line), a file without `get_config`, or one that returns no ConfigDict.
    """
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist (resolved to {os.path.abspath(path)!r})")
    try:
        module_spec = importlib.util.spec_from_file_location(
            "avrnn_config_" + os.path.basename(path)[:-3], path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        get_config = getattr(module, "get_config", None)
        if get_config is None:
            raise ConfigError(f"config file {path}: defines no get_config(arg)")
        config = get_config(arg) if arg else get_config()
    except ConfigError:
        raise
    except SyntaxError as e:
        raise ConfigError(f"config file {path}, line {e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:
        frames = [fr for fr in traceback.extract_tb(e.__traceback__)
                  if os.path.abspath(fr.filename) == os.path.abspath(path)]
        where = f", line {frames[-1].lineno}" if frames else ""
        raise ConfigError(f"config file {path}{where}: {type(e).__name__}: {e}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"config file {path}: get_config returned a {type(config).__name__}, "
                          "expected an ml_collections.ConfigDict (start from base_config())")
    return config


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
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"a config is an ml_collections.ConfigDict, not a {type(config).__name__}")
    problems = []
    present = field_names(config)
    for name in sorted(present - set(BY_NAME)):
        problems.append(f"config.{name}: unknown field{suggest(name)}")
    for f in FIELDS:
        if f.name not in present:
            problems.append(f"config.{f.name}: missing (expected {f.expected})")
        elif (problem := f.problem(_get(config, f.name))) is not None:
            problems.append(problem)
    if not problems and config.train.algorithm == "avrnn":
        t = config.train
        for name, unused in (("kl_weight", t.kl_weight != 1.0),
                             ("kl_anneal", t.kl_anneal and not t.kl_anneal_from_recipe),
                             ("aux_weight", t.aux_weight != 0.0),
                             ("free_bits", t.free_bits != 0.0)):
            if unused:
                problems.append(f"config.train.{name} = {t[name]!r}: not used by train.algorithm "
                                "'avrnn' (its reconstruction phase is -log p(x|z) + "
                                "config.adversarial.kl_weight * KL)")
    if not problems:
        problems += objective_problems(config)
    if not problems and config.data.train_frames == 0:
        if config.data.stream:
            problems.append("config.data.train_frames = 0 (whole utterances) reads the corpus into "
                            "memory; it does not work with config.data.stream = True")
        if config.train.algorithm == "avrnn" and config.adversarial.separate_batches:
            problems.append("config.data.train_frames = 0 (whole utterances) gives batches of "
                            "different shapes, but A-VRNN's separate phase batches need one: set "
                            "config.adversarial.separate_batches = False or data.train_frames > 0")
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def posterior_reads_future(model):
    """Whether config.model `model` infers z_t from frames after t (Z-Forcing's backward LSTM,
    SRNN's smoothing posterior): the config-time twin of `protocol.posterior_reads_future`, which
    tests/test_protocol.py checks it against for every kind."""
    return model.kind == "zforcing" or (model.kind == "srnn" and model.srnn_posterior == "smoothing")


def objective_problems(config):
    """One line per train field the chosen train.objective / algorithm does not use, and FIVO
    refused for a posterior that reads the future: FIVO's bound is tight only for the filtering
    posterior q(z_t | z_{<t}, x_{1:t}) (Maddison et al. 2017), so training a smoothing posterior
    on it spends the backward RNN on what the objective drives out."""
    t = config.train
    if t.objective == "fivo" and posterior_reads_future(config.model):
        if config.model.kind == "srnn":
            return ["config.train.objective = 'fivo' with config.model.srnn_posterior = "
                    "'smoothing': FIVO's filtering bound needs a posterior that does not read "
                    "frames after t; set model.srnn_posterior = 'filtering' (FIVO's SRNN) or "
                    "train.objective = 'elbo' or 'iwae'"]
        return [f"config.train.objective = 'fivo' with config.model.kind = "
                f"{config.model.kind!r}: FIVO's filtering bound needs a posterior that does not "
                "read frames after t, and this one reads a backward RNN over x_{t:T}; set "
                "train.objective = 'elbo' or 'iwae'"]
    if t.objective == "elbo":
        return [] if t.num_particles == 1 else [
            f"config.train.num_particles = {t.num_particles}: used only by train.objective "
            "'iwae' or 'fivo' (train.objective is 'elbo')"]
    if t.algorithm == "avrnn":
        return [f"config.train.objective = {t.objective!r}: train.algorithm 'avrnn' trains the "
                "ELBO only (its reconstruction phase); use train.objective 'elbo'"]
    return [f"config.train.{name} = {t[name]!r}: the KL options are for train.objective 'elbo'; "
            f"the {t.objective.upper()} bound has no separate KL term"
            for name, used in (("kl_weight", t.kl_weight != 1.0),
                               ("kl_anneal", t.kl_anneal and not t.kl_anneal_from_recipe),
                               ("free_bits", t.free_bits != 0.0)) if used]


def model_spec(config, x_dim, emission_bias=None):
    """The frozen `ModelSpec` for a validated config and a frame size."""
    from avrnn_tf import models  # TensorFlow: only when a network is about to be built.

    m = config.model
    return models.ModelSpec(
        kind=m.kind, emission=m.emission, x_dim=int(x_dim), h_dim=m.h_dim, z_dim=m.z_dim,
        mlp_units=m.mlp_units, phi_x_layers=m.phi_x_layers, phi_z_layers=m.phi_z_layers,
        head_layers=m.head_layers, num_mixtures=m.num_mixtures, scale_floor=float(m.scale_floor),
        residual_posterior=m.residual_posterior, srnn_posterior=m.srnn_posterior,
        emission_bias=None if emission_bias is None else tuple(float(v) for v in emission_bias))


def to_json(config):
    """A stable JSON text of a config (what is saved into the workdir)."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)
