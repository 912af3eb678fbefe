"""Training-loop overhead of `study.train.loop.train`: time inside the loop outside forward/backward/optimizer.

The loop is timed from the end of setup (after compile warm-up) to the start of the final evaluation; the
forward/backward/clip/optimizer work is the time spent in `study.train.loop._step`. What remains (batch sampling,
the loss read-back, the budget/eval/checkpoint checks, counters) is the overhead, reported as a percentage of
the `_step` time; periodic evaluation is off here and timed separately per 1K validation tokens.

    WT_CACHE_DIR=../shared/data python benchmarks/bench_train_overhead.py            # seed model, T=256
    python benchmarks/bench_train_overhead.py --arch worker standard --steps 40 --data input.txt
"""

from __future__ import annotations

import argparse
import time


def measure(arch: str, args: argparse.Namespace, corpus) -> dict:
    import study.train.loop as train_module
    from study.config.run import BudgetConfig, EvalConfig, RunConfig, TrainConfig
    from wt_model import ModelConfig

    marks: dict[str, float] = {}
    step_s: list[float] = []
    eval_s: list[float] = []
    real_step, real_warm_up, real_final = train_module._step, train_module._Run._warm_up, train_module._Run._final_eval
    real_evaluate = train_module.evaluate_windows

    import torch

    sync = torch.cuda.synchronize if args.device != "cpu" and torch.cuda.is_available() else (lambda: None)

    def timed_step(*a):
        t0 = time.perf_counter()
        loss = real_step(*a)
        sync()  # on CUDA the step's work is done only once the GPU has finished it
        step_s.append(time.perf_counter() - t0)
        return loss

    def warm_up(self):
        real_warm_up(self)
        marks["loop_start"] = time.perf_counter()

    def final_eval(self):
        marks["loop_end"] = time.perf_counter()
        return real_final(self)

    def timed_evaluate(*a):
        t0 = time.perf_counter()
        out = real_evaluate(*a)
        eval_s.append(time.perf_counter() - t0)
        return out

    train_module._step, train_module.evaluate_windows = timed_step, timed_evaluate
    train_module._Run._warm_up, train_module._Run._final_eval = warm_up, final_eval
    try:
        cfg = RunConfig(
            model=ModelConfig(arch=arch, block_size=args.seq_len, vocab_size=len(corpus.vocab)),  # seed sizes
            train=TrainConfig(batch_size=args.batch_size, threads=args.threads, device=args.device),
            budget=BudgetConfig(kind="steps", value=args.steps),
            eval=EvalConfig(val_tokens=args.val_tokens, final_full=False),
        )
        result = train_module.train(cfg, corpus)
    finally:
        train_module._step, train_module.evaluate_windows = real_step, real_evaluate
        train_module._Run._warm_up, train_module._Run._final_eval = real_warm_up, real_final
    loop_s = marks["loop_end"] - marks["loop_start"]
    compute_s = sum(step_s)
    val_tokens = result.final.val_tokens
    return {
        "arch": arch,
        "steps": result.steps,
        "step_ms": 1000 * compute_s / len(step_s),
        "loop_s": loop_s,
        "compute_s": compute_s,
        "overhead_pct": 100 * (loop_s - compute_s) / compute_s,
        "clock_overhead_pct": 100 * (result.train_time_s - compute_s) / compute_s,
        "eval_s_per_1k": 1000 * eval_s[-1] / val_tokens,
        "eval_vs_step": eval_s[-1] / (compute_s / len(step_s)),
        "val_tokens": val_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["worker"], choices=("worker", "standard"))
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--val-tokens", type=int, default=8192, help="validation tokens of the timed evaluation")
    parser.add_argument("--data", default="tinyshakespeare", help="corpus name or text file")
    args = parser.parse_args()

    from study.config.run import DataConfig
    from study.train.corpora import load_corpus

    corpus = load_corpus(DataConfig(corpus=args.data))
    print(f"seed model (n_embd 256, 4 layers, 4 heads), T={args.seq_len}, batch {args.batch_size}, {args.steps} steps")
    for arch in args.arch:
        r = measure(arch, args, corpus)
        print(
            f"{r['arch']:>8}: {r['steps']} steps, fwd/bwd/opt {r['step_ms']:.1f} ms/step | loop overhead "
            f"{r['overhead_pct']:.2f}% of training time (in-clock part {r['clock_overhead_pct']:.2f}%) | "
            f"evaluation {r['eval_s_per_1k']:.3f} s per 1K val tokens ({r['val_tokens']} tokens = "
            f"{r['eval_vs_step']:.1f} training steps)"
        )


if __name__ == "__main__":
    main()
