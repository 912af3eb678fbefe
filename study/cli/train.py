"""`wt-study train`: one training run without Ray, from flags or a RunConfig YAML file (flags override it).

Without arguments it trains a small worker model on TinyShakespeare for 45 s of training time on the CPU
(about a minute in all). `--checkpoint-dir DIR` saves DIR/state.pt (every --checkpoint-every-s wall seconds
and at the end); `--resume` continues from it with the budget already used. Top-level imports are stdlib only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

STATE_FILE = "state.pt"
ARCHS = ("standard", "worker", "worker-random-phase")

# A run that finishes in about a minute on a laptop CPU (used when neither --config nor --resume is given).
SMALL_CPU_RUN = {
    "model": {"arch": "worker", "block_size": 128, "n_embd": 64, "n_head": 2, "n_layer": 2, "dropout": 0.0},
    "train": {"batch_size": 16, "lr": 2e-3, "device": "auto", "threads": 1},  # tiny matmuls: 1 thread is fastest
    "budget": {"kind": "seconds", "value": 45.0},
    "eval": {"every_s": 10.0, "val_tokens": 16384},
}

# flag destination -> (section, key) in the RunConfig mapping
FLAG_FIELDS = {
    "attention": ("model", "attention"),
    "worker_interval": ("model", "worker_interval"),
    "seq_len": ("model", "block_size"),
    "n_embd": ("model", "n_embd"),
    "n_layer": ("model", "n_layer"),
    "n_head": ("model", "n_head"),
    "dropout": ("model", "dropout"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "schedule": ("train", "schedule"),
    "warmup_frac": ("train", "warmup_frac"),
    "device": ("train", "device"),
    "compile": ("train", "compile"),
    "seed": ("train", "seed"),
    "threads": ("train", "threads"),
    "budget_kind": ("budget", "kind"),
    "budget": ("budget", "value"),
    "count_eval_in_budget": ("budget", "count_eval_in_budget"),
    "eval_every_s": ("eval", "every_s"),
    "eval_every_steps": ("eval", "every_steps"),
    "val_tokens": ("eval", "val_tokens"),
    "eval_protocol": ("eval", "protocol"),
    "final_full": ("eval", "final_full"),
    "data": ("data", "corpus"),
    "cache_dir": ("data", "cache_dir"),
    "checkpoint_every_s": (None, "checkpoint_every_s"),
}


def add_arguments(parser: argparse.ArgumentParser, name: str = "train") -> None:
    add = parser.add_argument
    add("--config", metavar="FILE.yaml", help="a RunConfig as YAML (model/train/budget/eval/data); flags override")
    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=ARCHS, help="architecture (default worker)")
    model.add_argument("--attention", choices=("sdpa", "naive"))
    model.add_argument("--worker-interval", type=int, metavar="K", help="every K-th token is a worker")
    model.add_argument("--seq-len", type=int, metavar="T", help="sequence length (default 128)")
    model.add_argument("--n-embd", type=int, help="residual width (default 64)")
    model.add_argument("--n-layer", type=int, help="blocks (default 2)")
    model.add_argument("--n-head", type=int, help="attention heads (default 2)")
    model.add_argument("--dropout", type=float)
    train = parser.add_argument_group("training")
    train.add_argument("--batch-size", type=int, help="sequences per step (default 16)")
    train.add_argument("--lr", type=float, help="peak learning rate (default 2e-3)")
    train.add_argument("--schedule", choices=("constant", "linear", "cosine"))
    train.add_argument("--warmup-frac", type=float, help="fraction of the budget spent warming up")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"))
    train.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile")
    train.add_argument("--seed", type=int)
    train.add_argument("--threads", type=int, help="torch CPU threads (0: torch's default)")
    budget = parser.add_argument_group("budget and evaluation")
    budget.add_argument("--budget-kind", choices=("seconds", "steps", "tokens", "flops"))
    budget.add_argument("--budget", type=float, metavar="VALUE", help="limit in the kind's unit (default 45 s)")
    budget.add_argument("--count-eval-in-budget", action=argparse.BooleanOptionalAction, default=None)
    every = budget.add_mutually_exclusive_group()
    every.add_argument("--eval-every-s", type=float, metavar="S", help="evaluate every S train seconds")
    every.add_argument("--eval-every-steps", type=int, metavar="N", help="evaluate every N steps")
    budget.add_argument("--val-tokens", type=int, help="validation tokens per periodic evaluation")
    budget.add_argument("--eval-protocol", choices=("stream", "seed"))
    budget.add_argument(
        "--final-full", action=argparse.BooleanOptionalAction, default=None, help="final eval on the whole val split"
    )
    data = parser.add_argument_group("data and output")
    data.add_argument("--data", metavar="NAME|PATH", help="tinyshakespeare (default) or a UTF-8 text file")
    data.add_argument("--cache-dir", metavar="DIR", help="download cache (default $WT_CACHE_DIR or ~/.cache)")
    data.add_argument("--checkpoint-dir", metavar="DIR", help=f"save DIR/{STATE_FILE} while training")
    data.add_argument("--checkpoint-every-s", type=float, metavar="S", help="wall seconds between checkpoints")
    data.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint-dir")
    data.add_argument("--sample", type=int, default=0, metavar="N", help="print N generated characters at the end")


def build_config(args: argparse.Namespace, base: dict, vocab_size: int | None = None):
    """The RunConfig from `base` (a RunConfig mapping) with the flags that were given applied on top."""
    from study.config.run import RunConfig

    mapping = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    model = mapping.setdefault("model", {})
    if args.arch is not None:
        model["arch"] = "standard" if args.arch == "standard" else "worker"
        model["random_worker_phase"] = args.arch == "worker-random-phase"
    if args.n_embd is not None and model.get("ffn_hidden") == 4 * model.get("n_embd", 0):
        model["ffn_hidden"] = 0  # follow the new width instead of keeping the old default
    if args.eval_every_s is not None or args.eval_every_steps is not None:
        mapping["eval"] = {**mapping.get("eval", {}), "every_s": 0.0, "every_steps": 0}  # the flag chooses
    for dest, (section, key) in FLAG_FIELDS.items():
        value = getattr(args, dest)
        if value is not None:
            (mapping.setdefault(section, {}) if section else mapping)[key] = value
    if vocab_size is not None:
        model["vocab_size"] = vocab_size
    try:
        return RunConfig.from_dict(mapping)
    except ValueError as exc:  # ModelConfig validation raises ValueError; make it a user error
        from study.errors import StudyError

        raise StudyError(str(exc)) from None


def _read_yaml(path: str) -> dict:
    from study.config.yamlio import load_yaml

    mapping = load_yaml(Path(path), "--config")
    return mapping if mapping is not None else {}


def run(args: argparse.Namespace) -> int:
    from study.errors import StudyError
    from study.train.data import DataConfig, load_corpus
    from study.train.loop import load_state, save_state, train

    state_path = Path(args.checkpoint_dir) / STATE_FILE if args.checkpoint_dir else None
    state = None
    if args.resume:
        if state_path is None:
            raise StudyError("--resume needs --checkpoint-dir DIR: the folder holding the run's state.pt.")
        state = load_state(state_path)
        base = state["config"]
    elif state_path is not None and state_path.exists():
        raise StudyError(f"--checkpoint-dir {args.checkpoint_dir!r} already holds a run: add --resume or pick another.")
    else:
        base = _read_yaml(args.config) if args.config else SMALL_CPU_RUN
    cfg = build_config(args, base)
    corpus = load_corpus(DataConfig(**cfg.data.__dict__))
    if state is None:  # the vocabulary comes from the data
        cfg = build_config(args, base, vocab_size=len(corpus.vocab))

    from wt_model.flops import count_params

    n_params = count_params(cfg.model).total
    arch = cfg.model.arch + ("-random-phase" if cfg.model.random_worker_phase else "")
    verb = f"resuming at step {state['step']:,}" if state else "training"
    print(
        f"{verb}: {arch} ({n_params / 1e6:.2f}M params), seq_len {cfg.seq_len}, batch {cfg.train.batch_size}, "
        f"budget {cfg.budget.value:g} {cfg.budget.kind}, data {corpus.name} ({len(corpus.vocab)} chars)",
        flush=True,
    )
    final_state: dict = {}

    def on_report(record, checkpoint_state) -> None:
        if checkpoint_state is not None:
            final_state.clear()
            final_state.update(checkpoint_state)
            if state_path is not None:
                save_state(checkpoint_state, state_path)

    result = train(cfg, corpus, on_report=on_report, state=state, progress=lambda line: print(line, flush=True))
    f = result.final
    print(
        f"done: {result.status} | {result.steps:,} steps | {result.tokens:,} tokens | train {result.train_time_s:.1f}s"
        f" | wall {result.wall_time_s:.1f}s | final val {f.val_loss:.4f} ({f.val_bpc:.3f} bpc, seed metric "
        f"{f.val_loss_seed:.4f})" + (f" | {result.error}" if result.error else ""),
        flush=True,
    )
    if args.sample > 0 and final_state:
        print(_sample(cfg, corpus, final_state["model"], args.sample))
    return 0 if result.status == "completed" else 1


def _sample(cfg, corpus, weights: dict, n_chars: int) -> str:
    import torch

    from wt_model import build_model, generate

    model = build_model(cfg.model)
    model.load_state_dict(weights)
    model.eval()
    start = corpus.encode("\n")[0] if "\n" in corpus.vocab else 0
    idx = torch.tensor([[start]], dtype=torch.long)  # (1, 1)
    generator = torch.Generator().manual_seed(cfg.train.seed)
    out = generate(model, idx, n_chars, generator=generator)  # (1, 1 + n_chars)
    return corpus.decode(out[0, 1:].tolist())
