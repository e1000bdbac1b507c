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
V3=docs/results/study-v3-smollm2
if [ "${1:-}" = candidate ]; then  # every curve committed so far
  OUT=${OUT:-docs/results/calibration-v3-partial}
  CURVES=(--curves $V3 --items $ZOO/correlate/items.csv --tasks $ZOO/correlate/tasks.csv --curves $ZOO)
else  # the nine curves v2.2 was built from (the folder has more since)
  OUT=${OUT:-data/calibration/study-v2.2}
  CURVES=()
  for run in go/name-to-id go/synonym-to-name hgnc/alias_symbol-to-symbol hgnc/name-to-id hgnc/name-to-symbol \
    hgnc/previous_symbol-to-symbol hgnc/symbol-to-name hpo/name-to-id hpo/synonym-to-name; do
    CURVES+=(--curves $V3/$run)
  done
fi
$lexprobe correlate --items $V2/items.csv.gz --tasks $V2/tasks.csv \
  "${CURVES[@]}" ${EXTRA_CURVES:-} --out "$OUT" --no-figures --overwrite --quiet
gzip -n -f "$OUT/items.csv"
