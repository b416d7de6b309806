#!/usr/bin/env bash
# Time per step of two avrnn-train workers on localhost (tiny VRNN-Gauss): the wall time of a
# 210-step run minus that of a 10-step run, over 200. Run from the repository root with
# avrnn-train on PATH. (BUILD_NOTES part 3, "Signals on several workers".)
set -euo pipefail
run() {
  rm -rf /tmp/mw_step_time
  local c0='{"cluster": {"worker": ["localhost:24456", "localhost:24457"]}, "task": {"type": "worker", "index": 0}}'
  local c1=${c0/\"index\": 0/\"index\": 1}
  local args="--config=configs/vrnn_gauss.py:tiny --workdir=/tmp/mw_step_time --strategy=multi_worker
    --progress=none --config.train.steps=$1 --config.train.eval_every=1000
    --config.train.checkpoint_every=1000 --config.train.audio_every=0 --config.train.num_final_samples=0"
  local start end
  start=$(date +%s.%N)
  TF_CONFIG="$c1" avrnn-train $args > /dev/null 2>&1 &
  TF_CONFIG="$c0" avrnn-train $args > /dev/null 2>&1
  wait
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
short=$(run 10)
long=$(run 210)
echo "10 steps ${short} s, 210 steps ${long} s, $(echo "($long - $short) * 1000 / 200" | bc -l | cut -c1-5) ms per step"
