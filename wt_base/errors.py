"""The one exception type for user mistakes, and the one sentence that validation raises with it.

The CLI prints the message on one line and exits 2.
"""


class StudyError(ValueError):
    """Bad input (spec, flag, path, data): the message names the field, the value and what is allowed."""


def require(ok: bool, field: str, value: object, allowed: str) -> None:
    """Raise `StudyError("<field>=<value> is invalid: expected <allowed>.")` unless `ok` (every `__post_init__`
    of the study's configs says it this way; wt_model.config says the same sentence with a ValueError)."""
    if not ok:
        raise StudyError(f"{field}={value!r} is invalid: expected {allowed}.")


def is_int(value: object) -> bool:
    """An integer that is not a bool (YAML's true/false must not count as 1/0)."""
    return isinstance(value, int) and not isinstance(value, bool)
