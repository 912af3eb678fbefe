"""The reader: last row per key, schema versions, corrupt files, missing or empty studies, URIs."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal
from synth import write_study

from analysis.load import load_study
from wt_base.errors import StudyError
from wt_base.schema import METRICS_SCHEMA, SCHEMA_VERSION, conform


def test_last_row_per_key_wins_and_duplicates_change_nothing(tmp_path):
    plain = load_study(str(write_study(tmp_path / "a")))
    duplicated = load_study(str(write_study(tmp_path / "b", duplicate=True)))
    assert len(plain.metrics) == 12 * 8 and len(plain.trials) == 12
    assert set(plain.trials["status"]) == {"completed"}  # the later "completed" rows replaced "running"
    assert_frame_equal(plain.metrics, duplicated.metrics)
    assert_frame_equal(plain.trials, duplicated.trials)
    assert not plain.partial and plain.skipped_files == []
    assert plain.name == "synth"


def test_a_rewritten_row_replaces_the_earlier_one(tmp_path):
    study = write_study(tmp_path)
    first = load_study(str(study)).metrics.iloc[0]
    row = {name: None if pd.isna(first[name]) else first[name] for name in METRICS_SCHEMA.names}
    row.update(val_loss=0.123, reported_at=None, schema_version=SCHEMA_VERSION)
    pq.write_table(conform([row], METRICS_SCHEMA), study / "results" / "metrics" / "999999-z.parquet")
    metrics = load_study(str(study)).metrics
    again = metrics[(metrics["trial_id"] == first["trial_id"]) & (metrics["step"] == first["step"])]
    assert again["val_loss"].tolist() == [0.123]
    assert len(metrics) == 12 * 8


def test_partial_study_is_marked(tmp_path):
    study = write_study(tmp_path, status_of=lambda i, c: "running" if i == 0 else "completed")
    loaded = load_study(str(study))
    assert loaded.partial
    assert (loaded.metrics["trial_id"] == "t00000").sum() == 4  # half its points so far


def test_newer_schema_version_is_an_error_naming_the_file(tmp_path):
    study = write_study(tmp_path)
    path = study / "results" / "metrics" / "000002-b.parquet"
    table = pq.read_table(path)
    table = table.set_column(0, "schema_version", conform([{"schema_version": 99}] * len(table), METRICS_SCHEMA)[0])
    pq.write_table(table, path)
    with pytest.raises(StudyError, match=r"000002-b\.parquet has schema_version 99"):
        load_study(str(study))


def test_corrupt_file_is_skipped_and_named(tmp_path):
    study = write_study(tmp_path, n_files=3)
    bad = study / "results" / "metrics" / "000002-b.parquet"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    (study / "results" / "metrics" / ".tmp-000004.parquet").write_bytes(b"half")  # temp name: never read
    with pytest.warns(UserWarning, match="000002-b.parquet"):
        loaded = load_study(str(study))
    assert len(loaded.skipped_files) == 1
    assert loaded.skipped_files[0].startswith("results/metrics/000002-b.parquet: ")
    assert 0 < len(loaded.metrics) < 12 * 8


def test_missing_or_empty_study_is_one_clear_error(tmp_path):
    with pytest.raises(StudyError, match="no study at .*nowhere: the directory does not exist"):
        load_study(str(tmp_path / "nowhere"))
    (tmp_path / "empty" / "results" / "metrics").mkdir(parents=True)
    with pytest.raises(StudyError, match="no results to analyse"):
        load_study(str(tmp_path / "empty"))


def test_uri_paths_are_read_through_pyarrow_fs(tmp_path):
    study = write_study(tmp_path)
    by_uri = load_study(study.as_uri())
    assert_frame_equal(by_uri.trials, load_study(str(study)).trials)


def test_where_restricts_the_analysis_to_one_setting_and_bad_flags_are_one_sentence(tmp_path):
    from analysis.load import restrict, where_conditions

    study = load_study(str(write_study(tmp_path, seq_lens=(64,), lrs=(1e-3, 2e-3))))
    shared = restrict(study, where_conditions(["lr=0.002"]))
    assert set(shared.trials["lr"]) == {0.002} and set(shared.metrics["trial_id"]) == set(shared.trials["trial_id"])
    assert len(shared.trials) == len(study.trials) // 2
    for bad, message in (("lr", "expected FIELD=VALUE"), ("speed=3", "FIELD one of arch"), ("lr=fast", "float")):
        with pytest.raises(StudyError, match=message):
            where_conditions([bad])
    with pytest.raises(StudyError, match="no trial of .* has lr=0.5"):
        restrict(study, where_conditions(["lr=0.5"]))


V2_TRIALS = ["init", "conv_kernel", "weight_decay", "warmup_frac", "seed_role", "equivalence_margin"]
V2_TRIALS += ["allow_shared_device"]
V3_TRIALS = ["id_scheme", "target_loss", "token_unit", "dtype", "compile_mode", "attention_backend", "threads"]
V2_METRICS, V3_METRICS = ["epochs", "train_eval_loss", "train_minus_val"], ["targets", "target_epochs", "eval_time_s"]


@pytest.mark.parametrize(("version", "dropped"), [(1, 2), (2, 3)], ids=["version 1", "version 2"])
def test_files_of_older_schema_versions_are_read_and_analysed(tmp_path, version, dropped):
    """A study written by an older release: its files lack the columns added since; they read as null."""
    from analysis.report import analyze

    study = write_study(tmp_path, seq_lens=(64,))
    trials_gone = V3_TRIALS + (V2_TRIALS if dropped == 2 else [])
    metrics_gone = V3_METRICS + (V2_METRICS if dropped == 2 else [])
    for kind, gone in (("trials", trials_gone), ("metrics", metrics_gone)):
        for path in (study / "results" / kind).glob("*.parquet"):
            table = pq.read_table(path)
            table = table.drop_columns([c for c in gone if c in table.column_names])
            index = table.column_names.index("schema_version")
            table = table.set_column(index, "schema_version", pa.array([version] * len(table), pa.int32()))
            pq.write_table(table, path)
    loaded = load_study(str(study))
    assert loaded.trials["dtype"].isna().all() and loaded.metrics["targets"].isna().all()
    a = analyze(loaded)
    assert len(a.verdicts) and a.verdicts["verdict"].notna().all()
