"""avrnn-bench: training, evaluation and generation speed, against the machine and the PyTorch peer.

  avrnn-bench --quick                          # a one-minute smoke run
  python -m avrnn_tf.bench [--quick] [--output=bench.json]

In one run it measures, each as the median (and min-max spread) of `--repeats` timed runs after a
warm-up:
  * the practical ceiling: GFLOP/s of a large float32 matmul;
  * training throughput (frames/s) of VRNN-Gauss and A-VRNN at the reference size (x=200, LSTM 512,
    MLP 256, z=64, batch 32, 40 frames) and at the tiny size, with the achieved GFLOP/s from an
    analytic FLOP count (`train_flops_per_frame`) as a share of the ceiling;
  * the same two trainings XLA-compiled (train.xla = on), as a ratio to the graph step;
  * ../shared/peers/torch_vrnn.py on the same configuration when torch is importable, as a ratio;
  * scaling: time per frame at 20/40/80/160/320 frames, batch 8/32/128 and LSTM 128-1024, and the
    memory training adds at each sequence length (resident-set high-water mark during the timed
    steps minus the RSS before the first step; each length in a fresh subprocess), with a linear
    fit.
The reference-size ratios that are targets (share of the matmul ceiling, A-VRNN / VRNN, XLA /
graph, ours / the peer) are also taken within each repeat, the runs interleaved ("paired"),
because this VM's speed changes over seconds.
  * IWAE-100 evaluation throughput and generation real-time factor (batch 1 and 16).
It prints a table and writes everything to a JSON file. Timing is never asserted by tests.

  python -m avrnn_tf.bench --profile=/tmp/prof [--profile_frames=160] [--profile_algorithm=avrnn]

records a tf.profiler trace of a few reference-size training steps instead and prints where the
step's time goes (recurrent loop forward/backward, the rest; top ops): see profiling.py.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

from avrnn_tf import cli
from avrnn_tf.tf_setup import import_tensorflow

FLAGS = flags.FLAGS


def define_flags():
    """Defined only when the program runs, so importing this module defines no global flags."""
    flags.DEFINE_integer("repeats", 3, "Timed repetitions of every measurement.")
    flags.DEFINE_integer("steps", 10, "Training steps per timed repetition.")
    flags.DEFINE_bool("quick", False, "Skip scaling, memory and the peer (a one-minute smoke run).")
    flags.DEFINE_string("output", "bench.json", "Where the JSON results are written.")
    flags.DEFINE_string("peer", "../shared/peers/torch_vrnn.py", "The PyTorch peer script.")
    flags.DEFINE_string("child", "", "Internal: run one training measurement in this process (JSON).")
    flags.DEFINE_string("profile", "", "Instead of the benchmark: record a tf.profiler trace of "
                        "reference-size VRNN-Gauss training steps in this directory and print "
                        "where the step's time goes (avrnn_tf/profiling.py).")
    flags.DEFINE_integer("profile_frames", 40, "Frames per sequence of the --profile run.",
                         lower_bound=1)
    flags.DEFINE_enum("profile_algorithm", "elbo", ["elbo", "avrnn"],
                      "elbo (VRNN-Gauss) or avrnn for --profile.")
    flags.DEFINE_bool("xla", False, "With --profile: the XLA-compiled step (train.xla=on).")
    flags.DEFINE_bool("transposes", False, "Instead of the benchmark: time the matmul variants of "
                      "a gradient (transpose_b vs a stored transpose vs transpose_a) at the "
                      "training step's shapes (the reason for cells.Dense).")


REFERENCE = dict(x_dim=200, h_dim=512, z_dim=64, mlp_units=256, batch=32, frames=40)
TINY = dict(x_dim=200, h_dim=32, z_dim=8, mlp_units=32, batch=8, frames=20)


def train_flops_per_frame(x_dim, h_dim, z_dim, mlp_units, **_):
    """Analytic FLOPs of one VRNN-Gauss training step per frame (forward x 3 for backward).

    Counts the matmuls of the default network (phi_x 2 layers, phi_z 1, heads with one hidden
    layer): 2 FLOPs per multiply-add; elementwise work is ignored (a few % at these sizes).
    """
    d, h, z, m = x_dim, h_dim, z_dim, mlp_units
    macs = (d * m + m * m          # phi_x
            + m * 4 * h            # phi_x -> LSTM gates (hoisted)
            + m * m                # phi_x -> posterior layer 1 (hoisted)
            + h * (4 * h + m)      # h_{t-1} -> LSTM gates | posterior layer 1 (fused)
            + m * 2 * z            # posterior output
            + z * m                # phi_z
            + m * 4 * h            # phi_z -> LSTM gates
            + h * m + m * 2 * z    # prior
            + (m + h) * m + m * 2 * d)  # emission
    return 3 * 2 * macs


def cpu_model():
    """The CPU's model name (Linux /proc/cpuinfo), or "unknown"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def summarize(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def matmul_gflops(tf, n=2048, repeats=3):
    a = tf.random.normal([n, n])
    f = tf.function(lambda a: tf.matmul(a, a), autograph=False)
    f(a).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            out = f(a)
        out.numpy()
        rates.append(10 * 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return summarize(rates)


def build_trainer(tf, size, algorithm="elbo", jit_compile=False):
    """The trainer avrnn-train would build for a VRNN-Gauss of `size` (train.xla on or off)."""
    from avrnn_tf import config as config_lib
    from avrnn_tf import loop
    from avrnn_tf import registry

    config = config_lib.base_config()
    config.model.update(h_dim=size["h_dim"], z_dim=size["z_dim"], mlp_units=size["mlp_units"])
    config.train.update(algorithm=algorithm, xla="on" if jit_compile else "off")
    config.adversarial.separate_batches = False
    network = registry.create_network(config_lib.model_spec(config, size["x_dim"]))
    return loop.build_trainer(config, network)


def _proc_status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak_rss():
    """Resets the kernel's RSS high-water mark (VmHWM) of this process; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class TimedTraining:
    """A trainer at `size` on a fixed synthetic batch, warmed up; `rate(steps)` times one `fit`.

    The batch is fixed so the input pipeline is not in the measurement (data/benchmark.py
    measures the pipeline).
    """

    def __init__(self, tf, size, algorithm="elbo", jit_compile=False):
        from avrnn_tf import rng
        from avrnn_tf.data import pipeline

        self.trainer = build_trainer(tf, size, algorithm, jit_compile)
        b, t, d = size["batch"], size["frames"], size["x_dim"]
        self.frames = b * t
        x = rng.normal([b, t, d], [1, 2])
        self.ds = pipeline.for_fit(tf.data.Dataset.from_tensors((x, tf.ones([b, t]))).repeat())

    def warm_up(self):
        self.trainer.fit(self.ds, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
        return self

    def rate(self, steps):
        start = time.perf_counter()
        self.trainer.fit(self.ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        return steps * self.frames / (time.perf_counter() - start)


def train_throughput(tf, size, algorithm="elbo", repeats=3, steps=10, jit_compile=False,
                     memory=None):
    """Frames/s of training at `size` (see TimedTraining), summarised over `repeats`.

    With `memory` (a dict), also records the resident memory (Linux /proc, MB): before the first
    step (`rss_before_mb`, network and optimizer built), and the high-water mark while the timed
    steps run (`train_peak_mb`, reset after the warm-up so graph building is not in it).
    `train_increment_mb` = train_peak_mb - rss_before_mb is what training adds: the traced graph
    and, growing with the sequence length, the activations kept for the backward pass.
    """
    timed = TimedTraining(tf, size, algorithm, jit_compile)
    before = _proc_status_kb("VmRSS")
    timed.warm_up()
    can_reset = memory is not None and before is not None and _reset_peak_rss()
    rates = [timed.rate(steps) for _ in range(repeats)]
    if can_reset:
        memory["rss_before_mb"] = before / 1024
        memory["train_peak_mb"] = _proc_status_kb("VmHWM") / 1024
        memory["train_increment_mb"] = memory["train_peak_mb"] - memory["rss_before_mb"]
    return summarize(rates)


def reference_comparisons(tf, repeats, steps, xla=True, peer=None):
    """The reference-size measurements whose ratios are targets, interleaved repeat by repeat.

    This VM's speed changes over seconds (other tenants): with the matmul ceiling, VRNN-Gauss,
    A-VRNN and their XLA variants timed one after the other in every repeat, each ratio is also
    taken within a repeat ("paired") and summarised, besides the ratio of the medians.
    """
    runs = {"elbo": TimedTraining(tf, REFERENCE, "elbo").warm_up(),
            "avrnn": TimedTraining(tf, REFERENCE, "avrnn").warm_up()}
    errors = {}
    if xla:
        for algorithm in ("elbo", "avrnn"):
            try:  # Recorded, not fatal: XLA is an option, not the default path.
                runs[algorithm + "_xla"] = TimedTraining(tf, REFERENCE, algorithm, True).warm_up()
            except Exception as e:  # noqa: BLE001 - any compile/run failure is a result here
                errors[algorithm + "_xla"] = f"{type(e).__name__}: {e}"[:500]
    rates = {name: [] for name in runs}
    ceiling, peer_rates = [], []
    for _ in range(repeats):
        ceiling.append(matmul_gflops(tf, repeats=1)["median"])
        for name, timed in runs.items():
            rates[name].append(timed.rate(steps))
        if peer is not None:
            peer_rates.append(peer(REFERENCE))
    flops = train_flops_per_frame(**REFERENCE)
    out = {"matmul_gflops": summarize(ceiling), "errors": errors}
    for name, values in rates.items():
        out[name] = summarize(values)
    out["paired_share_of_matmul"] = summarize(
        [e * flops / 1e9 / c for e, c in zip(rates["elbo"], ceiling)])
    out["paired_avrnn_over_vrnn_time"] = summarize(
        [e / a for e, a in zip(rates["elbo"], rates["avrnn"])])
    if peer_rates and None not in peer_rates:
        out["torch_peer"] = summarize(peer_rates)
        out["paired_speedup_over_torch_peer"] = summarize(
            [e / p for e, p in zip(rates["elbo"], peer_rates)])
    for algorithm in ("elbo", "avrnn"):
        if algorithm + "_xla" in rates:
            out[f"paired_{algorithm}_xla_speed"] = summarize(
                [x / g for x, g in zip(rates[algorithm + "_xla"], rates[algorithm])])
    return out


def child_measure(spec):
    """Runs in a subprocess: one training throughput + the process's peak RSS."""
    tf = import_tensorflow()
    size = dict(REFERENCE, **spec["size"])
    memory = {}
    result = train_throughput(tf, size, spec.get("algorithm", "elbo"), spec["repeats"],
                              spec["steps"], memory=memory)
    result.update(memory)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("CHILD " + json.dumps(result), flush=True)


def in_child(size, repeats, steps):
    out = subprocess.run([sys.executable, "-m", "avrnn_tf.bench",
                          "--child=" + json.dumps({"size": size, "repeats": repeats, "steps": steps})],
                         capture_output=True, text=True, check=True)
    line = [l for l in out.stdout.splitlines() if l.startswith("CHILD ")][-1]
    return json.loads(line[len("CHILD "):])


def linear_fit(xs, ys):
    """Least-squares y = a + b x: (a, b, largest |residual| / y)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    a = my - b * mx
    return a, b, max(abs(y - (a + b * x)) / y for x, y in zip(xs, ys))


def profile_training(tf, logdir, frames, algorithm, jit_compile, steps=5, size=REFERENCE):
    """Trains at `size` (the reference) under tf.profiler and returns profiling.summarize_trace."""
    from avrnn_tf import profiling

    size = dict(size, frames=frames)
    timed = TimedTraining(tf, size, algorithm, jit_compile).warm_up()
    tf.profiler.experimental.start(logdir)
    timed.trainer.fit(timed.ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    tf.profiler.experimental.stop()
    summary = profiling.summarize_trace(logdir, steps)
    summary["frames_per_s"] = timed.frames / (summary["step_ms"] / 1e3)
    summary["gflops"] = summary["frames_per_s"] * train_flops_per_frame(**size) / 1e9
    return summary


def iwae_throughput(tf, size, k=100, repeats=3):
    from avrnn_tf import bounds
    from avrnn_tf import config as config_lib
    from avrnn_tf import rng
    from avrnn_tf import registry

    config = config_lib.base_config()
    config.model.update(h_dim=size["h_dim"], z_dim=size["z_dim"], mlp_units=size["mlp_units"])
    network = registry.create_network(config_lib.model_spec(config, size["x_dim"]))
    b, t = 4, size["frames"]
    x = rng.normal([b, t, size["x_dim"]], [3, 4])

    @tf.function(autograph=False)
    def run(x):
        tiled = bounds.tile_batch(x, k)
        noise = rng.normal(network.noise_shape(tiled), [5, 6])
        return bounds.iwae(network.frame_terms(tiled, noise), tf.ones([b, t]), k)["iwae"]

    run(x).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x).numpy()
        rates.append(b * t / (time.perf_counter() - start))
    return summarize(rates)


def generation_rtf(tf, size, batch, seconds=2.0, sample_rate=16000, repeats=3):
    from avrnn_tf import config as config_lib
    from avrnn_tf import registry

    config = config_lib.base_config()
    config.model.update(h_dim=size["h_dim"], z_dim=size["z_dim"], mlp_units=size["mlp_units"])
    network = registry.create_network(config_lib.model_spec(config, size["x_dim"]))
    frames = int(seconds * sample_rate / size["x_dim"])
    sample = tf.function(network.sample, autograph=False)
    sample(batch, frames, tf.constant([1, 2])).numpy()
    rates = []
    for i in range(repeats):
        start = time.perf_counter()
        sample(batch, frames, tf.constant([1, 3 + i])).numpy()
        rates.append(seconds / (time.perf_counter() - start))
    return summarize(rates)


def transposed_products(tf, rounds=6):
    """GFLOP/s of the products a training step's gradients need, in each storage variant.

    For x [M, K] @ W [K, N]: the forward product, the input gradient dy [M, N] @ W^T computed with
    `transpose_b` (what autodiff emits) and with W^T stored, and the weight gradient x^T dy
    (`transpose_a`). Shapes: the loop's two products at batch 32 and the step's big stacked ones
    (B*T = 1280). Each variant runs `n` times inside one tf.function; the best of `rounds`
    interleaved rounds is reported (this VM's speed changes over seconds).
    """
    shapes = [(32, 512, 2304), (32, 256, 2048), (1280, 256, 2048), (1280, 768, 256),
              (1280, 256, 400), (1280, 200, 256)]
    variants = (("forward x @ W", lambda a, b: tf.matmul(a, b), "x", "w"),
                ("dx = dy @ W^T, transpose_b", lambda a, b: tf.matmul(a, b, transpose_b=True), "dy", "w"),
                ("dx = dy @ W^T, W^T stored", lambda a, b: tf.matmul(a, b), "dy", "wt"),
                ("dW = x^T @ dy, transpose_a", lambda a, b: tf.matmul(a, b, transpose_a=True), "x", "dy"))
    cases = []
    for m, k, n in shapes:
        reps = 200 if m == 32 else 20
        t = {"x": tf.random.normal([m, k]), "w": tf.random.normal([k, n]),
             "dy": tf.random.normal([m, n])}
        t["wt"] = tf.constant(tf.transpose(t["w"]).numpy())  # Stored, not folded by Grappler.
        for name, fn, a, b in variants:
            def loop(a, b, fn=fn, reps=reps):
                return tf.foldl(lambda acc, _: acc + fn(a, b)[0, 0], tf.range(reps),
                                initializer=tf.constant(0.0))
            f = tf.function(loop, autograph=False)
            f(t[a], t[b]).numpy()
            cases.append({"shape": [m, k, n], "variant": name, "f": f, "args": (t[a], t[b]),
                          "reps": reps, "best_s": float("inf")})
    for _ in range(rounds):
        for c in cases:
            start = time.perf_counter()
            c["f"](*c["args"]).numpy()
            c["best_s"] = min(c["best_s"], (time.perf_counter() - start) / c["reps"])
    return [{"shape": c["shape"], "variant": c["variant"], "us": 1e6 * c["best_s"],
             "gflops": 2 * c["shape"][0] * c["shape"][1] * c["shape"][2] / c["best_s"] / 1e9}
            for c in cases]


def torch_peer_once(size):
    """frames/s of one run of the PyTorch peer on `size`, or None without torch or the script."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    if not os.path.exists(FLAGS.peer):
        return None
    out = subprocess.run(
        [sys.executable, FLAGS.peer, "--x_dim", str(size["x_dim"]), "--h_dim", str(size["h_dim"]),
         "--z_dim", str(size["z_dim"]), "--mlp", str(size["mlp_units"]),
         "--batch", str(size["batch"]), "--frames", str(size["frames"]), "--steps", "10"],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["frames_per_s"]


def main(argv):
    del argv
    if FLAGS.child:
        return child_measure(json.loads(FLAGS.child))
    tf = import_tensorflow()
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    if FLAGS.transposes:
        rows = transposed_products(tf)
        for r in rows:
            print(f"{str(tuple(r['shape'])):<18} {r['variant']:<30} {r['us']:9.1f} us "
                  f"{r['gflops']:6.0f} GFLOP/s")
        with open(FLAGS.output, "w") as f:
            json.dump(rows, f, indent=2)
        return
    if FLAGS.profile:
        from avrnn_tf import profiling

        try:  # Before any training: a bad directory is found in a second, not after the trace.
            os.makedirs(FLAGS.profile, exist_ok=True)
            with open(os.path.join(FLAGS.profile, ".write_test"), "w"):
                pass
            os.remove(os.path.join(FLAGS.profile, ".write_test"))
        except OSError as e:
            raise app.UsageError(f"--profile={FLAGS.profile}: cannot write there ({e.strerror})")
        summary = profile_training(tf, FLAGS.profile, FLAGS.profile_frames, FLAGS.profile_algorithm,
                                   FLAGS.xla)
        print(f"{FLAGS.profile_algorithm} at the reference size, {FLAGS.profile_frames} frames"
              f"{', XLA' if FLAGS.xla else ''}: {summary['frames_per_s']:.0f} frames/s, "
              f"{summary['gflops']:.1f} GFLOP/s while traced")
        print(profiling.format_summary(summary))
        path = os.path.join(FLAGS.profile, "summary.json")
        with open(path, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"avrnn-bench: trace and {path} written (TensorBoard's profile plugin reads the trace)")
        return
    r, n = FLAGS.repeats, FLAGS.steps
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
           "cpu_model": cpu_model(), "tensorflow": tf.__version__,
           "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
           "repeats": r, "steps_per_repeat": n}
    ref = reference_comparisons(tf, r, n, peer=None if FLAGS.quick else torch_peer_once)
    res["reference_interleaved"] = ref
    res["matmul_gflops"] = ref["matmul_gflops"]
    ceiling = ref["matmul_gflops"]["median"]
    flops = train_flops_per_frame(**REFERENCE)
    label = {"elbo": "VRNN-Gauss", "avrnn": "A-VRNN"}
    rows = []
    for algorithm in ("elbo", "avrnn"):
        m = dict(ref[algorithm])
        m["gflops"] = m["median"] * flops / 1e9
        m["share_of_matmul"] = m["gflops"] / ceiling
        res[f"train_{algorithm}_reference"] = m
        rows.append((f"train {label[algorithm]} reference",
                     f"{m['median']:.0f} frames/s [{m['min']:.0f}-{m['max']:.0f}]",
                     f"{m['gflops']:.1f} GFLOP/s ({100 * m['share_of_matmul']:.0f}% of matmul)"))
    share = ref["paired_share_of_matmul"]
    rows.append(("share of matmul, paired per repeat", f"{100 * share['median']:.0f}%",
                 f"[{100 * share['min']:.0f}-{100 * share['max']:.0f}%] target >= 60%"))
    ratio = ref["paired_avrnn_over_vrnn_time"]
    res["avrnn_step_over_vrnn_step"] = ratio["median"]
    rows.append(("A-VRNN iteration / VRNN step (time)", f"{ratio['median']:.2f}x",
                 f"[{ratio['min']:.2f}-{ratio['max']:.2f}] paired; target <= 2.2x"))
    for algorithm in ("elbo", "avrnn"):
        key = f"train_{algorithm}_reference_xla"
        if algorithm + "_xla" not in ref:
            res[key] = {"error": ref["errors"].get(algorithm + "_xla", "not run")}
            rows.append((f"train {label[algorithm]} reference, XLA", "failed", res[key]["error"][:60]))
            continue
        m = dict(ref[algorithm + "_xla"])
        speed = ref[f"paired_{algorithm}_xla_speed"]
        m["speed_vs_graph"] = speed["median"]
        res[key] = m
        rows.append((f"train {label[algorithm]} reference, XLA",
                     f"{m['median']:.0f} frames/s [{m['min']:.0f}-{m['max']:.0f}]",
                     f"{speed['median']:.2f}x the graph step (paired)"))
    for algorithm in ("elbo", "avrnn"):
        m = train_throughput(tf, TINY, algorithm, r, n)
        m["gflops"] = m["median"] * train_flops_per_frame(**TINY) / 1e9
        res[f"train_{algorithm}_tiny"] = m
        rows.append((f"train {label[algorithm]} tiny",
                     f"{m['median']:.0f} frames/s [{m['min']:.0f}-{m['max']:.0f}]",
                     f"{m['gflops']:.1f} GFLOP/s"))
    if not FLAGS.quick:
        peer = ref.get("torch_peer")
        res["torch_peer_reference"] = peer
        if peer:
            speedup = ref["paired_speedup_over_torch_peer"]
            res["speedup_over_torch_peer"] = speedup["median"]
            rows.append(("PyTorch peer reference", f"{peer['median']:.0f} frames/s",
                         f"ours {speedup['median']:.2f}x [{speedup['min']:.2f}-{speedup['max']:.2f}] "
                         "paired (target >= 2x)"))
        else:
            rows.append(("PyTorch peer reference", "not run", "needs torch and --peer"))
        res["scaling_frames"] = {}
        for frames in (20, 40, 80, 160, 320):
            m = in_child({"frames": frames}, r, n if frames <= 160 else max(2, n // 2))
            res["scaling_frames"][frames] = m
            rows.append((f"reference, {frames} frames/seq", f"{1e6 / m['median']:.1f} us/frame",
                         f"training adds {m.get('train_increment_mb', float('nan')):.0f} MB "
                         f"(process peak {m['peak_rss_mb']:.0f} MB)"))
        sf = res["scaling_frames"]
        res["time_per_frame_160_over_40"] = sf[40]["median"] / sf[160]["median"]
        res["time_per_frame_160_over_40_best"] = sf[40]["max"] / sf[160]["max"]
        rows.append(("time/frame 160 vs 40 frames", f"{res['time_per_frame_160_over_40']:.2f}x",
                     f"(best runs {res['time_per_frame_160_over_40_best']:.2f}x) "
                     "target: within 20%"))
        lengths = [f for f, m in res["scaling_frames"].items() if "train_increment_mb" in m]
        if len(lengths) >= 3:
            a, b, worst = linear_fit(lengths, [res["scaling_frames"][f]["train_increment_mb"]
                                               for f in lengths])
            res["memory_fit"] = {"intercept_mb": a, "mb_per_frame": b, "worst_residual": worst}
            rows.append(("training memory vs frames", f"{a:.0f} MB + {b:.2f} MB/frame",
                         f"linear fit, worst residual {100 * worst:.1f}%"))
        res["scaling_batch"] = {}
        for batch in (8, 32, 128):
            m = in_child({"batch": batch}, r, n)
            res["scaling_batch"][batch] = m
            rows.append((f"reference, batch {batch}", f"{1e6 / m['median']:.1f} us/frame", ""))
        res["scaling_model"] = {}
        for h_dim in (128, 256, 512, 1024):  # LSTM state size; the other sizes as the reference.
            m = in_child({"h_dim": h_dim}, r, n)
            m["gflops"] = m["median"] * train_flops_per_frame(**dict(REFERENCE, h_dim=h_dim)) / 1e9
            res["scaling_model"][h_dim] = m
            rows.append((f"reference, LSTM {h_dim}", f"{1e6 / m['median']:.1f} us/frame",
                         f"{m['gflops']:.0f} GFLOP/s ({100 * m['gflops'] / ceiling:.0f}% of matmul)"))
    m = iwae_throughput(tf, REFERENCE, 100, r)
    res["iwae100_eval_reference"] = m
    rows.append(("IWAE-100 eval, reference", f"{m['median']:.0f} frames/s", "(x100 samples)"))
    for batch in (1, 16):
        m = generation_rtf(tf, REFERENCE, batch, repeats=r)
        res[f"generation_rtf_reference_batch{batch}"] = m
        rows.append((f"generation, reference, batch {batch}", f"{m['median']:.0f}x real time",
                     "per stream at 16 kHz"))
    rows.insert(0, ("large matmul (ceiling)", f"{ceiling:.1f} GFLOP/s",
                    f"{res['cpus']} CPUs, {res['cpu_model']}, TF {res['tensorflow']}"))
    width = max(len(a) for a, _, _ in rows)
    print("\n".join(f"{a:<{width}}  {b:<28} {c}" for a, b, c in rows))
    with open(FLAGS.output, "w") as f:
        json.dump(res, f, indent=2)
    print(f"avrnn-bench: wrote {FLAGS.output}")


def run():
    """Console-script entry point (avrnn-bench)."""
    define_flags()
    cli.run(main, "avrnn-bench")


if __name__ == "__main__":
    run()
