"""Time `wt-study analyze` on a synthetic study of 1,000 trials x 200 evaluation points (200,000 metric rows).

    python benchmarks/bench_analysis.py [--trials-scale N]

Generation is not timed; loading, every analysis frame, the six plots and the report are. Target: < 20 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "analysis")]

from synth import write_study  # noqa: E402

from analysis.load import load_study  # noqa: E402
from analysis.report import analyze, write_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200, help="evaluation points per trial")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        # 2 archs x (standard: 1, worker: 4 intervals) x 5 seq_lens x 4 sizes x 2 lrs x 5 seeds = 1,000 trials
        study_dir = write_study(
            Path(tmp),
            name="bench",
            archs=("standard", "worker"),
            intervals=(2, 4, 8, 16),
            seq_lens=(64, 128, 256, 512, 1024),
            n_embds=(64, 128, 192, 256),
            lrs=(3e-4, 1e-3),
            seeds=(0, 1, 2, 3, 4),
            budget_s=300.0,
            n_points=args.points,
            n_files=50,
        )
        generated = time.perf_counter() - started
        timings = {}
        t0 = time.perf_counter()
        study = load_study(str(study_dir))
        timings["load"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        analysis = analyze(study)
        timings["analyze"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        write_report(analysis, Path(tmp) / "out", fmt_="html")
        timings["plots + report"] = time.perf_counter() - t2
        total = time.perf_counter() - t0
    print(
        f"generated {len(study.trials)} trials x {args.points} points = {len(study.metrics)} metric rows "
        f"in {generated:.1f} s (not timed)"
    )
    print("  ".join(f"{k}: {v:.2f} s" for k, v in timings.items()))
    print(f"total analyze time: {total:.2f} s (target < 20 s)")


if __name__ == "__main__":
    main()
