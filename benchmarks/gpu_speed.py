"""GPU speed check of issue #11: both models eager, compiled and with CUDA graphs at T=256 and T=1024 (the
original's settings: batch 16, dim 256, 4 layers, 4 heads, dropout 0.1, interval 4, bf16 autocast), the CUDA
tests of wt_model, one table and the targets.

Run on a GPU machine from the repository root (torch, pyyaml, pytest; Ray is not needed):

    PYTHONPATH=. python benchmarks/gpu_speed.py                # every step, within --budget-s
    PYTHONPATH=. python benchmarks/gpu_speed.py --steps graphs-1024 table

Each step is a subprocess under its own timeout, so a compile that hangs costs only its step; the bench rows are
appended to $OUT/bench.csv as they are measured (`wt-study bench --csv`), each step's output goes to
$OUT/<step>.log, and the table (with the targets) to $OUT/summary.txt. Steps that no longer fit in --budget-s
are reported as not run; run them in a second call with --steps.

Targets (docs/performance.md): standard sdpa <= 4 ms/step and >= 17% MFU at T=1024; the worker's steps/s at
least 2.0x the standard model's at T=1024 and 1.5x at T=256 (each model in its fastest configuration measured;
attention "flex" trains without dropout on attention weights, so its rows say so).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = [sys.executable, "-m", "study.cli", "bench", "--device", "cuda", "--batch-sizes", "16", "--steps", "10"]
BENCH += ["--warmup", "3", "--n-embd", "256", "--n-layer", "4", "--n-head", "4", "--worker-interval", "4"]
PYTEST = [sys.executable, "-m", "pytest", "-q", "--noconftest", "-p", "no:cacheprovider"]


def bench(seq_len: int, mode: str, archs: str, attention: str, dropout_row: bool) -> list[str]:
    args = ["--seq-lens", str(seq_len), "--compile", mode, "--archs", *archs.split(), "--attentions", attention]
    return BENCH + args + ([] if dropout_row else ["--no-dropout-row"])


def both(seq_len: int, mode: str, dropout_row: bool = False) -> list[list[str]]:
    """Both models with sdpa, then the worker with flex (its block-sparse mask; no attention dropout)."""
    return [
        bench(seq_len, mode, "standard worker", "sdpa", dropout_row),
        bench(seq_len, mode, "worker", "flex", False),
    ]


# name -> (timeout in seconds, commands), in the order they run by default (most telling first)
STEPS = {
    "eager-1024": (90, both(1024, "off", dropout_row=True)),
    "graphs-1024": (240, both(1024, "reduce-overhead")),
    "graphs-256": (180, both(256, "reduce-overhead")),
    "cuda-tests": (180, [PYTEST + ["tests/wt_model/test_compile.py", "-k", "cuda"]]),
    "cuda-check": (60, [[sys.executable, "benchmarks/cuda_check.py"]]),  # naive = sdpa, bf16 passes, generation
    "eager-256": (60, both(256, "off", dropout_row=True)),
    "compiled-1024": (180, both(1024, "default")),
    "compiled-256": (150, both(256, "default")),
    "wt-model-tests": (300, [PYTEST + ["tests/wt_model"]]),
}
MIN_STEP_S = 30  # a step that would get less than this is not started


def run_step(name: str, timeout_s: float, commands: list[list[str]], out: Path) -> str:
    """Run a step's commands in turn within `timeout_s` in all; their output goes to out/<name>.log."""
    deadline = time.monotonic() + timeout_s
    with (out / f"{name}.log").open("a") as log:
        for command in commands:
            left = deadline - time.monotonic()
            if left < 5:
                return "timed out"
            command = [*command, "--csv", str(out / "bench.csv")] if "bench" in command else command
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            try:
                done = subprocess.run(  # noqa: S603 - our own fixed commands
                    command, stdout=log, stderr=subprocess.STDOUT, timeout=left, check=False
                )
            except subprocess.TimeoutExpired:
                return "timed out"
            if done.returncode != 0:
                return f"exit {done.returncode}"
    return "ok"


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def table(rows: list[dict]) -> str:
    """The measured rows (ms/step, MFU against the best peak of all runs, speed vs the standard model at the
    same T, dropout and mode) and the targets."""
    if not rows:
        return "no bench rows were measured"
    peak = max(float(r["peak_tflops"]) for r in rows)
    std = {(r["seq_len"], r["dropout"], r["compile"]): float(r["step_ms"]) for r in rows if _is_std(r)}
    head = ("compile", "arch", "attention", "dropout", "T", "batch", "ms/step", "tokens/s", "MFU", "vs std")
    lines = [head]
    for r in rows:
        ref = std.get((r["seq_len"], r["dropout"], r["compile"]))
        ms = float(r["step_ms"])
        mfu = 100 * float(r["tflops_per_s"]) / peak
        attention = r["attention"] + ("*" if r["attention"] == "flex" else "")
        speed = f"{ref / ms:.2f}x" if ref else "-"
        lines.append((r["compile"], r["arch"], attention, r["dropout"], r["seq_len"], r["batch_size"]))
        lines[-1] += (f"{ms:.2f}", f"{float(r['tokens_per_s']):,.0f}", f"{mfu:.1f}%", speed)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = [
        "  ".join(
            cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    device = rows[0]["device"]
    text.insert(
        0, f"{device}, torch {rows[0]['torch']}, bf16 autocast; matmul peak {peak:.0f} TFLOP/s (best in these runs)"
    )
    text.append("* flex: no dropout on attention weights (FlexAttention has none); residual dropout stays")
    return "\n".join(text + [""] + targets(rows, peak))


def _is_std(r: dict) -> bool:
    return r["arch"] == "standard" and r["attention"] == "sdpa" and r["version"] == "after"


def targets(rows: list[dict], peak: float) -> list[str]:
    """MET / MISS per target, from each model's fastest row at dropout 0.1. The worker's ratio is given twice:
    its fastest row of any attention, and its fastest sdpa row (the same regularisation as the standard model's)."""

    def best(seq_len: int, arch: str, attentions: tuple[str, ...]) -> dict | None:
        found = [r for r in rows if r["seq_len"] == str(seq_len) and r["arch"] == arch and float(r["dropout"]) > 0]
        found = [r for r in found if r["attention"] in attentions and r["version"] == "after"]
        return min(found, key=lambda r: float(r["step_ms"])) if found else None

    def verdict(ok: bool) -> str:
        return "MET " if ok else "MISS"

    lines = []
    std = best(1024, "standard", ("sdpa",))
    if std is None:
        lines.append("standard T=1024: not measured")
    else:
        ms, mfu = float(std["step_ms"]), 100 * float(std["tflops_per_s"]) / peak
        line = f"standard sdpa T=1024: {ms:.2f} ms/step, {mfu:.1f}% MFU ({std['compile']}); target <= 4 ms, >= 17%"
        lines.append(f"{verdict(ms <= 4.0 and mfu >= 17.0)} {line}")
    for seq_len, want in ((1024, 2.0), (256, 1.5)):
        std = best(seq_len, "standard", ("sdpa",))
        for attentions in (("sdpa", "flex"), ("sdpa",)):
            worker = best(seq_len, "worker", attentions)
            if std is None or worker is None:
                lines.append(f"worker/standard T={seq_len} ({'/'.join(attentions)}): not measured")
                continue
            ratio = float(std["step_ms"]) / float(worker["step_ms"])
            how = f"worker {worker['attention']} {worker['compile']} vs standard sdpa {std['compile']}"
            lines.append(
                f"{verdict(ratio >= want)} worker/standard T={seq_len}: {ratio:.2f}x ({how}); target >= {want}x"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", nargs="+", default=[*STEPS, "table"], choices=[*STEPS, "table"])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_speed_out")))
    parser.add_argument("--budget-s", type=float, default=560.0, help="wall seconds for all steps together")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    status = {}
    for name in args.steps:
        if name == "table":
            continue
        timeout_s, commands = STEPS[name]
        left = deadline - time.monotonic()
        if left < MIN_STEP_S:
            status[name] = "not run (budget)"
            continue
        start = time.monotonic()
        status[name] = run_step(name, min(timeout_s, left), commands, args.out)
        print(f"{name}: {status[name]} ({time.monotonic() - start:.0f} s)", flush=True)
    summary = "\n".join(f"{name}: {state}" for name, state in status.items())
    summary += "\n\n" + table(read_rows(args.out / "bench.csv"))
    (args.out / "summary.txt").write_text(summary + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
