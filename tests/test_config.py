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
