"""Timing a list of bench cases in rounds (`wt-study bench --rounds`).

Each case's timed samples are split into `rounds` blocks, and the cases take turns block by block (round 1: every
case's first block, round 2: every case's second, ...). On a shared machine whose speed wanders by tens of percent
over seconds to minutes, a slow stretch then falls on every case alike, and each case's median describes the
whole stretch of time the bench ran, not the few seconds it happened to be timed in: what a profile needs, since
the trials it predicts ran over minutes. Every block after a case's first starts with one untimed step, so its
model is warm in the caches again, as a trial's model is between consecutive steps.

With one round a case is built, timed and released before the next (the models of every case stay in memory
only when there are several rounds).
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from study.train.bench import (
    BenchCase,
    BenchResult,
    ModelBuilder,
    evaluation_pass,
    make_result,
    time_samples,
    training_step,
)


def round_sizes(n: int, rounds: int) -> list[int]:
    """`n` samples split into at most `rounds` blocks as even as possible (none empty): 10, 3 -> [4, 3, 3]."""
    rounds = max(1, min(rounds, n))
    return [n // rounds + (i < n % rounds) for i in range(rounds)]


@dataclass
class _Timer:
    """One case's step functions (this copy's, then the baseline's) and the samples gathered so far."""

    case: BenchCase
    steps: list[Callable[[], None]]
    evaluate: Callable[[], None] | None
    samples: list[list[float]] = field(default_factory=list)
    eval_samples: list[float] = field(default_factory=list)

    def add_block(self, device: torch.device, n: int, warm: int, clock: str, steps_per_sample: int) -> None:
        """`n` more timed samples of every step function (and of the evaluation passes) after `warm` untimed."""
        for samples, new in zip(
            self.samples, time_samples(self.steps, device, n, warm, clock, steps_per_sample), strict=True
        ):
            samples.extend(new)
        if self.evaluate is not None:
            self.eval_samples.extend(time_samples([self.evaluate], device, n, warm, clock)[0])

    def results(self) -> list[BenchResult]:
        """This copy's result (with its evaluation time per position when timed), then the baseline's."""
        per_token = None
        if self.eval_samples:
            per_token = statistics.median(self.eval_samples) / (self.case.batch_size * self.case.seq_len)
        results = [make_result(self.case, s, v) for s, v in zip(self.samples, ("", "before"), strict=False)]
        return [replace(results[0], eval_s_per_token=per_token), *results[1:]]


def _timer(case: BenchCase, device: torch.device, baseline: ModelBuilder | None, with_eval: bool) -> _Timer:
    steps = [training_step(case, device)]
    if baseline is not None:
        with contextlib.suppress(ValueError):  # the baseline cannot build this case: no 'before' row
            steps.append(training_step(case, device, build=baseline))
    evaluate = evaluation_pass(case, device) if with_eval else None
    return _Timer(case, steps, evaluate, samples=[[] for _ in steps])


def run_cases(
    cases: list[BenchCase],
    device: torch.device,
    steps: int,
    warmup: int,
    clock: str = "wall",
    baseline: ModelBuilder | None = None,
    steps_per_sample: int = 1,
    with_eval: bool = False,
    rounds: int = 1,
    on_result: Callable[[BenchResult], None] | None = None,
    on_failure: Callable[[BenchCase, Exception], None] | None = None,
) -> list[BenchResult]:
    """Every case's results (this copy's, then a `baseline` builder's, its steps interleaved with this copy's),
    in the cases' order, from `steps` timed samples per case spread over `rounds` rounds; the first block of a
    case follows `warmup` untimed samples (compilation happens there), later blocks one. `with_eval`: the
    evaluation passes are timed in the same blocks. `on_result` gets each result when its case is done (a run
    cut short keeps the rows already reported); a case that raises is dropped and passed to `on_failure`."""
    sizes = round_sizes(steps, rounds)
    timers: dict[int, _Timer] = {}
    done: dict[int, list[BenchResult]] = {}
    failed: set[int] = set()
    for r, n in enumerate(sizes):
        warm = warmup if r == 0 else min(warmup, 1)
        for i, case in enumerate(cases):
            if i in failed:
                continue
            try:
                if i not in timers:
                    timers[i] = _timer(case, device, baseline, with_eval)
                timers[i].add_block(device, n, warm, clock, steps_per_sample)
            except Exception as exc:  # a compile that fails on this machine, say: keep the other cases
                failed.add(i)
                timers.pop(i, None)
                if on_failure is None:
                    raise
                on_failure(case, exc)
                continue
            if r == len(sizes) - 1:
                done[i] = timers.pop(i).results()  # released: with one round, one model in memory at a time
                for result in done[i]:
                    if on_result is not None:
                        on_result(result)
    return [result for results in done.values() for result in results]  # in the cases' order
