"""`wt-study train`: one training run without Ray, from flags or a RunConfig YAML file (flags override it).

Without arguments it trains a small worker model on TinyShakespeare for 45 s of training time on the CPU
(about a minute in all). `--checkpoint-dir DIR` saves DIR/state.pt (every --checkpoint-every-s wall seconds
and at the end); `--resume` continues from it with the budget already used. Every RunConfig field is a flag
(study.cli.flags generates them from the dataclasses, so a new field needs no code here); `--arch` takes the
spec's architecture labels. Top-level imports are stdlib only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wt_base.layout import STATE_FILE

# A run that finishes in about a minute on a laptop CPU (used when neither --config nor --resume is given).
SMALL_CPU_RUN = {
    "model": {"arch": "worker", "block_size": 128, "n_embd": 64, "n_head": 2, "n_layer": 2, "dropout": 0.0},
    "train": {"batch_size": 16, "lr": 2e-3, "device": "auto", "threads": 1},  # tiny matmuls: 1 thread is fastest
    "budget": {"kind": "seconds", "value": 45.0},
    "eval": {"every_s": 10.0, "val_tokens": 16384},
}


def add_arguments(parser: argparse.ArgumentParser, name: str = "train") -> None:
    """--config, one flag per RunConfig field (study.cli.flags), --arch, and where the run is saved."""
    from study.cli.flags import add_flags, run_config_flags
    from study.config.spec import ARCH_LABELS

    parser.add_argument(
        "--config", metavar="FILE.yaml", help="a RunConfig as YAML (model/train/budget/eval/data); flags override"
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--arch",
        choices=tuple(ARCH_LABELS),
        help="architecture; worker-random-phase draws the worker phase per batch (default: worker)",
    )
    groups = add_flags(parser, run_config_flags(), _defaults(), groups={"model": model})
    out = groups["data and output"]
    out.add_argument("--checkpoint-dir", metavar="DIR", help=f"save DIR/{STATE_FILE} while training")
    out.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint-dir")
    out.add_argument("--sample", type=int, default=0, metavar="N", help="print N generated characters at the end")


def _defaults() -> dict:
    """field path -> the value a run without --config uses: SMALL_CPU_RUN's, else the dataclass default."""
    import dataclasses

    from study.config.run import RunConfig

    out = {}
    for section in dataclasses.fields(RunConfig):
        value = getattr(RunConfig(), section.name)
        if dataclasses.is_dataclass(value):
            given = SMALL_CPU_RUN.get(section.name, {})
            for f in dataclasses.fields(value):
                out[f"{section.name}.{f.name}"] = given.get(f.name, getattr(value, f.name))
        else:
            out[section.name] = SMALL_CPU_RUN.get(section.name, value)
    return out


def build_config(args: argparse.Namespace, base: dict, vocab_size: int | None = None):
    """The RunConfig from `base` (a RunConfig mapping) with the flags that were given applied on top."""
    from study.cli.flags import apply_flags, run_config_flags
    from study.config.run import RunConfig
    from wt_model.config import label_settings

    mapping = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    if args.eval_every_s is not None or args.eval_every_steps is not None:
        mapping["eval"] = {**mapping.get("eval", {}), "every_s": 0.0, "every_steps": 0}  # the flag chooses
    mapping = apply_flags(args, run_config_flags(), mapping)
    model = mapping.setdefault("model", {})
    if args.arch is not None:
        model.update(label_settings(args.arch))
    if vocab_size is not None:
        model["vocab_size"] = vocab_size
    return RunConfig.from_dict(mapping)


def _read_yaml(path: str) -> dict:
    from wt_base.yamlio import load_yaml

    mapping = load_yaml(Path(path), "--config")
    return mapping if mapping is not None else {}


def run(args: argparse.Namespace) -> int:
    from study.cli.flags import errors_as_flags, given_flag_names, run_config_flags
    from study.config.run import DataConfig
    from study.train.corpora import load_corpus
    from study.train.loop import load_state, save_state, train
    from wt_base.errors import StudyError

    if args.sample < 0:
        raise StudyError(f"--sample={args.sample} is invalid: expected a number of characters >= 0.")
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
    with errors_as_flags(given_flag_names(args, run_config_flags())):  # --seq-len=0, not model.block_size=0
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

    with errors_as_flags(given_flag_names(args, run_config_flags())):  # --budget=0.5 is smaller than one step
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
