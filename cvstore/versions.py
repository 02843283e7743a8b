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
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, NamedTuple

__all__ = ("TOMBSTONE", "HybridClock", "Record", "version_hex", "version_from_hex")

_COUNTER_BITS = 16
_WRITER_BITS = 32
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
VERSION_HEX_DIGITS = 24


class _Tombstone:
    """The value of a deleted key: a record that says "deleted at this version"."""

    _instance = None

    def __new__(cls) -> _Tombstone:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "TOMBSTONE"

    def __reduce__(self) -> str:
        return "TOMBSTONE"


TOMBSTONE: Any = _Tombstone()


class Record(NamedTuple):
    """One stored copy of a key: its version and its value (or TOMBSTONE)."""

    version: int
    value: Any

    @property
    def deleted(self) -> bool:
        return self.value is TOMBSTONE


def version_hex(version: int) -> str:
    """A version as fixed-width hex: string order equals version order."""
    return format(version, f"0{VERSION_HEX_DIGITS}x")


def version_from_hex(text: str | bytes) -> int:
    return int(text, 16)


def version_wall_ms(version: int) -> int:
    """The physical-clock part of a version, in milliseconds since the epoch."""
    return version >> (_COUNTER_BITS + _WRITER_BITS)


class HybridClock:
    """Issues strictly increasing version stamps for one writer.

    ``now()`` returns a new version; ``observe(version)`` moves the clock past
    a version seen from another writer, so causally later writes get later
    stamps even when wall clocks disagree.  Thread-safe.
    """

    def __init__(self, writer_id: int | None = None, *, wall_ms=None) -> None:
        if writer_id is None:
            writer_id = int.from_bytes(os.urandom(4), "little")
        if not 0 <= writer_id < (1 << _WRITER_BITS):
            raise ValueError(f"writer_id must be in [0, 2**32), got {writer_id!r}")
        self.writer_id = writer_id
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._last_ms = 0
        self._counter = 0
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            wall = self._wall_ms()
            if wall > self._last_ms:
                self._last_ms, self._counter = wall, 0
            elif self._counter < _COUNTER_MAX:
                self._counter += 1
            else:  # 65,536 stamps in one millisecond: borrow from the next one
                self._last_ms, self._counter = self._last_ms + 1, 0
            return self._compose()

    def observe(self, version: int) -> None:
        """Never issue a stamp below `version` again (hybrid-clock receive rule)."""
        hlc = version >> _WRITER_BITS
        with self._lock:
            if hlc > ((self._last_ms << _COUNTER_BITS) | self._counter):
                self._last_ms = hlc >> _COUNTER_BITS
                self._counter = hlc & _COUNTER_MAX

    def _compose(self) -> int:
        return (
            (self._last_ms << (_COUNTER_BITS + _WRITER_BITS))
            | (self._counter << _WRITER_BITS)
            | self.writer_id
        )
