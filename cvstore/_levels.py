"""Consistency levels: their names, how many replicas each needs, and the errors.

``one`` needs 1 replica, ``quorum`` N//2 + 1, ``all`` N, where N is the
number of replicas a key has.  ``strong`` is quorum reads and writes
(R + W > N).  ``eventual`` reads one replica and writes one, leaving the
others to hints and repair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cvstore.errors import UnavailableError

LEVELS = ("one", "quorum", "all", "eventual", "strong")
READ_POLICIES = ("random", "primary", "fastest")

# What an eventual write needs: one live replica, written alone.  Kept apart
# from 1 so the write path can tell it from "one" with a single comparison.
EVENTUAL = 0


def level_error(name: str, value: Any) -> ValueError:
    return ValueError(f"{name} must be one of {LEVELS}, got {value!r}")


def check_level(name: str, value: Any) -> str:
    """`value` if it names a level, else a ValueError naming argument `name`."""
    if isinstance(value, str) and value in LEVELS:
        return value
    raise level_error(name, value)


def read_needs(n: int) -> dict[str, int]:
    """Replicas a read at each level asks, for keys with `n` replicas."""
    quorum = n // 2 + 1
    return {"one": 1, "quorum": quorum, "all": n, "eventual": 1, "strong": quorum}


def write_needs(n: int) -> dict[str, int]:
    """Acknowledgements a write at each level waits for (EVENTUAL: write one, hint the rest)."""
    quorum = n // 2 + 1
    return {"one": 1, "quorum": quorum, "all": n, "eventual": EVENTUAL, "strong": quorum}


def unavailable(level: str, op: str, need: int, replicas: Sequence[Any]) -> UnavailableError:
    """The error for a call that needs `need` of `replicas` (Nodes) up and has fewer."""
    down = tuple(node.name for node in replicas if not node.is_up)
    alive = len(replicas) - len(down)
    need = max(need, 1)
    return UnavailableError(
        f"{level} {op} needs {need} of {len(replicas)} replicas, {alive} alive "
        f"({', '.join(down)} down)",
        level=level,
        required=need,
        alive=alive,
        down=down,
    )


def partial_failure(
    level: str, op: str, need: int, total: int, done: int, failed: Sequence[str]
) -> UnavailableError:
    """The error for a call that passed the up-check but whose stores then failed.

    A write refused this way may already be applied on the replicas that
    acknowledged it (there is no rollback, as in any Dynamo-style store).
    """
    verb = "acknowledged" if op == "write" else "answered"
    note = "; the write may be applied on some replicas" if op == "write" and done else ""
    return UnavailableError(
        f"{level} {op} needs {need} of {total} replicas, {done} {verb} "
        f"({', '.join(failed)} failed){note}",
        level=level,
        required=need,
        alive=done,
        down=tuple(failed),
    )
