"""The benchmark's analytic FLOP count against the network it describes (no timing is tested)."""

import numpy as np


def test_flop_count_is_every_kernel_applied_once_per_frame(tf):
    from avrnn_tf import bench, models

    size = dict(x_dim=200, h_dim=64, z_dim=16, mlp_units=32)
    net = models.create_network(models.ModelSpec(kind="vrnn", emission="normal", **size))
    # Each weight matrix multiplies one vector per frame: one multiply-add per entry.
    macs = sum(int(np.prod(v.shape)) for v in net.trainable_variables if len(v.shape) == 2)
    assert bench.train_flops_per_frame(**size) == 3 * 2 * macs


def test_reference_size_matches_the_design_estimate(tf):
    from avrnn_tf import bench

    # DESIGN.md section 5: about 17.5 MFLOP per frame for a training step at the reference size.
    assert abs(bench.train_flops_per_frame(**bench.REFERENCE) / 1e6 - 17.5) < 0.1
