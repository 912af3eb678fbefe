"""`wt-study train` flags come from the RunConfig dataclasses: every field once, the documented names kept."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest

from study.cli import build_parser
from study.cli.flags import NO_FLAG, field_comments, run_config_flags
from study.cli.train import build_config
from study.config.run import RunConfig

# The flags README.md documents (users' scripts use them): argv -> (field path, value in the RunConfig)
DOCUMENTED = [
    (["--attention", "naive"], "model.attention", "naive"),
    (["--worker-interval", "8"], "model.worker_interval", 8),
    (["--seq-len", "48"], "model.block_size", 48),
    (["--n-embd", "64"], "model.n_embd", 64),
    (["--n-layer", "3"], "model.n_layer", 3),
    (["--n-head", "3"], "model.n_head", 3),
    (["--dropout", "0.2"], "model.dropout", 0.2),
    (["--batch-size", "5"], "train.batch_size", 5),
    (["--lr", "0.01"], "train.lr", 0.01),
    (["--schedule", "cosine"], "train.schedule", "cosine"),
    (["--warmup-frac", "0.1"], "train.warmup_frac", 0.1),
    (["--device", "cpu"], "train.device", "cpu"),
    (["--compile"], "train.compile", True),
    (["--seed", "7"], "train.seed", 7),
    (["--threads", "2"], "train.threads", 2),
    (["--budget-kind", "steps"], "budget.kind", "steps"),
    (["--budget", "12"], "budget.value", 12.0),
    (["--count-eval-in-budget"], "budget.count_eval_in_budget", True),
    (["--eval-every-s", "4"], "eval.every_s", 4.0),
    (["--eval-every-steps", "9"], "eval.every_steps", 9),
    (["--val-tokens", "512"], "eval.val_tokens", 512),
    (["--eval-protocol", "seed"], "eval.protocol", "seed"),
    (["--no-final-full"], "eval.final_full", False),
    (["--data", "corpus.txt"], "data.corpus", "corpus.txt"),
    (["--cache-dir", "/tmp/cache"], "data.cache_dir", "/tmp/cache"),
    (["--checkpoint-every-s", "30"], "checkpoint_every_s", 30.0),
    (["--init", "nanogpt"], "model.init", "nanogpt"),  # a field added later: its flag came by itself
]


def _config(argv: list[str], **base) -> RunConfig:
    args = build_parser("train").parse_args(["train", *argv])
    return build_config(args, {"model": {"n_embd": 48, "n_head": 2, "dropout": 0.0}, **base})


def _get(cfg: RunConfig, path: str):
    value = cfg
    for part in path.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("argv", "path", "value"), DOCUMENTED, ids=[" ".join(a) for a, _, _ in DOCUMENTED])
def test_documented_flags_set_their_field(argv, path, value):
    assert _get(_config(argv), path) == value
    assert _get(_config([]), path) != value  # the flag changed it


def test_negated_switches_override_a_config_file():
    assert _config(["--no-compile"], train={"compile": True}).train.compile is False
    assert _config(["--no-final-full"], eval={"final_full": True}).eval.final_full is False


def test_arch_labels_set_the_architecture_and_the_phase():
    assert (_config(["--arch", "standard"]).model.arch, _config(["--arch", "standard"]).model.random_worker_phase) == (
        "standard",
        False,
    )
    model = _config(["--arch", "worker-random-phase"]).model
    assert (model.arch, model.random_worker_phase) == ("worker", True)
    model = _config(["--arch", "standard-mixer", "--conv-kernel", "5"]).model
    assert (model.arch, model.conv_kernel, model.random_worker_phase) == ("standard-mixer", 5, False)


def test_every_config_field_has_exactly_one_flag_with_help():
    paths = []
    hints = typing.get_type_hints(RunConfig)
    for outer in dataclasses.fields(RunConfig):
        if dataclasses.is_dataclass(hints[outer.name]):
            paths += [f"{outer.name}.{f.name}" for f in dataclasses.fields(hints[outer.name])]
        else:
            paths.append(outer.name)
    flags = run_config_flags()
    assert sorted(f.path for f in flags) == sorted(p for p in paths if p not in NO_FLAG)
    assert [f.name for f in flags if not f.help] == []  # every field has a comment, which is its help


def test_choices_come_from_what_validation_allows(capsys):
    with pytest.raises(SystemExit):
        build_parser("train").parse_args(["train", "--init", "xavier"])
    err = capsys.readouterr().err
    assert "argument --init: invalid choice: 'xavier'" in err and "nanogpt" in err


def test_help_is_grouped():
    text = _train_help()
    sections = [line for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert sections == ["options:", "model:", "training:", "budget and evaluation:", "data and output:"]
    assert "--seq-len SEQ_LEN" in text and "(default: 128)" in text  # the small CPU run's default


def _train_parser():
    parser = build_parser("train")
    return next(a for a in parser._actions if a.dest == "command").choices["train"]


def _train_help() -> str:
    return _train_parser().format_help()


def test_the_help_shows_every_documented_flag_with_its_field_comment():
    help_text = " ".join(_train_help().split())  # unwrapped
    comments = {f.path: f.help for f in run_config_flags()}
    for argv, path, _ in DOCUMENTED:
        assert f"{argv[0]} " in help_text or f"{argv[0]}," in help_text, argv[0]
        assert " ".join(comments[path].split()) in help_text, path


def test_every_train_flag_the_docs_show_exists():
    root = Path(__file__).resolve().parents[2]
    texts = [(root / "README.md").read_text(), *(p.read_text() for p in (root / "docs").rglob("*.md"))]
    commands = [line for text in texts for line in re.findall(r"wt-study train(?:\\\||[^`|\n])*", text)]
    shown = {flag for line in commands for flag in re.findall(r"--[a-z][a-z0-9-]*", line)}
    options = {o for a in _train_parser()._actions for o in a.option_strings}
    assert {"--config", "--resume", "--checkpoint-dir"} <= shown  # what README.md and docs/results.md show
    assert shown <= options


def test_field_comments_on_the_line_or_just_above():
    @dataclass
    class Example:
        plain: int = 1  # on its line
        # above it,
        # on two lines
        above: str = "x"
        bare: float = 0.0
        hashed: str = "#"  # a '#' in a string is not a comment

    assert field_comments(Example) == {
        "plain": "on its line",
        "above": "above it, on two lines",
        "bare": "",
        "hashed": "a '#' in a string is not a comment",
    }
