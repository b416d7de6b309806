"""frame_changes.fall_breakdown (hand-computed cases) and scalars.training_seconds (segments)."""

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


def test_training_seconds_adds_the_segments_of_a_resumed_run(tmp_path):
    import tensorflow as tf

    from avrnn_tf.experiments.scalars import training_seconds

    def write(directory, events):
        with tf.io.TFRecordWriter(str(directory / f"events.out.tfevents.{len(events)}.host")) as w:
            for wall_time, tag in events:
                event = tf.compat.v1.Event(wall_time=wall_time, step=1)
                event.summary.value.add(tag=tag, simple_value=1.0)
                w.write(event.SerializeToString())

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a", [(100.0, "train/loss"), (115.0, "valid/loss"), (130.0, "train/loss")])
    # The second segment, then an evaluation long after training (not training time).
    write(tmp_path / "b", [(500.0, "train/loss"), (520.0, "train/loss"), (900.0, "eval/test/elbo")])
    assert training_seconds(str(tmp_path)) == 50.0
    assert training_seconds(str(tmp_path / "missing")) == 0.0
