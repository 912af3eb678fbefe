"""The `wt-study` command. Each subcommand lives in a light module (stdlib imports only at top level) exposing
`add_arguments(parser)` and `run(args) -> int`; heavy imports (torch, Ray, pandas) happen inside `run`, so
`wt-study --help` and `wt-study status/analyze --help` start fast.

User mistakes raise `StudyError` (or `ValueError` from config validation) and are printed as one line on
stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "run": ("study.cli.run", "run a study (the smoke preset when no spec is given)"),
    "resume": ("study.cli.run", "finish an interrupted study"),
    "status": ("study.cli.run", "trials done / running / failed, budget used, ETA"),
    "analyze": ("analysis.cli", "plots and a report from a study's Parquet results"),
    "train": ("study.cli.train", "one training run without Ray"),
    "bench": ("study.cli.bench", "throughput of both architectures and attention implementations"),
}


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (the mistake, and where the flags are listed) instead of
    the whole usage block followed by the error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the flags)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported to add its arguments (the others are only listed)."""
    parser = OneLineParser(
        prog="wt-study",
        description="Time-budgeted hyperparameter and scaling studies of the WorkerTransformer.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name, _parser=sub_parser)
        if name == command:
            importlib.import_module(module_name).add_arguments(sub_parser, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand, whose --help lists its flags
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    from wt_base.errors import StudyError

    try:
        code = int(module.run(args) or 0)
        sys.stdout.flush()  # here, not at exit: a reader that went away is handled below
        return code
    except StudyError as exc:
        print(f"wt-study {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nwt-study {args.command}: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`wt-study status PATH | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's own flush at exit stays quiet
        return 0
