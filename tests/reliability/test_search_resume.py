"""A TPE search study (both arms, 2 tune seeds, 2 test seeds, 3 settings per arm) is SIGKILLed mid-search (and,
under the slow marker, once its test seeds have started), resumed, and finishes with nothing run twice.

The killed driver saves Tune's experiment state only every 10 s (TUNE_GLOBAL_CHECKPOINT_S), so at the kill
Tune's saved trial list is behind the trial rows, as it is after any kill within its period: trials that started
since are unknown to it (the rebuilt search runs them again under the same ids) and trials that finished since
are unfinished there (the resumed scheduler ends them without running them). After the resume: every trial id
once and completed; per arm, 3 settings x 2 tune seeds and then the 2 test seeds at the setting the analysis
chooses on the tune seeds; no trial that had finished before the kill ran again; every row written before the
kill is still there.
"""

from __future__ import annotations

import pytest

from study.cli import main
from tests.reliability.helpers import final_trials, kill_driver_when, metric_keys, raw_rows
from wt_base.schema import FINISHED_STATUSES

SAMPLES = 3
TUNE_SEEDS = [100, 101]
SEEDS = [0, 1]
SEARCH = {
    "algorithm": "tpe",
    "samples": SAMPLES,
    "startup_samples": 2,
    "lr": {"distribution": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
}


def _moment(name: str, study_dir):
    """mid_search: 4 tune trials have finished (of 12); test_phase: a test seed's trial has started."""

    def reached() -> bool:
        if not list((study_dir / "results" / "trials").glob("*.parquet")):
            return False
        rows = final_trials(study_dir)
        if name == "test_phase":
            return bool(rows.seed_role.eq("test").any())
        return int((rows.status.isin(FINISHED_STATUSES) & rows.seed_role.eq("tune")).sum()) >= 4

    return reached


MOMENTS = [
    pytest.param("mid_search", marks=pytest.mark.integration),
    pytest.param("test_phase", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_tpe_search_killed_then_resumed_runs_nothing_twice(
    moment, write_spec, tmp_path, ray_tmp, capsys, no_ray_left
):
    pytest.importorskip("optuna", reason="the tpe search needs Optuna (pip install 'wt-study[search]')")
    spec_path = write_spec(
        budget={"kind": "steps", "value": 30},
        eval={"every_s": 0.0, "every_steps": 10, "val_tokens": 1024},
        search=SEARCH,
        tune_seeds=TUNE_SEEDS,
        seeds=SEEDS,
    )
    study_dir = tmp_path / "results" / "tiny"
    kill_driver_when(spec_path, ray_tmp, _moment(moment, study_dir), 400, f"the moment {moment}",
                     env={"TUNE_GLOBAL_CHECKPOINT_S": "10"})  # fmt: skip
    before = final_trials(study_dir)
    finished_before = set(before.index[before.status.isin(FINISHED_STATUSES)])
    raw_before = raw_rows(study_dir, "metrics")
    tune_phase = 2 * SAMPLES * len(TUNE_SEEDS)
    assert len(finished_before) < (tune_phase if moment == "mid_search" else tune_phase + 2 * len(SEEDS))

    code = main(["resume", str(study_dir), "--ray-temp-dir", ray_tmp + "b"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Resuming study tiny" in out

    rows = final_trials(study_dir)
    assert (rows.status == "completed").all(), rows[["status", "error"]].to_dict()
    assert len(rows) == 2 * (SAMPLES * len(TUNE_SEEDS) + len(SEEDS))  # every id once: the planned count
    chosen = _chosen_lr(study_dir)
    for arch, group in rows.groupby("arch"):
        tune, test = group[group.seed_role == "tune"], group[group.seed_role == "test"]
        assert tune.lr.nunique() == SAMPLES, arch  # SAMPLES distinct settings, each on every tune seed
        assert sorted(tune.seed) == sorted(TUNE_SEEDS * SAMPLES), arch
        assert tune.groupby("lr").seed.nunique().eq(len(TUNE_SEEDS)).all(), arch
        assert sorted(test.seed) == SEEDS and test.lr.nunique() == 1, arch
        assert test.lr.iloc[0] == pytest.approx(chosen[arch]), arch  # at the setting the analysis chooses

    raw = raw_rows(study_dir, "metrics")
    assert not raw.duplicated(["trial_id", "attempt", "step"]).any()
    assert not metric_keys(raw_before) - metric_keys(raw), "an evaluation point written before the kill was lost"
    after = raw[~raw.attempt.isin(set(raw_before.attempt))]
    assert not set(after.trial_id) & finished_before, "a trial that had finished before the kill ran again"

    assert main(["resume", str(study_dir)]) == 0
    assert "already finished" in capsys.readouterr().out


def _chosen_lr(study_dir) -> dict:
    """arch -> the lr analysis.tuning.choose_settings picks from the tune seeds (the analysis' own rule)."""
    from analysis.load import load_study
    from analysis.stats import final_values
    from analysis.tuning import choose_settings

    study = load_study(str(study_dir))
    final = final_values(study.trials, study.metrics)
    chosen = choose_settings(final)
    lr = final.drop_duplicates("config_id").set_index("config_id")["lr"]
    return {row.arch: lr[row.config_id] for row in chosen.itertuples()}
