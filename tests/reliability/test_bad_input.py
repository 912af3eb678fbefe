"""Bad input through `wt-study` (beyond tests/study/test_spec.py): malformed YAML, wrong types, unknown presets,
resuming what is not a study or with another spec, bad corpora, non-positive resources, absurd sizes, bad flags.

Each must exit with code 2, say what is wrong in one line on stderr (argparse's own usage errors print the usage
line first and then one `error:` line: that is the standard form and is accepted), print no traceback, write
nothing (the storage directory stays absent, the study directory unchanged) and never start Ray.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from study.cli import main
from study.config.specfile import dump_spec, parse_spec
from study.tune import plan as runner
from tests.study.conftest import TINY_SPEC, deep_update
from wt_base.storage import write_text_atomic


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    return code, capsys.readouterr().err


def _empty_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "texts"
    folder.mkdir()
    return folder


def _spec_file(tmp_path: Path, text: str | bytes, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _spec(tmp_path: Path, **changes) -> Path:
    doc = deep_update({**TINY_SPEC, "storage": str(tmp_path / "results")}, changes)
    return _spec_file(tmp_path, yaml.safe_dump(doc), "spec.yaml")


def _storage_line(tmp_path: Path) -> str:
    return f"storage: {tmp_path / 'results'}\n"


def _existing_study(tmp_path: Path) -> Path:
    """A recorded study (study.yaml, as `wt-study run` writes it before Ray starts its trials)."""
    spec = parse_spec({**TINY_SPEC, "storage": str(tmp_path / "existing")})
    plan = runner.plan(spec)
    write_text_atomic(plan.location, runner.SPEC_FILE, dump_spec(plan.spec))
    return Path(plan.location.path)


# case -> (argv builder(tmp_path), fragment of the error line)
CASES = {
    # malformed YAML
    "yaml tab indentation": (lambda t: ["run", _spec_file(t, "name: x\n\tstorage: y\n")], "not valid YAML"),
    "yaml unclosed quote": (lambda t: ["run", _spec_file(t, 'name: "tiny\n')], "not valid YAML"),
    "yaml bad indentation": (lambda t: ["run", _spec_file(t, "budget:\n  kind: seconds\n value: 3\n")], "YAML"),
    "yaml is a list": (lambda t: ["run", _spec_file(t, "- name\n- storage\n")], "must be a mapping"),
    "yaml is a scalar": (lambda t: ["run", _spec_file(t, "just some words\n")], "must be a mapping"),
    "yaml file empty": (lambda t: ["run", _spec_file(t, "")], "must be a mapping"),
    "spec file binary": (lambda t: ["run", _spec_file(t, bytes(range(256)))], "cannot be read"),
    # wrong types and values
    "section not a mapping": (lambda t: ["run", _spec(t, budget="fast")], "budget"),
    "axes not a mapping": (lambda t: ["run", _spec(t, axes=[1, 2])], "axes must be a mapping"),
    "seeds a word": (lambda t: ["run", _spec(t, seeds="three")], "seeds='three'"),
    "max_concurrent fractional": (lambda t: ["run", _spec(t, max_concurrent=1.5)], "max_concurrent"),
    "checkpoint_every_s a word": (lambda t: ["run", _spec(t, checkpoint_every_s="often")], "checkpoint_every_s"),
    "n_layer fractional": (lambda t: ["run", _spec(t, model={"n_layer": 2.5})], "n_layer"),
    "seq_len axis a word": (lambda t: ["run", _spec(t, axes={"seq_len": ["long"]})], "axes.seq_len"),
    "compile a word": (lambda t: ["run", _spec(t, train={"compile": "yes"})], "train.compile"),
    "name a number": (lambda t: ["run", _spec(t, name=123)], "name"),
    "max_failures negative": (lambda t: ["run", _spec(t, max_failures=-1)], "max_failures=-1"),
    "lr negative": (lambda t: ["run", _spec(t, axes={"lr": [-0.1]})], "lr"),
    # presets
    "preset empty": (lambda t: ["run", "--preset", "", "--storage", t / "results"], "not a known preset"),
    "preset path traversal": (lambda t: ["run", "--preset", "../presets/smoke"], "not a known preset"),
    "spec and preset": (lambda t: ["run", _spec(t), "--preset", "smoke"], "not both"),
    # resume
    "resume a missing path": (lambda t: ["resume", t / "nowhere"], "not a study directory"),
    "resume a plain folder": (lambda t: ["resume", t], "not a study directory"),
    "resume a file": (lambda t: ["resume", _spec(t)], "not a study directory"),
    "resume with another spec": (
        lambda t: ["resume", _existing_study(t), "--spec", _spec(t, budget={"value": 99})],
        "differs from the spec this study was started with",
    ),
    "resume with a missing spec": (
        lambda t: ["resume", _existing_study(t), "--spec", t / "nope.yaml"],
        "does not exist",
    ),
    "resume a damaged study.yaml": (
        lambda t: ["resume", _damaged_study(t)],
        "damaged study.yaml",
    ),
    # corpus
    "corpus binary": (lambda t: ["run", _spec(t), "--data", _spec_file(t, bytes(range(256)) * 4, "c.bin")], "UTF-8"),
    "corpus empty": (lambda t: ["run", _spec(t), "--data", _spec_file(t, b"", "c.txt")], "is empty"),
    "corpus an empty directory": (lambda t: ["run", _spec(t), "--data", _empty_dir(t)], "a folder with no"),
    "corpus missing": (lambda t: ["run", _spec(t), "--data", t / "missing.txt"], "no such file"),
    "corpus too short for seq_len": (
        lambda t: ["run", _spec(t), "--data", _spec_file(t, b"to be or not", "c.txt")],
        "too long for corpus",
    ),
    # resources
    "cpus negative": (lambda t: ["run", _spec(t, resources={"cpus": -2})], "resources.cpus=-2"),
    "cpus a word": (lambda t: ["run", _spec(t, resources={"cpus": "many"})], "resources.cpus"),
    "half a gpu on a cpu machine": (
        lambda t: ["run", _spec(t, budget={"kind": "steps", "value": 3}, resources={"gpus": 0.5})],
        "exceed this machine",
    ),
    "half a gpu, seconds budget": (lambda t: ["run", _spec(t, resources={"gpus": 0.5})], "allow_shared_device"),
    "half a core, seconds budget": (lambda t: ["run", _spec(t, resources={"cpus": 0.5})], "allow_shared_device"),
    "zero budget via steps": (lambda t: ["run", _spec(t, budget={"kind": "steps", "value": 0})], "budget.value=0"),
    # absurd sizes, caught before anything is allocated
    "width 10^6 on an axis": (lambda t: ["run", _spec(t, axes={"n_embd": [1_000_000]})], "n_embd=1000000"),
    "seq_len 10^7": (lambda t: ["run", _spec(t, axes={"seq_len": [10_000_000]})], "seq_len=10000000"),
    "batch 10^9": (lambda t: ["run", _spec(t, train={"batch_size": 10**9})], "batch_size=1000000000"),
    "layers 10^5": (lambda t: ["run", _spec(t, model={"n_layer": 100_000})], "n_layer=100000"),
    # flags
    "unknown flag": (lambda t: ["run", _spec(t), "--frobnicate"], "unrecognized arguments: --frobnicate"),
    "unknown command": (lambda t: ["explode"], "invalid choice: 'explode'"),
    "resume without a path": (lambda t: ["resume"], "required: path"),
    "storage empty": (lambda t: ["run", _spec(t), "--storage", ""], "storage"),
    "storage a file": (lambda t: ["run", _spec(t), "--storage", _spec_file(t, b"x", "f")], "not a directory"),
    "name with a slash": (lambda t: ["run", _spec(t), "--name", "../escape"], "name='../escape'"),
    "analyze negative target": (
        lambda t: ["analyze", _existing_study(t), "--target-loss", "-1"],
        "--target-loss",
    ),
    "analyze a folder without results": (lambda t: ["analyze", t], "no results"),
    "status of a non-study": (lambda t: ["status", t], "not a study directory"),
    "analyze a file": (lambda t: ["analyze", _spec_file(t, b"x", "f")], "is a file, not a study directory"),
    "analyze --out a file": (
        lambda t: ["analyze", _existing_study(t), "--out", _spec_file(t, b"x", "f")],
        "is a file: expected a directory for the report",
    ),
    "worker interval above seq_len": (
        lambda t: ["run", _spec(t, axes={"arch": ["worker"], "worker_interval": [128], "seq_len": [64]})],
        "worker_interval=128 is invalid: expected at most block_size=64",
    ),
    "train --worker-interval above --seq-len": (
        lambda t: ["train", "--arch", "worker", "--worker-interval", "200", "--seq-len", "64"],
        "--worker-interval=200 is invalid: expected at most block_size=64",
    ),
}


def _damaged_study(tmp_path: Path) -> Path:
    study_dir = _existing_study(tmp_path)
    (study_dir / runner.SPEC_FILE).write_text("name: [unclosed\n")
    return study_dir


def _snapshot(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        for p in root.rglob("*")
    }


def test_the_spec_the_cases_break_is_valid(tmp_path, capsys):
    """Most cases break one thing in this spec, so their error must come from that thing: unbroken, the same
    command (as a dry run) succeeds, prints no error and writes nothing."""
    code, err = run_cli(["run", _spec(tmp_path), "--dry-run"], capsys)
    assert (code, err) == (0, "")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    import ray

    build, fragment = CASES[case]
    argv = build(tmp_path)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    code, err = run_cli(argv, capsys)
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # argparse's own errors too: no usage block before them
    assert "error:" in lines[0] and fragment in lines[0], lines[0]
    assert _snapshot(tmp_path) == before, "something was written"
    assert not (tmp_path / "results").exists()
    assert not ray.is_initialized()
