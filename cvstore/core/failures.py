"""The errors a call raises when a level cannot be met: one wording for every driver.

``unavailable`` is for a call refused before it starts (too few replicas up);
``partial_failure`` for one whose stores failed part way (nothing rolled
back, as in any Dynamo-style store); ``conflict`` for a write that newer
versions kept refusing; ``may_be_applied`` for a write refused when an
earlier try of the same call had already sent it.  Each names the replicas that were missing and, where
known, why: "quorum write needs 2 of 3 replicas, 1 alive (r1 down: connection
refused, r3 down)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cvstore.errors import ConflictError, StoreError, UnavailableError

__all__ = ("conflict", "may_be_applied", "partial_failure", "unavailable")


def _named(names: Sequence[str], state: str, causes: Mapping[str, StoreError]) -> str:
    """ "r1 down: connection refused; r2, r3 down": each known cause, then the rest."""
    parts = [f"{name} {state}: {causes[name].reason}" for name in names if name in causes]
    rest = [name for name in names if name not in causes]
    if rest or not parts:
        parts.append(f"{', '.join(rest)} {state}")
    return "; ".join(parts)


def _chain(error: UnavailableError, causes: Mapping[str, StoreError]) -> UnavailableError:
    if causes:
        error.__cause__ = list(causes.values())[-1]
    return error


def unavailable(
    level: str,
    op: str,
    need: int,
    replicas: Sequence[Any],
    causes: Mapping[str, StoreError] | None = None,
) -> UnavailableError:
    """The error for a call that needs `need` of `replicas` (members) up and has fewer."""
    causes = causes or {}
    down = tuple(node.name for node in replicas if not node.is_up)
    alive = len(replicas) - len(down)
    need = max(need, 1)
    known = {name: causes[name] for name in down if name in causes}
    error = UnavailableError(
        f"{level} {op} needs {need} of {len(replicas)} replicas, {alive} alive "
        f"({_named(down, 'down', known)})",
        level=level,
        required=need,
        alive=alive,
        down=down,
        causes=known,
    )
    return _chain(error, known)


def partial_failure(
    level: str,
    op: str,
    need: int,
    total: int,
    done: int,
    failed: Sequence[str],
    causes: Mapping[str, StoreError] | None = None,
) -> UnavailableError:
    """The error for a call that passed the up-check but whose stores then failed.

    A write refused this way may already be applied on the replicas that
    acknowledged it (there is no rollback, as in any Dynamo-style store).
    """
    causes = causes or {}
    verb = "acknowledged" if op == "write" else "answered"
    note = "; the write may be applied on some replicas" if op == "write" and done else ""
    known = {name: causes[name] for name in failed if name in causes}
    error = UnavailableError(
        f"{level} {op} needs {need} of {total} replicas, {done} {verb} "
        f"({_named(failed, 'failed', known)}){note}",
        level=level,
        required=need,
        alive=done,
        down=tuple(failed),
        causes=known,
    )
    return _chain(error, known)


def conflict(level: str, need: int, total: int, applied: int, attempts: int) -> ConflictError:
    """The error for a write that newer versions refused on every one of `attempts`."""
    return ConflictError(
        f"{level} write needs {need} of {total} replicas, {applied} applied it: the others "
        f"held newer versions from concurrent writers through {attempts} attempts",
        level=level,
        required=need,
        alive=applied,
    )


def may_be_applied(error: UnavailableError, earlier: str) -> UnavailableError:
    """`error`, for a write that an `earlier` try of the same call had already sent, saying so.

    A refusal before a try starts (too few replicas up) writes nothing, but an
    earlier try of the call (an attempt before a re-stamp, a run before a node
    refused the client's layout epoch) may have been applied on some replicas.
    The same class and attributes, the message extended, the same cause
    (`error` itself if its message says so already).
    """
    if "the write may be applied" in str(error):
        return error
    again = type(error)(
        f"{error}; the write may be applied on some replicas: {earlier}",
        level=error.level,
        required=error.required,
        alive=error.alive,
        down=error.down,
        causes=error.causes,
    )
    again.__cause__ = error.__cause__
    return again
