"""Terminal progress of a training run: one compact line that fits the terminal.

Keras' own progress bar prints every metric (about 250 characters, 600 for A-VRNN), so it wraps and
its in-place redraw scrolls, and it counts `Epoch k/k` per `fit` call while the run counts rounds.
`Progress` replaces it (the loop calls `fit` with verbose=0):

  step 1200/3000  ELBO/frame -61.3  KL/frame 3.41  38.5 steps/s  ETA 0:47

within the terminal's width (80 columns when stdout is not a terminal; the least important fields
are dropped first). `loss` is shown when it is not -ELBO/frame (A-VRNN's reconstruction loss,
Z-Forcing's auxiliary cost, a KL weight other than 1). The round of `train.eval_every` steps is
named in the loop's validation line after each round and in the full line, counted as the loop
counts it (no Keras `Epoch k/k`). steps/s and the ETA come from the steady-state speed: the first
step of every `fit` call (graph tracing, the input pipeline's start) is not timed, nor is
validation between rounds. The full metric set is in
TensorBoard and, one line per `train.log_every` steps, with `--progress=full`.

Modes: "bar" (the line redrawn in place on a terminal, else printed every log_every steps),
"epoch" (one line at the end of each round), "full" (every metric, every log_every steps), "none";
"auto" is "bar" on a terminal and "epoch" otherwise. Keras' verbose values 0, 1, 2 mean "none",
"bar", "epoch".
"""

import math
import shutil
import sys
import time

import keras

# (log key, label) of the compact line's metrics, in display order.
COMPACT = (("loss", "loss"), ("elbo_per_frame", "ELBO/frame"), ("kl_per_frame", "KL/frame"))
# Compact fields dropped first when the line is too wide (the step count always stays).
DROP_ORDER = ("speed", "kl_per_frame", "elbo_per_frame", "eta", "loss")
MODES = {0: "none", 1: "bar", 2: "epoch"}
REDRAW_SECONDS = 0.2  # A live line is redrawn at most this often (and at every round's end).


def mode_of(verbose, stream=None):
    """The display mode for a `verbose` value (a mode name, "auto", or Keras' 0/1/2)."""
    mode = MODES.get(verbose, verbose)
    if mode == "auto":
        return "bar" if (stream or sys.stdout).isatty() else "epoch"
    if mode not in ("bar", "epoch", "full", "none"):
        raise ValueError(f"unknown progress mode {verbose!r}")
    return mode


def terminal_width(stream):
    """Columns of the terminal `stream` writes to; 80 when it is not a terminal."""
    return shutil.get_terminal_size((80, 24)).columns if stream.isatty() else 80


def number(value):
    """A metric to 3 significant digits, whole numbers from 100 (-61.3, 3.41, 0.0123, 12345)."""
    if value != value or abs(value) >= 1e9:
        return f"{value:.3g}"
    return f"{value:.0f}" if abs(value) >= 99.95 else f"{value:.3g}"


def duration(seconds):
    """h:mm:ss or m:ss."""
    seconds = int(round(seconds))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress(keras.callbacks.Callback):
    """The training progress display (a Keras callback; see the module docstring)."""

    def __init__(self, mode, total_steps, eval_every, log_every, stream=None, clock=time.monotonic):
        super().__init__()
        self.stream = stream or sys.stdout
        self.mode = mode_of(mode, self.stream)
        self.total_steps, self.eval_every, self.log_every = total_steps, eval_every, log_every
        self.clock = clock
        self.live = self.mode == "bar" and self.stream.isatty()
        self.timed_steps, self.timed_seconds = 0, 0.0
        self.last = None  # (time, step) of the latest timed batch end of the current fit call.
        self.logs, self.step = {}, 0
        self.drawn_at, self.drawn_width, self.printed_step = -math.inf, 0, None

    @property
    def steps_per_second(self):
        return self.timed_steps / self.timed_seconds if self.timed_seconds > 0 else None

    def on_train_begin(self, logs=None):
        self.last = None  # The next step (tracing, pipeline start) is not timed.

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        self.step = int(self.model.optimizer.iterations.numpy())
        if self.last is not None and self.step > self.last[1]:
            self.timed_steps += self.step - self.last[1]
            self.timed_seconds += now - self.last[0]
        self.last = (now, self.step)
        self.logs = {k: float(v) for k, v in (logs or {}).items()}
        if self.live:
            if now - self.drawn_at >= REDRAW_SECONDS:
                self.drawn_at = now
                self._redraw()
        elif self.mode in ("bar", "full") and self.step % self.log_every == 0:
            self._print()

    def on_train_end(self, logs=None):
        if not self.logs:
            return
        if self.live:
            self._redraw()
            self.stream.write("\n")
            self.stream.flush()
            self.drawn_width = 0
        elif self.mode in ("bar", "epoch", "full") and self.printed_step != self.step:
            self._print()

    # --------------------------------------------------------------------------- lines
    def fields(self):
        """{name: text} of the line's fields, in display order (the compact line leaves out
        "round")."""
        rounds = math.ceil(self.total_steps / self.eval_every)
        out = {"step": f"step {self.step}/{self.total_steps}",
               "round": f"round {math.ceil(self.step / self.eval_every)}/{rounds}"}
        loss, elbo = self.logs.get("loss"), self.logs.get("elbo_per_frame")
        same = loss is not None and elbo is not None and abs(loss + elbo) <= 1e-5 * max(1, abs(loss))
        for key, label in COMPACT:
            if key in self.logs and not (key == "loss" and same):
                out[key] = f"{label} {number(self.logs[key])}"
        rate = self.steps_per_second
        out["speed"] = f"{rate:.3g} steps/s" if rate else "- steps/s"
        remaining = max(self.total_steps - self.step, 0)
        out["eta"] = f"ETA {duration(remaining / rate) if rate else '-'}"
        return out

    def compact_line(self, width):
        """The compact line, at most `width` - 1 characters (the last column is left free: some
        terminals wrap when it is written)."""
        fields = self.fields()
        del fields["round"]
        line = "  ".join(fields.values())
        for name in DROP_ORDER:
            if len(line) < width:
                break
            fields.pop(name, None)
            line = "  ".join(fields.values())
        return line[:max(width - 1, 1)]

    def full_line(self):
        fields = self.fields()
        metrics = "  ".join(f"{k} {v:.6g}" for k, v in sorted(self.logs.items()))
        return "  ".join([fields["step"], fields["round"], metrics, fields["speed"], fields["eta"]])

    def _print(self):
        line = self.full_line() if self.mode == "full" else \
            self.compact_line(terminal_width(self.stream))
        self.stream.write(line + "\n")
        self.stream.flush()
        self.printed_step = self.step

    def _redraw(self):
        line = self.compact_line(terminal_width(self.stream))
        self.stream.write("\r" + line.ljust(self.drawn_width))
        self.stream.flush()
        self.drawn_width = len(line)


def callbacks(verbose, train):
    """[Progress] for a loop's `verbose` setting and train config (empty for "none")."""
    mode = mode_of(verbose)
    if mode == "none":
        return []
    return [Progress(mode, train.steps, train.eval_every, train.log_every)]
