"""Version stamps: a hybrid logical clock, last-write-wins, and tombstones.

A version is one int that orders every write cvstore makes::

    version = (wall_ms << 48) | (counter << 32) | writer_id

``wall_ms`` is the writer's physical clock in milliseconds, ``counter`` a
16-bit logical counter that keeps stamps increasing when the clock stalls or
goes backwards (a hybrid logical clock, Kulkarni et al. 2014), and
``writer_id`` a random 32-bit number per clock that breaks ties between
writers.  The newest version wins (last-write-wins).  Fits in 96 bits and is
written as 24 hex digits where a store needs text (so that comparing the
strings compares the versions).

Here too are records (a version and a value), tombstones, expiring values
and ``newest``/``differs``: the one place that says which record is newer.
This layer sits below the core (``cvstore.core.records`` re-exports these
names for the core's modules) and imports nothing of cvstore.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeGuard

__all__ = (
    "COUNTER_BITS",
    "TOMBSTONE",
    "VERSION_HEX_DIGITS",
    "WRITER_BITS",
    "Expiring",
    "HybridClock",
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


# ------------------------------------------------------------------ the clock

_COUNTER_BITS = COUNTER_BITS
_WRITER_BITS = WRITER_BITS


class HybridClock:
    """Issues strictly increasing version stamps for one writer.

    ``now()`` returns a new version and ``now_many(n)`` n consecutive ones;
    ``observe(version)`` moves the clock past a version seen from another
    writer, so causally later writes get later stamps even when wall clocks
    disagree.  ``time_ms()`` is the physical clock it reads.  Thread-safe.

    Parameters
    ----------
    writer_id : int, optional
        32-bit tie breaker; random when omitted.
    wall_ms : callable, optional
        Returns the physical time in milliseconds (tests pass a fake clock).

    Examples
    --------
    >>> clock = HybridClock(writer_id=7, wall_ms=lambda: 1_000)
    >>> a, b = clock.now(), clock.now()
    >>> a < b, version_wall_ms(a), a & 0xFFFFFFFF
    (True, 1000, 7)
    """

    def __init__(
        self, writer_id: int | None = None, *, wall_ms: Callable[[], int] | None = None
    ) -> None:
        if writer_id is None:
            writer_id = int.from_bytes(os.urandom(4), "little")
        if isinstance(writer_id, bool) or not isinstance(writer_id, int):
            raise TypeError(f"writer_id must be an int, got {type(writer_id).__name__}")
        if not 0 <= writer_id < (1 << _WRITER_BITS):
            raise ValueError(f"writer_id must be in [0, 2**32), got {writer_id!r}")
        if wall_ms is not None and not callable(wall_ms):
            raise TypeError(f"wall_ms must be callable, got {type(wall_ms).__name__}")
        self.writer_id = writer_id
        self._wall_ms = wall_ms
        # The logical part of the last stamp, (ms << 16) | counter, as one int:
        # "max(wall, last + 1)" is then the whole hybrid-clock send rule, and
        # a counter overflow carries into the milliseconds by itself.
        self._hlc = 0
        self._lock = threading.Lock()
        self._acquire = self._lock.acquire
        self._release = self._lock.release

    def time_ms(self) -> int:
        """The physical clock this HybridClock reads, in ms since the epoch."""
        if self._wall_ms is None:
            return time.time_ns() // 1_000_000
        return int(self._wall_ms())

    def now(self) -> int:
        """A new version, greater than every version this clock issued or observed."""
        if self._wall_ms is None:
            wall = (time.time_ns() // 1_000_000) << _COUNTER_BITS
        else:
            wall = int(self._wall_ms()) << _COUNTER_BITS
        # acquire/release rather than "with": this is on every write's path,
        # and nothing between them can raise.
        self._acquire()
        hlc = self._hlc + 1
        if wall > hlc:
            hlc = wall
        self._hlc = hlc
        self._release()
        return (hlc << _WRITER_BITS) | self.writer_id

    def now_many(self, n: int) -> list[int]:
        """`n` new consecutive versions in increasing order, reserved at once."""
        if n <= 0:
            return []
        wall = self.time_ms() << _COUNTER_BITS
        with self._lock:
            first = max(self._hlc + 1, wall)
            self._hlc = first + n - 1
        # Consecutive logical stamps are versions 2**32 apart: a range, built in C.
        start = (first << _WRITER_BITS) | self.writer_id
        return list(range(start, start + (n << _WRITER_BITS), 1 << _WRITER_BITS))

    def observe(self, version: int) -> None:
        """Never issue a stamp at or below `version` again (hybrid-clock receive rule).

        Every read observes what it returns and every refused write what
        refused it, so this is on the read path: the usual case (a version
        already passed) takes no lock.
        """
        hlc = version >> _WRITER_BITS
        if hlc > self._hlc:
            with self._lock:
                if hlc > self._hlc:
                    self._hlc = hlc

    def __repr__(self) -> str:
        return f"HybridClock(writer_id={self.writer_id})"
