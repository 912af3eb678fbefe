"""The budgeted training loop: budgets, honest timing, exact resume, shared data streams, errors (its CLI:
test_train_cli.py)."""

from __future__ import annotations

import dataclasses
import inspect
import math
import time

import numpy as np
import pytest
import torch

import study.train.loop as train_module
from study.config.run import BudgetConfig, DataConfig, EvalConfig, RunConfig, TrainConfig
from study.train.corpora import load_corpus
from study.train.loop import EvalRecord, load_state, lr_at, save_state, train
from wt_base.errors import StudyError
from wt_base.schema import METRICS_SCHEMA
from wt_model import ModelConfig
from wt_model.flops import training_flops_per_token


@pytest.fixture(scope="module")
def corpus(excerpt):
    return load_corpus(DataConfig(corpus=excerpt))


def train_cfg(**fields) -> TrainConfig:
    """CPU (bit-identical resume is a CPU promise) with one thread: two oversubscribe a shared 2-core CPU."""
    return TrainConfig(device="cpu", threads=1, **fields)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def tiny(arch: str = "worker", budget=("steps", 8), **sections) -> RunConfig:
    """A model small enough for a 2-core CPU; `sections` replace whole config sections."""
    model = ModelConfig(
        arch=arch, block_size=32, n_embd=32, n_head=2, n_layer=2, dropout=0.1, random_worker_phase=arch == "worker"
    )
    defaults = {
        "model": model,
        "train": train_cfg(batch_size=8, lr=3e-3, seed=1),
        "budget": BudgetConfig(kind=budget[0], value=budget[1]),
        "eval": EvalConfig(val_tokens=1024, final_full=False),
    }
    return RunConfig(**(defaults | sections))


def spy(monkeypatch, name: str, before=None):
    """Wrap study.train.<name>, recording (args, seconds) of every call; `before(*args)` runs first."""
    calls = []
    original = getattr(train_module, name)

    def wrapper(*args):
        t0 = time.perf_counter()
        if before is not None:
            before(*args)
        out = original(*args)
        calls.append((args, time.perf_counter() - t0))
        return out

    monkeypatch.setattr(train_module, name, wrapper)
    return calls


# -- budgets ------------------------------------------------------------------------------------------------


def clock_before_each_step(monkeypatch) -> list:
    """The Counters and the budget used, as seen by the schedule just before every step starts."""
    seen = []
    original = train_module.Budget.schedule_fraction

    def spy_fraction(self, c):
        seen.append((c, self.used(c)))
        return original(self, c)

    monkeypatch.setattr(train_module.Budget, "schedule_fraction", spy_fraction)
    return seen


class FakeClock:
    """A budget clock that moves only when told (spies below charge each step and each evaluation to it)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


STEP_S, EVAL_S = 0.125, 0.25  # binary fractions: the sums below are exact


def test_seconds_budget_ends_within_one_step_and_excludes_slow_evaluation(corpus, monkeypatch):
    """A 2 s budget on a fake clock: each step costs 0.125 s, each evaluation pass 0.25 s (two per record: the
    validation windows, then the training windows for the overfitting gap)."""
    clock = FakeClock()
    evals = spy(monkeypatch, "evaluate_windows", before=lambda *args: clock.advance(EVAL_S))
    spy(monkeypatch, "_step", before=lambda *args: clock.advance(STEP_S))
    before_step = clock_before_each_step(monkeypatch)
    cfg = tiny(budget=("seconds", 2.0), eval=EvalConfig(every_steps=4, val_tokens=256, final_full=False))
    result = train(cfg, corpus, clock=clock)
    assert [r.step for r in result.records] == [4, 8, 12, 16] and len(evals) == 2 * 4
    assert result.steps == len(before_step) == 16
    assert before_step[-1][1] == 1.875 < 2.0 == result.train_time_s  # the last step started inside the budget
    assert [r.train_time_s for r in result.records] == [0.5, 1.0, 1.5, 2.0]  # steps only, never evaluation
    assert result.wall_time_s == result.final.wall_time_s == 16 * STEP_S + 8 * EVAL_S  # everything
    # the seed's definition: validation (not the training windows) eats the budget, so fewer steps fit
    before_step.clear()
    seed_style = dataclasses.replace(cfg, budget=BudgetConfig(kind="seconds", value=2.0, count_eval_in_budget=True))
    result = train(seed_style, corpus, clock=clock)
    counters, last_used = before_step[-1]
    assert result.steps == 12 and counters.eval_time_s == 2 * EVAL_S  # two periodic validations, at 4 and 8
    assert last_used == 11 * STEP_S + 2 * EVAL_S < 2.0 <= result.train_time_s + counters.eval_time_s


def test_the_budget_clock_is_perf_counter_unless_a_test_injects_one():
    assert inspect.signature(train).parameters["clock"].default is time.perf_counter


def test_counted_budgets_stop_exactly_at_the_limit(corpus):
    cfg = tiny(budget=("steps", 7))
    assert train(cfg, corpus).steps == 7
    tokens_per_step = 8 * 32
    result = train(tiny(budget=("tokens", 5 * tokens_per_step + 100)), corpus)
    assert (result.steps, result.tokens) == (5, 5 * tokens_per_step)
    assert train(tiny(budget=("tokens", 3 * tokens_per_step)), corpus).tokens == 3 * tokens_per_step
    flops_per_step = training_flops_per_token(cfg.model, 32) * tokens_per_step
    for value, expected in ((3.5 * flops_per_step, 3), (4 * flops_per_step, 4)):
        result = train(tiny(budget=("flops", value)), corpus)
        assert result.steps == expected and result.final.flops <= value < result.final.flops + flops_per_step


def test_budgets_that_cannot_run_are_user_errors(corpus):
    with pytest.raises(StudyError, match="budget.value"):
        BudgetConfig(kind="seconds", value=-5)
    with pytest.raises(StudyError, match="smaller than one training step"):
        train(tiny(budget=("tokens", 100)), corpus)


def test_schedules_follow_the_budget_fraction():
    linear = TrainConfig(lr=1.0, schedule="linear", warmup_frac=0.1)
    assert [round(lr_at(linear, f), 6) for f in (0.0, 0.05, 0.1, 0.55, 1.0)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    cosine = TrainConfig(lr=1.0, schedule="cosine")
    assert lr_at(cosine, 0.0) == 1.0 and lr_at(cosine, 0.5) == pytest.approx(0.5) and lr_at(cosine, 1.0) < 1e-12
    assert lr_at(TrainConfig(lr=0.3), 0.9) == 0.3


def test_lr_decays_over_a_steps_budget(corpus):
    result = train(
        tiny(
            train=train_cfg(batch_size=8, lr=1e-2, schedule="linear"),
            eval=EvalConfig(every_steps=2, val_tokens=256, final_full=False),
        ),
        corpus,
    )
    lrs = [r.lr for r in result.records]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] == pytest.approx(1e-2 / 16)  # midpoint of the last step


# -- records, reports, divergence ----------------------------------------------------------------------------


def test_records_carry_the_metrics_columns_and_checkpoints_come_at_the_end(corpus):
    reports = []
    cfg = tiny("standard", eval=EvalConfig(every_steps=3, val_tokens=512, final_full=True))
    result = train(cfg, corpus, on_report=lambda record, state: reports.append((record, state)))
    provided = {f.name for f in dataclasses.fields(EvalRecord)}
    issue_columns = {"step", "tokens", "train_time_s", "wall_time_s", "flops", "lr", "train_loss", "val_loss"}
    issue_columns |= {"val_loss_seed", "val_bpc", "tokens_per_s", "is_final"}
    assert issue_columns <= provided <= set(METRICS_SCHEMA.names)
    assert [r.step for r in result.records] == [3, 6, 8] and [r.is_final for r in result.records] == [0, 0, 1]
    assert [(record.step, state is not None) for record, state in reports] == [(3, False), (6, False), (8, True)]
    final = result.final
    assert final.val_tokens == (len(corpus.val) // 33) * 32  # the whole split
    assert result.records[0].val_tokens == 512 and final.val_bpc == pytest.approx(final.val_loss / math.log(2))
    assert final.tokens == 8 * 8 * 32 and final.tokens_per_s > 0 and math.isfinite(final.train_loss)


def test_non_finite_loss_ends_the_run_as_diverged(corpus, poison_step):
    poison_step(at=3)
    reports = []
    result = train(tiny(budget=("steps", 10)), corpus, on_report=lambda r, s: reports.append((r, s)))
    assert result.status == "diverged" and result.steps == 3 and "step 3" in result.error
    assert result.final.is_final and math.isnan(result.final.val_loss)
    assert reports[-1][0] is result.final and reports[-1][1]["status"] == "diverged"


# -- identical data for every trial --------------------------------------------------------------------------


def test_same_seed_gives_the_same_batches_and_validation_stream_for_every_arch(corpus, monkeypatch):
    steps = spy(monkeypatch, "_step")
    evals = spy(monkeypatch, "evaluate_windows")
    for arch in ("standard", "worker"):
        train(tiny(arch, budget=("steps", 3), eval=EvalConfig(every_steps=2, val_tokens=256, final_full=False)), corpus)
    train(
        tiny(
            budget=("steps", 3),
            train=train_cfg(batch_size=8, seed=2),
            eval=EvalConfig(every_steps=2, val_tokens=256, final_full=False),
        ),
        corpus,
    )
    batches = [args[2:4] for args, _ in steps]  # (x, y) of each step, three steps per run
    for i in range(3):
        assert torch.equal(batches[i][0], batches[3 + i][0]) and torch.equal(batches[i][1], batches[3 + i][1])
    assert not torch.equal(batches[0][0], batches[6][0])  # another seed, other batches
    # periodic + final per run, each as (validation, training) windows, identical across archs and seeds
    windows = [args[1] for args, _ in evals]
    assert len(windows) == 12 and all(torch.equal(windows[i % 2], w) for i, w in enumerate(windows))
    assert not torch.equal(windows[0], windows[1])  # the training windows are not the validation windows
    assert windows[0].shape == (8, 33)


# -- exact resume ---------------------------------------------------------------------------------------------


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_resume_from_disk_is_bit_identical(corpus, tmp_path, arch):
    cfg = tiny(
        arch,
        budget=("steps", 8),
        train=train_cfg(batch_size=8, lr=3e-3, schedule="linear", warmup_frac=0.25, seed=5),
        eval=EvalConfig(every_steps=2, val_tokens=256, final_full=False),
        checkpoint_every_s=1e-9,  # a checkpoint at every step boundary
    )
    states = {}
    reports = []

    def keep(record, state):
        reports.append((record, state))
        states.update({state["step"]: state})

    straight = train(cfg, corpus, on_report=keep)
    assert [r.step if r else None for r, _ in reports] == [None, 2, None, 4, None, 6, None, 8]  # one call per step
    assert reports[-1][0].is_final and reports[-1][1]["step"] == 8

    path = tmp_path / "state.pt"

    def interrupt_at_half(record, state):
        if state is not None and state["step"] == 4:
            save_state(state, path)
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(cfg, corpus, on_report=interrupt_at_half)
    torch.manual_seed(999)  # a fresh process would have other global RNG states
    resumed_states = {}
    resumed = train(cfg, corpus, state=load_state(path), on_report=lambda r, s: resumed_states.update({s["step"]: s}))

    keys = ("step", "tokens", "lr", "train_loss", "val_loss", "val_loss_seed")
    tail = [{k: getattr(r, k) for k in keys} for r in straight.records if r.step > 4]
    assert [{k: getattr(r, k) for k in keys} for r in resumed.records] == tail
    end, resumed_end = states[8], resumed_states[8]
    for name, tensor in end["model"].items():
        assert torch.equal(tensor, resumed_end["model"][name]), name
    for index, slots in end["optimizer"]["state"].items():
        for slot, tensor in slots.items():
            assert torch.equal(tensor, resumed_end["optimizer"]["state"][index][slot])
    assert torch.equal(end["sampler"]["generator"], resumed_end["sampler"]["generator"])
    assert end["sampler"]["used"] == resumed_end["sampler"]["used"] == 8
    assert resumed.wall_time_s > resumed_states[8]["counters"]["train_time_s"]

    # a finished run resumed with the same budget does nothing more
    again = train(cfg, corpus, state=end)
    assert again.records == [] and again.final == straight.final and again.steps == 8


def test_a_checkpoint_from_an_older_release_resumes_and_only_a_real_difference_refuses_it(corpus):
    """A checkpoint saved before a model field or a counter existed lacks them: read like a config file, a field
    takes its default, the supervised-target count is derived from the steps, and the run continues. A
    checkpoint of another model is refused, naming the field."""
    model = ModelConfig(block_size=32, n_embd=32, n_head=2, n_layer=1, dropout=0.0, worker_interval=4)
    cfg = tiny(
        "worker", budget=("steps", 4), model=model, checkpoint_every_s=1e-9,
        eval=EvalConfig(every_steps=2, val_tokens=256, final_full=False),
    )  # fmt: skip
    states = {}
    straight = train(cfg, corpus, on_report=lambda record, state: states.update({state["step"]: state}))
    old = {**states[2], "config": {**states[2]["config"]}}
    old["config"]["model"] = {k: v for k, v in old["config"]["model"].items() if k != "rope_base"}
    old["counters"] = {k: v for k, v in old["counters"].items() if k not in ("next_eval_s", "targets")}
    resumed = train(cfg, corpus, state=old)
    assert resumed.steps == 4 and resumed.final.targets == straight.final.targets
    other = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, conv_kernel=5))
    with pytest.raises(StudyError, match=r"conv_kernel=3 \(now 5\)"):
        train(other, corpus, state=states[2])


def test_warm_up_leaves_the_run_unchanged(corpus):
    """The compile / CUDA warm-up runs a forward, backward, clip and AdamW step off the clock: no trace."""
    cfg = tiny("worker", budget=("steps", 4), eval=EvalConfig(every_steps=2, val_tokens=256, final_full=False))
    plain = train(cfg, corpus)
    run = train_module._Run(cfg, corpus, time.perf_counter(), fresh=True)
    before = {name: p.detach().clone() for name, p in run.model.named_parameters()}
    run._warm_up_once()
    assert all(torch.equal(p, before[name]) for name, p in run.model.named_parameters())
    assert not run.optimizer.state and all(p.grad is None for p in run.model.parameters())
    warmed = run.loop(lambda record, state: None, False, None)
    assert [(r.train_loss, r.val_loss) for r in warmed.records] == [(r.train_loss, r.val_loss) for r in plain.records]


def test_state_files_are_atomic_and_bad_ones_are_user_errors(tmp_path):
    path = tmp_path / "ckpt" / "state.pt"
    save_state({"step": 3, "weights": torch.arange(4)}, path)
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]
    assert torch.equal(load_state(path)["weights"], torch.arange(4))
    with pytest.raises(StudyError, match="does not exist"):
        load_state(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(StudyError, match="could not be read"):
        load_state(tmp_path / "junk.pt")


# -- bad input ------------------------------------------------------------------------------------------------


def test_bad_data_for_the_run_is_a_user_error(corpus, tmp_path):
    with pytest.raises(StudyError, match="seq_len=200000 is too long"):
        train(
            dataclasses.replace(tiny(), model=ModelConfig(block_size=200_000, n_embd=32, n_head=2, n_layer=1)), corpus
        )
    (tmp_path / "short.txt").write_text("abcdefghij" * 3)
    short = load_corpus(DataConfig(corpus=str(tmp_path / "short.txt")))
    with pytest.raises(StudyError, match="too long for corpus"):
        train(tiny(), short)
    small_vocab = dataclasses.replace(tiny(), model=dataclasses.replace(tiny().model, vocab_size=10))
    with pytest.raises(StudyError, match="vocab_size=10"):
        train(small_vocab, corpus)


# -- it learns ------------------------------------------------------------------------------


def test_loss_drops_clearly_below_the_unigram_entropy(corpus):
    counts = np.bincount(corpus.train, minlength=len(corpus.vocab)).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    unigram_entropy = float(-(p * np.log(p)).sum())
    assert 3.2 < unigram_entropy < 3.4
    cfg = tiny(
        "worker",
        budget=("steps", 300),
        model=ModelConfig(block_size=64, n_embd=32, n_head=2, n_layer=2, dropout=0.0),
        train=train_cfg(batch_size=16, lr=3e-3),
        eval=EvalConfig(final_full=True),
    )
    result = train(cfg, corpus)
    assert result.status == "completed"
    assert result.final.val_loss < unigram_entropy - 0.6


def test_the_mixer_ablation_trains_and_evaluates_every_position_in_one_pass(corpus):
    cfg = tiny("standard-mixer", budget=("steps", 20), eval=EvalConfig(every_steps=10, val_tokens=256))
    result = train(cfg, corpus)
    assert result.status == "completed" and math.isfinite(result.final.val_loss)
    assert all(r.val_loss == r.val_loss_seed for r in result.records)  # no worker positions: both metrics agree
    tokens_per_step = cfg.train.batch_size * cfg.seq_len
    assert result.final.flops == 20 * training_flops_per_token(cfg.model, cfg.seq_len) * tokens_per_step


@pytest.mark.parametrize("arch", ["standard", "worker"])
def test_targets_count_the_positions_the_training_loss_was_taken_at(corpus, arch):
    """Input tokens and supervised targets differ for the worker model: its loss covers only its worker rows."""
    model = ModelConfig(arch=arch, block_size=32, n_embd=32, n_head=2, n_layer=1, dropout=0.0, worker_interval=4)
    cfg = tiny(arch, budget=("steps", 6), model=model, eval=EvalConfig(every_steps=3, val_tokens=256))
    result = train(cfg, corpus)
    per_step = cfg.train.batch_size * (32 if arch == "standard" else 8)  # phase 0 of k=4 at T=32: 8 workers
    assert [r.targets for r in result.records] == [3 * per_step, 6 * per_step]  # step 3, then the final one
    assert all(r.target_epochs == r.targets / len(corpus.train) for r in result.records)
    assert all(r.eval_time_s > 0 for r in result.records)
    random_phase = train(dataclasses.replace(cfg, model=dataclasses.replace(model, random_worker_phase=True)), corpus)
    if arch == "worker":  # phases 1-3 have 8 regular workers plus the always-on last position
        assert 6 * per_step <= random_phase.final.targets <= 6 * cfg.train.batch_size * 9


def test_records_carry_epochs_and_the_train_minus_val_gap(corpus):
    result = train(tiny(budget=("steps", 4), eval=EvalConfig(every_steps=2, val_tokens=256, final_full=False)), corpus)
    for record in result.records:
        assert record.epochs == pytest.approx(record.tokens / len(corpus.train))
        assert record.train_minus_val == pytest.approx(record.train_eval_loss - record.val_loss)
        assert math.isfinite(record.train_eval_loss) and record.train_eval_loss != record.val_loss
    assert [r.epochs for r in result.records] == sorted(r.epochs for r in result.records)
