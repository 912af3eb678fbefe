"""Security properties of the source tree, checked on its syntax trees (so they fail when someone breaks them):
every torch.load passes weights_only=True, nothing unpickles or evaluates data, no command goes through a shell,
and subprocess commands are lists of arguments, never strings built from input. The checkpoint loader is the
study's own: the trainable only loads what ray.tune.get_checkpoint() hands it (docs/results.md, Security).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.reliability.helpers import REPO

PACKAGES = ("study", "wt_model", "analysis", "benchmarks")


def _sources() -> list[Path]:
    files = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    assert len(files) > 20, files
    return files


def _calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    """Dotted name of a call's target, e.g. torch.load, subprocess.run, os.system ("" if not a plain name)."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
        return ".".join(reversed(parts))
    return ""


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{node.lineno}"


def test_every_torch_load_is_weights_only():
    found, bad = [], []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # `from torch import load` would hide calls from the check below
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                assert all(a.name != "load" for a in node.names), _where(path, node)
        for call in _calls(path):
            if _name(call.func) != "torch.load":
                continue
            found.append(_where(path, call))
            flag = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                bad.append(_where(path, call))
    assert found, "no torch.load call found: the check looks in the wrong place"
    assert not bad, f"torch.load without weights_only=True at {bad}"


UNSAFE = {
    "os.system": "runs a shell",
    "os.popen": "runs a shell",
    "eval": "evaluates text as code",
    "exec": "executes text as code",
    "pickle.load": "unpickles (runs code from the file)",
    "pickle.loads": "unpickles",
    "cloudpickle.load": "unpickles",
    "cloudpickle.loads": "unpickles",
    "yaml.load": "can build arbitrary objects: use yaml.safe_load",
    "yaml.unsafe_load": "builds arbitrary objects",
    "numpy.load": "can unpickle",
    "np.load": "can unpickle",
}


def test_no_shell_no_eval_no_unpickling():
    bad = []
    for path in _sources():
        for call in _calls(path):
            name = _name(call.func)
            if name in UNSAFE:
                bad.append(f"{_where(path, call)} {name}: {UNSAFE[name]}")
            for keyword in call.keywords:
                if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and not keyword.value.value):
                    bad.append(f"{_where(path, call)} {name}(shell=...)")
    assert not bad, bad


def test_subprocess_commands_are_argument_lists():
    """A command given as a string (or built with f-strings / + / %) would be parsed by a shell or be a single
    program name with input spliced in; every subprocess call must pass a list or tuple of arguments."""
    bad, seen = [], 0
    for path in _sources():
        for call in _calls(path):
            name = _name(call.func)
            if not name.startswith("subprocess.") or name.split(".")[-1] not in (
                "run",
                "Popen",
                "call",
                "check_call",
                "check_output",
            ):
                continue
            seen += 1
            command = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "args"), None)
            if not isinstance(command, (ast.List, ast.Tuple)):
                bad.append(f"{_where(path, call)}: {ast.unparse(command) if command is not None else '?'}")
    assert not bad, f"subprocess commands not given as argument lists: {bad}"
    assert seen >= 1  # study.tune.rows runs git: the check sees real calls


def test_trainable_loads_checkpoints_only_from_tune():
    """The trainable's only loader is load_state on the folder of ray.tune.get_checkpoint(), i.e. the trial's
    own checkpoint under <study>/tune/ (never a path from the trial's config or the environment)."""
    source = (REPO / "study" / "trial.py").read_text()
    tree = ast.parse(source)
    loads = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and _name(c.func) == "load_state"]
    assert len(loads) == 1
    assert "checkpoint = tune.get_checkpoint()" in source
    assert "with checkpoint.as_directory() as folder:" in source
    assert ast.unparse(loads[0].args[0]) == "Path(folder) / STATE_FILE"


@pytest.mark.parametrize("path", ["docs/results.md"])
def test_docs_say_who_may_write_the_storage(path):
    text = (REPO / path).read_text()
    assert "## Security" in text and "write" in text and "weights_only=True" in text
