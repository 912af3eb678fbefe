"""Projection onto ANOTHER machine, checked on that machine (docs/analysis.md, "Transfer across machines").

benchmarks/timing_check.py projects a study onto the profile of the machine it ran on; this one projects it onto
a second machine whose step times stand in other ratios between shapes, and runs the twin there:
  machine A: trials with 1 torch thread on 1 core; machine B: 2 threads on 2 cores (a second thread should speed
  up a wide, long shape more than a narrow, short one: step 1 measures by how much), or with --machine-b gpu the
  GPU (machine A stays the CPU's 1 thread).
1. profile A and B at the study's shapes from its spec (`wt-study bench --for-study SPEC`, --threads 1 / 2), and
   print how far the B/A speed-up differs between shapes (a uniform speed-up would test nothing new);
2. run the steps study on A (standard, worker k=4 and k=8; 3 seq_len x 2 n_embd cells; the worker given twice the
   standard's steps; one tune seed per arm sets the cells' targets, as `wt-study analyze` does);
3. profile B again from the study (the two B profiles pooled: the drift between them is the run range) and
   project the study onto B (`wt-study analyze --timing profiles/B`, report kept): per cell the projected verdict
   at "the longest all its trials cover" (S), per worker arm the projected speed-up to the cell's target;
4. per cell a seconds twin on B (same arms, cell and test seeds; budget 1.25 S, evaluated every S/4, so it runs
   about as many steps as the steps study and its loss at S is an evaluation point);
5. report the coverage: in how many cells the twin's measured difference at S lies inside the projected verdict
   interval, and its measured speed-up inside the projected speed-up interval, with a Clopper-Pearson interval on
   each rate; the per-cell rows, the step times per shape (profiles against the trials), and markdown for
   docs/findings.md. Only B profiles taken before the twin enter the projection; one after it is shown beside.

Each stage writes under --workdir and is skipped when its marker (stages/NAME.json, with its elapsed seconds) is
there; an interrupted study is resumed (`wt-study resume`). Run it on a quiet machine (trials one at a time).

    python benchmarks/transfer_check.py --workdir /tmp/transfer --dry-run     # the plan and its time, runs nothing
    python benchmarks/transfer_check.py --workdir /tmp/transfer --out docs/findings/transfer-check.md
    python benchmarks/transfer_check.py --quick --workdir /tmp/transfer-quick --out /tmp/transfer-quick.md
    python benchmarks/transfer_check.py --machine-b gpu --workdir /tmp/transfer-gpu --out F.md   # with a GPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing_check as tc  # noqa: E402 - the sibling benchmark: its runner, analysis and verdict words

CONFIDENCE = 0.95
TWIN_MARGIN = 1.25  # the twin runs this share of S, so its loss at S is measured and its target is reached
KEYS = ["arch", "worker_interval", "seq_len", "n_embd"]  # an arm in a cell, in both studies
SIZES = {
    "full": dict(steps=500, seeds=5, tune_seeds=[100], seq_lens=[32, 64, 128], n_embds=[32, 64], intervals=[4, 8],
                 model=dict(n_layer=2, n_head=2), bench=(200, 5, 20)),
    "quick": dict(steps=40, seeds=2, tune_seeds=[100], seq_lens=[32, 64], n_embds=[32], intervals=[4],
                  model=dict(n_layer=1, n_head=2), bench=(6, 2, 2)),
}  # fmt: skip
# machine -> spec settings and bench flags
MACHINES = {
    "A": ({"threads": 1, "device": "cpu"}, {"cpus": 1, "gpus": 0}, ["--threads", "1", "--device", "cpu"]),
    "cpu2": ({"threads": 2, "device": "cpu"}, {"cpus": 2, "gpus": 0}, ["--threads", "2", "--device", "cpu"]),
    "gpu": ({"device": "cuda"}, {"cpus": 1, "gpus": 1}, ["--device", "cuda"]),
}
# the dry run's time model: seconds of a trial outside its training steps (Ray scheduling, model build,
# evaluations), of starting Ray, of one bench's start (torch import, matmul peak), from the --quick run on this
# machine beside a running study (6.6 s a trial on A, about 11 on B, 31-48 s a tiny bench), so on the high side;
# a step's time is a floor + its training FLOPs x a slope, fitted to the quiet 1-thread step times of
# docs/findings/timing-check-4.md
TRIAL_OVERHEAD_S, RAY_START_S, BENCH_START_S = 8.0, 15.0, 30.0
REFERENCE_MODEL = dict(n_embd=64, n_layer=2, n_head=2)  # the shapes of REFERENCE_MS, batch 8
REFERENCE_MS = {("standard", 64): 9.1, ("standard", 128): 15.3, ("worker", 64): 6.8, ("worker", 128): 9.6}


def spec_for(name: str, size: dict, machine: str, budget: dict, by_arch, every: dict, cell=None) -> dict:
    """timing_check's spec with this check's axes (one cell when `cell` = (seq_len, n_embd)) on `machine`."""
    train, resources, _ = MACHINES[machine]
    doc = tc.spec_doc(name, size, 1, budget, by_arch, every)
    seq_lens, n_embds = ([cell[0]], [cell[1]]) if cell else (size["seq_lens"], size["n_embds"])
    doc["axes"] = {"arch": ["standard", "worker"], "worker_interval": size["intervals"], "seq_len": seq_lens,
                   "n_embd": n_embds}  # fmt: skip
    doc["train"] |= train
    doc["resources"] = resources
    return doc | ({} if cell else {"tune_seeds": size["tune_seeds"]})


class Stages:
    """Markers under workdir/stages: a stage that finished is skipped on the next run."""

    def __init__(self, workdir: Path, dry_run: bool):
        self.folder, self.dry_run, self.plan = workdir / "stages", dry_run, []

    def run(self, name: str, action, estimate_s: float = np.nan) -> None:
        marker = self.folder / f"{name}.json"
        self.plan.append((name, marker.exists(), estimate_s))
        if marker.exists() or self.dry_run:
            return
        start = time.perf_counter()
        action()
        self.folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"elapsed_s": time.perf_counter() - start}))

    def elapsed_s(self, name: str) -> float:
        marker = self.folder / f"{name}.json"
        return json.loads(marker.read_text())["elapsed_s"] if marker.exists() else np.nan


def write_spec(doc: dict, workdir: Path, write: bool = True) -> Path:
    """The spec file (written unless `write` is off: a dry run); one from another setting (--quick in a full
    run's workdir) is refused, not overwritten."""
    spec = workdir / f"{doc['name']}.yaml"
    if spec.exists() and yaml.safe_load(spec.read_text()) != dict(doc, storage=str(workdir / "results")):
        raise SystemExit(f"--workdir {workdir}: {spec.name} there was written with other settings (--quick or "
                         "--machine-b differ): use a new --workdir, or the settings it was started with.")  # fmt: skip
    return spec if spec.exists() or not write else tc.write_spec(doc, workdir)


def run_or_resume(spec: Path, workdir: Path) -> None:
    """`wt-study run SPEC`, or `wt-study resume` when an earlier call left the study half done."""
    study_dir = workdir / "results" / spec.stem
    if study_dir.exists():
        tc.with_ray_temp("resume", str(study_dir), "--spec", str(spec))
    else:
        tc.run_study(spec, workdir)


def bench(what: Path, workdir: Path, name: str, size: dict, machine: str) -> None:
    """Profile `machine` at the shapes of `what` (spec or study) into workdir/profiles/NAME.parquet."""
    folder, when = Path("profiles", name).parent, Path(name).name
    tc.profile_machine(what, workdir, when, size, "wall", str(folder), tuple(MACHINES[machine][2]))


def cell_budgets(steps) -> dict:
    """(seq_len, n_embd) -> S, the cell's projected verdict budget on B ("the longest all its trials cover")."""
    budgets = steps.retiming.verdicts.groupby(["seq_len", "n_embd"])["budget_s"].first()
    return {(int(t), int(c)): float(s) for (t, c), s in budgets.items()}


def loss_at_time(points: pd.DataFrame, at_s: float, metric: str) -> pd.Series:
    """trial_id -> `metric` at `at_s` seconds of training, linear in train_time_s between evaluation points (as a
    projection is between its points); NaN where the run ended before `at_s`."""
    out = {}
    for trial_id, group in points.sort_values("train_time_s").groupby("trial_id", sort=True):
        t, loss = group["train_time_s"].to_numpy(float), group[metric].to_numpy(float)
        out[trial_id] = float(np.interp(at_s, t, loss)) if len(t) and t[-1] >= at_s else np.nan
    return pd.Series(out, dtype=float)


def paired_differences(losses: pd.DataFrame) -> pd.DataFrame:
    """losses: KEYS, seed, loss (one row per trial). Per worker arm and cell, the mean over the seeds it shares
    with the cell's standard of arm loss - standard loss, and how many seeds that is."""
    key = losses.assign(worker_interval=losses["worker_interval"].astype(float))
    ref = key[key["arch"].eq("standard")].set_index(["seq_len", "n_embd", "seed"])["loss"]
    rows = []
    for (arch, k, seq_len, n_embd), arm in key[key["arch"].ne("standard")].groupby(KEYS, sort=True):
        diff = (arm.set_index(["seq_len", "n_embd", "seed"])["loss"] - ref).dropna()
        rows.append({"arch": arch, "worker_interval": k, "seq_len": seq_len, "n_embd": n_embd,
                     "measured": float(diff.mean()) if len(diff) else np.nan, "twin_pairs": len(diff)})  # fmt: skip
    return pd.DataFrame(rows, columns=[*KEYS, "measured", "twin_pairs"])


def binomial_interval(inside: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Clopper-Pearson (exact) interval on a rate of `inside` in `n`: never narrower than it should be."""
    from scipy.stats import beta

    if n <= 0:
        return np.nan, np.nan
    tail = (1 - confidence) / 2
    low = 0.0 if inside == 0 else float(beta.ppf(tail, inside, n - inside + 1))
    high = 1.0 if inside == n else float(beta.ppf(1 - tail, inside + 1, n - inside))
    return low, high


def coverage(rows: pd.DataFrame, what: str) -> dict:
    """rows: measured, low, high. A row counts where all three are finite; inside when low <= measured <= high."""
    values = rows[["measured", "low", "high"]].to_numpy(float)
    defined = np.isfinite(values).all(axis=1)
    inside = int(((values[:, 1] <= values[:, 0]) & (values[:, 0] <= values[:, 2]))[defined].sum())
    n = int(defined.sum())
    low, high = binomial_interval(inside, n)
    rate = f"{inside / n:.2f} [{low:.2f}, {high:.2f}]" if n else "no cell"
    return {"projected interval": what, "cells": n, "twin inside": inside, "coverage (95% Clopper-Pearson)": rate,
            "cells without a value": int((~defined).sum()), "nominal": f"{CONFIDENCE:.2f}"}  # fmt: skip


def keyed(frame: pd.DataFrame, final: pd.DataFrame, by: str, fields: list[str] = KEYS) -> pd.DataFrame:
    """`frame` with `fields` from `final` by `by` (the arm labels differ between the two studies, by budget)."""
    fields = final.drop_duplicates(by)[[by, *fields]].astype({"worker_interval": float})
    return frame.merge(fields, on=by, how="left")


def shape_label(frame: pd.DataFrame) -> pd.Series:
    """'standard T=64 C=32', 'worker k=4 T=64 C=32': one shape of this check."""
    k = frame["worker_interval"].map(lambda v: "" if pd.isna(v) else f" k={int(v)}")
    return frame["arch"] + k + " T=" + frame["seq_len"].astype(str) + " C=" + frame["n_embd"].astype(str)


def verdict_rows(steps, twins: dict) -> pd.DataFrame:
    """Per worker arm and cell: the projected difference at S on B and its interval, the twin's at S."""
    from analysis.stats import curve_points

    projected = keyed(steps.retiming.verdicts, steps.final, "arm", ["arch", "worker_interval"])
    projected = projected.rename(columns={"diff": "projected", "diff_ci_low": "low", "diff_ci_high": "high"})
    measured = []
    for (seq_len, n_embd), twin in twins.items():
        budget_s = float(projected.loc[projected["seq_len"].eq(seq_len) & projected["n_embd"].eq(n_embd),
                                       "budget_s"].iloc[0])  # fmt: skip
        points = curve_points(twin.study.metrics, twin.final)
        test = twin.final[twin.final["seed_role"].eq("test")]
        losses = test[["trial_id", *KEYS, "seed"]].assign(loss=test["trial_id"].map(
            loss_at_time(points, budget_s, twin.metric)))  # fmt: skip
        losses.loc[~test["status"].eq("completed").to_numpy(), "loss"] = np.nan  # a lost seed: no value
        measured.append(paired_differences(losses))
    out = projected.merge(pd.concat(measured, ignore_index=True), on=KEYS, how="left")
    return out[[*KEYS, "budget_s", "projected", "low", "high", "measured", "n_pairs", "twin_pairs"]]


def speedup_rows(steps, twins: dict) -> pd.DataFrame:
    """Per worker arm and cell: the projected speed-up to the cell's target on B and its interval, the twin's
    measured one to the same target (the steps study's, by cell)."""
    from analysis.targets import target_summary, time_to_target

    reach = keyed(steps.retiming.reach, steps.final, "config_id")
    reach = reach.rename(columns={"speedup": "projected", "speedup_ci_low": "low", "speedup_ci_high": "high"})
    cell_target = keyed(steps.targets, steps.final, "trial_id").groupby(["seq_len", "n_embd"])["target"].first()
    measured = []
    for cell, twin in twins.items():
        targets = twin.final[["trial_id"]].assign(target=float(cell_target[cell]), target_source="transfer")
        summary = target_summary(time_to_target(twin.curves["train_time_s"], targets), twin.final, twin.chosen)
        summary = keyed(summary, twin.final, "config_id")
        summary["twin reached"] = summary["n_reached"].astype(str) + " of " + summary["n_seeds"].astype(str)
        measured.append(summary.rename(columns={"speedup": "measured", "train_time_s_to_target": "measured_s"}))
    columns = [*KEYS, "measured", "measured_s", "twin reached"]
    out = reach.merge(pd.concat(measured, ignore_index=True)[columns], on=KEYS, how="left")
    out = out[out["arch"].ne("standard")]
    shown = [*KEYS, "target", "projected_time_s_to_target", "measured_s", "twin reached", "projected", "low", "high"]
    return out[[*shown, "measured"]]


def step_time_rows(steps, twins: dict, workdir: Path) -> pd.DataFrame:
    """Per shape: A's and B's profiles against the trials' own ms/step on each machine, and B's speed-up."""
    from analysis.profiles import read_profiles
    from analysis.timing import match_profiles

    def per_shape(final: pd.DataFrame, path: Path) -> pd.Series:
        matched = match_profiles(final, read_profiles([path])).matched  # a folder: its profiles pooled
        seconds = matched.set_index("trial_id")["step_time_s_median"]
        return seconds.groupby(shape_label(final).set_axis(final["trial_id"]).reindex(seconds.index)).median()

    def measured(final: pd.DataFrame) -> pd.Series:
        return (final["train_time_s"] / final["steps"]).groupby(shape_label(final)).median()

    twin_final = pd.concat([t.final for t in twins.values()], ignore_index=True)
    columns = {"A profile": per_shape(steps.final, workdir / "profiles" / "A"),
               "A trials": measured(steps.final),
               "B profiles (pooled)": per_shape(steps.final, workdir / "profiles" / "B"),
               "B trials (twin)": measured(twin_final)}  # fmt: skip
    after = workdir / "profiles" / "B-after-twin.parquet"
    if after.exists():
        columns["B after the twin"] = per_shape(steps.final, after)
    table = pd.DataFrame(columns) * 1000
    table["B speed-up (profiles)"] = table["A profile"] / table["B profiles (pooled)"]
    table["B speed-up (trials)"] = table["A trials"] / table["B trials (twin)"]
    return table.round(2).rename_axis("shape").reset_index()


def ratio_check(workdir: Path) -> str:
    """How far B's speed-up over A differs between shapes, from the two profiles taken before the study."""
    from analysis.profiles import SHAPE_KEY, read_profiles

    a, b = (read_profiles([workdir / "profiles" / m / "1-before.parquet"]) for m in ("A", "B"))
    both = a.merge(b, on=[c for c in SHAPE_KEY if c in a and c in b], suffixes=("_a", "_b"))
    factor = both["step_time_s_median_a"] / both["step_time_s_median_b"]
    spread = factor.max() / factor.min()
    return (f"B over A, per shape (step time A / step time B, profiles before the study): {factor.min():.2f}x to "
            f"{factor.max():.2f}x over {len(factor)} shapes (max / min {spread:.2f}).")  # fmt: skip


def estimate_s(size: dict) -> dict:
    """Seconds each stage should take on a quiet machine (the dry run's time model: the module's constants; B's
    steps at A's speed, which overestimates a faster B)."""
    from wt_model.config import ModelConfig
    from wt_model.flops import training_flops_per_token

    def flops(arch: str, seq_len: int, k: int, model: dict) -> float:
        cfg = ModelConfig(arch=arch, block_size=seq_len, worker_interval=k, dropout=0.0, **model)
        return 8 * seq_len * training_flops_per_token(cfg, seq_len)  # batch 8 (timing_check.spec_doc)

    ref = [(flops(arch, t, 4, REFERENCE_MODEL), ms / 1000) for (arch, t), ms in REFERENCE_MS.items()]
    slope, floor_s = np.polyfit([f for f, _ in ref], [s for _, s in ref], 1)
    arms = [("standard", 4, size["steps"])] + [("worker", k, 2 * size["steps"]) for k in size["intervals"]]
    cells = [(t, c) for t in size["seq_lens"] for c in size["n_embds"]]
    step_s = {(a, k, t, c): floor_s + slope * flops(a, t, k, dict(size["model"], n_embd=c))
              for a, k, _ in arms for t, c in cells}  # fmt: skip
    n, warm, rounds = size["bench"]
    bench_s = BENCH_START_S + 1.5 * sum((n + warm + rounds) * s for s in step_s.values())  # + evaluation passes
    n_seeds = size["seeds"] + len(size["tune_seeds"])
    trials_s = sum(TRIAL_OVERHEAD_S + steps * step_s[(a, k, t, c)] for a, k, steps in arms for t, c in cells)
    twin_s = {(t, c): RAY_START_S + size["seeds"] * len(arms) * (TRIAL_OVERHEAD_S + TWIN_MARGIN * min(
        steps * step_s[(a, k, t, c)] for a, k, steps in arms)) for t, c in cells}  # fmt: skip
    return {"bench": bench_s, "study": RAY_START_S + n_seeds * trials_s, "twin": twin_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="every stage's output; a rerun skips done ones")
    parser.add_argument("--out", type=Path, default=None, help="the tables as markdown (default WORKDIR/report.md)")
    parser.add_argument("--quick", action="store_true", help="tiny models, few steps and seeds: does it run")
    parser.add_argument("--machine-b", choices=["cpu2", "gpu"], default="cpu2",
                        help="B: 2 threads on 2 cores (default), or this machine's GPU")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the stages, done or not, and their time")
    args = parser.parse_args()
    size, b, workdir = SIZES["quick" if args.quick else "full"], args.machine_b, args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    stages, est = Stages(workdir, args.dry_run), estimate_s(size)
    every = {"every_steps": max(size["steps"] // 10, 1)}
    by_arch = {"standard": size["steps"], "worker": 2 * size["steps"]}
    steps_doc = spec_for("transfer-steps", size, "A", {"kind": "steps", "value": 2 * size["steps"]}, by_arch, every)
    steps_spec, steps_dir = write_spec(steps_doc, workdir, not args.dry_run), workdir / "results" / "transfer-steps"
    profiles = workdir / "profiles"
    stages.run("profile-A", lambda: bench(steps_spec, workdir, "A/1-before", size, "A"), est["bench"])
    stages.run("profile-B-before", lambda: bench(steps_spec, workdir, "B/1-before", size, b), est["bench"])
    stages.run("steps-study-on-A", lambda: run_or_resume(steps_spec, workdir), est["study"])
    stages.run("profile-B-after-steps", lambda: bench(steps_dir, workdir, "B/2-after-steps", size, b), est["bench"])
    stages.run("project-onto-B", lambda: tc.wt_study("analyze", str(steps_dir), "--timing", str(profiles / "B"),
                                                     "--out", str(workdir / "report")), 30.0)  # fmt: skip
    projected = (stages.folder / "project-onto-B.json").exists()
    budgets = cell_budgets(tc.analysed(steps_dir, profiles / "B")) if projected else {}
    twin_dirs = {}
    for t, c in [(t, c) for t in size["seq_lens"] for c in size["n_embds"]]:
        name = f"twin-T{t}-C{c}-on-B"
        if (t, c) not in budgets:
            if not args.dry_run:
                raise SystemExit(f"cell seq_len={t}, n_embd={c} has no projected verdict on B (see "
                                 f"{workdir / 'report'}): no budget for its twin.")  # fmt: skip
            stages.plan.append((name, False, est["twin"][(t, c)]))
            continue
        s = budgets[(t, c)]
        doc = spec_for(f"transfer-twin-T{t}-C{c}", size, b, {"kind": "seconds", "value": TWIN_MARGIN * s}, None,
                       {"every_s": s / 4}, cell=(t, c))  # fmt: skip
        spec = write_spec(doc, workdir, not args.dry_run)
        stages.run(name, lambda spec=spec: run_or_resume(spec, workdir), est["twin"][(t, c)])
        twin_dirs[(t, c)] = workdir / "results" / doc["name"]
    stages.run("profile-B-after-twin", lambda: bench(steps_dir, workdir, "B-after-twin", size, b), est["bench"])
    if args.dry_run:
        return print_plan(stages, b)
    report(steps_dir, twin_dirs, workdir, args.out or workdir / "report.md", stages)


def print_plan(stages: Stages, machine_b: str) -> None:
    print(f"{'stage':<32} {'done':<5} estimate")
    for name, done, seconds in stages.plan:
        print(f"{name:<32} {'yes' if done else 'no':<5} {seconds / 60:5.1f} min")
    left = sum(seconds for _, done, seconds in stages.plan if not done)
    where = "; B's stages at CPU speed (a GPU's are unknown until its profile)" if machine_b == "gpu" else ""
    print(f"left to run: about {left / 60:.0f} min on a quiet 2-core machine{where}")


def report(steps_dir: Path, twin_dirs: dict, workdir: Path, out: Path, stages: Stages) -> None:
    from analysis.tables import md_table

    steps = tc.analysed(steps_dir, workdir / "profiles" / "B")
    twins = {cell: tc.analysed(path, None) for cell, path in twin_dirs.items()}
    verdicts, speedups = verdict_rows(steps, twins), speedup_rows(steps, twins)
    table = pd.DataFrame([coverage(verdicts, "verdict: arm - standard at S"),
                          coverage(speedups, "speed-up to the cell's target")])  # fmt: skip
    overhead = (stages.elapsed_s("steps-study-on-A") - RAY_START_S - steps.final["train_time_s"].sum()) / len(
        steps.final)  # fmt: skip
    text = (f"# Transfer check: {len(steps.final)} trials on A projected onto {steps.retiming.machines[0]}\n\n"
            f"{ratio_check(workdir)}\n\nCoverage of the projected 95% intervals by the twin on B (workdir "
            f"`{workdir}`):\n\n{md_table(table)}\n\nVerdicts per cell (at S, the longest all the cell's trials "
            f"cover on B):\n\n{md_table(verdicts.round(4))}\n\nSpeed-ups per cell (time to the cell's target):\n\n"
            f"{md_table(speedups.round(3))}\n\nStep times per shape, ms (profiles and the trials' own "
            f"train_time_s / steps):\n\n{md_table(step_time_rows(steps, twins, workdir))}\n\nA trial's time outside "
            f"its training steps, on A: {overhead:.1f} s (the dry run assumes {TRIAL_OVERHEAD_S:g} s).\n")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print("\n" + text)


if __name__ == "__main__":
    main()
