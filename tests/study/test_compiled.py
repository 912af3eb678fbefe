"""train.compile modes, and the loop's windowed reads of the clock and the losses (the CUDA path, run here on
the CPU with a window forced above 1): same records, exact step-counted budgets and evaluations, divergence
named at its step, a seconds budget ending at the first read at/after it."""

from __future__ import annotations

import math

import pytest
import torch

import study.train.compiled as compiled_module
import study.train.evaluation as evaluation_module
import study.train.loop as train_module
from study.config.run import BudgetConfig, DataConfig, EvalConfig, RunConfig, TrainConfig, from_mapping
from study.train.compiled import LossWindow, compile_mode
from study.train.corpora import load_corpus
from study.train.loop import train
from wt_base.errors import StudyError
from wt_model import ModelConfig, archs
from wt_model.dynamo import limit_setting


@pytest.fixture(scope="module")
def corpus(excerpt):
    return load_corpus(DataConfig(corpus=excerpt))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def tiny(arch="worker", budget=("steps", 10), every_steps=3, dropout=0.1, compile=False) -> RunConfig:
    return RunConfig(
        model=ModelConfig(
            arch=arch, block_size=32, n_embd=32, n_head=2, n_layer=1, dropout=dropout, random_worker_phase=True
        ),
        train=TrainConfig(device="cpu", threads=1, batch_size=8, lr=3e-3, seed=1, compile=compile),
        budget=BudgetConfig(kind=budget[0], value=budget[1]),
        eval=EvalConfig(every_steps=every_steps, val_tokens=256, final_full=False),
    )


def test_compile_takes_the_old_booleans_and_the_modes():
    for value in (True, False, "off", "default", "reduce-overhead", "auto"):
        assert from_mapping(TrainConfig, {"compile": value}, "train").compile == value
    with pytest.raises(StudyError, match=r"train.compile='yes' is invalid: expected true, false or one of off, "):
        from_mapping(TrainConfig, {"compile": "yes"}, "train")


def test_compile_modes_resolve_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [compile_mode(s, cpu) for s in (False, True, "auto", "reduce-overhead")] == [
        "off",
        "default",
        "off",
        "default",
    ]
    assert [compile_mode(s, cuda) for s in ("off", True, "auto", "reduce-overhead")] == [
        "off",
        "default",
        "reduce-overhead",
        "reduce-overhead",
    ]


def test_loss_window_hands_over_losses_in_step_order():
    window = LossWindow(3, torch.device("cpu"))
    for value in (1.5, 2.5):
        window.add(torch.tensor(value))
    assert len(window) == 2 and not window.full()
    window.add(torch.tensor(math.inf))
    assert window.full() and window.read() == [1.5, 2.5, math.inf] and len(window) == 0


def _records(result):
    return [(r.step, r.tokens, r.lr, r.train_loss, r.val_loss, r.val_loss_seed) for r in result.records]


def test_windowed_reads_give_the_same_run(corpus, monkeypatch):
    """Reads every 4 steps instead of every step: the same steps, evaluations (every 3 steps, off the window's
    grid) and mean training losses, bit for bit."""
    every_step = train(tiny(), corpus)
    monkeypatch.setattr(train_module, "_read_every", lambda device: 4)
    windowed = train(tiny(), corpus)
    assert [r.step for r in windowed.records] == [3, 6, 9, 10]
    assert _records(windowed) == _records(every_step)


def test_divergence_inside_a_window_names_its_step(corpus, monkeypatch, poison_step):
    poison_step(at=3)
    monkeypatch.setattr(train_module, "_read_every", lambda device: 4)
    result = train(tiny(every_steps=0), corpus)
    assert result.status == "diverged" and "at step 3" in result.error
    assert result.steps == 4  # the window's last step had been queued before the read


def test_a_seconds_budget_ends_at_the_first_read_at_or_after_it(corpus, monkeypatch):
    now = [0.0]
    real_step = train_module._step

    def step_costs_an_eighth(*args):
        now[0] += 0.125
        return real_step(*args)

    monkeypatch.setattr(train_module, "_step", step_costs_an_eighth)
    monkeypatch.setattr(train_module, "_read_every", lambda device: 4)
    result = train(tiny(budget=("seconds", 1.1), every_steps=0), corpus, clock=lambda: now[0])
    assert result.steps == 12 and result.train_time_s == 1.5  # reads at 0.5, 1.0 (< 1.1), 1.5 s


def test_a_compiled_run_matches_the_eager_run(corpus, monkeypatch):
    """compile=true trains and evaluates through the compiled model (here Dynamo + AOT autograd without code
    generation, to stay fast on a CPU); with dropout 0 it computes what eager does."""
    compiled_calls, real_compile = [], torch.compile

    def aot_eager(model, mode, dynamic):
        compiled_calls.append(mode)
        return real_compile(model, backend="aot_eager", dynamic=dynamic)

    cfg = tiny("standard", budget=("steps", 4), every_steps=2, dropout=0.0)
    eager = train(cfg, corpus)
    monkeypatch.setattr(compiled_module.torch, "compile", aot_eager)
    forwards, real_loss_sums = [], evaluation_module.loss_sums

    def spy_loss_sums(model, x, y, forward=None, rows=None):
        forwards.append(forward)
        return real_loss_sums(model, x, y, forward, rows)

    monkeypatch.setattr(evaluation_module, "loss_sums", spy_loss_sums)
    torch._dynamo.reset()
    limit = getattr(torch._dynamo.config, limit_setting())
    try:
        compiled = train(tiny("standard", budget=("steps", 4), every_steps=2, dropout=0.0, compile=True), corpus)
    finally:
        torch._dynamo.reset()
    assert getattr(torch._dynamo.config, limit_setting()) == limit  # raised for the compiled calls only, put back
    assert compiled_calls == ["default"]
    assert forwards and all(forward is not None for forward in forwards)  # evaluation ran compiled too
    for got, want in zip(_records(compiled), _records(eager), strict=True):
        assert got[:3] == want[:3] and got[3:] == pytest.approx(want[3:], rel=1e-5)


@pytest.mark.parametrize(("label", "expected"), [("standard", (1, 1)), ("worker-random-phase", (4, 4))])
def test_a_compiled_trial_compiles_every_graph_in_its_warm_up_and_none_after(corpus, monkeypatch, label, expected):
    """Every graph of a whole trial (training at each worker phase, the periodic and final evaluations, whose
    last batches are short: 11 and 159 windows of T=24 in batches of 8) is compiled in the warm-up, off the
    clock, and no later call compiles another: expected = (training graphs, evaluation graphs), one per phase.
    Counted by a backend (aot_eager underneath) that sees each graph Dynamo hands over, and every call of one."""
    aot_eager, real_compile = torch._dynamo.lookup_backend("aot_eager"), torch.compile
    stage, compiled_in, calls_after = ["before"], [], [0]

    def counting_backend(gm, example_inputs):
        compiled_in.append((stage[0], torch.is_grad_enabled()))  # grad on: a training graph
        graph = aot_eager(gm, example_inputs)

        def call(*args):
            calls_after[0] += stage[0] == "after"
            return graph(*args)

        return call

    def warm_up(run):
        stage[0] = "warm-up"
        real_warm_up(run)
        stage[0] = "after"

    real_warm_up = train_module._Run._warm_up
    monkeypatch.setattr(train_module._Run, "_warm_up", warm_up)
    monkeypatch.setattr(compiled_module.torch, "compile", lambda model, mode, dynamic: real_compile(
        model, backend=counting_backend, dynamic=dynamic
    ))  # fmt: skip
    arch, variant = archs.LABELS[label]
    model = ModelConfig(arch=arch.name, block_size=24, n_embd=16, n_head=2, n_layer=1, **dict(variant.overrides))
    cfg = RunConfig(
        model=model,
        train=TrainConfig(device="cpu", threads=1, batch_size=8, seed=1, compile=True),
        budget=BudgetConfig(kind="steps", value=6),
        eval=EvalConfig(every_steps=3, val_tokens=256, final_full=True),
    )
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    try:
        result = train(cfg, corpus)
    finally:
        torch._dynamo.reset()
    assert result.status == "completed" and [r.step for r in result.records] == [3, 6]
    assert result.final.val_tokens == 159 * 24  # the whole split: 19 full batches and one of 7
    n_train, n_eval = expected
    assert compiled_in == [("warm-up", True)] * n_train + [("warm-up", False)] * n_eval
    assert not torch._dynamo.utils.counters["graph_break"]
    # after the warm-up every pass ran a compiled graph: 6 steps, then per evaluation (validation and training
    # windows) one call per batch and phase: 2 + 2 batches periodic, 20 + 2 final
    assert calls_after[0] == 6 * 1 + (2 + 2 + 20 + 2) * n_eval
