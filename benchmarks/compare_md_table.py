"""Why the report keeps its own markdown tables (analysis.tables.md_table): every table of a real report (the
synthetic study the HTML test analyses), written by md_table, by `DataFrame.to_markdown` (tabulate) as it comes,
and by to_markdown after our cell formatting; each read back into cells and compared with md_table's, plus a
cell holding a '|'. A missing tabulate is said.

    PYTHONPATH=. python benchmarks/compare_md_table.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "analysis")]

from synth import write_study  # noqa: E402

from analysis import render, render_timing, tables  # noqa: E402
from analysis.cli import add_arguments, run  # noqa: E402
from analysis.tables import fmt, md_cell, md_table  # noqa: E402

PIPE = pd.DataFrame({"setting": ["lr 1e-3 | wd 0.1", "plain"], "loss": [1.5, float("nan")], "ok": [True, False]})


def report_frames() -> list[pd.DataFrame]:
    """The frames md_table turns into the report's tables, caught while a real report is written."""
    caught = []

    def catching(frame, digits=4):
        caught.append((frame, digits))
        return md_table(frame, digits)

    for module in (render, render_timing, tables):
        module.md_table = catching
    with tempfile.TemporaryDirectory() as tmp:
        study = write_study(Path(tmp) / "study", name="mailed", budget_s=20.0)
        parser = argparse.ArgumentParser()
        add_arguments(parser, "analyze")
        with contextlib.redirect_stdout(io.StringIO()):  # the CLI prints the verdicts
            assert run(parser.parse_args([str(study), "--out", str(Path(tmp) / "out")])) == 0
    for module in (render, render_timing, tables):
        module.md_table = md_table
    return [(f, d) for f, d in caught if not f.empty]


def cells(text: str) -> list[list[str]]:
    """A markdown table's rows of cells (the rule row left out), split at unescaped '|'."""
    rows = [line.strip()[1:-1] for line in text.splitlines() if not re.fullmatch(r"\|[ :|-]+\|", line.strip())]
    return [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)] for row in rows]


def unlike(ours: list[list[str]], theirs: list[list[str]]) -> int:
    """Cells of `theirs` that differ from `ours` (a row split into more or fewer cells counts its extra ones)."""
    rows = zip(ours, theirs, strict=True)
    return sum(sum(a != b for a, b in zip(r, s, strict=False)) + abs(len(r) - len(s)) for r, s in rows)


def to_markdown_as_is(frame: pd.DataFrame, digits: int) -> str:
    return frame.to_markdown(index=False)


def to_markdown_with_our_cells(frame: pd.DataFrame, digits: int) -> str:  # the glue it would need: 3 lines
    shown = frame.map(lambda v: md_cell(fmt(v, digits))).rename(columns=md_cell)
    return shown.to_markdown(index=False, disable_numparse=True, colalign=["left"] * len(shown.columns))


def median_ms(statement: str, repeats: int = 11) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)  # noqa: S603 - our own statement
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    try:
        import tabulate
    except ImportError:
        print("tabulate is not installed (pip install tabulate): DataFrame.to_markdown needs it.")
        return
    frames = report_frames() + [(PIPE, 4)]
    ours = [cells(md_table(f, d)) for f, d in frames]
    n_cells = sum(len(row) for table in ours for row in table)
    print(f"{len(frames) - 1} tables of a real report + 1 with a '|' in a cell: {n_cells} cells (tabulate "
          f"{tabulate.__version__}, pandas {pd.__version__})")  # fmt: skip
    print(f"{'':34}cells unlike ours   tables split wrong   characters")
    print(f"{'md_table (ours)':34}{0:<19}{0:<21}{sum(len(md_table(f, d)) for f, d in frames):,}")
    ways = {"to_markdown as it comes": to_markdown_as_is, "to_markdown + our cells": to_markdown_with_our_cells}
    for name, write in ways.items():
        texts = [write(f, d) for f, d in frames]
        theirs = [cells(t) for t in texts]
        split = sum(len({len(r) for r in t}) > 1 for t in theirs)
        differ = sum(unlike(a, b) for a, b in zip(ours, theirs, strict=True))
        print(f"{name:34}{differ:<19}{split:<21}{sum(map(len, texts)):,}")
    print("\nthe table with a '|', as to_markdown writes it:\n" + to_markdown_as_is(PIPE, 4))
    print("\nand as md_table writes it:\n" + md_table(PIPE))
    base = median_ms("pass")
    print(
        f"\nimport tabulate: {median_ms('import tabulate') - base:+.0f} ms (median of 11 fresh processes, minus `pass`)"
    )


if __name__ == "__main__":
    main()
