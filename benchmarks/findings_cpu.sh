#!/usr/bin/env bash
# Regenerate the data behind docs/findings.md: run (or finish) the findings-cpu and init-ablation studies on
# this machine, analyse both, and copy the reports and the plots into docs/findings/.
#   bash benchmarks/findings_cpu.sh [STORAGE]     (default ./wt_results; about 1.5 h on 2 quiet cores)
set -euo pipefail
cd "$(dirname "$0")/.."
storage="${1:-./wt_results}"
for preset in findings-cpu init-ablation; do
  if [ -f "$storage/$preset/study.yaml" ]; then
    wt-study resume "$storage/$preset"
  else
    wt-study run --preset "$preset" --storage "$storage"
  fi
  wt-study analyze "$storage/$preset" --out "docs/findings/$preset"
done
echo "Updated docs/findings/*: now read the verdict tables there against the conclusions in docs/findings.md."
