"""Every torch.load in the source tree passes weights_only=True (checked on the syntax trees).

The other security properties (no shell, no eval/exec, no unpickling or yaml.load of data, subprocess commands as
literal argument lists) are ruff's flake8-bandit rules and banned calls, configured in pyproject.toml and run by
`ruff check .` (CI runs it); a rule cannot see whether a keyword argument is there, so this one is a test.
"""

from __future__ import annotations

import ast

from tests.reliability.helpers import REPO

PACKAGES = ("study", "wt_model", "analysis", "benchmarks")


def torch_loads(source: str) -> tuple[list[int], list[int]]:
    """Lines of every torch.load call in `source`, and of those without weights_only=True (a `from torch import
    load` counts as bad: it would hide its calls from this check)."""
    found, bad = [], []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            bad.append(node.lineno)
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr == "load" and ast.unparse(func.value) == "torch":
            found.append(node.lineno)
            flag = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                bad.append(node.lineno)
    return found, bad


def test_every_torch_load_is_weights_only():
    found, bad = [], []
    for path in (p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))):
        lines, bad_lines = torch_loads(path.read_text(encoding="utf-8"))
        where = path.relative_to(REPO)
        found += [f"{where}:{n}" for n in lines]
        bad += [f"{where}:{n}" for n in bad_lines]
    assert found, "no torch.load call found: the check looks in the wrong place"
    assert not bad, f"torch.load without weights_only=True at {bad}"


def test_the_check_catches_a_missing_or_false_weights_only():
    source = "import torch\nfrom torch import load\ntorch.load(a)\ntorch.load(b, weights_only=False)\n"
    source += "torch.load(c, weights_only=True)\n"
    assert torch_loads(source) == ([3, 4, 5], [2, 3, 4])
