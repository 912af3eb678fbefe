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


def run(args: argparse.Namespace) -> int:
    import math
    import warnings

    from wt_base.errors import StudyError

    if args.target_loss is not None and not (math.isfinite(args.target_loss) and args.target_loss > 0):
        raise StudyError(f"--target-loss is {args.target_loss}; it must be a finite number > 0.")
    if args.out == "":
        raise StudyError("--out is empty: expected the directory the report goes to.")

    from analysis.load import load_study, restrict, where_conditions
    from analysis.report import analyze, md_table, verdict_table, write_report

    conditions = where_conditions(args.where)  # a bad --where fails before anything is read
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        study = restrict(load_study(args.path), conditions)
    out = args.out or default_out(args.path, study.name)
    analysis = analyze(study, metric=args.metric, target_loss=args.target_loss)
    report = write_report(analysis, out, fmt_=args.format, target_loss=args.target_loss)
    partial = " (partial: trials still running)" if study.partial else ""
    print(f"Study {study.name}{partial}: {len(study.trials)} trials, {len(study.metrics)} evaluation points.")
    for skipped in study.skipped_files:
        print(f"skipped unreadable file {skipped}")
    print(f"\nVerdicts (worker minus standard, final {args.metric}):")
    print(md_table(verdict_table(analysis)))
    print(f"\nReport: {report}")
    return 0


def default_out(path: str, study_name: str) -> str:
    if "://" in path:
        return f"{study_name}-analysis"
    return os.path.join(path, "analysis")
