"""Hinted handoff: writes kept for a replica that could not take them, and their delivery.

When a replica is down, its copy of a write goes to the next healthy node on
the ring as a hint naming the replica (the owner).  Hints live in the
holder's hint storage, apart from its live records, so they are never read
as data and never count as an acknowledgement.  They are handed to the
owner when it is back (with a conditional write, so a hint never replaces a
newer version) and dropped once older than the hint window; after that
``repair()`` is the path.

Eventual writes use the same mechanism for replicas that are up: the one
replica written holds hints for the others, handed over in batches.

``HintBook`` is the bookkeeping (who holds hints for whom, counters); the
procedures below decide which calls to make.  The book is shared by the
threads of a sync driver: it takes the lock its driver hands it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from cvstore.core.calls import Call, Op, Proc, failed
from cvstore.core.records import version_wall_ms

__all__ = ("EVENTUAL_BATCH", "HintBook")

# Eventual writes' hints are handed over once this many are waiting.
EVENTUAL_BATCH = 1024

HintItem = tuple[bytes, Any, Sequence[Any], Sequence[Any]]  # key, record, replicas, missed


class HintBook:
    """Hint bookkeeping for one cluster: who holds hints for whom, and counters.

    ``pending`` maps an owner found down to the names of the nodes holding
    hints for it; drivers check it on every call and deliver as soon as they
    meet the owner up again.  ``lagging`` is the same for eventual writes,
    whose owners were up: those are delivered in batches, not per call.
    """

    def __init__(self, window_ms: int, lock: AbstractContextManager[Any]) -> None:
        self.window_ms = window_ms
        self.lock = lock
        self.pending: dict[str, set[str]] = {}
        self.lagging: dict[str, set[str]] = {}
        self.backlog = 0
        self.written = 0
        self.delivered = 0
        self.dropped = 0
        # Called with (event, owner, holder, count) when hints are "written",
        # "delivered" or "dropped": the driver logs them.
        self.on_event: Any = _ignore

    def _note(self, book: dict[str, set[str]], owner: str, holder: str) -> None:
        book.setdefault(owner, set()).add(holder)

    def _done(self, owner: str, holder: str) -> None:
        for book in (self.pending, self.lagging):
            holders = book.get(owner)
            if holders is not None:
                holders.discard(holder)
                if not holders:
                    del book[owner]

    def forget_node(self, name: str) -> None:
        """Stop tracking `name` as a holder or owner (it left the cluster)."""
        with self.lock:
            for book in (self.pending, self.lagging):
                book.pop(name, None)
                for holders in book.values():
                    holders.discard(name)
                for owner in [o for o, h in book.items() if not h]:
                    del book[owner]

    def owners_waiting(self, replicas: Sequence[Any]) -> list[str]:
        """Names of the `replicas` that are up and have hints waiting for them."""
        pending = self.pending
        return [node.name for node in replicas if node.name in pending and node.is_up]


def _ignore(event: str, owner: str, holder: str, count: int) -> None:
    pass


# ----------------------------------------------------------------- writing


def holders_for(placement: Any, items: Iterable[HintItem]) -> dict[tuple[Any, str], list[Any]]:
    """Where each missed copy goes: {(holder node, owner name): [(key, record)]}.

    Each missed owner's hint goes to the next up node along the key's ring
    walk that is not one of its replicas (a replica that took the write holds
    it when there is none).
    """
    batches: dict[tuple[Any, str], list[Any]] = defaultdict(list)
    for kb, record, replicas, missed in items:
        taken = set(map(id, replicas))
        candidates = [node for node in placement.walk(kb) if node.is_up and id(node) not in taken]
        fallback = [node for node in replicas if node.is_up and node not in missed]
        for owner in missed:
            holder = candidates.pop(0) if candidates else (fallback[0] if fallback else None)
            if holder is not None:
                batches[holder, owner.name].append((kb, record))
    return batches


def store(
    book: HintBook, batches: dict[tuple[Any, str], list[Any]], lagging: bool = False
) -> Proc[int]:
    """Write hint batches to their holders; returns how many were stored.

    A holder that fails loses its batch: the owner will need ``repair()``.
    """
    if not batches:
        return 0
    keys = list(batches)
    results = yield [
        Call(holder, Op.PUT_HINTS, (owner, batches[holder, owner])) for holder, owner in keys
    ]
    stored = 0
    with book.lock:
        for (holder, owner), result in zip(keys, results):
            if failed(result):
                continue
            book._note(book.lagging if lagging else book.pending, owner, holder.name)
            stored += len(batches[holder, owner])
            if not lagging:
                book.on_event("written", owner, holder.name, len(batches[holder, owner]))
        book.written += stored
        if lagging:
            book.backlog += stored
    return stored


def hint(book: HintBook, placement: Any, items: Iterable[HintItem]) -> Proc[int]:
    """Hold writes for the replicas that missed them (see ``holders_for``)."""
    return (yield from store(book, holders_for(placement, items)))


def hint_eventual(
    book: HintBook, holder: Any, owners: Sequence[Any], items: list[Any]
) -> Proc[None]:
    """Hold an eventual write's copies, on the replica written, for the replicas it skipped."""
    down = {(holder, o.name): items for o in owners if not o.is_up}
    up = {(holder, o.name): items for o in owners if o.is_up}
    yield from store(book, down)
    yield from store(book, up, lagging=True)


def adopt(book: HintBook, nodes: Sequence[Any]) -> Proc[None]:
    """Take over the hints `nodes` already hold (left by an earlier client).

    Hints live in the holders' stores (a Redis server keeps them after the
    client that wrote them is gone); this learns whom they are for, so they
    are delivered as soon as their owners are met up.
    """
    counts = yield [Call(node, Op.COUNT_HINTS) for node in nodes]
    holding = [node for node, n in zip(nodes, counts) if not failed(n) and n]
    if not holding:
        return
    held = yield [Call(node, Op.READ_HINTS) for node in holding]
    with book.lock:
        for node, hints in zip(holding, held):
            if failed(hints):
                continue
            for owner in {owner for owner, _, _ in hints}:
                book._note(book.pending, owner, node.name)


def count(placement: Any) -> Proc[int]:
    """Hints held by the nodes that are up."""
    up = [node for node in placement.nodes if node.is_up]
    counts = yield [Call(node, Op.COUNT_HINTS) for node in up]
    return sum(n for n in counts if not failed(n))


# ---------------------------------------------------------------- delivery


def deliver(
    book: HintBook, placement: Any, now_ms: int, owners: Iterable[str] | None = None
) -> Proc[int]:
    """Hand hints to their owners that are up; drop expired ones.

    Only hints for `owners` when given, else every hint every up node holds.
    A hint whose owner has left the cluster goes to the key's current
    replicas.  Returns how many hints were handed over.
    """
    wanted = None if owners is None else set(owners)
    delivered = dropped = 0
    with book.lock:
        if wanted is None:
            holders = [node for node in placement.nodes if node.is_up]
        else:
            names: set[str] = set()
            for owner in wanted:
                names |= book.pending.get(owner, set()) | book.lagging.get(owner, set())
            holders = [placement.by_name[n] for n in sorted(names) if n in placement.by_name]
            holders = [node for node in holders if node.is_up]
        oldest = now_ms - book.window_ms
        for holder in holders:
            (held,) = yield [Call(holder, Op.READ_HINTS)]
            if failed(held):
                continue
            by_owner: dict[str, list[Any]] = defaultdict(list)
            for owner, kb, record in held:
                if wanted is None or owner in wanted:
                    by_owner[owner].append((kb, record))
            for owner, hints in by_owner.items():
                fresh = [(kb, r) for kb, r in hints if version_wall_ms(r[0]) >= oldest]
                expired = len(hints) - len(fresh)
                target = placement.by_name.get(owner)
                if target is not None and not target.is_up:
                    if expired:  # keep the fresh ones for later, drop the rest now
                        keep = {kb for kb, _ in fresh}
                        gone = [(kb, r[0]) for kb, r in hints if kb not in keep]
                        yield [Call(holder, Op.DELETE_HINTS_IF, (owner, gone))]
                        dropped += expired
                        book.on_event("dropped", owner, holder.name, expired)
                    continue
                if fresh:
                    if target is not None:
                        calls = [Call(target, Op.WRITE_MANY, tuple(map(list, zip(*fresh))))]
                    else:
                        calls = _to_current_replicas(placement, fresh)
                    results = yield calls
                    if any(map(failed, results)):
                        continue
                # Only the versions read: a newer hint written meanwhile stays, and is
                # noted so that the next call that meets the owner delivers it.
                (spared,) = yield [Call(holder, Op.DELETE_HINTS_IF, (owner, _versions(hints)))]
                delivered += len(fresh)
                dropped += expired
                if not failed(spared) and spared:
                    book._note(book.pending, owner, holder.name)
                else:
                    book._done(owner, holder.name)
                if fresh:
                    book.on_event("delivered", owner, holder.name, len(fresh))
                if expired:
                    book.on_event("dropped", owner, holder.name, expired)
        if wanted is None or not book.lagging:
            book.backlog = 0
        book.delivered += delivered
        book.dropped += dropped
    return delivered


def _versions(hints: Iterable[tuple[bytes, Any]]) -> list[tuple[bytes, int]]:
    """(key, version) of each hint, for a delete that spares a hint replaced since it was read."""
    return [(kb, record[0]) for kb, record in hints]


def deliver_found(
    book: HintBook, placement: Any, replicas: Sequence[Any], now_ms: int
) -> Proc[int]:
    """Deliver hints for any of `replicas` that has hints waiting and is up."""
    owners = book.owners_waiting(replicas)
    if not owners:
        return 0
    return (yield from deliver(book, placement, now_ms, owners))


def _to_current_replicas(placement: Any, items: list[Any]) -> list[Call]:
    """Writes of records to their keys' current replicas that are up (owner left)."""
    if not placement.nodes:
        return []
    batches: dict[int, list[Any]] = defaultdict(list)
    nodes = {}
    for kb, record in items:
        for node in placement.replicas(kb):
            if node.is_up:
                batches[id(node)].append((kb, record))
                nodes[id(node)] = node
    return [
        Call(nodes[key], Op.WRITE_MANY, tuple(map(list, zip(*batch))))
        for key, batch in batches.items()
    ]


def move(book: HintBook, placement: Any, leaving: Any) -> Proc[None]:
    """Hand the hints `leaving` holds to an up node of `placement` before it leaves."""
    if not leaving.is_up:
        return
    with book.lock:
        (held,) = yield [Call(leaving, Op.READ_HINTS)]
        if failed(held):
            return
        by_owner: dict[str, list[Any]] = defaultdict(list)
        for owner, kb, record in held:
            by_owner[owner].append((kb, record))
        takers = [node for node in placement.nodes if node.is_up and node is not leaving]
        for owner, items in by_owner.items():
            taker = next((node for node in takers if node.name != owner), None)
            if taker is None:
                continue
            lagging = leaving.name in book.lagging.get(owner, ())
            stored = yield from store(book, {(taker, owner): items}, lagging=lagging)
            book.written -= stored  # moved, not new
            if stored:
                yield [Call(leaving, Op.DELETE_HINTS_IF, (owner, _versions(items)))]
