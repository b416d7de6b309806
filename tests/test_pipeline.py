"""Data pipeline: framing, standardization, splits, step-indexed batches, padded eval batches."""

import os

import numpy as np
import pytest
import soundfile

from avrnn_tf.data import audio


@pytest.fixture(scope="module")
def pipeline(tf):
    from avrnn_tf.data import pipeline

    return pipeline


def test_frame_drops_only_the_trailing_partial_frame(pipeline):
    frames = pipeline.frame(np.arange(1000, dtype=np.float32), 200)
    assert frames.shape == (5, 200)
    np.testing.assert_array_equal(frames.reshape(-1), np.arange(1000))
    assert pipeline.frame(np.arange(1099, dtype=np.float32), 200).shape == (5, 200)


def test_standardizer_uses_training_statistics_and_inverts(pipeline):
    rng = np.random.default_rng(0)
    utts = [("a", rng.normal(3.0, 2.0, 5000).astype(np.float32)),
            ("b", rng.normal(3.0, 2.0, 7000).astype(np.float32))]
    st = pipeline.Standardizer.fit(utts)
    allv = np.concatenate([s for _, s in utts]).astype(np.float64)
    assert st.mean == pytest.approx(allv.mean(), rel=1e-9)
    assert st.std == pytest.approx(allv.std(), rel=1e-9)
    z = np.concatenate([st.apply(s) for _, s in utts])
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5
    np.testing.assert_allclose(st.invert(st.apply(utts[0][1])), utts[0][1], atol=1e-5)
    with pytest.raises(audio.DataError, match="silent"):
        pipeline.Standardizer.fit([("z", np.zeros(400, np.float32))])


def test_training_chunks_cover_every_frame_once_with_masks(pipeline):
    st = pipeline.Standardizer(0.0, 1.0)
    utts = [("a", np.arange(2000, dtype=np.float32)), ("b", np.arange(900, dtype=np.float32))]
    x, mask = pipeline.training_chunks(utts, st, frame_size=100, chunk_frames=8)
    # a: 20 frames -> chunks of 8, 8, 4(+4 pad); b: 9 frames -> 8, 1(+7 pad).
    assert x.shape == (5, 8, 100) and mask.shape == (5, 8)
    assert mask.sum() == 29
    np.testing.assert_array_equal(mask[2], [1, 1, 1, 1, 0, 0, 0, 0])
    assert np.all(x[mask == 0] == 0)
    np.testing.assert_array_equal(x[:3][mask[:3] > 0].reshape(-1), np.arange(2000))


def test_fsdd_split_uses_the_official_test_indices(pipeline):
    names = [f"{d}_{s}_{i}.wav" for d in range(3) for s in ("jackson", "theo") for i in range(20)]
    split = pipeline.split_names(names, 0.05, 1234)
    test_names = {names[i] for i in split["test"]}
    assert test_names == {n for n in names if int(n.split("_")[2][:-4]) <= 4}
    all_idx = split["train"] + split["valid"] + split["test"]
    assert sorted(all_idx) == list(range(len(names)))
    assert len(split["valid"]) == round(0.05 * 90)
    again = pipeline.split_names(list(reversed(names)), 0.05, 1234)  # Order of listing is irrelevant.
    assert {names[::-1][i] for i in again["valid"]} == {names[i] for i in split["valid"]}
    other = pipeline.split_names(names, 0.05, 99)
    assert {names[i] for i in other["valid"]} != {names[i] for i in split["valid"]}


def test_generic_split_has_no_test_and_needs_two_utterances(pipeline):
    split = pipeline.split_names(["a.wav", "b.wav", "c.wav"], 0.05, 1234)
    assert split["test"] == [] and len(split["valid"]) == 1 and len(split["train"]) == 2
    with pytest.raises(audio.DataError, match="at least 2"):
        pipeline.split_names(["a.wav"], 0.05, 1234)


def test_train_batches_are_a_function_of_the_step(tf, pipeline):
    n, b = 10, 4
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1) * np.ones([n, 2, 3], np.float32)
    mask = np.ones([n, 2], np.float32)

    def ids(start, steps):
        batches = pipeline.train_dataset(x, mask, b, 5, start).take(steps).as_numpy_iterator()
        return [int(chunk[0, 0]) for xb, _ in batches for chunk in xb]

    full, resumed = ids(0, 9), ids(4, 5)
    assert full[4 * b:] == resumed  # Starting at step 4 gives the batches of steps 4..8.
    # Within a data epoch (n // b = 2 steps) no chunk repeats; epochs are reshuffled.
    assert len(set(full[:8])) == 8
    assert full[:8] != full[8:16]


def test_eval_batches_hold_whole_utterances(pipeline):
    st = pipeline.Standardizer(0.0, 1.0)
    lengths = [450, 2000, 1210, 600, 830]
    utts = [(str(i), np.ones(n, np.float32)) for i, n in enumerate(lengths)]
    batches = pipeline.eval_batches(utts, st, frame_size=100, batch_size=2)
    total = sum(int(m.sum()) for _, m in batches)
    assert total == sum(n // 100 for n in lengths)  # No utterance is truncated.
    for x, m in batches:
        assert x.shape[1] % 8 == 0 and np.all(x[m == 0] == 0)
        assert np.all(np.diff(m, axis=1) <= 0)  # Padding only at the end.


def test_read_directory_resamples_and_downmixes(tmp_path):
    t = np.arange(8000) / 8000.0
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", tone, 8000, subtype="PCM_16")
    soundfile.write(tmp_path / "b.wav", np.stack([tone, tone], 1), 16000, subtype="PCM_24")
    os.makedirs(tmp_path / "sub")
    soundfile.write(tmp_path / "sub" / "c.flac", tone, 8000)
    utts, rate = audio.read_directory(str(tmp_path))
    assert rate == 8000  # The most common rate.
    names = [n for n, _ in utts]
    assert names == ["a.wav", "b.wav", os.path.join("sub", "c.flac")]
    # b.wav holds 8000 samples at 16 kHz: 0.5 s of an 880 Hz tone. Resampled to 8 kHz it is 4000
    # samples and still 880 Hz (the peak of its spectrum, 2 Hz resolution).
    assert len(utts[1][1]) == 4000
    spec = np.abs(np.fft.rfft(utts[1][1]))
    assert abs(np.argmax(spec) * 8000 / 4000 - 880) <= 2
    utts16, rate16 = audio.read_directory(str(tmp_path), sample_rate=16000, max_files=1)
    assert rate16 == 16000 and len(utts16) == 1 and len(utts16[0][1]) == 16000  # a.wav upsampled


def test_bad_audio_directory_errors_name_the_problem(tmp_path):
    with pytest.raises(audio.DataError, match="does not exist"):
        audio.read_directory(str(tmp_path / "missing"))
    with pytest.raises(audio.DataError, match="no audio files"):
        audio.read_directory(str(tmp_path))
    (tmp_path / "fake.wav").write_bytes(b"this is not a RIFF file at all")
    (tmp_path / "empty.wav").write_bytes(b"")
    soundfile.write(tmp_path / "ok.wav", np.zeros(400, np.float32) + 0.1, 8000)
    with pytest.raises(audio.DataError) as e:
        audio.read_directory(str(tmp_path))
    assert "fake.wav" in str(e.value) and "empty.wav" in str(e.value) and "2 of 3" in str(e.value)


def test_training_datasets_turn_tf_data_autotuning_off(tf, pipeline):
    """fit() deletes its iterator at the end of every round; with autotuning on that waits for the
    autotune thread's next wake-up (BUILD_NOTES 4.7), so every training dataset turns it off."""
    x = np.zeros([6, 2, 3], np.float32)
    mask = np.ones([6, 2], np.float32)
    for ds in (pipeline.train_dataset(x, mask, 2, 0, 0),
               pipeline.phase_train_dataset(x, mask, 2, 0, 0, 3)):
        assert ds.options().autotune.enabled is False
        assert next(iter(ds))[0].shape[-1] == 3  # Still produces batches.


def test_whole_sequences_cut_only_what_exceeds_the_budget(pipeline):
    st = pipeline.Standardizer(0.0, 1.0)
    utts = [("a", np.arange(2500, dtype=np.float32)), ("b", np.arange(700, dtype=np.float32))]
    pieces = pipeline.whole_sequences(utts, st, frame_size=100, max_frames=10)
    assert [len(p) for p in pieces] == [10, 10, 5, 7]
    np.testing.assert_array_equal(np.concatenate(pieces[:3]).reshape(-1), np.arange(2500))


def whole_sequence_source(pipeline, num=200, budget=256, batch_size=16, seed=3):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, budget + 1, num)
    lengths[:3] = [budget, budget - 1, 1]  # The extremes.
    # Sequence i's frames hold the value i, so a batch row says which sequence it is.
    sequences = [np.full([n, 3], i, np.float32) for i, n in enumerate(lengths)]
    return lengths, pipeline.WholeSequenceBatches(sequences, batch_size, budget, seed)


def test_whole_sequence_batches_respect_max_batch_frames(tf, pipeline):
    lengths, source = whole_sequence_source(pipeline)
    real = padded = 0
    epochs = [[], []]
    for step, (x, mask) in enumerate(source.dataset(0).take(sum(
            len(source.plan(e)) for e in range(2))).as_numpy_iterator()):
        assert x.shape[0] <= 16 and x.shape[0] * x.shape[1] <= 256, x.shape
        ids = x[:, 0, 0].astype(int)
        np.testing.assert_array_equal(mask.sum(axis=1), lengths[ids])  # Whole, never truncated.
        assert np.all(np.diff(mask, axis=1) <= 0) and np.all(x[mask == 0] == 0)
        np.testing.assert_array_equal(x[mask > 0], np.repeat(ids, lengths[ids])[:, None] * [1, 1, 1])
        epochs[0 if step < len(source.plan(0)) else 1].extend(ids)
        real, padded = real + mask.sum(), padded + mask.size
    for ids in epochs:  # Every sequence once per data-epoch.
        assert sorted(ids) == list(range(len(lengths)))
    assert epochs[0] != epochs[1]
    assert real / padded > 0.85  # Length bucketing keeps padding small.


def test_whole_sequence_batches_are_a_function_of_the_step(tf, pipeline):
    lengths, source = whole_sequence_source(pipeline, num=60)
    rows = lambda ds, n: [tuple(x[:, 0, 0].astype(int)) for x, _ in ds.take(n).as_numpy_iterator()]
    first = len(source.plan(0))
    full = rows(source.dataset(0), 2 * first + 3)
    for start in (2, first - 1, first + 1, 2 * first):  # Resumed mid-epoch, at and across a boundary.
        _, fresh = whole_sequence_source(pipeline, num=60)  # A new process: nothing remembered.
        assert rows(fresh.dataset(start), 3) == full[start:start + 3], start
    _, other = whole_sequence_source(pipeline, num=60, seed=4)
    assert rows(other.dataset(0), first) != full[:first]
