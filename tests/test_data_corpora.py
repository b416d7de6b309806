"""Raw corpora: format detection, TIMIT/FSDD/hashed splits, decoding of every format, bad input.

Decoding tests run with soundfile and, where tensorflow-io's ops run (the tfio CI leg, where
AVRNN_REQUIRE_TFIO=1 turns a missing tensorflow-io into a failure), with tensorflow-io too.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from avrnn_tf.data import audio
from avrnn_tf.data import corpora
from avrnn_tf.data import tfio_backend

import data_helpers as h

DataError = audio.DataError


def _decoders():
    ok, why = tfio_backend.probe()
    if os.environ.get("AVRNN_REQUIRE_TFIO") == "1" and not ok:
        raise RuntimeError(f"AVRNN_REQUIRE_TFIO=1 but tensorflow-io is not usable: {why}")
    return ["soundfile", pytest.param("tfio", marks=pytest.mark.skipif(not ok, reason=why))]


DECODERS = _decoders()


def test_tfio_probe_runs_an_op_and_explains_itself():
    ok, why = tfio_backend.probe()
    assert isinstance(ok, bool) and why
    try:
        import tensorflow_io  # noqa: F401
        imported = True
    except Exception:
        imported = False
    if not imported:
        assert not ok and "import" in why
    # Where it imports but the ops fail (TF >= 2.18), the probe must say so rather than pass.
    assert corpora.resolve_decoder("soundfile") == "soundfile"
    assert corpora.resolve_decoder("auto") == ("tfio" if ok else "soundfile")
    if not ok:
        with pytest.raises(DataError, match="tensorflow-io is not usable"):
            corpora.resolve_decoder("tfio")


def test_tfio_probe_in_a_fresh_process_prints_no_tensorflow_log_lines():
    """The probe is the first TensorFlow import of a fresh process (the CI's tfio leg calls it so):
    TensorFlow's and tensorflow-io's C++ start-up logging must not reach the user's stderr."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    script = "from avrnn_tf.data import tfio_backend; print(tfio_backend.probe()[0])"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("True", "False")
    # absl's "I0000 00:00:..." lines (TF >= 2.17), TensorFlow 2.16's "2026-... : I ..." lines.
    log_line = re.compile(r"^(WARNING: All log messages|[IWEF]\d{4} |\d{4}-\d\d-\d\d [\d:.]+: [IWEF] )",
                          re.M)
    assert not log_line.search(result.stderr), result.stderr


# ----------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("fmt,subtype,atol", [
    ("WAV", "PCM_16", 2 ** -15), ("WAV", "PCM_24", 2 ** -23), ("WAV", "PCM_32", 2 ** -31),
    ("WAV", "PCM_U8", 2 ** -7), ("WAV", "FLOAT", 1e-7), ("FLAC", "PCM_16", 2 ** -15),
    ("NIST", "PCM_16", 2 ** -15)])
def test_lossless_formats_decode_to_the_written_samples(tmp_path, decoder, fmt, subtype, atol):
    wave = h.tone(0.1, 8000, amp=0.5)
    ext = {"WAV": "wav", "FLAC": "flac", "NIST": "sph"}[fmt]
    path = h.write(str(tmp_path / f"x.{ext}"), wave, 8000, format=fmt, subtype=subtype)
    samples, rate = corpora.decode(path, decoder)
    assert rate == 8000 and samples.dtype == np.float32 and samples.shape == wave.shape
    np.testing.assert_allclose(samples, wave, atol=atol * 1.01)


@pytest.mark.parametrize("decoder", DECODERS)
def test_ogg_vorbis_decodes_close_to_the_original(tmp_path, decoder):
    wave = h.tone(0.5, 16000, amp=0.5)
    path = h.write(str(tmp_path / "x.ogg"), wave, 16000, format="OGG", subtype="VORBIS")
    samples, rate = corpora.decode(path, decoder)
    assert rate == 16000
    n = min(len(samples), len(wave))
    assert abs(len(samples) - len(wave)) < 2048
    # Lossy: compare energy-normalised correlation rather than sample values.
    c = np.dot(samples[:n], wave[:n]) / np.linalg.norm(samples[:n]) / np.linalg.norm(wave[:n])
    assert c > 0.95


@pytest.mark.parametrize("decoder", DECODERS)
def test_multichannel_audio_is_downmixed_by_averaging(tmp_path, decoder):
    left, right = h.tone(0.1, 8000, 300, 0.4, seed=1), h.tone(0.1, 8000, 500, 0.2, seed=2)
    path = h.write(str(tmp_path / "st.wav"), np.stack([left, right], 1), 8000, subtype="FLOAT")
    samples, _ = corpora.decode(path, decoder)
    np.testing.assert_allclose(samples, (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("decoder", DECODERS)
def test_resampling_keeps_a_passband_tone_and_removes_one_above_nyquist(decoder):
    resample = tfio_backend.resample if decoder == "tfio" else audio.resample
    rate_in, rate_out = 16000, 8000
    t = np.arange(rate_in) / rate_in
    low = np.sin(2 * np.pi * 500 * t).astype(np.float32)
    high = np.sin(2 * np.pi * 6000 * t).astype(np.float32)  # Above the new 4 kHz Nyquist.
    out_low, out_high = resample(low, rate_in, rate_out), resample(high, rate_in, rate_out)
    assert abs(len(out_low) - rate_out) <= 1
    mid = slice(1000, 7000)  # Away from the filter's edge transients.
    expect = np.sin(2 * np.pi * 500 * np.arange(len(out_low)) / rate_out)
    np.testing.assert_allclose(out_low[mid], expect[mid], atol=0.02)
    # Naive decimation would alias 6 kHz onto 2 kHz at full amplitude; the filter must remove it.
    assert np.sqrt(np.mean(out_high[mid] ** 2)) < 0.05


# ----------------------------------------------------------------------------- bad input
def _bad_files(root):
    """Writes one good corpus plus one file per bad case; returns {relative name: reason regex}."""
    h.make_wav_dir(root, n=10)
    good = h.read_bytes(os.path.join(root, "spk0", "clip_00.wav"))
    cases = {}
    os.makedirs(os.path.join(root, "bad"))
    open(os.path.join(root, "bad", "empty.wav"), "wb").close()
    cases[os.path.join("bad", "empty.wav")] = "empty file"
    with open(os.path.join(root, "bad", "text.wav"), "w") as f:
        f.write("this is not audio, just text with an audio extension\n" * 20)
    cases[os.path.join("bad", "text.wav")] = "cannot decode"
    with open(os.path.join(root, "bad", "corrupt.wav"), "wb") as f:
        f.write(b"RIFF" + os.urandom(4) + b"WAVEfmt " + os.urandom(200))
    cases[os.path.join("bad", "corrupt.wav")] = "cannot decode"
    with open(os.path.join(root, "bad", "truncated.wav"), "wb") as f:
        f.write(good[:30])  # Cut inside the fmt chunk.
    cases[os.path.join("bad", "truncated.wav")] = "cannot decode"
    h.write(os.path.join(root, "bad", "short.wav"), h.tone(0.01, 8000), 8000, subtype="PCM_16")
    cases[os.path.join("bad", "short.wav")] = "shorter than one frame"
    nan = h.tone(0.3, 8000)
    nan[100], nan[200] = np.nan, np.inf
    h.write(os.path.join(root, "bad", "nan.wav"), nan, 8000, subtype="FLOAT")
    cases[os.path.join("bad", "nan.wav")] = "NaN or infinite"
    return cases


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_bad_file_is_named_with_its_reason_in_one_error(tmp_path, decoder):
    cases = _bad_files(str(tmp_path))
    with pytest.raises(DataError) as err:
        corpora.read_corpus(str(tmp_path), "wav_dir", frame_size=200, decoder=decoder)
    text = str(err.value)
    assert f"{len(cases)} of {10 + len(cases)} files" in text and "--skip_bad_files" in text
    lines = {line.strip().split(": ", 1)[0]: line for line in text.splitlines()[1:]}
    for name, reason in cases.items():
        assert name in lines, f"{name} missing from: {text}"
        assert re.search(reason, lines[name]), lines[name]
    for k in range(10):
        assert f"clip_{k:02d}" not in text


@pytest.mark.parametrize("decoder", DECODERS)
def test_skip_bad_files_drops_exactly_the_bad_ones_and_writes_a_report(tmp_path, decoder):
    root = str(tmp_path / "data")
    cases = _bad_files(root)
    report = str(tmp_path / "out" / "skipped.txt")
    raw = corpora.read_corpus(root, "wav_dir", frame_size=200, skip_bad_files=True,
                              report_path=report, decoder=decoder)
    kept = [n for part in raw.splits.values() for n, _ in part]
    assert sorted(kept) == sorted(os.path.join(f"spk{k % 2}", f"clip_{k:02d}.wav") for k in range(10))
    assert {p.path for p in raw.skipped} == set(cases)
    lines = [l.split("\t") for l in h.read_text(report).splitlines() if not l.startswith("#")]
    assert {l[0] for l in lines} == set(cases) and all(l[1] for l in lines)


def test_empty_directory_and_directory_without_audio(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="is empty"):
        corpora.list_files(str(empty), "wav_dir")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    (other / "song.mp3").write_bytes(b"ID3")
    with pytest.raises(DataError, match=r"no files of format wav_dir.*2 other file"):
        corpora.list_files(str(other), "wav_dir")
    assert corpora.detect_format(str(other)) is None  # Left to other formats' readers.
    with pytest.raises(DataError, match="does not exist"):
        corpora.list_files(str(tmp_path / "nope"), "wav_dir")


def test_mixed_sample_rates_need_a_rate_and_resample_to_it(tmp_path):
    root = str(tmp_path)
    h.make_wav_dir(root, n=6, rate=8000)
    h.write(os.path.join(root, "odd", "a.wav"), h.tone(0.3, 16000), 16000, subtype="PCM_16")
    h.write(os.path.join(root, "odd", "b.wav"), h.tone(0.3, 22050), 22050, subtype="PCM_16")
    with pytest.raises(DataError) as err:
        corpora.read_corpus(root, "wav_dir", frame_size=200)
    text = str(err.value)
    assert "odd/a.wav: sample rate 16000 Hz differs" in text and "odd/b.wav" in text
    assert "clip_" not in text
    raw = corpora.read_corpus(root, "wav_dir", sample_rate=8000, frame_size=200)
    lengths = {n: len(s) for part in raw.splits.values() for n, s in part}
    assert raw.sample_rate == 8000 and len(lengths) == 8
    # 0.3 s at any rate resamples to 0.3 s at 8 kHz.
    assert lengths[os.path.join("odd", "a.wav")] == 2400
    assert abs(lengths[os.path.join("odd", "b.wav")] - 2400) <= 1


# ----------------------------------------------------------------------------- layouts and splits
def test_timit_layout_is_detected_and_split_by_the_literature_protocol(tmp_path):
    root = str(tmp_path / "timit")
    names = h.make_timit(root, speakers_train=7, utterances=3)
    assert corpora.detect_format(root) == "timit"
    raw = corpora.read_corpus(root, "timit", frame_size=200)
    got = {k: [n for n, _ in v] for k, v in raw.splits.items()}
    assert raw.sample_rate == 16000
    assert sorted(got["test"]) == sorted(names["test"])
    assert sorted(got["train"] + got["valid"]) == sorted(names["train"])
    assert len(got["valid"]) == round(0.05 * 21) and not set(got["train"]) & set(got["valid"])
    # The same seed gives the same split; .PHN transcriptions are ignored.
    again = corpora.read_corpus(root, "timit", frame_size=200)
    assert [n for n, _ in again.splits["valid"]] == got["valid"]


def test_timit_without_test_directory_is_refused(tmp_path):
    root = str(tmp_path / "timit")
    h.make_timit(root, test=False)
    assert corpora.detect_format(root) == "timit"
    with pytest.raises(DataError, match="no TEST/ subdirectory"):
        corpora.read_corpus(root, "timit", frame_size=200)


def test_lowercase_timit_folders_work(tmp_path):
    root = str(tmp_path / "timit")
    h.make_timit(root, speakers_train=2, speakers_test=1, utterances=2)
    os.rename(os.path.join(root, "TRAIN"), os.path.join(root, "train"))
    os.rename(os.path.join(root, "TEST"), os.path.join(root, "test"))
    raw = corpora.read_corpus(root, "timit", frame_size=200)
    assert len(raw.splits["test"]) == 2 and len(raw.splits["train"]) + len(raw.splits["valid"]) == 4


def test_hashed_split_is_stable_when_files_are_added():
    names = [f"dir/clip_{k}.wav" for k in range(400)]
    split = corpora.split_corpus("wav_dir", {"all": names}, 0.1, 1234)
    assert sorted(split["train"] + split["valid"]) == sorted(names) and not split["test"]
    assert 20 <= len(split["valid"]) <= 60  # ~Binomial(400, 0.1)
    more = corpora.split_corpus("wav_dir", {"all": names + [f"new/{k}.wav" for k in range(100)]},
                                0.1, 1234)
    assert set(split["valid"]) <= set(more["valid"]) and set(split["train"]) <= set(more["train"])
    tiny = corpora.split_corpus("wav_dir", {"all": ["a.wav", "b.wav"]}, 0.05, 1234)
    assert len(tiny["valid"]) == 1 and len(tiny["train"]) == 1


def test_fsdd_is_detected_and_misnamed_files_are_refused(tmp_path, fsdd_dir):
    assert corpora.detect_format(fsdd_dir) == "fsdd"
    root = str(tmp_path)
    for name in ("0_ann_0.wav", "1_ann_7.wav", "other.wav"):
        h.write(os.path.join(root, name), h.tone(0.3, 8000), 8000, subtype="PCM_16")
    assert corpora.detect_format(root) == "wav_dir"
    with pytest.raises(DataError, match=r"not named like FSDD.*other\.wav"):
        corpora.list_files(root, "fsdd")


def test_load_corpus_routes_new_formats_and_skips_bad_files(tmp_path, tf):
    from avrnn_tf import config as config_lib
    from avrnn_tf.data import pipeline

    root = str(tmp_path / "timit")
    h.make_timit(root, speakers_train=4, utterances=3)
    with open(os.path.join(root, "TRAIN", "DR1", "MTR00", "SX9.WAV"), "wb") as f:
        f.write(b"NIST_1A\n   1024\nbroken")
    data = config_lib.base_config().data
    data.path = root
    with pytest.raises(DataError, match="SX9.WAV"):
        pipeline.load_corpus(data)
    data.skip_bad_files = True
    corpus = pipeline.load_corpus(data)
    assert corpus.sample_rate == 16000 and corpus.sizes()["test"] == 6
    assert [p.path for p in corpus.skipped] == [os.path.join("TRAIN", "DR1", "MTR00", "SX9.WAV")]
