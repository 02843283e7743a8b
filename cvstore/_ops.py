"""The public calls of both drivers, once: each one is a procedure a driver runs.

``Cluster.put_many`` is ``return self._run(ops.put_many(self, ...))`` and
``AsyncCluster.put_many`` is ``return await self._run(ops.put_many(self, ...))``;
so are the mapping calls, membership changes (with their rollback, timing
and log records), join and create, repair, hints, stats and probes.  A
procedure here checks the arguments, keeps the client's bookkeeping
(``State``) and runs the core's procedures (``cvstore.core``), which make
every replication decision; it yields the store calls they ask for, and the
driver makes them (overlapped its own way) and sends the results back.

A fenced refusal (the client's layout is older than a node's) is thrown
into the running procedure by the driver; ``fenced`` catches it, loads the
newer layout and runs the step again.

``Client`` is the base both drivers stand on: the constructor, the options
shown as properties, placement questions, ``repr``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from cvstore import _direct
from cvstore._driver import (
    DEFAULT_HINT_WINDOW,
    DEFAULT_MAX_VALUE_BYTES,
    DEFAULT_TOMBSTONE_GRACE,
    MISSING,
    WALK_BATCH,
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
    expiring,
    progress_to,
    update_items,
)
from cvstore._types import Hash, Key
from cvstore.core import direct, membership, reads, scan, writes
from cvstore.core import hints as _hints
from cvstore.core import repair as _repair
from cvstore.core import stats as _stats
from cvstore.core.calls import FENCED, Call, Op, Proc
from cvstore.core.failures import may_be_applied
from cvstore.core.health import DEFAULT_MAX_PROBE_INTERVAL, DEFAULT_PROBE_INTERVAL
from cvstore.core.hotkeys import HotKeys
from cvstore.core.keys import key_bytes, key_out
from cvstore.core.layout import Layout, LayoutError, NodeSpec, first
from cvstore.core.levels import Level, ReadPolicy, check_level
from cvstore.core.placement import Placement
from cvstore.core.reads import LATENCY_FLOOR
from cvstore.core.rebalance import MembershipReport
from cvstore.core.records import TOMBSTONE, value_of
from cvstore.core.repair import RepairReport
from cvstore.core.stats import ClusterStats
from cvstore.errors import (
    FencedError,
    NodeExistsError,
    NodeNotFoundError,
    StoreError,
    UnavailableError,
    closed_error,
)
from cvstore.node import Node
from cvstore.stores.base import AsyncStore, Pending, Store
from cvstore.versions import HybridClock

log = logging.getLogger("cvstore")
T = TypeVar("T")
_first_item = itemgetter(0)  # the one record of a single-key get_many

# Times a call loads a newer layout (or brings a node up to date) and asks again.
RELOADS = 6


class Probes(list):  # type: ignore[type-arg]
    """The pings of a probe: their failures are the probe's answer, not new suspicions."""


class Client(Settings):
    """What ``Cluster`` and ``AsyncCluster`` share: the constructor, options, placement, repr.

    A driver sets ``_layout_stores`` (the stores that keep a layout other
    clients read, by name, for the error) and ``_lock`` (the kind of lock its
    state needs), and runs ``_started()`` at the end of construction.
    """

    _layout_stores = "stores that keep a layout"
    _lock: Any = None

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
        """A cluster client over `nodes`, with these options (the same for both drivers).

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
        read_policy : {"random", "primary", "fastest", "adaptive"}, default "random"
            Which replica a single-replica read asks: a random live one, the
            first live one in the preference list, or the one with the lowest
            recent latency.  "adaptive" ranks the replicas of every read by
            latency, requests outstanding and errors (``core.reads``), with
            hedged single-replica reads under ``AsyncCluster``.
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
        """
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
        keeps = bool(members) and all(
            node.store.remote and node.store.keeps_layout for node in members
        )
        if shared and not keeps:
            raise ValueError(
                f"shared=True needs nodes whose stores keep a layout ({self._layout_stores}), "
                f"got {[type(n.store).__name__ for n in members] or 'no nodes'}"
            )
        if self._lock is None:
            self._state = State(options, members, self)
        else:
            self._state = State(options, members, self, lock=self._lock)
        # the hot keys put and get sample (core.hotkeys), under a lock of the driver's kind
        self._hot = HotKeys(lock=(self._lock or threading.Lock)())
        # Servers shared with other clients: the membership lives on them.
        self._share_at_open = members if keeps and shared is not False else None
        self._popping: list[Key] = []  # keys popitem() found in its last scan
        self._started()

    def _started(self) -> None:
        """The driver's part of construction."""

    def get_node_for_key(self, key: Key) -> Node:
        """The key's primary: the first node of its preference list."""
        return self.get_nodes_for_key(key)[0]

    def get_nodes_for_key(self, key: Key) -> list[Node]:
        """The key's replicas (its preference list), primary first."""
        return self._open().placement.replicas(key_bytes(key))  # type: ignore[no-any-return]

    @property
    def _place(self) -> Placement:
        """The current placement (a core Placement snapshot)."""
        return self._state.placement

    @property
    def suspected(self) -> tuple[str, ...]:
        """Names of the nodes suspected down (their store was unreachable), in name order."""
        with self._state.lock:
            return tuple(sorted(self._state.schedule.suspects))

    def __repr__(self) -> str:
        state = self._state
        p = state.placement
        down = sum(not node.is_up for node in p.nodes)
        return (
            f"{type(self).__name__}(nodes={len(p.nodes)}, down={down}, "
            f"replication_factor={state.replication_factor}, "
            f"read={state.read_level!r}, write={state.write_level!r})"
        )


# ------------------------------------------------------------------ running


def opened(c: Any) -> State:
    """The client's state; ClusterClosedError if it was closed."""
    state: State = c._state
    if state.closed:
        raise closed_error()
    return state


class Raised:
    """What a step of calls raised, for ``resume``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def resume(proc: Proc[Any], outcome: Any) -> Any:
    """The next calls of `proc` after a step: its results sent in, or what it raised.

    A fenced refusal is thrown in (``fenced`` loads the newer layout and asks
    again); any other error closes the procedure (its ``finally`` blocks and
    locks run now, in the caller's thread) and is raised.  StopIteration
    carries the procedure's result.
    """
    if type(outcome) is not Raised:
        return proc.send(outcome)
    if isinstance(outcome.error, FencedError):
        return proc.throw(outcome.error)
    proc.close()
    raise outcome.error


def fenced(state: State, make: Callable[[], Proc[T]], write: bool = False) -> Proc[T]:
    """Run the procedure `make()` returns; on a fenced refusal, load the layout and run it again.

    A `write` refused by a node may already be applied on others (their
    answers came in the same step): if a run after such a refusal fails with
    an ``UnavailableError``, its message says the write may be applied, even
    where it would say that this run wrote nothing.
    """
    refusal: FencedError | None = None
    for attempt in range(RELOADS):
        try:
            return (yield from make())
        except FencedError as exc:
            if attempt == RELOADS - 1:
                raise
            refusal = exc
            members = list(state.members.values())
            yield from membership.recover(
                state,
                exc,
                lambda members=members: membership.share(  # type: ignore[misc]
                    state, *first_layout(members, state.options), False
                ),
            )
        except UnavailableError as exc:
            if not write or refusal is None:
                raise
            raise may_be_applied(exc, sent_before(refusal)) from exc.__cause__
    raise AssertionError("unreachable")  # pragma: no cover


def sent_before(refusal: FencedError) -> str:
    """Why a write refused after a fenced run may be applied."""
    return (
        f"an earlier run of this call was stopped when node {refusal.node!r} refused the "
        f"client's layout epoch {refusal.client_epoch} (it holds {refusal.node_epoch}), "
        "and may have written to them"
    )


# ------------------------------------------------- membership on the nodes


def start(c: Any, members: list[Node] | None, connect: Any, create: bool = False) -> Proc[Any]:
    """Follow the layout `members` hold (or write the first one), then adopt waiting hints."""
    state = c._state
    if members is not None:
        state.connect = connect
        yield from membership.share(state, *first_layout(members, state.options), create)
    yield from _hints.adopt(state.hints, list(state.members.values()))
    return c


def create(c: Any, nodes: Iterable[Node], connect: Any) -> Proc[Any]:
    """A new cluster whose membership lives on its nodes (the first layout is written)."""
    members = check_members(nodes)
    if not members:
        raise ValueError("nodes must name at least one node to create a cluster, got none")
    return (yield from start(c, members, connect or connect_like(members), create=True))


def join(c: Any, seeds: Any, make_seed: Callable[[Any], Any], connect: Any) -> Proc[Any]:
    """Join an existing cluster from its nodes: the layout with the highest epoch says the rest."""
    state = c._state
    stores = [make_seed(seed) for seed in seed_list(seeds)]
    if not stores:
        raise ValueError("seeds must name at least one node of the cluster, got none")
    probe = [Node(f"seed{i}", store=store) for i, store in enumerate(stores)]
    layout, _ = yield from membership.load(probe)
    owned = [store for store in stores if isinstance(seed_of(store), str)]
    try:
        if layout is None:
            raise LayoutError(
                "no seed answered with a cluster layout; "
                f"start the cluster with {type(c).__name__}.create"
            )
        layout.check_places()  # one server under two names: refused, as add_node does
    except LayoutError:
        for store in owned:
            state.retire(store)
        raise
    state.connect = connect or connect_like(probe)
    # a seed made from a URL serves the node at that address; an in-process
    # store has no address, and its node is reached with connect()
    by_address = {(address(st), prefix(st)): st for st in stores if address(st)}
    given = {}
    for spec in layout.everyone():
        store = by_address.pop((spec.address, spec.prefix), None) if spec.address else None
        if store is not None:
            given[spec.name] = Node(spec.name, weight=spec.weight, zone=spec.zone, store=store)
            if any(store is mine for mine in owned):
                state.made.add(spec.name)
    left = list(by_address.values())  # seeds that are no node of the layout
    for store in owned:
        if any(store is other for other in left) or not address(store):
            state.retire(store)
    state.apply_layout(layout, given)
    yield from membership.refresh(state)
    yield from _hints.adopt(state.hints, list(state.members.values()))
    return c


def spec_of(node: Node) -> NodeSpec:
    store = node.store
    return NodeSpec(node.name, node.weight, node.zone, address(store), prefix(store))


def address(store: Any) -> str:
    return str(store.address)


def prefix(store: Any) -> str:
    found = store.prefix
    return found.decode() if isinstance(found, bytes) else str(found)


def first_layout(members: Sequence[Node], options: Any) -> tuple[dict[str, Node], Any, int]:
    """The `given` nodes, the maker of a new cluster's first layout, the replication factor."""
    given = {node.name: node for node in members}

    def make() -> Layout:
        specs = [spec_of(node) for node in members]
        return first(
            specs, options.replication_factor, placement=options.placement, **options.ring_args
        )

    return given, make, options.replication_factor


def connect_like(members: Sequence[Node]) -> Any:
    """How to reach a node a layout names: a store like the given ones (Redis) or none."""
    model = next((n.store for n in members if n.store.addressable), None)
    if model is None:
        return None
    return lambda spec: model.sibling(spec.address, spec.prefix)


def seed_of(store: Any) -> Any:
    """What a seed was given as: the URL of a store made from one, else the store."""
    return store if store.url is None else store.url


def seed_store(seed: Any, prefix: str, timeout: Any, codec: Any, *, asyncio: bool) -> Any:
    """A seed of ``join`` as a store: a store as it is, a URL opened (its URL kept)."""
    from cvstore.stores import open_url

    if isinstance(seed, (Store, AsyncStore) if asyncio else Store):
        return seed
    if isinstance(seed, str):
        return open_url(seed, asyncio=asyncio, prefix=prefix, timeout=timeout, codec=codec)
    raise TypeError(f"seeds must be node URLs or stores, got {type(seed).__name__}")


def seed_list(seeds: Any) -> list[Any]:
    """The seeds of ``join``: an iterable of URLs or stores, or a single one."""
    if isinstance(seeds, (str, Store, AsyncStore)):
        return [seeds]
    if isinstance(seeds, (bytes, bytearray)) or not isinstance(seeds, Iterable):
        raise TypeError(
            f"seeds must be a node URL, a store, or an iterable of them, got {type(seeds).__name__}"
        )
    return list(seeds)


# ---------------------------------------------------------------- one key


def put(c: Any, key: Any, value: Any, consistency: Any, ttl: Any) -> Proc[None]:
    """``put``: in place over in-process stores when it can (``_direct``), else the core's."""
    if _direct.put(c, key, value, consistency=consistency, ttl=ttl) is direct.NOT_DONE:
        state = c._state
        yield from write(state, *direct.put_args(state, key, value, consistency, ttl))


def write(state: State, kb: bytes, value: Any, level: Any) -> Proc[None]:
    """The general path of ``put``."""
    return fenced(state, lambda: writes.put(state, kb, value, level, state.now_ms()), write=True)


def get(c: Any, key: Any, default: Any, consistency: Any) -> Proc[Any]:
    """``get``: in place over in-process stores when it can (``_direct``), else the core's."""
    found = _direct.get(c, key, default, consistency=consistency)
    if found is direct.NOT_DONE:
        kb, level = direct.get_args(c._state, key, consistency)
        found = yield from read(c._state, kb, level, default)
    return found


def read(state: State, kb: bytes, level: Any, default: Any) -> Proc[Any]:
    """The general path of ``get``."""
    record = yield from fenced(state, lambda: reads.get(state, kb, level, state.now_ms()))
    return value_of(record, default, state.now_ms())


def delete(c: Any, key: Any, consistency: Any) -> Proc[None]:
    return put(c, key, TOMBSTONE, consistency, None)


def contains(c: Any, key: Any) -> Proc[bool]:
    return (yield from get(c, key, MISSING, None)) is not MISSING


# ---------------------------------------------------------------- batches


def put_many(c: Any, mapping: Any, consistency: Any, ttl: Any) -> Proc[None]:
    """Many keys at once, one store call per node; refused before anything is written."""
    state = opened(c)
    kbs, values = batch_items(mapping)
    ttl_ms = check_ttl(ttl)
    level = state.write_level if consistency is None else check_level("consistency", consistency)
    if kbs:
        check_batch(kbs, values, state)
        values = expiring(values, ttl_ms, state)
        c._hot.sample_many(kbs, state.placement)
        yield from write_many(state, kbs, values, level)


def write_many(state: State, kbs: list[bytes], values: list[Any], level: Any) -> Proc[None]:
    return fenced(
        state, lambda: writes.put_many(state, kbs, values, level, state.now_ms()), write=True
    )


def get_many(c: Any, keys: Any, consistency: Any) -> Proc[dict[Any, Any]]:
    """``{key: value}`` of many keys, each read as ``get`` would, one store call per node."""
    state = opened(c)
    keys, kbs = batch_keys(keys)
    level = state.read_level if consistency is None else check_level("consistency", consistency)
    if not kbs:
        return {}
    c._hot.sample_many(kbs, state.placement)
    records = yield from fenced(state, lambda: reads.get_many(state, kbs, level, state.now_ms()))
    return batch_values(keys, records, state)


# ---------------------------------------------------------------- mapping


def live_keys(c: Any) -> Proc[list[bytes]]:
    """Every live key on the nodes that are up (hints handed over first: a scan meets every node)."""
    state = opened(c)
    if state.hints.pending:
        yield from fenced(
            state,
            lambda: _hints.deliver_found(
                state.hints, state.placement, state.placement.nodes, state.now_ms()
            ),
        )
    return (yield from fenced(state, lambda: scan.live_keys(state.placement, state.now_ms())))


def keys(c: Any) -> Proc[list[Key]]:
    return [key_out(kb) for kb in (yield from live_keys(c))]


def count(c: Any) -> Proc[int]:
    return len((yield from live_keys(c)))


def items(c: Any, chunk: list[Key]) -> Proc[list[tuple[Key, Any]]]:
    """(key, value) of the keys of `chunk` that still have one (deleted since the scan: left out)."""
    found = yield from get_many(c, chunk, None)
    return [(key, found[key]) for key in chunk if key in found]


def walk(c: Any) -> Proc[list[tuple[Key, Any]]]:
    """Every (key, value): one scan for the keys, then ``get_many`` of 10,000 at a time."""
    every = yield from keys(c)
    out: list[tuple[Key, Any]] = []
    for i in range(0, len(every), WALK_BATCH):
        out.extend((yield from items(c, every[i : i + WALK_BATCH])))
    return out


def values(c: Any) -> Proc[list[Any]]:
    return [value for _, value in (yield from walk(c))]


def update(c: Any, args: tuple[Any, ...], kwargs: Any) -> Proc[None]:
    """``dict.update``: a mapping, an iterable of pairs and keywords, in one ``put_many``."""
    state = opened(c)
    kbs, values = update_items(args, kwargs)
    if kbs:
        check_batch(kbs, values, state)
        yield from write_many(state, kbs, values, state.write_level)


def setdefault(c: Any, key: Any, default: Any) -> Proc[Any]:
    """The value of `key`; if it has none, `default` is stored and returned (a read, then a write)."""
    value = yield from get(c, key, MISSING, None)
    if value is MISSING:
        yield from put(c, key, default, None, None)
        return default
    return value


def pop(c: Any, key: Any, default: Any) -> Proc[Any]:
    """Remove `key` and return its value; `default` (or KeyError) if it has none."""
    value = yield from get(c, key, MISSING, None)
    if value is MISSING:
        if default is MISSING:
            raise KeyError(key)
        return default
    yield from delete(c, key, None)
    return value


def delitem(c: Any, key: Any) -> Proc[None]:
    if (yield from get(c, key, MISSING, None)) is MISSING:
        raise KeyError(key)
    yield from delete(c, key, None)


def popitem(c: Any) -> Proc[tuple[Key, Any]]:
    """Remove and return some (key, value); keys come from one scan kept between calls."""
    for _ in range(2):  # the kept keys, then one fresh scan
        while c._popping:
            key = c._popping.pop()
            value = yield from get(c, key, MISSING, None)
            if value is not MISSING:
                yield from delete(c, key, None)
                return key, value
        c._popping = yield from keys(c)
    raise KeyError("popitem(): the cluster is empty")


def clear(c: Any) -> Proc[None]:
    """Delete every live key: one scan of keys (no values read), then tombstones in batches."""
    state = c._state
    kbs = yield from live_keys(c)
    for i in range(0, len(kbs), WALK_BATCH):
        chunk = kbs[i : i + WALK_BATCH]
        yield from write_many(state, chunk, [TOMBSTONE] * len(chunk), state.write_level)
    c._popping = []


# ------------------------------------------------------------- membership


def timed(report: Any, started: float) -> Any:
    """A membership report with the seconds it took, logged."""
    report = dataclasses.replace(report, seconds=time.perf_counter() - started)
    log.info("%r", report)
    return report


def newest_layout(state: State) -> Proc[None]:
    """On a cluster kept on the nodes, load the newest layout before a change checks names.

    An idle client's layout may be old: another client may have added or
    removed the node since, and a check against the old one would refuse
    wrongly (or let through what the newest one refuses).
    """
    if state.layout is not None:
        yield from fenced(state, lambda: membership.refresh(state))


def add_node(c: Any, node: Any, progress: Any) -> Proc[MembershipReport]:
    """Add `node` and stream to it exactly the copies it now replicates (see ``Cluster.add_node``)."""
    state = opened(c)
    progress_to(progress)
    if not isinstance(node, Node):
        raise TypeError(f"node must be a Node, got {type(node).__name__}; make one with Node(name)")
    check_joinable(node)
    if not node.is_up:
        raise ValueError(f"node {node.name!r} is down; recover() it before adding it")
    yield from newest_layout(state)
    if node.name in state.members:
        raise NodeExistsError(f"node {node.name!r} is already in the cluster")
    check_distinct(node, state.members.values())
    started = time.perf_counter()
    report = yield from membership.add(state, node, spec_of(node), state.now_ms())
    return timed(report, started)


def remove_node(c: Any, node: Any, progress: Any) -> Proc[MembershipReport]:
    """Decommission a node: stream its copies to their new replicas, then let it go."""
    state = opened(c)
    progress_to(progress)
    if isinstance(node, Node):
        name = node.name
    elif isinstance(node, str):
        name = node
    else:
        raise TypeError(f"node must be a Node or a node name, got {type(node).__name__}")
    yield from newest_layout(state)
    member = state.placement.by_name.get(name)
    if member is None or (isinstance(node, Node) and node is not member):
        raise NodeNotFoundError(f"node {name!r} is not in the cluster")
    started = time.perf_counter()
    report = yield from membership.remove(
        state, member, state.now_ms(), lambda make: fenced(state, make)
    )
    return timed(report, started)


def set_weight(c: Any, node: Any, weight: Any, progress: Any) -> Proc[MembershipReport]:
    """Give a member a new weight (relative capacity) and stream the copies that move."""
    state = opened(c)
    progress_to(progress)
    name = node.name if isinstance(node, Node) else node
    if not isinstance(name, str):
        raise TypeError(f"node must be a Node or a node name, got {type(node).__name__}")
    checked = Node(name, weight=weight).weight  # checks the weight as Node does
    yield from newest_layout(state)
    member = state.placement.by_name.get(name)
    if member is None:
        raise NodeNotFoundError(f"node {name!r} is not in the cluster")
    started = time.perf_counter()
    report = yield from membership.reweight(state, member, checked)
    return timed(report, started)


def finish_change(c: Any, abort: bool, progress: Any) -> Proc[MembershipReport | None]:
    """Finish (or with `abort`, undo) a membership change a client left half done."""
    state = opened(c)
    progress_to(progress)
    if state.layout is None:
        raise ValueError("finish_change is for clusters whose membership lives on the nodes")
    yield from membership.refresh(state)
    layout = state.layout
    if layout is None or not layout.changing:
        return None
    started = time.perf_counter()
    return timed((yield from membership.finish(state, abort)), started)


# ------------------------------------------------------------ maintenance


def repair(c: Any, progress: Any) -> Proc[RepairReport]:
    """Anti-entropy: make every replica set whole and current (see ``Cluster.repair``)."""
    state = opened(c)
    progress_to(progress)
    yield from probe(c)
    grace_ms = int(state.options.tombstone_grace * 1000)
    nodes = state.placement.nodes
    before = sum(int(n.store.stats().get("unreadable", 0)) for n in nodes)
    started = time.perf_counter()
    report = yield from fenced(state, lambda: _repair.repair(state, state.now_ms(), grace_ms))
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


def deliver_hints(c: Any) -> Proc[int]:
    """Hand waiting hints to their owners that are up (suspects probed first)."""
    state = opened(c)
    yield from probe(c)
    return (
        yield from fenced(
            state, lambda: _hints.deliver(state.hints, state.placement, state.now_ms())
        )
    )


def stats(c: Any) -> Proc[ClusterStats]:
    """Keys per node, share against weight, imbalance, hints and error counters."""
    state = opened(c)
    keys_per_node, hints_pending = yield from fenced(
        state, lambda: _stats.gather(state.placement, state.now_ms())
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
        row.update(state.replicas.report(node.name))
        row.update(node.store.stats())
        per_node[node.name] = row
    with state.lock:
        counters = dict(state.counters)
    counters["hedges_sent"] = state.replicas.hedges
    counters["hedges_won"] = state.replicas.hedges_won
    hot = c._hot.report(p, p.replica_names)
    return _stats.make_stats(
        p, keys_per_node, hints_pending, state.hints, counters, per_node, hot_keys=hot
    )


def probe(c: Any) -> Proc[list[str]]:
    """Ping every suspected node now; the names of those back up (their hints handed over)."""
    state = opened(c)
    with state.lock:
        suspected = [entry.node for entry in state.schedule.suspects.values()]
    back = yield from probe_nodes(state, suspected)
    return sorted(node.name for node in back)


def probe_nodes(state: State, nodes: Sequence[Node]) -> Proc[list[Node]]:
    """Ping `nodes`; those back up get their hints.  Returns them."""
    if not nodes:
        return []
    results = yield Probes(Call(node, Op.PING) for node in nodes)
    back = [
        node
        for node, result in zip(nodes, results)
        if state.probed(node, result if isinstance(result, StoreError) else None)
    ]
    names = [node.name for node in back if node.is_up and node.name in state.placement.by_name]
    if names:
        yield from fenced(
            state, lambda: _hints.deliver(state.hints, state.placement, state.now_ms(), names)
        )
    return back


# ------------------------------------------------- making calls (both drivers)


def call_args(call: Call, epoch: int) -> tuple[Any, ...]:
    """A call's arguments, with the client's layout epoch where the node checks it."""
    if epoch and call.op in FENCED:
        if call.op is Op.GET:
            return ([call.args[0]], epoch)
        return (*call.args, epoch)
    return call.args


def call_send(call: Call, epoch: int) -> Pending[Any]:
    """Start one call on a sync store: a remote one sends its request now."""
    store = call.node.store
    op = call.op
    args = call_args(call, epoch)
    if op is Op.GET_MANY:
        return store.send_get_many(*args)
    if op is Op.WRITE_MANY:
        return store.send_write_many(*args)
    if op is Op.GET:
        pending = store.send_get_many(*args) if epoch else store.send_get_many([call.args[0]])
        return pending.then(_first_item)
    return Pending.now(getattr(store, op.value), *args)


def call_overlapped(
    calls: Sequence[Call], epoch: int, done: list[float] | None = None
) -> list[Any]:
    """Make calls on sync stores, each request sent before any reply is read (servers overlap).

    Every reply is read even if one raises something other than a StoreError
    (a codec error), so no connection is left checked out; then that error is raised.
    `done` (if given) is told when each reply was read (``time.perf_counter()``).
    """
    pendings: list[Pending[Any]] = []
    error: BaseException | None = None
    for call in calls:
        try:
            pendings.append(call_send(call, epoch))
        except BaseException as exc:  # noqa: BLE001 - raised below
            error = exc
            break
    results = []
    for pending in pendings:
        try:
            results.append(pending.result())
        except (StoreError, FencedError) as exc:
            results.append(exc)
        except BaseException as exc:  # noqa: BLE001 - raised below
            error = error or exc
            results.append(None)
        if done is not None:
            done.append(time.perf_counter())
    if error is not None:
        raise error
    return results


def call_tracked(state: State, calls: Sequence[Call], epoch: int, overlap: bool) -> list[Any]:
    """Make read calls the "adaptive" policy measures (``Call.tracked``) on sync stores.

    Each counts as outstanding to its node while under way; then its latency
    and outcome go to ``state.replicas``.  Overlapped replies are read in the
    order asked (the best-scored first), each measured from when every
    request was sent; a reply read right after another one (in less than
    ``LATENCY_FLOOR``) may have been waiting behind it, its own time hidden:
    its outcome is counted, not its latency.
    """
    replicas = state.replicas
    replicas.sent([call.node.name for call in calls])
    done: list[float] = []
    results: list[Any] = []
    begun: list[float] = []
    try:
        if overlap:
            begun = [time.perf_counter()] * len(calls)
            results = call_overlapped(calls, epoch, done)
        else:
            for call in calls:
                begun.append(time.perf_counter())
                results.append(call_now(call, epoch))
                done.append(time.perf_counter())
    finally:
        for i, call in enumerate(calls):
            answered = i < len(results) and i < len(done)
            result = results[i] if answered else None
            seconds = done[i] - begun[i] if answered else None
            if overlap and i and answered and done[i] - done[i - 1] < LATENCY_FLOOR:
                seconds = None  # ready before the reply read first: its own time is unknown
            replicas.answered(
                call.node.name, seconds, isinstance(result, StoreError), call.op is Op.GET
            )
    return results


def call_now(call: Call, epoch: int) -> Any:
    """Make one call on a sync store now; its result or the StoreError it raised (timed if asked)."""
    store = call.node.store
    args = call_args(call, epoch)
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


def failures(state: State, calls: Sequence[Call], results: list[Any]) -> tuple[Any, bool]:
    """The failure policy over answered calls: (the refusal to raise or None, whether a node is newly suspected).

    A node whose store was unreachable is suspected down (not by a probe's
    own ping: that is the probe's answer).  A refusal by a node ahead of
    every layout this client can read is that replica's failure (put in
    `results`); any other refusal is returned, for the driver to raise.
    """
    refused: FencedError | None = None
    suspected = False
    probing = type(calls) is Probes
    for i, (call, result) in enumerate(zip(calls, results)):
        if isinstance(result, StoreError):
            if not probing and state.failed(call.node, result):
                suspected = True
        elif isinstance(result, FencedError):
            failure = state.fenced_failure(call.node, result)
            if failure is None:
                refused = refused or result
            else:
                results[i] = failure
    return refused, suspected


def made_stores(state: State) -> list[Any]:
    """The stores this client made (for nodes a layout named, or seeds): to close, once."""
    stores = [state.members[name].store for name in sorted(state.made) if name in state.members]
    state.made.clear()
    return stores
