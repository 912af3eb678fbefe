"""Strict YAML reading for specs and run configs: a key given twice is an error, and every way a file can fail
(missing, a directory, unreadable, malformed) is one sentence naming the file, the line and the column."""

from __future__ import annotations

from pathlib import Path

import yaml

from wt_base.errors import StudyError


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, what: str) -> object:
    """Parse YAML text strictly; any problem becomes one sentence naming `what`, the line and the column."""
    loader = _StrictLoader(text)  # what yaml.safe_load does, with the stricter loader
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise StudyError(f"{what} is not valid YAML{where}: {problem}.") from None
    finally:
        loader.dispose()


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
