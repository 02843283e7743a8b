"""Histories of operations on a cluster and a checker of each consistency level's promise.

A client process records every operation it makes as an ``Op``: its process id, what it
did (``write`` or ``read``), the key, the value written or read (``None``: absent), the
level, the ``time.monotonic()`` at invoke and at completion (one clock for every process
of the machine), and the outcome:

- ``ok``: the call returned;
- ``fail``: the call certainly had no effect (a read that raised);
- ``unknown``: a write that raised — it may be applied on some replicas, now or later
  (a stalled connection can deliver it after the call gave up), so it is treated as
  invoked and never completed.

Written values must be unique (``History.value()`` makes them so), which is what lets a
read or the final state be traced back to exactly one write.

``check(ops, final, replicas)`` reports, after the faults healed, hints were delivered,
``repair()`` ran and a fresh client read every key at ``all`` (`final`, and each
replica's copy in `replicas`):

- **lost**: an acknowledged write whose key ends with neither it nor a write that does
  not precede it (precede: completed before it was invoked).  Checked for writes at the
  levels whose write quorums meet (``quorum``, ``all``, ``strong``): README, "a write that
  starts after another was acknowledged wins over it"; at ``one``/``eventual`` (W = 1) a
  blind write can lose to an earlier one, as the README says, so those are not checked.
- **stale**: a read that returned a value older than a write acknowledged before the read
  began: the absence of a value, or a value whose write completed before that write was
  invoked.  Checked for a (write level, read level) pair only where R + W > N, which is
  what each level promises: ``quorum``/``strong`` read after ``quorum``/``strong``/``all``
  write, ``all`` read after any write, any read after an ``all`` write; never a
  ``one``/``eventual`` read after a ``one``/``eventual``/``quorum`` write.
- **phantom**: a value read (or found at the end) that no operation ever wrote.
- **disagree**: a key whose replicas hold different values at the end.

Deletes are not part of these histories.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = (
    "INF",
    "LEVELS",
    "AsyncHistory",
    "History",
    "Op",
    "Report",
    "check",
    "promises_no_loss",
    "promises_read_after_write",
)

LEVELS = ("one", "quorum", "all", "strong", "eventual")
INF = math.inf


def _replicas_asked(level: str, n: int) -> int:
    if level in ("one", "eventual"):
        return 1
    if level == "all":
        return n
    if level in ("quorum", "strong"):
        return n // 2 + 1
    raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")


def promises_read_after_write(write_level: str, read_level: str, n: int = 3) -> bool:
    """Whether a read at `read_level` must see a write acknowledged at `write_level` (R + W > N)."""
    return _replicas_asked(write_level, n) + _replicas_asked(read_level, n) > n


def promises_no_loss(write_level: str, n: int = 3) -> bool:
    """Whether a later write can never be buried by an earlier one at this level (W + W > N)."""
    return 2 * _replicas_asked(write_level, n) > n


@dataclass(frozen=True)
class Op:
    process: int
    op: str  # "write" | "read"
    key: str
    value: str | None  # written, or read (None: absent)
    level: str
    invoke: float
    complete: float  # INF for an unknown outcome
    outcome: str  # "ok" | "fail" | "unknown"
    error: str = ""

    def precedes(self, other: Op) -> bool:
        """Completed before `other` was invoked (an unknown op never completes)."""
        return self.complete < other.invoke


class History:
    """The operations of one client process, recorded around real calls."""

    def __init__(self, process: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.process = process
        self.ops: list[Op] = []
        self._clock = clock
        self._values = itertools.count()

    def value(self) -> str:
        """A value no other write of any process writes: ``p<process>-<n>``."""
        return f"p{self.process}-{next(self._values)}"

    def write(self, put: Callable[[str, str], Any], key: str, value: str, level: str) -> bool:
        """Call ``put(key, value)``; record ok, or unknown if it raised. True if acknowledged."""
        start = self._clock()
        try:
            put(key, value)
        except Exception as exc:  # noqa: BLE001 - every failure of a write is recorded
            self.ops.append(
                Op(self.process, "write", key, value, level, start, INF, "unknown", repr(exc))
            )
            return False
        self.ops.append(Op(self.process, "write", key, value, level, start, self._clock(), "ok"))
        return True

    def read(self, get: Callable[[str], Any], key: str, level: str) -> str | None:
        """Call ``get(key)`` (None: absent); record ok, or fail if it raised."""
        start = self._clock()
        try:
            value = get(key)
        except Exception as exc:  # noqa: BLE001 - every failure of a read is recorded
            self.ops.append(
                Op(self.process, "read", key, None, level, start, self._clock(), "fail", repr(exc))
            )
            return None
        self.ops.append(Op(self.process, "read", key, value, level, start, self._clock(), "ok"))
        return value


class AsyncHistory(History):
    """``History`` for coroutines: ``awrite``/``aread`` await the call they record."""

    async def awrite(
        self, put: Callable[[str, str], Any], key: str, value: str, level: str
    ) -> bool:
        start = self._clock()
        try:
            await put(key, value)
        except Exception as exc:  # noqa: BLE001 - every failure of a write is recorded
            self.ops.append(
                Op(self.process, "write", key, value, level, start, INF, "unknown", repr(exc))
            )
            return False
        self.ops.append(Op(self.process, "write", key, value, level, start, self._clock(), "ok"))
        return True

    async def aread(self, get: Callable[[str], Any], key: str, level: str) -> str | None:
        start = self._clock()
        try:
            value = await get(key)
        except Exception as exc:  # noqa: BLE001 - every failure of a read is recorded
            self.ops.append(
                Op(self.process, "read", key, None, level, start, self._clock(), "fail", repr(exc))
            )
            return None
        self.ops.append(Op(self.process, "read", key, value, level, start, self._clock(), "ok"))
        return value


@dataclass
class Report:
    lost: list[tuple[Op, str | None]] = field(default_factory=list)  # (write, final value)
    stale: list[tuple[Op, Op]] = field(default_factory=list)  # (read, the write it missed)
    phantom: list[tuple[str, str]] = field(default_factory=list)  # (key, value)
    disagree: list[tuple[str, tuple[str | None, ...]]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stale or self.phantom or self.disagree)

    def summary(self) -> str:
        c = self.counts
        return (
            f"{c.get('ops', 0)} ops ({c.get('writes_ok', 0)} writes acknowledged, "
            f"{c.get('writes_unknown', 0)} unknown, {c.get('reads_ok', 0)} reads, "
            f"{c.get('reads_fail', 0)} failed reads): {len(self.lost)} lost, "
            f"{len(self.stale)} stale, {len(self.phantom)} phantom, "
            f"{len(self.disagree)} keys whose replicas disagree"
        )


def check(
    ops: Iterable[Op],
    final: Mapping[str, str | None],
    replicas: Mapping[str, Sequence[str | None]] | None = None,
    *,
    n: int = 3,
) -> Report:
    """Check a history against each level's promise; see the module docstring."""
    ops = list(ops)
    report = Report()
    writes: dict[str, Op] = {}
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        if op.op == "write":
            if op.value is None or op.value in writes:
                raise ValueError(f"written values must be unique and not None, got {op.value!r}")
            writes[op.value] = op
            by_key.setdefault(op.key, []).append(op)
    acknowledged = {key: [w for w in ws if w.outcome == "ok"] for key, ws in by_key.items()}

    def older(value: str | None, than: Op) -> bool:
        """Whether `value` (for than.key) is older than the write `than`."""
        if value is None:
            return True
        source = writes.get(value)
        return source is not None and source.precedes(than)

    def known(key: str, value: str | None) -> bool:
        source = writes.get(value) if value is not None else None
        return value is None or (source is not None and source.key == key)

    for op in ops:
        if op.op != "read" or op.outcome != "ok":
            continue
        if not known(op.key, op.value):
            report.phantom.append((op.key, op.value))  # type: ignore[arg-type]
            continue
        for w in acknowledged.get(op.key, ()):
            if (
                w.precedes(op)
                and promises_read_after_write(w.level, op.level, n)
                and older(op.value, w)
            ):
                report.stale.append((op, w))
                break

    for key, value in final.items():
        if not known(key, value):
            report.phantom.append((key, value))  # type: ignore[arg-type]
    for key, ws in acknowledged.items():
        value = final.get(key)
        for w in ws:
            if promises_no_loss(w.level, n) and older(value, w):
                report.lost.append((w, value))

    for key, held in (replicas or {}).items():
        if len(set(held)) > 1:
            report.disagree.append((key, tuple(held)))

    report.counts = {
        "ops": len(ops),
        "writes_ok": sum(op.op == "write" and op.outcome == "ok" for op in ops),
        "writes_unknown": sum(op.op == "write" and op.outcome == "unknown" for op in ops),
        "reads_ok": sum(op.op == "read" and op.outcome == "ok" for op in ops),
        "reads_fail": sum(op.op == "read" and op.outcome == "fail" for op in ops),
    }
    return report
