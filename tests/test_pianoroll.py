"""Piano-roll readers: the restricted unpickler refuses code, the three forms agree, bad files
are named, and the Bernoulli bias starts at the logit of the training mean."""

import json
import os
import pickle

import numpy as np
import pytest

from conftest import SHARED_DATA

JSB = os.path.join(SHARED_DATA, "jsb")


@pytest.fixture(scope="module")
def pr():
    from avrnn_tf.data import pianoroll

    return pianoroll


class _Exploit:
    """Unpickling this calls os.system (what a malicious pickle does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(pr, tmp_path):
    from avrnn_tf.data.audio import DataError

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    payload = {"train": [[[60]]], "valid": [_Exploit(str(marker))], "test": []}
    path.write_bytes(pickle.dumps(payload, protocol=2))
    assert b"system" in path.read_bytes()
    with pytest.raises(DataError, match="refusing to unpickle the global"):
        pr.load_rolls(str(path))
    assert not marker.exists()
    # The ordinary unpickler would have run it (checks that the file really is an exploit).
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_restricted_unpickler_refuses_any_class(pr):
    from avrnn_tf.data.audio import DataError

    for obj in (np.zeros(3), {"train": complex(1, 2)}, {"a": __import__("collections").OrderedDict()}):
        with pytest.raises(DataError, match="refusing"):
            pr.safe_pickle_loads(pickle.dumps(obj))


def test_pickle_json_and_mat_agree_on_jsb(pr, tmp_path):
    with open(os.path.join(JSB, "jsb-chorales-quarter.json")) as f:
        notes = json.load(f)
    pickled = tmp_path / "JSB Chorales.pickle"
    pickled.write_bytes(pickle.dumps(notes, protocol=2))
    from_pickle = pr.load_rolls(str(pickled))
    from_json = pr.load_rolls(os.path.join(JSB, "jsb-chorales-quarter.json"))
    from_mat = pr.load_rolls(os.path.join(JSB, "JSB_Chorales.mat"))
    assert [len(from_mat[s]) for s in pr.SPLITS] == [229, 76, 77]
    for split in pr.SPLITS:
        for a, b, c in zip(from_pickle[split], from_json[split], from_mat[split]):
            assert a.shape[1] == 88
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)


def test_note_numbers_map_to_columns(pr):
    roll = pr.notes_to_roll([[21, 108], [], [60]], "x", 0)
    assert roll.shape == (3, 88)
    assert roll[0, 0] == 1 and roll[0, 87] == 1 and roll[0].sum() == 2
    assert roll[1].sum() == 0 and roll[2, 60 - 21] == 1 and roll.sum() == 3


def test_bad_files_are_named(pr, tmp_path):
    from avrnn_tf.data.audio import DataError

    bad_note = tmp_path / "bad.json"
    bad_note.write_text(json.dumps({"train": [[[60], [200]]], "valid": [], "test": []}))
    with pytest.raises(DataError, match=r"bad\.json.*MIDI note 200"):
        pr.load_rolls(str(bad_note))
    missing = tmp_path / "split.json"
    missing.write_text(json.dumps({"train": []}))
    with pytest.raises(DataError, match=r"split\.json.*expected a dict with keys"):
        pr.load_rolls(str(missing))
    with pytest.raises(DataError, match="does not exist"):
        pr.load_rolls(str(tmp_path / "nope.mat"))
    with pytest.raises(DataError, match="unknown extension"):
        pr.load_rolls(__file__)


def test_mean_logits_invert_to_the_training_mean(pr):
    rolls = [np.array([[1, 0] + [0] * 86, [1, 1] + [0] * 86], np.float32),
             np.array([[0, 1] + [0] * 86], np.float32)]
    logits = pr.mean_logits(rolls)
    mean = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(mean[:2], [2 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(mean[2:], 1e-4, rtol=1e-3)  # never-played notes: clipped, finite


def test_jsb_config_trains_with_the_bias_at_the_training_mean(tf, pr):
    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf.data import pipeline
    from conftest import load_config_file

    config = load_config_file("vrnn_gauss.py", "tiny,jsb")
    config.data.path = os.path.join(JSB, "JSB_Chorales.mat")
    config.data.max_files = 10
    corpus = pipeline.load_corpus(config_lib.validate(config).data)
    assert corpus.binary and len(corpus.train) == 10
    bias = loop.emission_bias_for(config, corpus)
    train = [pipeline.frame(v, 88) for _, v in corpus.train]
    np.testing.assert_allclose(1 / (1 + np.exp(-bias)), np.clip(np.concatenate(train).mean(0), 1e-4, 1 - 1e-4),
                               rtol=1e-5)
    from avrnn_tf import registry

    net = registry.create_network(config_lib.model_spec(config, 88, bias))
    np.testing.assert_allclose(net.emission_net.out.bias.numpy(), bias, rtol=1e-6)
    config.data.frame_size = 200
    from avrnn_tf.data.audio import DataError

    with pytest.raises(DataError, match="config.data.frame_size = 200"):
        pipeline.load_corpus(config.data)
