"""The training progress display (avrnn_tf/progress.py): width, speed, rounds."""

import io
import re
import types

import pytest

from conftest import run_cli
from avrnn_tf import progress

AVRNN_LOGS = {  # The metrics an A-VRNN step reports (the widest progress line).
    "adversarial_loss": 3.9e-07, "critic_loss": -4.1e-07, "critic_weight_max_abs": 0.01,
    "elbo_per_frame": -296.35, "elbo_per_sequence": -5501.05, "grad_norm_adversarial": 2.2e-06,
    "grad_norm_critic": 0.00048, "grad_norm_recon": 63.88, "kl_per_frame": 11.0076,
    "log_px_per_frame": -285.345, "loss": 285.345, "nonfinite_steps": 0.0,
    "nonfinite_streak": 0.0, "recon_per_frame": 284.249, "wasserstein_estimate": 4.1e-07}


class Tty(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make(mode, stream=None, total=3000, eval_every=500, log_every=20):
    clock = Clock()
    display = progress.Progress(mode, total, eval_every, log_every, stream=stream or io.StringIO(),
                                clock=clock)
    iterations = types.SimpleNamespace(value=0)
    iterations.numpy = lambda: iterations.value
    display.set_model(types.SimpleNamespace(optimizer=types.SimpleNamespace(iterations=iterations)))
    return display, clock, iterations


def run_round(display, clock, iterations, steps, logs, first_step_seconds, step_seconds):
    """One fit call: the first step takes `first_step_seconds` (tracing), the others step_seconds."""
    display.on_train_begin()
    for k in range(steps):
        clock.now += first_step_seconds if k == 0 else step_seconds
        iterations.value += 1
        display.on_train_batch_end(k, logs)
    display.on_train_end()


def test_eta_comes_from_the_steady_speed_not_tracing_or_validation():
    display, clock, iterations = make("epoch")
    logs = {"loss": 10.0, "elbo_per_frame": -10.0, "kl_per_frame": 1.0}
    run_round(display, clock, iterations, 500, logs, first_step_seconds=600.0, step_seconds=0.5)
    clock.now += 300.0  # Validation between rounds.
    run_round(display, clock, iterations, 100, logs, first_step_seconds=30.0, step_seconds=0.5)
    assert display.steps_per_second == pytest.approx(2.0)
    fields = display.fields()
    assert fields["eta"] == "ETA " + progress.duration(2400 * 0.5) == "ETA 20:00"
    assert fields["speed"] == "2 steps/s"
    assert fields["step"] == "step 600/3000" and fields["round"] == "round 2/6"


def test_speed_is_unknown_until_a_step_was_timed():
    display, clock, iterations = make("epoch")
    run_round(display, clock, iterations, 1, {"loss": 1.0}, first_step_seconds=60.0,
              step_seconds=1.0)
    assert display.steps_per_second is None and display.fields()["eta"] == "ETA -"


@pytest.mark.parametrize("width", [20, 60, 80, 120])
def test_compact_line_fits_the_width_and_keeps_the_step(width):
    display, clock, iterations = make("bar")
    run_round(display, clock, iterations, 123456, AVRNN_LOGS, 10.0, 0.01)
    line = display.compact_line(width)
    assert len(line) <= width - 1 and line.startswith("step 123456/3000"[:width - 1])
    if width >= 120:  # Wide enough for every compact field.
        fields = display.fields()
        assert all(text in line for name, text in fields.items() if name != "round")
        assert "loss 285 " in line  # A-VRNN: loss (reconstruction) is not -ELBO/frame.


def test_loss_is_left_out_when_it_is_minus_the_elbo_per_frame():
    display, clock, iterations = make("bar")
    run_round(display, clock, iterations, 5, {"loss": 61.3, "elbo_per_frame": -61.3,
                                              "kl_per_frame": 3.41}, 1.0, 0.1)
    assert "loss" not in display.fields() and "ELBO/frame -61.3" in display.compact_line(200)


def test_full_mode_prints_every_metric_every_log_every_steps():
    stream = io.StringIO()
    display, clock, iterations = make("full", stream, total=40, eval_every=40, log_every=10)
    run_round(display, clock, iterations, 40, AVRNN_LOGS, 5.0, 0.1)
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["10/40", "20/40", "30/40", "40/40"]
    assert all(f"{key} " in lines[-1] for key in AVRNN_LOGS)


def test_live_line_is_redrawn_in_place_within_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    stream = Tty()
    display, clock, iterations = make("bar", stream, total=100, eval_every=50)
    for _ in range(2):
        run_round(display, clock, iterations, 50, AVRNN_LOGS, 5.0, 0.3)
    text = stream.getvalue()
    rounds = text.split("\n")
    assert len(rounds) == 3 and rounds[-1] == ""  # One finished line per round.
    for drawn in "\r".join(rounds).split("\r"):
        assert len(drawn) <= 69
    assert rounds[1].split("\r")[-1].startswith("step 100/100")


@pytest.mark.parametrize("mode", ["bar", "full"])
def test_cli_progress_lines_fit_80_columns_and_count_rounds_as_the_run_does(tmp_path, mode):
    result = run_cli("avrnn_tf.train", "--config=configs/vrnn_gauss.py:tiny",
                     f"--workdir={tmp_path}", f"--progress={mode}", "--config.train.steps=40",
                     "--config.train.eval_every=20", "--config.train.audio_every=0",
                     "--config.train.num_final_samples=0")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Epoch" not in out and "━" not in out  # No Keras progress bar.
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["10/40", "20/40", "30/40", "40/40"]
    if mode == "bar":
        assert all(len(line) <= 79 and "ETA" in line for line in lines)
        return
    assert all("grad_norm" in line for line in lines)  # Every metric, however wide.
    for line in lines:
        step = int(line.split()[1].split("/")[0])
        if step % 20 == 0:  # The round's last line and the run's validation line agree.
            want = re.search(r"round (\d+/\d+)", line).group(1)
            assert f"avrnn-train: step {step}/40 (round {want}):" in out
