"""Training-step throughput of both architectures and attention implementations (`wt-study bench`).

For each setting: forward + backward + AdamW step time (median over timed steps after warm-up), tokens/s, and
model FLOP utilisation = analytic training FLOPs per second (`wt_model.flops`, the study's convention) over a
matmul peak measured in the same run (best of a few large `torch.mm`). fp32 on CPU; bf16 autocast on CUDA, with
a synchronize before every clock read.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace

import torch

from wt_model import ModelConfig, build_model
from wt_model.flops import training_flops_per_sequence


@dataclass(frozen=True)
class BenchCase:
    cfg: ModelConfig
    batch_size: int
    seq_len: int


@dataclass(frozen=True)
class BenchResult:
    case: BenchCase
    step_ms: float  # median over the timed steps
    tokens_per_s: float
    tflops_per_s: float  # analytic training FLOPs / step time


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_tflops(device: torch.device, size: int = 2048, reps: int = 5) -> float:
    """Best observed TFLOP/s of a size x size matmul (fp32 on CPU, bf16 on CUDA). The bench measures it
    before every case and keeps the best, so a busy moment on a shared machine does not deflate the peak."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        size = max(size, 8192)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12


def time_training_steps(case: BenchCase, device: torch.device, steps: int, warmup: int, seed: int = 0) -> float:
    """Median seconds of one forward + backward + AdamW step on random tokens."""
    torch.manual_seed(seed)
    model = build_model(case.cfg).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    shape = (case.batch_size, case.seq_len)
    x = torch.randint(0, case.cfg.vocab_size, shape, device=device)
    y = torch.randint(0, case.cfg.vocab_size, shape, device=device)
    use_autocast = device.type == "cuda"
    times = []
    for step in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast):
            _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_case(case: BenchCase, device: torch.device, steps: int, warmup: int) -> BenchResult:
    step_s = time_training_steps(case, device, steps, warmup)
    flops = case.batch_size * training_flops_per_sequence(case.cfg, case.seq_len)
    tflops = flops / step_s / 1e12
    return BenchResult(
        case=case,
        step_ms=1e3 * step_s,
        tokens_per_s=case.batch_size * case.seq_len / step_s,
        tflops_per_s=tflops,
    )


def bench_cases(
    base: ModelConfig,
    shapes: list[tuple[int, int]],
    archs: list[str],
    attentions: list[str],
    dropout_zero_row: bool,
) -> list[BenchCase]:
    """Every (seq_len, batch) x arch x attention, plus per arch an sdpa row with dropout 0 (dropout's cost)."""
    cases = []
    for seq_len, batch_size in shapes:
        cfg = replace(base, block_size=max(base.block_size, seq_len))
        for arch in archs:
            for attention in attentions:
                cases.append(BenchCase(replace(cfg, arch=arch, attention=attention), batch_size, seq_len))
            if dropout_zero_row and cfg.dropout > 0:
                attention = "sdpa" if "sdpa" in attentions else attentions[0]
                cases.append(BenchCase(replace(cfg, arch=arch, attention=attention, dropout=0.0), batch_size, seq_len))
    return cases


def format_table(results: list[BenchResult], peak_tflops: float) -> str:
    """Aligned text table. MFU = TFLOP/s over `peak_tflops`. `vs std` is the standard-sdpa step time at the
    same shape and dropout over this row's, measured side by side (the fair speed ratio on a shared machine)."""
    reference = {
        (r.case.seq_len, r.case.batch_size, r.case.cfg.dropout): r.step_ms
        for r in results
        if r.case.cfg.arch == "standard" and r.case.cfg.attention == "sdpa"
    }
    header = ("arch", "attention", "dropout", "T", "batch", "ms/step", "tokens/s", "TFLOP/s", "MFU", "vs std")
    rows = [header]
    for r in results:
        c = r.case
        ref = reference.get((c.seq_len, c.batch_size, c.cfg.dropout))
        rows.append(
            (
                c.cfg.arch,
                c.cfg.attention,
                f"{c.cfg.dropout:g}",
                str(c.seq_len),
                str(c.batch_size),
                f"{r.step_ms:,.0f}",
                f"{r.tokens_per_s:,.0f}",
                f"{r.tflops_per_s:.3f}",
                f"{100 * r.tflops_per_s / peak_tflops:.0f}%",
                f"{ref / r.step_ms:.2f}x" if ref else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
