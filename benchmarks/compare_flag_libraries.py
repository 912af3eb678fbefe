"""Why `wt-study train` keeps its own flags (study/cli/flags.py): the parser that jsonargparse and simple_parsing
generate from RunConfig, each in its closest mode, against ours. Counts the README's documented flags each one
accepts (tests/study/test_cli_flags.py: DOCUMENTED), the fields whose help says what they are, prints what a bad
value says, and times each library's import (median of fresh processes). A library not installed is skipped.

    PYTHONPATH=. python benchmarks/compare_flag_libraries.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import io
import statistics
import subprocess
import sys
import time
import typing

from study.cli import build_parser
from study.cli.train import build_config
from study.config.run import RunConfig
from tests.study.test_cli_flags import DOCUMENTED

BAD = {  # what the user types -> its spelling in each library's parser
    "--seq-len 0": {"simple_parsing": "--block-size 0", "jsonargparse": "--model.block_size 0"},
    "--lr -1": {"simple_parsing": "--lr -1", "jsonargparse": "--train.lr -1"},
    "--budget x": {"simple_parsing": "--value x", "jsonargparse": "--budget.value x"},
    "--bogus 1": {"simple_parsing": "--bogus 1", "jsonargparse": "--bogus 1"},
}


# set first, so that the documented --n-head 3 divides the width (as in the test); a documented --n-embd overrides it
WIDTH = {"ours": ["--n-embd", "48"], "simple_parsing": ["--n-embd", "48"], "jsonargparse": ["--model.n_embd", "48"]}


def ours(argv: list[str]) -> RunConfig:
    return build_config(build_parser("train").parse_args(["train", *argv]), {})


def simple_parsing_parser():
    import simple_parsing as sp

    parser = sp.ArgumentParser(
        prog="wt-study train",
        add_option_string_dash_variants=sp.DashVariant.DASH,  # --batch-size, as ours
        nested_mode=sp.NestedMode.WITHOUT_ROOT,  # no "--cfg." prefix
    )
    parser.add_arguments(RunConfig, dest="cfg")
    return parser, lambda argv: parser.parse_args(argv).cfg


def jsonargparse_parser():
    import jsonargparse

    parser = jsonargparse.ArgumentParser(prog="wt-study train", exit_on_error=True)
    parser.add_class_arguments(RunConfig)  # --model.block_size, --train.lr, ... (litgpt's style)
    return parser, lambda argv: parser.instantiate_classes(parser.parse_args(argv))


def _field(config, path: str):
    for part in path.split("."):
        config = config[part] if isinstance(config, dict) else getattr(config, part)
    return config


def accepted(parse, width: list[str]) -> list[str]:
    """The documented flags that set their field to the documented value."""
    out = []
    for argv, path, value in DOCUMENTED:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(BaseException):
            if _field(parse([*width, *argv]), path) == value:
                out.append(argv[0])
    return out


def field_helps() -> dict[str, str]:
    """field path -> its comment (its help in ours), for the fields that are flags of ours."""
    from study.cli.flags import NO_FLAG, field_comments

    hints, out = typing.get_type_hints(RunConfig), {}
    for outer in dataclasses.fields(RunConfig):
        if dataclasses.is_dataclass(hints[outer.name]):
            out |= {f"{outer.name}.{k}": v for k, v in field_comments(hints[outer.name]).items()}
        else:
            out[outer.name] = field_comments(RunConfig)[outer.name]
    return {path: text for path, text in out.items() if path not in NO_FLAG}


def helped(help_text: str) -> int:
    """How many fields' comments (their first four words) the help text shows."""
    flat = " ".join(help_text.split())
    return sum(1 for text in field_helps().values() if " ".join(text.split()[:4]) in flat)


@dataclasses.dataclass
class Hashed:
    hashed: str = "#"  # a '#' in a string is not a comment


def comment_reader() -> None:
    """simple_parsing's comment reader alone, against field_comments: every field of RunConfig's classes, and a '#'
    inside a string default (tests/study/test_cli_flags.py)."""
    from simple_parsing.docstring import get_attribute_docstring

    from study.cli.flags import field_comments

    def theirs(cls: type, name: str) -> str:
        doc = get_attribute_docstring(cls, name)
        return " ".join((doc.comment_inline or doc.comment_above or "").split())

    hints = typing.get_type_hints(RunConfig)
    classes = [
        RunConfig,
        *(hints[f.name] for f in dataclasses.fields(RunConfig) if dataclasses.is_dataclass(hints[f.name])),
    ]
    pairs = [(field_comments(cls)[f.name], theirs(cls, f.name)) for cls in classes for f in dataclasses.fields(cls)]
    same = sum(a == b for a, b in pairs)
    print(f"\nsimple_parsing's comment reader alone: the same comment for {same}/{len(pairs)} RunConfig fields;")
    print(
        f"  a '#' in a string default: ours {field_comments(Hashed)['hashed']!r}, theirs {theirs(Hashed, 'hashed')!r}"
    )


def error_line(module: str, argv: str) -> str:
    """What stderr says: its line count and last line (ours: the real `wt-study train`, which stops before
    training for each of BAD)."""
    code = f"from benchmarks.compare_flag_libraries import *; {module}_parser()[1]({argv.split()!r})"
    command = (
        [sys.executable, "-c", code]
        if module != "ours"
        else [sys.executable, "-m", "study.cli", "train", *argv.split()]
    )
    done = subprocess.run(command, capture_output=True, text=True)  # noqa: S603 - our own code
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return f"[{len(lines):>2} lines] {lines[-1] if lines else '(nothing)'}"


def median_ms(arguments: list[str], repeats: int) -> float:
    """The median wall time of `python ARGUMENTS` in fresh processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *arguments], check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - our own
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sub = next(a for a in build_parser("train")._actions if a.dest == "command")
    print(f"{'':16}documented flags accepted   fields whose help shows its comment (of {len(field_helps())})")
    n_ours, help_ours = len(accepted(ours, WIDTH["ours"])), helped(sub.choices["train"].format_help())
    print(f"{'ours':16}{n_ours}/{len(DOCUMENTED):<25}{help_ours}")
    for module in ("simple_parsing", "jsonargparse"):
        if importlib.util.find_spec(module) is None:
            print(f"{module:16}not installed (pip install {module})")
            continue
        lib_parser, parse = globals()[f"{module}_parser"]()
        ok = accepted(parse, WIDTH[module])
        missing = [a[0] for a, _, _ in DOCUMENTED if a[0] not in ok]
        print(f"{module:16}{len(ok)}/{len(DOCUMENTED):<25}{helped(lib_parser.format_help())}")
        print(f"{'':16}not accepted: {' '.join(missing)}")
    print("\nwhat a bad value says (stderr: its number of lines and the last one):")
    for typed, spelled in BAD.items():
        print(f"  ours            {typed:24} {error_line('ours', typed)}")
        for module, argv in spelled.items():
            if importlib.util.find_spec(module) is not None:
                print(f"  {module:15} {argv:24} {error_line(module, argv)[:160]}")
    if importlib.util.find_spec("simple_parsing") is not None:
        comment_reader()
    help_ms = median_ms(["-m", "study.cli", "train", "--help"], args.repeats)
    print(f"\n`wt-study train --help` (ours), median of {args.repeats} fresh processes: {help_ms:.0f} ms")
    base = median_ms(["-c", "pass"], args.repeats)
    print(f"\nimport time, median of {args.repeats} fresh processes, minus `python -c pass` ({base:.0f} ms):")
    for module in ("argparse", "simple_parsing", "jsonargparse"):
        if importlib.util.find_spec(module) is not None:
            print(f"  {module:15} {median_ms(['-c', f'import {module}'], args.repeats) - base:+.0f} ms")


if __name__ == "__main__":
    main()
