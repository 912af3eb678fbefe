"""`wt-study run`, `wt-study resume` and `wt-study status` (stdlib imports only at module level)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "run":
        parser.add_argument("spec", nargs="?", help="study spec YAML (default: the smoke preset)")
        from study.config.specfile import preset_names  # the package's preset files: no heavy import

        parser.add_argument("--preset", help=f"a shipped spec: {', '.join(preset_names())}")
        parser.add_argument("--storage", help="results location: a directory or s3://bucket/prefix, gs://...")
        parser.add_argument("--data", help="corpus name (tinyshakespeare) or a local UTF-8 text file")
        parser.add_argument("--name", help="study name (default: the spec's)")
        parser.add_argument("--dry-run", action="store_true", help="print the trials and total budget, run nothing")
        parser.add_argument(
            "--gpus", type=int, metavar="N", help="--dry-run: estimate for a machine with N GPUs (instead of this one)"
        )
        parser.add_argument(
            "--cpus", type=int, metavar="N", help="--dry-run: estimate for a machine with N CPUs (instead of this one)"
        )
    elif name == "resume":
        parser.add_argument("path", help="the study directory, <storage>/<name>")
        parser.add_argument("--spec", help="the spec the study was started with (checked, optional)")
    else:
        parser.add_argument("path", help="the study directory, <storage>/<name>")
        return
    parser.add_argument("--address", help="join a running Ray cluster (e.g. auto) instead of starting Ray here")
    parser.add_argument("--ray-temp-dir", help="Ray's temp/socket dir for an in-process Ray (keep it short)")


def run(args: argparse.Namespace) -> int:
    import warnings

    from wt_base.errors import StudyError

    warnings.formatwarning = lambda message, *a, **k: f"wt-study: warning: {message}\n"
    if args.command == "status":
        from study.cli.status import print_status

        return print_status(args.path)
    from study.tune import runner

    if args.command == "resume":
        return runner.resume_study(args.path, spec_file=args.spec, address=args.address, ray_temp_dir=args.ray_temp_dir)
    from study.config.specfile import load_preset, load_spec

    if args.spec and args.preset:
        raise StudyError("give either a spec file or --preset, not both.")
    preset = "smoke" if args.preset is None else args.preset  # --preset "" is an error, not the smoke study
    spec = load_spec(args.spec) if args.spec else load_preset(preset)
    from study.tune.plan import plan as make_plan
    from study.tune.plan import with_overrides

    stated = args.gpus is not None or args.cpus is not None
    if stated and not args.dry_run:
        flag = "--gpus" if args.gpus is not None else "--cpus"
        raise StudyError(f"{flag} states a machine for --dry-run's estimate: add --dry-run, or drop {flag}.")
    if stated and args.address:
        raise StudyError("--gpus/--cpus state a machine and --address measures a cluster: give one of them.")
    from study.cli.flags import errors_as_flags

    overrides = {
        "storage": ("--storage", args.storage),
        "data.corpus": ("--data", args.data),
        "name": ("--name", args.name),
    }
    with errors_as_flags({field: flag for field, (flag, value) in overrides.items() if value is not None}):
        spec = with_overrides(spec, storage=args.storage, data=args.data, name=args.name)
        plan = make_plan(spec, dry_run=args.dry_run)
    if args.dry_run:
        from study.tune import capacity

        if stated:
            print_plan(plan, capacity.stated_capacity(args.cpus, args.gpus))
        else:
            print_plan(plan, capacity.cluster_capacity(args.address) if args.address else capacity.local_capacity())
        return 0
    return runner.run_study(plan, address=args.address, ray_temp_dir=args.ray_temp_dir)


def _number(value, spec: str) -> str:
    return "?" if value is None else format(value, spec)


def print_plan(plan, capacity, out=None) -> None:
    """The trial table, then how many trials run at once on `capacity` (study.tune.capacity) and for how long."""
    from study.config.regime import trial_regime
    from study.config.search_space import settings_per_unit
    from study.tune.capacity import trials_at_once
    from wt_base.budgets import BUDGET_KINDS
    from wt_model.archs import applies

    out = out or sys.stdout
    search = plan.spec.search
    shown, counted = _plan_trials(plan)
    header = ("search" if search.is_search else "trial_id", "arch", "attention", "k", "seq_len", "n_embd", "n_layer")
    header += ("n_head", "batch", "lr", "seed", "tokens", "epochs", "target epochs", "tokens/param")
    rows, train_tokens = [], len(plan.corpus.train)
    for t in shown:
        m, tr = t.run.model, t.run.train
        k = str(m.worker_interval) if applies("worker_interval", m.arch) else "-"
        regime = trial_regime(t.run, train_tokens)
        if search.is_search:
            most = settings_per_unit(plan.spec)[1]
            name, lr, seed = f"{search.algorithm} x{most}", "searched" if "lr" in search.axes else None, "*"
        else:
            name, lr, seed = t.trial_id, None, f"{tr.seed} (tune)" if tr.seed in plan.spec.tune_seeds else tr.seed
        rows.append(
            (
                name,
                t.arch,
                m.attention,
                k,
                m.block_size,
                m.n_embd,
                m.n_layer,
                m.n_head,
                tr.batch_size,
                lr or f"{tr.lr:.3g}",
                seed,
                _number(regime.tokens, ".3g"),
                _number(regime.epochs, ".3g"),
                _number(regime.target_epochs, ".3g"),
                _number(regime.tokens_per_param, ".3g"),
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip(), file=out)
    if search.is_search:
        print(f"\n{search_plan(plan.spec)}", file=out)
    res = plan.spec.resources
    slots = trials_at_once(capacity, res.cpus, res.gpus, plan.spec.max_concurrent, len(counted))
    at_once = f"{slots.count} trial{'s' if slots.count != 1 else ''} at a time" if slots.count else "no trial can run"
    print(f"\nOn {capacity.where}: {capacity.describe()} -> {at_once} ({slots.why}).", file=out)
    b = _study_budget(plan.spec.replace(resources=res.with_gpus_for(capacity.gpus)), shown, counted, slots.count)
    kind = BUDGET_KINDS[b["budget_kind"]]
    per_trial = " or ".join(f"{v:g}" for v in b["budget_values"])
    line = f"{b['trials']} trials x {per_trial}{kind.unit} ({kind.name} budget)"
    if slots.count:
        busiest = f"{_amount(b['study_length'])}{kind.unit}"
        line += f", {b['concurrency']} at a time -> the busiest slot trains for about {busiest}"
        if b["budget_kind"] == "flops" and res.with_gpus_for(capacity.gpus).gpus:  # FLOPs alone say little
            hours = b["study_length"] / ASSUMED_FLOP_S / 3600
            line += f", about {_hours(hours)} wall clock at {ASSUMED_FLOP_S / 1e12:g} TFLOP/s a trial"
    else:
        line += f": none can start on {capacity.where}"
    if kind.measured and slots.count:
        line += f" ({b['study_length'] / 3600:.2f} h wall clock, before evaluation and start-up)"
        gpu_hours = (
            "GPU-hours: one GPU per trial where there are GPUs"
            if b["gpu_hours"] is None
            else (f"{b['gpu_hours']:.2f} GPU-hours")
        )
        line += f"; {gpu_hours}, {b['cpu_hours']:.2f} CPU-hours"
    print(line, file=out)
    if kind.measured:
        print(
            "Tokens and epochs: '?' under a clock budget (how many steps a second buys is known only by running; "
            "`wt-study bench` measures it).",
            file=out,
        )
    else:
        regimes = [trial_regime(t.run, train_tokens) for t in counted]
        reachable = plan.shapes if search.is_search else counted  # a ladder: every size it may reach
        epochs = [trial_regime(t.run, train_tokens).epochs for t in reachable]
        per_trial = [r.steps * _step_flops(t.run) for r, t in zip(regimes, counted, strict=True)]
        flops = sum(per_trial)
        cap = f" (max_epochs {plan.spec.max_epochs:g})" if plan.spec.max_epochs is not None else ""
        rate = f"a sustained {ASSUMED_FLOP_S / 1e12:g} TFLOP/s, about 10% of an H100's bf16 peak"
        wall = ""
        if slots.count and res.with_gpus_for(capacity.gpus).gpus:
            hours = longest_slot(per_trial, slots.count) / ASSUMED_FLOP_S / 3600
            wall = f"; {slots.count} at a time, about {_hours(hours)} wall clock at that rate per trial"
        cpu = ""
        if slots.count and not res.with_gpus_for(capacity.gpus).gpus:
            hours = longest_slot(per_trial, slots.count) / ASSUMED_CPU_FLOP_S / 3600
            cpu = (
                f" On CPUs, {slots.count} at a time: about {_hours(hours)} wall clock at "
                f"{ASSUMED_CPU_FLOP_S:.2g} FLOP/s a trial (tiny models on one core each, evaluation and start-up "
                "included, as measured here)."
            )
        print(
            f"Data: {min(epochs):.3g} to {max(epochs):.3g} passes over the {train_tokens:,}-token training split"
            f"{cap}; {flops:.3g} training FLOPs in all (about {flops / ASSUMED_FLOP_S / 3600:.3g} GPU-hours at "
            f"{rate}{wall}).{cpu}",
            file=out,
        )
    print(f"Results would go to {plan.location.uri}", file=out)
    _print_trackers(plan, out)
    if search.is_search:
        from study.tune.plan import check_search_package
        from wt_base.errors import StudyError

        try:
            check_search_package(plan.spec)
        except StudyError as exc:
            print(f"Note: {exc}", file=out)


def _study_budget(spec, shown: list, counted: list, slots: int) -> dict:
    """study.config.space.total_budget of the counted trials; a search's in its two phases, one after the other
    (an arm's test seeds start once its tune seeds have ended), a bracket's (and a ladder's) at the most it can
    run."""
    from study.config.search_space import settings_per_unit
    from study.config.space import total_budget

    if not spec.search.is_search:
        return total_budget(spec, counted, slots)
    from study.config.search_space import most_units, probe_trials

    phases = [settings_per_unit(spec)[1] * len(spec.tune_seeds), len(spec.seeds)]  # a bracket: its most
    most = probe_trials(spec, most_units(spec))  # a ladder: every start size and the most it may add
    tune, test = (total_budget(spec, [t for t in most for _ in range(n)], slots) for n in phases)
    out = {**tune, "trials": tune["trials"] + test["trials"]}
    out["study_length"] = tune["study_length"] + test["study_length"]
    for key in ("gpu_hours", "cpu_hours"):
        if key in tune:
            out[key] = None if tune[key] is None else tune[key] + test[key]
    return out


def _plan_trials(plan) -> tuple[list, list]:
    """The trials the table shows and those the estimate counts: a grid's trials, or for a search study one trial
    per arm and cell it starts with (its settings are chosen as it runs), counted as many times as the unit will
    run trials, and with a ladder the sizes it may add at most, counted alike."""
    if not plan.spec.search.is_search:
        return plan.trials, plan.trials
    from study.config.search_space import most_units, probe_trials, trials_per_unit, units

    shown, most = probe_trials(plan.spec, units(plan.spec)), probe_trials(plan.spec, most_units(plan.spec))
    return shown, [t for t in most for _ in range(trials_per_unit(plan.spec))]


def search_plan(spec) -> str:
    """What a search study will do, in words (the settings themselves are not known before it runs)."""
    from study.config.search_space import planned_trials, units

    search = spec.search
    if search.bracket:
        return _bracket_plan(spec)
    how = {"random": "random draws, the same for every arm", "tpe": "Optuna's TPE through Ray Tune's OptunaSearch"}
    how = how[search.algorithm]
    if search.algorithm == "tpe":
        how += f", the first {search.tpe_startup} settings at random"
    axes = " and ".join(f"{name} ~ {dist.describe()}" for name, dist in search.axes.items())
    tune, test = ", ".join(map(str, spec.tune_seeds)), ", ".join(map(str, spec.seeds))
    n = len(units(spec))
    return (
        f"Search ({search.algorithm}: {how}), for each of {n} arms and cells on its own: {search.samples} settings of "
        f"{axes}, each on tune seeds {tune} ({search.samples * len(spec.tune_seeds)} trials), then test seeds {test} "
        f"at the setting with the lowest mean final {search.metric} over the tune seeds ({len(spec.seeds)} trials): "
        f"at most {planned_trials(spec)} trials, the tune seeds' first. The settings are chosen as the study runs; "
        f"the table shows each arm and cell once.{_ladder_plan(spec)}"
    )


def _bracket_plan(spec) -> str:
    """A bracket search in words: how many trials it starts with, and the most it can run."""
    from study.config.search_space import planned_trials, settings_per_unit, units

    name, walk = spec.search.bracket
    first, most = settings_per_unit(spec)
    n, tune, test = len(units(spec)), len(spec.tune_seeds), len(spec.seeds)
    each = _count(n, "arm and cell", "arms and cells")
    return (
        f"Search (bracket: {name} walked on a log scale until the best is interior), for each of {each} "
        f"on its own: {name} {walk.describe()}, each point on tune seeds {', '.join(map(str, spec.tune_seeds))}, "
        f"then test seeds {', '.join(map(str, spec.seeds))} at the point with the lowest mean final "
        f"{spec.search.metric} over the tune seeds: it starts with {n * first * tune} trials ({first} points per arm "
        f"and cell) and runs at most {planned_trials(spec)} ({most} points each, then {_count(test, 'test seed')}). "
        f"The points are chosen as the study runs; the table shows each arm and cell once.{_ladder_plan(spec)}"
    )


def _count(n: int, one: str, many: str | None = None) -> str:
    """'1 test seed', '3 test seeds'."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _ladder_plan(spec) -> str:
    """search.ladder in words ("" without one): how many sizes the profiles start with and may add."""
    from study.config.search_space import profiles, trials_per_unit

    ladder = spec.search.ladder
    if ladder is None:
        return ""
    found = profiles(spec)
    first, added = sum(len(p.start) for p in found), sum(p.most_added for p in found)
    cap = f"at most {ladder.max_sizes} sizes each" if ladder.max_sizes else "up to the ladder's ends"
    sides = "is the smallest or largest size tried" if ladder.margin == 1 else f"has under {ladder.margin} sizes"
    sides += "" if ladder.margin == 1 else " tried on a side"
    starting = _count(len(found), "arm and budget", "arms and budgets")
    return (
        f" Ladder ({len(ladder.rungs)} rungs of {', '.join(ladder.keys)}): {starting} start{'s' * (len(found) == 1)} "
        f"with {first} sizes (the table's rows); while one's minimum over sizes (the tune seeds' mean at each size's "
        f"chosen setting) {sides}, the next rung beyond runs with its own search, {cap}: at most {added} sizes "
        f"more in all ({added * trials_per_unit(spec)} trials, counted in the most above)."
    )


def _print_trackers(plan, out) -> None:
    """Where the loggers would write, and a tracker package this machine lacks (the run would refuse it)."""
    from study.tune.trackers import check_tracker_packages, describe
    from wt_base.errors import StudyError

    for line in describe(plan.spec, plan.location):
        print(f"Would log to {line}", file=out)
    try:
        check_tracker_packages(plan.spec, plan.location)
    except StudyError as exc:
        print(f"Note: {exc}", file=out)


ASSUMED_FLOP_S = 100e12  # the dry run's cost of counted budgets: a sustained rate stated in its output
# ... and on a machine without GPUs: FLOPs per second a one-core trial of a tiny model sustains, evaluation and
# start-up included, as measured on this project's 2-core machine (scaling-cpu: 1.12e14 FLOPs in 43 min 18 s,
# 2 at a time, 2.2e10; findings-cpu-bracket: 88 trials of 3e12 in 2 h 03 min, 1.8e10)
ASSUMED_CPU_FLOP_S = 2e10


def longest_slot(costs: list[float], slots: int) -> float:
    """The busiest of `slots` slots when the costs go, largest first, each to the least loaded slot (as
    study.config.space.total_budget spreads budgets)."""
    loads = [0.0] * max(1, slots)
    for cost in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += cost
    return max(loads)


def _hours(hours: float) -> str:
    """A wall-clock estimate as a person reads it: '3.78 h', '25 min', '40 s'."""
    if hours >= 1:
        return f"{hours:.3g} h"
    minutes = hours * 60
    return f"{minutes:.2g} min" if minutes >= 1 else f"{minutes * 60:.2g} s"


def _amount(value: float) -> str:
    """A budget amount as a person reads it: '60', '1000', '2.73e+14' (3 digits past a million)."""
    return f"{value:g}" if value < 1e6 else f"{value:.3g}"


def _step_flops(run) -> float:
    from study.config.regime import step_amounts

    return step_amounts(run.model, run.seq_len, run.train.batch_size)["flops"]
