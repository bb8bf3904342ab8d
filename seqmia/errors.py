"""Errors a user can fix by changing params.yaml or the data; stages report them in one line."""


class UserError(Exception):
    """Bad input: a params key, a missing dataset, an impossible partition."""
