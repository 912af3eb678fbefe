#!/usr/bin/env bash
# Regenerate the data behind docs/findings.md: run (or finish) the findings-cpu and init-ablation studies on
# this machine, analyse both into docs/findings/<preset>/ (plots shrunk to 128-colour PNGs), and time a training
# step of the findings' model shapes with `wt-study bench` (process CPU time, one thread) into
# docs/findings/bench.txt; docs/findings/init-ablation/init-table.md compares the two inits per arm.
#   bash benchmarks/findings_cpu.sh [STORAGE]     (default ./wt_results; about 2 h on 2 cores)
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
python benchmarks/init_ablation_table.py "$storage/init-ablation" > docs/findings/init-ablation/init-table.md
python - <<'PY'
from pathlib import Path
from PIL import Image
for png in Path("docs/findings").glob("*/*.png"):
    Image.open(png).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
PY
: > docs/findings/bench.txt
for k in 4 8; do
  wt-study bench --seq-lens 128 256 --batch-sizes 16 --n-embd 64 --n-layer 2 --n-head 2 --worker-interval "$k" \
    --attentions sdpa --no-dropout-row --steps 40 --warmup 5 >> docs/findings/bench.txt
done
echo "Updated docs/findings/*: now read the verdict tables there against the conclusions in docs/findings.md."
