"""Time `wt-study analyze` (load + every analysis frame + plots and report) on a synthetic study, with peak memory.

    python benchmarks/bench_analysis.py [--trials-scale S] [--points P] [--keep DIR]
    python benchmarks/bench_analysis.py --study DIR     # measure an existing study (e.g. one written by --keep)

The study has 1,000 x S trials of P evaluation points each (1,000 x S x P metric rows; default 1,000 x 200).
S adds model depths: n_layer 2 .. S+1 on top of 2 archs x (standard, worker k=2,4,8,16) x 5 seq_lens x
4 widths x 2 learning rates x 5 seeds, so more trials means more cells, as in a real ladder. The 10-million-row
case of issue 32 is `--trials-scale 10 --points 1000` (10,000 trials of 1,000 points: many short trials, the
shape of this project's studies); `--points 10000` gives 1,000 long trials instead.

Generation is not timed and does not count towards the peak: the study is written first, then measured in a
fresh Python process (`--study`), which prints each stage's time and the process's peak RSS after it
(resource.getrusage ru_maxrss: the peak of the whole measuring process, imports included), and one markdown
table row for docs/performance.md. Target (issue 32): under 60 s and under 4 GB at 10M rows.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "analysis")]

TABLE_HEADER = (
    "| trials x points | metric rows | load s | analyze s | plots + report s | total s | peak RSS GB |\n"
    "| --- | --- | --- | --- | --- | --- | --- |"
)


def peak_rss_gb() -> float:
    """This process's peak resident set size so far (ru_maxrss is in KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def generate(root: Path, trials_scale: int, points: int) -> Path:
    """Write the synthetic study (tests/analysis/synth.py) under `root`; returns its directory."""
    from synth import write_study

    return write_study(
        root,
        name="bench",
        archs=("standard", "worker"),
        intervals=(2, 4, 8, 16),
        seq_lens=(64, 128, 256, 512, 1024),
        n_embds=(64, 128, 192, 256),
        n_layers=tuple(range(2, 2 + trials_scale)),
        lrs=(3e-4, 1e-3),
        seeds=(0, 1, 2, 3, 4),
        budget_s=300.0,
        n_points=points,
        n_files=50,
    )


def measure(study_dir: Path) -> None:
    """Load, analyse and write the report of `study_dir`, printing each stage's time and the peak RSS after it."""
    from analysis.load import load_study
    from analysis.report import analyze, write_report

    stages = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        study = load_study(str(study_dir))
        stages["load"] = (time.perf_counter() - t0, peak_rss_gb())
        t1 = time.perf_counter()
        analysis = analyze(study)
        stages["analyze"] = (time.perf_counter() - t1, peak_rss_gb())
        t2 = time.perf_counter()
        write_report(analysis, Path(tmp) / "out", fmt_="html")
        stages["plots + report"] = (time.perf_counter() - t2, peak_rss_gb())
        total = time.perf_counter() - t0
    n_trials, n_rows = len(study.trials), len(study.metrics)
    points = round(n_rows / max(1, n_trials))
    print(f"{n_trials:,} trials, {n_rows:,} metric rows (about {points:,} points per trial)")
    for name, (seconds, peak) in stages.items():
        print(f"  {name:15s} {seconds:7.2f} s   peak RSS so far {peak:5.2f} GB")
    print(f"  total           {total:7.2f} s   (target at 10M rows: under 60 s and under 4 GB)")
    cells = " | ".join(f"{seconds:.1f}" for seconds, _ in stages.values())
    print(TABLE_HEADER)
    print(f"| {n_trials:,} x {points:,} | {n_rows:,} | {cells} | {total:.1f} | {peak_rss_gb():.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-scale", type=int, default=1, help="1,000 x S trials (S model depths)")
    parser.add_argument("--points", type=int, default=200, help="evaluation points per trial")
    parser.add_argument("--keep", type=Path, help="write the study under this folder and keep it")
    parser.add_argument("--study", type=Path, help="measure this study directory (nothing is generated)")
    args = parser.parse_args()
    if args.trials_scale < 1 or args.points < 2:
        parser.error(f"--trials-scale {args.trials_scale} / --points {args.points}: expected S >= 1 and P >= 2.")
    if args.study is not None:
        measure(args.study)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        started = time.perf_counter()
        study_dir = generate(root, args.trials_scale, args.points)
        print(f"wrote {study_dir} in {time.perf_counter() - started:.1f} s (not timed)", flush=True)
        # a fresh process, so that neither generation's time nor its memory counts
        subprocess.run([sys.executable, __file__, "--study", str(study_dir)], check=True)  # noqa: S603 - our own


if __name__ == "__main__":
    main()
