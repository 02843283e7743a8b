"""Cluster: a replicated key-value store over a hash ring of nodes, Dynamo-style.

Each key lives on N = min(replication_factor, nodes) nodes, its preference
list on the ring.  Every write carries a version from the cluster's hybrid
logical clock and the newest version wins; deletes write tombstones.  Each
call picks a consistency level (how many replicas must answer); a level that
cannot be met raises ``UnavailableError`` before anything is written.  Reads
repair the replicas they asked, writes for a down replica go to another node
as hints, ``repair()`` brings every replica set up to date, and adding or
removing a node streams exactly the copies that change hands.

The per-key paths (``put``, ``get``) are written for speed: one ring lookup,
one clock stamp, direct calls to the stores, and the rare cases (a node down,
a store failing, a membership change under way) handled off the main path.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import compress, repeat
from operator import is_, is_not, itemgetter
from typing import Any

import numpy as np

from cvstore._gcpause import gc_paused
from cvstore._health import DEFAULT_MAX_PROBE_INTERVAL, DEFAULT_PROBE_INTERVAL, Health
from cvstore._hints import EVENTUAL_BATCH, HintedHandoff
from cvstore._keys import encode_keys, key_bytes, key_out, keys_bytes
from cvstore._levels import (
    EVENTUAL,
    READ_POLICIES,
    check_level,
    level_error,
    partial_failure,
    unavailable,
)
from cvstore._placement import Placement
from cvstore._rebalance import MembershipReport, _groups, _objects, rebalance
from cvstore._repair import RepairReport, repair
from cvstore._scan import scan_columns, tombstone_flags
from cvstore._stats import ClusterStats, collect
from cvstore.errors import (
    EmptyRingError,
    NodeExistsError,
    NodeNotFoundError,
    StoreError,
    UnavailableError,
)
from cvstore.node import _LONE_CLOCK, Node
from cvstore.versions import TOMBSTONE, HybridClock, Record

__all__ = ("Cluster",)

# Record(version, value) without NamedTuple's Python-level __new__: the same
# tuple subclass, built in C.  Used on the per-key write path.
_new = tuple.__new__
_MISSING = object()
_value = itemgetter(1)
_random = random.random

DEFAULT_HINT_WINDOW = 3 * 3600.0  # seconds (Cassandra's max_hint_window default)
DEFAULT_TOMBSTONE_GRACE = 10 * 86400.0  # seconds (Cassandra's gc_grace_seconds default)
IO_BATCH = 10_000  # keys per slice of a batch to servers (see _io_step)


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


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
        A node whose store fails (``StoreError``: a server down, a timeout)
        is suspected down: calls skip it and hint around it.  The first call
        made ``probe_interval`` seconds later pings it; each failed ping
        doubles the wait, up to ``max_probe_interval``.  When it answers it
        is up again and gets its hints.

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
        if isinstance(replication_factor, bool) or not isinstance(replication_factor, int):
            raise TypeError(
                f"replication_factor must be an int, got {type(replication_factor).__name__}"
            )
        if replication_factor < 1:
            raise ValueError(f"replication_factor must be >= 1, got {replication_factor!r}")
        check_level("read_consistency", read_consistency)
        check_level("write_consistency", write_consistency)
        _check_policy(read_policy)
        window = _seconds("hint_window", hint_window)
        grace = _seconds("tombstone_grace", tombstone_grace)
        interval = _seconds("probe_interval", probe_interval)
        max_interval = _seconds("max_probe_interval", max_probe_interval)
        if max_interval < interval:
            raise ValueError(
                f"max_probe_interval must be >= probe_interval ({interval:g}), got {max_interval:g}"
            )
        if grace < window:
            raise ValueError(
                f"tombstone_grace must be >= hint_window ({window:g}), got {grace:g}; "
                "a hint older than the grace period could bring a purged key back"
            )
        if clock is None:
            clock = HybridClock()
        elif not isinstance(clock, HybridClock):
            raise TypeError(f"clock must be a HybridClock, got {type(clock).__name__}")
        if isinstance(nodes, (Node, str, bytes)):
            raise TypeError(
                f"nodes must be an iterable of Node, got {type(nodes).__name__}; "
                "wrap a single node in a list"
            )
        members = list(nodes)
        seen: set[str] = set()
        for node in members:
            _check_joinable(node)
            if node.name in seen:
                raise NodeExistsError(f"node {node.name!r} is given twice")
            seen.add(node.name)

        self._rf = replication_factor
        self._ring_args: dict[str, Any] = {"vnodes": vnodes, "hash": hash, "seed": seed}
        self._place = self._placement(members)  # the ring validates vnodes, hash and seed
        self._rlevel = read_consistency
        self._wlevel = write_consistency
        self._policy = read_policy
        self._clock = clock
        self._now = clock.now
        self._grace_ms = int(grace * 1000)
        self._hints = HintedHandoff(clock, int(window * 1000))
        self._pending_hints = self._hints.pending  # the same dict: tested on every call
        self._health = Health(interval, max_interval)
        self._suspects = self._health.suspects  # the same dict: tested on every call
        self._hints.on_failure = self._health.suspect
        self._membership = threading.RLock()
        self._counter_lock = threading.Lock()
        self._read_repairs = 0
        self._unavailable = 0
        self._pool: ThreadPoolExecutor | None = None
        for node in members:
            node._cluster = self
            node._clock = clock
        # Hints a previous client left in the stores (a Redis server keeps them).
        self._hints.adopt(members)

    def _placement(self, members: list[Node]) -> Placement:
        return Placement(members, self._rf, **self._ring_args)

    def _install(self, placement: Placement) -> None:
        # One assignment: every reader sees the old placement or the new one.
        self._place = placement

    # -------------------------------------------------------- configuration

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Members in name order."""
        return self._place.nodes

    def node(self, name: str) -> Node:
        """The member called `name`; NodeNotFoundError if there is none."""
        node = self._place.by_name.get(name) if isinstance(name, str) else None
        if node is None:
            raise NodeNotFoundError(f"node {name!r} is not in the cluster")
        return node

    @property
    def replication_factor(self) -> int:
        return self._rf

    @property
    def ring(self) -> Any:
        """A copy of the HashRing that currently places keys."""
        return self._place.ring.copy()

    @property
    def clock(self) -> HybridClock:
        return self._clock

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
        return self._policy

    @read_policy.setter
    def read_policy(self, policy: str) -> None:
        self._policy = _check_policy(policy)

    # ------------------------------------------------------------ placement

    def get_node_for_key(self, key: str | bytes) -> Node:
        """The key's primary: the first node of its preference list."""
        return self.get_nodes_for_key(key)[0]

    def get_nodes_for_key(self, key: str | bytes) -> list[Node]:
        """The key's replicas (its preference list), primary first."""
        return self._place.replicas(key_bytes(key))

    # ---------------------------------------------------------- single keys

    def put(self, key: str | bytes, value: Any, *, consistency: str | None = None) -> None:
        """Store `value` under `key` on its replicas.

        Waits for as many replicas as `consistency` needs (the cluster's
        ``write_consistency`` by default).  Replicas that are down get the
        write later through hints.

        Raises
        ------
        UnavailableError
            Fewer replicas are up than the level needs; nothing was written.
        """
        if type(key) is str:
            kb = key.encode()
        elif type(key) is bytes:
            kb = key
        else:
            kb = key_bytes(key)
        p = self._place
        try:
            need = p.wneed[self._wlevel if consistency is None else consistency]
        except (KeyError, TypeError):
            raise level_error("consistency", consistency) from None
        replicas = list(map(p.node_of, p.replica_names(kb) if p.zoned else p.get_nodes(kb, p.n)))
        if self._suspects:
            self._probe_due()
        if self._pending_hints:
            self._hints.deliver_found(p, replicas)
        record = _new(Record, (self._now(), value))
        if need:
            for node in replicas:
                if not node.is_up:
                    self._put_degraded(p, kb, record, replicas, need, consistency)
                    break
            else:
                if len(replicas) > 1 and replicas[0].store.does_io:
                    self._put_to_servers(p, kb, record, replicas, need, consistency)
                else:
                    try:
                        for node in replicas:
                            node._put(kb, record)
                    except StoreError as exc:
                        # The node is suspected down from now on, and hinted for.  A
                        # write that timed out may still have landed: it is not
                        # counted, and the hint covers it.  Puts are conditional
                        # on the version, so redoing the others is harmless.
                        self._health.suspect(node, exc)
                        done = replicas.index(node)  # those before it acknowledged
                        self._put_degraded(p, kb, record, replicas, need, consistency, done, exc)
        else:
            self._put_eventual(p, kb, record, replicas, consistency)
        if p.pending is not None or self._place is not p:
            self._put_moving(kb, record, p, replicas)

    def _put_to_servers(
        self,
        p: Placement,
        kb: bytes,
        record: Record,
        replicas: list[Node],
        need: int,
        consistency: Any,
    ) -> None:
        """Send the write to every replica at once, then read the acknowledgements.

        As a Dynamo coordinator does: a put costs about one round trip, not one
        per replica.  Replicas that failed are suspected (by ``_run``) and hinted.
        """
        results = self._run([(node, "put", (kb, record)) for node in replicas])
        missed = [node for node, result in zip(replicas, results) if isinstance(result, StoreError)]
        if missed:
            self._hints.hint(p, [(kb, record, replicas, missed)])
            acks = len(replicas) - len(missed)
            if acks < need:
                level = self._wlevel if consistency is None else consistency
                error = next(r for r in results if isinstance(r, StoreError))
                failed = [node.name for node in missed]
                raise self._failed(level, "write", need, len(replicas), acks, failed) from error

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
        while True:
            p = self._place
            try:
                need = p.rneed[self._rlevel if consistency is None else consistency]
            except (KeyError, TypeError):
                raise level_error("consistency", consistency) from None
            replicas = list(
                map(p.node_of, p.replica_names(kb) if p.zoned else p.get_nodes(kb, p.n))
            )
            if self._suspects:
                self._probe_due()
            if self._pending_hints:
                self._hints.deliver_found(p, replicas)
            if need == 1:
                node = replicas[0]
                if self._policy == "random":
                    node = replicas[int(_random() * len(replicas))]
                if node.is_up and self._policy != "fastest":
                    try:
                        record = node._get(kb)
                    except StoreError as exc:
                        self._health.suspect(node, exc)
                        record = self._read_one(kb, replicas, consistency)
                else:
                    record = self._read_one(kb, replicas, consistency)
            else:
                for node in replicas:
                    if not node.is_up:
                        record = self._read_degraded(kb, replicas, need, consistency)
                        break
                else:
                    if replicas[0].store.does_io:
                        record = self._get_from_servers(kb, replicas, need, consistency)
                    else:
                        node = replicas[0]
                        try:
                            record = node._get(kb)
                            node = replicas[1]
                            if need == 2:
                                other = replicas[1]._get(kb)
                                if other is not record and (
                                    other is None or record is None or other[0] != record[0]
                                ):
                                    record = self._read_repair(kb, replicas[:2], [record, other])
                            else:
                                for node in replicas[1:need]:
                                    other = node._get(kb)
                                    if other is not record and (
                                        other is None or record is None or other[0] != record[0]
                                    ):
                                        asked = replicas[:need]
                                        records = []
                                        for node in asked:
                                            records.append(node._get(kb))
                                        record = self._read_repair(kb, asked, records)
                                        break
                        except StoreError as exc:
                            self._health.suspect(node, exc)
                            record = self._read_degraded(kb, replicas, need, consistency, exc)
            # A read that overlapped a membership change is asked again of the
            # new replicas: the old ones may have handed the key off meanwhile.
            if self._place is p:
                break
        if record is None or record[1] is TOMBSTONE:
            return default
        return record[1]

    def _get_from_servers(
        self, kb: bytes, replicas: list[Node], need: int, consistency: Any
    ) -> Record | None:
        """Ask `need` replicas at once, then compare (and read-repair) their answers."""
        asked = replicas[:need]
        records = self._run([(node, "get", (kb,)) for node in asked])
        for result in records:
            if isinstance(result, StoreError):
                return self._read_degraded(kb, replicas, need, consistency, result)
        record = records[0]
        for other in records[1:]:
            if other is not record and (other is None or record is None or other[0] != record[0]):
                return self._read_repair(kb, asked, records)
        return record

    # --------------------------------------------------- single keys: rare

    def _refuse(self, level: Any, op: str, need: int, replicas: list[Node]) -> UnavailableError:
        with self._counter_lock:
            self._unavailable += 1
        return unavailable(level, op, need, replicas)

    def _failed(
        self, level: str, op: str, need: int, total: int, done: int, failed: list[str]
    ) -> UnavailableError:
        with self._counter_lock:
            self._unavailable += 1
        return partial_failure(level, op, need, total, done, failed)

    def _put_degraded(
        self,
        p: Placement,
        kb: bytes,
        record: Record,
        replicas: list[Node],
        need: int,
        consistency: Any,
        done: int = 0,
        error: StoreError | None = None,
    ) -> None:
        """Write to the up replicas, hint the others; the first `done` already acknowledged.

        `error` is the failure that sent the write here: the write has begun,
        so it is finished as far as it goes (and hinted) instead of refused.
        """
        level = self._wlevel if consistency is None else consistency
        if error is None and sum(node.is_up for node in replicas) < need:
            raise self._refuse(level, "write", need, replicas)
        acks = done
        missed: list[Node] = []
        for node in replicas[done:]:
            if node.is_up:
                try:
                    node._put(kb, record)
                    acks += 1
                    continue
                except StoreError as exc:
                    error = exc
                    self._health.suspect(node, exc)
            missed.append(node)
        if missed:
            self._hints.hint(p, [(kb, record, replicas, missed)])
        if acks < need:
            failed = [node.name for node in missed]
            raise self._failed(level, "write", need, len(replicas), acks, failed) from error

    def _put_eventual(
        self, p: Placement, kb: bytes, record: Record, replicas: list[Node], consistency: Any
    ) -> None:
        level = self._wlevel if consistency is None else consistency
        if not any(node.is_up for node in replicas):
            raise self._refuse(level, "write", 1, replicas)
        error = None
        for node in replicas:
            if node.is_up:
                try:
                    node._put(kb, record)
                except StoreError as exc:
                    error = exc
                    self._health.suspect(node, exc)
                    continue
                others = [other for other in replicas if other is not node]
                if others:
                    self._hints.hint_eventual(node, others, [(kb, record)])
                    if self._hints.backlog >= EVENTUAL_BATCH:
                        self._hints.deliver(p, list(self._hints.lagging))
                return
        raise self._failed(
            level, "write", 1, len(replicas), 0, [n.name for n in replicas]
        ) from error

    def _put_moving(self, kb: bytes, record: Record, p: Placement, replicas: list[Node]) -> None:
        """Also write to the replicas of a pending or newly installed placement."""
        done = set(map(id, replicas))
        while True:
            current = self._place
            for q in (p.pending, current, current.pending):
                if q is None or not q.nodes:
                    continue
                for node in q.replicas(kb):
                    if id(node) in done:
                        continue
                    done.add(id(node))
                    if node.is_up:
                        try:
                            node._put(kb, record)
                        except StoreError as exc:
                            self._health.suspect(node, exc)  # repair() completes it
            if self._place is current:
                return
            p = current

    def _read_one(self, kb: bytes, replicas: list[Node], consistency: Any) -> Record | None:
        up = [node for node in replicas if node.is_up]
        if not up:
            level = self._rlevel if consistency is None else consistency
            raise self._refuse(level, "read", 1, replicas)
        policy = self._policy
        if policy == "random" and len(up) > 1:
            i = int(random.random() * len(up))
            up = up[i:] + up[:i]
        elif policy == "fastest":
            if random.random() < 1 / 16:  # now and then, measure another replica
                random.shuffle(up)
            else:
                up.sort(key=_latency_rank)
        error = None
        for node in up:
            try:
                if policy == "fastest":
                    started = time.perf_counter()
                    record = node._get(kb)
                    node._observe_latency(time.perf_counter() - started)
                    return record
                return node._get(kb)
            except StoreError as exc:
                error = exc
                self._health.suspect(node, exc)
        level = self._rlevel if consistency is None else consistency
        raise self._failed(level, "read", 1, len(replicas), 0, [n.name for n in up]) from error

    def _read_degraded(
        self,
        kb: bytes,
        replicas: list[Node],
        need: int,
        consistency: Any,
        error: StoreError | None = None,
    ) -> Record | None:
        level = self._rlevel if consistency is None else consistency
        up = [node for node in replicas if node.is_up]
        if len(up) < need:
            if error is not None:  # this call met the failure: say so
                failed = [node.name for node in replicas if not node.is_up]
                raise self._failed(level, "read", need, len(replicas), len(up), failed) from error
            raise self._refuse(level, "read", need, replicas)
        asked: list[Node] = []
        records: list[Record | None] = []
        failed = []
        error = None
        for node in up:
            try:
                records.append(node._get(kb))
            except StoreError as exc:
                error = exc
                self._health.suspect(node, exc)
                failed.append(node.name)
                continue
            asked.append(node)
            if len(asked) == need:
                return self._read_repair(kb, asked, records)
        raise self._failed(level, "read", need, len(replicas), len(asked), failed) from error

    def _read_repair(
        self, kb: bytes, nodes: list[Node], records: list[Record | None]
    ) -> Record | None:
        """The newest of `records`; first written to each of `nodes` whose copy is older."""
        best = None
        for record in records:
            if record is not None and (best is None or record[0] > best[0]):
                best = record
        if best is None:
            return None
        fixed = 0
        for node, record in zip(nodes, records):
            if record is not best and (record is None or record[0] < best[0]):
                try:
                    fixed += node._put(kb, best)
                except StoreError as exc:
                    self._health.suspect(node, exc)  # the read still answers; repair() completes it
        if fixed:
            with self._counter_lock:
                self._read_repairs += fixed
        return best

    # ------------------------------------------------------- node failures

    def _probe_due(self) -> None:
        """Probe the suspected nodes whose backoff has elapsed; hand hints to those back."""
        if self._health.due():
            back = self._health.probe()
            if back:
                self._welcome(back)

    def _welcome(self, back: list[Node]) -> int:
        p = self._place
        names = [node.name for node in back if node.is_up and node.name in p.by_name]
        return self._hints.deliver(p, names) if names else 0

    def probe(self) -> list[str]:
        """Ping every suspected node now; returns the names of those back up.

        Their hints are handed over.  Calls also probe by themselves, with
        backoff (see ``probe_interval``); this is for operators and tests.
        """
        back = self._health.probe(force=True)
        if back:
            self._welcome(back)
        return sorted(node.name for node in back)

    @property
    def suspected(self) -> tuple[str, ...]:
        """Names of the nodes suspected down (their store failed), in name order."""
        return tuple(sorted(self._suspects))

    def _run(
        self, calls: list[tuple[Node, str, tuple[Any, ...]]], timed: bool = False
    ) -> list[Any]:
        """Make store calls (node, method name, args); each result, or the StoreError it raised.

        Calls to stores that do I/O overlap: each is begun (its request sent)
        before any is finished (its reply read), so the servers work at the
        same time; timed calls (the "fastest" read policy) run in the cluster's
        thread pool instead, each timed on its own.  In-process stores are
        called in turn.  A node whose call fails is suspected down.
        """
        if len(calls) > 1 and any(node.store.does_io for node, _, _ in calls):
            if timed:
                pool = self._executor()
                futures = [
                    pool.submit(_attempt, node, name, args, True) for node, name, args in calls
                ]
                results = [future.result() for future in futures]
            else:
                finishers = []
                try:
                    for node, name, args in calls:
                        finishers.append(node.store.begin(name, *args))
                except BaseException:
                    for finish in finishers:  # read what was sent: no connection left mid-reply
                        _finish(finish)
                    raise
                results = [_finish(finish) for finish in finishers]
        else:
            results = [_attempt(node, name, args, timed) for node, name, args in calls]
        for (node, _, _), result in zip(calls, results):
            if isinstance(result, StoreError):
                self._health.suspect(node, result)
        return results

    def _executor(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._counter_lock:
                pool = self._pool
                if pool is None:
                    workers = min(32, max(4, 2 * len(self._place.nodes)))
                    pool = self._pool = ThreadPoolExecutor(workers, "cvstore-io")
        return pool

    def close(self) -> None:
        """Stop the cluster's I/O threads (if batches started any).  The stores stay open."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

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
        p = self._place
        if not p.nodes:
            raise EmptyRingError(
                "the cluster has no nodes; add one with cluster.add_node(Node(name))"
            )
        if self._suspects:
            self._probe_due()
        if self._pending_hints:
            self._hints.deliver_found(p, p.nodes)
        need = p.wneed[level]
        with gc_paused():
            step = _io_step(p, len(kbs))
            if step < len(kbs):  # refuse before writing anything, as one batch would
                self._writable(p, kbs, need, level)
            for i in range(0, len(kbs), step):
                self._write_batch(p, kbs[i : i + step], values[i : i + step], need, level)

    def _writable(
        self, p: Placement, kbs: list[bytes], need: int, level: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each key's replicas and which of them are up; refuses if a key has too few up."""
        prefs = p.replicas_many(kbs)
        up_rows = p.alive()[prefs]
        if not up_rows.all():
            short = np.flatnonzero(up_rows.sum(axis=1) < max(need, 1))
            if short.size:
                replicas = [p.nodes[j] for j in prefs[short[0]].tolist()]
                raise self._refuse(level, "write", need, replicas)
        return prefs, up_rows

    def _write_batch(
        self, p: Placement, kbs: list[bytes], values: list[Any], need: int, level: str
    ) -> None:
        count = len(kbs)
        prefs, up_rows = self._writable(p, kbs, need, level)
        all_up = bool(up_rows.all())
        # One version for the whole batch, as a Cassandra batch has one
        # timestamp: versions order the writes of each key, and a batch
        # writes each key once.
        version = self._now()
        records = list(map(_new, repeat(Record, count), zip(repeat(version, count), values)))
        kb_arr = _objects(kbs, count)
        rec_arr = _objects(records, count)
        if need == EVENTUAL:
            self._write_batch_eventual(p, kb_arr, rec_arr, prefs, up_rows)
        else:
            ok = up_rows.copy()
            if all_up:
                targets = [(j, pos // prefs.shape[1]) for j, pos in _groups(prefs.ravel())]
            else:
                rows, cols = np.nonzero(up_rows)
                targets = [(j, rows[pos]) for j, pos in _groups(prefs[rows, cols])]
            calls = [
                (p.nodes[j], "put_many_columns", (kb_arr[rows].tolist(), rec_arr[rows].tolist()))
                for j, rows in targets
            ]
            for (j, rows), result in zip(targets, self._run(calls)):
                if isinstance(result, StoreError):
                    # Not an acknowledgement, even if the batch landed before a
                    # timeout: the hints written below cover it.
                    ok[rows] &= prefs[rows] != j
            if not ok.all():
                self._hint_rows(p, kb_arr, rec_arr, prefs, ok)
                acks = ok.sum(axis=1)
                short = np.flatnonzero(acks < need)
                if short.size:
                    i = int(short[0])
                    failed = [p.nodes[j].name for j, good in zip(prefs[i], ok[i]) if not good]
                    raise self._failed(level, "write", need, prefs.shape[1], int(acks[i]), failed)
        if p.pending is not None or self._place is not p:
            self._write_batch_moving(kbs, records, p, prefs)

    def _hint_rows(
        self,
        p: Placement,
        kb_arr: np.ndarray,
        rec_arr: np.ndarray,
        prefs: np.ndarray,
        ok: np.ndarray,
    ) -> None:
        items = []
        for i in np.flatnonzero(~ok.all(axis=1)).tolist():
            replicas = [p.nodes[j] for j in prefs[i].tolist()]
            missed = [node for node, good in zip(replicas, ok[i].tolist()) if not good]
            items.append((kb_arr[i], rec_arr[i], replicas, missed))
        self._hints.hint(p, items)

    def _write_batch_eventual(
        self,
        p: Placement,
        kb_arr: np.ndarray,
        rec_arr: np.ndarray,
        prefs: np.ndarray,
        up_rows: np.ndarray,
    ) -> None:
        rows = np.arange(len(kb_arr))
        first = np.argmax(up_rows, axis=1)
        writer = prefs[rows, first]
        for j, pos in _groups(writer):
            try:
                p.nodes[j].store.put_many_columns(kb_arr[pos].tolist(), rec_arr[pos].tolist())
            except StoreError as exc:  # that replica failed: write these keys one by one to another
                self._health.suspect(p.nodes[j], exc)
                for i in pos.tolist():
                    replicas = [p.nodes[x] for x in prefs[i].tolist()]
                    self._put_eventual(p, kb_arr[i], rec_arr[i], replicas, "eventual")
                continue
            for c in range(prefs.shape[1]):
                skipped = pos[first[pos] != c]
                for owner, pos2 in _groups(prefs[skipped, c]):
                    hint = list(
                        zip(kb_arr[skipped[pos2]].tolist(), rec_arr[skipped[pos2]].tolist())
                    )
                    self._hints.hint_eventual(p.nodes[j], [p.nodes[owner]], hint)
        if self._hints.backlog >= EVENTUAL_BATCH:
            self._hints.deliver(p, list(self._hints.lagging))

    def _write_batch_moving(
        self, kbs: list[bytes], records: list[Record], p: Placement, prefs: np.ndarray
    ) -> None:
        count = len(kbs)
        kb_arr = _objects(kbs, count)
        rec_arr = _objects(records, count)
        while True:
            current = self._place
            for q in (p.pending, current, current.pending):
                if q is None or not q.nodes:
                    continue
                q_prefs = q.replicas_many(kbs)
                for j, pos in _groups(q_prefs.ravel()):
                    node = q.nodes[j]
                    if node.is_up:
                        rows = pos // q_prefs.shape[1]
                        try:
                            node.store.put_many_columns(
                                kb_arr[rows].tolist(), rec_arr[rows].tolist()
                            )
                        except StoreError:
                            pass  # repair() completes it
            if self._place is current:
                return
            p = current

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
        while True:
            p = self._place
            if not p.nodes:
                raise EmptyRingError(
                    "the cluster has no nodes; add one with cluster.add_node(Node(name))"
                )
            if self._suspects:
                self._probe_due()
            if self._pending_hints:
                self._hints.deliver_found(p, p.nodes)
            with gc_paused():
                step = _io_step(p, len(kbs))
                best = []
                for i in range(0, len(kbs), step):
                    best += self._read_batch(p, kbs[i : i + step], p.rneed[level], level)
            if self._place is p:
                break
        # Built with C-level map/zip: this runs once per key of the batch.
        if None in best:
            keep = list(map(is_not, best, repeat(None)))
            keys = list(compress(keys, keep))
            best = list(compress(best, keep))
        values = list(map(_value, best))
        if any(map(is_, values, repeat(TOMBSTONE))):
            return {key: value for key, value in zip(keys, values) if value is not TOMBSTONE}
        return dict(zip(keys, values))

    def _read_batch(self, p: Placement, kbs: list[bytes], need: int, level: str) -> list[Any]:
        count = len(kbs)
        prefs = p.replicas_many(kbs)
        n = prefs.shape[1]
        up_rows = p.alive()[prefs]
        short = np.flatnonzero(up_rows.sum(axis=1) < need)
        if short.size:
            replicas = [p.nodes[j] for j in prefs[short[0]].tolist()]
            raise self._refuse(level, "read", need, replicas)
        rows = np.arange(count)
        if need == 1:
            if self._policy == "primary" or n == 1:
                col = np.argmax(up_rows, axis=1)
            elif self._policy == "random":
                col = np.argmax(up_rows + np.random.random(up_rows.shape), axis=1)
            else:
                latency = np.array([node.latency or 0.0 for node in p.nodes])
                col = np.argmin(np.where(up_rows, latency[prefs], np.inf), axis=1)
            chosen = prefs[rows, col][:, None]
        elif bool(up_rows.all()):
            chosen = prefs[:, :need]
        else:
            order = np.argsort(~up_rows, axis=1, kind="stable")[:, :need]
            chosen = np.take_along_axis(prefs, order, axis=1)
        kb_arr = _objects(kbs, count)
        retry = np.zeros(count, dtype=bool)
        # One call per node for all the keys it is asked (a node is one
        # replica of each of its keys, whichever slot it fills for the key).
        tasks = [(pos // need, pos % need, j) for j, pos in _groups(chosen.ravel())]
        timed = self._policy == "fastest" and need == 1
        calls = [(p.nodes[j], "get_many", (kb_arr[rows].tolist(),)) for rows, _, j in tasks]
        columns = [np.full(count, None, dtype=object) for _ in range(need)]
        for (rows, slot, _), result in zip(tasks, self._run(calls, timed=timed)):
            if isinstance(result, StoreError):
                retry[rows] = True
                continue
            records = _objects(result, rows.size)
            if need == 1:
                columns[0][rows] = records
            else:
                for s in range(need):
                    mine = slot == s
                    columns[s][rows[mine]] = records[mine]
        slots = [column.tolist() for column in columns]
        best = slots[0]
        if need > 1:
            best = list(best)
            differ: set[int] = set()
            for other in slots[1:]:
                unequal = list(map(is_not, best, other))
                if any(unequal):
                    # Stores that decode a fresh record per read (Redis) return equal
                    # versions as distinct objects: compare versions for those keys.
                    for i in compress(range(count), unequal):
                        mine, theirs = best[i], other[i]
                        if mine is None or theirs is None or mine[0] != theirs[0]:
                            differ.add(i)
            repairs: dict[int, list[tuple[bytes, Record]]] = {}
            for i in sorted(differ):
                newest = None
                for slot in slots:
                    record = slot[i]
                    if record is not None and (newest is None or record[0] > newest[0]):
                        newest = record
                best[i] = newest
                if newest is None or retry[i]:
                    continue
                for s, slot in enumerate(slots):
                    record = slot[i]
                    if record is not newest and (record is None or record[0] < newest[0]):
                        repairs.setdefault(int(chosen[i, s]), []).append((kbs[i], newest))
            fixed = 0
            for j, items in repairs.items():
                try:
                    fixed += sum(p.nodes[j].store.put_many(items))
                except StoreError as exc:
                    self._health.suspect(p.nodes[j], exc)
            if fixed:
                with self._counter_lock:
                    self._read_repairs += fixed
        for i in np.flatnonzero(retry).tolist():  # a store failed: read these keys one by one
            replicas = [p.nodes[j] for j in prefs[i].tolist()]
            if need == 1:
                best[i] = self._read_one(kbs[i], replicas, level)
            else:
                best[i] = self._read_degraded(kbs[i], replicas, need, level)
        return best

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
        """Keys whose newest copy on the up nodes is not a tombstone."""
        p = self._place
        if self._pending_hints:  # a scan meets every node: hand over what it can first
            self._hints.deliver_found(p, p.nodes)
        nodes = [node for node in p.nodes if node.is_up]
        found: set[bytes] = set()
        tombstoned: set[bytes] = set()
        with gc_paused():
            for node in nodes:
                try:
                    keys, records = scan_columns(node.store)
                except StoreError:
                    continue
                found.update(keys)
                flags = tombstone_flags(records)
                if any(flags):
                    tombstoned.update(compress(keys, flags))
            # Deleted keys are few: settle each by its newest copy.
            dead = set()
            for kb in tombstoned:
                newest = None
                for node in nodes:
                    try:
                        record = node.store.get(kb)
                    except StoreError:
                        continue
                    if record is not None and (newest is None or record[0] > newest[0]):
                        newest = record
                if newest is None or newest[1] is TOMBSTONE:
                    dead.add(kb)
            return list(found - dead) if dead else list(found)

    def __iter__(self) -> Iterator[str | bytes]:
        """Every live key on the nodes that are up (str when it is UTF-8, else bytes).

        A snapshot taken when iteration starts; O(records).
        """
        return iter([key_out(kb) for kb in self._live_keys()])

    def __len__(self) -> int:
        """Distinct live keys on the nodes that are up; O(records)."""
        return len(self._live_keys())

    def __repr__(self) -> str:
        p = self._place
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
        with self._membership:
            old = self._place
            if node.name in old.by_name:
                raise NodeExistsError(f"node {node.name!r} is already in the cluster")
            _check_joinable(node)
            if not node.is_up:
                raise ValueError(f"node {node.name!r} is down; recover() it before adding it")
            if self._pending_hints:  # stream from replicas that are as whole as they can be
                self._hints.deliver_found(old, old.nodes)
            new = self._placement(list(old.nodes) + [node])
            node._cluster = self
            node._clock = self._clock
            try:
                return rebalance(old, new, self._install, self._hints, action="add", node=node.name)
            except BaseException:
                node._cluster = None
                node._clock = _LONE_CLOCK
                raise

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
        with self._membership:
            old = self._place
            member = old.by_name.get(name)
            if member is None or (isinstance(node, Node) and node is not member):
                raise NodeNotFoundError(f"node {name!r} is not in the cluster")
            remaining = [n for n in old.nodes if n is not member]
            if not remaining:
                try:
                    held = member.store.count()
                except StoreError:
                    held = -1
                if held:
                    raise ValueError(
                        f"cannot remove {name!r}: it is the cluster's last node and holds data "
                        "that would be lost; add another node first"
                    )
            if self._pending_hints:
                self._hints.deliver_found(old, old.nodes)
            new = self._placement(remaining)
            report = rebalance(old, new, self._install, self._hints, action="remove", node=name)
            self._hints.move(new, member)
            self._hints.forget_node(name)
            if new.nodes:
                self._hints.deliver(new)  # hints meant for the node go to the keys' new replicas
            member._cluster = None
            member._clock = _LONE_CLOCK
            return report

    # ---------------------------------------------------------- maintenance

    def repair(self) -> RepairReport:
        """Anti-entropy: make every replica set whole and current.

        Delivers hints, writes each key's newest copy to replicas that lack
        it, removes stray copies, and purges tombstones older than
        ``tombstone_grace`` once all of the key's replicas are current.
        Keys with a replica down are completed as far as possible.
        """
        self.probe()
        with self._membership, gc_paused():
            return repair(self._place, self._hints, self._clock.time_ms(), self._grace_ms)

    def deliver_hints(self) -> int:
        """Hand waiting hints to their owners that are up; returns how many were handed over.

        Suspected nodes are probed first, so a node that is back gets its hints.
        """
        back = self._health.probe(force=True)
        with self._membership:
            welcomed = self._welcome(back) if back else 0
            return welcomed + self._hints.deliver(self._place)

    def stats(self) -> ClusterStats:
        """Keys per node, share against weight, imbalance, hints and error counters.

        ``per_node`` adds each member's up/suspected state, the store failures
        the cluster met, and the store's own call counts and latency.
        """
        with gc_paused():
            return collect(
                self._place, self._hints, self._read_repairs, self._unavailable, self._health
            )


def _attempt(node: Node, name: str, args: tuple[Any, ...], timed: bool) -> Any:
    try:
        if timed:
            started = time.perf_counter()
            result = getattr(node.store, name)(*args)
            node._observe_latency((time.perf_counter() - started) / max(1, len(args[0])))
            return result
        return getattr(node.store, name)(*args)
    except StoreError as exc:
        return exc


def _io_step(p: Placement, count: int) -> int:
    """Keys per store call for a batch of `count` keys.

    A batch to servers goes in slices of IO_BATCH keys, each sent to every
    node before any reply is read: a whole large batch written to one server
    fills its socket while the other servers wait for their requests.
    Measured, put_many of 200,000 keys over 3 Redis servers: 382k records/s
    whole, 424k-538k in slices of 2,000, 576k-699k of 5,000, 608k-745k of
    10,000; get_many the same within noise.  Batches to in-process stores go
    whole.
    """
    if count > IO_BATCH and any(node.store.does_io for node in p.nodes):
        return IO_BATCH
    return max(count, 1)


def _finish(finish: Callable[[], Any]) -> Any:
    try:
        return finish()
    except StoreError as exc:
        return exc


def _check_policy(policy: Any) -> str:
    if isinstance(policy, str) and policy in READ_POLICIES:
        return policy
    raise ValueError(f"read_policy must be one of {READ_POLICIES}, got {policy!r}")


def _check_joinable(node: Any) -> None:
    if not isinstance(node, Node):
        raise TypeError(
            f"nodes must be Node objects, got {type(node).__name__}; make one with Node(name)"
        )
    if node._cluster is not None:
        raise ValueError(f"node {node.name!r} already belongs to a cluster; remove it there first")


def _latency_rank(node: Node) -> float:
    # Nodes never measured go first, so every replica gets measured.
    latency = node.latency
    return -1.0 if latency is None else latency
