"""Hinted handoff: writes kept for a replica that could not take them, and their delivery.

When a replica is down, its copy of a write goes to the next healthy node on
the ring as a hint naming the replica (the owner).  Hints live in the
holder's hint storage, apart from its live records, so they are never read
as data and never count as an acknowledgement.  They are handed to the
owner when it is back (with a conditional put, so a hint never replaces a
newer version) and dropped once older than the hint window; after that
``repair()`` is the path.

Eventual writes use the same mechanism for replicas that are up: the one
replica written holds hints for the others, handed over in batches.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from cvstore.errors import StoreError
from cvstore.versions import version_wall_ms

__all__ = ("HintedHandoff",)

# Eventual writes' hints are handed over once this many are waiting.
EVENTUAL_BATCH = 1024


class HintedHandoff:
    """Hint bookkeeping for one cluster: who holds hints for whom, and counters.

    ``pending`` maps an owner found down to the nodes holding hints for it;
    the cluster checks it on every call and delivers as soon as it meets
    the owner up again.  ``lagging`` is the same for eventual writes, whose
    owners were up: those are delivered in batches, not per call.
    """

    def __init__(self, clock: Any, window_ms: int) -> None:
        self.clock = clock
        self.window_ms = window_ms
        self.lock = threading.RLock()
        self.pending: dict[str, set[str]] = {}
        self.lagging: dict[str, set[str]] = {}
        self.backlog = 0
        self.written = 0
        self.delivered = 0
        self.dropped = 0
        # Called with (node, StoreError) when a node's store fails: the
        # cluster suspects it down.
        self.on_failure: Any = _ignore

    # ------------------------------------------------------------ writing

    def hint(
        self, placement: Any, items: Iterable[tuple[bytes, Any, Sequence[Any], Sequence[Any]]]
    ) -> int:
        """Hold writes for replicas that missed them.

        `items` are (key, record, replicas, missed): `missed` are the replicas
        of the key that did not take the record.  Each missed owner's hint
        goes to the next up node along the ring walk that is not a replica
        (a replica that took the write holds it when there is none).
        Returns how many hints were stored.
        """
        batches: dict[tuple[Any, str], list[tuple[bytes, Any]]] = defaultdict(list)
        for kb, record, replicas, missed in items:
            taken = set(map(id, replicas))
            candidates = [
                node for node in placement.walk(kb) if node.is_up and id(node) not in taken
            ]
            fallback = [node for node in replicas if node.is_up and node not in missed]
            for owner in missed:
                holder = candidates.pop(0) if candidates else (fallback[0] if fallback else None)
                if holder is not None:
                    batches[holder, owner.name].append((kb, record))
        return self._store(batches, self.pending)

    def hint_eventual(
        self, holder: Any, owners: Sequence[Any], items: list[tuple[bytes, Any]]
    ) -> None:
        """Hold an eventual write's copies for the replicas it skipped (`owners`)."""
        up = {(holder, o.name): items for o in owners if o.is_up}
        down = {(holder, o.name): items for o in owners if not o.is_up}
        with self.lock:
            self._store(down, self.pending)
            self.backlog += self._store(up, self.lagging)

    def _store(
        self, batches: dict[tuple[Any, str], list[tuple[bytes, Any]]], book: dict[str, set[str]]
    ) -> int:
        stored = 0
        with self.lock:
            for (holder, owner), hints in batches.items():
                try:
                    holder.store.put_hints(owner, hints)
                except StoreError as exc:  # the holder failed too: the owner will need repair
                    self.on_failure(holder, exc)
                    continue
                book.setdefault(owner, set()).add(holder.name)
                stored += len(hints)
            self.written += stored
        return stored

    def adopt(self, nodes: Sequence[Any]) -> None:
        """Take over the hints `nodes` already hold (left by an earlier cluster object).

        Hints live in the holders' stores (a Redis server keeps them after the
        client that wrote them is gone); this learns whom they are for, so
        they are delivered as soon as their owners are met up.
        """
        for node in nodes:
            try:
                if not node.store.count_hints():
                    continue
                owners = {owner for owner, _, _ in node.store.scan_hints()}
            except StoreError as exc:
                self.on_failure(node, exc)
                continue
            with self.lock:
                for owner in owners:
                    self.pending.setdefault(owner, set()).add(node.name)

    # ----------------------------------------------------------- delivery

    def deliver_found(self, placement: Any, replicas: Sequence[Any]) -> None:
        """Deliver hints for any of `replicas` that has hints waiting and is up."""
        pending = self.pending
        owners = [node.name for node in replicas if node.name in pending and node.is_up]
        if owners:
            self.deliver(placement, owners)

    def deliver(self, placement: Any, owners: Iterable[str] | None = None) -> int:
        """Hand hints to their owners that are up; drop expired ones.

        Only hints for `owners` when given, else every hint every up node
        holds.  A hint whose owner has left the cluster goes to the key's
        current replicas.  Returns how many hints were handed over.
        """
        wanted = None if owners is None else set(owners)
        delivered = dropped = 0
        with self.lock:
            if wanted is None:
                holders = [node for node in placement.nodes if node.is_up]
            else:
                names = set()
                for owner in wanted:
                    names |= self.pending.get(owner, set()) | self.lagging.get(owner, set())
                holders = [placement.by_name[n] for n in sorted(names) if n in placement.by_name]
                holders = [node for node in holders if node.is_up]
            oldest = self.clock.time_ms() - self.window_ms
            for holder in holders:
                try:
                    held = list(holder.store.scan_hints())
                except StoreError as exc:
                    self.on_failure(holder, exc)
                    continue
                by_owner: dict[str, list[tuple[bytes, Any]]] = defaultdict(list)
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
                            gone = [kb for kb, _ in hints if kb not in keep]
                            self._forget(holder, owner, gone)
                            dropped += expired
                        continue
                    try:
                        if target is not None:
                            if fresh:
                                target.store.put_many(fresh)
                        elif fresh:
                            _to_current_replicas(placement, fresh)
                    except StoreError as exc:
                        if target is not None:
                            self.on_failure(target, exc)
                        continue
                    self._forget(holder, owner, [kb for kb, _ in hints])
                    delivered += len(fresh)
                    dropped += expired
                    for book in (self.pending, self.lagging):
                        holders_of = book.get(owner)
                        if holders_of is not None:
                            holders_of.discard(holder.name)
                            if not holders_of:
                                del book[owner]
            if wanted is None or not self.lagging:
                self.backlog = 0
            self.delivered += delivered
            self.dropped += dropped
        return delivered

    def _forget(self, holder: Any, owner: str, keys: list[bytes]) -> None:
        try:
            holder.store.delete_hints(owner, keys)
        except StoreError:
            pass

    def move(self, placement: Any, leaving: Any) -> None:
        """Hand the hints `leaving` holds to an up node of `placement` before it leaves."""
        if not leaving.is_up:
            return
        with self.lock:
            try:
                held = list(leaving.store.scan_hints())
            except StoreError:
                return
            by_owner: dict[str, list[tuple[bytes, Any]]] = defaultdict(list)
            for owner, kb, record in held:
                by_owner[owner].append((kb, record))
            takers = [node for node in placement.nodes if node.is_up and node is not leaving]
            for owner, items in by_owner.items():
                taker = next((node for node in takers if node.name != owner), None)
                if taker is None:
                    continue
                lagging = leaving.name in self.lagging.get(owner, ())
                self._store({(taker, owner): items}, self.lagging if lagging else self.pending)
                self.written -= len(items)  # moved, not new
                self._forget(leaving, owner, [kb for kb, _ in items])

    def forget_node(self, name: str) -> None:
        """Stop tracking `name` as a holder or owner (it left the cluster)."""
        with self.lock:
            for book in (self.pending, self.lagging):
                for holders in book.values():
                    holders.discard(name)
                for owner in [o for o, h in book.items() if not h]:
                    del book[owner]

    def count(self, placement: Any) -> int:
        """Hints held by the nodes that are up."""
        total = 0
        for node in placement.nodes:
            if node.is_up:
                try:
                    total += node.store.count_hints()
                except StoreError:
                    pass
        return total


def _ignore(node: Any, error: BaseException) -> None:
    pass


def _to_current_replicas(placement: Any, items: list[tuple[bytes, Any]]) -> None:
    """Write records to their keys' current replicas that are up (owner left the cluster)."""
    if not placement.nodes:
        return
    batches: dict[int, list[tuple[bytes, Any]]] = defaultdict(list)
    for kb, record in items:
        for node in placement.replicas(kb):
            if node.is_up:
                batches[id(node)].append((kb, record))
    nodes = {id(node): node for node in placement.nodes}
    for key, batch in batches.items():
        nodes[key].store.put_many(batch)
