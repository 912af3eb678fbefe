"""Load: a study of many short trials on this machine; overhead of Ray Tune and of our Parquet sink per trial,
and the driver's memory over the study.

    python benchmarks/bench_load.py                 # 200 trials, 1 s budgets, 2 at a time
    python benchmarks/bench_load.py --trials 20     # a quick look
    (offline: add --data /path/to/tinyshakespeare.txt, or set WT_CACHE_DIR to a folder holding it)

Figures (printed, and returned by `run_load` for tests/reliability/test_load.py):
- tune_overhead_s_per_trial: (study wall time - summed trial wall time) / trials, the brief's definition; with
  trials running side by side this undercounts, so also slot_overhead_s_per_trial: (max_concurrent x study wall
  - summed trial wall time) / trials, the slot-seconds per trial not spent inside a trial (actor start-up,
  scheduling, result processing, our callbacks).
- sink_s_per_flush, sink_s_per_trial: ParquetSink.seconds_spent over its files written and over trials.
- driver RSS (this process runs the driver): at the start, after 20% of the evaluation points, at the end, and
  the growth per evaluation point and per trial after the first 20%.
- tune_state_bytes_per_trial: the size of Tune's last experiment state file over trials (each save writes all of
  it: study.tune.tuner.experiment_state_period_s).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

TINY_LOAD_SPEC = {
    "name": "load",
    "budget": {"kind": "seconds", "value": 1.0},
    "eval": {"every_s": 0.25, "val_tokens": 256},
    "checkpoint_every_s": 0.5,
    "train": {"batch_size": 2, "lr": 0.001},
    "model": {"n_embd": 16, "n_layer": 1, "n_head": 2, "dropout": 0.0},
    "axes": {"arch": ["standard"], "seq_len": [16]},
    "resources": {"cpus": 1},
    "max_concurrent": 2,
}


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run_load(
    trials: int = 200,
    budget_s: float = 1.0,
    max_concurrent: int = 2,
    storage: str | None = None,
    ray_temp_dir: str | None = None,
    data: str | None = None,
) -> dict:
    from study.config.specfile import parse_spec
    from study.tune import callbacks, runner
    from study.tune.plan import plan

    storage = storage or tempfile.mkdtemp(prefix="wt-load-")
    doc = {**TINY_LOAD_SPEC, "storage": storage, "seeds": trials, "max_concurrent": max_concurrent}
    doc["budget"] = {"kind": "seconds", "value": budget_s}
    if data:
        doc["data"] = {"corpus": os.path.abspath(data)}
    plan = plan(parse_spec(doc))

    sinks: list = []
    original_setup = callbacks.ResultsCallback.setup

    def setup(self, **info):  # keep a handle on the driver's sink to read its counters
        original_setup(self, **info)
        sinks.append(self.sink)

    samples: list[tuple[float, int, int]] = []  # (time, rss, rows written)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            rows = sinks[-1].rows_written if sinks else 0
            samples.append((time.monotonic(), rss_bytes(), rows))
            stop.wait(0.5)

    rss_start = rss_bytes()
    callbacks.ResultsCallback.setup = setup
    sampler = threading.Thread(target=sample, daemon=True)
    start = time.monotonic()
    sampler.start()
    try:
        code = runner.run_study(plan, ray_temp_dir=ray_temp_dir, print_fn=lambda *a: None)
    finally:
        wall = time.monotonic() - start
        stop.set()
        sampler.join()
        callbacks.ResultsCallback.setup = original_setup
    return _figures(plan, code, wall, sinks[-1], samples, rss_start, max_concurrent)


def _figures(plan, code, wall, sink, samples, rss_start, max_concurrent) -> dict:
    from analysis.load import load_study

    study = load_study(plan.location.path)
    n = len(study.trials)
    trial_wall = float(study.trials["wall_time_s"].sum())
    rows_end = max(s[2] for s in samples)
    early = next((s for s in samples if s[2] >= 0.2 * rows_end), samples[0])
    rss_end = samples[-1][1]
    later_rows = max(1, rows_end - early[2])
    return {
        "exit_code": code,
        "trials": n,
        "completed": int((study.trials["status"] == "completed").sum()),
        "evaluation_points": len(study.metrics),
        "study_wall_s": wall,
        "summed_trial_wall_s": trial_wall,
        "tune_overhead_s_per_trial": (wall - trial_wall) / n,
        "slot_overhead_s_per_trial": (max_concurrent * wall - trial_wall) / n,
        "sink_files": sink.files_written,
        "sink_rows": sink.rows_written,
        "sink_s_total": sink.seconds_spent,
        "sink_s_per_flush": sink.seconds_spent / max(1, sink.files_written),
        "sink_s_per_trial": sink.seconds_spent / n,
        "rss_start_mb": rss_start / 2**20,
        "rss_at_20pct_rows_mb": early[1] / 2**20,
        "rss_end_mb": rss_end / 2**20,
        "rss_peak_mb": max(s[1] for s in samples) / 2**20,
        "rss_growth_bytes_per_row_after_20pct": (rss_end - early[1]) / later_rows,
        "rss_growth_bytes_per_trial_after_20pct": (rss_end - early[1]) / max(1, 0.8 * n),
        "tune_state_bytes_per_trial": _state_bytes(plan.tune_location) / n,
        "study_dir": plan.location.path,
    }


def _state_bytes(tune) -> int:
    """Bytes of the newest Tune experiment state file under `tune` (a Location)."""
    import pyarrow.fs as pafs

    from study.tune.ray_internals import EXPERIMENT_STATE_PREFIX

    infos = tune.fs.get_file_info(pafs.FileSelector(tune.path))
    states = sorted((i.base_name, i.size) for i in infos if i.base_name.startswith(EXPERIMENT_STATE_PREFIX))
    return states[-1][1] if states else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--budget-s", type=float, default=1.0)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--ray-temp-dir", default=None)
    parser.add_argument("--data", default=None, help="a local text file (default: tinyshakespeare from the cache)")
    args = parser.parse_args()
    ray_tmp = args.ray_temp_dir or tempfile.mkdtemp(prefix="wtl", dir="/tmp")
    os.environ.setdefault("WT_RAY_TMPDIR", ray_tmp)
    figures = run_load(args.trials, args.budget_s, args.max_concurrent, ray_temp_dir=ray_tmp, data=args.data)
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:.4g}" if isinstance(value, float) else f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
