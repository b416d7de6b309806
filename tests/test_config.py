"""Config files and validation: every model config loads, validates, and bad fields are named."""

import glob
import importlib.util
import os

import ml_collections
import pytest

from conftest import PROJECT_ROOT


def load_config_module(name):
    path = os.path.join(PROJECT_ROOT, "configs", name)
    spec = importlib.util.spec_from_file_location(name[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cfg(tf):
    from avrnn_tf import config

    return config


MODEL_CONFIGS = {"rnn_gauss.py": ("rnn", "normal"), "rnn_gmm.py": ("rnn", "gmm"),
                 "storn.py": ("storn", "normal"), "vrnn_i.py": ("vrnn_i", "normal"),
                 "srnn.py": ("srnn", "gmm"), "vrnn_gauss.py": ("vrnn", "normal"),
                 "vrnn_gmm.py": ("vrnn", "gmm"), "default.py": ("vrnn", "normal")}


@pytest.mark.parametrize("name", sorted(MODEL_CONFIGS))
def test_model_configs_load_validate_and_shrink(cfg, name):
    module = load_config_module(name)
    full = cfg.validate(module.get_config())
    tiny = cfg.validate(module.get_config("tiny"))
    assert (full.model.kind, full.model.emission) == MODEL_CONFIGS[name]
    assert tiny.model.h_dim < full.model.h_dim and tiny.train.steps < full.train.steps
    assert module.get_config("tiny,fsdd").data.path.endswith("fsdd")
    assert "avrnn-train --config=configs/" + name in module.__doc__  # Self-documenting command.


def test_every_config_file_is_covered():
    names = {os.path.basename(p) for p in glob.glob(os.path.join(PROJECT_ROOT, "configs", "*.py"))}
    assert set(MODEL_CONFIGS) <= names


def test_validation_names_every_bad_field(cfg):
    c = cfg.base_config()
    c.model.kind = "lstm"
    c.train.learning_rate = -1.0
    c.data.batch_size = 0
    d = c.to_dict()  # A config file can build its dict with wrong types; validation catches them.
    d["model"]["residual_posterior"] = 1
    with pytest.raises(cfg.ConfigError) as e:
        cfg.validate(ml_collections.ConfigDict(d))
    msg = str(e.value)
    for field in ("config.model.kind", "config.train.learning_rate", "config.data.batch_size",
                  "config.model.residual_posterior"):
        assert field in msg
    assert "'lstm'" in msg and "rnn" in msg  # The value received and what was expected.


def test_unknown_and_missing_fields_are_rejected(cfg):
    c = cfg.base_config()
    c.train.typo_field = 3
    with pytest.raises(cfg.ConfigError, match="config.train.typo_field: unknown field"):
        cfg.validate(c)
    c = cfg.base_config()
    del c.data["frame_size"]
    with pytest.raises(cfg.ConfigError, match="config.data.frame_size: missing"):
        cfg.validate(c)


def test_unknown_variant_is_named(cfg):
    module = load_config_module("vrnn_gauss.py")
    with pytest.raises(cfg.ConfigError, match="tinyy"):
        module.get_config("tinyy")


def test_model_spec_carries_the_config(cfg):
    c = cfg.validate(load_config_module("vrnn_gmm.py").get_config("tiny"))
    spec = cfg.model_spec(c, x_dim=200)
    assert (spec.kind, spec.emission, spec.x_dim, spec.h_dim) == ("vrnn", "gmm", 200, c.model.h_dim)
    assert spec.num_mixtures == c.model.num_mixtures


def test_a_field_the_algorithm_ignores_is_refused(cfg):
    c = cfg.base_config()
    c.train.algorithm = "avrnn"
    c.train.kl_weight = 0.5
    with pytest.raises(cfg.ConfigError, match="config.train.kl_weight = 0.5: not used by"):
        cfg.validate(c)
    c.train.kl_weight = 1.0
    c.adversarial.kl_weight = 0.5  # the hybrid A-VRNN's knob
    cfg.validate(c)


def test_recipes_follow_their_protocols():
    """`:timit` is FIVO's TIMIT protocol (batch 4, K = 4 FIVO, Adam 1e-4, 64 units); every recipe
    trains whole sequences with early stopping; `tiny` keeps the tiny budget."""
    from avrnn_tf import config as config_lib

    for name in ("vrnn_gauss.py", "storn.py", "srnn.py"):
        c = config_lib.validate(load_config_module(name).get_config("timit"))
        assert (c.data.batch_size, c.train.objective, c.train.num_particles) == (4, "fivo", 4)
        assert c.train.learning_rate == 1e-4 and c.model.h_dim == c.model.z_dim == 64
        assert c.data.train_frames == 0 and c.train.early_stopping_patience > 0
    assert load_config_module("srnn.py").get_config("timit").model.srnn_posterior == "filtering"
    # Kinds whose training objective is not a bound FIVO can replace keep theirs.
    for name in ("rnn_gauss.py", "zforcing.py", "avrnn.py"):
        assert config_lib.validate(load_config_module(name).get_config("timit")).train.objective == "elbo"
    for variant in ("fsdd", "jsb"):
        c = config_lib.validate(load_config_module("vrnn_gauss.py").get_config(variant))
        assert c.train.early_stopping_patience > 0 and c.train.lr_decay_on_plateau > 0
        # The averaged weights' smooth validation curve is what makes the short patience safe.
        assert c.train.ema_decay == config_lib.RECIPE_EMA_DECAY > 0
        assert c.train.early_stopping_patience == config_lib.RECIPE_PATIENCE
    # FIVO's TIMIT protocol has no averaging (not measured here: no TIMIT in ../shared).
    assert load_config_module("vrnn_gauss.py").get_config("timit").train.ema_decay == 0
    assert config_lib.validate(load_config_module("vrnn_gauss.py").get_config("fsdd")).data.train_frames == 0
    tiny = load_config_module("vrnn_gauss.py").get_config("tiny,timit")
    assert tiny.train.steps == 60 and tiny.train.early_stopping_patience == 0
    with pytest.raises(config_lib.ConfigError, match="datasets"):
        load_config_module("vrnn_gauss.py").get_config("fsdd,timit")


def test_jsb_recipe_anneals_the_kl_only_where_a_kl_is_trained(cfg):
    """`:jsb` anneals the KL of latent models that have no schedule of their own; Z-Forcing keeps
    its own; the recipe's anneal steps aside (accepted, unused, said) under IWAE/FIVO training,
    while a user's own kl_anneal with those objectives is still refused; `tiny` does not anneal."""
    from avrnn_tf import objectives

    for name in ("vrnn_gauss.py", "vrnn_i.py", "storn.py", "srnn.py"):
        c = cfg.validate(load_config_module(name).get_config("jsb"))
        t = c.train
        assert (t.kl_anneal, t.kl_anneal_from_recipe) == (True, True)
        assert (t.kl_anneal_start, t.kl_anneal_increment, t.kl_anneal_cap) == cfg.JSB_KL_ANNEAL
        assert cfg.recipe_notes(c) == []
        assert objectives.from_config(c).keywords["kl_schedule"] == cfg.JSB_KL_ANNEAL
        assert not load_config_module(name).get_config("tiny,jsb").train.kl_anneal
    zforcing = load_config_module("zforcing.py")
    assert zforcing.get_config("jsb").train.kl_anneal_increment == \
        zforcing.get_config().train.kl_anneal_increment != cfg.JSB_KL_ANNEAL[1]
    # Z-Forcing's beta: the paper's 1 elsewhere, the validation-chosen weight on piano-rolls, the
    # same through either file.
    assert zforcing.get_config().train.aux_weight == zforcing.get_config("fsdd").train.aux_weight == 1
    for c in (zforcing.get_config("jsb"), load_config_module("zforcing_jsb.py").get_config()):
        assert cfg.validate(c).train.aux_weight == cfg.ZFORCING_JSB_AUX_WEIGHT < 1
    for name in ("rnn_gauss.py", "avrnn.py"):
        assert not cfg.validate(load_config_module(name).get_config("jsb")).train.kl_anneal
    for objective in ("iwae", "fivo"):
        c = load_config_module("vrnn_gauss.py").get_config("jsb")
        c.train.update(objective=objective, num_particles=4)
        cfg.validate(c)
        assert cfg.recipe_notes(c) == [f"the recipe's KL anneal is not used: train.objective "
                                       f"'{objective}' has no separate KL term"]
        bound = objectives.from_config(c)
        assert bound.func is objectives.OBJECTIVES[objective] and "kl_schedule" not in bound.keywords
        c.train.kl_anneal_from_recipe = False  # the same settings as the user's own choice
        with pytest.raises(cfg.ConfigError, match="config.train.kl_anneal = True: the KL options"):
            cfg.validate(c)
    c = load_config_module("vrnn_gauss.py").get_config("jsb")
    c.train.algorithm = "avrnn"
    cfg.validate(c)
    assert "adversarial.kl_weight" in cfg.recipe_notes(c)[0]


def test_fsdd_recipe_gives_zforcing_the_validation_chosen_anneal(cfg):
    """`:fsdd` anneals Z-Forcing's KL to weight 1 by step 1,600 (the FSDD table's setting) from
    the paper's start and cap; the config without a recipe keeps the paper's schedule, and no
    other kind gains an anneal from the speech recipe."""
    zforcing = load_config_module("zforcing.py")
    paper, fsdd = zforcing.get_config().train, cfg.validate(zforcing.get_config("fsdd")).train
    assert fsdd.kl_anneal and fsdd.kl_anneal_increment == cfg.ZFORCING_FSDD_KL_ANNEAL_INCREMENT
    assert paper.kl_anneal_increment == 5e-5 != fsdd.kl_anneal_increment
    assert (fsdd.kl_anneal_start, fsdd.kl_anneal_cap) == (paper.kl_anneal_start, paper.kl_anneal_cap)
    c = zforcing.get_config("fsdd")
    assert cfg.kl_anneal_end(c) == 1600
    for name in ("vrnn_gauss.py", "vrnn_i.py", "storn.py", "srnn.py", "avrnn.py"):
        assert not load_config_module(name).get_config("fsdd").train.kl_anneal


def test_timit_recipe_trains_on_a_timit_layout_tree(tmp_path):
    import json

    from conftest import run_cli
    from data_helpers import make_timit

    names = make_timit(str(tmp_path / "timit"), speakers_train=4, speakers_test=2, utterances=3)
    r = run_cli("avrnn_tf.train", "--config=configs/vrnn_gauss.py:tiny,timit",
                f"--config.data.path={tmp_path / 'timit'}", f"--workdir={tmp_path / 'run'}",
                "--config.train.steps=4", "--config.train.eval_every=4",
                "--config.train.checkpoint_every=4", "--config.train.audio_every=0")
    assert r.returncode == 0, r.stderr
    stats = json.loads((tmp_path / "run" / "data_stats.json").read_text())
    assert (stats["sample_rate"], stats["frame_size"]) == (16000, 200)
    assert stats["split_sizes"]["test"] == len(names["test"])  # TIMIT's own TEST folder.
    assert "valid fivo_per_frame" in r.stderr + r.stdout


def test_avrnn_best_is_the_variant_chosen_in_build_notes(cfg):
    """`configs/avrnn.py:best` names the recommended A-VRNN variant (BUILD_NOTES 9.2: the hybrid,
    the clipped critic with the KL at weight 1 in the reconstruction phase); with a recipe it must
    be that variant under the recipe, and the paper's setting must stay different."""
    module = load_config_module("avrnn.py")
    best, hybrid = module.get_config("best,fsdd"), module.get_config("hybrid,fsdd")
    assert best.to_dict() == hybrid.to_dict()
    assert best.adversarial.kl_weight == 1.0 and best.adversarial.critic == "wgan"
    assert module.get_config("fsdd").adversarial.kl_weight == 0.0
