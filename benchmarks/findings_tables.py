"""The tables docs/findings.md quotes, from the analysis folders findings_cpu.sh writes (nothing is recomputed:
each number is read from a report's CSV files).

    python benchmarks/findings_tables.py [docs/findings]  > docs/findings/tables.md

1. the verdicts at each arm's own lr (findings-cpu) beside those at the shared lr 2e-3 (findings-cpu-lr2e-3);
2. the difference at equal steps, input tokens, supervised targets, FLOPs and time (axes.csv);
3. the projected time to target on this machine's profile, and the projected verdict (timing_*.csv);
4. passes over the data in input tokens and in supervised targets (verdicts.csv);
5. scaling-cpu's isoFLOP profiles, compute-optimal frontiers and the arms' difference along them (isoflop_*.csv).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from analysis.verdicts import upgrade_columns


def _ci(row, mean="diff", low="diff_ci_low", high="diff_ci_high", fmt="+.3f") -> str:
    if pd.isna(row[mean]):
        return "—"
    return f"{row[mean]:{fmt}} [{row[low]:{fmt}}, {row[high]:{fmt}}]"


def _p(value) -> str:
    return "—" if pd.isna(value) else f"{value:.2g}"


def _table(rows: list[dict]) -> str:
    frame = pd.DataFrame(rows)
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def verdicts(own: pd.DataFrame, shared: pd.DataFrame) -> str:
    keys = ["seq_len", "arm"]
    both = own.merge(shared, on=keys, how="left", suffixes=("", "_shared"))
    rows = []
    for _, r in both.sort_values(keys).iterrows():
        rows.append({
            "T": r["seq_len"], "arm": r["arm"], "lr (arm / std)": f"{r['arm_tuned']} / {r['ref_tuned']}",
            "seeds (arm / std)": f"{r['n_arm']} / {r['n_ref']}",
            "arm − std, own lr [95% CI]": _ci(r), "p (Holm)": _p(r["p_holm"]), "verdict": r["verdict"],
            "arm − std at lr 2e-3 [95% CI]": _ci(r, "diff_shared", "diff_ci_low_shared", "diff_ci_high_shared"),
            "p (Holm), 2e-3": _p(r.get("p_holm_shared")), "verdict at 2e-3": r.get("verdict_shared", "—"),
        })  # fmt: skip
    return _table(rows)


def axes(frame: pd.DataFrame) -> str:
    seq_len = frame["cell_key"].str.extract(r'"seq_len": (\d+)')[0]
    frame = frame.assign(T=seq_len.astype(int))
    rows = []
    for (t, arm), group in frame.groupby(["T", "arm"], sort=True):
        row = {"T": t, "arm": arm}
        for _, r in group.iterrows():
            row[r["axis_label"]] = f"{_ci(r)} at {r['x']:.3g}"
        rows.append(row)
    return _table(rows)


def timing(reach: pd.DataFrame, projected: pd.DataFrame, summary: pd.DataFrame) -> str:
    """timing_reach.csv has each arm's chosen configuration per cell; summary.csv says which cell and lr."""
    reach = reach.drop(columns="arm").merge(summary[["config_id", "arm", "seq_len", "tuned"]], on="config_id")
    rows = []
    for _, r in reach.sort_values(["seq_len", "arm"]).iterrows():
        speedup = (
            "—"
            if pd.isna(r["speedup"])
            else f"{r['speedup']:.2f}x [{r['speedup_ci_low']:.2f}, {r['speedup_ci_high']:.2f}]"
        )
        time = "—" if pd.isna(r["projected_time_s_to_target"]) else f"{r['projected_time_s_to_target']:.0f}"
        rows.append({"T": r["seq_len"], "arm": r["arm"], "lr": r["tuned"], "target": f"{r['target']:.3f}",
                     "reached": f"{r['n_reached']}/{r['n_seeds']}", "projected median time (s)": time,
                     "speedup [95% CI]": speedup})  # fmt: skip
    lines = [_table(rows), ""]
    lines += [f"- {s}" for s in projected["sentence"]]
    return "\n".join(lines)


def epochs(own: pd.DataFrame) -> str:
    rows = []
    for _, r in own.sort_values(["seq_len", "arm"]).iterrows():
        rows.append({"T": r["seq_len"], "arm": r["arm"],
                     "passes in input tokens (arm / std)": f"{r['arm_epochs']:.2f} / {r['ref_epochs']:.2f}",
                     "passes in supervised targets (arm / std)":
                         f"{r['arm_target_epochs']:.2f} / {r['ref_target_epochs']:.2f}"})  # fmt: skip
    return _table(rows)


def _interval(r, name: str, fmt: str) -> str:
    """`name` with its `name_low`, `name_high` interval (the isoFLOP tables' columns)."""
    return _ci(r, name, f"{name}_low", f"{name}_high", fmt)


def size_verdicts(own: pd.DataFrame) -> str:
    """scaling-cpu's verdicts: worker − standard at each size both arms ran at a budget, with passes over the data."""
    rows = []
    for _, r in own.dropna(subset=["diff"]).sort_values(["budget_value", "n_embd", "n_layer"]).iterrows():
        rows.append({"budget (FLOPs)": f"{r['budget_value']:.0e}", "size": f"d{r['n_embd']} L{r['n_layer']}",
                     "lr (arm / std)": f"{r['arm_tuned']} / {r['ref_tuned']}",
                     "passes in tokens (arm / std)": f"{r['arm_epochs']:.2f} / {r['ref_epochs']:.2f}",
                     "arm − std [95% CI]": _ci(r), "p (Holm)": _p(r["p_holm"]), "verdict": r["verdict"]})  # fmt: skip
    return _table(rows)


def isoflop(profiles: pd.DataFrame, fits: pd.DataFrame, differences: pd.DataFrame) -> str:
    """Per arm and FLOP budget: the compute-optimal size and loss with their intervals, whether the profile is
    identified (and why not); per arm the frontier fits; per budget the arm's optimum minus the standard's."""
    rows = []
    for _, r in profiles.sort_values(["arm", "budget_flops"]).iterrows():
        rows.append({"arm": r["arm"], "budget (FLOPs)": f"{r['budget_flops']:.0e}", "sizes": r["n_sizes"],
                     "N_opt [95% CI]": _interval(r, "n_opt", ",.0f"), "L_opt [95% CI]": _interval(r, "loss_opt", ".3f"),
                     "lack of fit p": _p(r["lof_p"]),
                     "identified": "yes" if r["identified"] else f"no: {r['reason']}"})  # fmt: skip
    lines = [_table(rows), ""]
    rows = []
    for _, r in fits.iterrows():
        row = {"arm": r["arm"], "budgets identified": f"{r['n_identified']} of {r['n_budgets']}",
               "identified": "yes" if r["identified"] else f"no: {r['reason']}"}  # fmt: skip
        for name in ("n_opt", "loss_opt"):
            if f"{name}_exponent" in r:
                row[f"{name} exponent [95% CI]"] = _interval(r, f"{name}_exponent", ".2f")
        rows.append(row)
    lines += [_table(rows), ""]
    lines += [f"- {r['statement']}" for _, r in differences.iterrows() if isinstance(r["statement"], str)]
    return "\n".join(lines)


def main(root: Path) -> None:
    own_dir, shared_dir = root / "findings-cpu", root / "findings-cpu-lr2e-3"
    own = upgrade_columns(pd.read_csv(own_dir / "verdicts.csv"))  # older reports: worker_*/standard_* columns
    shared = upgrade_columns(pd.read_csv(shared_dir / "verdicts.csv"))
    summary = pd.read_csv(own_dir / "summary.csv")
    print("## Verdicts at each arm's own lr, and at the shared lr 2e-3\n")
    print(verdicts(own, shared), "\n")
    print("## Passes over the training split\n")
    print(epochs(own), "\n")
    print("## At equal steps, tokens, targets, FLOPs and time\n")
    print(axes(pd.read_csv(own_dir / "axes.csv")), "\n")
    if (own_dir / "timing_reach.csv").exists():
        print("## Re-timed on this machine's quiet profile\n")
        print(timing(pd.read_csv(own_dir / "timing_reach.csv"), pd.read_csv(own_dir / "timing_verdicts.csv"), summary))
    scaling = root / "scaling-cpu"
    if (scaling / "isoflop_profiles.csv").exists():
        print("\n## scaling-cpu: isoFLOP profiles, frontiers and the worker against the standard model\n")
        tables = [pd.read_csv(scaling / f"isoflop_{name}.csv") for name in ("profiles", "fits", "differences")]
        print(isoflop(*tables), "\n")
        print("## scaling-cpu: worker − standard at equal size and FLOP budget\n")
        print(size_verdicts(pd.read_csv(scaling / "verdicts.csv")))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/findings"))
