#!/usr/bin/env bash
# The shipped calibration (data/calibration/study-v2.2): calibration v2's units, with each unit that a learning
# curve retrained (studies/budgets_v3.py) replaced by one unit per budget of its curve. No model is loaded.
# Then: python studies/publish_calibration.py (docs/study.md and docs/prediction.md tables; the README quotes them).
set -euo pipefail
cd "$(dirname "$0")/.."
V2=docs/results/calibration-v2
OUT=data/calibration/study-v2.2
lexprobe=${LEXPROBE:-.venv/bin/lexprobe}
$lexprobe correlate --items $V2/items.csv.gz --tasks $V2/tasks.csv \
  --curves docs/results/study-v3-smollm2 ${EXTRA_CURVES:-} --out "$OUT" --no-figures --overwrite --quiet
gzip -n -f "$OUT/items.csv"
