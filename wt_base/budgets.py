"""The budget kinds, in one table (the time budget contract: README, "What is measured").

For each kind: its unit as printed after a value, the result/metrics column that measures how much of it a run
has used (also what ASHA's rungs are counted in), the trials column that holds the final amount (None for
FLOPs, which only the metrics rows carry), and how it is counted: `per_step` names the per-step increment a
counted kind is known by before the run starts ("step": 1, "tokens": batch x seq_len, "flops": the analytic
training FLOPs of a step); a measured kind (seconds) has none, its amount is the training clock. The config's
choices, the budget arithmetic, the scheduler, `status` and the dry run read this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BudgetKind:
    name: str  # BudgetConfig.kind
    unit: str  # printed right after a value: "300s", "966 steps"
    metric: str  # the metrics column (and Tune result key) that measures the amount used
    trials_column: str | None  # the trials column holding the final amount; None: read it from the metrics
    per_step: str | None  # "step", "tokens" or "flops": the per-step increment known ahead; None: measured

    @property
    def measured(self) -> bool:
        """A clock budget: how far a step gets is known only by running it (its lr schedule follows the clock)."""
        return self.per_step is None

    def format(self, value: float) -> str:
        return f"{value:g}{self.unit}"


BUDGET_KINDS = {
    kind.name: kind
    for kind in (
        BudgetKind("seconds", "s", metric="train_time_s", trials_column="train_time_s", per_step=None),
        BudgetKind("steps", " steps", metric="step", trials_column="steps", per_step="step"),
        BudgetKind("tokens", " tokens", metric="tokens", trials_column="tokens", per_step="tokens"),
        BudgetKind("flops", " FLOPs", metric="flops", trials_column=None, per_step="flops"),
    )
}
