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

Records, tombstones and the comparison of versions live in
``cvstore.core.records`` (re-exported here); this module adds the clock.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from cvstore.core.records import (
    COUNTER_BITS,
    TOMBSTONE,
    VERSION_HEX_DIGITS,
    WRITER_BITS,
    Record,
    differs,
    newest,
    version_from_hex,
    version_hex,
    version_wall_ms,
)

__all__ = (
    "TOMBSTONE",
    "VERSION_HEX_DIGITS",
    "HybridClock",
    "Record",
    "differs",
    "newest",
    "version_from_hex",
    "version_hex",
    "version_wall_ms",
)

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
