"""`wt-study analyze PATH`: plots and a report from a study's Parquet results.

Only the standard library is imported at module level, so `wt-study analyze --help` starts fast; pandas,
matplotlib and the analysis modules are imported inside `run`.
"""

from __future__ import annotations

import argparse
import os

METRICS = ("val_loss", "val_loss_seed")
FORMATS = ("md", "html")


def add_arguments(parser: argparse.ArgumentParser, name: str = "analyze") -> None:
    parser.add_argument("path", metavar="PATH", help="the study directory <storage>/<study_name> (path or URI)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="where the report goes (default: PATH/analysis for a local study, ./<study_name>-analysis for a URI)",
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default="val_loss",
        help="val_loss: all validation positions (default, fair); val_loss_seed: the seed's metric",
    )
    parser.add_argument(
        "--target-loss",
        type=float,
        default=None,
        metavar="X",
        help="loss for time-to-target (default: the spec's target_loss, else one from the tune seeds per cell)",
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="analyse only the trials with this setting (a trials column such as lr=0.002 or init=torch); repeat "
        "to combine",
    )
    parser.add_argument("--format", choices=FORMATS, default="md", help="also write report.html with 'html'")
    parser.add_argument(
        "--timing",
        nargs="+",
        default=None,
        metavar="PROFILE",
        help="machine profiles (files or folders of .parquet/.yaml/.csv from `wt-study bench --out`, or a shipped "
        "name: original): re-time every steps-, tokens- or FLOP-budgeted trial on each profiled machine; several "
        "profiles of one machine (before and after a study) are pooled",
    )
    parser.add_argument(
        "--timing-budget-s",
        type=float,
        default=None,
        metavar="S",
        help="the wall-clock budget of the projected verdicts (default: per cell the longest all its trials cover)",
    )
    parser.add_argument(
        "--timing-with-eval",
        action="store_true",
        help="count each evaluation's projected time in the projected clock (profiles need eval_time_per_token_s)",
    )


def run(args: argparse.Namespace) -> int:
    import math
    import warnings

    from wt_base.errors import StudyError

    if args.target_loss is not None and not (math.isfinite(args.target_loss) and args.target_loss > 0):
        raise StudyError(f"--target-loss is {args.target_loss}; it must be a finite number > 0.")
    if args.out == "":
        raise StudyError("--out is empty: expected the directory the report goes to.")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise StudyError(f"--out {args.out!r} is a file: expected a directory for the report (new or existing).")
    profiles = timing_profiles(args)  # a bad profile or timing flag fails before the study is read

    from analysis.load import load_study, restrict, where_conditions
    from analysis.report import analyze, md_table, verdict_table, write_report
    from analysis.verdicts import verdict_counts

    conditions = where_conditions(args.where)  # a bad --where fails before anything is read
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        study = restrict(load_study(args.path), conditions)
    out = args.out or default_out(args.path, study.name)
    analysis = analyze(
        study,
        metric=args.metric,
        target_loss=args.target_loss,
        profiles=profiles,
        timing_budget_s=args.timing_budget_s,
        timing_with_eval=args.timing_with_eval,
    )
    report = write_report(analysis, out, fmt_=args.format, target_loss=args.target_loss)
    partial = " (partial: trials still running)" if study.partial else ""
    print(f"Study {study.name}{partial}: {len(study.trials)} trials, {len(study.metrics)} evaluation points.")
    for skipped in study.skipped_files:
        print(f"skipped unreadable file {skipped}")
    print(f"\nVerdicts (each arm minus its reference, final {args.metric} in nats; every column in the report):")
    print(md_table(verdict_table(analysis)))
    print(f"{verdict_counts(analysis.verdicts)}.")
    if analysis.retiming is not None:
        print_retiming(analysis.retiming)
    print(f"\nReport: {report}")
    return 0


def timing_profiles(args: argparse.Namespace):
    """The --timing profiles, read and checked (analysis.profiles), or None; the timing flags checked."""
    import math

    from wt_base.errors import StudyError

    budget = args.timing_budget_s
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise StudyError(f"--timing-budget-s={budget:g} is invalid: expected a finite number of seconds > 0.")
    if args.timing is None:
        for flag, given in (("--timing-budget-s", budget is not None), ("--timing-with-eval", args.timing_with_eval)):
            if given:
                raise StudyError(f"{flag} is invalid without --timing: it sets how the profiled machines re-time.")
        return None
    from analysis.profiles import profile_paths, read_profiles

    profiles = read_profiles(profile_paths(args.timing))
    if profiles.empty:
        raise StudyError(f"--timing {' '.join(args.timing)} holds no profile row.")
    return profiles


def print_retiming(r) -> None:
    """The projected verdicts and what could not be re-timed, on the terminal."""
    print(f"\nRe-timed on {len(r.machines)} machine(s): {'; '.join(r.machines)}")
    for sentence in r.verdicts["sentence"] if len(r.verdicts) else []:
        print(f"  {sentence}")
    if len(r.missing):
        print(f"  {int(r.missing['n_trials'].sum())} trial-machine pairs left out: shapes a profile lacks (report)")
    if len(r.refused):
        print(f"  {len(r.refused)} trials not re-timed: a seconds budget (their lr schedule followed their clock)")


def default_out(path: str, study_name: str) -> str:
    if "://" in path:
        return f"{study_name}-analysis"
    return os.path.join(path, "analysis")
