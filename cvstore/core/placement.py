"""Placement: one immutable snapshot of a cluster's membership and where keys go.

A ``Placement`` holds a placer (a ``HashRing`` by default; any registered
placement, see ``cvstore.core.placements``) built for exactly its members, the members in the placer's index order, N (replicas per key)
and the replica counts each consistency level needs.  Members are the
driver's node objects; the core reads only their ``name``, ``weight``,
``zone``, ``is_up``, ``remote``, ``direct`` and ``latency`` attributes (the ``Member``
protocol).  The cluster swaps whole snapshots in one assignment, so a
reader always works with one consistent membership, old or new.  During a
membership change the current snapshot carries the next one as ``pending``:
writes then go to the replicas of both.

Replicas are ``placer.get_nodes(key, N)``.  When nodes have zones, they are
the first node of each distinct zone along the key's walk (its whole
preference list), then (when there are fewer zones than N) the next nodes of
the walk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from cvstore._ring import HashRing
from cvstore._types import Hash
from cvstore.core.levels import WRITE_ONE, read_needs, write_needs
from cvstore.errors import EmptyRingError

__all__ = ("Member", "Placement", "Placer", "ring_placer")

T = TypeVar("T")


class Placer(Protocol):
    """What the core needs of a placement function (``HashRing`` is one).

    ``nodes`` are the member names in index order; ``get_nodes(key, n)`` the
    key's first `n` distinct members (``get_items(key, n, items)``: each as
    ``items[index]``); ``get_nodes_many(keys, n)`` the same for
    a batch as an int32 array of indices into ``nodes``; ``hash_many(keys)``
    each key's position (uint64), which repair uses to cut key ranges.

    A placer is a pure function of the membership's weights and its options:
    every client builds the same one.  Load never moves copies: the replicas
    that hold a key are ``get_nodes(key, n)`` (see ``cvstore.core.placements``).
    """

    @property
    def nodes(self) -> Sequence[str]: ...

    def get_nodes(self, key: bytes, n: int) -> list[str]: ...

    def get_items(self, key: bytes, n: int, items: tuple[T, ...]) -> list[T]: ...

    def get_nodes_many(self, keys: Sequence[bytes], n: int) -> NDArray[np.int32]: ...

    def hash_many(self, keys: Sequence[bytes]) -> NDArray[np.uint64]: ...


class Member(Protocol):
    """What the core reads of a node: identity, capacity, failure domain, state."""

    name: str
    weight: float
    zone: str | None
    is_up: bool

    @property
    def remote(self) -> bool: ...

    @property
    def direct(self) -> bool: ...

    @property
    def latency(self) -> float | None: ...


def ring_placer(*, vnodes: int, hash: Hash, seed: int) -> Callable[[Mapping[str, float]], Placer]:
    """A factory of ``HashRing`` placers with these options (validated by the ring)."""
    HashRing([], vnodes=vnodes, hash=hash, seed=seed)  # bad options fail here, at once

    def make(weights: Mapping[str, float]) -> Placer:
        return HashRing(weights, vnodes=vnodes, hash=hash, seed=seed)

    return make


def _no_nodes(*args: Any) -> list[Any]:
    raise EmptyRingError("the cluster has no nodes; add one with cluster.add_node(Node(name))")


class Placement:
    """The placer, the nodes and N of one membership; never changed after it is built."""

    __slots__ = (
        "_zone_ids",
        "_zone_of",
        "by_name",
        "direct",
        "get_items",
        "get_nodes",
        "index",
        "n",
        "node_of",
        "nodes",
        "pending",
        "placer",
        "remote",
        "rneed",
        "weights",
        "wneed",
        "wone",
        "zoned",
    )

    def __init__(
        self,
        members: Sequence[Any],
        replication_factor: int,
        placer: Callable[[Mapping[str, float]], Placer],
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if weights is None:
            weights = {node.name: node.weight for node in members}
        else:  # a layout's weights (a weight change has two: before and after)
            weights = {node.name: float(weights[node.name]) for node in members}
        ring = placer(weights)
        self.weights = weights
        by_name = {node.name: node for node in members}
        self.placer = ring
        self.by_name = by_name
        self.node_of = by_name.__getitem__
        self.nodes = tuple(by_name[name] for name in ring.nodes)
        self.index = {name: i for i, name in enumerate(ring.nodes)}
        self.n = min(replication_factor, len(members))
        self.get_nodes = ring.get_nodes if members else _no_nodes
        # get_items(key, n, nodes): the replicas as Node objects, mapped in C
        self.get_items = ring.get_items if members else _no_nodes
        self.pending: Placement | None = None
        self.rneed = read_needs(self.n)
        self.wneed = write_needs(self.n)
        self.wone = WRITE_ONE
        # Whether any member's store talks to a server: batches then go in
        # slices and calls to several nodes overlap.
        self.remote = any(node.remote for node in members)
        # Whether a driver may call every member's store directly on its
        # per-key fast path (the built-in in-process store; see Node).
        self.direct = bool(members) and all(node.direct for node in members)
        self.zoned = any(node.zone is not None for node in members)
        # A node without a zone is a zone of its own.
        zone_ids: dict[Any, int] = {}
        ids = []
        for node in self.nodes:
            zone = ("node", node.name) if node.zone is None else ("zone", node.zone)
            ids.append(zone_ids.setdefault(zone, len(zone_ids)))
        self._zone_ids = np.array(ids, dtype=np.int32)
        self._zone_of = dict(zip(ring.nodes, ids))

    @property
    def ring(self) -> Placer:
        """The placer (a ``HashRing`` unless another placement was chosen)."""
        return self.placer

    def with_pending(self, pending: Placement) -> Placement:
        """A copy of this placement that also writes to `pending`'s replicas."""
        twin = object.__new__(Placement)
        for slot in Placement.__slots__:
            setattr(twin, slot, getattr(self, slot))
        twin.pending = pending
        return twin

    # ------------------------------------------------------------ one key

    def replica_names(self, kb: bytes) -> list[str]:
        """The names of the key's N replicas, primary first."""
        if not self.zoned:
            return self.get_nodes(kb, self.n)
        n = self.n
        walk = self.get_nodes(kb, len(self.nodes))
        zone_of = self._zone_of
        chosen: list[str] = []
        seen = set()
        for name in walk:
            zone = zone_of[name]
            if zone not in seen:
                seen.add(zone)
                chosen.append(name)
                if len(chosen) == n:
                    return chosen
        for name in walk:
            if name not in chosen:
                chosen.append(name)
                if len(chosen) == n:
                    break
        return chosen

    def replicas(self, kb: bytes) -> list[Any]:
        """The key's N replica Nodes, primary first."""
        return list(map(self.node_of, self.replica_names(kb)))

    def walk(self, kb: bytes) -> list[Any]:
        """Every node in ring-walk order from the key (where substitutes come from)."""
        return list(map(self.node_of, self.get_nodes(kb, len(self.nodes))))

    # --------------------------------------------------------- many keys

    def replicas_many(self, kbs: Sequence[bytes]) -> NDArray[np.int32]:
        """Replicas of every key: int32 array (len(kbs), N) of indices into ``nodes``."""
        if not self.nodes:
            _no_nodes(None)
        n = self.n
        if not self.zoned:
            return self.placer.get_nodes_many(kbs, n)
        total = len(self.nodes)
        # Most rows find their zones within a short walk; only the rest walk the whole ring.
        short = min(total, 4 * n)
        out = self._zone_pick(self.placer.get_nodes_many(kbs, short))
        if short < total:
            zones = self._zone_ids
            wanted = min(n, int(np.unique(zones).size))
            picked = np.sort(zones[out], axis=1)
            distinct = 1 + (picked[:, 1:] != picked[:, :-1]).sum(axis=1)
            redo = np.flatnonzero(distinct < wanted)
            if redo.size:
                sub = [kbs[i] for i in redo.tolist()]
                out[redo] = self._zone_pick(self.placer.get_nodes_many(sub, total))
        return out

    def _zone_pick(self, walks: NDArray[np.int32]) -> NDArray[np.int32]:
        rows, width = walks.shape
        zones = self._zone_ids[walks]
        seen = np.zeros((rows, int(np.max(self._zone_ids)) + 1), dtype=np.bool_)
        first = np.empty((rows, width), dtype=bool)
        r = np.arange(rows)
        for j in range(width):
            z = zones[:, j]
            first[:, j] = ~seen[r, z]
            seen[r, z] = True
        order = np.argsort(np.logical_not(first), axis=1, kind="stable")[:, : self.n]
        return np.ascontiguousarray(np.take_along_axis(walks, order, axis=1))

    def alive(self) -> NDArray[np.bool_]:
        """Up state of every node, as a bool array in ``nodes`` order."""
        return np.fromiter((node.is_up for node in self.nodes), dtype=bool, count=len(self.nodes))
