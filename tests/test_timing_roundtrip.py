"""A real study carried to a machine profile and back: a 2-trial steps study runs on Ray, `wt-study bench
--for-study` profiles this machine at exactly its shapes, and `wt-study analyze --timing` re-times it."""

from __future__ import annotations

import pyarrow.parquet as pq
import yaml

from analysis.load import load_study
from analysis.profiles import read_profiles
from analysis.timing_verdict import seconds
from study.cli import main
from tests.study.conftest import TINY_SPEC, deep_update

STEPS = 40


def test_a_steps_study_round_trips_through_bench_profile_and_analyze(tmp_path, ray_tmp, capsys):
    doc = deep_update(TINY_SPEC, {"name": "timed", "budget": {"kind": "steps", "value": STEPS}})
    doc["eval"] = {"every_steps": 10, "val_tokens": 1024, "final_full": False}
    doc["storage"] = str(tmp_path / "results")
    spec = tmp_path / "timed.yaml"
    spec.write_text(yaml.safe_dump(doc))
    assert main(["run", str(spec), "--ray-temp-dir", ray_tmp]) == 0
    study_dir = tmp_path / "results" / "timed"
    study = load_study(str(study_dir))
    assert sorted(study.trials["arch"]) == ["standard", "worker"] and (study.trials["steps"] == STEPS).all()

    profile = tmp_path / "here.parquet"
    bench = ["bench", "--for-study", str(study_dir), "--steps", "3", "--warmup", "1", "--out", str(profile)]
    assert main(bench) == 0
    rows = read_profiles([profile])
    assert sorted(rows["arch"]) == ["standard", "worker"] and len(pq.read_table(profile)) == 2
    assert set(rows["device_name"]) == set(study.trials["device_name"])  # the machine the trials ran on
    # the trials' wall clock, with the trials' threads (1), not torch's default
    assert set(rows["threads"]) == set(study.trials["threads"]) == {1} and "(wall clock" in rows["source"].iloc[0]

    out = tmp_path / "report"
    capsys.readouterr()
    assert main(["analyze", str(study_dir), "--out", str(out), "--timing", str(profile)]) == 0
    printed = capsys.readouterr().out
    machine = rows["machine"].iloc[0]
    assert f"Re-timed on 1 machine(s): {machine}" in printed
    report = (out / "report.md").read_text()
    assert f"### On {machine}" in report and "Every projectable trial's shape is in every profile." in report
    assert f"on {machine}, at " in report and "worker k=4 - standard = " in report
    assert "(no interval: fewer than 2 seeds per arm)" in report  # one seed per arm: a point estimate only
    assert (out / "timing.png").exists() and (out / "axes.png").exists()
    # the budget is the longest time both trials cover: their STEPS at their fastest (one profile: p10) step time
    covered = min(STEPS * rows.set_index("arch")["step_time_s_p10"])
    assert f"at {seconds(covered)} s of training (the longest all its trials cover)" in report
    assert "projected_time_s_to_target" in (out / "timing_reach.csv").read_text()
