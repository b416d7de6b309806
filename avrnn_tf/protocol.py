"""The sequence-model protocol: what every `model.kind` provides to training, bounds, evaluation
and export, and nothing more.

A model is a Keras layer that also subclasses `SequenceModel` and implements its abstract methods;
`registry.py` maps each `config.model.kind` to its class. Everything outside the model reads it
through these methods only (no `if kind == ...` anywhere else), so adding a kind is one model file,
one line in `registry.py` and a config; tests/test_protocol.py runs the conformance checks on every
registered kind.

Shapes: B sequences, T frames, D frame size, Z noise width per frame (0 without latent).
A *state* is a list of [B, .] tensors (the recurrent state after a frame); `state_size` is the
width of their concatenation (the exported `state` vector).

Two passes over observed frames share one set of weights:
  whole-sequence  `frame_terms(x, noise, mask)`: every per-frame term of every bound at once
                  (the fast path training uses);
  per-step        `step_inputs(x, mask)` once, then `filter_step(state, inputs_t, noise_t, x_t)`
                  per frame (particle filters resample states between steps; `final_state`).
Summed over frames the two give the same terms (the conformance test checks it). Generation is
`generative_step(state, seed, temperature)` per frame; `sample` and `final_state` are written once
here on top of the per-step methods.

Parameter groups (`parameter_groups()`): the model says which of its trainable variables are
which part of the paper's A-VRNN (Huang & Xiao), as a dict of lists that partitions
`trainable_variables`:
  "rnn" (theta), "features" (phi_x, phi_z), "emission", "posterior" (tau: everything the
  inference network alone uses), "prior" (omega), and any model-specific group (e.g. Z-Forcing's
  "auxiliary"). The A-VRNN trainer refuses a model with a non-empty group no phase trains.
"""

import abc

import tensorflow as tf

from avrnn_tf import rng

# The groups the A-VRNN phases know (training.AVRNNTrainer).
AVRNN_GROUPS = ("rnn", "features", "emission", "posterior", "prior")


class SequenceModel(abc.ABC):
    """The protocol (see the module docstring). Subclasses are Keras layers."""

    # Whether the posterior at frame t reads frames after t (Z-Forcing, SRNN's smoothing
    # posterior). Its per-step filter then proposes from a_t/b_t computed on the whole given
    # sequence by `step_inputs`: FIVO stays unbiased but resamples on a proposal that looked ahead.
    posterior_reads_future = False
    # Whether the model has latent variables (False only for the RNN, whose likelihood is exact).
    latent = True

    # ----------------------------------------------------------------- shapes and sizes
    @abc.abstractmethod
    def noise_shape(self, x):
        """Shape [B, T, Z] of the posterior noise for frames x [B, T, D] (a 1-D int32 tensor)."""

    @property
    @abc.abstractmethod
    def state_size(self):
        """Width of the concatenated recurrent state (int)."""

    @property
    @abc.abstractmethod
    def row_width(self):
        """Floats per frame of the widest tensors of one model call (for memory budgets: a call on
        B sequences of T frames holds about B * T * row_width floats)."""

    # ---------------------------------------------------------------- whole sequences
    @abc.abstractmethod
    def frame_terms(self, x, noise, mask=None):
        """Per-frame terms, each [B, T], unmasked: log_px, kl (analytic), log_pz, log_qz (at the
        posterior sample), "trajectory" (a dict of [B, T, .] tensors) and optional extra terms
        (e.g. Z-Forcing's aux_log_prob)."""

    # ------------------------------------------------------------------------ per step
    @abc.abstractmethod
    def initial_state(self, batch_size):
        """The state before the first frame for `batch_size` sequences."""

    @abc.abstractmethod
    def step_inputs(self, x, mask=None):
        """[B, T, .] per-step inputs computed from the frames alone (hoisted out of the loop)."""

    @abc.abstractmethod
    def filter_step(self, state, inputs_t, noise_t, x_t):
        """One filtering step on observed frame x_t [B, D]: (new_state, log_px, log_pz, log_qz),
        each term [B]."""

    @abc.abstractmethod
    def generative_step(self, state, seed, temperature):
        """One generative step from `state` with the stateless [2] `seed`: (new_state, x_t [B, D])."""

    # -------------------------------------------------------------------- parameters
    @abc.abstractmethod
    def parameter_groups(self):
        """{group name: [variables]}, a partition of the trainable variables (module docstring)."""

    def shared_posterior_columns(self):
        """[(variable, mask)]: variables of another group whose `mask`ed entries (mask broadcast
        to the variable) belong to the posterior (a fused kernel); none by default."""
        return []

    # ------------------------------------------------------- written once on the steps
    def final_state(self, x, noise, mask=None):
        """The state after filtering x [B, T, D] (T >= 1) with posterior noise [B, T, Z]: the
        state a continuation starts from (`sample(initial_state=...)`)."""
        inputs = tf.transpose(self.step_inputs(x, mask), [1, 0, 2])
        noise_tm = tf.transpose(noise, [1, 0, 2])
        x_tm = tf.transpose(x, [1, 0, 2])

        def body(t, state):
            return t + 1, self.filter_step(state, inputs[t], noise_tm[t], x_tm[t])[0]

        _, state = tf.while_loop(lambda t, _: t < tf.shape(inputs)[0], body,
                                 (tf.constant(0), self.initial_state(tf.shape(x)[0])))
        return state

    def sample(self, num_sequences, num_frames, seed, temperature=1.0, initial_state=None,
               start_step=0, return_state=False):
        """Frames [N, T, D] by ancestral sampling (`generative_step` in one tf.while_loop).

        Step t draws with `seed` (a [2] int seed) folded with t, so a given (seed, N, T) always
        gives the same frames. `initial_state` (a state, e.g. `final_state` of a recorded prefix)
        replaces the initial state (num_sequences is then ignored); `start_step` numbers the first
        frame, so T1 frames and then T2 more from the returned state with start_step=T1 are exactly
        the frames of one call with T1 + T2. With `return_state`, returns (frames, state).
        """
        t_total = tf.convert_to_tensor(num_frames, tf.int32)
        seed = tf.convert_to_tensor(seed, tf.int32)
        temperature = tf.convert_to_tensor(temperature, tf.float32)
        state = initial_state
        if state is None:
            state = self.initial_state(tf.convert_to_tensor(num_sequences, tf.int32))
        state = list(state)
        t_start = tf.convert_to_tensor(start_step, tf.int32)
        frames = tf.TensorArray(tf.float32, size=t_total, element_shape=[None, self.spec.x_dim])

        def body(t, state, frames):
            state, x = self.generative_step(state, rng.fold_in(seed, t), temperature)
            return t + 1, list(state), frames.write(t - t_start, x)

        _, state, frames = tf.while_loop(lambda t, *_: t < t_start + t_total, body,
                                         (t_start, state, frames))
        frames = tf.transpose(frames.stack(), [1, 0, 2])
        return (frames, state) if return_state else frames
