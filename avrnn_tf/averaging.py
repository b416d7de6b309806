"""An exponential moving average of the network's weights (`train.ema_decay`; Polyak averaging).

Training steps the network's own weights; after every step the average moves towards them:

    a <- d_n * a + (1 - d_n) * w,    d_n = min(ema_decay, (1 + n) / (10 + n))

starting from the initial weights, n = 0, 1, ... counting the updates (the warm-up of
tf.train.ExponentialMovingAverage's num_updates: d is 0.1 at the first update and reaches 0.999
after about 9,000, so the average follows the weights closely while training moves fast). Validation, the best checkpoint, generated samples, evaluation and export all use the
average; training only ever sees its own weights.

How the two copies are kept (one convention for every reader): while a checkpoint is written and
while validation runs, the two are swapped, so

    every checkpoint's `network` holds the AVERAGED weights (what avrnn-eval and avrnn-export
    restore, with no knowledge of averaging), and its root child `training_weights` holds the
    weights training stepped.

A resumed run restores both and swaps them back. A checkpoint written without averaging has no
`training_weights`: resuming it with averaging on starts the average at the restored weights.
"""

import contextlib

import tensorflow as tf

# The root child of a checkpoint that holds the training weights of an averaged run.
CHECKPOINT_CHILD = "training_weights"


class _Copy(tf.Module):
    """The checkpointed state: the other copy of every weight and the update count."""

    def __init__(self, variables):
        super().__init__(name=CHECKPOINT_CHILD)
        self.weights = [tf.Variable(v, trainable=False, name=f"weight_{i}")
                        for i, v in enumerate(variables)]
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")


class WeightAverage:
    """The averaged copy of `variables` (the network's trainable weights) with decay `decay`.

    `update()` after each training step; `averaged()` is a context in which the variables hold the
    average (nested uses are one swap). Create it where the variables live (inside the
    tf.distribute strategy's scope): update and swap run in cross-replica context, where an
    assignment reaches every replica's copy.
    """

    def __init__(self, variables, decay):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay {decay} is not in (0, 1)")
        self.decay = float(decay)
        self.live = list(variables)
        self.copy = _Copy(self.live)
        self.swapped = False  # True while the live variables hold the average.
        self._update = tf.function(self._update_fn, autograph=False)
        self._swap = tf.function(self._swap_fn, autograph=False)

    @property
    def trackable(self):
        """What a checkpoint saves under CHECKPOINT_CHILD."""
        return self.copy

    def _update_fn(self):
        n = tf.cast(self.copy.updates, tf.float64)
        d = tf.minimum(tf.constant(self.decay, tf.float64), (1.0 + n) / (10.0 + n))
        for average, weight in zip(self.copy.weights, self.live):
            dd = tf.cast(d, weight.dtype)
            average.assign(dd * average + (1.0 - dd) * weight)
        self.copy.updates.assign_add(1)

    def _swap_fn(self):
        for average, weight in zip(self.copy.weights, self.live):
            held = tf.identity(weight)  # Read before either assignment (program order).
            weight.assign(average)
            average.assign(held)

    def update(self):
        """One step of the average (call after each training step, weights not swapped)."""
        if self.swapped:
            raise RuntimeError("the weight average cannot be updated while it is swapped in")
        self._update()

    def swap(self):
        """Exchanges the two copies (the live variables then hold the other one)."""
        self._swap()
        self.swapped = not self.swapped

    @contextlib.contextmanager
    def averaged(self):
        """Within: the live variables hold the average (already so: nothing changes)."""
        if self.swapped:
            yield
            return
        self.swap()
        try:
            yield
        finally:
            self.swap()

    def after_restore(self, had_copy):
        """After restoring a checkpoint into the live variables and the copy: a checkpoint written
        with averaging (`had_copy`) holds the average in the live variables, so swap them back; one
        written without it starts the average at the restored weights."""
        if had_copy:
            self._swap()
        else:
            for average, weight in zip(self.copy.weights, self.live):
                average.assign(weight)
            self.copy.updates.assign(0)
        self.swapped = False

    def finite(self):
        return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.copy.weights)


def maybe_create(decay, variables):
    """A WeightAverage of `variables` for `train.ema_decay` = `decay`, or None when it is 0."""
    return WeightAverage(variables, decay) if decay else None


def averaged(average):
    """`average.averaged()`, or a context that does nothing when there is no average."""
    return average.averaged() if average is not None else contextlib.nullcontext()
