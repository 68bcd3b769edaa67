"""Errors a user can act on. The command line prints them as one line and exits non-zero,
so anything raised as a `UserError` must carry a message that stands on its own."""


class UserError(Exception):
    """A problem with the user's input or environment, not a bug in pglab."""

    exit_code = 2


class UnknownEntry(UserError):
    """An id or code that names no catalogue entry."""
