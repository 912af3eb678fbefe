"""Strict YAML reading and writing for specs and run configs, through ruamel.yaml's safe YAML 1.2 loader: plain
data only (no tags that build objects), a key given twice is an error, 3.0e12 is a number (PyYAML's YAML 1.1 read
it as text) and yes/no/on/off are text, not booleans; every way a file can fail (missing, a directory,
unreadable, malformed) is one sentence naming the file, the line and the column."""

from __future__ import annotations

import io
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import YAMLError

from wt_base.errors import StudyError


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)  # pure: the same parser everywhere (no optional C extension)
    yaml.allow_duplicate_keys = False
    return yaml


def parse_yaml(text: str, what: str) -> object:
    """Parse YAML text strictly; any problem becomes one sentence naming `what`, the line and the column."""
    try:
        return _yaml().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        if isinstance(exc, DuplicateKeyError):  # found duplicate key "name" with value ... (original value: ...)
            problem = f"the key {problem.split(chr(34))[1]!r} is given twice"
        raise StudyError(f"{what} is not valid YAML{where}: {problem}.") from None


def dump_yaml(data: object) -> str:
    """`data` (plain mappings, lists, numbers, text) as block-style YAML that parse_yaml reads back."""
    yaml = _yaml()
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def load_yaml(path: Path, what: str) -> object:
    """Read a YAML file, turning every way it can fail into one sentence."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{what} {str(path)!r} does not exist.") from None
    except IsADirectoryError:
        raise StudyError(f"{what} {str(path)!r} is a directory: expected a YAML file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{what} {str(path)!r} cannot be read: {exc}.") from None
    return parse_yaml(text, f"{what} {str(path)!r}")
