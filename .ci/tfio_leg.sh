#!/usr/bin/env bash
# CI leg 2: the tensorflow-io stack (DESIGN.md section 6). tensorflow-io 0.37.1 is its last release
# and is built for TF 2.16 only, so this leg uses a separate virtual environment with
# TF 2.16.2 + TFP 0.24.0 + tf-keras 2.16 + tensorflow-io 0.37.1 + numpy < 2, installs the package
# with --no-deps on top, checks that a tensorflow-io op really runs, then runs the data tests and
# one short end-to-end prepare + train. Called by .ci/run; also runnable by hand:
#   bash .ci/tfio_leg.sh                     (fresh venv in a temp dir)
#   TFIO_VENV=/tmp/tfio bash .ci/tfio_leg.sh (reuse / keep a venv)
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)

SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
VENV_DIR="${TFIO_VENV:-$SCRATCH/venv}"
if [ ! -x "$VENV_DIR/bin/python" ]; then
    python3 -m venv "$VENV_DIR"
fi
# shellcheck disable=SC1091
. "$VENV_DIR/bin/activate"
python -m pip install --quiet --upgrade pip
# The stack tensorflow-io 0.37.1 was built against, plus the package's other dependencies at
# versions that accept numpy 1.x (requirements-tfio.txt), and the test tools.
python -m pip install --quiet -r requirements-tfio.txt \
    "pytest==9.2.0" "pytest-xdist==3.8.0" "hypothesis==6.168.3"
python -m pip install --quiet --no-deps -e .
python -m pip list --format=freeze | grep -iE '^(tensorflow|tensorflow-io|tensorflow-probability|tf[-_]keras|keras|numpy|scipy|soundfile|ml[-_]dtypes)=' || true
echo "tfio leg: install took $(( $(date +%s) - START )) s"

# tensorflow-io must be usable (an op that runs, not just an import), or this leg tests nothing.
python - <<'PY'
from avrnn_tf.data import tfio_backend
ok, why = tfio_backend.probe()
print(f"tensorflow-io usable: {ok} ({why})")
if not ok:
    raise SystemExit("tfio leg: tensorflow-io does not run on this stack: " + why)
PY

export AVRNN_REQUIRE_TFIO=1   # The data tests then fail instead of skipping the tensorflow-io cases.
python -m pytest -q -n 2 tests/test_data_*.py

# One short end-to-end run: prepare FSDD with tensorflow-io decoding, then train from the prepared dir.
WORK="$SCRATCH/e2e"
python -m avrnn_tf.prepare --source=../shared/data/fsdd --format=fsdd --output="$WORK/prepared" \
    --sample_rate=8000 --max_files=120 --decoder=tfio
python -m avrnn_tf.train --config=configs/vrnn_gauss.py:tiny --workdir="$WORK/run" \
    --config.data.path="$WORK/prepared" --config.train.steps=20 --config.train.eval_every=10 \
    --progress=none
test -f "$WORK/run/data_stats.json"
echo "tfio leg: done in $(( $(date +%s) - START )) s"
