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
