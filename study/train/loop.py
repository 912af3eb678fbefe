"""The budgeted training loop of one run, Ray-free: `train(cfg, corpus) -> RunResult`.

Honest timing (the time budget contract: README, "What is measured"; wt_base.budgets): `train_time_s` is
`time.perf_counter()` around training steps only (batch sampling, forward, backward, clipping, optimizer step),
read after `torch.cuda.synchronize()` on CUDA; evaluation, checkpoint serialisation, `on_report` callbacks and
compile warm-up happen outside it.
`wall_time_s` counts everything since the run first started, across resumes.

Budgets stop at a step boundary: `steps` after exactly `floor(value)` steps; `tokens` and `flops` before the
step that would exceed the value (so the used amount is <= value and one more step would pass it); `seconds` at
the first step boundary at/after the value (at most one step over; on CUDA, where the clock and the losses are
read every `compiled.CUDA_READ_EVERY` steps so that no step waits for the GPU, at the first read at/after it).
With `count_eval_in_budget`, periodic evaluation time also eats the seconds budget (the seed's definition).

Evaluation: periodic evaluations use the fixed validation stream (`cfg.eval.val_tokens` of non-overlapping
windows, the same for every trial with this seq_len); the final one covers the whole val split when
`cfg.eval.final_full`. With `cfg.eval.protocol == "seed"` every evaluation, the final one included, uses the seed's
stride-1 windows instead, so the seed's numbers can be reproduced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from study.config.regime import step_amounts
from study.config.run import RunConfig
from study.train.budget import Budget, lr_at
from study.train.compiled import CUDA_READ_EVERY, LossWindow, compile_mode, compile_model
from study.train.corpora import MappedCorpus
from study.train.data import BatchSampler, check_corpus_fits
from study.train.device import resolve_device
from study.train.evaluation import EvalRecord, eval_windows, evaluate_windows
from study.train.state import Counters, capture_rng, cpu_copy, load_state, restore_rng, save_state
from study.train.warmup import warm_up_once
from wt_base.errors import StudyError
from wt_model import archs, build_model
from wt_model.flops import n_workers

STATE_FORMAT = 1

__all__ = ["EvalRecord", "RunResult", "load_state", "save_state", "train"]


@dataclass
class RunResult:
    status: str  # "completed" or "diverged"
    records: list[EvalRecord]  # the evaluations of this call (a resumed run does not repeat earlier ones)
    final: EvalRecord
    steps: int
    tokens: int
    train_time_s: float
    wall_time_s: float
    error: str  # "" or why the run diverged


Report = Callable[[EvalRecord | None, dict | None], None]


def train(
    cfg: RunConfig,
    corpus: MappedCorpus,
    *,
    on_report: Report | None = None,
    state: dict | None = None,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> RunResult:
    """Train one run within `cfg.budget`; resume exactly from `state` when given (see the module docstring).
    `clock` is read for every time the run records (tests pass a fake one to run a seconds budget instantly)."""
    started = clock()
    run = _Run(cfg, corpus, started, fresh=state is None, clock=clock)
    if state is not None:
        run.restore(state)
    return run.loop(on_report or (lambda record, state: None), on_report is not None, progress)


def _read_every(device: torch.device) -> int:
    """Steps between reads of the clock and the losses: 1 on a CPU (reads cost nothing there)."""
    return CUDA_READ_EVERY if device.type == "cuda" else 1


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _step(model, optimizer, x, y, lr: float, grad_clip: float, autocast, phase: int | None) -> torch.Tensor:
    """One optimisation step (forward, backward, clip, AdamW); returns the loss tensor."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast():
        _, loss = model(x, targets=y, worker_offset=phase)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


class _Run:
    """The objects of one run (model, optimizer, sampler, validation windows) and its loop."""

    def __init__(self, cfg: RunConfig, corpus: MappedCorpus, started: float, fresh: bool, clock=time.perf_counter):
        seq_len = cfg.seq_len
        check_corpus_fits(corpus, seq_len)
        if cfg.model.vocab_size < len(corpus.vocab):
            raise StudyError(
                f"model.vocab_size={cfg.model.vocab_size} is too small for corpus {corpus.name}, which has "
                f"{len(corpus.vocab)} characters: set it to {len(corpus.vocab)}."
            )
        self.cfg, self.corpus, self.started, self.clock = cfg, corpus, started, clock
        self.device = resolve_device(cfg.train.device)
        self.cuda = self.device.type == "cuda"
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        self.budget = Budget(cfg.budget, step_amounts(cfg.model, seq_len, cfg.train.batch_size))
        if fresh:
            self.budget.check_fits_one_step()

        _seed_everything(cfg.train.seed)
        self.model = build_model(cfg.model).to(self.device)
        m = cfg.model
        # The random worker phase is drawn per step by model.draw_phase() (torch's global RNG, a CPU draw) and
        # passed explicitly: compiled graphs are then keyed by the phase and all warmed up up front.
        self.phases = m.worker_interval if archs.get(m.arch).sparse and m.random_worker_phase else 0
        # supervised targets of a step, per worker phase (the training loss is taken at the worker rows)
        batch = cfg.train.batch_size
        self.targets_per_step = [batch * n_workers(m, seq_len, phase) for phase in range(max(self.phases, 1))]
        self.compile_mode = compile_mode(cfg.train.compile, self.device)
        self.step_model = compile_model(self.model, self.compile_mode)  # also runs the evaluation passes
        # CUDA: losses stay on the device and the clock is read every few steps (see study/train/compiled.py)
        self.losses = LossWindow(_read_every(self.device), self.device)
        self.optimizer = self._adamw(self.model.parameters())
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if self.cuda else contextlib.nullcontext
        self.sampler = BatchSampler(corpus.train, cfg.train.batch_size, seq_len, cfg.train.seed, self.device)
        self.counters = Counters(next_eval_s=cfg.eval.every_s)
        self.status, self.error = "completed", ""
        windows = eval_windows(corpus, seq_len, cfg.eval, self.device)
        self.val_windows, self.final_windows, self.train_windows = windows

    def _adamw(self, params) -> torch.optim.AdamW:
        t = self.cfg.train
        return torch.optim.AdamW(
            params, lr=t.lr, betas=(t.beta1, t.beta2), weight_decay=t.weight_decay, fused=True if self.cuda else None
        )

    # -- state --------------------------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to continue bit-identically, as CPU tensors and primitives (weights_only-safe)."""
        c = self.counters
        return {
            "format": STATE_FORMAT,
            "step": c.step,  # convenience copies of the counters for readers (trial metadata, CLI)
            "tokens": c.tokens,
            "train_time_s": c.train_time_s,
            "config": self.cfg.to_dict(),
            "model": cpu_copy(self.model.state_dict()),
            "optimizer": cpu_copy(self.optimizer.state_dict()),
            "rng": cpu_copy(capture_rng()),
            "sampler": self.sampler.get_state(),
            "counters": dataclasses.asdict(c) | {"wall_time_s": self._wall()},
            "status": self.status,
            "error": self.error,
        }

    def restore(self, state: dict) -> None:
        if state.get("format") != STATE_FORMAT:
            raise StudyError(f"checkpoint format={state.get('format')!r} is not supported: expected {STATE_FORMAT}.")
        # Read the saved config as a config file is read (fields added since take their defaults), so that only a
        # real difference refuses the checkpoint, not a release that added a field.
        saved_model = RunConfig.from_dict(state["config"]).model
        if saved_model != self.cfg.model:
            changed = [
                f.name
                for f in dataclasses.fields(saved_model)
                if getattr(saved_model, f.name) != getattr(self.cfg.model, f.name)
            ]
            diffs = ", ".join(f"{n}={getattr(saved_model, n)!r} (now {getattr(self.cfg.model, n)!r})" for n in changed)
            raise StudyError(
                f"the checkpoint was written with another model config ({diffs}): resume with the configuration "
                "that wrote it."
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.set_state(state["sampler"])
        counters = dict(state["counters"])  # counters added since take their defaults, except targets:
        if "targets" not in counters:  # a checkpoint from before targets were counted: the mean per step
            mean = sum(self.targets_per_step) / len(self.targets_per_step)
            counters["targets"] = round(counters["step"] * mean)
        self.counters = Counters(**counters)
        self.started -= self.counters.wall_time_s  # the wall clock continues from where it stopped
        self.status, self.error = state["status"], state["error"]
        restore_rng(state["rng"])  # last: building the model above drew from the global RNG

    def _wall(self) -> float:
        return self.clock() - self.started

    # -- loop ---------------------------------------------------------------------------------------------
    def loop(self, report: Report, want_state: bool, progress: Callable[[str], None] | None) -> RunResult:
        c, cfg = self.counters, self.cfg
        last = c.last_record
        if last is not None and last["is_final"] and (self.status == "diverged" or not self.budget.allows(c)):
            return self._result([], EvalRecord.from_dict(last))  # a finished run: nothing to redo
        self._warm_up()
        records: list[EvalRecord] = []
        every_steps, every_s = cfg.eval.every_steps, cfg.eval.every_s
        ckpt_every = cfg.checkpoint_every_s
        last_ckpt = self._wall()
        tokens_per_step, targets_per_step, grad_clip = (
            self.budget.tokens_per_step,
            self.targets_per_step,
            cfg.train.grad_clip,
        )
        cuda, clock, phases, losses = self.cuda, self.clock, self.phases, self.losses
        decile = int(10 * self.budget.fraction(c))
        while self.budget.allows(c):
            lr = lr_at(cfg.train, self.budget.schedule_fraction(c))
            if not len(losses):
                t0 = clock()  # the clock runs from the first step after a read to the next read
            x, y = self.sampler.next()
            phase = self.model.draw_phase() if phases else None
            losses.add(_step(self.step_model, self.optimizer, x, y, lr, grad_clip, self.autocast, phase))
            c.step += 1
            c.tokens += tokens_per_step
            c.targets += targets_per_step[phase or 0]
            c.lr = lr
            if not self._read_due():
                continue  # CUDA, between reads: the host queues the next step without waiting
            if cuda:
                torch.cuda.synchronize()
            c.train_time_s += clock() - t0
            if not self._add_losses(losses.read()):
                break
            if not self.budget.allows(c):
                break  # the final evaluation and checkpoint come in one report below
            record = None
            if (every_steps and c.step % every_steps == 0) or (every_s and c.train_time_s >= c.next_eval_s):
                record = self._periodic_eval()
                records.append(record)
            due = ckpt_every > 0 and self._wall() - last_ckpt >= ckpt_every
            if record is not None or due:
                report(record, self.state() if due and want_state else None)
                if due:
                    last_ckpt = self._wall()
            if progress is not None:
                if record is not None:
                    progress(self._line(record))
                elif int(10 * self.budget.fraction(c)) > decile:
                    progress(self._line(None))
                decile = int(10 * self.budget.fraction(c))
        final = self._final_eval()
        records.append(final)
        report(final, self.state() if want_state else None)
        if progress is not None:
            progress(self._line(final))
        return self._result(records, final)

    def _read_due(self) -> bool:
        """Read the clock and the losses now? After every step on a CPU; on CUDA when the window is full, and
        after the steps where a step-counted budget ends or a step-counted evaluation is due (those stay exact).
        Time-based evaluations, checkpoints and a seconds budget are checked at reads, so on CUDA a seconds
        budget may end up to CUDA_READ_EVERY - 1 steps later than it would with a read after every step."""
        every_steps = self.cfg.eval.every_steps
        c = self.counters
        return self.losses.full() or not self.budget.allows(c) or bool(every_steps and c.step % every_steps == 0)

    def _add_losses(self, values: list[float]) -> bool:
        """Count the read losses (in step order) into the running mean; False, with the run marked diverged,
        at the first non-finite one."""
        c = self.counters
        first_step = c.step - len(values) + 1
        for i, value in enumerate(values):
            c.loss_sum += value
            c.loss_count += 1
            if not math.isfinite(value):
                self.status = "diverged"
                self.error = f"training loss became {value} at step {first_step + i}"
                return False
        return True

    def _warm_up(self) -> None:
        """One-time costs outside the budget clock: torch.compile, and on CUDA the lazy loading of kernels and
        library handles (sampling, forward/backward, clipping, fused AdamW), which would otherwise land in the
        first step. Parameters, optimizer state, the sampler and every RNG are left untouched."""
        if self.compile_mode != "off" or self.cuda:
            self._warm_up_once()

    def _warm_up_once(self) -> None:
        warm_up_once(self)

    def _periodic_eval(self) -> EvalRecord:
        c = self.counters
        t0 = self.clock()
        val_loss, val_loss_seed = self._evaluate(self.val_windows)
        eval_s = self.clock() - t0
        c.eval_time_s += eval_s  # validation only: what the seed's in-budget evaluation did
        tokens = len(self.val_windows) * self.cfg.seq_len
        record = self._make_record(val_loss, val_loss_seed, tokens, is_final=False, eval_time_s=eval_s)
        every_s = self.cfg.eval.every_s
        if every_s:
            c.next_eval_s = (math.floor(c.train_time_s / every_s) + 1) * every_s
        return record

    def _final_eval(self) -> EvalRecord:
        if self.status == "diverged":
            return self._make_record(math.nan, math.nan, 0, is_final=True, eval_time_s=0.0)
        t0 = self.clock()
        val_loss, val_loss_seed = self._evaluate(self.final_windows)
        eval_s = self.clock() - t0
        tokens = len(self.final_windows) * self.cfg.seq_len
        return self._make_record(val_loss, val_loss_seed, tokens, is_final=True, eval_time_s=eval_s)

    def _train_eval_loss(self) -> float:
        """Loss on the fixed training windows (not counted as evaluation time for the budget: the seed's
        in-budget evaluation covered the validation data only)."""
        return self._evaluate(self.train_windows)[0]

    def _evaluate(self, windows: torch.Tensor) -> tuple[float, float]:
        forward = None if self.compile_mode == "off" else self.step_model
        return evaluate_windows(self.model, windows, self.cfg.train.batch_size, self.autocast, forward)

    def _make_record(
        self, val_loss: float, val_loss_seed: float, val_tokens: int, is_final: bool, eval_time_s: float
    ) -> EvalRecord:
        c = self.counters
        train_eval_loss = self._train_eval_loss() if math.isfinite(val_loss) else math.nan
        window_s = c.train_time_s - c.train_time_at_eval
        record = EvalRecord(
            step=c.step,
            tokens=c.tokens,
            targets=c.targets,
            train_time_s=c.train_time_s,
            wall_time_s=self._wall(),
            flops=c.step * self.budget.flops_per_step,
            lr=c.lr,
            train_loss=c.loss_sum / c.loss_count if c.loss_count else math.nan,
            val_loss=val_loss,
            val_loss_seed=val_loss_seed,
            val_bpc=val_loss / math.log(2),
            train_eval_loss=train_eval_loss,
            train_minus_val=train_eval_loss - val_loss,
            epochs=c.tokens / len(self.corpus.train),
            target_epochs=c.targets / len(self.corpus.train),
            val_tokens=val_tokens,
            eval_time_s=eval_time_s,
            tokens_per_s=(c.tokens - c.tokens_at_eval) / window_s if window_s > 0 else 0.0,
            is_final=is_final,
        )
        c.loss_sum, c.loss_count = 0.0, 0
        c.tokens_at_eval, c.train_time_at_eval = c.tokens, c.train_time_s
        c.last_record = record.to_dict()
        return record

    def _line(self, record: EvalRecord | None) -> str:
        c = self.counters
        head = f"step {c.step:>7,} | {100 * self.budget.fraction(c):5.1f}% | train {c.train_time_s:7.1f}s"
        if record is None:
            return f"{head} | loss {c.loss_sum / max(c.loss_count, 1):.4f}"
        label = "final" if record.is_final else "eval "
        return (
            f"{head} | {label} | loss {record.train_loss:.4f} | val {record.val_loss:.4f} "
            f"(seed {record.val_loss_seed:.4f}) | {record.val_bpc:.3f} bpc | {record.tokens_per_s:,.0f} tok/s"
        )

    def _result(self, records: list[EvalRecord], final: EvalRecord) -> RunResult:
        c = self.counters
        return RunResult(
            status=self.status,
            records=records,
            final=final,
            steps=c.step,
            tokens=c.tokens,
            train_time_s=c.train_time_s,
            wall_time_s=self._wall(),
            error=self.error,
        )
