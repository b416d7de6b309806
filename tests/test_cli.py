"""The command-line surface: --help on every console script, config declarations, "did you mean",
and bad configs reported in one line before TensorFlow starts (run as users run the programs)."""

import os
import re
import subprocess
import sys
import time

import pytest

from conftest import PROJECT_ROOT, run_cli

ENTRY_POINTS = dict((name, target) for name, target in re.findall(
    r'"(avrnn-[a-z]+)=([\w.]+:\w+)"', open(os.path.join(PROJECT_ROOT, "setup.py")).read()))

# A few of each program's own flags, with the default --help must show.
OWN_FLAGS = {
    "avrnn-train": ["--config=...", "--workdir=...", "--progress=auto", "--strategy=default"],
    "avrnn-eval": ["--workdir=...", "--bound=elbo", "--num_samples=100", "--split=test"],
    "avrnn-export": ["--workdir=...", "--export_dir=...", "--serving_version=", "--overwrite=false"],
    "avrnn-prepare": ["--source=...", "--output=...", "--frame_size=200", "--shard_mb=32"],
    "avrnn-compare": ["--outdir=...", "--steps=2000", "--datasets=fsdd,jsb", "--num_samples=100"],
    "avrnn-bench": ["--repeats=3", "--quick=false", "--output=bench.json"],
    "avrnn-reproduce": ["--out=docs/reproduction", "--steps=1500", "--critics=wgan"],
}


def run_entry_point(name, *args):
    """The console script `name` as setup.py installs it: its entry function called with sys.argv
    [name, *args] (so the module is imported, not run as __main__)."""
    module, function = ENTRY_POINTS[name].split(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {function}; {function}()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_every_console_script_is_covered():
    assert set(ENTRY_POINTS) == set(OWN_FLAGS)


@pytest.mark.parametrize("name", sorted(OWN_FLAGS))
def test_help_lists_the_programs_own_flags_and_no_framework_flags(name):
    result = run_entry_point(name, "--help")
    assert result.returncode == 0, result.stderr
    page = result.stdout
    assert page.startswith(f"{name}: ")  # what the program does, then usage and examples
    assert f"\n  {name} --" in page and "python -m avrnn_tf" in page
    for flag in OWN_FLAGS[name]:
        assert f"\n  {flag}" in page, flag
    for framework in ("--tpu", "tensor_tracer", "--logtostderr", "--verbosity", "--helpxml"):
        assert framework not in page, framework
    assert "--helpfull" in page


def test_helpfull_adds_the_framework_flags():
    result = run_entry_point("avrnn-eval", "--helpfull")
    assert result.returncode == 0, result.stderr
    assert "\n  --num_samples=100" in result.stdout and "--verbosity" in result.stdout


def test_train_help_lists_every_config_field_with_its_default():
    from avrnn_tf import config

    page = run_entry_point("avrnn-train", "--help").stdout
    for field in config.FIELDS:
        default = f'"{field.default}"' if isinstance(field.default, str) else str(field.default)
        assert f"    {field.name}={default}: " in page, field.name


def test_config_and_every_config_file_load_without_tensorflow():
    code = ("import glob, sys\n"
            "from avrnn_tf import config\n"
            "for path in sorted(glob.glob('configs/*.py')):\n"
            "    if not path.endswith(config.DATASETS_FILE):\n"
            "        for arg in ('', ':tiny'):\n"
            "            config.validate(config.load_file(path + arg))\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_base_config_defaults_pass_their_own_declared_checks_and_bounds_hold():
    from avrnn_tf import config

    base = config.validate(config.base_config())
    assert config.field_names(base) == set(config.BY_NAME)
    h = config.BY_NAME["model.h_dim"]
    assert h.problem(config.MAX_UNITS) is None and h.problem(config.MAX_UNITS + 1) is not None
    assert h.problem(True) is not None and h.problem(256.0) is not None  # type, not only range
    rate = config.BY_NAME["train.learning_rate"]
    assert rate.problem(1) is None and rate.problem(float("nan")) is not None


def test_a_transposed_field_name_suggests_the_field():
    from avrnn_tf import config

    for name in config.BY_NAME:
        group, key = name.split(".")
        i = len(key) // 2
        typo = f"{group}.{key[:i - 1]}{key[i]}{key[i - 1]}{key[i + 1:]}"
        if typo != name:
            assert config.suggest(typo) == f" (did you mean {name}?)", typo


def train(tmp_path, *args, config="configs/vrnn_gauss.py:tiny"):
    return run_cli("avrnn_tf.train", f"--config={config}", f"--workdir={tmp_path / 'w'}",
                   "--progress=none", *args, timeout=120)


def test_config_typo_is_reported_within_seconds_with_the_nearest_field(tmp_path):
    start = time.monotonic()
    result = train(tmp_path, "--config.train.stpes=5")
    seconds = time.monotonic() - start
    assert result.returncode == 2
    assert "did you mean train.steps?" in result.stderr
    assert seconds < 5.0, seconds  # generous: TensorFlow alone takes longer to import here
    assert not os.path.exists(tmp_path / "w")


def test_unknown_flag_suggests_the_programs_own_flag(tmp_path):
    result = train(tmp_path, "--force_resum")
    assert result.returncode == 2
    assert "unknown flag --force_resum (did you mean --force_resume?)" in result.stderr


BROKEN_FILES = {
    "raises.py": ("from avrnn_tf import config as cfg\n\ndef get_config(arg=None):\n"
                  "    raise RuntimeError('no such dataset')\n", "line 4: RuntimeError: no such dataset"),
    "syntax.py": ("from avrnn_tf import config as cfg\n\ndef get_config(arg=None)\n"
                  "    return cfg.base_config()\n", "line 3: syntax error"),
    "plain_dict.py": ("def get_config(arg=None):\n    return {'model': {}}\n",
                      "get_config returned a dict, expected an ml_collections.ConfigDict"),
}


@pytest.mark.parametrize("override,expected", [
    ("--config.train.seed=-1", "config.train.seed = -1: expected an integer in [0, 2147483647]"),
    ("--config.train.seed=" + "1" + "0" * 29, "config.train.seed = 1" + "0" * 29 + ": expected"),
    ("--config.data.synthetic_seed=-1", "config.data.synthetic_seed = -1: expected an integer in [0,"),
    ("--config.model.h_dim=200000", "config.model.h_dim = 200000: expected an integer in [1, 4096]"),
    ("--config.data.frame_size=1", "config.data.frame_size = 1: expected an integer in [8,"),
] + [(name, text) for name, (_, text) in BROKEN_FILES.items()])
def test_config_error_is_one_line_with_exit_status_2(tmp_path, override, expected):
    if override in BROKEN_FILES:
        path = tmp_path / override
        path.write_text(BROKEN_FILES[override][0])
        result = train(tmp_path, config=str(path))
        expected = f"config file {path}"  # the file, then (in the same line) the line and error
        assert BROKEN_FILES[override][1] in result.stderr, result.stderr
    else:
        result = train(tmp_path, override)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avrnn-train: error: "), result.stderr
    assert expected in lines[0]
    assert not os.path.exists(tmp_path / "w")


def test_fivo_training_of_a_smoothing_srnn_is_refused_in_one_line_before_anything_is_written(
        tmp_path):
    result = train(tmp_path, "--config.train.objective=fivo", "--config.train.num_particles=4",
                   config="configs/srnn.py:tiny")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("avrnn-train: error: config.train.objective = 'fivo' with "
                               "config.model.srnn_posterior = 'smoothing': ")
    assert "set model.srnn_posterior = 'filtering'" in lines[0]
    assert not os.path.exists(tmp_path / "w")
