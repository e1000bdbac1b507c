#!/usr/bin/env bash
# The shipped calibration (data/calibration/study-v2.2): calibration v2's units, with each unit that a learning
# curve retrained (studies/budgets_v3.py) replaced by one unit per budget of its curve. No model is loaded.
# Then: python studies/publish_calibration.py (docs/study.md and docs/prediction.md tables; the README quotes them).
#
#   bash studies/make_calibration.sh            # data/calibration/study-v2.2, the shipped one
#   bash studies/make_calibration.sh candidate  # docs/results/calibration-v3-partial: the same units plus the
#                                               # zoo-v3 study on smollm2 (studies/zoo_v3.py: its items, tasks
#                                               # and learning curves); published in docs/prediction.md, not shipped
set -euo pipefail
cd "$(dirname "$0")/.."
V2=docs/results/calibration-v2
ZOO=docs/results/study-v3-zoo-smollm2
lexprobe=${LEXPROBE:-.venv/bin/lexprobe}
if [ "${1:-}" = candidate ]; then
  OUT=docs/results/calibration-v3-partial
  MORE=(--items $ZOO/correlate/items.csv --tasks $ZOO/correlate/tasks.csv --curves $ZOO)
else
  OUT=data/calibration/study-v2.2
  MORE=()
fi
$lexprobe correlate --items $V2/items.csv.gz --tasks $V2/tasks.csv \
  --curves docs/results/study-v3-smollm2 ${EXTRA_CURVES:-} "${MORE[@]}" --out "$OUT" --no-figures --overwrite --quiet
gzip -n -f "$OUT/items.csv"
