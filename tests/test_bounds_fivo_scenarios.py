"""The scenarios of FIVO's own tests (tensorflow/models research/fivo: `fivo/smc_test.py` and
`fivo/bounds_test.py`), ported to `bounds.fivo`: their inputs and their expected values.

FIVO's tests drive the particle filter with given incremental log-weights (smc_test's transition
returns the same increments [5, 4, 1, 0.5] at every step; bounds_test publishes the per-step
accumulated weights of a VRNN). Here a stub model feeds such increments to `bounds.fivo` through
its noise: the increment of particle k of sequence b at frame t is noise[k*B + b, t, 0] (rows are
sample-major in both codes). The stub's increments do not depend on the particles' states, as in
FIVO's tests, so the bound depends only on the weights and on when the filter resamples.

FIVO resamples when ESS <= K/2 (`smc.ess_criterion`). smc_test also forces resampling at one chosen
step with a custom criterion; `bounds.fivo` has only the ESS rule, so there the ESS threshold is
set (from the weights, in closed form) between the ESS values of the steps that must and must not
resample. Not portable, and left out: smc_test's "resample at step 1, lengths [6, 4]" (after its
reset the same weights recur at step 3, where an ESS rule must fire again), the relaxed
(Gumbel-softmax) resampling scenarios (`_blend_tensor`, fivo_relaxed, fivo_aux_relaxed) and
bounds_test's ELBO golden value (its inputs are a randomly initialised TF1 VRNN whose per-step
weights are not published).
"""

import math

import numpy as np
import pytest
from scipy.special import logsumexp as lse

LOG2 = math.log(2.0)
RTOL = 1e-6  # float32 values of magnitude <= 1000.


@pytest.fixture(scope="module")
def bounds(tf):
    from avrnn_tf import bounds

    return bounds


class IncrementModel:
    """The per-step interface of bounds.fivo with given increments. Row r's state is the number
    r + 1 (kept unchanged, gathered on resampling); the increment of row r at frame t is
    noise[r, t, 0] + noise[r, t, 1] * state_r, so channel 1 can read the state back."""

    def __init__(self, tf, dtype):
        self.tf, self.dtype = tf, dtype

    def step_inputs(self, x, mask=None):
        return x

    def initial_state(self, n):
        tf = self.tf
        return [tf.cast(tf.range(1, n + 1), self.dtype)[:, None]]

    def filter_step(self, state, inputs_t, noise_t, x_t):
        increment = noise_t[:, 0] + noise_t[:, 1] * state[0][:, 0]
        zero = self.tf.zeros_like(increment)
        return state, increment, zero, zero


def run_fivo(tf, bounds, increments, lengths, state_reads=None, dtype="float32", **kwargs):
    """bounds.fivo on increments [T, K, B] for sequences of `lengths`; returns (fivo, resamples).

    float32 by default: the models' dtype, and FIVO's (whose decisions at ESS = K/2 depend on it).
    """
    increments = np.asarray(increments, np.float64)
    t, k, b = increments.shape
    noise = np.zeros([k * b, t, 2])
    noise[:, :, 0] = increments.reshape(t, k * b).T
    if state_reads is not None:
        noise[:, :, 1] = np.asarray(state_reads, np.float64).reshape(t, k * b).T
    mask = (np.arange(t)[None, :] < np.asarray(lengths)[:, None]).astype(dtype)
    out = bounds.fivo(IncrementModel(tf, dtype), tf.zeros([b, t, 1], dtype), mask,
                      tf.constant(noise, dtype), k, [3, 4], **kwargs)
    return out["fivo"].numpy(), out["num_resamples"].numpy()


def ess(log_w):
    """Effective sample size of log-weights over the last axis."""
    log_w = np.asarray(log_w, np.float64)
    return float(np.exp(2 * lse(log_w, axis=-1) - lse(2 * log_w, axis=-1)))


def increments_from_accumulated(weights, resampled):
    """FIVO's recorded weights [T, B, K] (accumulated, recorded before a reset) -> increments
    [T, K, B]: after a step that resampled the next record is the increment itself."""
    weights = np.asarray(weights, np.float64)
    previous = np.concatenate([np.zeros_like(weights[:1]), weights[:-1]])
    reset = np.concatenate([np.ones_like(resampled[:1]), 1 - np.asarray(resampled[:-1])])
    return np.transpose(weights - previous * reset[:, :, None], [0, 2, 1])


# smc_test's transition: [K*B] = [5, 4, 1, 0.5], i.e. sequence 0's particles [5, 1] and sequence
# 1's [4, 0.5] at every step.
SIMPLE = [[5.0, 4.0], [1.0, 0.5]]


def simple(num_steps):
    return [SIMPLE] * num_steps


@pytest.mark.parametrize("never", [{"resample": False}, {"ess_threshold": 0.0}])
def test_smc_never_resampling(tf, bounds, never):
    value, resamples = run_fivo(tf, bounds, simple(5), [5, 3], **never)
    np.testing.assert_allclose(value, [lse([25, 5]) - LOG2, lse([12, 1.5]) - LOG2], rtol=RTOL)
    np.testing.assert_array_equal(resamples, [0, 0])


def test_smc_always_resampling_but_not_past_a_sequence_end(tf, bounds):
    # ESS <= K holds for any weights: threshold 1 resamples at every real frame.
    value, resamples = run_fivo(tf, bounds, simple(5), [5, 3], ess_threshold=1.0)
    np.testing.assert_allclose(value, [5 * lse([5, 1]) - 5 * LOG2, 3 * lse([4, 0.5]) - 3 * LOG2],
                               rtol=RTOL)
    np.testing.assert_array_equal(resamples, [5, 3])


def threshold_between(must, must_not, k):
    """An ess_threshold that resamples at ESS values `must` and not at `must_not` (these differ
    from 1 by as little as 2e-7, so the filter then runs in float64)."""
    assert max(must) < min(must_not)
    return (max(must) + min(must_not)) / 2 / k


def test_smc_weights_reset_when_resampling_at_a_sequence_end(tf, bounds):
    # FIVO resamples both sequences at step 2 only; sequence 1 (3 frames) ends there.
    threshold = threshold_between(
        must=[ess([15, 3]), ess([12, 1.5])],
        must_not=[ess([5, 1]), ess([10, 2]), ess([4, 0.5]), ess([8, 1])], k=2)
    value, resamples = run_fivo(tf, bounds, simple(5), [5, 3], ess_threshold=threshold,
                                 dtype="float64")
    np.testing.assert_allclose(value, [lse([15, 3]) + lse([10, 2]) - 2 * LOG2,
                                       lse([12, 1.5]) - LOG2], rtol=RTOL)
    np.testing.assert_array_equal(resamples, [1, 1])


def test_smc_resampling_on_the_last_step(tf, bounds):
    # FIVO resamples sequence 0 at step 3, the last step of the longest sequence; sequence 1
    # (2 frames) never does. The final estimate is added once, not twice.
    threshold = threshold_between(
        must=[ess([20, 4])],
        must_not=[ess([5, 1]), ess([10, 2]), ess([15, 3]), ess([4, 0.5]), ess([8, 1])], k=2)
    value, resamples = run_fivo(tf, bounds, simple(4), [4, 2], ess_threshold=threshold,
                                 dtype="float64")
    np.testing.assert_allclose(value, [lse([20, 4]) - LOG2, lse([8, 1]) - LOG2], rtol=RTOL)
    np.testing.assert_array_equal(resamples, [1, 0])


def test_multinomial_resampling_copies_the_ancestors_states(tf, bounds):
    # smc_test: log-weights [[inf, 0], [0, inf]] ([K, B]) and row states [1, 2, 3, 4] resample to
    # states [1, 4, 1, 4]. Each filter holds all its weight on one particle: ESS = 1 = K/2, which
    # FIVO's rule resamples. The next step's increments read the states back: 1 + 1 and 4 + 4.
    inf = 1000.0
    increments = [[[inf, 0.0], [0.0, inf]], [[0.0, 0.0], [0.0, 0.0]]]
    reads = [[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]
    value, resamples = run_fivo(tf, bounds, increments, [2, 2], state_reads=reads)
    np.testing.assert_allclose(value, [inf - LOG2 + 1.0, inf - LOG2 + 4.0], rtol=RTOL)
    np.testing.assert_array_equal(resamples, [1, 1])


def test_the_k2_boundary_of_the_ess_rule(tf, bounds):
    # ESS is never below 1 at K = 2, so "ESS < K/2" never resamples; FIVO's "<=" does when the
    # weight sits on one particle. FIVO: 3.620421 with one resampling (issue 17). In exact
    # arithmetic this ESS is (1 + e^-30)^2 / (1 + e^-60) > 1; in float32 (FIVO's dtype and the
    # models') 1 + e^-30 rounds to 1, so ESS = 1 exactly: at K = 2 the rule fires once one
    # particle's weight leads by more than about 17 nats.
    value, resamples = run_fivo(tf, bounds, [[[0.0], [-30.0]], [[0.0], [5.0]]], [2])
    np.testing.assert_allclose(value, [3.620421], rtol=1e-6)
    np.testing.assert_allclose(value, [lse([0, -30]) + lse([0, 5]) - 2 * LOG2], rtol=RTOL)
    np.testing.assert_array_equal(resamples, [1])


# bounds_test: a VRNN, K = 4, two sequences of 7 and 4 frames; the accumulated log-weights
# [T, B, K] of each step as FIVO's tests publish them.
IWAE_WEIGHTS = [
    [[-3.66708851, -2.07074022, -4.91751671, -5.03293562],
     [-2.99690723, -3.17782736, -4.50084877, -3.48536515]],
    [[-6.2539978, -4.37615728, -7.43738699, -7.85044909],
     [-8.27518654, -6.71545124, -8.96198845, -7.05567837]],
    [[-9.19093227, -8.01637268, -11.64603615, -10.51128292],
     [-12.34527206, -11.54284477, -11.8667469, -9.69417381]],
    [[-12.20609856, -10.47217369, -13.66270638, -13.46115875],
     [-17.17656708, -16.25190353, -15.28658581, -12.33067703]],
    [[-16.14766312, -15.57472229, -17.47755432, -17.98189926],
     [-17.17656708, -16.25190353, -15.28658581, -12.33067703]],
    [[-20.07182884, -18.43191147, -20.1606636, -21.45263863],
     [-17.17656708, -16.25190353, -15.28658581, -12.33067703]],
    [[-24.10270691, -22.20865822, -24.14675522, -25.27248383],
     [-17.17656708, -16.25190353, -15.28658581, -12.33067703]]]
FIVO_WEIGHTS = [
    [[-3.66708851, -2.07074022, -4.91751671, -5.03293562],
     [-2.99690723, -3.17782736, -4.50084877, -3.48536515]],
    [[-2.67100811, -2.30541706, -2.34178066, -2.81751347],
     [-8.27518654, -6.71545124, -8.96198845, -7.05567837]],
    [[-5.65190411, -5.94563246, -6.55041981, -5.4783473],
     [-12.34527206, -11.54284477, -11.8667469, -9.69417381]],
    [[-8.71947861, -8.40143299, -8.54593086, -8.42822266],
     [-4.28782988, -4.50591278, -3.40847206, -2.63650274]],
    [[-12.7003831, -13.5039815, -12.3569726, -12.9489622],
     [-4.28782988, -4.50591278, -3.40847206, -2.63650274]],
    [[-16.4520301, -16.3611698, -15.0314846, -16.4197006],
     [-4.28782988, -4.50591278, -3.40847206, -2.63650274]],
    [[-20.7010765, -20.1379165, -19.0020351, -20.2395458],
     [-4.28782988, -4.50591278, -3.40847206, -2.63650274]]]
FIVO_RESAMPLED = np.array([[1, 0], [0, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0]])
LENGTHS = [7, 4]


def test_bounds_iwae_scenario(tf, bounds):
    increments = increments_from_accumulated(IWAE_WEIGHTS, np.zeros_like(FIVO_RESAMPLED))
    value, resamples = run_fivo(tf, bounds, increments, LENGTHS, resample=False)
    np.testing.assert_allclose(value, [-23.301426, -13.64028], rtol=1e-6)
    np.testing.assert_array_equal(resamples, [0, 0])
    # bounds.iwae on the same weights as frame terms agrees.
    log_px = tf.constant(np.transpose(increments, [1, 2, 0]).reshape(8, 7))
    mask = (np.arange(7)[None, :] < np.array(LENGTHS)[:, None]).astype(np.float64)
    terms = {"log_px": log_px, "log_pz": tf.zeros_like(log_px), "log_qz": tf.zeros_like(log_px)}
    np.testing.assert_allclose(bounds.iwae(terms, tf.constant(mask), 4)["iwae"].numpy(),
                               [-23.301426, -13.64028], rtol=1e-6)


def test_bounds_fivo_scenario(tf, bounds):
    # FIVO resampled sequence 0 at step 0 and sequence 1 at step 2; the ESS rule must decide the
    # same from the same weights.
    increments = increments_from_accumulated(FIVO_WEIGHTS, FIVO_RESAMPLED)
    value, resamples = run_fivo(tf, bounds, increments, LENGTHS)
    np.testing.assert_allclose(value, [-22.98902512, -14.21689224], rtol=1e-6)
    np.testing.assert_array_equal(resamples, FIVO_RESAMPLED.sum(axis=0))


def test_ess_threshold_outside_zero_one_is_refused(tf, bounds):
    with pytest.raises(ValueError, match="ess_threshold"):
        run_fivo(tf, bounds, simple(2), [2, 2], ess_threshold=-0.5)
