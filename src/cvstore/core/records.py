"""Records and their order: a version and a value, tombstones, and which record is newer.

A version is one int that orders every write cvstore makes::

    version = (wall_ms << 48) | (counter << 32) | writer_id

(see ``cvstore.versions.HybridClock``, which issues them).  The newest version
wins (last-write-wins); a delete is a record whose value is ``TOMBSTONE``.
``newest`` and ``differs`` are the one place that compares records.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, TypeGuard

__all__ = (
    "TOMBSTONE",
    "VERSION_HEX_DIGITS",
    "Expiring",
    "Record",
    "dead_since",
    "differs",
    "expired",
    "live",
    "newest",
    "newest_by_row",
    "value_of",
    "version_from_hex",
    "version_hex",
    "version_wall_ms",
)

COUNTER_BITS = 16
WRITER_BITS = 32
VERSION_BITS = 96
VERSION_HEX_DIGITS = 24


class _Tombstone:
    """The value of a deleted key: a record that says "deleted at this version"."""

    _instance = None

    def __new__(cls) -> _Tombstone:  # noqa: PYI034 - the one instance, whatever cls
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "TOMBSTONE"

    def __reduce__(self) -> str:
        return "TOMBSTONE"


TOMBSTONE: Any = _Tombstone()


class Record(NamedTuple):
    """One stored copy of a key: its version and its value (or TOMBSTONE).

    The write paths build records with ``cvstore._records`` rather than this
    constructor: the same tuple, left untracked by the garbage collector when
    its value is a plain str, bytes or number.
    """

    version: int
    value: Any

    @property
    def deleted(self) -> bool:
        return self.value is TOMBSTONE


class Expiring(NamedTuple):
    """The value of a record written with a ttl: the value, and when it expires.

    ``expires`` is the wall clock in milliseconds after which the record reads
    as absent.  The expiry travels with the record (its version), so a copy
    handed on by read repair, hints, repair or rebalancing expires at the same
    moment, and a later write without a ttl replaces it for good.
    """

    value: Any
    expires: int


def expired(record: Record | None, now_ms: int) -> bool:
    """Whether `record` carries a value that has expired at `now_ms`."""
    if record is None:
        return False
    value = record[1]
    return type(value) is Expiring and value.expires <= now_ms


def live(record: Record | None, now_ms: int) -> TypeGuard[Record]:
    """Whether `record` holds a value a read returns at `now_ms` (not deleted, not expired)."""
    if record is None:
        return False
    value = record[1]
    if value is TOMBSTONE:
        return False
    return type(value) is not Expiring or value.expires > now_ms


def value_of(record: Record | None, default: Any, now_ms: int) -> Any:
    """What a read returns for `record`: its value, or `default` (none, deleted, expired)."""
    if record is None:
        return default
    value = record[1]
    if value is TOMBSTONE:
        return default
    if type(value) is Expiring:
        return value.value if value.expires > now_ms else default
    return value


def dead_since(version: int, tomb: bool, expires: int) -> int | None:
    """Since when (ms) a copy is dead: a tombstone from its write, an expired value from its expiry."""
    if tomb:
        return version_wall_ms(version)
    if expires:
        return expires
    return None


def newest(records: Iterable[Record | None]) -> Record | None:
    """The record with the highest version among `records` (None entries skipped), or None.

    On equal versions the first one wins: equal versions are the same write.
    """
    best = None
    for record in records:
        if record is not None and (best is None or record[0] > best[0]):
            best = record
    return best


def newest_by_row(columns: list[list[Record | None]]) -> tuple[list[Record | None], list[int]]:
    """Per row of `columns` (one list per replica), the newest record and its column (-1 if none)."""
    best_out: list[Record | None] = []
    src_out: list[int] = []
    append_best = best_out.append
    append_src = src_out.append
    for row in zip(*columns):
        best = None
        src = -1
        for c, record in enumerate(row):
            if record is not None and record is not best and (best is None or record[0] > best[0]):
                best = record
                src = c
        append_best(best)
        append_src(src)
    return best_out, src_out


def differs(a: Record | None, b: Record | None) -> bool:
    """Whether two copies of a key are different writes (one missing, or other versions)."""
    if a is b:
        return False
    return a is None or b is None or a[0] != b[0]


def version_hex(version: int) -> str:
    """A version as fixed-width hex: string order equals version order."""
    return format(version, f"0{VERSION_HEX_DIGITS}x")


def version_from_hex(text: str | bytes) -> int:
    return int(text, 16)


def version_wall_ms(version: int) -> int:
    """The physical-clock part of a version, in milliseconds since the epoch."""
    return version >> (COUNTER_BITS + WRITER_BITS)
