"""The two ways a command fails: bad usage (exit 2) and a failure at run time (exit 1)."""

from __future__ import annotations


class UsageError(Exception):
    """Bad arguments or input: exit code 2, one line on stderr."""

    def __init__(self, message: str, *, prog: str | None = None) -> None:
        super().__init__(message)
        self.prog = prog


class CommandError(Exception):
    """The command could not do its work (a node down, a file not writable): exit code 1."""


class Interrupted(Exception):
    """Ctrl-C: exit code 130; the message says the state left and the command that finishes it."""
