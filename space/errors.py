"""The one base class of errors the user caused (bad input): the CLI prints their message as one
line and exits non-zero; every other exception is a bug and keeps its traceback."""


class UserError(ValueError):
    """Bad input: the message says what was wrong, where, and how to fix it."""
