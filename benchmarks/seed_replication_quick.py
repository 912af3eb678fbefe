"""A quick, Ray-free look at the seed's claim on one GPU: the seed's settings, a short time budget per model.

Trains, one after the other, the standard model with the seed's hand-written attention (`naive`), the standard
model with fused attention (`sdpa`) and the worker model (k=4), each for --budget-s seconds of training time
(evaluation outside the clock), and prints the seed's table: steps/s, final val loss (all positions, the fair
metric) and the seed's metric (worker positions only), parameters and the speedup in steps/s.
This is one seed and a short budget: a sanity check of the setup, not a verdict (use the seed-replication preset).

    python benchmarks/seed_replication_quick.py --budget-s 60 [--device cuda] [--data PATH]
"""

from __future__ import annotations

import argparse
import dataclasses

from study.config.run import BudgetConfig, DataConfig, EvalConfig, RunConfig, TrainConfig
from study.train.corpora import load_corpus
from study.train.loop import train
from wt_model.config import ModelConfig
from wt_model.flops import count_params

ARMS = (
    ("Standard (naive attention)", "standard", "naive"),
    ("Standard (sdpa)", "standard", "sdpa"),
    ("WorkerTransformer k=4", "worker", "sdpa"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=60.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", default="tinyshakespeare")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    corpus = load_corpus(DataConfig(corpus=args.data))
    base = RunConfig(
        model=ModelConfig(vocab_size=len(corpus.vocab), block_size=args.seq_len, dropout=0.1),
        train=TrainConfig(batch_size=args.batch_size, lr=3e-4, device=args.device, compile=args.compile),
        budget=BudgetConfig(kind="seconds", value=args.budget_s),
        eval=EvalConfig(every_s=max(5.0, args.budget_s / 5), val_tokens=65536),
        data=DataConfig(corpus=args.data),
    )
    rows = []
    for label, arch, attention in ARMS:
        model = dataclasses.replace(base.model, arch=arch, attention=attention)
        cfg = dataclasses.replace(base, model=model)
        result = train(cfg, corpus, progress=lambda line, label=label: print(f"  [{label}] {line}", flush=True))
        rows.append(
            (label, result.steps / result.train_time_s, result.train_time_s, result.final, count_params(model).total)
        )
    reference = rows[0][1]
    print(f"\nseq_len {args.seq_len}, batch {args.batch_size}, budget {args.budget_s:g} s of training, one seed\n")
    print("| Model | Speed (steps/s) | Train Time | Final Val Loss | Seed metric | Params | Speedup |")
    print("| :--- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, speed, train_s, final, params in rows:
        print(
            f"| {label} | {speed:.2f} | {train_s:.0f}s | {final.val_loss:.4f} | {final.val_loss_seed:.4f} | "
            f"{params:,} | {speed / reference:.2f}x |"
        )


if __name__ == "__main__":
    main()
