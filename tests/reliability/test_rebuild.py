"""A study survives losing Tune's experiment state (study.tune.rebuild): a cut or missing state is found and set
aside, the study is rebuilt from its trial rows and checkpoints (finished trials not run again, interrupted ones
from their newest checkpoint); a full disk ends a study in one sentence, and it resumes once there is space.

The unit tests need no Ray; the two scenarios (a killed driver whose Tune state is then cut short, and a study
on a 3 MB tmpfs that fills) are multi-process, under the integration marker."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import pytest

from study.cli import main
from study.tune.rebuild import checkpoints, damaged_state, set_aside
from tests.reliability.helpers import check_study_guarantees, kill_driver_when, raw_rows
from wt_base.storage import resolve

BUDGET_S = 4.0


def _tune_dir(tmp_path: Path, cut: str = "") -> Path:
    """A Tune state folder with Tune's file names: the JSON experiment state, the pickled tuner and generator."""
    tune = tmp_path / "tune"
    tune.mkdir()
    (tune / "tuner.pkl").write_bytes(pickle.dumps({"tuner": 1}))
    (tune / "experiment_state-2026-12-08_00-00-00.json").write_text(json.dumps({"trial_data": [1, 2, 3]}))
    (tune / "basic-variant-state-2026-12-08_00-00-00.json").write_bytes(pickle.dumps({"generator": 1}))
    if cut:
        data = (tune / cut).read_bytes()
        (tune / cut).write_bytes(data[: len(data) // 2])
    return tune


@pytest.mark.parametrize(
    "cut", ["experiment_state-2026-12-08_00-00-00.json", "basic-variant-state-2026-12-08_00-00-00.json", "tuner.pkl"]
)
def test_a_state_file_cut_short_is_found_and_set_aside(tmp_path, cut):
    tune = resolve(str(_tune_dir(tmp_path, cut)))
    why = damaged_state(tune)
    assert why is not None and why.startswith(f"{cut} does not load")
    moved = set_aside(tune)
    assert len(moved) == 3 and all(".damaged-" in m for m in moved)
    assert damaged_state(tune) == "no tuner.pkl"  # nothing left to restore: the resume rebuilds


def test_a_whole_state_reads_as_undamaged(tmp_path):
    assert damaged_state(resolve(str(_tune_dir(tmp_path)))) is None


def test_a_trials_checkpoints_are_ranked_by_the_step_they_hold(tmp_path):
    """A rebuilt trial's new checkpoints reuse low indexes beside older ones: the step decides, not the name."""
    folder = tmp_path / "tune" / "trial_a"
    for index, step in ((7, 300), (0, 320), (1, 340), (2, None)):  # 2: cut short, no meta file
        ckpt = folder / f"checkpoint_{index:06d}"
        ckpt.mkdir(parents=True)
        if step is not None:
            (ckpt / "trial.json").write_text(json.dumps({"restarts": 0, "step": step}))
    ranked = [Path(p).name for p in checkpoints(resolve(str(tmp_path)), "trial_a", "trial.json")]
    assert ranked == ["checkpoint_000001", "checkpoint_000000", "checkpoint_000007"]


def _spec(write_spec, storage: Path) -> Path:
    return write_spec(
        storage=str(storage),
        budget={"kind": "seconds", "value": BUDGET_S},
        eval={"every_s": 1.0, "val_tokens": 1024},
        checkpoint_every_s=1.0,
        max_concurrent=1,
    )


@pytest.mark.integration
def test_a_study_whose_tune_state_was_cut_short_is_rebuilt(write_spec, tmp_path, ray_tmp, capsys, no_ray_left):
    """Before: resume failed with KeyError: 'trial' inside Tune. Now it rebuilds, and runs nothing twice."""
    spec = _spec(write_spec, tmp_path / "results")
    study_dir = tmp_path / "results" / "tiny"

    def mid_second_trial() -> bool:  # one trial completed, the other has checkpointed
        if not list((study_dir / "results" / "trials").glob("*.parquet")):
            return False
        rows = raw_rows(study_dir, "trials").drop_duplicates("trial_id", keep="last")
        done = set(rows.loc[rows.status == "completed", "trial_id"])
        running = [d for d in (study_dir / "tune").glob("*/") if d.name not in done and list(d.glob("checkpoint_*"))]
        return bool(done) and bool(running)

    kill_driver_when(spec, ray_tmp, mid_second_trial, 240, "a finished trial and a checkpointed one", {})
    (state,) = (study_dir / "tune").glob("experiment_state-*.json")
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    before = raw_rows(study_dir, "metrics")
    trials = raw_rows(study_dir, "trials").drop_duplicates("trial_id", keep="last")
    (finished,) = trials.loc[trials.status == "completed", "trial_id"]
    code = main(["resume", str(study_dir), "--ray-temp-dir", ray_tmp + "b"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Note: Tune's experiment state is damaged (experiment_state-" in out
    check_study_guarantees(study_dir, BUDGET_S, before)
    raw = raw_rows(study_dir, "metrics")
    assert len(raw[raw.trial_id == finished]) == len(before[before.trial_id == finished])  # not run again
    assert (raw.loc[raw.trial_id != finished, "resumed_from_step"] > 0).any()  # the other from its checkpoint


@pytest.mark.integration
def test_a_full_disk_stops_the_study_in_one_sentence_and_it_resumes_after_space_returns(
    write_spec, tmp_path, ray_tmp, capsys, no_ray_left
):
    from tests.reliability.test_storage_faults import tmpfs

    with tmpfs("3m") as disk:
        spec = _spec(write_spec, disk / "results")
        study_dir = disk / "results" / "tiny"
        filler = disk / "filler"  # leaves about 400 KB free: the study's checkpoints fill it in its first seconds
        subprocess.run(["fallocate", "-l", "2600K", str(filler)], check=True)
        code = main(["run", str(spec), "--ray-temp-dir", ray_tmp])
        out = capsys.readouterr().out
        assert code == 1, out
        stopped = [line for line in out.splitlines() if line.startswith("Stopped: ")]
        assert len(stopped) == 1 and "storage is full or read-only (No space left on device" in stopped[0]
        assert f"resume with: wt-study resume {study_dir}" in stopped[0]
        before = raw_rows(study_dir, "metrics")
        filler.unlink()  # the space returns
        code = main(["resume", str(study_dir), "--ray-temp-dir", ray_tmp + "b"])
        out = capsys.readouterr().out
        assert code == 0, out
        check_study_guarantees(study_dir, BUDGET_S, before)
