"""Early stopping per arm, and the status of a trial the scheduler ended, without a Ray cluster.

The scheduler and the callbacks are fed fake trials (the attributes Ray Tune's hooks use) and hand-made results.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler

from study.config.space import expand
from study.config.specfile import parse_spec
from study.tune.callbacks import ProgressCallback, ResultsCallback, end_fields
from study.tune.schedulers import PerArmASHA, arm_of
from tests.study.conftest import TINY_SPEC, deep_update


def fake_trials(n_per_arm: int, budget: float = 100.0) -> list:
    """n_per_arm trials per arm (standard, worker k=4, worker k=8), each a stand-in for a Tune trial."""
    spec = parse_spec(
        deep_update(
            TINY_SPEC,
            {
                "budget": {"kind": "steps", "value": budget},
                "axes": {"arch": ["standard", "worker"], "worker_interval": [4, 8], "seq_len": [32]},
                "seeds": n_per_arm,
            },
        )
    )
    return [
        SimpleNamespace(trial_id=t.trial_id, config={"trial": t.to_dict()}, status="RUNNING", last_result={})
        for t in expand(spec)
    ]


def asha(**changes) -> PerArmASHA:
    settings = {"time_attr": "step", "metric": "val_loss", "mode": "min", "grace_period": 10, "reduction_factor": 2}
    return PerArmASHA(**{**settings, **changes})


def report(scheduler, trial, step: int, loss: float) -> str:
    return scheduler.on_trial_result(None, trial, {"step": step, "val_loss": loss})


def test_arms_are_architecture_and_interval():
    arms = {arm_of(t.config["trial"]) for t in fake_trials(1)}
    assert arms == {"standard", "worker_k4", "worker_k8"}


def test_asha_stops_within_an_arm_only():
    """The worker arms are far behind the standard arm (losses 3.x against 1.x). Per arm, each arm's trials are
    ranked among themselves (the same decisions in every arm); one bracket for everything (Ray's ASHA, as the
    study used before) stops every worker trial at the first rung for being a worker."""
    from ray.tune.schedulers import ASHAScheduler

    trials = fake_trials(4)
    offset = {"standard": 1.0, "worker_k4": 3.0, "worker_k8": 3.5}
    relative = [0.2, 0.1, 0.3, 0.0]  # by seed; reported in seed order, the arms interleaved
    order = sorted(trials, key=lambda t: (t.config["trial"]["run"]["train"]["seed"], arm_of(t.config["trial"])))

    def decisions(scheduler) -> dict:
        for trial in trials:
            scheduler.on_trial_add(None, trial)
        out: dict = {arm: [] for arm in offset}
        for trial in order:
            arm, seed = arm_of(trial.config["trial"]), trial.config["trial"]["run"]["train"]["seed"]
            out[arm].append(report(scheduler, trial, 10, offset[arm] + relative[seed]))
        return out

    go, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    per_arm = decisions(asha())
    assert per_arm == {arm: [go, go, stop, go] for arm in offset}  # 0.3 is worse than its arm's median
    one = decisions(ASHAScheduler(time_attr="step", metric="val_loss", mode="min", max_t=100, grace_period=10))
    assert one["worker_k4"] == [stop] * 4 and one["worker_k8"] == [stop] * 4


def test_test_seeds_run_their_whole_budget_when_other_seeds_tune():
    trials = fake_trials(3)  # seeds 0, 1, 2 in every arm
    scheduler = asha(full_budget_seeds=(1, 2))  # seed 0 tunes
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    worst_first = sorted(trials, key=lambda t: -t.config["trial"]["run"]["train"]["seed"])
    decisions = {t.config["trial"]["run"]["train"]["seed"]: report(scheduler, t, 100, 5.0) for t in worst_first}
    assert decisions[1] == decisions[2] == TrialScheduler.CONTINUE  # never stopped, even at max_t
    assert decisions[0] == TrialScheduler.STOP  # a tuning trial at max_t: ASHA ends it as usual


def test_each_arm_stops_at_its_own_budget():
    spec = parse_spec(
        deep_update(
            TINY_SPEC,
            {"budget": {"kind": "steps", "value": 100}, "budget_by_arch": {"worker": 250}, "seeds": 1},
        )
    )
    trials = [SimpleNamespace(trial_id=t.trial_id, config={"trial": t.to_dict()}) for t in expand(spec)]
    scheduler = asha()
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    standard, worker = sorted(trials, key=lambda t: t.config["trial"]["arch"])
    assert report(scheduler, standard, 100, 1.0) == TrialScheduler.STOP  # its budget reached
    assert report(scheduler, worker, 100, 1.0) == TrialScheduler.CONTINUE  # 150 steps to go
    assert report(scheduler, worker, 250, 1.0) == TrialScheduler.STOP


def test_scheduler_survives_a_pickle_round_trip(tmp_path):
    scheduler = asha()
    trials = fake_trials(2)
    for trial in trials:
        scheduler.on_trial_add(None, trial)
        report(scheduler, trial, 10, 2.0)
    scheduler.save(str(tmp_path / "s.pkl"))
    restored = asha()
    restored.restore(str(tmp_path / "s.pkl"))
    assert restored.debug_string() == scheduler.debug_string() and "worker_k8" in restored.debug_string()
    assert restored.set_search_properties(None, None) and not restored.set_search_properties("val_loss_seed", "min")


def test_end_status_of_a_trial_tune_ended():
    assert end_fields({"status": "running", "val_loss": None}) == {
        "status": "stopped",
        "note": "stopped early by the scheduler",
    }
    assert end_fields({"status": "running", "val_loss": 1.5}) == {"status": "completed"}  # ended at max_t
    assert end_fields({"status": "running", "val_loss": math.nan})["status"] == "diverged"
    assert end_fields({"status": "diverged", "val_loss": math.nan}) == {"status": "diverged"}


def test_results_callback_records_a_stopped_trial(tmp_path):
    from analysis.load import load_study

    (trial, finished) = fake_trials(1)[:2]
    callback = ResultsCallback(str(tmp_path / "tiny"), "tiny")
    callback.setup()
    for t in (trial, finished):
        callback.on_trial_start(0, [], t)
        callback.on_trial_result(0, [], t, {"is_eval": True, **_metric(5, 2.5)})
    callback.on_trial_result(0, [], finished, {"is_eval": True, **_metric(100, 2.0), "is_final": True})
    callback.on_trial_complete(0, [], trial)  # ASHA ended it at step 5
    callback.on_trial_complete(0, [], finished)  # ASHA ended it at max_t, after its final evaluation
    rows = load_study(str(tmp_path / "tiny")).trials.set_index("trial_id")
    assert rows.loc[trial.trial_id, "status"] == "stopped"
    assert rows.loc[trial.trial_id, "note"] == "stopped early by the scheduler"
    assert math.isnan(rows.loc[trial.trial_id, "val_loss"])  # never a final loss
    assert rows.loc[finished.trial_id, "status"] == "completed" and rows.loc[finished.trial_id, "val_loss"] == 2.0


def test_progress_line_counts_stopped_trials_as_done():
    trials = fake_trials(1)
    trials[0].status, trials[0].last_result = "TERMINATED", {"is_final": False, "step": 5}
    trials[1].status, trials[1].last_result = "TERMINATED", {"is_final": True, "done_status": "completed"}
    line = ProgressCallback(total=3).line(trials)
    assert "2/3 done (1 stopped early), 1 running" in line


def test_a_resumed_studys_progress_line_starts_from_its_stored_best():
    """Before, a resume printed "best val_loss: -" and then only what its own trials reached (worse than the
    stored trials' losses, which the line then hid)."""
    from study.tune.callbacks import best_from_rows

    rows = [
        {"arch": "standard", "val_loss": 1.78, "status": "completed"},
        {"arch": "standard", "val_loss": None, "status": "running"},
        {"arch": "worker", "val_loss": 1.74, "status": "completed"},
        {"arch": "worker", "val_loss": float("nan"), "status": "diverged"},
    ]
    assert best_from_rows(rows) == {"standard": 1.78, "worker": 1.74}
    line = ProgressCallback(total=3, best=best_from_rows(rows)).line(fake_trials(1))
    assert "best val_loss: standard 1.780  worker 1.740" in line
    restored = ProgressCallback.__new__(ProgressCallback)
    restored.__setstate__(ProgressCallback(best={"worker": 2.0}).__getstate__())  # Tune pickles its callbacks
    assert "worker 2.000" in restored.line(fake_trials(1))


def _metric(step: int, loss: float) -> dict:
    return {"step": step, "attempt": 1, "resumed_from_step": 0, "val_loss": loss, "val_loss_seed": loss}
