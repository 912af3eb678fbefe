"""Training-step throughput of both architectures and attention implementations (`wt-study bench`).

For each setting: the training loop's step (forward, backward, gradient clipping at 1.0, AdamW, fused on CUDA)
time (median over timed samples after warm-up), tokens/s, and model FLOP utilisation = analytic training FLOPs
per second (`wt_model.flops`, the study's convention) over a matmul peak measured in the same run (best of a few
large `torch.mm`). fp32 on CPU; bf16 autocast on CUDA. Each setting runs eagerly or compiled as `train.compile`
would (`study.train.compiled`: "default", or "reduce-overhead" with CUDA graphs); compilation and graph recording
happen in the warm-up steps, off the clock.

Two clocks:
- `wall`: `time.perf_counter()`, with a synchronize before every read on CUDA. The GPU clock. On CUDA a sample
  is `steps_per_sample` steps queued back to back (as the training loop queues them between reads), divided.
- `cpu`: `time.process_time()`, the CPU time of this process, for steps and for the matmul peak alike. On a
  shared CPU machine, other processes stretch wall-clock time but hardly this process's CPU time, so MFU
  (FLOPs per CPU-second over the peak's FLOPs per CPU-second) stays stable. Meant for 1 thread, where CPU
  time is the time of the one thread doing the work.

A second copy of `wt_model` (e.g. a `git worktree` of an older commit) can be timed alongside: its steps
alternate with this copy's on the same case, so a busy moment hits both and the before/after ratio is fair.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from study.config.regime import step_amounts
from study.train.compiled import compile_model
from wt_model import ModelConfig, archs, build_model, evaluate_batch

ModelBuilder = Callable[[ModelConfig], nn.Module]


@dataclass(frozen=True)
class BenchCase:
    cfg: ModelConfig
    batch_size: int
    seq_len: int
    compile: str = "off"  # a resolved `compile_mode`: "off", "default" or "reduce-overhead"
    label: str = ""  # the spec's arch label ("worker-random-phase"); "" means cfg.arch

    @property
    def arch_label(self) -> str:
        return self.label or self.cfg.arch

    @property
    def arm(self) -> str:
        """'worker k=4', 'standard': the label with the worker interval where the architecture has one."""
        from wt_model.archs import applies

        interval = applies("worker_interval", self.cfg.arch)
        return f"{self.arch_label} k={self.cfg.worker_interval}" if interval else self.arch_label

    @property
    def size(self) -> str:
        """'d64 L2 H2 F256': width, depth, heads and FFN width."""
        c = self.cfg
        return f"d{c.n_embd} L{c.n_layer} H{c.n_head} F{c.ffn_width}"


@dataclass(frozen=True)
class BenchResult:
    case: BenchCase
    step_ms: float  # median over the timed steps
    tokens_per_s: float
    tflops_per_s: float  # analytic training FLOPs / step time
    version: str = ""  # "" for this copy of wt_model; "before" for the baseline copy
    step_ms_p10: float = float("nan")  # 10th and 90th percentiles of the timed samples
    step_ms_p90: float = float("nan")
    n_samples: int = 0  # timed samples behind the median
    eval_s_per_token: float | None = None  # evaluation seconds per validation position (None: not measured)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _now(clock: str, device: torch.device) -> float:
    """Seconds on `clock`; synchronises CUDA first so queued kernels are counted."""
    _sync(device)
    return time.process_time() if clock == "cpu" else time.perf_counter()


def matmul_peak_tflops(device: torch.device, size: int = 2048, reps: int = 5, clock: str = "wall") -> float:
    """Best observed TFLOP/s of a size x size matmul (fp32 on CPU, bf16 on CUDA) on `clock`. The bench measures
    it before every case and keeps the best, so a busy moment on a shared machine does not deflate the peak."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        size = max(size, 8192)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(reps):
        start = _now(clock, device)
        torch.mm(a, b)
        best = min(best, _now(clock, device) - start)
    return 2 * size**3 / best / 1e12


def _model_and_batch(case: BenchCase, device: torch.device, build: ModelBuilder, seed: int):
    """A fresh model, its forward (compiled per `case.compile`) and fixed random tokens x, y (B, T)."""
    torch.manual_seed(seed)
    model = build(case.cfg).to(device).train()
    shape = (case.batch_size, case.seq_len)
    x = torch.randint(0, case.cfg.vocab_size, shape, device=device)
    y = torch.randint(0, case.cfg.vocab_size, shape, device=device)
    return model, compile_model(model, case.compile), x, y


def training_step(case: BenchCase, device: torch.device, build: ModelBuilder = build_model, seed: int = 0):
    """A closure running one training step of a fresh model on fixed random tokens, as the loop's `_step` does
    (compiled per `case.compile`; fused AdamW on CUDA)."""
    model, forward, x, y = _model_and_batch(case, device, build, seed)
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-3, fused=True if device.type == "cuda" else None)
    use_autocast = device.type == "cuda"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast):
            _, loss = forward(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def evaluation_pass(case: BenchCase, device: torch.device, build: ModelBuilder = build_model, seed: int = 0):
    """A closure running the evaluation passes of one batch of `case.batch_size` windows, as the loop evaluates
    (wt_model.evaluate_batch: every worker phase of a sparse model; eval mode, the compiled forward, autocast on
    CUDA). It covers batch_size * seq_len validation positions."""
    model, forward, x, y = _model_and_batch(case, device, build, seed)
    model.eval()
    forward = None if case.compile == "off" else forward

    def evaluate() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            evaluate_batch(model, x, y, forward)

    return evaluate


def time_samples(
    steps: list[Callable[[], None]],
    device: torch.device,
    n: int,
    warmup: int,
    clock: str = "wall",
    steps_per_sample: int = 1,
) -> list[list[float]]:
    """Seconds per call of each step function in each of `n` samples of `steps_per_sample` calls, after `warmup`
    untimed samples; the functions take turns (A, B, A, B, ...)."""
    times: list[list[float]] = [[] for _ in steps]
    for i in range(warmup + n):
        for step, samples in zip(steps, times, strict=True):
            start = _now(clock, device)
            for _ in range(steps_per_sample):
                step()
            if i >= warmup:
                samples.append((_now(clock, device) - start) / steps_per_sample)
    return times


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) of the samples, linear between order statistics (numpy's default)."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def make_result(case: BenchCase, samples_s: list[float], version: str = "") -> BenchResult:
    """The result of timed samples (seconds per step): median, p10 and p90, throughput at the median."""
    step_s = statistics.median(samples_s)
    flops = step_amounts(case.cfg, case.seq_len, case.batch_size)["flops"]
    return BenchResult(
        case=case,
        step_ms=1e3 * step_s,
        tokens_per_s=case.batch_size * case.seq_len / step_s,
        tflops_per_s=flops / step_s / 1e12,
        version=version,
        step_ms_p10=1e3 * percentile(samples_s, 10),
        step_ms_p90=1e3 * percentile(samples_s, 90),
        n_samples=len(samples_s),
    )


def import_build_model(src: Path) -> ModelBuilder:
    """`build_model` of the `wt_model` package under `src` (e.g. `git worktree add /tmp/before <sha>`),
    imported as a separate module tree; this process's own `wt_model` modules are restored afterwards.
    Models built by it keep running the old code: functions hold their own module's globals."""
    src = src.resolve()
    if not (src / "wt_model" / "__init__.py").is_file():
        raise FileNotFoundError(f"baseline source {src} has no wt_model/__init__.py")

    def ours(name: str) -> bool:
        return name == "wt_model" or name.startswith("wt_model.")

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(src))
    try:
        package = importlib.import_module("wt_model")
        if not Path(package.__file__).resolve().is_relative_to(src):
            raise FileNotFoundError(f"baseline source {src}: imported {package.__file__} instead")
        build, config_class = package.build_model, package.ModelConfig
    finally:
        sys.path.remove(str(src))
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)

    def build_baseline(cfg: ModelConfig) -> nn.Module:
        """The same model through the baseline's own ModelConfig: the fields it knows, with the FFN width
        resolved (ours keeps ffn_hidden=0 as given; older copies read the field as the width). ValueError when
        it cannot build `cfg` (an attention it does not know, say)."""
        known = {f.name for f in dataclasses.fields(config_class)}
        fields = {name: value for name, value in dataclasses.asdict(cfg).items() if name in known}
        fields["ffn_hidden"] = cfg.ffn_width
        return build(config_class(**fields))

    return build_baseline


CSV_COLUMNS = (
    "device",
    "torch",
    "clock",
    "version",
    "arch",
    "attention",
    "compile",
    "dropout",
    "seq_len",
    "batch_size",
    "step_ms",
    "tokens_per_s",
    "tflops_per_s",
    "peak_tflops",
)


def append_csv(path: Path, result: BenchResult, peak_tflops: float, device: str, clock: str) -> None:
    """Append one result as a CSV row (a header first when the file is new), so a run cut short keeps its rows.
    `peak_tflops` is the best matmul peak measured so far in the run."""
    c = result.case
    values = (device, torch.__version__, clock, result.version or "after", c.arch_label, c.cfg.attention, c.compile)
    values += (c.cfg.dropout, c.seq_len, c.batch_size, result.step_ms, result.tokens_per_s, result.tflops_per_s)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(CSV_COLUMNS)
        writer.writerow((*values, peak_tflops))


def bench_cases(
    base: ModelConfig,
    shapes: list[tuple[int, int]],
    archs: list[str],
    attentions: list[str],
    dropout_zero_row: bool,
    compiles: tuple[str, ...] = ("off",),
) -> list[BenchCase]:
    """Every (seq_len, batch) x compile mode x arch x attention, plus per arch an sdpa row with dropout 0
    (dropout's cost)."""
    cases = []
    for seq_len, batch_size in shapes:
        cfg = replace(base, block_size=max(base.block_size, seq_len))
        for mode in compiles:
            for arch in archs:
                for attention in attentions:
                    cases.append(BenchCase(replace(cfg, arch=arch, attention=attention), batch_size, seq_len, mode))
                if dropout_zero_row and cfg.dropout > 0:
                    attention = "sdpa" if "sdpa" in attentions else attentions[0]
                    zero = replace(cfg, arch=arch, attention=attention, dropout=0.0)
                    cases.append(BenchCase(zero, batch_size, seq_len, mode))
    return cases


def format_table(results: list[BenchResult], peak_tflops: float) -> str:
    """Aligned text table. MFU = TFLOP/s over `peak_tflops`. `vs std` is the standard-sdpa step time at the
    same shape, dropout, compile mode and version over this row's, measured side by side (the fair speed ratio
    on a shared machine). With baseline rows, `version` and `vs before` (the baseline's step time over this
    row's) appear."""

    def key(r: BenchResult) -> tuple:
        return (r.version, r.case.size, r.case.seq_len, r.case.batch_size, r.case.cfg.dropout, r.case.compile)

    sized = len({r.case.size for r in results}) > 1  # a model column only where the sizes differ

    reference = {
        key(r): r.step_ms for r in results if r.case.cfg.arch == archs.REFERENCE and r.case.cfg.attention == "sdpa"
    }
    before = {r.case: r.step_ms for r in results if r.version == "before"}
    header = (
        "arm",
        *(("model",) if sized else ()),
        "attention",
        "compile",
        "dropout",
        "T",
        "batch",
        "ms/step",
        "tokens/s",
        "TFLOP/s",
        "MFU",
        "vs std",
    )
    if before:
        header = ("version", *header, "vs before")
    rows = [header]
    for r in results:
        c = r.case
        ref = reference.get(key(r))
        row = (
            c.arm,
            *((c.size,) if sized else ()),
            c.cfg.attention,
            c.compile,
            f"{c.cfg.dropout:g}",
            str(c.seq_len),
            str(c.batch_size),
            f"{r.step_ms:,.0f}" if r.step_ms >= 100 else f"{r.step_ms:.2f}",
            f"{r.tokens_per_s:,.0f}",
            f"{r.tflops_per_s:.3f}",
            f"{100 * r.tflops_per_s / peak_tflops:.0f}%",
            f"{ref / r.step_ms:.2f}x" if ref else "-",
        )
        if before:
            speedup = f"{before[c] / r.step_ms:.2f}x" if r.version == "" and c in before else "-"
            row = (r.version or "after", *row, speedup)
        rows.append(row)
    n_left = 3 + bool(before) + sized  # text columns, left-aligned
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i < n_left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
