#!/usr/bin/env bash
# Regenerate the data behind docs/findings.md on this machine: run (or finish) the findings-cpu-bracket,
# findings-cpu, init-ablation and scaling-cpu studies; profile this machine at findings-cpu's shapes (wt-study bench --for-study, wall clock,
# run it quiet) and re-time findings-cpu on that profile; analyse each study into docs/findings/<preset>/ (and
# findings-cpu once more at the shared lr 2e-3 of the earlier page); check projected timing against reality
# (benchmarks/timing_check.py); shrink the plots to 128-colour PNGs. The profile's table (ms/step, tokens/s, MFU
# per shape) is printed as it is measured: docs/findings.md quotes it.
#   bash benchmarks/findings_cpu.sh [STORAGE]     (default ./wt_results; about 9 h on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
storage="${1:-./wt_results}"
out=docs/findings
for preset in findings-cpu-bracket findings-cpu init-ablation scaling-cpu; do
  if [ -f "$storage/$preset/study.yaml" ]; then
    wt-study resume "$storage/$preset"
  else
    wt-study run --preset "$preset" --storage "$storage"
  fi
done
mkdir -p "$out"
wt-study bench --for-study "$storage/findings-cpu" --out "$out/cpu-profile.parquet" --steps 100 --warmup 5 --rounds 10 | tee "$out/cpu-profile.txt"
wt-study analyze "$storage/findings-cpu-bracket" --out "$out/findings-cpu-bracket" --timing "$out/cpu-profile.parquet"
wt-study analyze "$storage/findings-cpu" --out "$out/findings-cpu" --timing "$out/cpu-profile.parquet"
wt-study analyze "$storage/findings-cpu" --out "$out/findings-cpu-lr2e-3" --where lr=0.002
wt-study analyze "$storage/init-ablation" --out "$out/init-ablation"
python benchmarks/init_ablation_table.py "$storage/init-ablation" > "$out/init-ablation/init-table.md"
wt-study analyze "$storage/scaling-cpu" --out "$out/scaling-cpu"
python benchmarks/timing_check.py --out "$out/timing-check.md"
python benchmarks/findings_tables.py "$out" > "$out/tables.md"
python - <<'PY'
from pathlib import Path
from PIL import Image
for png in Path("docs/findings").glob("*/*.png"):
    Image.open(png).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
PY
echo "Updated $out/*: now read the verdict tables there against the conclusions in docs/findings.md."
