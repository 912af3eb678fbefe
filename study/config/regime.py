"""The data regime of a trial before it runs: steps, tokens, supervised targets, passes over the training split and
tokens per parameter, from its budget (analytic for steps, tokens and FLOPs; unknown ahead for a clock budget).

A scaling curve L(N) means something only where each size sees its data a comparable number of times: a study
whose small models make 100 passes over the text and whose large ones make 5 measures repetition as much as
size. `--dry-run` shows these numbers, and a spec's `max_epochs` refuses a trial above it before anything starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wt_base.budgets import BUDGET_KINDS
from wt_base.errors import StudyError
from wt_model.flops import count_params, n_workers, training_flops_per_token


@dataclass(frozen=True)
class Regime:
    """What a trial's budget buys in data; None where a clock budget leaves it unknown until the run."""

    steps: int | None
    tokens: int | None  # input positions read
    targets: int | None  # positions supervised (a worker model: its worker rows at phase 0)
    epochs: float | None  # passes over the training split, in tokens
    target_epochs: float | None  # ... in supervised targets
    tokens_per_param: float | None  # tokens per non-embedding parameter (Chinchilla's ~20 is compute-optimal)


def step_amounts(model, seq_len: int, batch_size: int) -> dict[str, float]:
    """What one training step uses of each counted budget unit (wt_base.budgets' `per_step` names): one step,
    batch x seq_len input tokens, and the analytic training FLOPs of those tokens (wt_model.flops). The one place
    the loop's budget, the regime, the dry run and the benchmark take a step's amounts from."""
    tokens = batch_size * seq_len
    return {"step": 1, "tokens": tokens, "flops": training_flops_per_token(model, seq_len) * tokens}


def trial_regime(run, train_tokens: int) -> Regime:
    """The regime of run config `run` on a training split of `train_tokens` tokens."""
    m, T, B = run.model, run.seq_len, run.train.batch_size
    per_step = step_amounts(m, T, B)
    kind = BUDGET_KINDS[run.budget.kind]
    if kind.per_step is None:
        return Regime(None, None, None, None, None, None)
    steps = int(math.floor(run.budget.value / per_step[kind.per_step] + 1e-9))
    tokens, targets = steps * B * T, steps * B * n_workers(m, T)
    params = count_params(m).non_embedding
    return Regime(
        steps=steps,
        tokens=tokens,
        targets=targets,
        epochs=tokens / train_tokens,
        target_epochs=targets / train_tokens,
        tokens_per_param=tokens / params if params else None,
    )


def check_max_epochs(trials: list, train_tokens: int, max_epochs: float | None) -> None:
    """Refuse, in one sentence naming the trial and the numbers, the first trial above `max_epochs` passes."""
    if max_epochs is None:
        return
    for trial in trials:
        regime = trial_regime(trial.run, train_tokens)
        if regime.epochs is not None and regime.epochs > max_epochs:
            raise StudyError(
                f"trial {trial.trial_id} would make {regime.epochs:.3g} passes over the training split "
                f"({regime.tokens:,} tokens of {train_tokens:,}), above max_epochs={max_epochs:g}: shrink its "
                "budget, use a larger corpus, or raise max_epochs."
            )
