"""Generation speed of an exported avrnn_tf SavedModel: the real-time factor (TensorFlow + numpy).

  python export/benchmark_generation.py --saved_model=DIR [--batch_sizes=1,16] [--seconds=10]
      [--repeats=3] [--threads=0] [--verbose]

For each batch size N, after one warm-up call of the same size, times `sample(N, T, seed)` (T frames
= --seconds of audio per sequence) --repeats times and reports the best and median wall time and

  real-time factor per stream = seconds of audio in one sequence / wall time
  aggregate real-time factor  = N * (per-stream factor): audio seconds produced per second.

The machine's load average is printed with the numbers, since the timing depends on what else
runs. The last line is one JSON object with every number (for BUILD_NOTES / scripts).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np  # noqa: F401  (the consumer environment: tensorflow + numpy)

from generate_audio import import_tensorflow  # The sibling program (same directory).


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmark_generation.py", description=__doc__.split("\n")[0])
    p.add_argument("--saved_model", required=True)
    p.add_argument("--batch_sizes", default="1,16")
    p.add_argument("--seconds", type=float, default=10.0, help="Audio seconds per sequence.")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0,
                   help="intra/inter-op threads (0 = TensorFlow's default; 1 was fastest here).")
    p.add_argument("--verbose", action="store_true",
                   help="Show TensorFlow's start-up lines and every absl warning.")
    args = p.parse_args(argv)
    sizes = [int(v) for v in args.batch_sizes.split(",") if v.strip()]
    if not sizes or min(sizes) < 1 or args.seconds <= 0 or args.repeats < 1:
        p.error("--batch_sizes must be integers >= 1, --seconds > 0, --repeats >= 1")

    tf = import_tensorflow(args.threads, args.verbose)
    model = tf.saved_model.load(args.saved_model)
    meta = {k: v.numpy() for k, v in model.metadata().items()}
    rate, frame = int(meta["sample_rate"]), int(meta["frame_size"])
    num_frames = int(math.ceil(args.seconds * rate / frame))
    audio_seconds = num_frames * frame / rate
    config = json.loads(meta["config_json"].decode())["model"]
    load_before = os.getloadavg()
    results = []
    for n in sizes:
        model.sample(n, num_frames, 0)["waveform"].numpy()  # Warm-up of this size.
        times = []
        for r in range(args.repeats):
            start = time.perf_counter()
            model.sample(n, num_frames, r + 1)["waveform"].numpy()
            times.append(time.perf_counter() - start)
        best, median = min(times), statistics.median(times)
        results.append({"batch": n, "best_s": best, "median_s": median,
                        "rtf_per_stream_best": audio_seconds / best,
                        "rtf_per_stream_median": audio_seconds / median,
                        "rtf_aggregate_best": n * audio_seconds / best,
                        "frames_per_s_best": n * num_frames / best})
        print(f"batch {n:4d}: {audio_seconds:.2f} s of audio per sequence in {best:.3f} s (best of "
              f"{args.repeats}; median {median:.3f} s) -> {audio_seconds / best:.1f}x real time "
              f"per stream, {n * audio_seconds / best:.1f}x aggregate", flush=True)
    load_after = os.getloadavg()
    print(f"model {meta['model_kind'].decode()}/{meta['emission'].decode()} h_dim={config['h_dim']} "
          f"z_dim={config['z_dim']} mlp_units={config['mlp_units']} at {rate} Hz, frame {frame}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{os.cpu_count()} CPUs", flush=True)
    print(json.dumps({"saved_model": args.saved_model, "audio_seconds": audio_seconds,
                      "model": config, "load_before": load_before, "load_after": load_after,
                      "results": results}))


if __name__ == "__main__":
    sys.exit(main())
