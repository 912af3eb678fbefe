"""Load: many short trials complete, the overheads per trial are measured, and the driver's memory stays bounded.

The full study (200 trials, 1 s budgets, 2 at a time) is slow and lives in benchmarks/bench_load.py, which this
test runs; the sink's own memory bound (independent of the rows written) is checked fast with tracemalloc.
"""

from __future__ import annotations

import importlib.util
import tracemalloc

import pytest

from study.results.sink import ParquetSink
from tests.reliability.helpers import REPO
from tests.reliability.test_storage_faults import _metric
from wt_base.storage import resolve


def _bench():
    spec = importlib.util.spec_from_file_location("bench_load", REPO / "benchmarks" / "bench_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _retained_after(sink: ParquetSink, rows: int, trials: int) -> int:
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    step = 0
    for flush in range(rows // 500):
        for i in range(500):
            step += 1
            sink.add_metric(_metric(f"trial_{i % trials}", step // trials + flush * 10_000, attempt=1))
        sink.flush()
    retained = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return retained


def test_sink_memory_does_not_grow_with_rows(tmp_path):
    """After its flushes the sink holds one counter per (trial, attempt), not the rows: 10x the rows, about the
    same memory."""
    small = _retained_after(ParquetSink(resolve(str(tmp_path / "a")), "load"), 1_000, 20)
    large = _retained_after(ParquetSink(resolve(str(tmp_path / "b")), "load"), 10_000, 20)
    assert large < small + 256 * 1024, (small, large)


@pytest.mark.slow
def test_200_short_trials_complete_with_bounded_driver_memory(ray_tmp, tmp_path, excerpt):
    figures = _bench().run_load(200, 1.0, 2, storage=str(tmp_path / "results"), ray_temp_dir=ray_tmp, data=excerpt)
    print(figures)
    assert figures["exit_code"] == 0
    assert figures["trials"] == figures["completed"] == 200
    assert figures["sink_s_per_trial"] < 0.5
    # Tune keeps a Trial object (config, last result) per trial in the driver: ~0.3 MB per trial measured here
    # (200 trials: 426 -> 474 MB after the first 20%). Rows grow with trials in this study, so their share is
    # bounded by test_sink_memory_does_not_grow_with_rows; here the driver's total growth must stay modest.
    assert figures["rss_end_mb"] - figures["rss_at_20pct_rows_mb"] < 300
    assert figures["rss_growth_bytes_per_trial_after_20pct"] < 1.5 * 2**20
