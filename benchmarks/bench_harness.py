"""Harness efficiency of a real study (default: the smoke preset) on this machine.

Prints, from one run:
  - summed training time / summed trial wall time (target >= 85%),
  - time from the command to the first training step (upper bound: the first evaluation's arrival at the driver
    minus the training time before it; target <= 20 s),
  - the Parquet sink's time as a share of the study's wall time (target < 1%).

    python benchmarks/bench_harness.py [--preset smoke] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
import time
from datetime import datetime, timezone


class Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--keep", help="storage directory to keep the study in (default: a temp dir)")
    args = parser.parse_args()

    from analysis.load import load_study
    from study.cli import main as wt_study

    storage = args.keep or tempfile.mkdtemp(prefix="wt-bench-")
    ray_tmp = tempfile.mkdtemp(prefix="wtb", dir="/tmp")
    captured = io.StringIO()
    started_at = datetime.now(timezone.utc)
    start = time.perf_counter()
    with contextlib.redirect_stdout(Tee(sys.stdout, captured)):
        code = wt_study(["run", "--preset", args.preset, "--storage", storage, "--ray-temp-dir", ray_tmp])
    study_wall_s = time.perf_counter() - start
    if code != 0:
        print(f"the study failed (exit {code})")
        return code
    study = load_study(f"{storage}/{args.preset}")
    trials, metrics = study.trials, study.metrics
    train_s, wall_s = trials["train_time_s"].sum(), trials["wall_time_s"].sum()
    first = metrics.sort_values("reported_at").iloc[0]
    first_step_s = (first["reported_at"] - started_at).total_seconds() - first["train_time_s"]
    match = re.search(r"([\d.]+) s spent writing", captured.getvalue())
    sink_s = float(match.group(1)) if match else float("nan")

    print()
    print(f"trials                         {len(trials)}")
    print(f"study wall time                {study_wall_s:8.1f} s")
    print(f"summed training time           {train_s:8.1f} s")
    print(f"summed trial wall time         {wall_s:8.1f} s")
    print(f"harness efficiency             {train_s / wall_s:8.1%}   (training / trial wall time; target >= 85%)")
    print(f"command -> first training step {first_step_s:8.1f} s   (upper bound; target <= 20 s)")
    print(f"Parquet sink time              {sink_s:8.2f} s = {sink_s / study_wall_s:.2%} of the study (target < 1%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
