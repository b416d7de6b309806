"""Where a training step's time goes: a tf.profiler trace, summarised per part of the step.

`avrnn-bench --profile=DIR` records a trace of a few training steps with
`tf.profiler.experimental` (viewable in TensorBoard's profile plugin, if installed) and prints
`summarize_trace(DIR, steps)`: the wall time per step and how much of it each part of the step
keeps the CPU busy:

  loop forward    ops inside the recurrence's while loop (names contain "/while/")
  loop backward   ops inside its gradient loop ("while_grad")
  other backward  the rest of the gradient (names contain "gradient"), including the hoisted
                  weight gradients of SequenceNetwork.recurrence
  other forward   everything else (phi_x, heads, log-probs, the optimizer update)

"busy" is the union of the intervals in which at least one op of that part runs (on any of the
executor's threads), so parts that overlap in time can add up to more than the step. The op list
sums each op's own duration over threads (an op split over two threads counts twice).
"""

import collections
import glob
import os

PARTS = ("loop forward", "loop backward", "other backward", "other forward")


def op_part(name):
    """The part of the step an executor op named `name` belongs to (see the module docstring)."""
    if "while_grad" in name:
        return "loop backward"
    if "/while/" in name or name.startswith("while/"):
        return "loop forward"
    if "gradient" in name:
        return "other backward"
    return "other forward"


def _union_length(intervals):
    total, end = 0, None
    start = None
    for s, e in sorted(intervals):
        if end is None or s > end:
            if end is not None:
                total += end - start
            start, end = s, e
        else:
            end = max(end, e)
    return total + (end - start if end is not None else 0)


def read_op_events(logdir):
    """[(start_ps, end_ps, op name)] of every TensorFlow op executed in the trace under `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    if not paths:
        raise FileNotFoundError(f"no tf.profiler trace (*.xplane.pb) under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    events = []
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            if "tf_Compute" not in line.name:  # The executor's op threads.
                continue
            for ev in line.events:
                name = names[ev.metadata_id].name
                # Executor bookkeeping and oneDNN's inner parallel-for spans nest inside ops.
                if name.startswith("ExecutorState") or name == "ParallelFor":
                    continue
                start = line.timestamp_ns * 1000 + ev.offset_ps
                events.append((start, start + ev.duration_ps, name))
    if not events:
        raise ValueError(f"the trace under {logdir} holds no TensorFlow op events")
    return events


def summarize_trace(logdir, steps, top=15):
    """A dict with the step time and the busy time of each part, in ms per step, and the top ops.

    Args:
      logdir: where tf.profiler.experimental.start/stop wrote the trace.
      steps: the number of training steps the trace covers.
      top: how many ops (by summed duration) to list.
    """
    events = read_op_events(logdir)
    span = max(e for _, e, _ in events) - min(s for s, _, _ in events)
    per_step = lambda ps: ps / 1e9 / steps
    parts = collections.defaultdict(list)
    ops = collections.Counter()
    counts = collections.Counter()
    for s, e, name in events:
        parts[op_part(name)].append((s, e))
        ops[name] += e - s
        counts[name] += 1
    return {
        "steps": steps,
        "step_ms": per_step(span),
        "busy_ms": per_step(_union_length([(s, e) for s, e, _ in events])),
        "parts": {p: {"busy_ms": per_step(_union_length(parts[p])),
                      "op_ms": per_step(sum(e - s for s, e in parts[p]))} for p in PARTS},
        "top_ops": [{"name": n, "part": op_part(n), "ms": per_step(t), "calls": counts[n] / steps}
                    for n, t in ops.most_common(top)],
    }


def format_summary(summary):
    lines = [f"step {summary['step_ms']:.1f} ms (some op running {summary['busy_ms']:.1f} ms)"]
    for part in PARTS:
        p = summary["parts"][part]
        lines.append(f"  {part:<15} busy {p['busy_ms']:7.1f} ms   op time {p['op_ms']:7.1f} ms")
    lines.append("  top ops (ms per step summed over threads, calls per step):")
    for op in summary["top_ops"]:
        name = op["name"] if len(op["name"]) <= 90 else "..." + op["name"][-87:]
        lines.append(f"    {op['ms']:7.2f}  {op['calls']:6.1f}  {name}")
    return "\n".join(lines)
