"""What every driver shares: checked options, the cluster client's state, node state changes.

A driver (the sync ``Cluster``, the asyncio ``AsyncCluster``) runs the
procedures of ``_ops`` (its public calls) and does their I/O.  The state they
keep is here, once: the constructor's options and their errors, the current placement, the clock,
the hint book, the suspicion schedule, the counters of ``stats()``, the
``Context`` handed to procedures, and the transitions of a node between up,
suspected and back (with their log records).  Nothing here does I/O.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import repeat
from operator import is_, itemgetter
from typing import Any

import numpy as np

from cvstore._direct import stamper
from cvstore._limits import show_number
from cvstore._records import live_values
from cvstore._ring import HashRing
from cvstore.core.health import ReplicaStats, Schedule
from cvstore.core.hints import HintBook
from cvstore.core.keys import MAX_KEY_BYTES, encode_keys, key_out, key_size_error, keys_bytes
from cvstore.core.layout import Layout, NodeSpec
from cvstore.core.levels import Level, ReadPolicy, check_level, check_policy
from cvstore.core.placement import Placement, Placer
from cvstore.core.placements import DEFAULT as DEFAULT_PLACEMENT
from cvstore.core.placements import check_placement, placer_factory
from cvstore.core.records import TOMBSTONE, Expiring
from cvstore.errors import (
    FencedError,
    NodeExistsError,
    NodeNotFoundError,
    StoreError,
    closed_error,
)
from cvstore.node import _LONE_CLOCK, Node
from cvstore.stores.base import Store
from cvstore.versions import HybridClock

__all__ = (
    "DEFAULT_HINT_WINDOW",
    "DEFAULT_TOMBSTONE_GRACE",
    "Options",
    "Progress",
    "State",
    "check_options",
    "progress_to",
)

log = logging.getLogger("cvstore")
_value = itemgetter(1)

DEFAULT_HINT_WINDOW = 3 * 3600.0  # seconds (Cassandra's max_hint_window default)
DEFAULT_TOMBSTONE_GRACE = 10 * 86400.0  # seconds (Cassandra's gc_grace_seconds default)
MAX_TTL = 10 * 365 * 86400  # seconds: the longest ttl a write takes (ten years)

# Sizes, checked before any store is called (so a refused call sends nothing),
# the same in memory as over Redis so a program moves between them unchanged.
#
# A value of 8 MiB is written to three local Redis servers and read back in
# about 0.1 s (measured: 1 MiB 0.011-0.016 s, 8 MiB 0.08-0.11 s, 32 MiB 0.35-0.38 s,
# 64 MiB 0.87-1.07 s, put then get, RedisStore's default timeout of 0.5 s), so
# every socket wait of such a call stays far inside that timeout, on a loaded
# machine too: a healthy server is never taken for a dead one.  A larger
# limit (max_value_bytes=, up to Redis's own 512 MiB per string,
# proto-max-bulk-len) needs a RedisStore timeout that grows with it (about
# 1 s per 50 MiB more on the machine measured).
DEFAULT_MAX_VALUE_BYTES = 8 * 1024 * 1024
MAX_VALUE_BYTES_LIMIT = 512 * 1024 * 1024 - 64  # Redis's limit, less a record's head


Progress = Callable[[int, int], None]  # progress(done, total) of a long call
# Where the current call of this thread (or asyncio task) reports its progress.
_PROGRESS: ContextVar[Progress | None] = ContextVar("cvstore_progress", default=None)


def progress_to(progress: Any) -> None:
    """Make `progress` (a callable(done, total), or None) hear of the calling call's long work.

    Each public call that takes ``progress=`` sets it on entry (a context
    variable: per thread, per asyncio task), and only those calls stream
    copies or repair, so each call reports to its own ``progress`` alone.
    """
    if progress is not None and not callable(progress):
        raise TypeError(
            f"progress must be a callable(done, total) or None, got {type(progress).__name__}"
        )
    _PROGRESS.set(progress)


def seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Options:
    """A cluster's checked constructor options."""

    replication_factor: int
    read_consistency: Level
    write_consistency: Level
    read_policy: ReadPolicy
    placer: Callable[[Mapping[str, float]], Placer]
    ring_args: Mapping[str, Any]  # the placement's options: vnodes, hash, seed
    hint_window: float
    tombstone_grace: float
    probe_interval: float
    max_probe_interval: float
    clock: HybridClock
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    placement: str = DEFAULT_PLACEMENT  # a registered name (cvstore.core.placements)


def check_options(
    *,
    replication_factor: Any,
    read_consistency: Any,
    write_consistency: Any,
    vnodes: Any,
    hash: Any,
    seed: Any,
    read_policy: Any,
    hint_window: Any,
    tombstone_grace: Any,
    clock: Any,
    probe_interval: Any,
    max_probe_interval: Any,
    max_value_bytes: Any = DEFAULT_MAX_VALUE_BYTES,
    placement: Any = DEFAULT_PLACEMENT,
) -> Options:
    """The options of a Cluster (or AsyncCluster), or the TypeError/ValueError naming the bad one."""
    if isinstance(replication_factor, bool) or not isinstance(replication_factor, int):
        raise TypeError(
            f"replication_factor must be an int, got {type(replication_factor).__name__}"
        )
    if replication_factor < 1:
        raise ValueError(f"replication_factor must be >= 1, got {replication_factor!r}")
    read_consistency = check_level("read_consistency", read_consistency)
    write_consistency = check_level("write_consistency", write_consistency)
    read_policy = check_policy("read_policy", read_policy)
    window = seconds("hint_window", hint_window)
    grace = seconds("tombstone_grace", tombstone_grace)
    interval = seconds("probe_interval", probe_interval)
    max_interval = seconds("max_probe_interval", max_probe_interval)
    if max_interval < interval:
        raise ValueError(
            f"max_probe_interval must be >= probe_interval ({interval:g}), got {max_interval:g}"
        )
    if grace < window:
        raise ValueError(
            f"tombstone_grace must be >= hint_window ({window:g}), got {grace:g}; "
            "a hint older than the grace period could bring a purged key back"
        )
    if isinstance(max_value_bytes, bool) or not isinstance(max_value_bytes, int):
        raise TypeError(
            f"max_value_bytes must be an int (bytes), got {type(max_value_bytes).__name__}"
        )
    if not 1 <= max_value_bytes <= MAX_VALUE_BYTES_LIMIT:
        raise ValueError(
            f"max_value_bytes must be in [1, {MAX_VALUE_BYTES_LIMIT}] (Redis's 512 MiB per "
            f"string, less a record's head), got {show_number(max_value_bytes)}"
        )
    if clock is None:
        clock = HybridClock()
    elif not isinstance(clock, HybridClock):
        raise TypeError(f"clock must be a HybridClock, got {type(clock).__name__}")
    placement = check_placement(placement)
    ring_args = {"vnodes": vnodes, "hash": hash, "seed": seed}
    return Options(
        replication_factor=replication_factor,
        read_consistency=read_consistency,
        write_consistency=write_consistency,
        read_policy=read_policy,
        placer=placer_factory(placement, **ring_args),  # it checks vnodes, hash and seed
        ring_args=ring_args,
        hint_window=window,
        tombstone_grace=grace,
        probe_interval=interval,
        max_probe_interval=max_interval,
        clock=clock,
        max_value_bytes=max_value_bytes,
        placement=placement,
    )


def check_members(nodes: Any) -> list[Node]:
    """The initial members: Node objects of no other cluster, each name once."""
    if isinstance(nodes, (Node, str, bytes)):
        raise TypeError(
            f"nodes must be an iterable of Node, got {type(nodes).__name__}; "
            "wrap a single node in a list"
        )
    members = list(nodes)
    seen: set[str] = set()
    for i, node in enumerate(members):
        check_joinable(node)
        if node.name in seen:
            raise NodeExistsError(f"node {node.name!r} is given twice")
        seen.add(node.name)
        check_distinct(node, members[:i])
    return members


def store_place(store: Any) -> tuple[Any, ...]:
    """Where a store keeps its data: (address, prefix) on a server, else the store object itself."""
    address = store.address
    if address:
        prefix = store.prefix
        if isinstance(prefix, bytes):
            prefix = prefix.decode("utf-8", "replace")
        return (str(address), str(prefix))
    return (id(store),)


def check_distinct(node: Node, members: Iterable[Node]) -> None:
    """NodeExistsError if `node` keeps its data where one of `members` does (one server, two names).

    Two members at the same address and prefix (or with the same in-process
    store) would each count as a replica while being one copy.
    """
    place = store_place(node.store)
    for other in members:
        if other is not node and store_place(other.store) == place:
            raise NodeExistsError(same_place(other.name, node.name, node.store))


def same_place(first: str, second: str, store: Any) -> str:
    address = store.address
    if address:
        prefix = store.prefix
        if isinstance(prefix, bytes):
            prefix = prefix.decode("utf-8", "replace")
        where = f"the same server: both at {address} with prefix {prefix!r}"
    else:
        where = f"the same store object ({type(store).__name__})"
    return (
        f"nodes {first!r} and {second!r} are {where}; a key's copies on both would be one copy. "
        "Give each node its own server, db or prefix"
    )


def check_joinable(node: Any) -> None:
    if not isinstance(node, Node):
        raise TypeError(
            f"nodes must be Node objects, got {type(node).__name__}; make one with Node(name)"
        )
    if node._cluster is not None:
        raise ValueError(f"node {node.name!r} already belongs to a cluster; remove it there first")


class State:
    """The state of one cluster client, shared by its threads (or its event loop).

    It is also the ``Context`` the core's procedures are handed: the
    placement, version stamps, the hint book, causes of failures, counters.
    """

    def __init__(
        self,
        options: Options,
        members: Sequence[Node],
        owner: Any,
        lock: Callable[[], AbstractContextManager[Any]] = threading.RLock,
    ) -> None:
        self.options = options
        self.owner = owner
        self.clock = options.clock
        self.stamp = stamper(options.clock)  # clock.now, compiled for the usual clock
        self.observe = options.clock.observe
        self.read_policy: ReadPolicy = options.read_policy
        # The size limits of values (see DEFAULT_MAX_VALUE_BYTES): a str of at
        # most max_str characters is within the limit whatever its UTF-8 is,
        # and values stored through a codec are measured with it.
        self.max_value_bytes = options.max_value_bytes
        self.max_str = options.max_value_bytes // 4
        self.value_codec: Any = None
        self.read_level: Level = options.read_consistency  # the calls' default levels
        self.write_level: Level = options.write_consistency
        self.closed = False  # set by the driver's close(): every later call raises
        self.random = random.random
        self.rng = np.random.default_rng()  # the core's arrays of random numbers, and ids
        self.hints = HintBook(int(options.hint_window * 1000), lock())
        self.hints.on_event = _log_hints
        self.schedule = Schedule(options.probe_interval, options.max_probe_interval)
        self.lock = lock()  # guards the schedule, node state and counters
        # What the "adaptive" read policy scores replicas by (fed by the driver's
        # tracked calls), and whether this driver makes hedged reads.
        self.replicas = ReplicaStats(lock())
        self.hedging = False
        self.counters: dict[str, int] = {"read_repairs": 0, "unavailable": 0}
        # Membership kept on the nodes (None: kept in this process): the layout
        # this client holds, how it reaches a node the layout names, and the
        # nodes whose stores it made (it closes those).
        self.layout: Layout | None = None
        self.shared = False  # the membership lives on the nodes (set before a layout is known)
        self.connect: Callable[[NodeSpec], Store] | None = None
        self.made: set[str] = set()
        # Nodes found holding an epoch ahead of every layout this client can read
        # (a corrupt epoch, an unreadable layout): name -> that epoch, and how many
        # of their refusals were counted as that replica's failure (see fenced_failure).
        self.ahead: dict[str, int] = {}
        self.ahead_refusals: dict[str, int] = {}
        # How the driver closes the store of a made node that left the layout
        # (the asyncio driver's close is a coroutine: it runs it in a task).
        self.retire: Callable[[Any], None] = _close_now
        self._placers: dict[tuple[Any, ...], Callable[[Mapping[str, float]], Placer]] = {}
        self.placement = self.placement_of(list(members))
        for node in members:
            self.join(node)

    # --------------------------------------------------------- placement

    def placement_of(
        self, members: list[Node], weights: Mapping[str, float] | None = None
    ) -> Placement:
        return Placement(members, self.options.replication_factor, self.options.placer, weights)

    @property
    def placement_name(self) -> str:
        """The registered placement that places keys: the layout's, else the option's."""
        layout = self.layout
        return self.options.placement if layout is None else layout.placement

    def placer(self) -> Placer:
        """A copy of the placer that places keys (immutable placers are their own copy)."""
        placer: Any = self.placement.placer
        return placer.copy()

    def ring(self) -> HashRing:
        """A copy of the HashRing that places keys; TypeError under another placement."""
        ring = self.placer()
        if not isinstance(ring, HashRing):
            raise TypeError(
                f"the cluster places keys with placement={self.placement_name!r}, not a ring; "
                "use cluster.placer"
            )
        return ring

    @property
    def progress(self) -> Progress | None:
        """Where the running call reports its progress (see ``progress_to``)."""
        return _PROGRESS.get()

    def install(self, placement: Placement) -> None:
        # One assignment: every reader sees the old placement or the new one.
        self.placement = placement

    @property
    def epoch(self) -> int:
        """The layout epoch every request carries (0: membership kept in this process)."""
        layout = self.layout
        if layout is None:
            # -1: a client of a shared cluster that could not read its layout yet;
            # every node refuses it until it has (0 would not be fenced at all)
            return -1 if self.shared else 0
        return layout.epoch

    @property
    def replication_factor(self) -> int:
        layout = self.layout
        return self.options.replication_factor if layout is None else layout.replication_factor

    @property
    def members(self) -> dict[str, Node]:
        """Every node of the current placement and of a change under way, by name."""
        p = self.placement
        found = dict(p.by_name)
        if p.pending is not None:
            found.update(p.pending.by_name)
        return found

    def apply_layout(
        self,
        layout: Layout,
        joining: Mapping[str, Node] | None = None,
        keep: Iterable[str] = (),
    ) -> list[Node]:
        """Make `layout` this client's membership: nodes made or dropped, placement swapped.

        Nodes this client does not have yet are made with ``connect``;
        `joining` are nodes given for the names they carry.  Nodes that
        leave have their stores closed if this client made them, except
        those named in `keep`: they are returned, still open, for a last
        call (``release`` closes them).
        """
        keep = set(keep)
        kept: list[Node] = []
        known = {**self.members, **(joining or {})}
        nodes: dict[str, Node] = {}
        for spec in layout.everyone():
            node = known.get(spec.name)
            if node is None:
                if self.connect is None:
                    raise ValueError(
                        f"the layout names node {spec.name!r} at {spec.address!r}, and this "
                        "client has no way to reach it; pass connect= to Cluster.join"
                    )
                node = Node(spec.name, weight=spec.weight, zone=spec.zone, store=self.connect(spec))
                self.made.add(spec.name)
            if node._cluster is not self.owner:
                self.join(node)
            nodes[spec.name] = node
        placer = self._placer(layout)
        current = Placement(
            [nodes[s.name] for s in layout.nodes],
            layout.replication_factor,
            placer,
            {s.name: s.weight for s in layout.nodes},
        )
        if layout.next is not None:
            after = Placement(
                [nodes[s.name] for s in layout.next],
                layout.replication_factor,
                placer,
                {s.name: s.weight for s in layout.next},
            )
            current = current.with_pending(after)
        for spec in layout.nodes if layout.next is None else layout.next:
            nodes[spec.name].weight = spec.weight
        gone = [node for name, node in known.items() if name not in nodes]
        self.layout = layout
        # a node is still ahead while this layout's epoch is below the one it holds
        self.ahead = {name: held for name, held in self.ahead.items() if held > layout.epoch}
        self.install(current)
        for node in gone:
            self.leave(node)
            if node.name in keep:
                kept.append(node)
            else:
                self.release([node])
        log.info("layout %s", layout.describe())
        return kept

    def release(self, nodes: Iterable[Node]) -> None:
        """Close the stores of nodes that left, where this client made them."""
        for node in nodes:
            if node.name in self.made and node.name not in self.members:
                self.made.discard(node.name)
                self.retire(node.store)

    def _placer(self, layout: Layout) -> Callable[[Mapping[str, float]], Placer]:
        options = layout.placement_options()
        key = tuple(options.values())
        placer = self._placers.get(key)
        if placer is None:
            placer = self._placers[key] = placer_factory(**options)
        return placer

    def join(self, node: Node) -> None:
        node._cluster = self.owner
        node._clock = self.clock
        store = node.store
        if store.name is None:
            store.name = node.name  # so the store's StoreErrors name this node
        codec = store.codec
        if codec is not None and self.value_codec is None:
            self.value_codec = codec  # values other than str and bytes are measured with it

    def leave(self, node: Node) -> None:
        node._cluster = None
        node._clock = _LONE_CLOCK
        with self.lock:
            self.schedule.drop(node.name)
        self.replicas.drop(node.name)
        if node._suspected:
            node._suspected = False
            if not node._failed:
                node.is_up = True

    # ----------------------------------------------------------- context

    def now_ms(self) -> int:
        return self.clock.time_ms()

    def checked_value(self, value: Any, ttl: Any) -> Any:
        """A put's value checked against the size limit, with its expiry if `ttl` is given."""
        check_value(value, self, "value")
        if ttl is not None:
            value = expiring([value], check_ttl(ttl), self)[0]
        return value

    def causes(self, names: Iterable[str]) -> dict[str, StoreError]:
        last = self.schedule.last_error
        return {name: last[name] for name in names if name in last}

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + n

    # ------------------------------------------------------ node health

    def epoch_ahead(self, node: str | None, epoch: int) -> None:
        """`node` refused with `epoch`, and no layout this client can read is that new."""
        if node is not None and self.layout is not None and epoch > self.layout.epoch:
            with self.lock:
                self.ahead[node] = epoch
            log.warning(
                "node %s holds layout epoch %d, ahead of every layout readable (epoch %d): "
                "its epoch is corrupt or its layout unreadable; calls leave it out",
                node, epoch, self.layout.epoch,
            )  # fmt: skip

    def fenced_failure(self, node: Node, error: FencedError) -> StoreError | None:
        """A refusal by a node whose epoch is ahead of every readable layout, as that replica's failure.

        Such a node cannot be followed (there is no layout to load at its
        epoch), so its refusal fails its part of the call alone, as an error
        reply does; the call goes on with the other replicas.  None for any
        other refusal: the driver loads the newer layout and asks again.
        """
        held = self.ahead.get(node.name)
        if held is None or error.node_epoch < held or not error.newer:
            return None
        with self.lock:
            self.ahead_refusals[node.name] = self.ahead_refusals.get(node.name, 0) + 1
        reason = (
            f"holds layout epoch {error.node_epoch}, ahead of every layout this client can "
            f"read (epoch {error.client_epoch}); fix or clear the node's epoch"
        )
        return StoreError(
            f"node {node.name!r} {reason}", node=node.name, unreachable=False, reason=reason
        )

    def failed(self, node: Node, error: StoreError) -> bool:
        """Note a store failure of `node`; returns True if it is newly suspected down."""
        with self.lock:
            newly = self.schedule.failed(node, error, time.monotonic())
            if newly:
                node._suspected = True
                node.is_up = False
        if newly:
            log.warning("node %s suspected down: %s", node.name, error.reason)
        return newly

    def probed(self, node: Node, error: StoreError | None) -> bool:
        """The result of a probe of `node`; returns True if it is back up."""
        with self.lock:
            if error is not None:
                self.schedule.probe_failed(node, error, time.monotonic())
                return False
            if not self.schedule.answered(node):
                return False
            node._suspected = False
            if not node._failed:
                node.is_up = True
        log.info("node %s is back up", node.name)
        return True

    def recovered(self, node: Node) -> None:
        """An operator's ``node.recover()``: the suspicion ends without a probe."""
        with self.lock:
            self.schedule.answered(node, probed=False)

    def health_report(self, node: Node) -> dict[str, Any]:
        with self.lock:
            row = self.schedule.report(node.name, time.monotonic())
            row["epoch_ahead"] = self.ahead.get(node.name)
            row["ahead_refusals"] = self.ahead_refusals.get(node.name, 0)
            return row


def _close_now(store: Store) -> None:
    store.close()


def _log_hints(event: str, owner: str, holder: str, count: int) -> None:
    if event == "written":
        log.debug("%d hint(s) for %s written to %s", count, owner, holder)
    elif event == "delivered":
        log.info("%d hint(s) delivered to %s from %s", count, owner, holder)
    else:
        log.info("%d expired hint(s) for %s dropped from %s", count, owner, holder)


class Settings:
    """What both drivers show of their configuration: members, ring, clock, levels, policy.

    ``Cluster`` and ``AsyncCluster`` inherit it; each reads its ``State``.
    """

    __slots__ = ()
    _state: State

    def _open(self) -> State:
        """The client's state; ClusterClosedError if ``close()`` was called (checked first)."""
        state = self._state
        if state.closed:
            raise closed_error()
        return state

    @property
    def layout(self) -> Layout | None:
        """The layout this client holds, when the membership lives on the nodes (else None)."""
        return self._state.layout

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Members in name order."""
        return self._state.placement.nodes

    def node(self, name: str) -> Node:
        """The member called `name`; NodeNotFoundError if there is none."""
        node = self._open().placement.by_name.get(name) if isinstance(name, str) else None
        if node is None:
            raise NodeNotFoundError(f"node {name!r} is not in the cluster")
        return node

    @property
    def replication_factor(self) -> int:
        return self._state.replication_factor

    @property
    def ring(self) -> HashRing:
        """A copy of the HashRing that places keys (TypeError under another placement)."""
        return self._state.ring()

    @property
    def placement(self) -> str:
        """The registered name of the placement that places keys ("ring" by default)."""
        return self._state.placement_name

    @property
    def placer(self) -> Placer:
        """A copy of the placer that currently places keys (a HashRing for "ring")."""
        return self._state.placer()

    @property
    def clock(self) -> HybridClock:
        return self._state.clock

    @property
    def read_consistency(self) -> Level:
        return self._state.read_level

    @read_consistency.setter
    def read_consistency(self, level: Level) -> None:
        self._open().read_level = check_level("read_consistency", level)

    @property
    def write_consistency(self) -> Level:
        return self._state.write_level

    @write_consistency.setter
    def write_consistency(self, level: Level) -> None:
        self._open().write_level = check_level("write_consistency", level)

    @property
    def read_policy(self) -> ReadPolicy:
        return self._state.read_policy

    @read_policy.setter
    def read_policy(self, policy: ReadPolicy) -> None:
        self._open().read_policy = check_policy("read_policy", policy)


# ------------------------------------------------ the public calls, shared

MISSING: Any = object()  # "no value": a default no caller can pass


def check_ttl(ttl: Any) -> int | None:
    """A ttl in seconds as milliseconds (None: the value never expires), or the error naming it."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"ttl must be a number of seconds or None, got {type(ttl).__name__}")
    # An int is compared as an int: math.isfinite(2**1024) would raise OverflowError.
    if not (ttl > 0 if isinstance(ttl, int) else math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"ttl must be a finite number of seconds > 0, got {show_number(ttl)}")
    if ttl > MAX_TTL:
        raise ValueError(f"ttl must be at most ten years ({MAX_TTL} s), got {show_number(ttl)}")
    return max(1, round(ttl * 1000))


def check_value(value: Any, state: State, name: str) -> None:
    """The ValueError naming `name` if `value` is larger than the cluster's max_value_bytes.

    A str is measured as its UTF-8, bytes-like values by their length, other
    values as the cluster's codec (its Redis stores') encodes them; without a
    codec (in memory) they have no size to check.
    """
    limit = state.max_value_bytes
    if type(value) is Expiring:
        value = value.value
    if value is TOMBSTONE:
        return
    if isinstance(value, str):
        if len(value) <= state.max_str:
            return
        if len(value) > max(limit, 16 * 1024 * 1024):  # too large whatever its UTF-8:
            raise ValueError(  # not copied to say so
                f"{name} must be at most max_value_bytes ({limit:,} bytes as UTF-8), "
                f"got a str of {len(value):,} characters"
            )
        size = len(str.encode(value, "utf-8", "surrogatepass"))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        size = memoryview(value).nbytes
    else:
        codec = state.value_codec
        if codec is None:
            return
        size = len(codec.encode(value))  # (its error for a value it cannot encode, as before)
    if size > limit:
        raise ValueError(
            f"{name} must be at most max_value_bytes ({limit:,} bytes), got {size:,} bytes"
        )


def check_batch(kbs: list[bytes], values: list[Any], state: State) -> None:
    """`check_value` of every value of a batch (keys are checked as they are converted)."""
    kinds = set(map(type, values))
    if kinds <= {str, bytes} and values:
        # C-level: one pass over the lengths when every value is surely within
        if max(map(len, values)) <= (state.max_str if str in kinds else state.max_value_bytes):
            return
    elif kinds <= {int, float, bool, type(None)} and state.value_codec is None:
        return
    for kb, value in zip(kbs, values):
        check_value(value, state, f"mapping[{key_out(kb)!r:.60}]")


def check_key_sizes(kbs: list[bytes]) -> None:
    if kbs and max(map(len, kbs)) > MAX_KEY_BYTES:
        i = next(i for i, kb in enumerate(kbs) if len(kb) > MAX_KEY_BYTES)
        raise key_size_error(f"keys[{i}]", kbs[i])


def expiring(values: list[Any], ttl_ms: int | None, state: State) -> list[Any]:
    """`values` as written with a ttl: each wrapped with its expiry (as is without one)."""
    if ttl_ms is None:
        return values
    expires = state.now_ms() + ttl_ms
    return [Expiring(value, expires) for value in values]


def batch_items(mapping: Any) -> tuple[list[bytes], list[Any]]:
    """The keys (as stores key them) and values of a ``put_many`` argument.

    A mapping, or an iterable of (key, value) pairs; a key given twice (as
    str and bytes, or twice in the pairs) keeps its last value.
    """
    if isinstance(mapping, Mapping):
        keys = list(mapping.keys())
        values = list(mapping.values())
        distinct = True
    elif isinstance(mapping, (str, bytes)) or not isinstance(mapping, Iterable):
        raise TypeError(
            "mapping must be a mapping or an iterable of (key, value) pairs, "
            f"got {type(mapping).__name__}"
        )
    else:
        keys, values = [], []
        for i, pair in enumerate(mapping):
            if type(pair) is not tuple or len(pair) != 2:
                pair = _pair(i, pair)
            keys.append(pair[0])
            values.append(pair[1])
        distinct = False
    kbs, one_type = encode_keys(keys)
    check_key_sizes(kbs)
    if kbs and not (distinct and one_type):
        merged = dict(zip(kbs, values))
        if len(merged) != len(kbs):
            return list(merged), list(merged.values())
    return kbs, values


def _pair(i: int, element: Any) -> tuple[Any, Any]:
    """Element `i` of an iterable of pairs as (key, value), read as ``dict.update`` reads it:
    any iterable of two items; TypeError if it is not iterable, ValueError if its length is not 2.
    """
    try:
        items = tuple(element)
    except TypeError:
        raise TypeError(
            f"mapping element #{i} must be a (key, value) pair, got {type(element).__name__}"
        ) from None
    if len(items) != 2:
        raise ValueError(
            f"mapping element #{i} has length {len(items)}; 2 is required, got {element!r:.60}"
        )
    return items[0], items[1]


def batch_keys(keys: Any) -> tuple[list[Any], list[bytes]]:
    """The keys of a ``get_many`` argument, and those keys as stores key them."""
    if isinstance(keys, (str, bytes)):
        raise TypeError(
            f"keys must be an iterable of keys, got {type(keys).__name__}; "
            "wrap a single key in a list"
        )
    keys = list(keys)
    kbs = keys_bytes(keys)
    check_key_sizes(kbs)
    return keys, kbs


def batch_values(keys: list[Any], records: list[Any], state: State) -> dict[Any, Any]:
    """``{key: value}`` of a batch read, keys without a live value left out.

    Built in C (``_records.live_values``) unless a value expires: this runs
    once per key of the batch.
    """
    if type(keys) is list and type(records) is list:
        found = live_values(keys, records, TOMBSTONE, Expiring)
        if found is not None:
            return found
    if None in records:
        pairs = [(k, r) for k, r in zip(keys, records) if r is not None]
        keys = [k for k, _ in pairs]
        records = [r for _, r in pairs]
    values = list(map(_value, records))
    if Expiring in set(map(type, values)):
        now = state.now_ms()
        return {
            key: record[1].value if type(record[1]) is Expiring else record[1]
            for key, record in zip(keys, records)
            if record[1] is not TOMBSTONE
            and not (type(record[1]) is Expiring and record[1].expires <= now)
        }
    if any(map(is_, values, repeat(TOMBSTONE))):
        return {key: value for key, value in zip(keys, values) if value is not TOMBSTONE}
    return dict(zip(keys, values))


def update_items(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[list[bytes], list[Any]]:
    """The keys and values of ``update(other, **kwargs)``, as ``dict.update`` reads them."""
    if len(args) > 1:
        raise TypeError(f"update expected at most 1 positional argument, got {len(args)}")
    kbs: list[bytes] = []
    values: list[Any] = []
    if args:
        other = args[0]
        if not isinstance(other, Mapping) and hasattr(other, "keys"):  # a mapping-like object
            other = {key: other[key] for key in other.keys()}  # noqa: SIM118 - dict.update calls keys(), not iter()
        kbs, values = batch_items(other)
    if kwargs:
        more, more_values = batch_items(kwargs)
        if kbs:
            merged = dict(zip(kbs, values))
            merged.update(zip(more, more_values))
            return list(merged), list(merged.values())
        return more, more_values
    return kbs, values


# Keys per batch when a mapping call walks the whole cluster (items, values, clear).
WALK_BATCH = 10_000
