"""The training budget of one run: how much of it a step uses, whether one more step may start, and the
learning-rate schedule over it (see the loop's module docstring for where each kind stops)."""

from __future__ import annotations

import math

from study.config.run import BudgetConfig, TrainConfig
from study.train.state import Counters
from wt_base.budgets import BUDGET_KINDS
from wt_base.errors import StudyError


class Budget:
    """How much of `cfg` a run has used, and whether one more step may start (see the module docstring)."""

    def __init__(self, cfg: BudgetConfig, amounts: dict[str, float]):
        """`amounts`: what one step uses of each counted unit (study.config.regime.step_amounts)."""
        self.cfg, self.tokens_per_step, self.flops_per_step = cfg, int(amounts["tokens"]), amounts["flops"]
        # per-step increment in the budget's unit (None for a measured kind: unknown ahead of time)
        per_step = BUDGET_KINDS[cfg.kind].per_step
        self.per_step = None if per_step is None else amounts[per_step]

    def used(self, c: Counters) -> float:
        if self.per_step is None:  # the clock: training time, and evaluation time with count_eval_in_budget
            return c.train_time_s + (c.eval_time_s if self.cfg.count_eval_in_budget else 0.0)
        return c.step * self.per_step  # multiply rather than accumulate: no float drift at the limit

    def allows(self, c: Counters) -> bool:
        """May one more step start? Counted budgets: only if it ends at or below the limit."""
        if self.per_step is None:
            return self.used(c) < self.cfg.value
        return (c.step + 1) * self.per_step <= self.cfg.value

    def fraction(self, c: Counters) -> float:
        return min(1.0, self.used(c) / self.cfg.value)

    def schedule_fraction(self, c: Counters) -> float:
        """Where the next step sits in the budget: its midpoint for counted budgets, the clock for seconds."""
        if self.per_step is None:
            return self.fraction(c)
        return min(1.0, (self.used(c) + 0.5 * self.per_step) / self.cfg.value)

    def check_fits_one_step(self) -> None:
        if not self.allows(Counters()):
            raise StudyError(
                f"budget.value={self.cfg.value:g} is smaller than one training step ({self.per_step:g} "
                f"{self.cfg.kind}): raise the budget or shrink train.batch_size / seq_len."
            )


def lr_at(cfg: TrainConfig, fraction: float) -> float:
    """Learning rate at `fraction` of the budget: linear warmup over warmup_frac, then the schedule's shape."""
    warmup = cfg.warmup_frac
    if fraction < warmup:
        return cfg.lr * fraction / warmup
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (fraction - warmup) / (1.0 - warmup)  # 0 -> 1 after warmup
    if cfg.schedule == "linear":
        return cfg.lr * (1.0 - progress)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine
