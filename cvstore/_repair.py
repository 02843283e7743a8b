"""Anti-entropy repair: make every key's replica set whole and current.

``repair`` hands over waiting hints, then reads every record of every node
that is up, finds each key's newest copy, writes it to the key's replicas
that lack it, removes stray copies from nodes that do not replicate the key,
and purges tombstones older than the grace period.  A key whose replicas are
not all up is brought as far as it can be, but its strays and tombstones are
kept: removing them is only safe once every replica is current.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvstore.errors import StoreError
from cvstore.versions import TOMBSTONE, version_wall_ms

__all__ = ("RepairReport", "repair")

_DOWN = object()


@dataclass(frozen=True)
class RepairReport:
    """What ``Cluster.repair()`` did.

    Attributes
    ----------
    keys : int
        Distinct keys seen on the nodes that were up.
    repaired : int
        Replica copies written because they were missing or stale.
    strays_removed : int
        Copies removed from nodes that do not replicate their key.
    purged : int
        Deleted keys whose tombstones were removed (older than the grace
        period, every replica current).
    hints_delivered, hints_dropped : int
        Hints handed to their owners, and expired hints dropped, first.
    skipped : tuple[str, ...]
        Nodes that were down; keys they replicate were not completed.
    seconds : float
        Wall time.
    """

    keys: int
    repaired: int
    strays_removed: int
    purged: int
    hints_delivered: int
    hints_dropped: int
    skipped: tuple[str, ...]
    seconds: float

    @property
    def complete(self) -> bool:
        """True when every node was up, so every key is whole and current."""
        return not self.skipped


def repair(placement: Any, hints: Any, now_ms: int, grace_ms: int) -> RepairReport:
    """One anti-entropy pass over `placement` (see the module docstring)."""
    started = time.perf_counter()
    dropped_before = hints.dropped
    delivered = hints.deliver(placement)
    hints_dropped = hints.dropped - dropped_before

    skipped = [n.name for n in placement.nodes if not n.is_up]
    snap: dict[int, dict[bytes, Any]] = {}
    for j, node in enumerate(placement.nodes):
        if node.is_up:
            try:
                snap[j] = dict(node.store.scan())
            except StoreError:
                skipped.append(node.name)
    keys = list(set().union(*snap.values())) if snap else []
    if not keys:
        return RepairReport(
            0,
            0,
            0,
            0,
            delivered,
            hints_dropped,
            tuple(sorted(skipped)),
            time.perf_counter() - started,
        )

    # Copies on nodes that do not replicate their key, found per node with one batch call.
    strays: dict[bytes, list[tuple[int, Any]]] = defaultdict(list)
    for j, data in snap.items():
        held = list(data)
        if not held:
            continue
        outside = np.flatnonzero(~(placement.replicas_many(held) == j).any(axis=1))
        for i in outside.tolist():
            strays[held[i]].append((j, data[held[i]]))

    puts: dict[int, list[tuple[bytes, Any]]] = defaultdict(list)
    purges: dict[int, list[tuple[bytes, int]]] = defaultdict(list)
    stray_removals: dict[int, list[tuple[bytes, int]]] = defaultdict(list)
    purged_keys: set[bytes] = set()
    for kb, row in zip(keys, placement.replicas_many(keys).tolist()):
        records: list[Any] = [snap[j].get(kb) if j in snap else _DOWN for j in row]
        best = None
        for record in records:
            if record is not None and record is not _DOWN and (best is None or record[0] > best[0]):
                best = record
        stray_copies = strays.get(kb, ())
        for _, record in stray_copies:
            if best is None or record[0] > best[0]:
                best = record
        if best is None:
            continue
        complete = _DOWN not in records
        if complete and best[1] is TOMBSTONE and now_ms - version_wall_ms(best[0]) >= grace_ms:
            # Every copy goes, each at the version it has now, so a write
            # that lands meanwhile survives (its version no longer matches).
            purged_keys.add(kb)
            for j, record in zip(row, records):
                if record is not None:
                    purges[j].append((kb, record[0]))
            for j, record in stray_copies:
                purges[j].append((kb, record[0]))
            continue
        for j, record in zip(row, records):
            if record is not _DOWN and (record is None or record[0] < best[0]):
                puts[j].append((kb, best))
        if complete:
            for j, record in stray_copies:
                stray_removals[j].append((kb, record[0]))

    repaired = 0
    unsafe: set[bytes] = (
        set()
    )  # keys a failed write left incomplete: keep their strays and tombstones
    for j, items in puts.items():
        try:
            repaired += sum(placement.nodes[j].store.put_many(items))
        except StoreError:
            skipped.append(placement.nodes[j].name)
            unsafe.update(kb for kb, _ in items)
    strays_removed = _purge(placement, stray_removals, unsafe)
    _purge(placement, purges, unsafe)
    purged = len(purged_keys - unsafe)
    return RepairReport(
        keys=len(keys),
        repaired=repaired,
        strays_removed=strays_removed,
        purged=purged,
        hints_delivered=delivered,
        hints_dropped=hints_dropped,
        skipped=tuple(sorted(set(skipped))),
        seconds=time.perf_counter() - started,
    )


def _purge(placement: Any, batches: dict[int, list[tuple[bytes, int]]], unsafe: set[bytes]) -> int:
    removed = 0
    for j, items in batches.items():
        items = [(kb, version) for kb, version in items if kb not in unsafe]
        try:
            removed += placement.nodes[j].store.purge_many(items)
        except StoreError:
            pass
    return removed
