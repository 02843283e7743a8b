"""A hedged read for the sync driver: the first answers on the sockets win.

``core.calls.Hedged`` asks a driver for `need` answers: the first `need`
calls at once, one more if they have not all answered within ``after``
seconds.  The asyncio driver waits for the first replies with tasks
(``_acalls.hedged``); a thread waits on the sockets the replies come on
(``Pending.fileno()``, with ``select.poll``), reads each reply as it
arrives, and returns once `need` have answered.  A reply not read by then
is read by a background thread (``LateReplies``): the connection goes back
to its pool only once its reply is read, the replica's latency is measured
all the same, and a node found unreachable is suspected.
"""

from __future__ import annotations

import logging
import queue
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from cvstore import _ops as ops
from cvstore.core.calls import PENDING, Call, Hedged, Op, answered
from cvstore.errors import FencedError, StoreError
from cvstore.stores.base import Pending

__all__ = ("LateReplies", "call_hedged")

log = logging.getLogger("cvstore")

# Seconds a wait on the sockets lasts once no hedge is left to send; past it
# the oldest reply is read in the ordinary way, bounded by its store's timeout
# (a poll knows no store timeout: a server that never answers must not hang us).
STALL_CHECK = 1.0
IDLE_EXIT = 1.0  # seconds a late-reply thread waits for work before it ends


def ready(pendings: dict[int, Pending[Any]], timeout: float) -> list[int]:
    """The keys of `pendings` whose reply can be read now, after waiting up to `timeout` seconds.

    A call with no socket to wait on (answered, in process, or its connection
    gone) is ready at once: reading it does not wait, or fails at once.
    """
    sockets: dict[int, int] = {}
    for i, pending in pendings.items():
        fd = pending.fileno()
        if fd is None or fd < 0:  # (a closed socket's is -1)
            return [i]
        sockets[fd] = i
    if hasattr(select, "poll"):
        poller = select.poll()
        for fd in sockets:
            poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return [sockets[fd] for fd, _ in poller.poll(max(0.0, timeout) * 1000.0)]
    readable, _, _ = select.select(list(sockets), [], [], max(0.0, timeout))  # pragma: no cover
    return [sockets[fd] for fd in readable]  # pragma: no cover


def call_hedged(state: Any, calls: Hedged, epoch: int, late: LateReplies) -> list[Any]:
    """Make a hedged read on sync stores (see ``core.calls.Hedged``); each call's result.

    Every call is tracked (``state.replicas``): outstanding while under way,
    then measured from when it was sent to when its reply was read.  A reply
    still on its way when the read returns goes to `late`.  An error that is
    not a store's (a bug) is raised once every reply made has been read or
    handed on.
    """
    need = calls.need
    replicas = state.replicas
    results: list[Any] = [PENDING] * len(calls)
    out: dict[int, Pending[Any]] = {}
    started: dict[int, float] = {}
    error: BaseException | None = None

    def send(i: int) -> None:
        replicas.sent([calls[i].node.name])
        started[i] = time.perf_counter()
        try:
            out[i] = ops.call_send(calls[i], epoch)
        except BaseException:
            replicas.answered(calls[i].node.name, None, False, True)
            raise

    def read(i: int) -> None:
        nonlocal error
        try:
            results[i] = _read(replicas, calls[i], out.pop(i), started[i])
        except BaseException as exc:  # noqa: BLE001 - no store's failure: raised below
            results[i] = None
            error = error or exc

    try:
        for i in range(need):
            send(i)
        deadline = started[0] + calls.after
        spare = len(calls) > need and calls[need].node.store.remote
        while out and error is None and sum(map(answered, results)) < need:
            if spare:
                wait = deadline - time.perf_counter()
                if wait <= 0:
                    spare = False
                    send(need)
                    replicas.hedged(calls[need].node.name, None)
                    continue
            else:
                wait = STALL_CHECK
            got = ready(out, wait)
            if not got and not spare:
                got = [min(out)]  # nothing for a long while: read the oldest, within its timeout
            for i in got:
                read(i)
    except BaseException as exc:  # noqa: BLE001 - raised below, once the replies are handed on
        error = error or exc
    if len(results) > need and answered(results[need]) and not all(map(answered, results[:need])):
        replicas.hedged(calls[need].node.name, True)
    for i, pending in out.items():  # the slower calls: read, measured and judged in the background
        pending.detach()
        late.add(_finish(state, calls[i], pending, started[i], late.suspect))
    if error is not None:
        raise error
    return results


def _read(replicas: Any, call: Call, pending: Pending[Any], started: float) -> Any:
    """Read one tracked call's reply and measure it; the result or its StoreError."""
    result: Any = None
    read = False  # whether a reply was read (not a failure, nor an error of our own)
    try:
        result = pending.result()
        read = True
    except (StoreError, FencedError) as exc:
        result = exc
        read = isinstance(exc, FencedError)
    finally:  # measured even when what it raised is no store's failure
        seconds = time.perf_counter() - started if read else None
        replicas.answered(
            call.node.name, seconds, isinstance(result, StoreError), call.op is Op.GET
        )
    return result


def _finish(
    state: Any, call: Call, pending: Pending[Any], started: float, suspect: Callable[[], None]
) -> Callable[[], None]:
    """Read a late reply (in ``LateReplies``' thread): measured, and its node suspected if unreachable."""

    def finish() -> None:
        result = _read(state.replicas, call, pending, started)
        if ops.failures(state, [call], [result])[1]:
            suspect()

    return finish


class LateReplies:
    """Reads the replies a hedged read returned without, in one background thread.

    The thread starts with the first reply handed to it and ends after
    ``IDLE_EXIT`` seconds without one, so an idle or forgotten cluster
    keeps no thread.  `suspect` starts the driver's prober.
    """

    def __init__(self, suspect: Callable[[], None]) -> None:
        self.suspect = suspect
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, finish: Callable[[], None]) -> None:
        self._work.put(finish)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="cvstore-late-replies", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                finish = self._work.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._work.empty():
                        self._thread = None
                        return
                continue
            try:
                finish()
            except Exception:
                log.exception("cvstore: reading a late reply of a hedged read failed")
