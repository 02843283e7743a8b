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

**What the checker knows of versions.** It never sees a version stamp, and one write can
carry several: a write refused by a newer copy is stamped again, higher, and sent again, so
an early stamp of it may stay on a replica that applied it until ``repair()``.  The checker
derives "every stamp of write `a` is lower than the last stamp of write `b`" (a < b) only
from what the README promises, and closes that order under transitivity:

- *write quorums meet*: `a` acknowledged before `b` was invoked, `b` acknowledged, and
  W(a) + W(b) > N (W: replicas that must apply a write at its level; N the replication
  factor): one replica that applied `b` held `a` or newer, and applies only newer
  ("a write that starts after another was acknowledged wins over it" for ``quorum``,
  ``all`` and ``strong``; "every replica has it when put returns" for ``all``);
- *a client's clock*: `b` written by a process whose earlier operation (completed before
  `b` was invoked) wrote `a` and was acknowledged (a ``HybridClock`` issues strictly
  increasing stamps), or read `a` at a level that promised to see `a`'s last stamp (`a`
  acknowledged before the read began, W(a) + R > N) — "every read observes what it
  returns ... at every level, ``one`` and ``eventual`` included".  A read that may have
  returned an early stamp of `a` orders nothing (the process's later writes are above that
  stamp, maybe not above `a`'s last), nor does a write with an unknown outcome (it never
  completes).

``check(ops, final, replicas)`` reports, after the faults healed, hints were delivered,
``repair()`` ran and a fresh client read every key at ``all`` (`final`, and each
replica's copy in `replicas`):

- **lost**: an acknowledged write, at any level, whose key ends absent or with a value
  known to be older than it: every level promises the write is on at least one replica,
  newer than what that replica held, and ``repair()`` keeps the newest copy.  At
  ``one``/``eventual`` (W = 1) a blind write from a process that never saw an earlier
  write can still lose to it, as the README says: nothing orders the two, so that is not
  reported.
- **stale**: a read at level R that returned absence or a value known older than a write
  `w` acknowledged before the read began, where W(w) + R > N (R: replicas a read asks):
  ``quorum``/``strong`` reads after ``quorum``/``strong``/``all`` writes, ``all`` reads
  after any write, any read after an ``all`` write.  Never a ``one``/``eventual`` read
  after a ``one``/``eventual``/``quorum`` write ("does not promise that a later read
  sees it").
- **phantom**: a value read (or found at the end) that no operation ever wrote.
- **disagree**: a key whose replicas hold different values at the end.

Counted but never failed, since no level promises otherwise: per level, reads that
returned a value known older than one their process had already read or written
(``nonmonotonic_<level>``) and reads known older than an earlier acknowledged write
that their level does not promise to see (``stale_allowed_<level>``).

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


def promises_no_loss(write_level: str, n: int = 3, *, earlier: str | None = None) -> bool:
    """Whether a write at `write_level` wins over one at `earlier` (default: the same level)
    acknowledged before it began, whatever the clocks say (W + W > N)."""
    first = write_level if earlier is None else earlier
    return _replicas_asked(first, n) + _replicas_asked(write_level, n) > n


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
        if op.op not in ("write", "read"):
            raise ValueError(f"op must be 'write' or 'read', got {op.op!r}")
        _replicas_asked(op.level, n)  # a clear error for an unknown level
        if op.op == "write":
            if op.value is None or op.value in writes:
                raise ValueError(f"written values must be unique and not None, got {op.value!r}")
            writes[op.value] = op
        by_key.setdefault(op.key, []).append(op)

    def known(key: str, value: str | None) -> bool:
        source = writes.get(value) if value is not None else None
        return value is None or (source is not None and source.key == key)

    counts: dict[str, int] = {
        "ops": len(ops),
        "writes_ok": sum(op.op == "write" and op.outcome == "ok" for op in ops),
        "writes_unknown": sum(op.op == "write" and op.outcome == "unknown" for op in ops),
        "reads_ok": sum(op.op == "read" and op.outcome == "ok" for op in ops),
        "reads_fail": sum(op.op == "read" and op.outcome == "fail" for op in ops),
    }
    for level in LEVELS:
        counts[f"writes_ok_{level}"] = 0
        counts[f"nonmonotonic_{level}"] = 0
        counts[f"stale_allowed_{level}"] = 0
    for op in ops:
        if op.op == "write" and op.outcome == "ok":
            counts[f"writes_ok_{op.level}"] += 1

    for key, key_ops in by_key.items():
        _check_key(key, key_ops, writes, final, n, report, counts, known)
    for key, value in final.items():
        if key not in by_key and value is not None:
            report.phantom.append((key, value))

    for key, held in (replicas or {}).items():
        if len(set(held)) > 1:
            report.disagree.append((key, tuple(held)))
    report.counts = counts
    return report


def _check_key(
    key: str,
    key_ops: list[Op],
    writes: Mapping[str, Op],
    final: Mapping[str, str | None],
    n: int,
    report: Report,
    counts: dict[str, int],
    known: Callable[[str, str | None], bool],
) -> None:
    """One key's history, swept in time order (see the module docstring for the rules).

    Sets of writes are Python ints used as bit sets (bit i: the key's i-th write).
    ``below[i]``: the writes known older than write i.  ``acked_up[t]``: the writes
    acknowledged so far with W >= t, and all below them; ``acked_below[t]``: all below
    them only.  ``seen[p]``: what process p's later writes are known to be above, with all
    below.  ``had_below[p]``: all below what p has written (acknowledged) or read, for the
    count of non-monotonic reads.
    """
    index = {op.value: i for i, op in enumerate(o for o in key_ops if o.op == "write")}
    below: dict[int, int] = {}
    acked_up = [0] * (n + 2)
    acked_below = [0] * (n + 2)
    any_acked = [False] * (n + 2)
    seen: dict[int, int] = {}
    had_below: dict[int, int] = {}
    # a read's view when invoked: (acked_below[t], acked_below[1], any_acked[t],
    # any_acked[1], had_below[p], whether p had written or read a value)
    at_invoke: dict[int, tuple[int, int, bool, bool, int, bool]] = {}

    # invokes before completions at the same instant: "precedes" is strict
    events = sorted(
        [(op.invoke, 0, j) for j, op in enumerate(key_ops)]
        + [(op.complete, 1, j) for j, op in enumerate(key_ops) if op.complete != INF],
    )
    for _, kind, j in events:
        op = key_ops[j]
        p = op.process
        if op.op == "write":
            i = index[op.value]  # type: ignore[index]
            if kind == 0:
                # acknowledged: above every write whose quorum meets its own; any outcome:
                # above what its process saw
                mine = seen.get(p, 0)
                if op.outcome == "ok":
                    mine |= acked_up[n + 1 - _replicas_asked(op.level, n)]
                below[i] = mine
            else:
                w = _replicas_asked(op.level, n)
                mine = (1 << i) | below[i]
                for t in range(1, w + 1):
                    acked_up[t] |= mine
                    acked_below[t] |= below[i]
                    any_acked[t] = True
                seen[p] = seen.get(p, 0) | mine
                had_below[p] = had_below.get(p, 0) | below[i]
            continue
        if op.outcome != "ok":
            continue
        if kind == 0:
            t = n + 1 - _replicas_asked(op.level, n)
            at_invoke[j] = (
                acked_below[t],
                acked_below[1],
                any_acked[t],
                any_acked[1],
                had_below.get(p, 0),
                p in had_below,
            )
            continue
        promised_below, all_below, promised_any, anything, mine_below, saw = at_invoke.pop(j)
        if not known(key, op.value):
            report.phantom.append((key, op.value))  # type: ignore[arg-type]
            continue
        value_bit = 0 if op.value is None else 1 << index[op.value]
        if (op.value is None and promised_any) or value_bit & promised_below:
            report.stale.append((op, _witness(op, key_ops, value_bit, below, index, n)))
        elif (op.value is None and anything) or value_bit & all_below:
            counts[f"stale_allowed_{op.level}"] += 1
        if (op.value is None and saw) or value_bit & mine_below:
            counts[f"nonmonotonic_{op.level}"] += 1
        if op.value is not None:
            had_below[p] = had_below.get(p, 0) | below[index[op.value]]
        source = writes.get(op.value) if op.value is not None else None
        if (
            source is not None
            and source.outcome == "ok"
            and source.precedes(op)
            and promises_read_after_write(source.level, op.level, n)
        ):  # the read returned the source's last stamp: its process's writes go above it
            i = index[op.value]
            seen[p] = seen.get(p, 0) | (1 << i) | below[i]

    value = final.get(key)
    if not known(key, value):
        report.phantom.append((key, value))  # type: ignore[arg-type]
        return
    value_bit = 0 if value is None else 1 << index[value]
    for op in key_ops:
        if (
            op.op == "write"
            and op.outcome == "ok"
            and (value is None or value_bit & below[index[op.value]])
        ):
            report.lost.append((op, value))


def _witness(
    read: Op,
    key_ops: list[Op],
    value_bit: int,
    below: Mapping[int, int],
    index: Mapping[str | None, int],
    n: int,
) -> Op:
    """An acknowledged write the stale `read` should have seen (for the report)."""
    for op in key_ops:
        if (
            op.op == "write"
            and op.outcome == "ok"
            and op.precedes(read)
            and promises_read_after_write(op.level, read.level, n)
            and (value_bit == 0 or value_bit & below[index[op.value]])
        ):
            return op
    raise AssertionError("a stale read without a write it missed")
