"""Cluster: the sync driver — a replicated key-value store over a ring of nodes, Dynamo-style.

Each key lives on N = min(replication_factor, nodes) nodes, its preference
list on the ring.  Every write carries a version from the cluster's hybrid
logical clock and the newest version wins; deletes write tombstones.  Each
call picks a consistency level (how many replicas must answer); a level that
cannot be met raises ``UnavailableError``.  Reads repair the replicas they
asked, writes for a down replica go to another node as hints, ``repair()``
brings every replica set up to date, and adding or removing a node streams
exactly the copies that change hands.

Each public call is one procedure of ``cvstore._ops`` (the same the asyncio
driver runs) over the core's decisions (``cvstore.core``).  This driver
makes the store calls they ask for, overlapping those of one step (each
request sent before any reply is read); it probes suspected nodes in a
daemon thread, closes, and gives the mapping face.
"""

from __future__ import annotations

import threading
from collections.abc import (
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

from cvstore import _direct
from cvstore import _ops as ops
from cvstore._driver import MISSING, WALK_BATCH, Progress
from cvstore._hedge import LateReplies, call_hedged
from cvstore._probers import ThreadProber
from cvstore._types import D, Key, KeyIn, V
from cvstore.core.batch import IO_BATCH
from cvstore.core.calls import Call, Hedged
from cvstore.core.levels import Level
from cvstore.core.rebalance import MembershipReport
from cvstore.core.repair import RepairReport
from cvstore.core.stats import ClusterStats
from cvstore.node import Node
from cvstore.stores.base import Store

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

__all__ = ("IO_BATCH", "Cluster")

log = ops.log
T = TypeVar("T")


class Cluster(ops.Client, MutableMapping[Key, V], Generic[V]):
    """Nodes holding N versioned copies of each key, with per-call consistency.

    The options are those of both drivers (``help(Cluster.__init__)``).

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

    _layout_stores = "Redis stores"

    def _started(self) -> None:
        self._membership = threading.RLock()
        self._prober: ThreadProber | None = None
        self._prober_lock = threading.Lock()
        self._late = LateReplies(self._start_prober)
        self._state.hedging = True  # hedged reads: see _hedge.call_hedged
        members = self._share_at_open
        self._run(ops.start(self, members, ops.connect_like(members or ())))

    # -------------------------------------------- membership on the nodes

    @classmethod
    def create(cls, nodes: Iterable[Node], *, connect: Any = None, **options: Any) -> Cluster[V]:
        """A new cluster whose membership lives on its nodes: the first layout is written.

        LayoutError if a node already belongs to a cluster.  `connect(spec) ->
        Store` makes the store of a node a layout names (Redis nodes need none).
        """
        cluster = cls((), **options)
        return cluster._run(ops.create(cluster, nodes, connect))  # type: ignore[no-any-return]

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

        `seeds`: node URLs (``redis://host:port/db``, read with `prefix`,
        `timeout`, `codec` and the URL's credentials, kept for every node) or
        stores, or one of them.  The highest epoch among the seeds wins; it
        sets the options that shape placement.  LayoutError for a layout
        naming two nodes at one address and prefix.
        """
        cluster = cls((), **options)
        seed = lambda s: ops.seed_store(s, prefix, timeout, codec, asyncio=False)
        return cluster._run(ops.join(cluster, seeds, seed, connect))  # type: ignore[no-any-return]

    # ---------------------------------------------------------- single keys

    # put and get are the core's per-key functions themselves, compiled
    # (cvstore._direct, the twin of core.direct): no wrapper frame on the hot
    # path; what they do not do in place, they hand to _general_put / _general_get.
    if TYPE_CHECKING:

        def put(
            self, key: Key, value: V, *, consistency: Level | None = None, ttl: float | None = None
        ) -> None: ...
        @overload
        def get(
            self, key: Key, default: None = None, *, consistency: Level | None = None
        ) -> V | None: ...
        @overload
        def get(self, key: Key, default: V | D, *, consistency: Level | None = None) -> V | D: ...
        def get(
            self, key: Key, default: Any = None, *, consistency: Level | None = None
        ) -> Any: ...

    else:
        put = _direct.put
        get = _direct.get

    def _general_put(self, kb: bytes, value: Any, level: Level) -> None:
        return self._run(ops.write(self._state, kb, value, level))

    def _general_get(self, kb: bytes, level: Level, default: Any) -> Any:
        return self._run(ops.read(self._state, kb, level, default))

    def delete(self, key: Key, *, consistency: Level | None = None) -> None:
        """Delete `key`: write a tombstone, at `consistency`, like a put."""
        return self._run(ops.delete(self, key, consistency))

    def put_many(
        self,
        mapping: Mapping[KeyIn, V] | Iterable[tuple[KeyIn, V]],
        *,
        consistency: Level | None = None,
        ttl: float | None = None,
    ) -> None:
        """Store many keys at once: ``put`` for each, with one store call per node.

        UnavailableError before anything is written if a key has too few
        replicas up.  A key given twice keeps its last value; `ttl` is every key's.
        """
        return self._run(ops.put_many(self, mapping, consistency, ttl))

    def get_many(
        self, keys: Iterable[KeyIn], *, consistency: Level | None = None
    ) -> dict[KeyIn, V]:
        """``{key: value}`` of many keys (those without a value absent), each read as ``get``
        reads it, with one store call per node."""
        return self._run(ops.get_many(self, keys, consistency))

    # ------------------------------------------------------------- mapping

    def __setitem__(self, key: Key, value: V) -> None:
        self.put(key, value)

    def __getitem__(self, key: Key) -> V:
        value = self.get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __delitem__(self, key: Key) -> None:
        return self._run(ops.delitem(self, key))

    def __contains__(self, key: object) -> bool:
        # a key that is not str/bytes gets get()'s TypeError, as ``[] in {}`` does
        return self._run(ops.contains(self, key))

    def __iter__(self) -> Iterator[Key]:
        """Every live key on the nodes that are up (str if UTF-8, else bytes): a snapshot; O(records)."""
        return iter(self._run(ops.keys(self)))

    def __len__(self) -> int:
        """Distinct live keys on the nodes that are up; O(records)."""
        return self._run(ops.count(self))

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
        keys = self._run(ops.keys(self))
        for i in range(0, len(keys), WALK_BATCH):
            yield from self._run(ops.items(self, keys[i : i + WALK_BATCH]))

    @overload
    def update(self, other: SupportsKeysAndGetItem[KeyIn, V], /, **kwargs: V) -> None: ...
    @overload
    def update(self, other: Iterable[tuple[KeyIn, V]], /, **kwargs: V) -> None: ...
    @overload
    def update(self, /, **kwargs: V) -> None: ...
    def update(self, /, *args: Any, **kwargs: Any) -> None:
        """``dict.update``: the pairs of a mapping, an iterable of pairs and keywords, in one ``put_many``."""
        return self._run(ops.update(self, args, kwargs))

    @overload
    def setdefault(self: Cluster[T | None], key: Key, default: None = None) -> T | None: ...
    @overload
    def setdefault(self, key: Key, default: V) -> V: ...
    def setdefault(self, key: Key, default: Any = None) -> Any:
        """The value of `key`; if it has none, `default` is stored and returned.

        A read then a write, not atomic: two clients may both store theirs (one wins).
        """
        return self._run(ops.setdefault(self, key, default))

    @overload
    def pop(self, key: Key) -> V: ...
    @overload
    def pop(self, key: Key, default: V) -> V: ...
    @overload
    def pop(self, key: Key, default: D) -> V | D: ...
    def pop(self, key: Key, default: Any = MISSING) -> Any:
        """Remove `key` and return its value; `default` (or KeyError) if it has none."""
        return self._run(ops.pop(self, key, default))

    def popitem(self) -> tuple[Key, V]:
        """Remove and return some (key, value) pair; KeyError if the cluster is empty.

        Keys come from one scan kept between calls; a key gone meanwhile is skipped.
        """
        return self._run(ops.popitem(self))

    def clear(self) -> None:
        """Delete every live key: one scan of keys (no values read), then tombstones in batches."""
        return self._run(ops.clear(self))

    # ---------------------------------------------------------- membership

    def add_node(self, node: Node, *, progress: Progress | None = None) -> MembershipReport:
        """Add `node` (up, of no other cluster) and stream to it the copies it now replicates.

        Copies are dropped from their old nodes only after they reached the new one.
        """
        return self._locked(ops.add_node(self, node, progress))

    def remove_node(
        self, node: Node | str, *, progress: Progress | None = None
    ) -> MembershipReport:
        """Decommission a node: stream its copies to their new replicas, then let it go.

        A down node's keys are streamed from their other replicas.  The last
        node cannot be removed while it holds data.
        """
        return self._locked(ops.remove_node(self, node, progress))

    def set_weight(
        self, node: Node | str, weight: float, *, progress: Progress | None = None
    ) -> MembershipReport:
        """Give a member a new weight (relative capacity) and stream the copies that move."""
        return self._locked(ops.set_weight(self, node, weight, progress))

    def finish_change(
        self, *, abort: bool = False, progress: Progress | None = None
    ) -> MembershipReport | None:
        """Finish a membership change a client left half done (it died, or lost its connection).

        Only for clusters whose membership lives on the nodes.  Carries the
        change forward (streams again, commits, drops), or with ``abort=True``
        back (joining nodes that answer are cleared of what was streamed to
        them).  None if no change is under way.  See the README.
        """
        return self._locked(ops.finish_change(self, abort, progress))

    # ---------------------------------------------------------- maintenance

    def repair(self, *, progress: Progress | None = None) -> RepairReport:
        """Anti-entropy: make every replica set whole and current.

        Delivers hints, writes each key's newest copy to replicas that lack
        it (or hold bytes that are not a record), removes stray copies, and
        purges tombstones older than ``tombstone_grace`` once every replica
        is current (keys with a replica down: as far as possible).
        """
        return self._locked(ops.repair(self, progress))

    def deliver_hints(self) -> int:
        """Hand waiting hints to their owners that are up (suspects probed first); how many."""
        return self._locked(ops.deliver_hints(self))

    def stats(self) -> ClusterStats:
        """Keys per node, share against weight, imbalance, hints and error counters.

        ``per_node``: each member's state, failures met, and its store's own counts and latency.
        """
        return self._run(ops.stats(self))

    def probe(self) -> list[str]:
        """Ping every suspected node now; returns the names of those back up.

        Their hints are handed over.  A background thread also probes them,
        with backoff (see ``probe_interval``); this is for operators and tests.
        """
        return self._run(ops.probe(self))

    # ------------------------------------------------------------- running

    def _locked(self, proc: Generator[Sequence[Call], Sequence[Any], T]) -> T:
        """Run a procedure under the membership lock (one change at a time)."""
        with self._membership:
            return self._run(proc)

    def _run(self, proc: Generator[Sequence[Call], Sequence[Any], T]) -> T:
        """Run a procedure to its result, making the store calls it asks for.

        An error is handed to ``ops.resume`` here, in this thread: a
        procedure's locks are released by the thread that took them.
        """
        send = proc.send
        try:
            calls = send(None)  # type: ignore[arg-type]
            while True:
                try:
                    results = self._execute(calls)
                except BaseException as exc:  # noqa: BLE001 - handed on
                    calls = ops.resume(proc, ops.Raised(exc))
                else:
                    calls = send(results)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _execute(self, calls: Sequence[Call]) -> list[Any]:
        """Make `calls` (to remote stores overlapped); each one's result, or the StoreError it raised."""
        if not calls:
            return []
        state = self._state
        epoch = state.epoch
        overlap = len(calls) > 1 and any(call.node.store.remote for call in calls)
        if type(calls) is Hedged:
            results = call_hedged(state, calls, epoch, self._late)
        elif calls[0].tracked:
            results = ops.call_tracked(state, calls, epoch, overlap)
        elif overlap and not calls[0].timed:
            results = ops.call_overlapped(calls, epoch)
        else:
            results = [ops.call_now(call, epoch) for call in calls]
        refused, suspected = ops.failures(state, calls, results)
        if suspected:
            self._start_prober()
        if refused is not None:
            raise refused  # thrown into the procedure: it loads the newer layout and asks again
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
                self._prober = ThreadProber(self)
                self._prober.start()
            else:
                self._prober.wake()

    def close(self) -> None:
        """Stop the prober thread and close the stores the cluster made; later calls raise.

        Stores made for nodes a layout named, or joined by URL, are closed;
        stores you passed in stay open.  Closing twice is fine.
        """
        with self._prober_lock:
            self._state.closed = True
            prober, self._prober = self._prober, None
        if prober is not None:
            prober.stop()
        for store in ops.made_stores(self._state):
            store.close()


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
