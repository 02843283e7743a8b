"""AsyncCluster: the asyncio driver — the same cluster as ``Cluster``, for asyncio services.

Each public call runs the procedure of ``cvstore._ops`` the sync ``Cluster``
runs; this driver only does their I/O with asyncio:

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

An AsyncCluster belongs to one event loop.  ``async with AsyncCluster(...)``
(or ``await cluster.open()`` / ``close()``): opening reads the layout and
adopts waiting hints; closing stops the background tasks and closes the
stores the cluster made.

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
from collections.abc import AsyncIterator, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from cvstore import _acalls as acalls
from cvstore import _ops as ops
from cvstore._driver import MISSING, Progress
from cvstore._probers import probe_loop
from cvstore._types import D, Key, KeyIn, V
from cvstore.core.calls import PENDING, Call, Hedged
from cvstore.core.direct import NOT_DONE
from cvstore.core.levels import Level
from cvstore.core.rebalance import MembershipReport
from cvstore.core.repair import RepairReport
from cvstore.core.stats import ClusterStats
from cvstore.errors import FencedError, StoreError, UnavailableError, closed_error
from cvstore.node import Node
from cvstore.stores.base import AsyncStore, Store, close_either

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

__all__ = ("AsyncCluster",)

log = ops.log
T = TypeVar("T")
Run = Generator[Sequence[Call], Sequence[Any], T]

# Seconds close() waits for writes still finishing in the background.
_CLOSE_WAIT = 5.0


class AsyncCluster(ops.Client, Generic[V]):
    """Nodes holding N versioned copies of each key, with per-call consistency, for asyncio.

    Takes the options of ``Cluster`` (see there); its calls are coroutines.
    """

    _layout_stores = "AsyncRedisStore"
    # One event loop, one task at a time between awaits: the core's locks are no-ops.
    _lock = contextlib.nullcontext

    def _started(self) -> None:
        self._opened = False
        self._membership = asyncio.Lock()
        self._prober: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._state.retire = self._retire
        self._state.hedging = True  # hedged reads: see _acalls.hedged

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> AsyncCluster[V]:
        """Read the layout from the nodes (or write the first one) and adopt waiting hints."""
        if self._state.closed:
            raise closed_error()
        if not self._opened:
            self._opened = True
            members = self._share_at_open
            await self._run(ops.start(self, members, ops.connect_like(members or ())))
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
        # the work of calls that ended early may start more (a late failure's hint)
        loop = asyncio.get_running_loop()
        until = loop.time() + _CLOSE_WAIT
        while self._background and loop.time() < until:
            await asyncio.wait(set(self._background), timeout=until - loop.time())
        prober, self._prober = self._prober, None
        if prober is not None:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
        for store in ops.made_stores(self._state):
            await close_either(store)

    @classmethod
    async def create(
        cls, nodes: Iterable[Node], *, connect: Any = None, **options: Any
    ) -> AsyncCluster[V]:
        """A new cluster whose membership lives on its nodes (see ``Cluster.create``)."""
        cluster = cls((), **options)
        return await cluster._run(ops.create(cluster, nodes, connect))  # type: ignore[no-any-return]

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
        cluster = cls((), **options)
        seed = lambda s: ops.seed_store(s, prefix, timeout, codec, asyncio=True)
        return await cluster._run(ops.join(cluster, seeds, seed, connect))  # type: ignore[no-any-return]

    # ---------------------------------------------------------- single keys

    async def put(
        self, key: Key, value: V, *, consistency: Level | None = None, ttl: float | None = None
    ) -> None:
        """Store `value` under `key` on its replicas (see ``Cluster.put``).

        Returns once the level is met; replicas still answering finish in
        the background.
        """
        return await self._run(ops.put(self, key, value, consistency, ttl))

    async def delete(self, key: Key, *, consistency: Level | None = None) -> None:
        """Delete `key`: write a tombstone, at `consistency`, like a put."""
        return await self._run(ops.delete(self, key, consistency))

    @overload
    async def get(
        self, key: Key, default: None = None, *, consistency: Level | None = None
    ) -> V | None: ...
    @overload
    async def get(self, key: Key, default: V | D, *, consistency: Level | None = None) -> V | D: ...
    async def get(self, key: Key, default: Any = None, *, consistency: Level | None = None) -> Any:
        """The value of `key`, or `default` if it has none (see ``Cluster.get``)."""
        return await self._run(ops.get(self, key, default, consistency))

    def _general_put(self, kb: bytes, value: Any, level: Level) -> Any:
        return NOT_DONE  # ops.put runs the general procedure

    def _general_get(self, kb: bytes, level: Level, default: Any) -> Any:
        return NOT_DONE  # ops.get runs the general procedure

    async def contains(self, key: Key) -> bool:
        """Whether `key` has a value (``key in cluster`` of the sync driver)."""
        return await self._run(ops.contains(self, key))

    async def put_many(
        self,
        mapping: Mapping[KeyIn, V] | Iterable[tuple[KeyIn, V]],
        *,
        consistency: Level | None = None,
        ttl: float | None = None,
    ) -> None:
        """Store many keys at once, one store call per node (see ``Cluster.put_many``)."""
        return await self._run(ops.put_many(self, mapping, consistency, ttl))

    async def get_many(
        self, keys: Iterable[KeyIn], *, consistency: Level | None = None
    ) -> dict[KeyIn, V]:
        """The values of many keys: ``{key: value}``, keys without a value absent."""
        return await self._run(ops.get_many(self, keys, consistency))

    # ------------------------------------------------- the mapping calls

    async def keys(self) -> list[Key]:
        """Every live key on the nodes that are up (str when it is UTF-8, else bytes)."""
        return await self._run(ops.keys(self))

    def __aiter__(self) -> AsyncIterator[Key]:
        """``async for key in cluster``: a snapshot of the live keys when iteration starts."""
        self._open()
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Key]:
        for key in await self.keys():
            yield key

    async def count(self) -> int:
        """Distinct live keys on the nodes that are up (``len(cluster)`` of the sync driver)."""
        return await self._run(ops.count(self))

    async def items(self) -> list[tuple[Key, V]]:
        """Every (key, value): one scan for the keys, then ``get_many`` of 10,000 at a time."""
        return await self._run(ops.walk(self))

    async def values(self) -> list[V]:
        """Every value (see ``items``)."""
        return await self._run(ops.values(self))

    @overload
    async def update(self, other: SupportsKeysAndGetItem[KeyIn, V], /, **kwargs: V) -> None: ...
    @overload
    async def update(self, other: Iterable[tuple[KeyIn, V]], /, **kwargs: V) -> None: ...
    @overload
    async def update(self, /, **kwargs: V) -> None: ...
    async def update(self, /, *args: Any, **kwargs: Any) -> None:
        """``dict.update``: a mapping, an iterable of pairs and keywords, in one ``put_many``."""
        return await self._run(ops.update(self, args, kwargs))

    @overload
    async def setdefault(
        self: AsyncCluster[T | None], key: Key, default: None = None
    ) -> T | None: ...
    @overload
    async def setdefault(self, key: Key, default: V) -> V: ...
    async def setdefault(self, key: Key, default: Any = None) -> Any:
        """The value of `key`; if it has none, `default` is stored and returned (read, then write)."""
        return await self._run(ops.setdefault(self, key, default))

    @overload
    async def pop(self, key: Key) -> V: ...
    @overload
    async def pop(self, key: Key, default: V) -> V: ...
    @overload
    async def pop(self, key: Key, default: D) -> V | D: ...
    async def pop(self, key: Key, default: Any = MISSING) -> Any:
        """Remove `key` and return its value; `default` (or KeyError) if it has none."""
        return await self._run(ops.pop(self, key, default))

    async def popitem(self) -> tuple[Key, V]:
        """Remove and return some (key, value) pair; KeyError if empty (one scan kept between calls)."""
        return await self._run(ops.popitem(self))

    async def clear(self) -> None:
        """Delete every live key: one scan of keys (no values read), then tombstones in batches."""
        return await self._run(ops.clear(self))

    # ------------------------------------------------- membership, maintenance

    async def add_node(self, node: Node, *, progress: Progress | None = None) -> MembershipReport:
        """Add `node` and stream to it exactly the copies it now replicates."""
        return await self._locked(ops.add_node(self, node, progress))

    async def remove_node(
        self, node: Node | str, *, progress: Progress | None = None
    ) -> MembershipReport:
        """Decommission a node: stream its copies to their new replicas, then let it go."""
        return await self._locked(ops.remove_node(self, node, progress))

    async def set_weight(
        self, node: Node | str, weight: float, *, progress: Progress | None = None
    ) -> MembershipReport:
        """Give a member a new weight and stream the copies that move (see ``Cluster``)."""
        return await self._locked(ops.set_weight(self, node, weight, progress))

    async def finish_change(
        self, *, abort: bool = False, progress: Progress | None = None
    ) -> MembershipReport | None:
        """Finish a membership change a client left half done (see ``Cluster.finish_change``)."""
        return await self._locked(ops.finish_change(self, abort, progress))

    async def repair(self, *, progress: Progress | None = None) -> RepairReport:
        """Anti-entropy: make every replica set whole and current (see ``Cluster.repair``)."""
        return await self._locked(ops.repair(self, progress))

    async def deliver_hints(self) -> int:
        """Hand waiting hints to their owners that are up; how many were handed over."""
        return await self._locked(ops.deliver_hints(self))

    async def stats(self) -> ClusterStats:
        """Keys per node, share against weight, imbalance, hints and error counters."""
        return await self._run(ops.stats(self))

    async def probe(self) -> list[str]:
        """Ping every suspected node now; the names of those back up (their hints handed over)."""
        return await self._run(ops.probe(self))

    # ------------------------------------------------------------- running

    async def _locked(self, proc: Run[T]) -> T:
        """Run a procedure under the membership lock (one change at a time)."""
        if not self._opened:
            await self.open()
        async with self._membership:
            return await self._run(proc)

    async def _run(self, proc: Run[T], outcome: Any = None) -> T:
        """Run a procedure to its result, making the store calls it asks for (opens first).

        What a step raises is handed to ``ops.resume``.  A refusal made with no
        I/O yields once first, or a caller that only retries starves the prober.
        `outcome`: what to send in first (a procedure already started).
        """
        if not self._opened:
            await self.open()
        while True:
            try:
                calls = ops.resume(proc, outcome)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except UnavailableError:
                await asyncio.sleep(0)
                raise
            try:
                outcome = await self._execute(calls)
            except BaseException as exc:  # noqa: BLE001 - handed on
                outcome = ops.Raised(exc)

    async def _execute(self, calls: Sequence[Call]) -> list[Any]:
        """Make `calls` concurrently (in-process stores directly); each result or StoreError.

        A ``core.calls.Step`` returns once it has enough answers; its other
        calls finish in the background, where its ``late`` procedure runs on them.
        Each request is a task that reports to a ``_Step`` as it ends; the
        caller waits on one future, which the step settles.
        """
        if not calls:
            return []
        if type(calls) is Hedged:
            return await acalls.hedged(self, calls)
        state = self._state
        epoch = state.epoch
        results: list[Any] = [PENDING] * len(calls)
        error: BaseException | None = None
        step: _Step | None = None
        for i, call in enumerate(calls):
            if isinstance(call.node.store, AsyncStore):
                if step is None:
                    step = _Step(self, calls, results)
                step.start(i, acalls.acall(call, epoch, state.replicas))
            elif error is None:
                try:
                    if call.tracked:
                        results[i] = ops.call_tracked(state, [call], epoch, False)[0]
                    else:
                        results[i] = ops.call_now(call, epoch)
                except BaseException as exc:  # noqa: BLE001 - raised below
                    error = exc
        if step is not None:
            step.error = error
            try:
                await step.woken
            except BaseException:  # cancelled: the call's requests go with it
                step.drop()
                raise
            error = step.error
            if step.left:
                if error is not None:
                    step.drop()
                else:  # answered early: the rest finish in the background
                    for task in step.hand_on():
                        self._background.add(task)
                        task.add_done_callback(self._background.discard)
        if error is not None:
            raise error
        return self._settle(calls, results)

    def _settle(self, calls: Sequence[Call], results: list[Any]) -> list[Any]:
        """`results`, once unreachable nodes are suspected; a fenced refusal is raised."""
        refused, suspected = ops.failures(self._state, calls, results)
        if suspected:
            self._start_prober()
        if refused is not None:
            raise refused  # thrown into the procedure: it loads the newer layout and asks again
        return results

    def _finished_late(self, step: Any, answered: list[tuple[Call, Any]]) -> None:
        """The calls of `step` that ended after it went on: suspect, then run its ``late``."""
        calls, results = [call for call, _ in answered], [result for _, result in answered]
        if ops.failures(self._state, calls, results)[1]:
            self._start_prober()
        late = [(call, r) for call, r in zip(calls, results) if not isinstance(r, FencedError)]
        if late:
            self._run_late(step.late(late))

    def _run_late(self, proc: Run[None]) -> None:
        """Run a ``late`` procedure: here if it asks for no I/O, else in a background task."""
        try:
            calls = ops.resume(proc, None)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - nobody is left to hand it to
            log.warning("finishing a call in the background failed: %s", exc)
            return

        async def rest() -> None:
            outcome: Any
            try:
                outcome = await self._execute(calls)
            except BaseException as exc:  # noqa: BLE001 - handed on
                outcome = ops.Raised(exc)
            await self._run(proc, outcome)

        self._in_background(rest())

    def _retire(self, store: Any) -> None:
        """Close a store no call needs any more, in a task that ``close()`` awaits."""
        self._in_background(_close_quietly(store))

    def _in_background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _start_prober(self) -> None:
        if self._state.closed or (self._prober is not None and not self._prober.done()):
            return
        self._prober = asyncio.ensure_future(probe_loop(self))


class _Step:
    """The requests of one step under way: each a task that reports here as it ends.

    ``woken`` is done once the caller may go on: every request has ended, or,
    with none having raised something other than a StoreError or refusal
    (``error``), the step's ``enough`` holds with no refusal among the
    answers.  Until then each result goes into `results`; after, into the
    answers the step's ``late`` procedure gets once the last has ended
    (``hand_on``), or nowhere (``drop``: cancelled).
    """

    __slots__ = ("calls", "cluster", "enough", "error", "late", "left", "results", "tasks", "woken")

    def __init__(self, cluster: AsyncCluster[Any], calls: Sequence[Call], results: list[Any]):
        self.cluster: AsyncCluster[Any] | None = cluster
        self.calls = calls
        self.results = results
        self.enough = getattr(calls, "enough", None)
        self.error: BaseException | None = None
        self.late: list[tuple[Call, Any]] | None = None  # set once the caller went on
        self.left = 0
        self.tasks: list[asyncio.Task[None] | None] = [None] * len(calls)
        self.woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self, i: int, request: Any) -> None:
        self.left += 1
        self.tasks[i] = asyncio.get_running_loop().create_task(self._run(i, request))

    async def _run(self, i: int, request: Any) -> None:
        try:
            result = await request
        except (StoreError, FencedError) as exc:
            result = exc
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - the step's error
            self._ended(i, None, exc)
            return
        self._ended(i, result, None)

    def _ended(self, i: int, result: Any, error: BaseException | None) -> None:
        self.left -= 1
        self.tasks[i] = None
        late = self.late
        if late is not None:  # the caller went on
            if self.cluster is None:  # dropped
                return
            if error is None:
                late.append((self.calls[i], result))
            if not self.left:
                self.cluster._finished_late(self.calls, late)
            return
        if error is not None:
            self.error = self.error or error
            result = None
        self.results[i] = result
        if self.woken.done():
            return
        # A refusal is settled by the driver (a reload, or that replica's
        # failure) before the step may count what answered.
        if not self.left or (
            self.error is None
            and self.enough is not None
            and not any(isinstance(r, FencedError) for r in self.results)
            and self.enough(self.results)
        ):
            self.woken.set_result(None)

    def hand_on(self) -> list[asyncio.Task[None]]:
        """The requests still under way, from now on answers for the step's ``late``."""
        self.late = []
        return [task for task in self.tasks if task is not None]

    def drop(self) -> None:
        """Cancel the requests still under way; what they end with counts nowhere."""
        self.late = []
        self.cluster = None
        for task in self.tasks:
            if task is not None:
                task.cancel()


async def _close_quietly(store: Any) -> None:
    """Close a store no call needs any more; a failure to close is logged, not raised."""
    try:
        await close_either(store)
    except Exception as exc:  # noqa: BLE001 - nobody is left to hand it to
        log.warning("closing the store of a node that left failed: %s", exc)
