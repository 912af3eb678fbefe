"""Why `wt-study bench` keeps its own step timer on a CPU: the same training step timed by its process-CPU-time
clock and by torch.utils.benchmark (wall clock), interleaved, repeated; prints each one's spread (CV) and the
machine's load. On a shared CPU the wall clock measures the other processes too.

    PYTHONPATH=. python benchmarks/bench_step_timer.py [--repeats 6] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.utils import benchmark

from study.train.bench import BenchCase, training_step
from wt_model import ModelConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = ModelConfig(arch="worker", vocab_size=65, block_size=128, n_embd=64, n_head=2, n_layer=2, dropout=0.1)
    step = training_step(BenchCase(cfg, batch_size=16, seq_len=128), torch.device("cpu"))
    for _ in range(3):
        step()
    ours, theirs = [], []
    for _ in range(args.repeats):
        start = time.process_time()
        for _ in range(args.steps):
            step()
        ours.append((time.process_time() - start) / args.steps * 1e3)
        timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=1)
        theirs.append(timer.timeit(args.steps).mean * 1e3)
    for name, values in (("process CPU time (ours)", ours), ("torch.utils.benchmark (wall)", theirs)):
        cv = statistics.stdev(values) / statistics.mean(values)
        median = statistics.median(values)
        print(f"{name:30s} median {median:6.2f} ms/step  CV {cv:5.1%}  min {min(values):6.2f}  max {max(values):6.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
