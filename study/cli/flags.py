"""Command-line flags generated from the run configuration's dataclasses, so a new field is written once.

Every field of RunConfig's sections (model, train, budget, eval, data) and RunConfig's own scalar fields becomes a
flag: `--<field>` for model, train and data fields, `--budget-<field>` and `--eval-<field>` for budget and eval
fields, except the names in FLAG_NAMES (the flags users already know). The help is the field's comment in its
class body, the type comes from its annotation (bool: `--x/--no-x`), the choices from the `CHOICES` tables that
`__post_init__` validates with. Imports stay light (dataclasses and the config modules, no torch).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass

# RunConfig section -> (flag prefix, help group)
SECTIONS = {
    "model": ("", "model"),
    "train": ("", "training"),
    "budget": ("budget-", "budget and evaluation"),
    "eval": ("eval-", "budget and evaluation"),
    "data": ("", "data and output"),
    "": ("", "data and output"),  # RunConfig's own fields (checkpoint_every_s)
}
# field path -> flag name, where the rule above would name it otherwise
FLAG_NAMES = {
    "model.block_size": "seq-len",
    "budget.value": "budget",
    "budget.count_eval_in_budget": "count-eval-in-budget",
    "eval.val_tokens": "val-tokens",
    "eval.final_full": "final-full",
    "data.corpus": "data",
}
# fields with no flag of their own: --arch sets the first two, the corpus sets the vocabulary
NO_FLAG = ("model.arch", "model.random_worker_phase", "model.vocab_size")
EXCLUSIVE = (("eval.every_s", "eval.every_steps"),)  # flags that choose between two fields


@dataclass(frozen=True)
class Flag:
    """One generated flag: which field it sets and how argparse reads it."""

    path: str  # "section.field", or "field" for RunConfig's own fields
    name: str  # the flag without its leading dashes
    hint: object  # the field's type annotation
    help: str  # the field's comment
    choices: tuple | None  # allowed values, when the field has a fixed set
    group: str  # help group title

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def section(self) -> str | None:
        return self.path.split(".")[0] if "." in self.path else None

    @property
    def key(self) -> str:
        return self.path.split(".")[-1]


def run_config_flags() -> list[Flag]:
    """The flags of every RunConfig field, in declaration order."""
    from study.config.run import CHOICES, RunConfig
    from wt_model.config import CHOICES as MODEL_CHOICES

    choices = {**CHOICES, **{f"model.{name}": allowed for name, allowed in MODEL_CHOICES.items()}}
    flags = []
    hints = typing.get_type_hints(RunConfig)
    for outer in dataclasses.fields(RunConfig):
        section_cls = hints[outer.name]
        if dataclasses.is_dataclass(section_cls):
            flags += _flags_of(section_cls, outer.name, choices)
        else:
            flags += _flags_of(RunConfig, "", choices, only=(outer.name,))
    names = [f.name for f in flags]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"two config fields would both be the flag --{duplicates[0]}: add one to FLAG_NAMES.")
    return flags


def _flags_of(cls: type, section: str, choices: dict, only: tuple = ()) -> list[Flag]:
    prefix, group = SECTIONS[section]
    comments = field_comments(cls)
    hints = typing.get_type_hints(cls)
    flags = []
    for f in dataclasses.fields(cls):
        path = f"{section}.{f.name}" if section else f.name
        if (only and f.name not in only) or path in NO_FLAG or not f.init:
            continue
        name = FLAG_NAMES.get(path, prefix + f.name.replace("_", "-"))
        flags.append(Flag(path, name, hints[f.name], comments.get(f.name, ""), choices.get(path), group))
    return flags


def field_comments(cls: type) -> dict[str, str]:
    """field name -> its comment in the class body: the comment on its line, else the comment lines just above."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}  # line -> comment text
    code_lines: set[int] = set()  # lines holding code
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(token.start[0])
    names = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for number, line in enumerate(source.splitlines(), start=1):
        name = line.strip().split(":", 1)[0].strip()
        if name not in names or line[: len(line) - len(line.lstrip())] != "    " or ":" not in line:
            continue
        if number in comments:
            out[name] = comments[number]
            continue
        above, row = [], number - 1
        while row in comments and row not in code_lines:
            above.insert(0, comments[row])
            row -= 1
        out[name] = " ".join(above)
    return out


def add_flags(parser: argparse.ArgumentParser, flags: list[Flag], defaults: dict, groups: dict | None = None) -> dict:
    """Add `flags` to `parser` in their help groups (`groups`, title -> argument group, is extended in order of
    first use); returns the groups by title. `defaults` maps a field path to the value used when the flag is not
    given (shown in the help)."""
    groups = {} if groups is None else groups
    exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for flag in flags:
        group = groups.get(flag.group) or groups.setdefault(flag.group, parser.add_argument_group(flag.group))
        pair = next((p for p in EXCLUSIVE if flag.path in p), None)
        if pair is not None:
            group = exclusive.get(pair) or exclusive.setdefault(pair, group.add_mutually_exclusive_group())
        _add(group, flag, defaults.get(flag.path))
    return groups


def _add(group, flag: Flag, default: object) -> None:
    help_text = flag.help.replace("%", "%%")
    if default is not None:
        shown = repr(default) if default == "" else default
        help_text += f" (default: {shown})" if help_text else f"default: {shown}"
    option, hint = f"--{flag.name}", flag.hint
    union = set(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, types.UnionType) else set()
    if hint is bool:
        group.add_argument(option, dest=flag.dest, action=argparse.BooleanOptionalAction, help=help_text)
    elif union == {bool, str}:  # a switch that may name a mode: --x (true), --x MODE, --no-x (false)
        group.add_argument(option, dest=flag.dest, nargs="?", const=True, metavar="MODE", help=help_text)
        group.add_argument(
            f"--no-{flag.name}", dest=flag.dest, action="store_false", default=None, help=f"the same as {option} off"
        )
    else:
        kind = hint if hint in (int, float, str) else str
        group.add_argument(option, dest=flag.dest, type=kind, choices=flag.choices, help=help_text)


def apply_flags(args: argparse.Namespace, flags: list[Flag], mapping: dict) -> dict:
    """`mapping` (a RunConfig mapping) with every flag that was given set in it (a new mapping)."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in mapping.items()}
    for flag in flags:
        value = getattr(args, flag.dest)
        if value is not None:
            (out.setdefault(flag.section, {}) if flag.section else out)[flag.key] = value
    return out


def said_with_flags(message: str, names: dict[str, str]) -> str:
    """`message`, a validation sentence that starts by naming a field ("model: ModelConfig.block_size=0 is invalid:
    ..."), with the field said as the flag that set it ("--seq-len=0 is invalid: ..."); unchanged when `names`
    (a field as messages name it -> its flag) does not hold the field."""
    match = re.match(r"^(?:\w+: )?([\w.]+)=", message)
    if match is None or match.group(1) not in names:
        return message
    return f"{names[match.group(1)]}=" + message[match.end() :]


def given_flag_names(args: argparse.Namespace, flags: list[Flag]) -> dict[str, str]:
    """The fields set by a flag the user gave, as messages name them ("train.lr", and for model fields also
    "ModelConfig.n_head", wt_model.config's own spelling) -> the flag ("--lr")."""
    names = {}
    for flag in flags:
        if getattr(args, flag.dest, None) is not None:
            names[flag.path] = f"--{flag.name}"
            if flag.section == "model":
                names[f"ModelConfig.{flag.key}"] = f"--{flag.name}"
    return names


@contextlib.contextmanager
def errors_as_flags(names: dict[str, str]):
    """Re-raise a StudyError about a field as one about the flag that set it (`names`: given_flag_names)."""
    from wt_base.errors import StudyError

    try:
        yield
    except StudyError as exc:
        raise StudyError(said_with_flags(str(exc), names)) from None
