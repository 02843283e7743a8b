"""Consistency levels and read policies: the one table of what each level needs.

N is the number of replicas a key has (``min(replication_factor, nodes)``).

========  ===============================  ==================================
level     a write must be applied by        a read asks
========  ===============================  ==================================
one       1 (every live replica is sent)    1 replica
quorum    N//2 + 1                          N//2 + 1
all       N                                 N
strong    N//2 + 1 (R + W > N)              N//2 + 1
eventual  1 (sent to one replica; the       1 replica
          others get it through hints)
========  ===============================  ==================================

Adding a level is one entry in ``LEVELS`` (and its tests): the drivers, the
command line and the type ``Level`` all read this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = (
    "LEVELS",
    "LEVEL_NAMES",
    "READ_POLICIES",
    "Level",
    "LevelRule",
    "ReadPolicy",
    "check_level",
    "check_policy",
    "quorum",
)

Level = Literal["one", "quorum", "all", "eventual", "strong"]
ReadPolicy = Literal["random", "primary", "fastest", "adaptive"]


def quorum(n: int) -> int:
    """A majority of `n` replicas."""
    return n // 2 + 1


@dataclass(frozen=True)
class LevelRule:
    """What one consistency level needs of a key's `n` replicas.

    ``reads(n)`` replicas a read asks and compares; ``writes(n)`` replicas that
    must apply a write before it is acknowledged; ``write_one``: the write is
    sent to one live replica only and the others get it through hints
    (``eventual``), instead of to every live replica.
    """

    name: str
    reads: Callable[[int], int]
    writes: Callable[[int], int]
    write_one: bool = False


def _one(n: int) -> int:
    return 1


def _all(n: int) -> int:
    return n


LEVELS: dict[str, LevelRule] = {
    rule.name: rule
    for rule in (
        LevelRule("one", reads=_one, writes=_one),
        LevelRule("quorum", reads=quorum, writes=quorum),
        LevelRule("all", reads=_all, writes=_all),
        LevelRule("eventual", reads=_one, writes=_one, write_one=True),
        LevelRule("strong", reads=quorum, writes=quorum),
    )
}
LEVEL_NAMES: tuple[str, ...] = tuple(LEVELS)
READ_POLICIES: tuple[str, ...] = ("random", "primary", "fastest", "adaptive")


def level_error(name: str, value: Any) -> ValueError:
    return ValueError(f"{name} must be one of {LEVEL_NAMES}, got {value!r}")


def check_level(name: str, value: Any) -> Level:
    """`value` if it names a level, else a ValueError naming argument `name`."""
    if isinstance(value, str) and value in LEVELS:
        return value  # type: ignore[return-value]
    raise level_error(name, value)


def check_policy(name: str, value: Any) -> ReadPolicy:
    """`value` if it names a read policy, else a ValueError naming argument `name`."""
    if isinstance(value, str) and value in READ_POLICIES:
        return value  # type: ignore[return-value]
    raise ValueError(f"{name} must be one of {READ_POLICIES}, got {value!r}")


def read_needs(n: int) -> dict[str, int]:
    """Replicas a read at each level asks, for keys with `n` replicas."""
    return {name: rule.reads(n) for name, rule in LEVELS.items()}


def write_needs(n: int) -> dict[str, int]:
    """Replicas that must apply a write at each level, for keys with `n` replicas."""
    return {name: rule.writes(n) for name, rule in LEVELS.items()}


WRITE_ONE: frozenset[str] = frozenset(name for name, rule in LEVELS.items() if rule.write_one)
