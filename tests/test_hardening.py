"""Issue 14: the breaks found when the package was attacked, each kept fixed by a test named after
its item. The CLIs run in subprocesses with a timeout, so a hang fails the test instead of blocking."""

import os
import socket

import numpy as np
import pytest

import data_helpers as h
from conftest import run_cli


# ------------------------------------------------------- item 2: FIFOs, sockets, devices
def _plant_special_files(folder, prefix=""):
    """A FIFO, a socket and a symlink to /dev/zero (a character device), all named like audio."""
    os.makedirs(folder, exist_ok=True)
    os.mkfifo(os.path.join(folder, f"{prefix}fifo_0.wav"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(folder, f"{prefix}sock_0.wav"))
    os.symlink("/dev/zero", os.path.join(folder, f"{prefix}zero_0.wav"))
    return sock


def _fsdd_corpus(root):
    for digit in range(3):
        for index in range(3):
            h.write(os.path.join(root, f"{digit}_anna_{index}.wav"),
                    h.tone(0.3, 8000, freq=200 + 30 * digit, seed=index), 8000, subtype="PCM_16")


@pytest.mark.parametrize("layout", ["wav_dir", "fsdd", "timit", "prepared"])
def test_item2_fifo_wav_is_a_bad_file(tmp_path, layout):
    """A FIFO named x.wav hung avrnn-train/avrnn-prepare forever (soundfile.info opened it)."""
    data, out = str(tmp_path / "data"), str(tmp_path / "out")
    if layout == "wav_dir":
        h.make_wav_dir(data, n=6)
        sock = _plant_special_files(os.path.join(data, "spk0"))
        proc = run_cli("avrnn_tf.prepare", f"--source={data}", f"--output={out}",
                       "--skip_bad_files", "--frame_size=80", timeout=90)
        assert proc.returncode == 0, proc.stderr
        report = h.read_text(os.path.join(out, "skipped_files.txt"))
        for name, kind in (("fifo", "a FIFO"), ("sock", "a socket"), ("zero", "a character device")):
            assert f"spk0/{name}_0.wav\t" in report and f"not a regular file ({kind})" in report
        assert "skipped 3 of 9 bad file(s)" in proc.stdout
    elif layout == "fsdd":
        _fsdd_corpus(data)
        sock = _plant_special_files(data, prefix="4_bob_")  # 4_bob_fifo_0.wav: not an FSDD name...
        for name in os.listdir(data):  # ...so rename to FSDD names: 4_fifo_0.wav, 4_sock_0.wav, ...
            if name.startswith("4_bob_"):
                os.rename(os.path.join(data, name), os.path.join(data, name.replace("bob_", "")))
        proc = run_cli("avrnn_tf.train", "--config=configs/vrnn_gauss.py:tiny",
                       f"--workdir={out}", f"--config.data.path={data}", "--config.data.format=fsdd",
                       "--config.data.frame_size=80", "--progress=none", timeout=90)
        assert proc.returncode == 2, proc.stderr
        assert "3 of 12 files" in proc.stderr and "4_fifo_0.wav: not a regular file (a FIFO)" \
            in proc.stderr and "Traceback" not in proc.stderr
    elif layout == "timit":
        h.make_timit(data, speakers_train=2, speakers_test=1, utterances=2)
        sock = _plant_special_files(os.path.join(data, "TEST", "DR1", "MTE00"), prefix="SX9")
        proc = run_cli("avrnn_tf.prepare", f"--source={data}", f"--output={out}", "--frame_size=80",
                       timeout=90)
        assert proc.returncode == 2, proc.stderr
        assert "TEST/DR1/MTE00/SX9fifo_0.wav: not a regular file (a FIFO); not opened" \
            in proc.stderr and "Traceback" not in proc.stderr
    else:
        from avrnn_tf.data import prepared

        raw = str(tmp_path / "raw")
        h.make_wav_dir(raw, n=6)
        stats = prepared.prepare(raw, data, frame_size=80, log=lambda m: None)
        shard = os.path.join(data, stats["shards"]["train"][0])
        os.remove(shard)
        os.mkfifo(shard)
        sock = _plant_special_files(data)  # Ignored: a prepared corpus reads only its shards.
        proc = run_cli("avrnn_tf.train", "--config=configs/vrnn_gauss.py:tiny", f"--workdir={out}",
                       f"--config.data.path={data}", "--config.data.frame_size=80",
                       "--progress=none", timeout=90)
        assert proc.returncode == 2, proc.stderr
        assert f"{shard}: not a regular file (a FIFO); not opened" in proc.stderr
    sock.close()


# ------------------------------------------------------- item 4: malformed piano-roll files
_FRAMES = [[60, 64], [62], []]


def _splits(**override):
    return {**{s: [_FRAMES] for s in ("train", "valid", "test")}, **override}


def _deep_list(depth, leaf):
    """A pickle of a list nested `depth` deep (built by opcodes: pickle.dumps would recurse)."""
    return b"\x80\x02]" + b"]" * depth + b"K" + bytes([leaf]) + b"a" * (depth + 1) + b"."


def _pickle_with_notes(note_pickle):
    """{"train": [[<note>]], "valid": [[[60]]], "test": [[[60]]]} with the raw pickle of one note."""
    import pickle

    head = pickle.dumps({"valid": [[[60]]], "test": [[[60]]]}, protocol=2)[:-1]  # Drop STOP.
    return head + b"X\x05\x00\x00\x00train]]" + note_pickle[2:-1] + b"aas."


def _mat(path, train_cells):
    from scipy import io as sio

    def cells(arrays):
        out = np.empty([1, len(arrays)], object)
        for i, a in enumerate(arrays):
            out[0, i] = a
        return out

    ok = np.zeros([4, 88])
    ok[:, 39] = 1
    sio.savemat(path, {"traindata": cells(train_cells), "validdata": cells([ok]),
                       "testdata": cells([ok])})


def _write_case(tmp_path, case):
    import json
    import pickle

    if case == "nan_note":
        data = pickle.dumps(_splits(train=[[[float("nan")]]]))
    elif case == "inf_note":
        data = pickle.dumps(_splits(train=[[[float("inf")]]]))
    elif case == "int_sequence":
        data = pickle.dumps(_splits(train=[5]))
    elif case == "none_sequence":
        data = pickle.dumps(_splits(valid=[None]))
    elif case == "mixed_keys":
        data = pickle.dumps({"train": [_FRAMES], 1: 2, (3,): 4})
    elif case == "deep_notes":
        data = _pickle_with_notes(_deep_list(100000, 60))
    elif case == "empty_valid":
        data = pickle.dumps(_splits(valid=[]))
    elif case == "huge_string_note":
        data = pickle.dumps(_splits(train=[[["x" * 1000000]]]))
    elif case == "deep_json":
        path = tmp_path / "deep.json"
        path.write_text('{"train": ' + "[" * 100000 + "]" * 100000 + ', "valid": [], "test": []}')
        return str(path)
    else:
        path = str(tmp_path / "complex.mat")
        roll = np.zeros([4, 88], complex)
        roll[:, 40] = 1  # Complex with a zero imaginary part: numpy casts it with a warning.
        _mat(path, [roll])
        return path
    path = tmp_path / f"{case}.pickle"
    path.write_bytes(data)
    return str(path)


ITEM4_CASES = {  # case -> what the one-line message must say
    "nan_note": "note nan is not an integer MIDI note number",
    "inf_note": "note inf is not an integer MIDI note number",
    "int_sequence": "[train]: sequence 0 is int, expected a list of frames",
    "none_sequence": "[valid]: sequence 0 is NoneType, expected a list of frames",
    "mixed_keys": "expected a dict with keys ['train', 'valid', 'test'], found ['(3,)', '1', 'train']",
    "deep_notes": "is not an integer MIDI note number",
    "empty_valid": "the 'valid' split is empty",
    "huge_string_note": "note 'xxxxxxxxxxxxxxxxx",
    "deep_json": "not valid JSON (maximum recursion depth exceeded",
    "complex_mat": "traindata{1} holds complex128 values, expected real 0/1 values",
}


@pytest.mark.parametrize("case", sorted(ITEM4_CASES))
def test_item4_malformed_pianoroll_is_one_short_line(tmp_path, case):
    """Each of these gave a traceback (or a 1 MB message, or was accepted with a warning)."""
    from avrnn_tf.data import pianoroll

    path = _write_case(tmp_path, case)
    with pytest.raises(pianoroll.DataError) as error:
        pianoroll.load_rolls(path)
    message = str(error.value)
    assert ITEM4_CASES[case] in message and message.startswith(path)
    assert "\n" not in message and len(message) < 300 + len(path), message[:500]


def test_item4_empty_valid_split_exits_2_from_avrnn_train(tmp_path):
    """The empty valid split loaded, then training died with KeyError: 'num_frames'."""
    path = _write_case(tmp_path, "empty_valid")
    proc = run_cli("avrnn_tf.train", "--config=configs/vrnn_gauss.py:tiny",
                   f"--workdir={tmp_path / 'work'}", f"--config.data.path={path}",
                   "--config.data.format=pianoroll", "--config.data.frame_size=88",
                   "--config.model.emission=bernoulli", "--config.train.steps=2", "--progress=none",
                   timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "the 'valid' split is empty" in lines[0], proc.stderr[-2000:]


# ------------------------------------------------------- item 3: piano-roll memory bound
PIANOROLL_PEAK_MB = 400  # Documented in README "Bad input": reading a refused file stays below it.


def _peak_rss_mb(code, *args, timeout=120):
    """Runs `python -c code args` in a fresh process; (CompletedProcess, its peak RSS in MB)."""
    import subprocess
    import sys

    wrapper = ("import resource, subprocess, sys\n"
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr)\n"
               "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(p.returncode)\n")
    proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-c", code, *args],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    peak = int(proc.stdout.rsplit("PEAK_KB", 1)[1])
    return proc, peak / 1024


def _mat_element(kind, payload):
    import struct

    return struct.pack("<II", kind, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _write_compressed_mat(path, cells):
    """A MATLAB v5 file of three 1 x 1 cell variables, each one float64 [frames, 88] matrix given
    as (frames, note or None): zeros with `note` sounding throughout, zlib-compressed as MATLAB
    writes them. The zeros are streamed into zlib, so a GB-sized variable costs no memory here."""
    import struct
    import zlib

    with open(path, "wb") as f:
        f.write(b"MATLAB 5.0 MAT-file, hardening test".ljust(116) + b"\0" * 8 + b"\x00\x01IM")
        for name, (frames, note) in zip(("traindata", "validdata", "testdata"), cells):
            values = 8 * frames * 88
            inner = (_mat_element(6, struct.pack("<II", 6, 0)) + _mat_element(5, struct.pack(
                "<ii", frames, 88)) + _mat_element(1, b"") + struct.pack("<II", 9, values))
            body = (_mat_element(6, struct.pack("<II", 1, 0)) + _mat_element(5, struct.pack(
                "<ii", 1, 1)) + _mat_element(1, name.encode()) + struct.pack("<II", 14, len(inner)
                                                                               + values) + inner)
            z = zlib.compressobj(9)
            out = [z.compress(struct.pack("<II", 14, len(body) + values) + body)]
            column = np.zeros([frames, 88])
            if note is not None and frames <= 1000:
                column[:, note] = 1.0
                out.append(z.compress(column.T.tobytes()))  # MATLAB stores column-major.
            else:
                chunk = bytes(1 << 24)
                for start in range(0, values, len(chunk)):
                    out.append(z.compress(chunk[: min(len(chunk), values - start)]))
            data = b"".join(out) + z.flush()
            f.write(struct.pack("<II", 15, len(data)) + data)


LOAD = ("import sys; from avrnn_tf.data import pianoroll\n"
        "try:\n    pianoroll.load_rolls(sys.argv[1])\n"
        "except pianoroll.DataError as e:\n    print(e); sys.exit(2)\n")


@pytest.mark.parametrize("kind", ["shared_pickle", "zlib_mat"])
def test_item3_pianoroll_memory_is_bounded(tmp_path, kind):
    """A 2 KB pickle of 3 * 10^6 shared frames (1 GB of rolls) and a 1 MB zlib .mat inflating to
    845 MB of float64 (1.5 GB peak on the old code) are refused while being read."""
    import pickle

    from avrnn_tf.data import pianoroll

    if kind == "shared_pickle":
        sequence = [[60, 64]] * 3000
        path = str(tmp_path / "shared.pickle")
        with open(path, "wb") as f:
            pickle.dump({"train": [sequence] * 1000, "valid": [sequence], "test": [sequence]}, f)
        expected = "holds 3006000 frames, more than the bound of 1000000 (336 MB as float32 rolls)"
    else:
        path = str(tmp_path / "bomb.mat")
        _write_compressed_mat(path, [(1_200_000, None), (4, 40), (4, 40)])
        expected = "its variables inflate to more than 672 MB, the size of 1000000 frames"
    assert os.path.getsize(path) < 2 ** 20
    proc, peak = _peak_rss_mb(LOAD, path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expected in proc.stdout and "config.data.max_pianoroll_frames" in proc.stdout
    assert peak < PIANOROLL_PEAK_MB, f"peak RSS {peak:.0f} MB"
    # The bound is exact and the config field raises it (small files: nothing big is built).
    small = str(tmp_path / f"small{os.path.splitext(path)[1]}")
    if kind == "shared_pickle":
        with open(small, "wb") as f:
            pickle.dump({"train": [[[61]] * 3], "valid": [[[62]]], "test": [[[63]]]}, f)
    else:
        _write_compressed_mat(small, [(3, 40), (1, 41), (1, 42)])
    with pytest.raises(pianoroll.DataError, match="5 frames, more than the bound of 4"):
        pianoroll.load_rolls(small, max_frames=4)
    rolls = pianoroll.load_rolls(small, max_frames=5)
    assert [len(r) for s in pianoroll.SPLITS for r in rolls[s]] == [3, 1, 1]
    assert rolls["valid"][0][0, 41] == 1 and rolls["valid"][0].sum() == 1


# ------------------------------------------------------- item 10: silently accepted audio
def _damaged_audio(root):
    """Six good WAVs plus: a 0.25 s WAV whose header claims 10 h, a WAV cut mid-data, a float WAV
    at 1e30 and one at 3 (outside [-1, 1] at a plausible scale)."""
    import struct

    h.make_wav_dir(root, n=6, rate=8000)
    liar = h.write(os.path.join(root, "liar.wav"), h.tone(0.25, 8000, seed=9), 8000, subtype="PCM_16")
    data = bytearray(h.read_bytes(liar))
    at, claimed = data.find(b"data"), 10 * 3600 * 8000 * 2
    data[at + 4:at + 8] = struct.pack("<I", claimed)
    data[4:8] = struct.pack("<I", claimed + at - 4)
    with open(liar, "wb") as f:
        f.write(data)
    cut = h.write(os.path.join(root, "cut.wav"), h.tone(0.5, 8000, seed=8), 8000, subtype="PCM_16")
    whole = h.read_bytes(cut)
    with open(cut, "wb") as f:
        f.write(whole[:44 + 2 * 3000])  # 3000 of the 4000 samples the header announces.
    h.write(os.path.join(root, "huge.wav"), h.tone(0.3, 8000, seed=7) * 1e30, 8000, subtype="FLOAT")
    h.write(os.path.join(root, "hot.wav"), h.tone(0.3, 8000, seed=6) * 10, 8000, subtype="FLOAT")


def test_item10_damaged_audio_is_warned_or_refused(tmp_path):
    """All four were read silently: now the truncated ones and the hot one are used with a
    warning in the run log and the report, and the 1e30 one is refused."""
    data, work = str(tmp_path / "data"), str(tmp_path / "work")
    _damaged_audio(data)
    args = ["--config=configs/vrnn_gauss.py:tiny", f"--workdir={work}", f"--config.data.path={data}",
            "--config.data.frame_size=80", "--config.train.steps=2", "--config.train.eval_every=2",
            "--config.train.audio_every=0", "--config.train.num_final_samples=0", "--progress=none"]
    proc = run_cli("avrnn_tf.train", *args, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "1 of 10 files" in proc.stderr and "huge.wav: samples reach 3.25e+29, beyond any " \
        "audio scale" in proc.stderr and "liar.wav" not in proc.stderr
    proc = run_cli("avrnn_tf.train", *args, "--config.data.skip_bad_files=True", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warned = {"liar.wav": "header claims 288000000 samples (3.6e+04 s) but the file holds 2000 "
                          "(0.25 s): cut short or a wrong header",
              "cut.wav": "header claims 4000 samples (0.5 s) but the file holds 3000 (0.375 s)",
              "hot.wav": "samples reach 3.33, outside [-1, 1]"}
    assert "warning: 3 of 10 file(s)" in proc.stdout and "skipped 1 of 10" in proc.stdout
    report = h.read_text(os.path.join(work, "skipped_files.txt"))
    assert "1 file(s)" in report and "were skipped, 3 used with a warning" in report
    for name, reason in warned.items():
        assert f"{name}: warning (file used): {reason}" in proc.stdout
        assert f"{name}\twarning (file used): {reason}" in report
    assert "huge.wav\tsamples reach" in report and "{'train': 8, 'valid': 1, 'test': 0}" in proc.stdout


# ------------------------------------------------------- item 8: a soak that kills mid-training
def test_item8_soak_kills_mid_training(tmp_path):
    """The soak slept a fixed 1-8 s from launch, shorter than start-up here: every kill hit
    start-up (checkpoint step 0) and it passed. Now kills are timed from the first logged step."""
    import json

    proc = run_cli("avrnn_tf.experiments.soak", "--cycles=2", "--steps=300", "--checkpoint_every=5",
                   "--max_delay=1.5", f"--workdir={tmp_path / 'soak'}", timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["kills"] == 2 and summary["kills_mid_training"] == 2, summary
    assert all(step > 0 for step in summary["steps_logged_at_each_kill"]), summary
    assert summary["final_weights_equal_uninterrupted"] and not summary["corrupt_checkpoints"]
    assert max(summary["checkpoint_steps_after_each_kill"]) > 0, summary


# ------------------------------------------------------- item 6: SavedModel memory bound
def test_item6_saved_model_calls_honour_the_memory_bound(tf, tmp_path):
    """score(K=1000, T=1342) peaked at 7.2 GB, sample(4096, 327) at ~4 GB, reconstruct had no
    bound, and 2**32 + 1 sequences wrapped to 1. A model exported with --max_memory_mb=64 must
    run every function at 90% of that bound within 64 MiB of peak-RSS growth (measured in a fresh
    process) and refuse 110% of it, and the old attacks, with the bound in the message."""
    import json
    import subprocess
    import sys

    from avrnn_tf import loop
    from conftest import PROJECT_ROOT, load_config_file

    work, saved = str(tmp_path / "work"), str(tmp_path / "saved")
    config = load_config_file("vrnn_gauss.py", "tiny")
    config.train.update(steps=2, num_final_samples=0)
    config.data.synthetic_utterances = 12
    loop.train_and_evaluate(config, work, verbose=0)
    proc = run_cli("avrnn_tf.export", f"--workdir={work}", f"--export_dir={saved}",
                   "--max_memory_mb=64", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    probe = subprocess.run([sys.executable, os.path.join(PROJECT_ROOT, "tests", "memory_probe.py"),
                            saved, os.path.join(PROJECT_ROOT, "export", "generate_audio.py")],
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["bound_mb"] == 64 and 0 < result["grown_mb"] < 64, result
    for fn, message in {**result["refused"], **result["attacks"]}.items():
        assert message and "the memory bound of 64 MiB" in message, (fn, message)
    assert result["int32"] == "num_samples=4294967297: expected an int32 integer from 1 to 2147483647"
