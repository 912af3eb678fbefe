"""`wt-study bench`: training-step throughput and FLOP utilisation, and machine profiles (`--out`, `--for-study`;
the contract: wt_base.profile). Stdlib imports only at top level."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BATCH_TOKENS = 4096  # the default batch at each sequence length: this many tokens (16 x 256, 4 x 1024)
# the grid flags and their defaults (None in the parser, so that --for-study can refuse them when given);
# batch_sizes None: BATCH_TOKENS a batch at every sequence length
GRID_DEFAULTS = {
    "seq_lens": [256, 1024],
    "batch_sizes": None,
    "archs": ["worker", "standard"],
    "attentions": ["sdpa", "naive"],
    "dropout": 0.1,
    "no_dropout_row": False,
    "n_embd": 256,
    "n_layer": 4,
    "n_head": 4,
    "worker_interval": 4,
    "vocab_size": 65,
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    _add_case_arguments(parser)
    _add_timing_arguments(parser)
    _add_profile_arguments(parser)


def _add_case_arguments(parser: argparse.ArgumentParser) -> None:
    """What is timed: shapes, architectures, attention kernels, compile modes and the model."""
    from study.config.run import COMPILE_MODES
    from wt_model.archs import ARCHS  # the registry: torch-free
    from wt_model.config import ATTENTIONS

    def default(name: str) -> str:
        value = GRID_DEFAULTS[name]
        return " ".join(map(str, value)) if isinstance(value, list) else str(value)

    parser.add_argument(
        "--seq-lens", type=int, nargs="+", metavar="T", help=f"sequence lengths ({default('seq_lens')})"
    )
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        metavar="B",
        help=f"batch size per sequence length, or one for all (default: {BATCH_TOKENS} tokens a batch, 16 at T=256 "
        "and 4 at T=1024)",
    )
    parser.add_argument("--archs", nargs="+", choices=tuple(ARCHS), help=f"architectures ({default('archs')})")
    parser.add_argument("--attentions", nargs="+", choices=ATTENTIONS, help=f"({default('attentions')})")
    parser.add_argument(
        "--compile",
        nargs="+",
        default=["off"],
        choices=COMPILE_MODES,
        metavar="MODE",
        help="one or more train.compile modes, each a set of rows: off, default, reduce-overhead (CUDA graphs; "
        "default on a CPU), auto (reduce-overhead on CUDA, off on a CPU). Default: off",
    )
    parser.add_argument("--dropout", type=float, help=f"dropout of the timed models ({default('dropout')}, the seed's)")
    parser.add_argument("--no-dropout-row", action="store_true", default=None, help="skip the extra dropout-0 rows")
    for flag in ("n-embd", "n-layer", "n-head", "worker-interval", "vocab-size"):
        parser.add_argument(f"--{flag}", type=int, help=f"({default(flag.replace('-', '_'))})")


def _add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """How it is timed: samples, clock, device, threads, a baseline copy, the CSV."""
    parser.add_argument(
        "--steps-per-sample",
        type=int,
        default=0,
        help="steps queued back to back per timed sample; 0: 10 on CUDA (no sync between steps, as in training), "
        "1 on a CPU",
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setting (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="split each setting's timed steps into this many blocks, the settings taking turns block by block, so "
        "a slow stretch of a shared machine falls on all of them and each median covers the whole run (every model "
        "stays in memory); 0: 5 with --out (a profile predicts trials that ran over minutes), else 1",
    )
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--clock",
        choices=["auto", "cpu", "wall"],
        default="auto",
        help="cpu: this process's CPU time (stable on a shared machine); wall: perf_counter. auto: cpu on a CPU "
        "device, wall on CUDA and with --for-study (the clock of the trials' train_time_s)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads; 0: 1 with the cpu clock, torch's default otherwise"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="also time the wt_model package under DIR (e.g. `git worktree add DIR <sha>`), its steps "
        "alternating with this copy's; rows labelled 'before'",
    )
    parser.add_argument(
        "--csv", type=Path, default=None, metavar="FILE", help="also append each row to FILE as it is measured"
    )


def _add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """A machine profile: the rows as Parquet, and the shapes of a study."""
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.parquet",
        help="write the rows as a machine profile (step time median/p10/p90, evaluation time per token, tokens/s, "
        "MFU; for `wt-study analyze --timing`), one file per machine; evaluation passes are timed too",
    )
    parser.add_argument(
        "--for-study",
        default=None,
        metavar="PATH",
        help="time exactly the shapes of this study's steps-, tokens- and FLOP-budgeted trials (each distinct shape "
        "once, the model rebuilt from the trial's configuration) instead of the grid flags above, with the trials' "
        "CPU threads unless --threads is given; PATH may be a spec file (.yaml) to profile before the study runs",
    )


def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    trials = _study_trials(args.for_study) if args.for_study else None  # a bad study fails before any timing
    if trials is not None and not args.threads:
        args.threads = _study_threads(trials)  # time a step as the trials ran it
    import torch

    from study.train.bench import bench_cases, format_table
    from study.train.bench_profile import study_cases, write_profile
    from study.train.compiled import compile_mode
    from study.train.device import resolve_device

    device = resolve_device(args.device, "--device")
    clock, baseline = _clock_and_baseline(args, device)
    compiles = tuple(dict.fromkeys(compile_mode(mode, device) for mode in args.compile))  # resolved, in order
    if trials is not None:
        cases, what = study_cases(trials, compiles), f"the {args.for_study} trials' shapes"
    else:
        base = _base_model(args)
        cases = bench_cases(base, _shapes(args), args.archs, args.attentions, not args.no_dropout_row, compiles)
        cases = list(dict.fromkeys(cases))  # a shape given twice is timed once
        what = f"model n_embd={base.n_embd} n_layer={base.n_layer} n_head={base.n_head} interval={base.worker_interval}"
    per_sample = args.steps_per_sample or (10 if device.type == "cuda" else 1)
    dtype = "bf16 autocast" if device.type == "cuda" else "fp32"
    threads = torch.get_num_threads()
    print(
        f"device {device} ({dtype}, {threads} thread{'s' * (threads != 1)}, {clock} clock), torch {torch.__version__}; "
        f"{what} ({len(cases)} cases); median of {args.steps} samples of {per_sample} "
        f"step(s) after {args.warmup} (compile and CUDA graph recording happen there)"
        + (f", in {args.rounds} rounds (the cases taking turns)" if args.rounds > 1 else "")
        + (f"; 'before' = {args.baseline_src}, steps alternating" if baseline else ""),
        flush=True,
    )
    results, peak = _measure(args, cases, device, clock, baseline, per_sample)
    print(f"matmul peak (best of {2 + len(cases)} measurements in this run, {clock} clock): {peak:.3f} TFLOP/s")
    print(format_table(results, peak))
    if args.out is not None:
        n = write_profile(results, peak, device, clock, args.out)
        print(f"Profile: {n} shapes -> {args.out}")
    return 0


def _check_flags(args: argparse.Namespace) -> None:
    from wt_base.errors import StudyError

    _grid_flags(args)
    for flag, values in (("--seq-lens", args.seq_lens), ("--batch-sizes", args.batch_sizes or [1])):
        if min(values) < 1:
            raise StudyError(f"{flag}={values} is invalid: expected integers >= 1.")
    if args.batch_sizes is None:  # the default: the same tokens a batch at every sequence length
        args.batch_sizes = [max(1, BATCH_TOKENS // t) for t in args.seq_lens]
    if args.out is not None:
        _check_out(args)
    if len(args.batch_sizes) not in (1, len(args.seq_lens)):
        raise StudyError(
            f"--batch-sizes={args.batch_sizes} is invalid: expected one value or one per --seq-lens "
            f"({len(args.seq_lens)})."
        )
    bounds = (
        ("--steps", args.steps, 1),
        ("--warmup", args.warmup, 0),
        ("--threads", args.threads, 0),
        ("--steps-per-sample", args.steps_per_sample, 0),
        ("--rounds", args.rounds, 0),
    )
    for flag, value, low in bounds:
        if value < low:
            raise StudyError(f"{flag}={value} is invalid: expected an integer >= {low}.")
    args.rounds = min(args.rounds or (5 if args.out is not None else 1), args.steps)


def _grid_flags(args: argparse.Namespace) -> None:
    """Fill the grid flags' defaults; with --for-study a grid flag given is an error (the study gives the shapes)."""
    from wt_base.errors import StudyError

    for name, default in GRID_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)  # batch_sizes stays None: _check_flags derives it
        elif args.for_study:
            flag = "--" + name.replace("_", "-")
            raise StudyError(f"{flag} is invalid with --for-study: the study's trials give the shapes to time.")


def _check_out(args: argparse.Namespace) -> None:
    """--out: a .parquet file in a writable place, and a profile of this copy only."""
    from wt_base.errors import StudyError
    from wt_base.storage import check_writable, resolve

    if args.out.suffix.lower() != ".parquet":
        raise StudyError(f"--out={str(args.out)!r} is invalid: expected a .parquet file (one profile per machine).")
    if args.out.is_dir():
        raise StudyError(f"--out={str(args.out)!r} is a directory: expected a .parquet file.")
    if args.baseline_src is not None:
        raise StudyError("--baseline-src is invalid with --out: a machine profile times this copy of wt_model only.")
    check_writable(resolve(str(args.out.resolve().parent)), "--out")


def _study_trials(path: str):
    """The trials whose shapes to time: those of the study at `path` (analysis.load: the study's Parquet results),
    or, for a spec file (.yaml/.yml), those it plans, so that a machine can be profiled before a study as well as
    after it (a started study's stored list, as `wt-study resume` would run it)."""
    import warnings

    if Path(path).suffix.lower() in (".yaml", ".yml"):
        return _spec_trials(path)
    from analysis.load import load_study

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unreadable files are skipped; the trials that remain give the shapes
        return load_study(path).trials


def _spec_trials(path: str):
    """Trial rows (study.tune.rows.pending_row, with trial_id and the torch threads each trial will run with) of
    every shape the spec at `path` runs (study.tune.plan.Plan.shapes: a search study's one trial per arm and cell)."""
    import pandas as pd

    from study.config.spec import cpu_threads
    from study.config.specfile import load_spec
    from study.tune.plan import plan
    from study.tune.rows import pending_row

    made = plan(load_spec(path), for_resume=True, dry_run=True)
    threads = cpu_threads(made.spec.resources.cpus)  # as study.tune.trainable sets them
    rows = [pending_row(t, made.spec) | {"trial_id": t.trial_id, "threads": t.run.train.threads or threads}
            for t in made.shapes]  # fmt: skip
    return pd.DataFrame(rows)


def _study_threads(trials) -> int:
    """The torch CPU threads every trial of the study ran with (trials column `threads`); 0 when they differ or
    are not recorded (then the --threads rule applies)."""
    threads = trials["threads"].dropna().unique() if "threads" in trials else []
    return int(threads[0]) if len(threads) == 1 else 0


def _clock_and_baseline(args: argparse.Namespace, device):
    """The clock to time with (set the thread count for it) and the 'before' build_model, if any."""
    import torch

    from study.train.bench import import_build_model
    from wt_base.errors import StudyError

    # auto: the CPU time on a CPU (stable on a shared machine), except for a study's profile, which predicts the
    # trials' train_time_s: that is the wall clock
    cpu = device.type == "cpu" and not args.for_study
    clock = args.clock if args.clock != "auto" else ("cpu" if cpu else "wall")
    if clock == "cpu" and device.type != "cpu":
        raise StudyError(f"--clock=cpu is invalid with --device={device}: GPU work is not CPU time; use wall.")
    if args.threads or clock == "cpu":
        torch.set_num_threads(args.threads or 1)
    if args.baseline_src is None:
        return clock, None
    try:
        return clock, import_build_model(args.baseline_src)
    except (FileNotFoundError, ImportError) as exc:
        raise StudyError(f"--baseline-src={str(args.baseline_src)!r} is invalid: {exc}") from None


def _shapes(args: argparse.Namespace) -> list[tuple[int, int]]:
    batches = args.batch_sizes * len(args.seq_lens) if len(args.batch_sizes) == 1 else args.batch_sizes
    return list(zip(args.seq_lens, batches, strict=True))


MODEL_FLAGS = {  # ModelConfig field, as its errors name it -> the bench flag that sets it
    f"ModelConfig.{name}": flag
    for name, flag in (
        ("vocab_size", "--vocab-size"),
        ("block_size", "--seq-lens"),
        ("n_embd", "--n-embd"),
        ("n_head", "--n-head"),
        ("n_layer", "--n-layer"),
        ("dropout", "--dropout"),
        ("worker_interval", "--worker-interval"),
    )
}


def _base_model(args: argparse.Namespace):
    from study.cli.flags import said_with_flags
    from wt_base.errors import StudyError
    from wt_model import ModelConfig

    try:
        return ModelConfig(
            vocab_size=args.vocab_size,
            block_size=max(args.seq_lens),
            n_embd=args.n_embd,
            n_head=args.n_head,
            n_layer=args.n_layer,
            dropout=args.dropout,
            worker_interval=args.worker_interval,
        )
    except ValueError as exc:  # ModelConfig's own sentence, about the field: say it with the flag
        raise StudyError(said_with_flags(str(exc), MODEL_FLAGS)) from None


def _measure(args: argparse.Namespace, cases, device, clock: str, baseline, per_sample: int):
    """Time every case in --rounds rounds (printing each row as its case is done, appending it to --csv); the
    rows and the best matmul peak, measured before, after each case and at the end."""
    import torch

    from study.train.bench import append_csv, matmul_peak_tflops
    from study.train.bench_rounds import run_cases

    peak = matmul_peak_tflops(device, clock=clock)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"

    def label(case) -> str:
        text = f"{case.arch_label:8s} {case.cfg.attention:5s} compile={case.compile} dropout={case.cfg.dropout:g}"
        return text + f" T={case.seq_len} B={case.batch_size}"

    def on_result(r) -> None:
        nonlocal peak
        if not r.version:  # once per case
            peak = max(peak, matmul_peak_tflops(device, clock=clock))
        if args.csv is not None:
            append_csv(args.csv, r, peak, name, clock)
        version = (r.version or "after") if baseline else ""
        print(f"  {version:6s} {label(r.case)}: {r.step_ms:,.2f} ms/step", file=sys.stderr, flush=True)

    def on_failure(case, exc: Exception) -> None:  # a compile that fails on this machine: say so, keep the others
        print(f"  {label(case)}: failed ({type(exc).__name__}: {str(exc)[:300]})", file=sys.stderr, flush=True)

    with_eval = args.out is not None
    timing = (args.steps, args.warmup, clock, baseline, per_sample, with_eval, args.rounds)
    results = run_cases(cases, device, *timing, on_result=on_result, on_failure=on_failure)
    return results, max(peak, matmul_peak_tflops(device, clock=clock))
