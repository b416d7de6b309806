"""frame_changes.fall_breakdown: where a held-out fall sits (hand-computed cases)."""

import numpy as np

from avrnn_tf.experiments.frame_changes import fall_breakdown


def test_a_fall_carried_by_onsets_is_attributed_to_them():
    n = 100
    best = np.zeros(n)
    late = np.full(n, 1.0)          # 90 ordinary frames get 1 nat better...
    late[:10] = -20.0               # ...10 onset frames get 20 nats worse.
    prev = np.ones(n)
    energy = np.ones(n)
    energy[:10] = 10.0              # 10x the previous frame: onsets.
    out = fall_breakdown(best, late, energy, prev, onset_ratio=4.0, shares=(0.1, 0.5))
    assert out["frames"] == n
    np.testing.assert_allclose(out["fall_per_frame"], (10 * 20 - 90) / n)
    np.testing.assert_allclose(out["fraction_better"], 0.9)
    np.testing.assert_allclose(out["onset_fraction"], 0.1)
    np.testing.assert_allclose(out["onset_change"], 20.0)
    np.testing.assert_allclose(out["other_change"], -1.0)
    np.testing.assert_allclose(out["onset_share_of_fall"], 200 / 110)
    np.testing.assert_allclose(out["worst_0.1_share_of_fall"], 200 / 110)  # the 10 onsets
    np.testing.assert_allclose(out["worst_0.5_share_of_fall"], (200 - 40) / 110)


def test_a_uniform_fall_has_no_concentration():
    out = fall_breakdown(np.zeros(50), -np.full(50, 2.0), np.ones(50), np.ones(50),
                         shares=(0.2,))
    np.testing.assert_allclose(out["fall_per_frame"], 2.0)
    np.testing.assert_allclose(out["worst_0.2_share_of_fall"], 0.2)
    assert out["fraction_better"] == 0 and out["onset_fraction"] == 0
