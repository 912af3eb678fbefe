"""The Parquet sink: no duplicate writes, atomic files, and compaction that changes nothing a reader sees."""

from __future__ import annotations

import posixpath

import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

from analysis.load import load_study
from study.results.sink import ParquetSink
from wt_base.errors import StudyError
from wt_base.storage import list_parquet, resolve, write_atomic, write_local_atomic, write_text_atomic


def _metric(trial_id: str, attempt: int, step: int, resumed: int = 0) -> dict:
    return {
        "trial_id": trial_id,
        "attempt": attempt,
        "resumed_from_step": resumed,
        "step": step,
        "tokens": step * 10,
        "train_time_s": step / 10,
        "wall_time_s": step / 5,
        "val_loss": 3.0 - step / 100,
        "val_loss_seed": 3.0 - step / 100,
        "is_final": False,
    }


def _sink(tmp_path) -> ParquetSink:
    sink = ParquetSink(resolve(str(tmp_path / "study")), "study")
    for trial_id in ("a", "b"):
        sink.update_trial(trial_id, status="running", arch="worker")
    return sink


def test_re_reported_steps_of_an_attempt_are_not_written_twice(tmp_path):
    sink = _sink(tmp_path)
    assert sink.add_metric(_metric("a", 1, 10))
    assert not sink.add_metric(_metric("a", 1, 10))  # Tune repeating a result
    assert not sink.add_metric(_metric("a", 1, 5))
    assert sink.add_metric(_metric("a", 2, 10, resumed=5))  # a new attempt redoing the step
    sink.flush()
    reread = ParquetSink(resolve(str(tmp_path / "study")), "study")  # a restarted driver
    reread.load_existing()
    assert not reread.add_metric(_metric("a", 1, 10)) and reread.add_metric(_metric("a", 1, 11))


def test_compaction_keeps_every_row_and_what_readers_see(tmp_path):
    sink = _sink(tmp_path)
    for step in range(1, 6):
        sink.add_metric(_metric("a", 1, step * 10))
        sink.add_metric(_metric("b", 1, step * 10))
        sink.update_trial("a", status="running" if step < 5 else "completed", steps=step * 10)
        sink.flush()
    sink.add_metric(_metric("a", 2, 40, resumed=30))  # redoes step 40 after a resume from 30
    sink.flush()
    before = load_study(str(tmp_path / "study"))
    assert len(list_parquet(sink.results, "metrics")) == 6
    removed = sink.compact()
    assert removed == 6 + 5  # metrics files + trials files (the last flush had no trial change)
    assert len(list_parquet(sink.results, "metrics")) == 1 and len(list_parquet(sink.results, "trials")) == 1
    after = load_study(str(tmp_path / "study"))
    assert_frame_equal(before.metrics, after.metrics)
    assert_frame_equal(before.trials, after.trials)
    # rows written after compaction sort after the compacted file and win
    sink.update_trial("b", status="completed")
    sink.flush()
    assert load_study(str(tmp_path / "study")).trials.set_index("trial_id").loc["b", "status"] == "completed"


def _many_flushes(sink, n: int, first: int = 1) -> None:
    for step in range(first, first + n):
        sink.add_metric(_metric("a", 1, step * 10))
        sink.update_trial("a", status="running", steps=step * 10)
        sink.flush()


def test_compaction_bounds_its_files_and_never_merges_a_full_one_again(tmp_path):
    sink = _sink(tmp_path)
    _many_flushes(sink, 10)
    sink.compact(max_rows=4)
    sizes = [pq.read_metadata(p).num_rows for p in list_parquet(sink.results, "metrics")]
    assert sizes == [4, 4, 2]
    full = list_parquet(sink.results, "metrics")[:2]
    _many_flushes(sink, 2, first=11)  # two more small files: merged with the 2-row file, not with the full ones
    sink.compact(max_rows=4)
    files = list_parquet(sink.results, "metrics")
    assert files[:2] == full and [pq.read_metadata(p).num_rows for p in files] == [4, 4, 4]


def test_a_truncated_results_file_loses_only_its_rows_and_is_named(tmp_path):
    """Before: the sink compacted everything into one file, so truncating it lost every result, unnamed."""
    sink = _sink(tmp_path)
    _many_flushes(sink, 12)
    sink.compact(max_rows=4)
    damaged = list_parquet(sink.results, "metrics")[1]
    with open(damaged, "r+b") as f:
        f.truncate(100)
    study = load_study(str(tmp_path / "study"))
    assert sorted(study.metrics["step"]) == [10, 20, 30, 40, 90, 100, 110, 120]  # 4 of 12 lost, the rest read
    assert len(study.skipped_files) == 1 and study.skipped_files[0].startswith(
        f"results/metrics/{posixpath.basename(damaged)}"
    )


def test_a_compacted_file_that_does_not_read_back_is_dropped_and_its_inputs_kept(tmp_path, monkeypatch):
    sink = _sink(tmp_path)
    _many_flushes(sink, 3)
    before = list_parquet(sink.results, "metrics")
    monkeypatch.setattr(sink, "_read", lambda path, columns: None if "_compacted" in path else pq.read_table(path))
    assert sink.compact() == 0
    assert list_parquet(sink.results, "metrics") == before


def test_no_readable_rows_names_the_damaged_files(tmp_path):
    sink = _sink(tmp_path)
    _many_flushes(sink, 1)
    (path,) = list_parquet(sink.results, "metrics")
    with open(path, "r+b") as f:
        f.truncate(50)
    with pytest.raises(StudyError, match=f"could be read \\(skipped results/metrics/{posixpath.basename(path)}"):
        load_study(str(tmp_path / "study"))


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    location = resolve(str(tmp_path / "study"))
    write_text_atomic(location, "study.yaml", "old")

    def fail_halfway(f):
        f.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(location, "study.yaml", fail_halfway)
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == ["study.yaml"]
    assert (tmp_path / "study" / "study.yaml").read_text() == "old"
    write_local_atomic(tmp_path / "study" / "state.pt", lambda f: f.write(b"new"))
    assert (tmp_path / "study" / "state.pt").read_bytes() == b"new"


def test_sink_and_analysis_list_the_same_files(tmp_path):
    """One lister: temp files of atomic writes and other hidden or metadata names are never read."""
    sink = _sink(tmp_path)
    sink.add_metric(_metric("a", 1, 10))
    sink.flush()
    metrics = tmp_path / "study" / "results" / "metrics"
    for junk in (".tmp-0123-x.parquet", "_metadata.parquet", "notes.txt"):
        (metrics / junk).write_bytes(b"not parquet")
    listed = list_parquet(sink.results, "metrics")
    assert [posixpath.basename(p) for p in listed] == [p.name for p in metrics.glob("0*.parquet")]
    study = load_study(str(tmp_path / "study"))  # would skip (and name) an unreadable file it listed
    assert study.skipped_files == [] and len(study.metrics) == 1


def test_status_names_the_settings_a_trial_id_does_not_show():
    # init-ablation's trials differ by init only, which the id does not show: status printed them as twins
    import numpy as np
    import pandas as pd

    from study.cli.status import trial_settings

    trials = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d"],
            "init": ["torch", "nanogpt", "torch", "nanogpt"],
            "lr": [1e-3, 1e-3, 3e-4, 3e-4],
            "conv_kernel": [3, 3, np.nan, np.nan],  # standard trials have none: not a difference
            "attention": ["sdpa"] * 4,  # the same everywhere: not shown
        }
    )
    assert trial_settings(trials) == [
        "init torch, lr 0.001",
        "init nanogpt, lr 0.001",
        "init torch, lr 0.0003",
        "init nanogpt, lr 0.0003",
    ]
    assert trial_settings(trials[["trial_id", "attention"]]) == ["", "", "", ""]


def test_status_names_every_budget_its_trials_hold():
    """A scaling ladder's sizes carry their own budgets: status showed only the spec's default (5.6e10 of four)."""
    import pandas as pd

    from study.cli.status import budget_line
    from study.config.specfile import load_preset

    spec = load_preset("scaling-cpu-bracket")
    ladder = pd.DataFrame({"budget_value": [5.6e10, 1.8e12, 5.6e10, None]})
    assert budget_line(spec, ladder) == "Budget per trial: 2 budgets, 5.6e+10 FLOPs, 1.8e+12 FLOPs (flops)"
    one = pd.DataFrame({"budget_value": [5.6e10, 5.6e10]})
    assert budget_line(spec, one) == "Budget per trial: 5.6e+10 FLOPs (flops)"
