"""avrnn-compare's row specifications and its exact baseline, without flags (importable anywhere).

A spec is "path[:variants][+field=value...]": a config file, its variants, then config fields set
one by one, typed and checked like --config.field=value.
"""

import os

from avrnn_tf import config as config_lib


def parse_value(name, text):
    """`text` as the type of config field `name` (bool, int, float or str)."""
    kind = type(config_lib.BY_NAME[name].default)
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    return kind(text)


def load_config(spec, dataset):
    """Config of `spec` with the dataset's variant added; ConfigError names a bad part."""
    base, *overrides = spec.split("+")
    path, _, variants = base.partition(":")
    config = config_lib.load_file(f"{path}:{','.join(filter(None, [variants, dataset]))}")
    for item in overrides:
        name, eq, text = item.partition("=")
        if not eq or name not in config_lib.BY_NAME:
            raise config_lib.ConfigError(
                f"--configs={spec}: '+{item}' is not field=value with a config field "
                f"(e.g. +train.objective=fivo){config_lib.suggest(name) if eq else ''}")
        group, field = name.split(".")
        try:
            config[group][field] = parse_value(name, text)
        except ValueError as e:
            raise config_lib.ConfigError(f"--configs={spec}: {name}={text}: {e}") from None
    return config


def config_name(spec):
    """Table/directory name of a spec: the file's name, then its variants and overrides."""
    base, *overrides = spec.split("+")
    path, _, variants = base.partition(":")
    name = os.path.basename(path)[:-3] + (":" + variants if variants else "")
    return "+".join([name] + [o.split(".", 1)[-1] for o in overrides])


def independent_notes(path):
    """Test log-likelihood per frame of the independent-notes model (each note on with its
    training-frame frequency): the floor every piano-roll model starts from. Returns (nats per
    frame, test sequences, test frames)."""
    import numpy as np

    from avrnn_tf.data import pianoroll

    rolls = pianoroll.load_rolls(path)
    p = np.clip(np.concatenate(rolls["train"]).astype(np.float64).mean(axis=0), 1e-4, 1 - 1e-4)
    test = np.concatenate(rolls["test"]).astype(np.float64)
    loglik = test @ np.log(p) + (1 - test) @ np.log1p(-p)
    return float(loglik.sum() / len(test)), len(rolls["test"]), len(test)
