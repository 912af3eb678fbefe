"""Storage faults: damaged result files are reported by name and skipped, unwritable storage is refused before
Ray starts, and a failing flush (full disk) leaves earlier files intact and keeps its rows for the next flush.

These build a small study's files directly with the sink (no Ray), so they run in seconds.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import subprocess
import tempfile
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import study.results.sink
from analysis.load import load_study
from study.cli import main
from study.config.specfile import dump_spec, parse_spec
from study.results.sink import ParquetSink
from study.tune import plan as runner
from study.tune.rows import pending_row
from tests.reliability.helpers import final_trials
from tests.study.conftest import TINY_SPEC, deep_update
from wt_base.storage import resolve, write_text_atomic

STEPS = (10, 20, 30)


def _metric(trial_id: str, step: int, attempt: int = 1) -> dict:
    return {
        "trial_id": trial_id,
        "step": step,
        "tokens": step * 128,
        "train_time_s": step / 10,
        "wall_time_s": step / 8,
        "flops": step * 1e6,
        "lr": 1e-3,
        "train_loss": 3.0 - step / 100,
        "val_loss": 3.1 - step / 100,
        "val_loss_seed": 3.2 - step / 100,
        "val_bpc": 4.0,
        "val_tokens": 1024,
        "tokens_per_s": 1000.0,
        "is_final": step == STEPS[-1],
        "attempt": attempt,
        "resumed_from_step": 0 if attempt == 1 else STEPS[-1],  # a later attempt resumed from the last step
    }


def make_study(storage: Path) -> Path:
    """A finished two-trial study written the way the driver writes it: one flush per trial."""
    spec = parse_spec(deep_update(TINY_SPEC, {"storage": str(storage)}))
    plan = runner.plan(spec)
    write_text_atomic(plan.location, runner.SPEC_FILE, dump_spec(plan.spec))
    sink = ParquetSink(plan.location, spec.name)
    for trial in plan.trials:
        sink.update_trial(trial.trial_id, **pending_row(trial, plan.spec))
    sink.flush()
    for trial in plan.trials:
        for step in STEPS:
            sink.add_metric(_metric(trial.trial_id, step))
        sink.update_trial(trial.trial_id, status="completed", steps=STEPS[-1], train_time_s=3.0, val_loss=2.8)
        sink.flush()
    return Path(plan.location.path)


def _files(study_dir: Path, kind: str) -> list[Path]:
    return sorted(p for p in (study_dir / "results" / kind).glob("*.parquet") if not p.name.startswith("."))


def _trial_ids(study_dir: Path) -> list[str]:
    return sorted(final_trials(study_dir).index)


def _digests(study_dir: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (study_dir / "results").rglob("*.parquet")}


DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(b"PAR1" + bytes(range(256)) * 8),
    "wrong columns": lambda p: pq.write_table(pa.table({"schema_version": [1], "colour": ["red"]}), p),
}


def _damaged_metrics_file(study_dir: Path, damage: str) -> tuple[Path, str]:
    """Damage the first metrics file; returns it and the trial whose rows it held."""
    victim = _files(study_dir, "metrics")[0]
    lost_trial = pq.read_table(victim).column("trial_id")[0].as_py()
    DAMAGE[damage](victim)
    return victim, lost_trial


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_metrics_file_is_named_and_skipped_by_the_reader_and_status(damage, tmp_path, capsys):
    study_dir = make_study(tmp_path / "results")
    victim, lost_trial = _damaged_metrics_file(study_dir, damage)
    name = f"results/metrics/{victim.name}"

    with pytest.warns(UserWarning, match=victim.name):
        study_ = load_study(str(study_dir))
    assert [s.split(":")[0] for s in study_.skipped_files] == [name]
    assert lost_trial not in set(study_.metrics.trial_id)  # skipped, not half-read
    assert len(study_.metrics) == len(STEPS)

    assert main(["status", str(study_dir)]) == 0
    out = capsys.readouterr().out
    assert f"warning: skipped unreadable results file {name}" in out


def test_analyze_names_the_skipped_file_in_its_output_and_report(tmp_path, capsys):
    """analyze reads through the reader tested with every damage kind above: one kind is enough here."""
    study_dir = make_study(tmp_path / "results")
    victim, _ = _damaged_metrics_file(study_dir, "truncated")
    name = f"results/metrics/{victim.name}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["analyze", str(study_dir), "--out", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"skipped unreadable file {name}" in out
    assert victim.name in (tmp_path / "report" / "report.md").read_text()


def test_damaged_trials_file_is_named_and_skipped(tmp_path, capsys):
    study_dir = make_study(tmp_path / "results")
    victim = _files(study_dir, "trials")[-1]  # the last state of the second trial
    DAMAGE["truncated"](victim)
    with pytest.warns(UserWarning, match=victim.name):
        study_ = load_study(str(study_dir))
    assert study_.skipped_files[0].startswith(f"results/trials/{victim.name}")
    # the trial's previous (running / pending) row stands: the study reads as partial, not as finished
    assert study_.partial
    assert main(["status", str(study_dir)]) == 0
    assert victim.name in capsys.readouterr().out


def test_resume_sink_skips_damaged_files_with_a_warning(tmp_path, caplog):
    study_dir = make_study(tmp_path / "results")
    DAMAGE["garbage"](_files(study_dir, "metrics")[0])
    sink = ParquetSink(resolve(str(study_dir)), "tiny")
    sink.load_existing()
    assert "skipping unreadable results file" in caplog.text
    ids = _trial_ids(study_dir)
    assert len(ids) == 2 and all(sink.trial_row(t) is not None for t in ids)


def test_results_of_a_newer_schema_are_refused_with_one_line(tmp_path, capsys):
    study_dir = make_study(tmp_path / "results")
    victim = _files(study_dir, "metrics")[0]
    table = pq.read_table(victim)
    table = table.set_column(0, "schema_version", pa.array([99] * len(table), pa.int32()))
    pq.write_table(table, victim)
    code = main(["analyze", str(study_dir), "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 2 and "schema_version 99" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report").exists()


# ---------------------------------------------------------------- failing flushes


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _connection_lost(*args, **kwargs):
    raise OSError(errno.ECONNRESET, "Connection reset by peer")


def test_failed_flush_keeps_earlier_files_and_its_rows_for_the_next_flush(tmp_path, monkeypatch):
    study_dir = make_study(tmp_path / "results")
    before = _digests(study_dir)
    sink = ParquetSink(resolve(str(study_dir)), "tiny")
    sink.load_existing()
    trial_id = _trial_ids(study_dir)[0]
    for step in (40, 50):
        assert sink.add_metric(_metric(trial_id, step, attempt=2))
    sink.update_trial(trial_id, status="running")

    real = study.results.sink.write_parquet_atomic
    monkeypatch.setattr(study.results.sink, "write_parquet_atomic", _disk_full)
    with pytest.raises(OSError, match="No space left"):
        sink.flush()
    assert sink.pending and _digests(study_dir) == before  # nothing changed, nothing half-written
    assert not list((study_dir / "results").rglob(".tmp-*"))
    assert not sink.add_metric(_metric(trial_id, 50, attempt=2))  # still deduplicated while buffered

    # the disk fills after the metrics file: it stays, only the trial rows wait for the next flush
    calls = []

    def fail_second(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            _disk_full()
        return real(*args, **kwargs)

    monkeypatch.setattr(study.results.sink, "write_parquet_atomic", fail_second)
    with pytest.raises(OSError):
        sink.flush()
    assert calls == ["metrics", "trials"] and sink.pending

    monkeypatch.setattr(study.results.sink, "write_parquet_atomic", real)
    sink.flush()
    assert not sink.pending
    assert all(_digests(study_dir)[p] == d for p, d in before.items())
    metrics = load_study(str(study_dir)).metrics
    assert sorted(metrics[metrics.trial_id == trial_id].step) == [*STEPS, 40, 50]
    assert not metrics.duplicated(["trial_id", "step"]).any()


class _Trial:
    def __init__(self, trial_id: str):
        self.config = {"trial": {"trial_id": trial_id}}
        self.error_file = None


def test_callback_survives_a_failing_flush_and_writes_the_rows_later(tmp_path, monkeypatch, caplog):
    """A lost connection to the store during the study must not end it: the driver keeps the rows and retries."""
    from study.tune.callbacks import ResultsCallback

    study_dir = make_study(tmp_path / "results")
    before = _digests(study_dir)
    callback = ResultsCallback(str(study_dir), "tiny", flush_every_s=0.0)
    callback.setup()
    trial = _Trial(_trial_ids(study_dir)[0])
    real = study.results.sink.write_parquet_atomic
    monkeypatch.setattr(study.results.sink, "write_parquet_atomic", _connection_lost)
    callback.on_trial_result(0, [], trial, {**_metric(trial.config["trial"]["trial_id"], 40, 2), "is_eval": True})
    callback.on_trial_complete(0, [], trial)
    assert "Connection reset" in caplog.text
    assert callback.sink.pending and _digests(study_dir) == before
    monkeypatch.setattr(study.results.sink, "write_parquet_atomic", real)
    callback.on_step_end(0, [])
    assert not callback.sink.pending
    metrics = load_study(str(study_dir)).metrics
    assert 40 in set(metrics.step)


def test_flush_still_failing_at_the_end_of_the_study_is_an_error(tmp_path, monkeypatch):
    from study.tune.callbacks import ResultsCallback

    study_dir = make_study(tmp_path / "results")
    callback = ResultsCallback(str(study_dir), "tiny", flush_every_s=0.0)
    callback.setup()
    trial = _Trial(_trial_ids(study_dir)[0])
    monkeypatch.setattr(study.results.sink, "write_parquet_atomic", _connection_lost)
    callback.on_trial_result(0, [], trial, {**_metric(trial.config["trial"]["trial_id"], 40, 2), "is_eval": True})
    with pytest.raises(OSError):
        callback.on_experiment_end([])


def test_a_full_disk_during_a_flush_stops_the_study_with_its_rows_kept(tmp_path, monkeypatch):
    """Before: a full disk was retried at every flush (12 tracebacks in 560 lines, the study never ending); now
    it stops the study (StorageFull, said in one line by the runner), earlier files intact, the rows kept."""
    from study.tune.callbacks import ResultsCallback
    from wt_base.storage import StorageFull

    study_dir = make_study(tmp_path / "results")
    before = _digests(study_dir)
    callback = ResultsCallback(str(study_dir), "tiny", flush_every_s=0.0)
    callback.setup()
    trial = _Trial(_trial_ids(study_dir)[0])
    monkeypatch.setattr(study.results.sink, "write_parquet_atomic", _disk_full)
    with pytest.raises(StorageFull, match=f"No space left on device at {study_dir}/results"):
        callback.on_trial_result(0, [], trial, {**_metric(trial.config["trial"]["trial_id"], 40, 2), "is_eval": True})
    assert callback.sink.pending and _digests(study_dir) == before


@contextlib.contextmanager
def tmpfs(size: str, *options: str):
    """A small tmpfs mounted for the test (needs root or CAP_SYS_ADMIN; the test is skipped otherwise)."""
    point = tempfile.mkdtemp(prefix="wtfs", dir="/tmp")
    opts = ",".join([f"size={size}", *options])
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", point], capture_output=True, check=False)
    if done.returncode != 0:
        Path(point).rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield Path(point)
    finally:
        subprocess.run(["umount", "-l", point], check=False)
        Path(point).rmdir()


def test_real_full_disk_during_a_flush_leaves_earlier_files_intact(tmp_path):
    with tmpfs("512k") as disk:
        study_dir = make_study(disk)
        before = _digests(study_dir)
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:  # fill the disk to the last block
                f.write(b"\0" * 512)
        sink = ParquetSink(resolve(str(study_dir)), "tiny")
        sink.load_existing()
        trial_id = _trial_ids(study_dir)[0]
        for step in range(100, 3000, 10):
            sink.add_metric(_metric(trial_id, step, attempt=2))
        with pytest.raises(OSError):
            sink.flush()
        assert _digests(study_dir) == before
        assert not list((study_dir / "results").rglob(".tmp-*")), "a failed flush left its temporary file"
        filler.unlink()
        sink.flush()
        assert len(load_study(str(study_dir)).metrics) == 2 * len(STEPS) + len(range(100, 3000, 10))


def test_unwritable_storage_is_refused_before_ray_starts(write_spec, capsys):
    import ray

    with tmpfs("64k", "ro") as disk:
        path = write_spec(storage=disk / "results")
        code = main(["run", str(path)])
        err = capsys.readouterr().err
        assert code == 2 and "not writable" in err and len(err.strip().splitlines()) == 1, err
        assert not ray.is_initialized()


def test_resume_on_storage_that_became_read_only_is_refused_before_ray_starts(capsys):
    import ray

    with tmpfs("1m") as disk:
        study_dir = make_study(disk)
        # a trial row back at "running", so the study needs resuming
        sink = ParquetSink(resolve(str(study_dir)), "tiny")
        sink.load_existing()
        sink.update_trial(_trial_ids(study_dir)[0], status="running")
        sink.flush()
        before = _digests(study_dir)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        code = main(["resume", str(study_dir)])
        err = capsys.readouterr().err
        assert code == 2 and "not writable" in err and len(err.strip().splitlines()) == 1, err
        assert not ray.is_initialized()
        assert _digests(study_dir) == before
