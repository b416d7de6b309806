"""Prepared corpora: shards equal the in-memory pipeline, streamed batches resume exactly, CLIs."""

import json
import os
import shutil

import numpy as np
import pytest

from avrnn_tf.data import audio
from avrnn_tf.data import corpora

import data_helpers as h
from conftest import run_cli


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("raw"))
    h.make_wav_dir(root, n=16, rate=8000, seconds=0.3)
    for k in range(4):  # Different lengths so chunk counts and padding vary.
        h.write(os.path.join(root, "long", f"l{k}.wav"), h.tone(0.5 + 0.13 * k, 8000, seed=50 + k),
                8000, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def prepared_dir(corpus_dir, tmp_path_factory, tf):
    from avrnn_tf.data import prepared

    out = str(tmp_path_factory.mktemp("prep"))
    prepared.prepare(corpus_dir, out, frame_size=100, valid_fraction=0.1, log=lambda m: None)
    return out


def test_stats_and_records_match_the_in_memory_pipeline(corpus_dir, prepared_dir):
    from avrnn_tf.data import pipeline
    from avrnn_tf.data import prepared

    stats = prepared.load_stats(prepared_dir)
    raw = corpora.read_corpus(corpus_dir, "wav_dir", frame_size=100, valid_fraction=0.1)
    assert stats["split_sizes"] == {k: len(v) for k, v in raw.splits.items()}
    whole = lambda s: s[: len(s) // 100 * 100]  # Only whole frames are prepared.
    st = pipeline.Standardizer.fit([(n, whole(s)) for n, s in raw.splits["train"]])
    assert stats["mean"] == pytest.approx(st.mean, rel=1e-9, abs=1e-12)
    assert stats["std"] == pytest.approx(st.std, rel=1e-9)
    assert stats["sample_rate"] == 8000 and stats["frame_size"] == 100 and len(stats["source_hash"]) == 64
    for split in ("train", "valid"):
        got = {n.numpy().decode(): f.numpy() for n, f in prepared.records(prepared_dir, stats, split)}
        want = {n: pipeline.frame(st.apply(s), 100) for n, s in raw.splits[split]}
        assert got.keys() == want.keys()
        for n in want:
            np.testing.assert_allclose(got[n], want[n], rtol=1e-6, atol=1e-6)
    assert prepared.num_chunks(stats, 7) == len(pipeline.training_chunks(
        [(n, whole(s)) for n, s in raw.splits["train"]], st, 100, 7)[0])


def test_an_epoch_of_the_stream_holds_every_chunk_once(prepared_dir):
    from avrnn_tf.data import pipeline
    from avrnn_tf.data import prepared

    stats = prepared.load_stats(prepared_dir)
    n = prepared.num_chunks(stats, 7)
    ds = prepared.train_dataset(prepared_dir, stats, 1, 7, seed=3, start_step=0, shuffle_buffer=16)
    assert ds.options().autotune.enabled is False  # See pipeline.for_fit.
    streamed = [(x.numpy()[0], m.numpy()[0]) for x, m in ds.take(2 * n)]
    frames = [(name, f.numpy()) for name, f in prepared.records(prepared_dir, stats, "train")]
    x, mask = pipeline.training_chunks([(nm, f.reshape(-1)) for nm, f in frames],
                                       pipeline.Standardizer(0.0, 1.0), 100, 7)
    key = lambda xm: (xm[1].sum(), xm[0].tobytes())
    want = sorted(zip(x, mask), key=key)
    for epoch in (streamed[:n], streamed[n:]):
        got = sorted(epoch, key=key)
        assert len(got) == len(want)
        for (gx, gm), (wx, wm) in zip(got, want):
            np.testing.assert_array_equal(gm, wm)
            np.testing.assert_array_equal(gx, wx)
    # Each epoch is drawn anew.
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(streamed[:n], streamed[n:]))


def test_a_resumed_stream_sees_the_batches_of_an_uninterrupted_one(prepared_dir):
    from avrnn_tf.data import prepared

    stats = prepared.load_stats(prepared_dir)
    n, b = prepared.num_chunks(stats, 7), 4
    make = lambda start: prepared.train_dataset(prepared_dir, stats, b, 7, seed=5, start_step=start,
                                                shuffle_buffer=8)
    steps = 2 * n // b + 2  # Crosses at least one epoch boundary mid-batch.
    full = [x.numpy() for x, _ in make(0).take(steps)]
    for start in (1, n // b, n // b + 1):
        resumed = [x.numpy() for x, _ in make(start).take(steps - start)]
        for a, r in zip(full[start:], resumed):
            np.testing.assert_array_equal(a, r)
    other = [x.numpy() for x, _ in prepared.train_dataset(prepared_dir, stats, b, 7, 6, 0, 8).take(3)]
    assert not all(np.array_equal(a, o) for a, o in zip(full, other))


def test_config_that_disagrees_with_the_prepared_corpus_is_refused(prepared_dir, tmp_path):
    from avrnn_tf import config as config_lib
    from avrnn_tf import loop

    config = config_lib.base_config()
    config.data.path = prepared_dir
    config.data.frame_size = 200
    with pytest.raises(audio.DataError, match=r"frame_size = 200 but .* frame_size 100"):
        loop.Run(config, str(tmp_path / "w"))
    from avrnn_tf.data import prepared

    copy = tmp_path / "copy"
    shutil.copytree(prepared_dir, copy)
    shard = copy / prepared.load_stats(prepared_dir)["shards"]["train"][0]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(audio.DataError, match=r"train-00000-of-\d+\.tfrecord is \d+ bytes but"):
        prepared.load_stats(str(copy))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "stats.json").write_text("{not json")
    with pytest.raises(audio.DataError, match="cannot be read as JSON"):
        prepared.load_stats(str(broken))


def test_prepare_cli_names_bad_files_then_skips_them_and_train_streams_it(tmp_path):
    raw = str(tmp_path / "timit")
    h.make_timit(raw, speakers_train=6, speakers_test=2, utterances=3)
    bad = os.path.join(raw, "TRAIN", "DR1", "FTR10", "SX7.WAV")
    with open(bad, "wb") as f:
        f.write(b"NIST_1A\n   1024\nsample_count -i 99999\nend_head\n" + b"\0" * 10)
    out = str(tmp_path / "prepared")
    proc = run_cli("avrnn_tf.prepare", f"--source={raw}", f"--output={out}", "--decoder=soundfile")
    assert proc.returncode == 2, proc.stderr
    assert "TRAIN/DR1/FTR10/SX7.WAV" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(os.path.join(out, "stats.json"))

    proc = run_cli("avrnn_tf.prepare", f"--source={raw}", f"--output={out}", "--skip_bad_files",
                   "--sample_rate=8000", "--frame_size=80")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(h.read_text(os.path.join(out, "stats.json")))
    assert stats["source_format"] == "timit" and stats["sample_rate"] == 8000
    assert stats["split_sizes"]["test"] == 6 and stats["skipped_files"] == 1
    assert sum(stats["split_sizes"].values()) == 24  # 6*3 + 2*3 good files
    assert "TRAIN/DR1/FTR10/SX7.WAV\t" in h.read_text(os.path.join(out, "skipped_files.txt"))

    work = str(tmp_path / "run")
    proc = run_cli("avrnn_tf.train", "--config=configs/vrnn_gauss.py:tiny", f"--workdir={work}",
                   f"--config.data.path={out}", "--config.data.frame_size=80",
                   "--config.train.steps=6", "--config.train.eval_every=3", "--progress=none")
    assert proc.returncode == 0, proc.stderr
    assert "prepared from" in proc.stdout and "done at step 6" in proc.stdout
    saved = json.loads(h.read_text(os.path.join(work, "data_stats.json")))
    assert (saved["mean"], saved["std"]) == (stats["mean"], stats["std"])


def test_train_cli_reads_a_raw_timit_directory_and_reports_skipped_files(tmp_path):
    raw = str(tmp_path / "timit")
    h.make_timit(raw, speakers_train=6, speakers_test=2, utterances=3, rate=8000)
    open(os.path.join(raw, "TEST", "DR1", "MTE00", "SX5.WAV"), "wb").close()
    work = str(tmp_path / "run")
    args = ["--config=configs/vrnn_gauss.py:tiny", f"--workdir={work}", f"--config.data.path={raw}",
            "--config.train.steps=4", "--config.train.eval_every=4", "--progress=none"]
    proc = run_cli("avrnn_tf.train", *args)
    assert proc.returncode == 2 and "TEST/DR1/MTE00/SX5.WAV: empty file" in proc.stderr
    proc = run_cli("avrnn_tf.train", *args, "--config.data.skip_bad_files=True")
    assert proc.returncode == 0, proc.stderr
    assert "'test': 6" in proc.stdout and "done at step 4" in proc.stdout
    assert "SX5.WAV\tempty file" in h.read_text(os.path.join(work, "skipped_files.txt"))


def test_stream_prepares_a_raw_corpus_into_the_workdir_once(corpus_dir, tmp_path):
    from avrnn_tf import config as config_lib
    from avrnn_tf import loop

    config = config_lib.base_config()
    config.model.update(h_dim=8, z_dim=4, mlp_units=8)
    config.data.update(path=corpus_dir, stream=True, frame_size=100, train_frames=7)
    work = str(tmp_path / "w")
    run = loop.Run(config, work)
    stats_file = os.path.join(work, "prepared", "stats.json")
    assert run.data.prepared is not None and os.path.isfile(stats_file)
    raw = corpora.read_corpus(corpus_dir, "wav_dir", frame_size=100)
    assert run.data.corpus.sizes() == {k: len(v) for k, v in raw.splits.items()}
    assert run.data.num_train_chunks == sum(-(-(len(s) // 100) // 7) for _, s in raw.splits["train"])
    x, mask = next(iter(run.data.dataset(run.trainer, 0)))
    assert x.shape == (config.data.batch_size, 7, 100) and mask.shape == (config.data.batch_size, 7)
    stamp = os.stat(stats_file).st_mtime_ns
    run.lock.release()  # Each Run holds the workdir lock until released (or the process ends).
    loop.Run(config, work).lock.release()  # A rerun (resume) reuses the prepared directory.
    assert os.stat(stats_file).st_mtime_ns == stamp
    other = str(tmp_path / "other")
    os.makedirs(other)
    h.make_wav_dir(other, n=4)
    config.data.path = other
    with pytest.raises(audio.DataError, match="was prepared from"):
        loop.Run(config, work)
