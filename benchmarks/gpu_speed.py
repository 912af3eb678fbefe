"""GPU speed check of issue #11: both models eager, compiled and with CUDA graphs at T=256 and T=1024 (the
original's settings: batch 16, dim 256, 4 layers, 4 heads, dropout 0.1, interval 4, bf16 autocast), the CUDA
tests (tests/wt_model/test_compile.py and tests/study/test_no_sync.py, `-k cuda`), one table and the targets.
`duel` trains both models for 60 s of a seconds budget each through the real loop (`wt-study train`, compile
auto), `seed-curves` runs benchmarks/seed_curves.py at the original's settings (its gap check: <= 0.06 at
steps 300, 1000, 2000); both read --data (TinyShakespeare by default: place it where wt-study finds it, or give
the file, on a machine without internet).
The `optimizer-tail` step times the step's tail (clip + AdamW) eager, as the loop runs it, against the same
inside torch.compile (CUDA graphs on CUDA): the measurement that decides whether the loop should compile it.
`--tiny` runs every step on a tiny shape (on the CPU by default: the CUDA-only steps are skipped there), to
check the script end to end without a GPU.

Run on a GPU machine from the repository root (torch, pyyaml, pytest; Ray is not needed):

    PYTHONPATH=. python benchmarks/gpu_speed.py                # every step, within --budget-s
    PYTHONPATH=. python benchmarks/gpu_speed.py --steps graphs-1024 table
    PYTHONPATH=. python benchmarks/gpu_speed.py --tiny --out /tmp/gpu_speed_tiny   # every step, tiny, on a CPU

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
from dataclasses import dataclass, replace
from pathlib import Path

PYTEST = [sys.executable, "-m", "pytest", "-q", "--noconftest", "-p", "no:cacheprovider"]
CUDA_TESTS = ["tests/wt_model/test_compile.py", "tests/study/test_no_sync.py", "-k", "cuda"]
# skipped off CUDA: the CUDA tests would only be skipped there, and reduce-overhead is compiled-* off CUDA
CUDA_ONLY = ("cuda-tests", "cuda-check", "graphs-1024", "graphs-256")


@dataclass(frozen=True)
class Setup:
    """What the bench rows run on: the device, the two sequence lengths (the rows named 1024 and 256 run at
    `long` and `short`), the batch, the timed and warm-up steps and the model (interval 4)."""

    device: str
    long: int
    short: int
    batch: int
    steps_timed: int
    warmup: int
    n_embd: int
    n_layer: int
    n_head: int
    judged: bool = True  # the rows are the original's settings: the targets apply
    curve_steps: int = 2000  # seed-curves: steps per model (the original's 2000), evaluated every curve_every
    curve_every: int = 100
    duel_s: float = 60.0  # duel: seconds of training per model through the real loop
    data: str = "tinyshakespeare"  # the corpus of seed-curves and the duel (a name, or a file on that machine)

    def model_flags(self) -> list[str]:
        return ["--n-embd", str(self.n_embd), "--n-layer", str(self.n_layer), "--n-head", str(self.n_head)]

    def bench(self, seq_len: int, mode: str, archs: str, attention: str, dropout_row: bool) -> list[str]:
        args = ["--seq-lens", str(seq_len), "--compile", mode, "--archs", *archs.split(), "--attentions", attention]
        head = [sys.executable, "-m", "study.cli", "bench", "--device", self.device, "--batch-sizes", str(self.batch)]
        head += ["--steps", str(self.steps_timed), "--warmup", str(self.warmup), "--worker-interval", "4"]
        return head + self.model_flags() + args + ([] if dropout_row else ["--no-dropout-row"])

    def both(self, seq_len: int, mode: str, dropout_row: bool = False) -> list[list[str]]:
        """Both models with sdpa, then the worker with flex (its block-sparse mask; no attention dropout)."""
        return [
            self.bench(seq_len, mode, "standard worker", "sdpa", dropout_row),
            self.bench(seq_len, mode, "worker", "flex", False),
        ]

    def seed_curves(self) -> list[str]:
        """benchmarks/seed_curves.py at this setup's shape: both models by steps, the original's protocol."""
        shape = ["--seq-len", str(self.long), "--batch-size", str(self.batch), *self.model_flags()]
        every = ["--steps", str(self.curve_steps), "--every", str(self.curve_every)]
        script = [sys.executable, "benchmarks/seed_curves.py", "--device", self.device, "--data", self.data]
        return [*script, *shape, *every]

    def duel(self) -> list[list[str]]:
        """Both models for duel_s seconds of training each through the real loop (`wt-study train`, no Ray), at
        the original's settings (lr 3e-4 constant, dropout 0.1; the standard model with its naive attention),
        compile auto: what a seconds-budget trial gets."""
        common = [sys.executable, "-m", "study.cli", "train", "--device", self.device, "--data", self.data]
        common += ["--seq-len", str(self.long), "--batch-size", str(self.batch), *self.model_flags()]
        common += ["--lr", "3e-4", "--dropout", "0.1", "--compile", "auto", "--budget-kind", "seconds"]
        common += ["--budget", f"{self.duel_s:g}", "--eval-every-s", f"{self.duel_s / 4:g}", "--no-final-full"]
        return [
            [*common, "--arch", arch, "--attention", attention]
            for arch, attention in (("standard", "naive"), ("standard", "sdpa"), ("worker", "sdpa"))
        ]

    def steps(self) -> dict[str, tuple[float, list[list[str]]]]:
        """name -> (timeout in seconds, commands), in the order they run by default (most telling first)."""
        long, short = self.long, self.short
        return {
            "eager-1024": (90, self.both(long, "off", dropout_row=True)),
            "graphs-1024": (240, self.both(long, "reduce-overhead")),
            "graphs-256": (180, self.both(short, "reduce-overhead")),
            "cuda-tests": (180, [PYTEST + CUDA_TESTS]),
            "duel": (3 * self.duel_s + 150, self.duel()),
            "seed-curves": (420, [self.seed_curves()]),
            "cuda-check": (60, [[sys.executable, "benchmarks/cuda_check.py"]]),  # naive = sdpa, bf16, generation
            "eager-256": (60, self.both(short, "off", dropout_row=True)),
            "compiled-1024": (180, self.both(long, "default")),
            "compiled-256": (150, self.both(short, "default")),
            "wt-model-tests": (300, [PYTEST + ["tests/wt_model"]]),
            "optimizer-tail": (240, [[sys.executable, __file__, "--tail", self.device, *self.model_flags()]]),
        }


# the original's settings on CUDA; a smoke run of every step (--tiny), meant for a CPU
FULL = Setup("cuda", 1024, 256, batch=16, steps_timed=10, warmup=3, n_embd=256, n_layer=4, n_head=4)
TINY = Setup("cpu", 64, 32, batch=2, steps_timed=2, warmup=1, n_embd=32, n_layer=1, n_head=2, judged=False)
TINY = replace(TINY, curve_steps=20, curve_every=10, duel_s=4.0, data="tests/data/tinyshakespeare-excerpt.txt")
STEPS = FULL.steps()  # the step names (the same for every setup)
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


def table(rows: list[dict], setup: Setup = FULL) -> str:
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
    device, dtype = rows[0]["device"], "bf16 autocast" if setup.device.startswith("cuda") else "fp32"
    text.insert(0, f"{device}, torch {rows[0]['torch']}, {dtype}; matmul peak {peak:.3g} TFLOP/s (best in these runs)")
    text.append("* flex: no dropout on attention weights (FlexAttention has none); residual dropout stays")
    if not setup.judged:
        note = f"targets: not judged (they are for the original's settings on CUDA; T={setup.long}/{setup.short} here)"
        return "\n".join([*text, "", note])
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


def optimizer_tail(device_name: str, n_embd: int, n_layer: int, n_head: int, calls: int = 20) -> None:
    """Print the training step's tail (clip_grad_norm_ at 1.0, then AdamW) on the bench's worker model: as the
    loop runs it (eager; fused AdamW on CUDA, the for-loop one on a CPU) and both inside one torch.compile
    (a tensor lr, so a schedule does not recompile it; on CUDA capturable AdamW in mode reduce-overhead). Median
    ms per call after warm-up: wall clock, synchronised, on CUDA; on a CPU one thread and its CPU time, as
    `wt-study bench` clocks a CPU. The compile time (wall) is printed, not timed."""
    import statistics

    import torch

    from wt_model import ModelConfig, build_model

    device = torch.device(device_name)
    cuda = device.type == "cuda"
    if not cuda:
        torch.set_num_threads(1)
    torch.manual_seed(0)
    params = list(build_model(ModelConfig(n_embd=n_embd, n_layer=n_layer, n_head=n_head)).to(device).parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3

    def tail(optimizer):
        def run() -> None:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()

        return run

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    clock = time.perf_counter if cuda else time.process_time

    def median_ms(run) -> float:
        times = []
        for _ in range(calls):
            sync()
            start = clock()
            run()
            sync()
            times.append(clock() - start)
        return 1e3 * statistics.median(times[3:])

    print(f"tail: {sum(p.numel() for p in params):,} parameters in {len(params)} tensors on {device}", flush=True)
    eager = tail(torch.optim.AdamW(params, lr=1e-3, fused=True if cuda else None))
    print(f"tail eager ({'fused' if cuda else 'for-loop'} AdamW, the loop's): {median_ms(eager):.3f} ms", flush=True)
    mode = "reduce-overhead" if cuda else "default"
    lr = torch.tensor(1e-3, device=device)  # a tensor lr needs capturable AdamW on CUDA (foreach there)
    compiled = torch.compile(tail(torch.optim.AdamW(params, lr=lr, capturable=cuda)), mode=mode)
    start = time.perf_counter()
    compiled()
    compile_s = time.perf_counter() - start
    how = f"{mode}, {'capturable ' if cuda else ''}AdamW, tensor lr"
    print(f"tail compiled ({how}): {median_ms(compiled):.3f} ms, compile {compile_s:.0f} s wall")


def logged_results(out: Path) -> list[str]:
    """What the non-bench steps measured, from their logs: the optimizer tail's lines, each duel run's command
    and final line, and seed-curves' table with its verdict."""
    parts = []
    tail = out / "optimizer-tail.log"
    if tail.exists():
        parts.append("\n".join(line for line in tail.read_text().splitlines() if line.startswith("tail")))
    duel = out / "duel.log"
    if duel.exists():
        said = []
        for line in duel.read_text().splitlines():
            if line.startswith("$ "):
                words = line.split()
                said.append(f"duel, {words[words.index('--arch') + 1]} {words[words.index('--attention') + 1]}:")
            elif line.startswith("done:"):
                said[-1] += " " + line
        parts.append("\n".join(said))
    curves = out / "seed-curves.log"
    if curves.exists():
        text = curves.read_text()
        found = "\n| step" in text
        parts.append(text[text.index("\n| step") + 1 :] if found else "seed-curves: no table (see its log)")
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", nargs="+", default=[*STEPS, "table"], choices=[*STEPS, "table"])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_speed_out")))
    parser.add_argument("--budget-s", type=float, default=560.0, help="wall seconds for all steps together")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help=f"a smoke run of every step: T={TINY.long}/{TINY.short} for the 1024/256 rows, a tiny model, "
        "2 timed steps, on the CPU unless --device says otherwise; no targets judged",
    )
    parser.add_argument("--device", default=None, help="the bench device: cuda (default), or cpu with --tiny")
    parser.add_argument(
        "--data",
        default=None,
        help="corpus of the seed-curves and duel steps: a name or a text file on this machine (default: "
        "tinyshakespeare, found or downloaded as wt-study finds it; the committed excerpt with --tiny)",
    )
    parser.add_argument("--tail", metavar="DEVICE", help="only the optimizer-tail measurement, on DEVICE")
    for flag, default in (("--n-embd", FULL.n_embd), ("--n-layer", FULL.n_layer), ("--n-head", FULL.n_head)):
        parser.add_argument(flag, type=int, default=default, help="the model of --tail")
    args = parser.parse_args()
    if args.tail:
        optimizer_tail(args.tail, args.n_embd, args.n_layer, args.n_head)
        return 0
    setup = TINY if args.tiny else FULL
    setup = replace(setup, device=args.device) if args.device else setup
    setup = replace(setup, data=args.data) if args.data else setup
    steps = setup.steps()
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    status = {}
    for name in args.steps:
        if name == "table":
            continue
        timeout_s, commands = steps[name]
        left = deadline - time.monotonic()
        if name in CUDA_ONLY and not setup.device.startswith("cuda"):
            status[name] = "skipped (needs CUDA)"
            continue
        if left < MIN_STEP_S:
            status[name] = "not run (budget)"
            continue
        start = time.monotonic()
        status[name] = run_step(name, min(timeout_s, left), commands, args.out)
        print(f"{name}: {status[name]} ({time.monotonic() - start:.0f} s)", flush=True)
    summary = "\n".join(f"{name}: {state}" for name, state in status.items())
    summary += "\n\n" + table(read_rows(args.out / "bench.csv"), setup)
    summary += "".join("\n\n" + part for part in logged_results(args.out))
    (args.out / "summary.txt").write_text(summary + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
