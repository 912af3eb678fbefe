"""Profiles of one machine measured at several times (before and after a study) pooled shape by shape."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from analysis.profiles import PROFILE_SCHEMA, read_profiles
from wt_base.schema import conform

SHAPE = dict(seq_len=1024, n_embd=256, n_layer=4, n_head=4, ffn_hidden=1024, batch_size=16, attention="sdpa")
SHAPE |= dict(dropout=0.1)


def test_one_machine_profiled_before_and_after_a_study_is_pooled_shape_by_shape(tmp_path):
    """Two measurements of a machine (a shape 20% slower in the second): the mean of their medians, the widest
    spread, the samples summed, and how far they moved apart; a shape only one of them has stays as it was."""
    before = dict(schema_version=1, device_name="cpu", dtype="float32", arch="standard", worker_interval=None)
    before |= SHAPE | dict(conv_kernel=None, compile="off", threads=1, torch_version="2.5.1", step_time_s_median=0.5)
    before |= dict(step_time_s_p10=0.45, step_time_s_p90=0.6, step_time_s_n=10, eval_time_per_token_s=1e-6)
    before |= dict(tokens_per_s=16 * 1024 / 0.5, mfu=0.3, source="bench at 10:00", measured_at=None)
    after = before | dict(step_time_s_median=0.6, step_time_s_p10=0.58, step_time_s_p90=0.7, step_time_s_n=30)
    after |= dict(eval_time_per_token_s=3e-6, mfu=0.25, source="bench at 10:30")
    other = after | dict(seq_len=256)
    for name, rows in (("a.parquet", [before]), ("b.parquet", [after, other])):
        pq.write_table(conform(rows, PROFILE_SCHEMA), tmp_path / name)
    pooled = read_profiles([tmp_path / "a.parquet", tmp_path, tmp_path / "b.parquet"])  # b.parquet reached twice
    assert len(pooled) == 2
    both, alone = pooled.iloc[0], pooled.iloc[1]
    assert both["step_time_s_median"] == pytest.approx(0.55) and both["step_time_s_n"] == 40
    assert (both["step_time_s_p10"], both["step_time_s_p90"]) == (0.45, 0.7)
    assert both["n_profiles"] == 2 and both["median_ratio"] == pytest.approx(1.2)
    assert (both["step_time_s_low"], both["step_time_s_high"]) == (0.5, 0.6)  # a run: between the two medians
    assert both["eval_time_per_token_s"] == pytest.approx(2e-6) and both["mfu"] == pytest.approx(0.15 / 0.55)
    assert both["tokens_per_s"] == pytest.approx(16 * 1024 / 0.55)
    assert both["source"] == "pooled from 2 profiles (the mean of their medians): bench at 10:00; bench at 10:30"
    assert both["profile_file"] == f"{tmp_path / 'a.parquet'}, {tmp_path / 'b.parquet'}"
    assert alone["seq_len"] == 256 and alone["n_profiles"] == 1 and alone["median_ratio"] == 1.0
    assert alone["step_time_s_median"] == 0.6
    assert (alone["step_time_s_low"], alone["step_time_s_high"]) == (0.58, 0.7)  # one profile: its p10-p90
