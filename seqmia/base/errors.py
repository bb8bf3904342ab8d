"""Errors a user can fix by changing params.yaml or the data; stages report them in one line."""

import re


class UserError(Exception):
    """Bad input: a params key, a missing dataset, an impossible partition."""


class DamagedFileError(UserError):
    """A data or artefact file that cannot be read as what it should hold (truncated, corrupt,
    of another format, or changed since it was written)."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (at most 160 characters), for one-line errors."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # torch colours some messages
    return (text.splitlines() or [type(err).__name__])[0][:160]
