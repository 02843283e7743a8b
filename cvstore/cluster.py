"""Cluster: the sync driver — a replicated key-value store over a ring of nodes, Dynamo-style.

Each key lives on N = min(replication_factor, nodes) nodes, its preference
list on the ring.  Every write carries a version from the cluster's hybrid
logical clock and the newest version wins; deletes write tombstones.  Each
call picks a consistency level (how many replicas must answer); a level that
cannot be met raises ``UnavailableError``.  Reads repair the replicas they
asked, writes for a down replica go to another node as hints, ``repair()``
brings every replica set up to date, and adding or removing a node streams
exactly the copies that change hands.

Every decision is made by the core (``cvstore.core``): this driver runs its
procedures and makes the store calls they ask for, overlapping the calls of
one step (each request sent before any reply is read), under a lock for
membership changes, with a daemon thread that probes suspected nodes.  The
per-key paths over in-process stores keep a fast path for the usual case
(every replica up, nothing refused) and hand anything else to the core.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import (
    Callable,
    Generator,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    Sequence,
    ValuesView,
)
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from cvstore._driver import (
    DEFAULT_HINT_WINDOW,
    DEFAULT_MAX_VALUE_BYTES,
    DEFAULT_TOMBSTONE_GRACE,
    MISSING,
    WALK_BATCH,
    Progress,
    Settings,
    State,
    batch_items,
    batch_keys,
    batch_values,
    check_batch,
    check_distinct,
    check_joinable,
    check_members,
    check_options,
    check_ttl,
    closed_error,
    expiring,
    get_value,
    progress_to,
    put_value,
    update_items,
)
from cvstore._types import D, Hash, Key, KeyIn, V
from cvstore.core import hints as _hints
from cvstore.core import membership, reads, rebalance, repair, scan, stats, writes
from cvstore.core.batch import IO_BATCH
from cvstore.core.calls import FENCED, Call, Op, Proc
from cvstore.core.health import DEFAULT_MAX_PROBE_INTERVAL, DEFAULT_PROBE_INTERVAL
from cvstore.core.keys import key_bytes, key_out
from cvstore.core.layout import Layout, LayoutError, NodeSpec, first
from cvstore.core.levels import Level, ReadPolicy, check_level
from cvstore.core.placement import Placement
from cvstore.core.rebalance import MembershipReport
from cvstore.core.records import TOMBSTONE, value_of
from cvstore.core.repair import RepairReport
from cvstore.core.stats import ClusterStats
from cvstore.errors import (
    FencedError,
    NodeExistsError,
    NodeNotFoundError,
    StoreError,
)
from cvstore.node import Node
from cvstore.stores.base import AsyncStore, Pending, Store
from cvstore.versions import HybridClock

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

__all__ = ("IO_BATCH", "Cluster")

log = logging.getLogger("cvstore")
T = TypeVar("T")

# Times a call loads a newer layout (or brings a node up to date) and asks again.
_RELOADS = 6


class Cluster(Settings, MutableMapping[Key, V], Generic[V]):
    """Nodes holding N versioned copies of each key, with per-call consistency.

    Parameters
    ----------
    nodes : iterable of Node, optional
        Initial members (their stores are taken as they are, not rebalanced).
    replication_factor : int, default 3
        Copies per key (fewer while the cluster has fewer nodes).
    read_consistency, write_consistency : str, default "quorum"
        Default levels: "one", "quorum" (N//2 + 1), "all", "eventual",
        "strong" (quorum reads and writes).  Each call may override them.
    placement : str, default "ring"
        Who holds a key's copies: a registered placement, "ring" (a
        ``HashRing``) or "rendezvous" (weighted rendezvous hashing).  A shared
        cluster records it in its layout: every client places alike.
    vnodes, hash, seed
        The placement's options (``HashRing``'s; "rendezvous" uses `seed`).
    read_policy : {"random", "primary", "fastest"}, default "random"
        Which replica a single-replica read asks: a random live one, the
        first live one in the preference list, or the one with the lowest
        recent latency.
    hint_window : float, default 3 hours
        Seconds a hint is kept for a down replica; older hints are dropped
        and ``repair()`` brings the replica up to date instead.
    tombstone_grace : float, default 10 days
        Seconds a tombstone is kept at least; ``repair()`` purges older ones
        once every replica of the key is current.  Must be >= hint_window.
    clock : HybridClock, optional
        The version clock (tests pass one with a fake wall clock).
    max_value_bytes : int, default 8 MiB
        The largest value a write takes (a str as its UTF-8, other values as
        the stores' codec encodes them); a larger one raises ValueError before
        anything is sent.  Keys are at most 64 KiB.  Up to 512 MiB (Redis's
        limit per string); raise the RedisStore timeout with it (README).
    shared : bool, optional
        Whether the membership lives on the nodes (a layout every client
        reads, fenced by epochs; see ``docs/membership.md``).  By default it
        does when every node's store is on a server other processes can
        reach (``RedisStore``), and not for in-process stores.  ``False``
        keeps it in this process even over Redis: for a single client only.
    probe_interval, max_probe_interval : float, default 0.1 and 5.0
        A node whose store is unreachable (``StoreError.unreachable``: a
        server down, a timeout) is suspected down: calls skip it and hint
        around it.  A background thread pings it ``probe_interval`` seconds
        later; each failed ping doubles the wait, up to
        ``max_probe_interval``.  When it answers it is up again and gets its
        hints.  No call ever waits for a probe.

    Examples
    --------
    >>> cluster = Cluster(replication_factor=3)
    >>> for name in ("node1", "node2", "node3"):
    ...     report = cluster.add_node(Node(name))
    >>> cluster.put("key1", "value1")
    >>> cluster.get("key1")
    'value1'
    >>> cluster.get_node_for_key("key2").storage["key2"] = "value2"
    >>> cluster.get_node_for_key("key2").storage["key2"]
    'value2'
    >>> sorted(cluster)
    ['key1', 'key2']
    """

    def __init__(
        self,
        nodes: Iterable[Node] = (),
        *,
        replication_factor: int = 3,
        read_consistency: Level = "quorum",
        write_consistency: Level = "quorum",
        vnodes: int = 160,
        hash: Hash = "xxh64",
        seed: int = 0,
        placement: str = "ring",
        read_policy: ReadPolicy = "random",
        hint_window: float = DEFAULT_HINT_WINDOW,
        tombstone_grace: float = DEFAULT_TOMBSTONE_GRACE,
        clock: HybridClock | None = None,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        max_probe_interval: float = DEFAULT_MAX_PROBE_INTERVAL,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        shared: bool | None = None,
    ) -> None:
        if shared is not None and not isinstance(shared, bool):
            raise TypeError(f"shared must be True, False or None, got {shared!r}")
        options = check_options(
            replication_factor=replication_factor,
            read_consistency=read_consistency,
            write_consistency=write_consistency,
            vnodes=vnodes,
            hash=hash,
            seed=seed,
            read_policy=read_policy,
            hint_window=hint_window,
            tombstone_grace=tombstone_grace,
            clock=clock,
            probe_interval=probe_interval,
            max_probe_interval=max_probe_interval,
            max_value_bytes=max_value_bytes,
            placement=placement,
        )
        members = check_members(nodes)
        self._state = state = State(options, members, self)
        self._clock = options.clock
        self._now = options.clock.now
        self._observe = options.clock.observe
        self._grace_ms = int(options.tombstone_grace * 1000)
        self._pending_hints = state.hints.pending  # the same dict: tested on every call
        self._membership = threading.RLock()
        self._prober: _Prober | None = None
        self._prober_lock = threading.Lock()
        self._popping: list[Key] = []  # keys popitem() found in its last scan
        keeps = bool(members) and all(_keeps_layout(node.store) for node in members)
        if shared and not keeps:
            raise ValueError(
                "shared=True needs nodes whose stores keep a layout (Redis stores), "
                f"got {[type(n.store).__name__ for n in members] or 'no nodes'}"
            )
        if keeps and shared is not False:
            # Servers shared with other clients: the membership lives on them.
            self._share(members, options, connect=_connect_like(members))
        # Hints a previous client left in the stores (a Redis server keeps them).
        self._run(_hints.adopt(state.hints, list(state.members.values())))

    # -------------------------------------------- membership on the nodes

    @classmethod
    def create(cls, nodes: Iterable[Node], *, connect: Any = None, **options: Any) -> Cluster[V]:
        """A new cluster whose membership lives on its nodes (the first layout is written).

        Every client that joins later (``Cluster.join``) learns the whole
        cluster from any one node.  Raises LayoutError if a node already
        belongs to a cluster.  `connect` makes the store of a node named by
        the layout (``connect(spec) -> Store``); Redis nodes need none.
        """
        members = check_members(nodes)
        if not members:
            raise ValueError("nodes must name at least one node to create a cluster, got none")
        cluster = cls((), **options)
        cluster._share(
            members, cluster._state.options, connect or _connect_like(members), create=True
        )
        cluster._run(_hints.adopt(cluster._state.hints, members))
        return cluster

    @classmethod
    def join(
        cls,
        seeds: Iterable[str | Store],
        *,
        prefix: str = "cvstore:",
        timeout: float | None = None,
        codec: Any = None,
        connect: Any = None,
        **options: Any,
    ) -> Cluster[V]:
        """Join an existing cluster from one or more of its nodes: the layout they hold says the rest.

        `seeds` are node addresses (``redis://host:port/db`` URLs, read with
        `prefix`, `timeout` and `codec`, and any credentials in the URL, which
        the client keeps for every node) or stores.  The layout with the
        highest epoch among the seeds that answer wins.  Options that shape
        placement (replication factor, placement, vnodes, hash, seed) come from it.
        A single URL or store is one seed.  A layout that names two nodes at
        one address and prefix is refused (LayoutError).
        """
        stores = [_seed_store(seed, prefix, timeout, codec) for seed in _seed_list(seeds)]
        if not stores:
            raise ValueError("seeds must name at least one node of the cluster, got none")
        probe = [Node(f"seed{i}", store=store) for i, store in enumerate(stores)]
        cluster = cls((), **options)
        layout, _ = cluster._run(membership.load(probe))
        if layout is None:
            for seed_store in stores:
                if isinstance(seed_of(seed_store), str):
                    seed_store.close()
            raise LayoutError(
                "no seed answered with a cluster layout; start the cluster with Cluster.create"
            )
        try:
            layout.check_places()  # one server under two names: refused, as add_node does
        except LayoutError:
            for seed_store in stores:
                if isinstance(seed_of(seed_store), str):
                    seed_store.close()
            raise
        state = cluster._state
        state.connect = connect or _connect_like(probe)
        # a seed made from a URL serves the node at that address; an in-process
        # store has no address, and its node is reached with connect()
        by_address = {(_address(st), _prefix(st)): st for st in stores if _address(st)}
        given = {}
        for spec in layout.everyone():
            store: Store | None = by_address.pop((spec.address, spec.prefix), None) if spec.address else None
            if store is not None:
                given[spec.name] = Node(spec.name, weight=spec.weight, zone=spec.zone, store=store)
                if isinstance(seed_of(store), str):
                    state.made.add(spec.name)
        for store in by_address.values():  # a seed that is not a node of the layout
            if isinstance(seed_of(store), str):
                store.close()
        for store in stores:  # an in-process seed the layout reached through connect()
            if not _address(store) and isinstance(seed_of(store), str):
                store.close()
        state.apply_layout(layout, given)
        cluster._run(membership.refresh(state))
        cluster._run(_hints.adopt(state.hints, list(state.members.values())))
        return cluster

    def _share(self, members: list[Node], options: Any, connect: Any, create: bool = False) -> None:
        """Follow the layout `members` hold, or write the first one on them."""
        state = self._state
        state.connect = connect
        self._run(membership.share(state, *_first_layout(members, options), create))

    def _op(self, make: Callable[[], Proc[T]]) -> T:
        """Run the procedure `make()` returns; on a fenced reply, load the layout and run it again."""
        if self._state.closed:
            raise closed_error()
        for attempt in range(_RELOADS):
            try:
                return self._run(make())
            except FencedError as exc:
                if attempt == _RELOADS - 1:
                    raise
                self._fenced(exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fenced(self, exc: FencedError) -> None:
        state = self._state
        members = list(state.members.values())
        self._run(
            membership.recover(
                state,
                exc,
                lambda: membership.share(state, *_first_layout(members, state.options), False),
            )
        )

    @property
    def _place(self) -> Any:
        """The current placement (a core Placement snapshot)."""
        return self._state.placement

    # ------------------------------------------------------------ placement

    def get_node_for_key(self, key: str | bytes) -> Node:
        """The key's primary: the first node of its preference list."""
        return self.get_nodes_for_key(key)[0]

    def get_nodes_for_key(self, key: str | bytes) -> list[Node]:
        """The key's replicas (its preference list), primary first."""
        return self._open().placement.replicas(key_bytes(key))

    # ---------------------------------------------------------- single keys

    # put and get are the shared per-key functions themselves (see _driver):
    # no wrapper frame on the hot path; their slow paths are the hooks below.
    if TYPE_CHECKING:

        def put(
            self,
            key: Key,
            value: V,
            *,
            consistency: Level | None = None,
            ttl: float | None = None,
        ) -> None: ...

        @overload
        def get(
            self, key: Key, default: None = None, *, consistency: Level | None = None
        ) -> V | None: ...
        @overload
        def get(
            self, key: Key, default: V | D, *, consistency: Level | None = None
        ) -> V | D: ...
        def get(self, key: Key, default: Any = None, *, consistency: Level | None = None) -> Any: ...

    else:
        put = put_value
        get = get_value

    def _put_with_core(self, kb: bytes, value: Any, level: Level) -> None:
        state = self._state
        self._op(lambda: writes.put(state, kb, value, level, state.now_ms()))

    def _get_with_core(self, kb: bytes, level: Level, default: Any) -> Any:
        state = self._state
        record = self._op(lambda: reads.get(state, kb, level, state.now_ms()))
        return value_of(record, default, state.now_ms())

    def delete(self, key: Key, *, consistency: Level | None = None) -> None:
        """Delete `key`: write a tombstone, at `consistency`, like a put."""
        self.put(key, TOMBSTONE, consistency=consistency)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- batch

    def put_many(
        self,
        mapping: Mapping[KeyIn, V] | Iterable[tuple[KeyIn, V]],
        *,
        consistency: Level | None = None,
        ttl: float | None = None,
    ) -> None:
        """Store many keys at once: ``put`` for each, with one store call per node.

        Raises UnavailableError before writing anything if any key has too
        few replicas up for the level.  A key given twice (as str and bytes)
        keeps its last value.  `ttl`, as for ``put``, applies to every key.
        """
        self._open()
        kbs, values = batch_items(mapping)
        ttl_ms = check_ttl(ttl)
        level = self._state.write_level if consistency is None else check_level("consistency", consistency)
        if not kbs:
            return
        state = self._state
        check_batch(kbs, values, state)
        values = expiring(values, ttl_ms, state)
        self._op(lambda: writes.put_many(state, kbs, values, level, state.now_ms()))

    def get_many(
        self, keys: Iterable[KeyIn], *, consistency: Level | None = None
    ) -> dict[KeyIn, V]:
        """The values of many keys: ``{key: value}``, keys without a value absent.

        Each key is read as ``get`` would (same level, newest version, read
        repair), with one store call per node.
        """
        self._open()
        keys, kbs = batch_keys(keys)
        level = self._state.read_level if consistency is None else check_level("consistency", consistency)
        if not kbs:
            return {}
        state = self._state
        return batch_values(
            keys, self._op(lambda: reads.get_many(state, kbs, level, state.now_ms())), state
        )

    # ------------------------------------------------------------- mapping

    def __setitem__(self, key: Key, value: V) -> None:
        self.put(key, value)

    def __getitem__(self, key: Key) -> V:
        value = self.get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __delitem__(self, key: Key) -> None:
        if self.get(key, MISSING) is MISSING:
            raise KeyError(key)
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        # a key that is not str/bytes gets get()'s TypeError, as ``[] in {}`` does
        return self.get(key, MISSING) is not MISSING  # type: ignore[call-overload]

    def _live_keys(self) -> list[bytes]:
        if self._state.closed:
            raise closed_error()
        state = self._state
        if self._pending_hints:  # a scan meets every node: hand over what it can first
            self._op(
                lambda: _hints.deliver_found(
                    state.hints, state.placement, state.placement.nodes, state.now_ms()
                )
            )
        return self._op(lambda: scan.live_keys(state.placement, state.now_ms()))

    def __iter__(self) -> Iterator[Key]:
        """Every live key on the nodes that are up (str when it is UTF-8, else bytes).

        A snapshot taken when iteration starts; O(records).
        """
        return iter([key_out(kb) for kb in self._live_keys()])

    def __len__(self) -> int:
        """Distinct live keys on the nodes that are up; O(records)."""
        return len(self._live_keys())

    def keys(self) -> KeysView[Key]:
        """A view of the live keys (each use scans the nodes, as ``iter(cluster)`` does)."""
        self._open()
        return KeysView(self)

    def items(self) -> ItemsView[Key, V]:
        """A view of (key, value) pairs, read in batches of 10,000 keys (``get_many``)."""
        self._open()
        return _Items(self)

    def values(self) -> ValuesView[V]:
        """A view of the values, read in batches of 10,000 keys (``get_many``)."""
        self._open()
        return _Values(self)

    def _walk(self) -> Iterator[tuple[Key, V]]:
        keys = [key_out(kb) for kb in self._live_keys()]
        for i in range(0, len(keys), WALK_BATCH):
            chunk = keys[i : i + WALK_BATCH]
            found = self.get_many(chunk)
            for key in chunk:
                if key in found:  # deleted since the scan: left out, as a dict view would
                    yield key, found[key]

    @overload
    def update(self, other: SupportsKeysAndGetItem[KeyIn, V], /, **kwargs: V) -> None: ...
    @overload
    def update(self, other: Iterable[tuple[KeyIn, V]], /, **kwargs: V) -> None: ...
    @overload
    def update(self, /, **kwargs: V) -> None: ...
    def update(self, /, *args: Any, **kwargs: Any) -> None:
        """``dict.update``: the pairs of a mapping, an iterable of pairs and keywords, in one ``put_many``."""
        self._open()
        kbs, values = update_items(args, kwargs)
        if kbs:
            state = self._state
            check_batch(kbs, values, state)
            level = self._state.write_level
            self._op(lambda: writes.put_many(state, kbs, values, level, state.now_ms()))

    @overload
    def setdefault(self: Cluster[T | None], key: Key, default: None = None) -> T | None: ...
    @overload
    def setdefault(self, key: Key, default: V) -> V: ...
    def setdefault(self, key: Key, default: Any = None) -> Any:
        """The value of `key`; if it has none, `default` is stored and returned.

        A read then a write, not one atomic step: two clients may both store
        their default (last-write-wins keeps one).
        """
        value = self.get(key, MISSING)
        if value is MISSING:
            self.put(key, default)
            return default
        return value

    @overload
    def pop(self, key: Key) -> V: ...
    @overload
    def pop(self, key: Key, default: V) -> V: ...
    @overload
    def pop(self, key: Key, default: D) -> V | D: ...
    def pop(self, key: Key, default: Any = MISSING) -> Any:
        """Remove `key` and return its value; `default` (or KeyError) if it has none."""
        value = self.get(key, MISSING)
        if value is MISSING:
            if default is MISSING:
                raise KeyError(key)
            return default
        self.delete(key)
        return value

    def popitem(self) -> tuple[Key, V]:
        """Remove and return some (key, value) pair; KeyError if the cluster is empty.

        Keys come from one scan kept between calls (a scan per pop would read
        every node every time); a key found gone meanwhile is skipped.
        """
        for _ in range(2):  # the kept keys, then one fresh scan
            while self._popping:
                key = self._popping.pop()
                value = self.get(key, MISSING)
                if value is not MISSING:
                    self.delete(key)
                    return key, value
            self._popping = [key_out(kb) for kb in self._live_keys()]
        raise KeyError("popitem(): the cluster is empty")

    def clear(self) -> None:
        """Delete every live key: one scan of keys (no values read), then tombstones in batches."""
        state = self._state
        kbs = self._live_keys()
        level = self._state.write_level
        for i in range(0, len(kbs), WALK_BATCH):
            chunk = kbs[i : i + WALK_BATCH]
            tombs = [TOMBSTONE] * len(chunk)
            self._op(lambda: writes.put_many(state, chunk, tombs, level, state.now_ms()))
        self._popping = []

    def __repr__(self) -> str:
        p = self._state.placement
        down = sum(not node.is_up for node in p.nodes)
        return (
            f"Cluster(nodes={len(p.nodes)}, down={down}, replication_factor={self._state.replication_factor}, "
            f"read={self._state.read_level!r}, write={self._state.write_level!r})"
        )

    # ---------------------------------------------------------- membership

    def add_node(self, node: Node, *, progress: Progress | None = None) -> MembershipReport:
        """Add `node` and stream to it exactly the copies it now replicates.

        Copies are dropped from nodes that stop replicating a key only after
        they reached their new node.  The node must be up and belong to no
        other cluster.
        """
        self._open()
        progress_to(progress)
        if not isinstance(node, Node):
            raise TypeError(
                f"node must be a Node, got {type(node).__name__}; make one with Node(name)"
            )
        state = self._state
        with self._membership:
            old = state.placement
            if node.name in state.members:
                raise NodeExistsError(f"node {node.name!r} is already in the cluster")
            check_joinable(node)
            check_distinct(node, state.members.values())
            if not node.is_up:
                raise ValueError(f"node {node.name!r} is down; recover() it before adding it")
            if state.layout is not None:
                spec = _spec(node)
                return self._shared_change(
                    lambda layout: layout.begin((*layout.nodes, spec), "add", node.name),
                    joining={node.name: node},
                )
            self._run(membership.empty([node]))  # old copies could bring deleted keys back
            if self._pending_hints:  # stream from replicas that are as whole as they can be
                self._run(_hints.deliver_found(state.hints, old, old.nodes, state.now_ms()))
            new = state.placement_of(list(old.nodes) + [node])
            state.join(node)
            started = time.perf_counter()
            try:
                report = self._run(
                    rebalance.rebalance(state, old, new, action="add", node=node.name)
                )
            except BaseException:
                state.leave(node)
                raise
            report = dataclasses.replace(report, seconds=time.perf_counter() - started)
            log.info("%r", report)
            return report

    def remove_node(
        self, node: Node | str, *, progress: Progress | None = None
    ) -> MembershipReport:
        """Decommission a node: stream its copies to their new replicas, then let it go.

        A down node can be removed too: its keys are streamed from their
        other replicas.  The last node cannot be removed while it holds data.
        """
        self._open()
        progress_to(progress)
        if isinstance(node, Node):
            name = node.name
        elif isinstance(node, str):
            name = node
        else:
            raise TypeError(f"node must be a Node or a node name, got {type(node).__name__}")
        state = self._state
        with self._membership:
            old = state.placement
            member = old.by_name.get(name)
            if member is None or (isinstance(node, Node) and node is not member):
                raise NodeNotFoundError(f"node {name!r} is not in the cluster")
            if state.layout is not None:
                if len(state.layout.nodes) == 1:
                    raise ValueError(f"cannot remove {name!r}: it is the cluster's last node")
                report = self._shared_change(
                    lambda layout: layout.begin(
                        tuple(s for s in layout.nodes if s.name != name), "remove", name
                    ),
                    removing=name,
                )
                self._after_removal(member, state.now_ms())
                return report
            remaining = [n for n in old.nodes if n is not member]
            if not remaining:
                (held,) = self._execute([Call(member, Op.COUNT)])
                if isinstance(held, StoreError) or held:
                    raise ValueError(
                        f"cannot remove {name!r}: it is the cluster's last node and holds data "
                        "that would be lost; add another node first"
                    )
            now_ms = state.now_ms()
            if self._pending_hints:
                self._run(_hints.deliver_found(state.hints, old, old.nodes, now_ms))
            new = state.placement_of(remaining)
            started = time.perf_counter()
            report = self._run(rebalance.rebalance(state, old, new, action="remove", node=name))
            self._after_removal(member, now_ms)
            state.leave(member)
            report = dataclasses.replace(report, seconds=time.perf_counter() - started)
            log.info("%r", report)
            return report

    def _after_removal(self, member: Node, now_ms: int) -> None:
        """Hints the removed node held go to a member; those meant for it, to the keys' replicas."""
        state = self._state
        new = state.placement
        self._op(lambda: _hints.move(state.hints, state.placement, member))
        state.hints.forget_node(member.name)
        if new.nodes:
            self._op(lambda: _hints.deliver(state.hints, state.placement, now_ms))

    def set_weight(
        self, node: Node | str, weight: float, *, progress: Progress | None = None
    ) -> MembershipReport:
        """Give a member a new weight (relative capacity) and stream the copies that move.

        As ``add_node`` and ``remove_node``: copies reach their new replicas
        before any is dropped.
        """
        self._open()
        progress_to(progress)
        name = node.name if isinstance(node, Node) else node
        if not isinstance(name, str):
            raise TypeError(f"node must be a Node or a node name, got {type(node).__name__}")
        probe = Node(name, weight=weight)  # checks the weight as Node does
        state = self._state
        with self._membership:
            member = state.placement.by_name.get(name)
            if member is None:
                raise NodeNotFoundError(f"node {name!r} is not in the cluster")
            if state.layout is not None:
                return self._shared_change(
                    lambda layout: layout.begin(
                        tuple(
                            dataclasses.replace(s, weight=probe.weight) if s.name == name else s
                            for s in layout.nodes
                        ),
                        "weight",
                        name,
                    )
                )
            old = state.placement
            weights = {**old.weights, name: probe.weight}
            new = Placement(
                list(old.nodes), self._state.replication_factor, state.options.placer, weights
            )
            started = time.perf_counter()
            report = self._run(rebalance.rebalance(state, old, new, action="weight", node=name))
            member.weight = probe.weight
            report = dataclasses.replace(report, seconds=time.perf_counter() - started)
            log.info("%r", report)
            return report

    def finish_change(
        self, *, abort: bool = False, progress: Progress | None = None
    ) -> MembershipReport | None:
        """Finish a membership change a client left half done (it died, or lost its connection).

        Only for clusters whose membership lives on the nodes.  Carries the
        change forward (streams the copies again, commits, drops), or with
        ``abort=True`` back (the membership before the change; the nodes that
        were joining are cleared of the copies streamed to them, where they
        answer).  Returns None if
        no change is under way.  See the README for when to use which.
        """
        state = self._open()
        progress_to(progress)
        if state.layout is None:
            raise ValueError("finish_change is for clusters whose membership lives on the nodes")
        with self._membership:
            self._run(membership.refresh(state))
            layout = state.layout
            if layout is None or not layout.changing:
                return None
            started = time.perf_counter()
            report = self._run(membership.finish(state, abort))
            report = dataclasses.replace(report, seconds=time.perf_counter() - started)
            log.info("%r", report)
            return report

    def _shared_change(
        self,
        transition: Any,
        joining: dict[str, Node] | None = None,
        removing: str | None = None,
    ) -> MembershipReport:
        """Change a membership kept on the nodes (see ``core.membership.change``)."""
        started = time.perf_counter()
        report = self._run(membership.start(self._state, transition, joining or {}, removing))
        report = dataclasses.replace(report, seconds=time.perf_counter() - started)
        log.info("%r", report)
        return report

    # ---------------------------------------------------------- maintenance

    def repair(self, *, progress: Progress | None = None) -> RepairReport:
        """Anti-entropy: make every replica set whole and current.

        Delivers hints, writes each key's newest copy to replicas that lack
        it (or hold bytes that are not a record), removes stray copies, and
        purges tombstones older than ``tombstone_grace`` once all of the
        key's replicas are current.  Keys with a replica down are completed
        as far as possible.
        """
        self._open()
        progress_to(progress)
        self.probe()
        state = self._state
        with self._membership:
            nodes = state.placement.nodes
            before = sum(int(n.store.stats().get("unreadable", 0)) for n in nodes)
            started = time.perf_counter()
            report = self._op(lambda: repair.repair(state, state.now_ms(), self._grace_ms))
            after = sum(int(n.store.stats().get("unreadable", 0)) for n in nodes)
            report = dataclasses.replace(
                report, seconds=time.perf_counter() - started, unreadable=after - before
            )
        log.info(
            "repair: %d keys, %d copies repaired, %d strays removed, %d purged, "
            "%d hints delivered, skipped %s",
            report.keys, report.repaired, report.strays_removed, report.purged,
            report.hints_delivered, list(report.skipped) or "none",
        )  # fmt: skip
        return report

    def deliver_hints(self) -> int:
        """Hand waiting hints to their owners that are up; returns how many were handed over.

        Suspected nodes are probed first, so a node that is back gets its hints.
        """
        self._open()
        self.probe()
        state = self._state
        with self._membership:
            return self._op(lambda: _hints.deliver(state.hints, state.placement, state.now_ms()))

    def stats(self) -> ClusterStats:
        """Keys per node, share against weight, imbalance, hints and error counters.

        ``per_node`` adds each member's up/suspected state, the store failures
        the cluster met, and the store's own call counts and latency.
        """
        state = self._open()
        p = state.placement
        keys_per_node, hints_pending = self._op(
            lambda: stats.gather(state.placement, state.now_ms())
        )
        p = state.placement
        per_node: dict[str, dict[str, Any]] = {}
        for node in p.nodes:
            latency = node.latency
            row: dict[str, Any] = {
                "up": node.is_up,
                "suspected": node.suspected,
                "failed": node._failed,
                "latency_ms": None if latency is None else latency * 1000.0,
            }
            row.update(state.health_report(node))
            row.update(node.store.stats())
            per_node[node.name] = row
        with state.lock:
            counters = dict(state.counters)
        return stats.make_stats(p, keys_per_node, hints_pending, state.hints, counters, per_node)

    # ------------------------------------------------------- node failures

    def probe(self) -> list[str]:
        """Ping every suspected node now; returns the names of those back up.

        Their hints are handed over.  A background thread also probes them,
        with backoff (see ``probe_interval``); this is for operators and tests.
        """
        state = self._open()
        with state.lock:
            suspected = [entry.node for entry in state.schedule.suspects.values()]
        back = [node for node in suspected if self._probe(node)]
        self._welcome(back)
        return sorted(node.name for node in back)

    def _probe(self, node: Node) -> bool:
        try:
            node.store.ping()
        except StoreError as exc:
            return self._state.probed(node, exc)
        return self._state.probed(node, None)

    def _welcome(self, back: Sequence[Node]) -> int:
        """Hand the hints waiting for nodes that are back to them."""
        state = self._state
        p = state.placement
        names = [node.name for node in back if node.is_up and node.name in p.by_name]
        if not names:
            return 0
        return self._op(lambda: _hints.deliver(state.hints, state.placement, state.now_ms(), names))

    @property
    def suspected(self) -> tuple[str, ...]:
        """Names of the nodes suspected down (their store was unreachable), in name order."""
        with self._state.lock:
            return tuple(sorted(self._state.schedule.suspects))

    # ------------------------------------------------------------- running

    def _run(self, proc: Generator[Sequence[Call], Sequence[Any], T]) -> T:
        """Run a core procedure to its result, making the store calls it asks for."""
        send = proc.send
        try:
            calls = send(None)  # type: ignore[arg-type]
            while True:
                try:
                    results = self._execute(calls)
                except BaseException:
                    # Close it here, in this thread: its locks are released by
                    # the thread that took them, not by the garbage collector.
                    proc.close()
                    raise
                calls = send(results)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _execute(self, calls: Sequence[Call]) -> list[Any]:
        """Make `calls`; each one's result, or the StoreError it raised.

        Calls to remote stores overlap: each request is sent before any
        reply is read, so the servers work at the same time.  Every reply is
        read even if one raises something other than a StoreError (a codec
        error): no connection is left checked out.  Then the failure policy:
        a node whose store was unreachable is suspected down.
        """
        if not calls:
            return []
        epoch = self._state.epoch
        if len(calls) > 1 and any(call.node.store.remote for call in calls) and not calls[0].timed:
            pendings: list[Pending[Any]] = []
            error: BaseException | None = None
            for call in calls:
                try:
                    pendings.append(_send(call, epoch))
                except BaseException as exc:
                    error = exc
                    break
            results = []
            for pending in pendings:
                try:
                    results.append(pending.result())
                except (StoreError, FencedError) as exc:
                    results.append(exc)
                except BaseException as exc:
                    error = error or exc
                    results.append(None)
            if error is not None:
                raise error
        else:
            results = [_call(call, epoch) for call in calls]
        refused: FencedError | None = None
        for i, (call, result) in enumerate(zip(calls, results)):
            if isinstance(result, StoreError):
                if self._state.failed(call.node, result):
                    self._start_prober()
            elif isinstance(result, FencedError):
                failure = self._state.fenced_failure(call.node, result)
                if failure is None:
                    refused = refused or result
                else:
                    results[i] = failure
        if refused is not None:
            raise refused  # _op loads the newer layout (or brings the node up) and asks again
        return results

    def __enter__(self) -> Cluster[V]:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_prober(self) -> None:
        with self._prober_lock:
            if self._state.closed:
                return
            if self._prober is None or not self._prober.is_alive():
                self._prober = _Prober(self)
                self._prober.start()
            else:
                self._prober.wake()

    def close(self) -> None:
        """Stop the prober thread and close the stores the cluster made; later calls raise.

        Stores the cluster made itself (for nodes a layout named, or joined by
        URL) are closed; stores you passed in (``Node(..., store=...)``) stay
        open: they are yours.  Calls after ``close()`` raise
        ClusterClosedError; closing twice is fine.
        """
        with self._prober_lock:
            self._state.closed = True
            prober, self._prober = self._prober, None
        if prober is not None:
            prober.stop()
        state = self._state
        for name in sorted(state.made):
            node = state.members.get(name)
            if node is not None:
                node.store.close()
        state.made.clear()


def _args(call: Call, epoch: int) -> tuple[Any, ...]:
    """A call's arguments, with the client's layout epoch where the node checks it."""
    if epoch and call.op in FENCED:
        if call.op is Op.GET:
            return ([call.args[0]], epoch)
        return (*call.args, epoch)
    return call.args


def _send(call: Call, epoch: int) -> Pending[Any]:
    """Start one call: remote stores send their request now."""
    store = call.node.store
    op = call.op
    args = _args(call, epoch)
    if op is Op.GET_MANY:
        return store.send_get_many(*args)
    if op is Op.WRITE_MANY:
        return store.send_write_many(*args)
    if op is Op.GET:
        pending = store.send_get_many(*args) if epoch else store.send_get_many([call.args[0]])
        return Pending(lambda: pending.result()[0])
    return Pending.now(getattr(store, op.value), *args)


def _call(call: Call, epoch: int) -> Any:
    """Make one call now; its result or the StoreError it raised (timed if asked)."""
    store = call.node.store
    args = _args(call, epoch)
    if call.op is Op.GET and epoch:
        method: Any = lambda *a: store.get_many(*a)[0]
    else:
        method = getattr(store, call.op.value)
    try:
        if call.timed:
            started = time.perf_counter()
            result = method(*args)
            keys = len(call.args[0]) if call.op is Op.GET_MANY else 1
            call.node._observe_latency((time.perf_counter() - started) / max(1, keys))
            return result
        return method(*args)
    except (StoreError, FencedError) as exc:
        return exc


def _keeps_layout(store: Store) -> bool:
    """Whether a store is on a server other clients share and can hold a layout (Redis)."""
    return store.remote and store.keeps_layout


def _spec(node: Node) -> NodeSpec:
    store = node.store
    return NodeSpec(node.name, node.weight, node.zone, _address(store), _prefix(store))


def _address(store: Store) -> str:
    return store.address


def _prefix(store: Store) -> str:
    prefix = store.prefix
    return prefix.decode() if isinstance(prefix, bytes) else str(prefix)


def _first_layout(members: Sequence[Node], options: Any) -> tuple[dict[str, Node], Any, int]:
    """The `given` nodes, the maker of a new cluster's first layout, the replication factor."""
    given = {node.name: node for node in members}

    def make() -> Layout:
        specs = [_spec(node) for node in members]
        return first(
            specs, options.replication_factor, placement=options.placement, **options.ring_args
        )

    return given, make, options.replication_factor


def _connect_like(members: Sequence[Node]) -> Any:
    """How to reach a node a layout names: a store like the given ones (Redis) or none."""
    model = next((n.store for n in members if n.store.addressable), None)
    if model is None:
        return None
    return lambda spec: model.sibling(spec.address, spec.prefix)


def seed_of(store: Store) -> Any:
    """What a seed was given as: the URL of a store made from one, else the store."""
    return store if store.url is None else store.url


def _seed_list(seeds: Any) -> list[Any]:
    """The seeds of ``join``: an iterable of URLs or stores, or a single one."""
    if isinstance(seeds, (str, Store, AsyncStore)):
        return [seeds]
    if isinstance(seeds, (bytes, bytearray)) or not isinstance(seeds, Iterable):
        raise TypeError(
            f"seeds must be a node URL, a store, or an iterable of them, got {type(seeds).__name__}"
        )
    return list(seeds)


def _seed_store(seed: Any, prefix: str, timeout: Any, codec: Any) -> Store:
    if isinstance(seed, Store):
        return seed
    if isinstance(seed, str):
        from cvstore.stores import open_url

        store = open_url(seed, prefix=prefix, timeout=timeout, codec=codec)
        return store  # type: ignore[return-value]
    raise TypeError(f"seeds must be node URLs or stores, got {type(seed).__name__}")


class _Prober(threading.Thread):
    """Probes a cluster's suspected nodes on their schedule, off every caller's path.

    Runs while there are suspects and stops by itself when none is left (a
    new suspicion starts a new one) or when the cluster is closed.
    """

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(name="cvstore-prober", daemon=True)
        self._cluster = cluster
        self._wakeup = threading.Condition()
        self._stopping = False

    def wake(self) -> None:
        with self._wakeup:
            self._wakeup.notify()

    def stop(self) -> None:
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self is not threading.current_thread():
            self.join()

    def run(self) -> None:
        cluster = self._cluster
        state = cluster._state
        while True:
            with state.lock:
                due_at = state.schedule.next_due()
                due = state.schedule.due(time.monotonic())
            if due_at is None:
                with cluster._prober_lock, state.lock:
                    if state.schedule.next_due() is None:
                        if cluster._prober is self:
                            cluster._prober = None
                        return
                continue
            if not due:
                with self._wakeup:
                    if self._stopping:
                        return
                    self._wakeup.wait(max(0.0, due_at - time.monotonic()))
                    if self._stopping:
                        return
                continue
            back = [node for node in due if cluster._probe(node)]
            if self._stopping:
                return
            if back:
                try:
                    cluster._welcome(back)
                except Exception:  # the next call or deliver_hints() hands them over
                    log.exception("handing hints to %s failed", [n.name for n in back])


class _Items(ItemsView[Key, V]):
    """Items read in batches: one scan for the keys, then ``get_many`` of 10,000 at a time."""

    _mapping: Cluster[V]

    def __iter__(self) -> Iterator[tuple[Key, V]]:
        return self._mapping._walk()


class _Values(ValuesView[V]):
    """Values read in batches (see ``_Items``)."""

    _mapping: Cluster[V]

    def __iter__(self) -> Iterator[V]:
        return (value for _, value in self._mapping._walk())
