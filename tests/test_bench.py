"""The benchmark's analytic FLOP count against the network it describes (no timing is tested)."""

import numpy as np


def test_flop_count_is_every_kernel_applied_once_per_frame(tf):
    from avrnn_tf import bench, models
    from avrnn_tf import registry

    size = dict(x_dim=200, h_dim=64, z_dim=16, mlp_units=32)
    net = registry.create_network(models.ModelSpec(kind="vrnn", emission="normal", **size))
    # Each weight matrix multiplies one vector per frame: one multiply-add per entry.
    macs = sum(int(np.prod(v.shape)) for v in net.trainable_variables if len(v.shape) == 2)
    assert bench.train_flops_per_frame(**size) == 3 * 2 * macs


def test_reference_size_matches_the_design_estimate(tf):
    from avrnn_tf import bench

    # ../shared/docs/DESIGN.md section 5: about 17.5 MFLOP per frame for a training step at the reference size.
    assert abs(bench.train_flops_per_frame(**bench.REFERENCE) / 1e6 - 17.5) < 0.1


def test_profile_of_real_training_steps_finds_the_loop_and_its_gradient(tf, tmp_path):
    """A real tf.profiler trace of tiny training steps, read back by profiling.py."""
    from avrnn_tf import bench, profiling

    summary = bench.profile_training(tf, str(tmp_path), frames=12, algorithm="elbo",
                                     jit_compile=False, steps=3, size=bench.TINY)
    parts = summary["parts"]
    assert set(parts) == set(profiling.PARTS)
    for part in profiling.PARTS:  # Every part of a training step ran some op.
        assert parts[part]["busy_ms"] > 0, part
        assert parts[part]["busy_ms"] <= summary["busy_ms"] + 1e-9
        assert parts[part]["op_ms"] >= parts[part]["busy_ms"] - 1e-9  # Union <= sum.
    assert summary["busy_ms"] <= summary["step_ms"] + 1e-9
    # 12 frames: the recurrent cell's matmul runs 12 times per step in the forward loop. The op
    # type after the colon is the kernel: "_MklMatMul" where TensorFlow uses oneDNN, "MatMul"
    # where it does not (measured on an AMD EPYC machine).
    full = profiling.summarize_trace(str(tmp_path), 3, top=10_000)["top_ops"]
    loop_matmuls = [op for op in full if op["part"] == "loop forward" and "cell" in op["name"]
                    and op["name"].rsplit(":", 1)[-1] in ("MatMul", "_MklMatMul")]
    assert loop_matmuls and all(op["calls"] == 12 for op in loop_matmuls)
    assert "loop forward" in profiling.format_summary(summary)


def test_op_parts_follow_tensorflow_names():
    from avrnn_tf import profiling

    assert profiling.op_part("a/rnn_1/while/body/_9/cell/MatMul:_MklMatMul") == "loop forward"
    assert profiling.op_part("g/rnn_1/while_grad/body/_4/gradients/x:AddN") == "loop backward"
    assert profiling.op_part("StatefulPartitionedCall/gradient_recurrence/MatMul") == "other backward"
    assert profiling.op_part("StatefulPartitionedCall/gate_x_1/MatMul") == "other forward"


def test_linear_fit_recovers_a_line_and_reports_departures():
    from avrnn_tf import bench

    a, b, worst = bench.linear_fit([20, 40, 80, 160], [110.0, 120.0, 140.0, 180.0])
    assert abs(a - 100) < 1e-9 and abs(b - 0.5) < 1e-12 and worst < 1e-12
    assert bench.linear_fit([20, 40, 80, 160], [100.0, 100.0, 100.0, 400.0])[2] > 0.2


def test_bench_refuses_an_unwritable_profile_directory_before_training(tmp_path):
    from conftest import run_cli

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = run_cli("avrnn_tf.bench", f"--profile={blocker / 'trace'}", timeout=120)
    assert result.returncode != 0
    assert f"--profile={blocker / 'trace'}: cannot write there" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
