"""Projected timing checked against reality on this machine (docs/analysis.md, "Re-timing on other machines").

1. runs a small steps-budget study (standard and worker k=4, 2 cells = 2 sequence lengths, 5 seeds, tiny models,
   the committed corpus excerpt; the worker gets twice the standard model's steps, so both run about as long);
2. profiles this machine at exactly its shapes (`wt-study bench --for-study`) three times: from the spec before
   the steps study, after it, and after the twin below; and re-times the study on the three pooled
   (`wt-study analyze --timing`, whose report is kept; the step-time table shows each profile, so the machine's
   drift during the check is on the page);
3. compares (a) each trial's projected time to its cell's target and projected total training time with the
   `train_time_s` the trials measured, and (b) a seconds-budget twin of the study (the same trials, one budget
   of S seconds for every trial: --twin-s, default 80% of the shortest measured training time of the steps
   trials) run on the same machine: each trial's projected loss at S against the twin's final loss, and the
   projected verdict at S (analysis.retime) against the twin's measured verdict (analysis.verdicts) per cell.
   A verdict is "lower", "higher" or "unresolved" by where its 95% interval lies against 0; they agree when
   the words are the same. Beside that test, whether each difference lies inside the other's interval (two
   estimates of one quantity near 0 can take different words and still be consistent), and the words of both by
   one statistic (the projection's seed-only interval against the same paired bootstrap over the twin's seeds),
   so that a disagreement from the projection shows apart from one from the statistics.

It prints one table and writes it to --out. Target: median relative error of the projected time to target
<= 10%, and the verdicts agree in every cell. Trials run one at a time (--concurrent) so that their clocks
measure an unshared core; run it on a quiet machine.

    python benchmarks/timing_check.py --out docs/timing-check.md      # about 10 minutes on 2 cores
    python benchmarks/timing_check.py --quick --out /tmp/check.md     # does it run end to end (about 2 minutes)
    python benchmarks/timing_check.py --reanalyse WORKDIR --out F.md  # the tables again from a kept check (seconds)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EXCERPT = REPO / "tests" / "data" / "tinyshakespeare-excerpt.txt"
PROFILES = "profiles"  # in the workdir: this machine profiled before, between and after the two studies
TARGET_MEDIAN = 0.10  # the projected time to target should be within 10% of the measured one (median)
# per setting: steps of the standard model, seeds, seq_lens, model, bench (samples, warm-up, rounds: the shapes take
# turns, so the profile's medians cover the bench's whole half minute rather than a second each)
SIZES = {
    "full": dict(
        steps=400, seeds=5, seq_lens=[64, 128], model=dict(n_embd=64, n_layer=2, n_head=2), bench=(200, 5, 20)
    ),
    "quick": dict(steps=60, seeds=2, seq_lens=[32, 64], model=dict(n_embd=32, n_layer=1, n_head=2), bench=(6, 2, 2)),
}


def spec_doc(name: str, size: dict, concurrent: int, budget: dict, by_arch: dict | None, every: dict) -> dict:
    doc = {
        "name": name,
        "data": {"corpus": str(EXCERPT)},
        "budget": budget,
        "eval": {**every, "val_tokens": 2048, "final_full": False},
        "checkpoint_every_s": 0,
        "train": {"batch_size": 8, "lr": 0.002},
        "model": {**size["model"], "dropout": 0.0},
        "axes": {"arch": ["standard", "worker"], "worker_interval": [4], "seq_len": size["seq_lens"]},
        "seeds": size["seeds"],
        "resources": {"cpus": 1},
        "max_concurrent": concurrent,
    }
    return doc | ({"budget_by_arch": by_arch} if by_arch else {})


def wt_study(*argv: str) -> None:
    """Run `wt-study ARGV` in a fresh interpreter (as a user would), failing loudly."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    print("$ wt-study " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "study.cli", *argv], check=True, env=env)  # noqa: S603 - built here


def write_spec(doc: dict, workdir: Path) -> Path:
    spec = workdir / f"{doc['name']}.yaml"
    spec.write_text(yaml.safe_dump(dict(doc, storage=str(workdir / "results"))))
    return spec


def run_study(spec: Path, workdir: Path) -> Path:
    with_ray_temp("run", str(spec))
    return workdir / "results" / spec.stem


def with_ray_temp(*argv: str) -> None:
    """`wt-study ARGV` with an in-process Ray whose temp dir (its sockets: keep the path short) is removed after."""
    ray_tmp = tempfile.mkdtemp(prefix="wtc", dir="/tmp")
    try:
        wt_study(*argv, "--ray-temp-dir", ray_tmp)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def relative_errors(projected: pd.Series, measured: pd.Series) -> np.ndarray:
    both = pd.concat([projected, measured], axis=1).dropna().to_numpy(float)
    both = both[both[:, 1] > 0]
    return np.abs(both[:, 0] - both[:, 1]) / both[:, 1]


def time_errors(steps) -> dict:
    """(a): per trial, projected vs measured time to target and total training time."""
    from analysis.pareto import best_so_far
    from analysis.stats import curve_points
    from analysis.targets import time_to_target
    from analysis.timing import projected_time_to_target

    points = curve_points(steps.study.metrics, steps.final)
    measured = time_to_target(best_so_far(points, steps.metric), steps.targets).set_index("trial_id")
    projected = projected_time_to_target(steps.retiming.curves, steps.targets).set_index("trial_id")
    totals = steps.retiming.curves.groupby("trial_id")["projected_time_s"].max()
    return {
        "time to target": relative_errors(projected["projected_time_to_target_s"], measured["train_time_s"]),
        "total training time": relative_errors(totals, steps.final.set_index("trial_id")["train_time_s"]),
    }


def twin_comparison(steps, twin, budget_s: float) -> tuple[np.ndarray, pd.DataFrame]:
    """(b): per trial, the projected loss at the twin's budget vs the twin's final loss; per cell, the verdicts."""
    from analysis.retime import projected_verdicts
    from analysis.timing import projected_loss_at

    keys = ["arch", "seq_len", "seed"]
    projected = projected_loss_at(steps.retiming.curves, budget_s, steps.metric).set_index(keys)["loss_at"]
    measured = twin.final.set_index(keys)["final_loss"]
    errors = relative_errors(projected, measured.reindex(projected.index))
    verdict = projected_verdicts(steps.retiming.curves, steps.chosen, steps.metric, budget_s, 2000, 0)
    arch_of = steps.final.drop_duplicates("arm").set_index("arm")["arch"]  # the arm labels differ by the budget
    rows = []
    for _, v in verdict.iterrows():
        same = twin.verdicts["seq_len"].eq(v["seq_len"]) & twin.verdicts["arch"].eq(arch_of[v["arm"]])
        real = twin.verdicts[same].iloc[0]
        rows.append({"seq_len": v["seq_len"], "arm": real["arm"], "projected": _words(v), "measured": _words(real),
                     "projected diff": v["diff"], "projected CI": f"[{v['diff_ci_low']:.3f}, {v['diff_ci_high']:.3f}]",
                     "measured diff": real["diff"], "measured CI": f"[{real['diff_ci_low']:.3f}, "
                     f"{real['diff_ci_high']:.3f}]",
                     "projected seeds left out": int(v["n_arm_left_out"] + v["n_reference_left_out"]),
                     "projected seeds lost": int(v["n_arm_lost"] + v["n_reference_lost"]),
                     "agree": _words(v) == _words(real),  # the target's test; beside it, are the two consistent
                     "each inside the other's CI": _inside(v, real) and _inside(real, v)})  # fmt: skip
        rows[-1] |= same_statistic(v, twin.final, arch_of[v["arm"]])
    return errors, pd.DataFrame(rows)


def same_statistic(projected, twin_final: pd.DataFrame, arch: str) -> dict:
    """The two verdicts by one statistic, so that only the projection differs: the projection's seed-only interval
    (median step times) against the same paired percentile bootstrap over the twin's final losses (the tool's
    verdict table uses a paired t-interval, wider at 5 seeds; the projection also draws step times)."""
    cell = twin_final[twin_final["seq_len"].eq(projected["seq_len"])].set_index("seed")
    diff = cell.loc[cell["arch"].eq(arch), "final_loss"] - cell.loc[cell["arch"].eq("standard"), "final_loss"]
    diff = diff.dropna().to_numpy(float)
    picks = np.random.default_rng(0).integers(0, len(diff), size=(2000, len(diff)))
    low, high = np.quantile(diff[picks].mean(axis=1), [0.025, 0.975])
    seeds_only = {"diff_ci_low": projected["seed_only_ci_low"], "diff_ci_high": projected["seed_only_ci_high"]}
    words = (_words(seeds_only), _words({"diff_ci_low": low, "diff_ci_high": high}))
    return {"projected, seeds only": words[0], "measured, same bootstrap": words[1], "agree, same statistic":
            words[0] == words[1]}  # fmt: skip


def _inside(interval, estimate) -> bool:
    """Whether `estimate`'s difference lies in `interval`'s 95% interval."""
    return bool(interval["diff_ci_low"] <= estimate["diff"] <= interval["diff_ci_high"])


def _words(row) -> str:
    if isinstance(row.get("lost"), str) and row["lost"]:  # a side lost seeds: no lower/higher from the survivors
        return "lost seeds"
    low, high = row["diff_ci_low"], row["diff_ci_high"]
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no interval"
    return "lower" if high < 0 else "higher" if low > 0 else "unresolved"


def summary_table(errors: dict, loss_errors: np.ndarray, verdicts: pd.DataFrame, budget_s: float) -> pd.DataFrame:
    def row(what, values, target=""):
        median = float(np.median(values)) if len(values) else np.nan
        ok = "" if not target else ("yes" if median <= TARGET_MEDIAN else "no")
        worst = float(np.max(values)) if len(values) else np.nan
        return {"quantity": what, "n": len(values), "median rel. error": f"{100 * median:.1f}%",
                "worst rel. error": f"{100 * worst:.1f}%", "target": target, "met": ok}  # fmt: skip

    rows = [
        row("projected time to target vs measured train_time_s", errors["time to target"], "median <= 10%"),
        row("projected total training time vs measured", errors["total training time"]),
        row(f"projected loss at {budget_s:.3g} s vs the seconds twin's final loss", loss_errors),
    ]
    agree = int(verdicts["agree"].sum()) if len(verdicts) else 0
    rows.append({"quantity": f"projected verdict at {budget_s:.3g} s vs the twin's measured verdict",
                 "n": len(verdicts), "median rel. error": f"agree in {agree} of {len(verdicts)} cells",
                 "worst rel. error": "", "target": "every cell",
                 "met": "yes" if len(verdicts) and agree == len(verdicts) else "no"})  # fmt: skip
    same = int(verdicts["agree, same statistic"].sum()) if len(verdicts) else 0
    rows.append({"quantity": "the same, both by the projection's statistic (seeds only, paired bootstrap)",
                 "n": len(verdicts), "median rel. error": f"agree in {same} of {len(verdicts)} cells",
                 "worst rel. error": "", "target": "", "met": ""})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny models and few steps: checks that it runs")
    parser.add_argument("--out", type=Path, required=True, help="where the table goes (markdown)")
    parser.add_argument("--workdir", type=Path, default=None, help="studies and report here (default: a temp dir)")
    parser.add_argument("--twin-s", type=float, default=None, help="the twin's budget in seconds (default: 80%% of "
                        "the shortest measured training time of the steps trials)")  # fmt: skip
    parser.add_argument("--concurrent", type=int, default=1, help="trials at a time (1: an unshared core each)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="the bench's clock (wall: as trials)")
    parser.add_argument("--reanalyse", type=Path, default=None, metavar="WORKDIR",
                        help="run nothing: analyse the studies and profile a check left in WORKDIR")  # fmt: skip
    args = parser.parse_args()
    if args.reanalyse is not None:
        return reanalyse(args.reanalyse, args.out)
    size = SIZES["quick" if args.quick else "full"]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="timing-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    every = {"every_steps": max(size["steps"] // 10, 1)}
    by_arch = {"standard": size["steps"], "worker": 2 * size["steps"]}
    budget = {"kind": "steps", "value": 2 * size["steps"]}
    steps_spec = write_spec(spec_doc("timing-steps", size, args.concurrent, budget, by_arch, every), workdir)
    profile_machine(steps_spec, workdir, "1-before", size, args.clock)  # the spec: the study does not exist yet
    steps_dir = run_study(steps_spec, workdir)
    profile_machine(steps_dir, workdir, "2-between", size, args.clock)
    measured = analysed(steps_dir, None).final["train_time_s"]  # the twin's budget; the report pools all three
    budget_s = args.twin_s or 0.8 * float(measured.min())
    twin_doc = spec_doc("timing-twin", size, args.concurrent, {"kind": "seconds", "value": budget_s}, None,
                        {"every_s": budget_s / 4})  # fmt: skip
    twin_dir = run_study(write_spec(twin_doc, workdir), workdir)
    profile_machine(steps_dir, workdir, "3-after", size, args.clock)
    wt_study("analyze", str(steps_dir), "--timing", str(workdir / PROFILES), "--out", str(workdir / "report"))
    report(args.out, analysed(steps_dir, workdir / PROFILES), analysed(twin_dir, None), budget_s, workdir)


def profile_machine(
    what: Path, workdir: Path, when: str, size: dict, clock: str, folder: str = PROFILES, extra: tuple = ()
) -> None:
    """`wt-study bench --for-study WHAT` (a spec file, or the study once it ran) into the workdir's profile WHEN
    (under `folder`; `extra`: more bench flags, e.g. --threads, as benchmarks/transfer_check.py times a machine)."""
    out = workdir / folder / f"{when}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    n, warm, rounds = size["bench"]
    wt_study("bench", "--for-study", str(what), "--out", str(out), "--steps", str(n), "--warmup", str(warm),
             "--rounds", str(rounds), "--clock", clock, *extra)  # fmt: skip


def reanalyse(workdir: Path, out: Path) -> None:
    """The tables of a check whose studies and profile are kept in `workdir` (its default temp dir, or --workdir)."""
    steps_dir, twin_dir = workdir / "results" / "timing-steps", workdir / "results" / "timing-twin"
    if not (steps_dir.is_dir() and twin_dir.is_dir() and (workdir / PROFILES).is_dir()):
        raise SystemExit(f"--reanalyse {workdir}: expected results/timing-steps, results/timing-twin and "
                         f"{PROFILES}/ there (what a check leaves in its workdir).")  # fmt: skip
    steps = analysed(steps_dir, workdir / PROFILES)
    twin = analysed(twin_dir, None)
    budget_s = float(twin.final["budget_value"].iloc[0])
    report(out, steps, twin, budget_s, workdir)


def report(out: Path, steps, twin, budget_s: float, workdir: Path) -> None:
    """Compare the analysed steps study with its seconds twin and write the tables to `out`."""
    loss_errors, verdicts = twin_comparison(steps, twin, budget_s)
    write(out, steps, summary_table(time_errors(steps), loss_errors, verdicts, budget_s), verdicts, workdir)


def step_times(steps, workdir: Path) -> pd.DataFrame:
    """Per shape: the pooled profile's median ms/step and each of its profiles' (before, between and after the two
    studies: how far the machine moved) beside each seed's measured train_time_s / steps, the ratio of their
    medians, and how far the seeds of one shape differ among themselves (where a median error comes from)."""
    from analysis.profiles import read_profiles
    from analysis.timing import match_profiles

    final = steps.final.set_index("trial_id")
    profiles = {"profile ms/step": steps.retiming.curves.groupby("trial_id")["step_time_s_median"].first()}
    for file in sorted((workdir / PROFILES).glob("*.parquet")):
        matched = match_profiles(steps.final, read_profiles([file])).matched
        profiles[f"{file.stem} ms/step"] = matched.set_index("trial_id")["step_time_s_median"]
    measured = final["train_time_s"] / final["steps"]
    rows = []
    for (arm, seq_len), group in final.groupby(["arm", "seq_len"], sort=True):
        ms = 1000 * measured[group.index]
        medians = {name: 1000 * float(times.reindex(group.index).median()) for name, times in profiles.items()}
        rows.append({"arm": arm, "seq_len": seq_len, **{name: f"{v:.1f}" for name, v in medians.items()},
                     "measured ms/step (seeds)": ", ".join(f"{v:.1f}" for v in ms.sort_values()),
                     "measured / profile (medians)": f"{ms.median() / medians['profile ms/step']:.2f}",
                     "seeds' spread (max / min)": f"{ms.max() / ms.min():.2f}"})  # fmt: skip
    return pd.DataFrame(rows)


def analysed(study_dir: Path, profile: Path | None):
    from analysis.load import load_study
    from analysis.profiles import read_profiles
    from analysis.report import analyze

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = load_study(str(study_dir))
    return analyze(study, profiles=None if profile is None else read_profiles([profile]))  # a directory: pooled


def write(out: Path, steps, table: pd.DataFrame, verdicts: pd.DataFrame, workdir: Path) -> None:
    from analysis.tables import md_table

    machine = steps.retiming.machines[0]
    seq_lens = ", ".join(map(str, sorted(steps.final["seq_len"].unique())))
    text = (
        f"# Timing check on {machine}\n\nSteps study: {len(steps.final)} trials "
        f"({steps.final['seed'].nunique()} seeds, seq_len {seq_lens})"
        f"; studies, profile and report in `{workdir}`.\n\n{md_table(table)}\n\nVerdicts per cell:\n\n"
        f"{md_table(verdicts)}\n\nStep times per shape (the pooled profile's and each profile's against the "
        f"trials' own):\n\n{md_table(step_times(steps, workdir))}\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print("\n" + text)


if __name__ == "__main__":
    main()
