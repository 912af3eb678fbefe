"""Does a trial's step cost what the bench says? The training loop's train_time_s / steps against `wt-study bench`'s
step at the same shape, alternating in one process (no Ray), so that the machine's drift falls on both alike.

The shapes are two of benchmarks/timing_check.py's (n_embd 64, 2 layers, batch 8, the committed excerpt, 1 thread):
a ratio that stays above 1 is loop overhead the bench does not time; one that wanders around 1 is the machine.

    python benchmarks/loop_vs_bench.py              # 2 shapes x 3 pairs: about a minute on 2 cores
    python benchmarks/loop_vs_bench.py --pairs 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHAPES = [("standard", 64), ("worker", 128)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="loop-then-bench pairs per shape")
    parser.add_argument("--steps", type=int, default=400, help="the loop's steps budget (the check's standard)")
    args = parser.parse_args()
    import numpy as np
    import torch

    from study.config.run import DataConfig, RunConfig
    from study.train.bench import BenchCase
    from study.train.bench_rounds import run_cases
    from study.train.corpora import load_corpus
    from study.train.loop import train

    torch.set_num_threads(1)
    corpus = load_corpus(DataConfig(corpus=str(REPO / "tests" / "data" / "tinyshakespeare-excerpt.txt")))
    print("shape            pair  loop ms/step  bench ms/step  loop / bench")
    ratios = []
    for arch, seq_len in SHAPES:
        model = {"arch": arch, "block_size": seq_len, "n_embd": 64, "n_head": 2, "n_layer": 2, "dropout": 0.0}
        cfg = RunConfig.from_dict({
            "model": model | {"vocab_size": len(corpus.vocab), "worker_interval": 4},
            "train": {"batch_size": 8, "lr": 2e-3, "device": "cpu", "threads": 1},
            "budget": {"kind": "steps", "value": args.steps},
            "eval": {"every_steps": args.steps, "val_tokens": 2048, "final_full": False},
        })  # fmt: skip
        case = BenchCase(cfg.model, 8, seq_len)
        for pair in range(args.pairs):
            run = train(cfg, corpus)
            loop_ms = 1000 * run.train_time_s / run.steps
            bench_ms = run_cases([case], torch.device("cpu"), steps=200, warmup=5, rounds=5)[0].step_ms
            ratios.append(loop_ms / bench_ms)
            print(f"{arch:<8} T={seq_len:<4}  {pair:>4}  {loop_ms:12.2f}  {bench_ms:13.2f}  {ratios[-1]:12.3f}")
    spread = f"{min(ratios):.3f} to {max(ratios):.3f}"
    print(f"loop / bench over {len(ratios)} pairs: median {np.median(ratios):.3f}, {spread}")


if __name__ == "__main__":
    main()
