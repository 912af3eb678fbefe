"""The one exception type for user mistakes: the CLI prints its message on one line and exits 2."""


class StudyError(ValueError):
    """Bad input (spec, flag, path, data): the message names the field, the value and what is allowed."""
