"""The original's learning curves beside ours: both models trained by steps under the original's protocol.

The original code (its README and logs) reports, at T=1024, dim 256, 4 layers, 4 heads, batch 16, AdamW 3e-4
constant, dropout 0.1, worker interval 4, the validation loss below at steps 300 ... 2000 (its metric: worker
positions only for the worker model; its evaluation: the first stride-1 windows of the validation split). This
script trains our models at those settings (`--init torch`, PyTorch's module defaults, is the original's init)
and prints, every `--every` steps, our loss in the original's metric beside its published value (the
final all-positions loss is in the progress lines).

At the original's settings (the defaults) the gap must stay within 0.06 at steps 300, 1000 and 2000 for both
models; the script says whether it does. With any setting changed (a reduced CPU run) the original's values are
printed for orientation only. Ray-free, so it runs where only torch is installed:

    PYTHONPATH=. python benchmarks/seed_curves.py                       # the original's settings (a GPU)
    PYTHONPATH=. python benchmarks/seed_curves.py --seq-len 256 --batch-size 8 --steps 300 --inits torch nanogpt
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from study.config.run import BudgetConfig, DataConfig, EvalConfig, RunConfig, TrainConfig
from study.train.corpora import load_corpus
from study.train.loop import train
from wt_model.config import ModelConfig

# The original's published validation losses (its metric), by step.
ORIGINAL = {
    "standard": {300: 1.9055, 500: 1.6510, 1000: 1.4209, 1500: 1.3275, 2000: 1.2470},
    "worker": {300: 1.8710, 500: 1.6873, 1000: 1.4691, 1500: 1.3645, 2000: 1.3149},
}
ORIGINAL_SETTINGS = {"seq_len": 1024, "batch_size": 16, "n_embd": 256, "n_layer": 4, "n_head": 4, "lr": 3e-4}
CHECK_STEPS = (300, 1000, 2000)
TOLERANCE = 0.06
# The original's baseline uses hand-written attention; the same math as sdpa, so only speed differs.
ATTENTION = {"standard": "naive", "worker": "sdpa"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="training steps per model (original: 2000)")
    parser.add_argument("--every", type=int, default=100, help="evaluate every this many steps")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--archs", nargs="+", default=["standard", "worker"], choices=["standard", "worker"])
    parser.add_argument("--inits", nargs="+", default=["torch"], choices=["torch", "nanogpt"])
    parser.add_argument("--val-tokens", type=int, default=16384, help="the seed protocol's first stride-1 windows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--data", default="tinyshakespeare", help="corpus name or a UTF-8 text file")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here, as it goes")
    return parser.parse_args(argv)


def run_config(args: argparse.Namespace, arch: str, init: str, vocab_size: int) -> RunConfig:
    model = ModelConfig(
        arch=arch,
        vocab_size=vocab_size,
        block_size=args.seq_len,
        n_embd=args.n_embd,
        n_head=args.n_head,
        n_layer=args.n_layer,
        dropout=0.1,
        worker_interval=4,
        attention=ATTENTION[arch],
        init=init,
    )
    return RunConfig(
        model=model,
        train=TrainConfig(batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device),
        budget=BudgetConfig(kind="steps", value=args.steps),
        eval=EvalConfig(every_steps=args.every, val_tokens=args.val_tokens, protocol="seed", final_full=False),
        data=DataConfig(corpus=args.data),
    )


def at_original_settings(args: argparse.Namespace) -> bool:
    ours = {"seq_len": args.seq_len, "batch_size": args.batch_size, "n_embd": args.n_embd}
    ours |= {"n_layer": args.n_layer, "n_head": args.n_head, "lr": args.lr}
    return ours == ORIGINAL_SETTINGS


def curve(cfg: RunConfig, corpus, label: str) -> dict[int, float]:
    """step -> loss in the original's metric (training progress is printed as it goes)."""
    points: dict[int, float] = {}

    def on_report(record, state) -> None:
        if record is not None:
            points[record.step] = record.val_loss_seed

    result = train(cfg, corpus, on_report=on_report, progress=lambda line: print(f"  [{label}] {line}", flush=True))
    print(f"  [{label}] {result.steps} steps in {result.train_time_s:.0f} s of training", flush=True)
    return points


def table(columns: dict[str, dict[int, float]], steps: list[int]) -> str:
    """Markdown: per step and arch, the original's value, then ours (its metric) and the gap per init."""
    header, cells_of = ["step"], []
    for arch in ORIGINAL:
        labels = [label for label in columns if label.split()[0] == arch]
        if not labels:
            continue
        header.append(f"original {arch}")
        cells_of.append(lambda step, arch=arch: [_fmt(ORIGINAL[arch].get(step))])
        for label in labels:
            header += [f"ours, {label}", "gap"]
            cells_of.append(lambda step, arch=arch, label=label: _ours(columns[label], ORIGINAL[arch], step))
    lines = ["| " + " | ".join(header) + " |", "|" + " ---: |" * len(header)]
    for step in steps:
        cells = [str(step)] + [cell for cells in cells_of for cell in cells(step)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ours(points: dict[int, float], original: dict[int, float], step: int) -> list[str]:
    seed_metric = points.get(step, math.nan)
    gap = seed_metric - original[step] if step in original else math.nan
    return [_fmt(seed_metric), _fmt(gap, signed=True)]


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def verdict(columns: dict[str, dict[int, float]], faithful: bool) -> tuple[str, bool]:
    if not faithful:
        return "Reduced settings: the original's values are for orientation only (no gap check).", True
    failures = []
    for label, points in columns.items():
        if not label.endswith("init=torch"):
            continue
        for step in CHECK_STEPS:
            if step in points:
                gap = points[step] - ORIGINAL[label.split()[0]][step]
                if abs(gap) > TOLERANCE:
                    failures.append(f"{label} at step {step}: gap {gap:+.4f}")
    if failures:
        return "Gap over 0.06: " + "; ".join(failures), False
    return f"Every torch-init gap at steps {', '.join(map(str, CHECK_STEPS))} is within {TOLERANCE}.", True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    corpus = load_corpus(DataConfig(corpus=args.data))
    faithful = at_original_settings(args)
    settings = (
        f"T={args.seq_len}, batch {args.batch_size}, dim {args.n_embd}, {args.n_layer} layers, {args.n_head} heads, "
        f"AdamW {args.lr:g} constant, dropout 0.1, k=4, seed {args.seed}, protocol seed ({args.val_tokens} val tokens)"
    )
    columns: dict[str, dict[int, float]] = {}
    steps = list(range(args.every, args.steps + 1, args.every))
    for arch in args.archs:
        for init in args.inits:
            label = f"{arch} init={init}"
            cfg = run_config(args, arch, init, len(corpus.vocab))
            columns[label] = curve(cfg, corpus, label)
            text = f"{settings}\n\n{table(columns, steps)}\n"
            if args.out is not None:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(text)
    words, ok = verdict(columns, faithful)
    print(f"\n{settings}\n\n{table(columns, steps)}\n\n{words}")
    if args.out is not None:
        args.out.write_text(f"{settings}\n\n{table(columns, steps)}\n\n{words}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
