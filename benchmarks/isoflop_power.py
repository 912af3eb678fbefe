"""The isoFLOP rule's power on synthetic ladders: the table in docs/analysis.md ("Power of the isoFLOP rule").

Pure numpy through analysis.isoflop_power (no training, no timing): per cell, --draws noisy ladders of 5 sizes
over one decade with 3 seeds, a fixed RNG. Prints, per position of the optimum on the ladder, the share of
draws identified against curvature (rows) and seed SD (columns), the identified draws' coverage of the true
N_opt, approach 2's bias (decades of N, noiseless) on the ladder, and the two reference cases on a parabola.

    python benchmarks/isoflop_power.py [--draws 300] [--decades 1.0]
"""

from __future__ import annotations

import argparse

from analysis.isoflop_power import POSITIONS, bias_decades, power_cell, power_table

NAMES = {0.5: "centred", 0.25: "optimum at 1/4", 0.0: "optimum at the smallest size", 1.0: "at the largest size"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=300, help="noisy ladders per cell")
    parser.add_argument("--decades", type=float, default=1.0, help="span of the ladder in log10 N")
    args = parser.parse_args()
    table = power_table(positions=(*POSITIONS.values(), 1.0), n_draws=args.draws, decades=args.decades)
    print(f"Chinchilla-shaped profile, 5 sizes over {args.decades:g} decade(s), 3 seeds, {args.draws} draws per cell")
    for position, rows in table.groupby("position", sort=False):
        print(f"\n{NAMES[position]}: identified (covered) by curvature (nats/decade^2) x seed SD (nats); "
              f"approach 2's bias {rows['bias_decades'].iloc[0]:+.4f} decades")  # fmt: skip
        sds = sorted(rows["seed_sd"].unique())
        print("| curvature | " + " | ".join(f"sd {sd:g} (t)" for sd in sds) + " |")
        print("| ---: |" + " ---: |" * len(sds))
        for curvature, cell in rows.groupby("curvature"):
            cell = cell.set_index("seed_sd")
            parts = [f"{cell.loc[sd, 'identified']:.0%} ({cell.loc[sd, 'covered']:.0%}; t {cell.loc[sd, 't']:.1f})"
                     for sd in sds]  # fmt: skip
            print(f"| {curvature:g} | " + " | ".join(parts) + " |")
    print("\nReference cases, a true parabola centred on the ladder:")
    for curvature, sd in ((0.3, 0.01), (0.6, 0.04)):
        r = power_cell(curvature, sd, 0.5, "parabola", n_draws=args.draws, decades=args.decades)
        print(f"- curvature {curvature:g}, seed SD {sd:g} (t {r['t']:.1f}): identified {r['identified']:.0%}, "
              f"covered {r['covered']:.0%}")  # fmt: skip
    print("\nApproach 2's bias on a two-decade ladder (decades of N):",
          ", ".join(f"{NAMES[p]} {bias_decades(0.3, p, 'chinchilla', decades=2.0):+.4f}" for p in NAMES))  # fmt: skip


if __name__ == "__main__":
    main()
