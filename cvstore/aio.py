"""AsyncCluster: the asyncio driver — the same cluster as ``Cluster``, for asyncio services.

Every decision comes from the core (``cvstore.core``), the same procedures
the sync ``Cluster`` runs; this driver only does their I/O with asyncio:

- the calls of one step go out concurrently (Redis nodes through
  ``AsyncRedisStore``; in-process stores are called directly, no thread hop);
- a single-key write returns as soon as its level is met, and the replicas
  still answering finish in the background, where a late failure is still
  hinted;
- every request has the store's timeout, and a suspected node is probed by
  a background task, never in a caller's call;
- cancelling a call cancels its requests: it leaves what an ordinary failed
  call may leave (a write applied on some replicas, which read repair and
  ``repair()`` settle), and no connection with a reply unread.

An AsyncCluster belongs to one event loop.  Use it as ``async with
AsyncCluster(...) as cluster`` (or call ``await cluster.open()`` and
``await cluster.close()``): opening reads the layout from the nodes and
adopts the hints earlier clients left, and closing stops the background
tasks and closes the stores the cluster made itself.

Examples
--------
>>> import asyncio
>>> from cvstore import AsyncCluster, Node
>>> async def main():
...     async with AsyncCluster([Node(f"n{i}") for i in range(3)]) as cluster:
...         await cluster.put("k", "v")
...         return await cluster.get("k")
>>> asyncio.run(main())
'v'
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
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
from cvstore.cluster import (
    _RELOADS,
    _address,
    _args,
    _call,
    _connect_like,
    _first_layout,
    _prefix,
    _seed_list,
    _spec,
    seed_of,
)
from cvstore.core import hints as _hints
from cvstore.core import membership, reads, rebalance, repair, scan, stats, writes
from cvstore.core.calls import PENDING, Call, Op, Proc
from cvstore.core.health import DEFAULT_MAX_PROBE_INTERVAL, DEFAULT_PROBE_INTERVAL
from cvstore.core.keys import key_bytes, key_out
from cvstore.core.layout import LayoutError
from cvstore.core.levels import Level, ReadPolicy, check_level
from cvstore.core.placement import Placement
from cvstore.core.rebalance import MembershipReport
from cvstore.core.records import TOMBSTONE, value_of
from cvstore.core.repair import RepairReport
from cvstore.core.stats import ClusterStats
from cvstore.errors import FencedError, NodeExistsError, NodeNotFoundError, StoreError
from cvstore.node import Node
from cvstore.stores.base import AsyncStore, Store
from cvstore.versions import HybridClock

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

__all__ = ("AsyncCluster",)

log = logging.getLogger("cvstore")
T = TypeVar("T")

class _Later(tuple):  # type: ignore[type-arg]
    """A per-key call's arguments for the core (not a value: no caller can hold one)."""


# Seconds close() waits for writes still finishing in the background.
_CLOSE_WAIT = 5.0


class AsyncCluster(Settings, Generic[V]):
    """Nodes holding N versioned copies of each key, with per-call consistency, for asyncio.

    Takes the options of ``Cluster`` (see there); its calls are coroutines.
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
        keeps = bool(members) and all(_keeps_layout(node.store) for node in members)
        if shared and not keeps:
            raise ValueError(
                "shared=True needs nodes whose stores keep a layout (AsyncRedisStore), "
                f"got {[type(n.store).__name__ for n in members] or 'no nodes'}"
            )
        # One event loop, one task at a time between awaits: the core's locks are no-ops.
        self._state = State(options, members, self, lock=contextlib.nullcontext)
        self._grace_ms = int(options.tombstone_grace * 1000)
        self._share_at_open = members if keeps and shared is not False else None
        self._opened = False
        self._membership = asyncio.Lock()
        self._prober: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._popping: list[Key] = []  # keys popitem() found in its last scan
        self._state.retire = self._retire

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> AsyncCluster[V]:
        """Read the layout from the nodes (or write the first one) and adopt waiting hints."""
        if self._state.closed:
            raise closed_error()
        if not self._opened:
            self._opened = True
            members = self._share_at_open
            if members is not None:
                await self._share(members, _connect_like(members))
            state = self._state
            await self._run(_hints.adopt(state.hints, list(state.members.values())))
        return self

    async def __aenter__(self) -> AsyncCluster[V]:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the prober, let writes finishing in the background end, close the stores it made.

        Stores you passed in stay open.  Closing twice is fine.
        """
        if self._state.closed:
            return
        self._state.closed = True
        if self._background:
            await asyncio.wait(set(self._background), timeout=_CLOSE_WAIT)
        prober, self._prober = self._prober, None
        if prober is not None:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
        state = self._state
        for name in sorted(state.made):
            node = state.members.get(name)
            if node is not None:
                await _close_store(node.store)
        state.made.clear()

    async def _ready(self) -> None:
        if self._state.closed:
            raise closed_error()
        if not self._opened:
            await self.open()

    # -------------------------------------------- membership on the nodes

    @classmethod
    async def create(
        cls, nodes: Iterable[Node], *, connect: Any = None, **options: Any
    ) -> AsyncCluster[V]:
        """A new cluster whose membership lives on its nodes (see ``Cluster.create``)."""
        members = check_members(nodes)
        if not members:
            raise ValueError("nodes must name at least one node to create a cluster, got none")
        cluster = cls((), **options)
        cluster._opened = True
        await cluster._share(members, connect or _connect_like(members), create=True)
        await cluster._run(_hints.adopt(cluster._state.hints, members))
        return cluster

    @classmethod
    async def join(
        cls,
        seeds: Iterable[str | Store | AsyncStore],
        *,
        prefix: str = "cvstore:",
        timeout: float | None = None,
        codec: Any = None,
        connect: Any = None,
        **options: Any,
    ) -> AsyncCluster[V]:
        """Join an existing cluster from one or more of its nodes (see ``Cluster.join``)."""
        stores = [_seed_store(seed, prefix, timeout, codec) for seed in _seed_list(seeds)]
        if not stores:
            raise ValueError("seeds must name at least one node of the cluster, got none")
        probe = [Node(f"seed{i}", store=store) for i, store in enumerate(stores)]  # type: ignore[arg-type]
        cluster = cls((), **options)
        cluster._opened = True
        layout, _ = await cluster._run(membership.load(probe))
        owned = [store for store in stores if isinstance(seed_of(store), str)]
        if layout is None:
            for store in owned:
                await _close_store(store)
            raise LayoutError(
                "no seed answered with a cluster layout; start the cluster with AsyncCluster.create"
            )
        try:
            layout.check_places()  # one server under two names: refused, as add_node does
        except LayoutError:
            for store in owned:
                await _close_store(store)
            raise
        state = cluster._state
        state.connect = connect or _connect_like(probe)
        by_address = {(_address(st), _prefix(st)): st for st in stores if _address(st)}
        given = {}
        for spec in layout.everyone():
            store = by_address.pop((spec.address, spec.prefix), None) if spec.address else None
            if store is not None:
                given[spec.name] = Node(spec.name, weight=spec.weight, zone=spec.zone, store=store)
                if store in owned:
                    state.made.add(spec.name)
        for store in owned:
            if store in by_address.values() or not _address(store):
                await _close_store(store)
        state.apply_layout(layout, given)
        await cluster._run(membership.refresh(state))
        await cluster._run(_hints.adopt(state.hints, list(state.members.values())))
        return cluster

    async def _share(self, members: list[Node], connect: Any, create: bool = False) -> None:
        state = self._state
        state.connect = connect
        await self._run(membership.share(state, *_first_layout(members, state.options), create))

    # ------------------------------------------------------------ placement

    def get_node_for_key(self, key: Key) -> Node:
        """The key's primary: the first node of its preference list."""
        return self.get_nodes_for_key(key)[0]

    def get_nodes_for_key(self, key: Key) -> list[Node]:
        """The key's replicas (its preference list), primary first."""
        return self._open().placement.replicas(key_bytes(key))

    @property
    def suspected(self) -> tuple[str, ...]:
        """Names of the nodes suspected down (their store was unreachable), in name order."""
        return tuple(sorted(self._state.schedule.suspects))

    def __repr__(self) -> str:
        p = self._state.placement
        down = sum(not node.is_up for node in p.nodes)
        return (
            f"AsyncCluster(nodes={len(p.nodes)}, down={down}, "
            f"replication_factor={self.replication_factor}, read={self._state.read_level!r}, "
            f"write={self._state.write_level!r})"
        )

    # ---------------------------------------------------------- single keys

    async def put(
        self,
        key: Key,
        value: V,
        *,
        consistency: Level | None = None,
        ttl: float | None = None,
    ) -> None:
        """Store `value` under `key` on its replicas (see ``Cluster.put``).

        Returns once the level is met; replicas still answering finish in
        the background.
        """
        await self._ready()
        later = put_value(self, key, value, consistency=consistency, ttl=ttl)
        if type(later) is _Later:  # the core decides: run its procedure here
            state = self._state
            kb, value, level = later
            await self._op(lambda: writes.put(state, kb, value, level, state.now_ms()))

    async def delete(self, key: Key, *, consistency: Level | None = None) -> None:
        """Delete `key`: write a tombstone, at `consistency`, like a put."""
        await self.put(key, TOMBSTONE, consistency=consistency)

    @overload
    async def get(
        self, key: Key, default: None = None, *, consistency: Level | None = None
    ) -> V | None: ...
    @overload
    async def get(self, key: Key, default: V | D, *, consistency: Level | None = None) -> V | D: ...
    async def get(self, key: Key, default: Any = None, *, consistency: Level | None = None) -> Any:
        """The value of `key`, or `default` if it has none (see ``Cluster.get``)."""
        await self._ready()
        value = get_value(self, key, default, consistency=consistency)
        if type(value) is not _Later:
            return value
        state = self._state
        kb, level, default = value
        record = await self._op(lambda: reads.get(state, kb, level, state.now_ms()))
        return value_of(record, default, state.now_ms())

    # The per-key functions' slow paths (see _driver): what the core must run,
    # handed back to put() and get(), which await it.
    def _put_with_core(self, kb: bytes, value: Any, level: Level) -> _Later:
        return _Later((kb, value, level))

    def _get_with_core(self, kb: bytes, level: Level, default: Any) -> _Later:
        return _Later((kb, level, default))

    async def contains(self, key: Key) -> bool:
        """Whether `key` has a value (``key in cluster`` of the sync driver)."""
        return await self.get(key, MISSING) is not MISSING

    # ---------------------------------------------------------------- batch

    async def put_many(
        self,
        mapping: Mapping[KeyIn, V] | Iterable[tuple[KeyIn, V]],
        *,
        consistency: Level | None = None,
        ttl: float | None = None,
    ) -> None:
        """Store many keys at once, one store call per node (see ``Cluster.put_many``)."""
        self._open()
        kbs, values = batch_items(mapping)
        ttl_ms = check_ttl(ttl)
        level = self._state.write_level if consistency is None else check_level("consistency", consistency)
        if not kbs:
            return
        await self._ready()
        state = self._state
        check_batch(kbs, values, state)
        values = expiring(values, ttl_ms, state)
        await self._op(lambda: writes.put_many(state, kbs, values, level, state.now_ms()))

    async def get_many(
        self, keys: Iterable[KeyIn], *, consistency: Level | None = None
    ) -> dict[KeyIn, V]:
        """The values of many keys: ``{key: value}``, keys without a value absent."""
        self._open()
        keys, kbs = batch_keys(keys)
        level = self._state.read_level if consistency is None else check_level("consistency", consistency)
        if not kbs:
            return {}
        await self._ready()
        state = self._state
        records = await self._op(lambda: reads.get_many(state, kbs, level, state.now_ms()))
        return batch_values(keys, records, state)

    # ------------------------------------------------------------- scanning

    async def _live_keys(self) -> list[bytes]:
        await self._ready()
        state = self._state
        if state.hints.pending:
            await self._op(
                lambda: _hints.deliver_found(
                    state.hints, state.placement, state.placement.nodes, state.now_ms()
                )
            )
        return await self._op(lambda: scan.live_keys(state.placement, state.now_ms()))

    async def keys(self) -> list[Key]:
        """Every live key on the nodes that are up (str when it is UTF-8, else bytes)."""
        return [key_out(kb) for kb in await self._live_keys()]

    def __aiter__(self) -> AsyncIterator[Key]:
        """``async for key in cluster``: a snapshot of the live keys when iteration starts."""
        self._open()
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Key]:
        for key in await self.keys():
            yield key

    async def count(self) -> int:
        """Distinct live keys on the nodes that are up (``len(cluster)`` of the sync driver)."""
        return len(await self._live_keys())

    # ------------------------------------------------- the mapping calls

    async def items(self) -> list[tuple[Key, V]]:
        """Every (key, value): one scan for the keys, then ``get_many`` of 10,000 at a time."""
        keys = await self.keys()
        out: list[tuple[Key, V]] = []
        for i in range(0, len(keys), WALK_BATCH):
            chunk = keys[i : i + WALK_BATCH]
            found = await self.get_many(chunk)
            out.extend((key, found[key]) for key in chunk if key in found)
        return out

    async def values(self) -> list[V]:
        """Every value (see ``items``)."""
        return [value for _, value in await self.items()]

    @overload
    async def update(self, other: SupportsKeysAndGetItem[KeyIn, V], /, **kwargs: V) -> None: ...
    @overload
    async def update(self, other: Iterable[tuple[KeyIn, V]], /, **kwargs: V) -> None: ...
    @overload
    async def update(self, /, **kwargs: V) -> None: ...
    async def update(self, /, *args: Any, **kwargs: Any) -> None:
        """``dict.update``: a mapping, an iterable of pairs and keywords, in one ``put_many``."""
        self._open()
        kbs, values = update_items(args, kwargs)
        if kbs:
            await self._ready()
            state = self._state
            check_batch(kbs, values, state)
            level = self._state.write_level
            await self._op(lambda: writes.put_many(state, kbs, values, level, state.now_ms()))

    @overload
    async def setdefault(self: AsyncCluster[T | None], key: Key, default: None = None) -> T | None: ...
    @overload
    async def setdefault(self, key: Key, default: V) -> V: ...
    async def setdefault(self, key: Key, default: Any = None) -> Any:
        """The value of `key`; if it has none, `default` is stored and returned (read, then write)."""
        value = await self.get(key, MISSING)
        if value is MISSING:
            await self.put(key, default)
            return default
        return value

    @overload
    async def pop(self, key: Key) -> V: ...
    @overload
    async def pop(self, key: Key, default: V) -> V: ...
    @overload
    async def pop(self, key: Key, default: D) -> V | D: ...
    async def pop(self, key: Key, default: Any = MISSING) -> Any:
        """Remove `key` and return its value; `default` (or KeyError) if it has none."""
        value = await self.get(key, MISSING)
        if value is MISSING:
            if default is MISSING:
                raise KeyError(key)
            return default
        await self.delete(key)
        return value

    async def popitem(self) -> tuple[Key, V]:
        """Remove and return some (key, value) pair; KeyError if empty (one scan kept between calls)."""
        for _ in range(2):
            while self._popping:
                key = self._popping.pop()
                value = await self.get(key, MISSING)
                if value is not MISSING:
                    await self.delete(key)
                    return key, value
            self._popping = await self.keys()
        raise KeyError("popitem(): the cluster is empty")

    async def clear(self) -> None:
        """Delete every live key: one scan of keys (no values read), then tombstones in batches."""
        kbs = await self._live_keys()
        state = self._state
        level = self._state.write_level
        for i in range(0, len(kbs), WALK_BATCH):
            chunk = kbs[i : i + WALK_BATCH]
            tombs = [TOMBSTONE] * len(chunk)
            await self._op(lambda: writes.put_many(state, chunk, tombs, level, state.now_ms()))
        self._popping = []

    # ---------------------------------------------------------- membership

    async def add_node(self, node: Node, *, progress: Progress | None = None) -> MembershipReport:
        """Add `node` and stream to it exactly the copies it now replicates."""
        self._open()
        progress_to(progress)
        if not isinstance(node, Node):
            raise TypeError(
                f"node must be a Node, got {type(node).__name__}; make one with Node(name)"
            )
        await self._ready()
        state = self._state
        async with self._membership:
            old = state.placement
            if node.name in state.members:
                raise NodeExistsError(f"node {node.name!r} is already in the cluster")
            check_joinable(node)
            check_distinct(node, state.members.values())
            if not node.is_up:
                raise ValueError(f"node {node.name!r} is down; recover() it before adding it")
            if state.layout is not None:
                spec = _spec(node)
                return await self._shared_change(
                    lambda layout: layout.begin((*layout.nodes, spec), "add", node.name),
                    joining={node.name: node},
                )
            await self._run(membership.empty([node]))  # old copies could bring deleted keys back
            if state.hints.pending:
                await self._run(_hints.deliver_found(state.hints, old, old.nodes, state.now_ms()))
            new = state.placement_of(list(old.nodes) + [node])
            state.join(node)
            started = time.perf_counter()
            try:
                report = await self._run(
                    rebalance.rebalance(state, old, new, action="add", node=node.name)
                )
            except BaseException:
                state.leave(node)
                raise
            return _timed(report, started)

    async def remove_node(
        self, node: Node | str, *, progress: Progress | None = None
    ) -> MembershipReport:
        """Decommission a node: stream its copies to their new replicas, then let it go."""
        self._open()
        progress_to(progress)
        if isinstance(node, Node):
            name = node.name
        elif isinstance(node, str):
            name = node
        else:
            raise TypeError(f"node must be a Node or a node name, got {type(node).__name__}")
        await self._ready()
        state = self._state
        async with self._membership:
            old = state.placement
            member = old.by_name.get(name)
            if member is None or (isinstance(node, Node) and node is not member):
                raise NodeNotFoundError(f"node {name!r} is not in the cluster")
            now_ms = state.now_ms()
            if state.layout is not None:
                if len(state.layout.nodes) == 1:
                    raise ValueError(f"cannot remove {name!r}: it is the cluster's last node")
                report = await self._shared_change(
                    lambda layout: layout.begin(
                        tuple(s for s in layout.nodes if s.name != name), "remove", name
                    ),
                    removing=name,
                )
                await self._after_removal(member, now_ms)
                return report
            remaining = [n for n in old.nodes if n is not member]
            if not remaining:
                (held,) = await self._execute([Call(member, Op.COUNT)])
                if isinstance(held, StoreError) or held:
                    raise ValueError(
                        f"cannot remove {name!r}: it is the cluster's last node and holds data "
                        "that would be lost; add another node first"
                    )
            if state.hints.pending:
                await self._run(_hints.deliver_found(state.hints, old, old.nodes, now_ms))
            new = state.placement_of(remaining)
            started = time.perf_counter()
            report = await self._run(
                rebalance.rebalance(state, old, new, action="remove", node=name)
            )
            await self._after_removal(member, now_ms)
            state.leave(member)
            return _timed(report, started)

    async def _after_removal(self, member: Node, now_ms: int) -> None:
        state = self._state
        await self._op(lambda: _hints.move(state.hints, state.placement, member))
        state.hints.forget_node(member.name)
        if state.placement.nodes:
            await self._op(lambda: _hints.deliver(state.hints, state.placement, now_ms))

    async def set_weight(
        self, node: Node | str, weight: float, *, progress: Progress | None = None
    ) -> MembershipReport:
        """Give a member a new weight and stream the copies that move (see ``Cluster``)."""
        self._open()
        progress_to(progress)
        name = node.name if isinstance(node, Node) else node
        if not isinstance(name, str):
            raise TypeError(f"node must be a Node or a node name, got {type(node).__name__}")
        probe = Node(name, weight=weight)  # checks the weight as Node does
        await self._ready()
        state = self._state
        async with self._membership:
            member = state.placement.by_name.get(name)
            if member is None:
                raise NodeNotFoundError(f"node {name!r} is not in the cluster")
            if state.layout is not None:
                return await self._shared_change(
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
                list(old.nodes), state.replication_factor, state.options.placer, weights
            )
            started = time.perf_counter()
            report = await self._run(
                rebalance.rebalance(state, old, new, action="weight", node=name)
            )
            member.weight = probe.weight
            return _timed(report, started)

    async def finish_change(
        self, *, abort: bool = False, progress: Progress | None = None
    ) -> MembershipReport | None:
        """Finish a membership change a client left half done (see ``Cluster.finish_change``)."""
        progress_to(progress)
        await self._ready()
        state = self._state
        if state.layout is None:
            raise ValueError("finish_change is for clusters whose membership lives on the nodes")
        async with self._membership:
            await self._run(membership.refresh(state))
            layout = state.layout
            if layout is None or not layout.changing:
                return None
            started = time.perf_counter()
            return _timed(await self._run(membership.finish(state, abort)), started)

    async def _shared_change(
        self, transition: Any, joining: dict[str, Node] | None = None, removing: str | None = None
    ) -> MembershipReport:
        started = time.perf_counter()
        report = await self._run(membership.start(self._state, transition, joining or {}, removing))
        return _timed(report, started)

    # ---------------------------------------------------------- maintenance

    async def repair(self, *, progress: Progress | None = None) -> RepairReport:
        """Anti-entropy: make every replica set whole and current (see ``Cluster.repair``)."""
        progress_to(progress)
        await self.probe()
        state = self._state
        async with self._membership:
            nodes = state.placement.nodes
            before = sum(int(n.store.stats().get("unreadable", 0)) for n in nodes)
            started = time.perf_counter()
            report = await self._op(lambda: repair.repair(state, state.now_ms(), self._grace_ms))
            after = sum(int(n.store.stats().get("unreadable", 0)) for n in nodes)
            return dataclasses.replace(
                report, seconds=time.perf_counter() - started, unreadable=after - before
            )

    async def deliver_hints(self) -> int:
        """Hand waiting hints to their owners that are up; how many were handed over."""
        await self.probe()
        state = self._state
        async with self._membership:
            return await self._op(
                lambda: _hints.deliver(state.hints, state.placement, state.now_ms())
            )

    async def stats(self) -> ClusterStats:
        """Keys per node, share against weight, imbalance, hints and error counters."""
        await self._ready()
        state = self._state
        keys_per_node, hints_pending = await self._op(
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
        return stats.make_stats(
            p, keys_per_node, hints_pending, state.hints, dict(state.counters), per_node
        )

    async def probe(self) -> list[str]:
        """Ping every suspected node now; the names of those back up (their hints handed over)."""
        await self._ready()
        suspected = [entry.node for entry in self._state.schedule.suspects.values()]
        back = [node for node in suspected if await self._probe(node)]
        await self._welcome(back)
        return sorted(node.name for node in back)

    async def _probe(self, node: Node) -> bool:
        try:
            await _maybe_await(node.store.ping())
        except StoreError as exc:
            return self._state.probed(node, exc)
        return self._state.probed(node, None)

    async def _welcome(self, back: Sequence[Node]) -> int:
        state = self._state
        names = [n.name for n in back if n.is_up and n.name in state.placement.by_name]
        if not names:
            return 0
        return await self._op(
            lambda: _hints.deliver(state.hints, state.placement, state.now_ms(), names)
        )

    async def _probe_loop(self) -> None:
        """Probe the suspects on their schedule until none is left (or the cluster closes)."""
        state = self._state
        try:
            while not self._state.closed:
                due_at = state.schedule.next_due()
                if due_at is None:
                    return
                due = state.schedule.due(time.monotonic())
                if not due:
                    await asyncio.sleep(max(0.0, due_at - time.monotonic()))
                    continue
                back = [node for node in due if await self._probe(node)]
                if back:
                    try:
                        await self._welcome(back)
                    except Exception:  # the next call or deliver_hints() hands them over
                        log.exception("handing hints to %s failed", [n.name for n in back])
        finally:
            if self._prober is asyncio.current_task():
                self._prober = None

    # ------------------------------------------------------------- running

    async def _op(self, make: Callable[[], Proc[T]]) -> T:
        """Run the procedure `make()` returns; on a fenced reply, load the layout and run it again."""
        for attempt in range(_RELOADS):
            try:
                return await self._run(make())
            except FencedError as exc:
                if attempt == _RELOADS - 1:
                    raise
                state = self._state
                members = list(state.members.values())
                await self._run(
                    membership.recover(
                        state,
                        exc,
                        lambda: membership.share(
                            state, *_first_layout(members, state.options), False
                        ),
                    )
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run(self, proc: Generator[Sequence[Call], Sequence[Any], T]) -> T:
        """Run a core procedure to its result, making the store calls it asks for."""
        send = proc.send
        try:
            calls = send(None)  # type: ignore[arg-type]
            while True:
                try:
                    results = await self._execute(calls)
                except BaseException:
                    proc.close()
                    raise
                calls = send(results)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _execute(self, calls: Sequence[Call]) -> list[Any]:
        """Make `calls` concurrently; each one's result, or the StoreError it raised.

        In-process stores are called directly.  A step that may be answered
        early (``core.calls.Step``) returns once it has enough answers; its
        other calls finish in the background, where their failures are
        still suspected and the step's ``late`` procedure runs on them.
        """
        if not calls:
            return []
        epoch = self._state.epoch
        results: list[Any] = [PENDING] * len(calls)
        tasks: dict[asyncio.Task[Any], int] = {}
        error: BaseException | None = None
        for i, call in enumerate(calls):
            if isinstance(call.node.store, AsyncStore):
                tasks[asyncio.ensure_future(_acall(call, epoch))] = i
            else:
                try:
                    results[i] = result = _call(call, epoch)
                except BaseException as exc:
                    error = error or exc
                    results[i] = None
                else:
                    if isinstance(result, FencedError):  # as an asyncio store's refusal
                        failure = self._state.fenced_failure(call.node, result)
                        if failure is None:
                            error = error or result
                            results[i] = None
                        else:
                            results[i] = failure
        waiting: set[asyncio.Task[Any]] = set(tasks)
        enough = getattr(calls, "enough", None)
        try:
            while waiting:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    i = tasks[task]
                    failed = task.exception()
                    if isinstance(failed, FencedError):  # a node ahead of every layout: its failure
                        failed = self._state.fenced_failure(calls[i].node, failed) or failed
                    if failed is None or isinstance(failed, StoreError):
                        results[i] = failed if failed is not None else task.result()
                    else:
                        error = error or failed
                        results[i] = None
                if waiting and error is None and enough is not None and enough(results):
                    break
        except BaseException:  # cancelled: the call's requests go with it
            for task in waiting:
                task.cancel()
            raise
        if waiting:
            if error is not None:
                for task in waiting:
                    task.cancel()
            else:  # answered early: the rest finish in the background
                self._finish_later(calls, {task: tasks[task] for task in waiting})
        if error is not None:
            raise error
        answered = [(call, result) for call, result in zip(calls, results) if result is not PENDING]
        self._failures(answered)
        return results

    def _failures(self, answered: list[tuple[Call, Any]]) -> None:
        """The failure policy: a node whose store was unreachable is suspected (and probed)."""
        for call, result in answered:
            if isinstance(result, StoreError) and self._state.failed(call.node, result):
                self._start_prober()

    def _finish_later(self, step: Any, pending: dict[asyncio.Task[Any], int]) -> None:
        async def finish() -> None:
            answered = []
            for task, i in pending.items():
                try:
                    answered.append((step[i], await task))
                except StoreError as exc:
                    answered.append((step[i], exc))
                except BaseException:  # noqa: BLE001 - cancelled at close: nothing to count
                    continue
            self._failures(answered)
            if answered:
                await self._run(step.late(answered))

        task = asyncio.ensure_future(finish())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _retire(self, store: Any) -> None:
        """Close the store of a node that left the layout, in a task that ``close()`` awaits."""
        task = asyncio.ensure_future(_close_quietly(store))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _start_prober(self) -> None:
        if self._state.closed or (self._prober is not None and not self._prober.done()):
            return
        self._prober = asyncio.ensure_future(self._probe_loop())


async def _acall(call: Call, epoch: int) -> Any:
    """Make one call on an asyncio store; its result or the StoreError it raised."""
    store = call.node.store
    args = _args(call, epoch)
    try:
        if call.op is Op.GET:
            started = time.perf_counter()
            if epoch:
                result = (await store.get_many(*args))[0]
            else:
                result = await store.get(*args)
        else:
            started = time.perf_counter()
            result = await getattr(store, call.op.value)(*args)
    except StoreError as exc:
        return exc
    if call.timed:
        keys = len(call.args[0]) if call.op is Op.GET_MANY else 1
        call.node._observe_latency((time.perf_counter() - started) / max(1, keys))
    return result


async def _maybe_await(value: Any) -> Any:
    if asyncio.iscoroutine(value):
        return await value
    return value


async def _close_store(store: Any) -> None:
    await _maybe_await(store.close())


async def _close_quietly(store: Any) -> None:
    """Close a store no call needs any more; a failure to close is logged, not raised."""
    try:
        await _close_store(store)
    except Exception as exc:  # noqa: BLE001 - nobody is left to hand it to
        log.warning("closing the store of a node that left failed: %s", exc)


def _keeps_layout(store: Any) -> bool:
    return store.remote and store.keeps_layout


def _timed(report: MembershipReport, started: float) -> MembershipReport:
    report = dataclasses.replace(report, seconds=time.perf_counter() - started)
    log.info("%r", report)
    return report


def _seed_store(seed: Any, prefix: str, timeout: Any, codec: Any) -> Any:
    if isinstance(seed, (Store, AsyncStore)):
        return seed
    if isinstance(seed, str):
        from cvstore.stores import open_url

        store = open_url(seed, asyncio=True, prefix=prefix, timeout=timeout, codec=codec)
        return store
    raise TypeError(f"seeds must be node URLs or stores, got {type(seed).__name__}")
