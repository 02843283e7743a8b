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
import random
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from operator import is_, itemgetter
from typing import Any, TypeVar

from cvstore._driver import (
    DEFAULT_HINT_WINDOW,
    DEFAULT_TOMBSTONE_GRACE,
    State,
    check_joinable,
    check_members,
    check_options,
)
from cvstore.core import hints as _hints
from cvstore.core import reads, rebalance, repair, scan, stats, writes
from cvstore.core.batch import IO_BATCH
from cvstore.core.calls import Call, Op
from cvstore.core.health import DEFAULT_MAX_PROBE_INTERVAL, DEFAULT_PROBE_INTERVAL
from cvstore.core.keys import encode_keys, key_bytes, key_out, keys_bytes
from cvstore.core.levels import check_level, level_error
from cvstore.core.rebalance import MembershipReport
from cvstore.core.records import TOMBSTONE, Record, differs
from cvstore.core.repair import RepairReport
from cvstore.core.stats import ClusterStats
from cvstore.errors import NodeExistsError, NodeNotFoundError, StoreError
from cvstore.node import Node
from cvstore.stores.base import Pending
from cvstore.versions import HybridClock

__all__ = ("IO_BATCH", "Cluster")

log = logging.getLogger("cvstore")
T = TypeVar("T")

# Record(version, value) without NamedTuple's Python-level __new__: the same
# tuple subclass, built in C.  Used on the per-key write path.
_new = tuple.__new__
_MISSING = object()
_value = itemgetter(1)
_random = random.random


class Cluster:
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
    vnodes, hash, seed
        Passed to the HashRing that places keys.
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
        read_consistency: str = "quorum",
        write_consistency: str = "quorum",
        vnodes: int = 160,
        hash: str = "xxh64",
        seed: int = 0,
        read_policy: str = "random",
        hint_window: float = DEFAULT_HINT_WINDOW,
        tombstone_grace: float = DEFAULT_TOMBSTONE_GRACE,
        clock: HybridClock | None = None,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        max_probe_interval: float = DEFAULT_MAX_PROBE_INTERVAL,
    ) -> None:
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
        )
        members = check_members(nodes)
        self._state = state = State(options, members, self)
        self._rf = options.replication_factor
        self._rlevel = options.read_consistency
        self._wlevel = options.write_consistency
        self._clock = options.clock
        self._now = options.clock.now
        self._observe = options.clock.observe
        self._grace_ms = int(options.tombstone_grace * 1000)
        self._pending_hints = state.hints.pending  # the same dict: tested on every call
        self._membership = threading.RLock()
        self._prober: _Prober | None = None
        self._prober_lock = threading.Lock()
        self._closed = False
        # Hints a previous client left in the stores (a Redis server keeps them).
        self._run(_hints.adopt(state.hints, members))

    @property
    def _place(self) -> Any:
        """The current placement (a core Placement snapshot)."""
        return self._state.placement

    # -------------------------------------------------------- configuration

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Members in name order."""
        return self._state.placement.nodes

    def node(self, name: str) -> Node:
        """The member called `name`; NodeNotFoundError if there is none."""
        node = self._state.placement.by_name.get(name) if isinstance(name, str) else None
        if node is None:
            raise NodeNotFoundError(f"node {name!r} is not in the cluster")
        return node

    @property
    def replication_factor(self) -> int:
        return self._rf

    @property
    def ring(self) -> Any:
        """A copy of the HashRing that currently places keys."""
        return self._state.placement.ring.copy()

    @property
    def clock(self) -> HybridClock:
        return self._state.clock

    @property
    def read_consistency(self) -> str:
        return self._rlevel

    @read_consistency.setter
    def read_consistency(self, level: str) -> None:
        self._rlevel = check_level("read_consistency", level)

    @property
    def write_consistency(self) -> str:
        return self._wlevel

    @write_consistency.setter
    def write_consistency(self, level: str) -> None:
        self._wlevel = check_level("write_consistency", level)

    @property
    def read_policy(self) -> str:
        return self._state.read_policy

    @read_policy.setter
    def read_policy(self, policy: str) -> None:
        from cvstore.core.levels import check_policy

        self._state.read_policy = check_policy("read_policy", policy)

    # ------------------------------------------------------------ placement

    def get_node_for_key(self, key: str | bytes) -> Node:
        """The key's primary: the first node of its preference list."""
        return self.get_nodes_for_key(key)[0]

    def get_nodes_for_key(self, key: str | bytes) -> list[Node]:
        """The key's replicas (its preference list), primary first."""
        return self._state.placement.replicas(key_bytes(key))

    # ---------------------------------------------------------- single keys

    def put(self, key: str | bytes, value: Any, *, consistency: str | None = None) -> None:
        """Store `value` under `key` on its replicas.

        The write is acknowledged when as many replicas as `consistency`
        needs (the cluster's ``write_consistency`` by default) applied it; a
        replica holding a newer version refuses it, and the write is stamped
        again above that version and rewritten (see the README's consistency
        section).  Replicas that are down get the write later through hints.

        Raises
        ------
        UnavailableError
            Fewer replicas are up than the level needs (nothing was written),
            or too few applied the write.
        """
        if type(key) is str:
            kb = key.encode()
        elif type(key) is bytes:
            kb = key
        else:
            kb = key_bytes(key)
        level = self._wlevel if consistency is None else consistency
        p = self._state.placement
        try:
            p.wneed[level]
        except (KeyError, TypeError):
            raise level_error("consistency", consistency) from None
        if p.direct and p.pending is None and not self._pending_hints and level not in p.wone:
            # Fast path, in-process stores: every replica up and applying the
            # write is an acknowledged write at any level.  Anything else (a
            # node down, a refusal, a membership change) goes to the core,
            # which stamps the value again and decides.
            replicas = list(
                map(p.node_of, p.replica_names(kb) if p.zoned else p.get_nodes(kb, p.n))
            )
            for node in replicas:
                if not node.is_up:  # checked before writing: a refused call leaves no trace
                    break
            else:
                record = _new(Record, (self._now(), value))
                for node in replicas:
                    if not node._put(kb, record):
                        break
                else:
                    if self._state.placement is p:
                        return
        self._run(writes.put(self._state, kb, value, level, self._state.now_ms()))

    def delete(self, key: str | bytes, *, consistency: str | None = None) -> None:
        """Delete `key`: write a tombstone, at `consistency`, like a put."""
        self.put(key, TOMBSTONE, consistency=consistency)

    def get(self, key: str | bytes, default: Any = None, *, consistency: str | None = None) -> Any:
        """The value of `key`, or `default` if it has none.

        Asks as many replicas as `consistency` needs (the cluster's
        ``read_consistency`` by default), returns the newest version among
        their answers, and first writes that version to any of them that
        had an older one or none (read repair).

        Raises
        ------
        UnavailableError
            Fewer replicas are up than the level needs.
        """
        if type(key) is str:
            kb = key.encode()
        elif type(key) is bytes:
            kb = key
        else:
            kb = key_bytes(key)
        level = self._rlevel if consistency is None else consistency
        state = self._state
        p = state.placement
        try:
            need = p.rneed[level]
        except (KeyError, TypeError):
            raise level_error("consistency", consistency) from None
        if p.direct and not self._pending_hints and state.read_policy != "fastest":
            # Fast path, in-process stores: the replicas asked are up and agree.
            replicas = list(
                map(p.node_of, p.replica_names(kb) if p.zoned else p.get_nodes(kb, p.n))
            )
            record: Any = _MISSING
            if need == 1:
                node = replicas[0]
                if state.read_policy == "random":
                    node = replicas[int(_random() * len(replicas))]
                if node.is_up:
                    record = node._get(kb)
            elif need == 2:  # quorum of 3, the common case, written out
                first, second = replicas[0], replicas[1]
                if first.is_up and second.is_up:
                    record = first._get(kb)
                    other = second._get(kb)
                    if other is not record and differs(other, record):
                        record = _MISSING  # read repair: the core decides
            else:
                asked = replicas[:need]
                if all(node.is_up for node in asked):
                    record = asked[0]._get(kb)
                    for node in asked[1:]:
                        if differs(node._get(kb), record):
                            record = _MISSING  # read repair: the core decides
                            break
            if record is not _MISSING and state.placement is p:
                if record is None:
                    return default
                # observe() inlined for the usual case, a version already passed
                if record[0] >> 32 > self._clock._hlc:
                    self._observe(record[0])
                return default if record[1] is TOMBSTONE else record[1]
        record = self._run(reads.get(state, kb, level, state.now_ms()))
        if record is None or record[1] is TOMBSTONE:
            return default
        return record[1]

    # ---------------------------------------------------------------- batch

    def put_many(
        self,
        mapping: Mapping[Any, Any] | Iterable[tuple[Any, Any]],
        *,
        consistency: str | None = None,
    ) -> None:
        """Store many keys at once: ``put`` for each, with one store call per node.

        Raises UnavailableError before writing anything if any key has too
        few replicas up for the level.  A key given twice (as str and bytes)
        keeps its last value.
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
                if not (isinstance(pair, tuple) and len(pair) == 2):
                    raise TypeError(f"mapping[{i}] must be a (key, value) pair, got {pair!r:.60}")
                keys.append(pair[0])
                values.append(pair[1])
            distinct = False
        kbs, one_type = encode_keys(keys)
        level = self._wlevel if consistency is None else check_level("consistency", consistency)
        if not kbs:
            return
        if not (distinct and one_type):  # a key given twice keeps its last value
            merged = dict(zip(kbs, values))
            if len(merged) != len(kbs):
                kbs = list(merged)
                values = list(merged.values())
        self._run(writes.put_many(self._state, kbs, values, level, self._state.now_ms()))

    def get_many(
        self, keys: Iterable[str | bytes], *, consistency: str | None = None
    ) -> dict[Any, Any]:
        """The values of many keys: ``{key: value}``, keys without a value absent.

        Each key is read as ``get`` would (same level, newest version, read
        repair), with one store call per node.
        """
        if isinstance(keys, (str, bytes)):
            raise TypeError(
                f"keys must be an iterable of keys, got {type(keys).__name__}; "
                "wrap a single key in a list"
            )
        keys = list(keys)
        kbs = keys_bytes(keys)
        level = self._rlevel if consistency is None else check_level("consistency", consistency)
        if not kbs:
            return {}
        best = self._run(reads.get_many(self._state, kbs, level, self._state.now_ms()))
        # Built with C-level map/zip: this runs once per key of the batch.
        if None in best:
            pairs = [(k, r) for k, r in zip(keys, best) if r is not None]
            keys = [k for k, _ in pairs]
            best = [r for _, r in pairs]
        values = list(map(_value, best))
        if any(map(is_, values, repeat(TOMBSTONE))):
            return {key: value for key, value in zip(keys, values) if value is not TOMBSTONE}
        return dict(zip(keys, values))

    # ------------------------------------------------------------- mapping

    def __setitem__(self, key: str | bytes, value: Any) -> None:
        self.put(key, value)

    def __getitem__(self, key: str | bytes) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __delitem__(self, key: str | bytes) -> None:
        if self.get(key, _MISSING) is _MISSING:
            raise KeyError(key)
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        return self.get(key, _MISSING) is not _MISSING  # type: ignore[arg-type]

    def _live_keys(self) -> list[bytes]:
        state = self._state
        p = state.placement
        if self._pending_hints:  # a scan meets every node: hand over what it can first
            self._run(_hints.deliver_found(state.hints, p, p.nodes, state.now_ms()))
        return self._run(scan.live_keys(p))

    def __iter__(self) -> Iterator[str | bytes]:
        """Every live key on the nodes that are up (str when it is UTF-8, else bytes).

        A snapshot taken when iteration starts; O(records).
        """
        return iter([key_out(kb) for kb in self._live_keys()])

    def __len__(self) -> int:
        """Distinct live keys on the nodes that are up; O(records)."""
        return len(self._live_keys())

    def __repr__(self) -> str:
        p = self._state.placement
        down = sum(not node.is_up for node in p.nodes)
        return (
            f"Cluster(nodes={len(p.nodes)}, down={down}, replication_factor={self._rf}, "
            f"read={self._rlevel!r}, write={self._wlevel!r})"
        )

    # ---------------------------------------------------------- membership

    def add_node(self, node: Node) -> MembershipReport:
        """Add `node` and stream to it exactly the copies it now replicates.

        Copies are dropped from nodes that stop replicating a key only after
        they reached their new node.  The node must be up and belong to no
        other cluster.
        """
        if not isinstance(node, Node):
            raise TypeError(
                f"node must be a Node, got {type(node).__name__}; make one with Node(name)"
            )
        state = self._state
        with self._membership:
            old = state.placement
            if node.name in old.by_name:
                raise NodeExistsError(f"node {node.name!r} is already in the cluster")
            check_joinable(node)
            if not node.is_up:
                raise ValueError(f"node {node.name!r} is down; recover() it before adding it")
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

    def remove_node(self, node: Node | str) -> MembershipReport:
        """Decommission a node: stream its copies to their new replicas, then let it go.

        A down node can be removed too: its keys are streamed from their
        other replicas.  The last node cannot be removed while it holds data.
        """
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
            self._run(_hints.move(state.hints, new, member))
            state.hints.forget_node(name)
            if new.nodes:  # hints meant for the node go to the keys' new replicas
                self._run(_hints.deliver(state.hints, new, now_ms))
            state.leave(member)
            report = dataclasses.replace(report, seconds=time.perf_counter() - started)
            log.info("%r", report)
            return report

    # ---------------------------------------------------------- maintenance

    def repair(self) -> RepairReport:
        """Anti-entropy: make every replica set whole and current.

        Delivers hints, writes each key's newest copy to replicas that lack
        it (or hold bytes that are not a record), removes stray copies, and
        purges tombstones older than ``tombstone_grace`` once all of the
        key's replicas are current.  Keys with a replica down are completed
        as far as possible.
        """
        self.probe()
        state = self._state
        with self._membership:
            nodes = state.placement.nodes
            before = sum(int(n.store.stats().get("unreadable", 0)) for n in nodes)
            started = time.perf_counter()
            report = self._run(repair.repair(state, state.now_ms(), self._grace_ms))
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
        self.probe()
        state = self._state
        with self._membership:
            return self._run(_hints.deliver(state.hints, state.placement, state.now_ms()))

    def stats(self) -> ClusterStats:
        """Keys per node, share against weight, imbalance, hints and error counters.

        ``per_node`` adds each member's up/suspected state, the store failures
        the cluster met, and the store's own call counts and latency.
        """
        state = self._state
        p = state.placement
        keys_per_node, hints_pending = self._run(stats.gather(p))
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
        state = self._state
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
        return self._run(_hints.deliver(state.hints, p, state.now_ms(), names))

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
                calls = send(self._execute(calls))
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
        if len(calls) > 1 and any(call.node.store.remote for call in calls) and not calls[0].timed:
            pendings: list[Pending[Any]] = []
            error: BaseException | None = None
            for call in calls:
                try:
                    pendings.append(_send(call))
                except BaseException as exc:
                    error = exc
                    break
            results = []
            for pending in pendings:
                try:
                    results.append(pending.result())
                except StoreError as exc:
                    results.append(exc)
                except BaseException as exc:
                    error = error or exc
                    results.append(None)
            if error is not None:
                raise error
        else:
            results = [_call(call) for call in calls]
        for call, result in zip(calls, results):
            if isinstance(result, StoreError):
                if self._state.failed(call.node, result):
                    self._start_prober()
        return results

    def _start_prober(self) -> None:
        with self._prober_lock:
            if self._closed:
                return
            if self._prober is None or not self._prober.is_alive():
                self._prober = _Prober(self)
                self._prober.start()
            else:
                self._prober.wake()

    def close(self) -> None:
        """Stop the cluster's background thread (the prober), if one runs.  The stores stay open."""
        with self._prober_lock:
            prober, self._prober = self._prober, None
        if prober is not None:
            prober.stop()


def _send(call: Call) -> Pending[Any]:
    """Start one call: remote stores send their request now."""
    store = call.node.store
    op = call.op
    if op is Op.GET_MANY:
        return store.send_get_many(*call.args)
    if op is Op.WRITE_MANY:
        return store.send_write_many(*call.args)
    if op is Op.GET:
        pending = store.send_get_many([call.args[0]])
        return Pending(lambda: pending.result()[0])
    return Pending.now(getattr(store, op.value), *call.args)


def _call(call: Call) -> Any:
    """Make one call now; its result or the StoreError it raised (timed if asked)."""
    method = getattr(call.node.store, call.op.value)
    try:
        if call.timed:
            started = time.perf_counter()
            result = method(*call.args)
            keys = len(call.args[0]) if call.op is Op.GET_MANY else 1
            call.node._observe_latency((time.perf_counter() - started) / max(1, keys))
            return result
        return method(*call.args)
    except StoreError as exc:
        return exc


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
                with cluster._prober_lock:
                    with state.lock:
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
