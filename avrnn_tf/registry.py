"""`config.model.kind` -> the class implementing `protocol.SequenceModel` for it.

To add a kind: write its model file (a subclass of a network here, or any Keras layer that
implements protocol.SequenceModel), add one line to NETWORKS and its name to names.KINDS (the
names configs accept), and a configs/<kind>.py; tests/test_protocol.py then runs the conformance
checks on it.
"""

from avrnn_tf import models
from avrnn_tf import srnn
from avrnn_tf import storn
from avrnn_tf import zforcing

NETWORKS = {
    "rnn": models.RNNNetwork,
    "vrnn_i": models.VRNNINetwork,
    "vrnn": models.VRNNNetwork,
    "zforcing": zforcing.ZForcingNetwork,
    "srnn": srnn.SRNNNetwork,
    "storn": storn.STORNNetwork,
}


def network_class(kind):
    """The class of `kind`; ValueError naming the known kinds otherwise."""
    if kind not in NETWORKS:
        raise ValueError(f"model kind {kind!r} is not one of {', '.join(NETWORKS)}")
    return NETWORKS[kind]


def has_latent(kind):
    """Whether networks of `kind` have latent variables (every kind but `rnn`)."""
    return network_class(kind).latent


def create_network(spec):
    """Builds (and creates the variables of) the network described by the `models.ModelSpec`."""
    network = network_class(spec.kind)(spec, name=f"{spec.kind}_{spec.emission}")
    network.build()
    return network
