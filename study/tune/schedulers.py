"""Early stopping that compares a trial only with trials of its own arm.

One ASHA bracket over a whole study would rank the two architectures together: the arm that is behind early
(whatever it does later) would lose most of its trials at the first rung. `PerArmASHA` keeps one
`ASHAScheduler` per arm (the architecture label and worker interval of the trial) and hands each Ray Tune
hook to the arm's scheduler, so ASHA only ever stops a trial for being worse than trials of its own arm.

With `tune_seeds` in the spec, only the tuning seeds' trials are ranked and stopped: the test seeds' trials
carry the verdicts, so each runs its whole budget and ends with a final loss.

Both schedulers (`StudyFIFO`, and `PerArmASHA` built on it) end, without starting it, a trial Tune restored as
unfinished whose row says it finished (`skip_finished`, set by a resume): Tune saves its trial list every few
seconds (TUNE_GLOBAL_CHECKPOINT_S), so a trial that finished in the seconds before a driver was killed is still
unfinished there, and Tune would run it again from its last recorded checkpoint (or from scratch).
"""

from __future__ import annotations

import pickle

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from study.tune.ray_internals import end_unrun
from wt_model.archs import applies


def arm_of(trial_dict: dict) -> str:
    """The arm of a trial (the `trial` entry of its Tune config): architecture label and worker interval."""
    model = trial_dict["run"]["model"]
    if not applies("worker_interval", model["arch"]):
        return trial_dict["arch"]
    return f"{trial_dict['arch']}_k{model['worker_interval']}"


class StudyFIFO(FIFOScheduler):
    """Ray's FIFO, except that a pending trial in `skip_finished`'s ids is marked terminated instead of started:
    its row is already final, and the searcher and callbacks knew its end from the rows (so none is told again)."""

    def __init__(self):
        super().__init__()
        self._finished: set = set()

    def skip_finished(self, trial_ids) -> None:
        self._finished = set(trial_ids)

    def choose_trial_to_run(self, tune_controller):
        finished = getattr(self, "_finished", set())  # a scheduler unpickled from before this attribute
        for trial in list(tune_controller.get_trials()):
            trial_id = trial.config["trial"]["trial_id"]
            if trial.status == Trial.PENDING and trial_id in finished:
                finished.discard(trial_id)
                end_unrun(tune_controller, trial)  # not stop_trial: that would tell the callbacks
        return super().choose_trial_to_run(tune_controller)


class PerArmASHA(StudyFIFO):
    """ASHA within each arm; trials start in submission order (FIFO), as with Ray's own ASHA.

    Each arm's `max_t` is its trials' budget (`budget_by_arch` may give arms different budgets), read from the
    first trial of the arm that Tune adds. Trials whose seed is in `full_budget_seeds` are never stopped.
    """

    def __init__(
        self,
        *,
        time_attr: str,
        metric: str,
        mode: str,
        grace_period: float,
        reduction_factor: float,
        full_budget_seeds: tuple = (),
    ):
        super().__init__()
        self._full_budget_seeds = tuple(full_budget_seeds)
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self._grace_period = grace_period
        self._reduction_factor = reduction_factor
        self._arms: dict[str, ASHAScheduler] = {}

    def set_search_properties(self, metric, mode, **spec) -> bool:
        """Metric and mode come from the study spec; Tune may only repeat them."""
        return metric in (None, self._metric) and mode in (None, self._mode)

    def _arm(self, trial) -> ASHAScheduler | FIFOScheduler:
        trial_dict = trial.config["trial"]
        if trial_dict["run"]["train"]["seed"] in self._full_budget_seeds:
            return FIFOScheduler()  # a test seed's trial: never ranked, never stopped
        arm = arm_of(trial_dict)
        if arm not in self._arms:
            self._arms[arm] = ASHAScheduler(
                time_attr=self._time_attr,
                metric=self._metric,
                mode=self._mode,
                max_t=trial_dict["run"]["budget"]["value"],
                grace_period=self._grace_period,
                reduction_factor=self._reduction_factor,
            )
        return self._arms[arm]

    def on_trial_add(self, tune_controller, trial) -> None:
        self._arm(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial) -> None:
        self._arm(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self._arm(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._arm(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._arm(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "\n".join(f"ASHA for arm {arm}: {asha.debug_string()}" for arm, asha in sorted(self._arms.items()))

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
