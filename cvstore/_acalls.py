"""How the asyncio driver makes calls: one call on an asyncio store, and a hedged read.

``acall`` makes one ``core.calls.Call`` and returns its result or the
``StoreError`` it raised; a tracked call is counted outstanding to its node
while under way, then measured (``core.health.ReplicaStats``), which the
adaptive read policy scores.  ``hedged`` runs a ``core.calls.Hedged`` step:
the first call, the second too if the first has not answered in time, the
first answer wins.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cvstore import _ops as ops
from cvstore.core.calls import PENDING, Call, Hedged, Op, answered
from cvstore.errors import FencedError, StoreError
from cvstore.stores.base import AsyncStore

__all__ = ("acall", "hedged")


async def acall(call: Call, epoch: int, replicas: Any = None) -> Any:
    """Make one call on an asyncio store; its result or the StoreError it raised.

    A tracked call (``Call.tracked``) is counted outstanding to its node while
    under way, then measured into `replicas` (``health.ReplicaStats``).
    """
    if call.tracked and replicas is not None:
        name = call.node.name
        replicas.sent([name])
        started = time.perf_counter()
        seconds = failed = None
        try:
            result = await acall(call._replace(tracked=False), epoch)
            failed = isinstance(result, StoreError)
            seconds = time.perf_counter() - started
            return result
        finally:
            replicas.answered(name, None if failed else seconds, bool(failed), call.op is Op.GET)
    store = call.node.store
    args = ops.call_args(call, epoch)
    started = time.perf_counter()
    try:
        if call.op is Op.GET:
            result = (await store.get_many(*args))[0] if epoch else await store.get(*args)
        else:
            result = await getattr(store, call.op.value)(*args)
    except StoreError as exc:
        return exc
    if call.timed:
        keys = len(call.args[0]) if call.op is Op.GET_MANY else 1
        call.node._observe_latency((time.perf_counter() - started) / max(1, keys))
    return result


async def hedged(cluster: Any, calls: Hedged) -> list[Any]:
    """A hedged read on `cluster` (an ``AsyncCluster``): the first ``calls.need`` calls; one
    more if they have not all answered within ``calls.after`` seconds; the first
    ``calls.need`` answers win (see ``core.calls.Hedged``).  A call still under way
    finishes in the background, measured all the same.
    """
    state = cluster._state
    epoch = state.epoch
    replicas = state.replicas
    need = calls.need
    results: list[Any] = [PENDING] * len(calls)
    if not isinstance(calls[0].node.store, AsyncStore):  # in process: answered at once
        results[:need] = ops.call_tracked(state, calls[:need], epoch, False)
        return cluster._settle(calls, results)  # type: ignore[no-any-return]
    tasks = {asyncio.ensure_future(acall(calls[i], epoch, replicas)): i for i in range(need)}
    waiting = set(tasks)
    error: BaseException | None = None
    try:
        done, waiting = await asyncio.wait(waiting, timeout=calls.after)
        if waiting and isinstance(calls[need].node.store, AsyncStore):
            tasks[asyncio.ensure_future(acall(calls[need], epoch, replicas))] = need
            replicas.hedged(calls[need].node.name, None)
            waiting = set(tasks) - done
        while True:
            for task in done:
                failure = task.exception()
                if failure is None or isinstance(failure, (StoreError, FencedError)):
                    results[tasks[task]] = failure if failure is not None else task.result()
                else:
                    error = error or failure
                    results[tasks[task]] = None
            if error is not None or not waiting or sum(map(answered, results)) >= need:
                break
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # cancelled: the read's requests go with it
        for task in waiting:
            task.cancel()
        raise
    if error is not None:
        for task in waiting:
            task.cancel()
        raise error
    if len(tasks) > need and answered(results[need]) and not all(map(answered, results[:need])):
        replicas.hedged(calls[need].node.name, True)
    for task in waiting:  # the slower calls: their replies are still measured
        cluster._in_background(_late_read(cluster, calls[tasks[task]], task))
    return cluster._settle(calls, results)  # type: ignore[no-any-return]


async def _late_read(cluster: Any, call: Call, task: asyncio.Task[Any]) -> None:
    """The slower call of a hedged read, finished: a node found unreachable is suspected."""
    try:
        result = await task
    except BaseException:  # noqa: BLE001 - cancelled at close, or refused: nothing to count
        return
    if ops.failures(cluster._state, [call], [result])[1]:
        cluster._start_prober()
