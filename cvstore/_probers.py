"""The probers: what pings the suspected nodes on their schedule, off every caller's path.

A suspected node is pinged with backoff (``core.health``) until it answers;
its hints are then handed over (``_ops.probe_nodes``).  ``ThreadProber`` is
the sync driver's (a daemon thread), ``probe_loop`` the asyncio driver's (a
task); each stops when no suspect is left, and a new suspicion starts another.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from cvstore import _ops as ops

__all__ = ("ThreadProber", "probe_loop")

log = ops.log


class ThreadProber(threading.Thread):
    """Probes a ``Cluster``'s suspected nodes on their schedule while there are any."""

    def __init__(self, cluster: Any) -> None:
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
        cluster, state = self._cluster, self._cluster._state
        while not self._stopping:
            with state.lock:
                due_at = state.schedule.next_due()
                due = state.schedule.due(time.monotonic())
            if due_at is None:
                with cluster._prober_lock, state.lock:
                    if (
                        state.schedule.next_due() is None
                    ):  # none left: a new suspicion starts another
                        if cluster._prober is self:
                            cluster._prober = None
                        return
            elif not due:
                with self._wakeup:
                    if not self._stopping:
                        self._wakeup.wait(max(0.0, due_at - time.monotonic()))
            else:
                try:
                    cluster._run(ops.probe_nodes(state, due))
                except Exception:  # the next call or deliver_hints() hands them over
                    log.exception("probing %s failed", [n.name for n in due])


async def probe_loop(cluster: Any) -> None:
    """Probe an ``AsyncCluster``'s suspects on their schedule until none is left (or it closes)."""
    import asyncio  # here: ``import cvstore`` leaves asyncio until an AsyncCluster needs it

    state = cluster._state
    try:
        while not state.closed:
            due_at = state.schedule.next_due()
            if due_at is None:
                return
            due = state.schedule.due(time.monotonic())
            if not due:
                await asyncio.sleep(max(0.0, due_at - time.monotonic()))
                continue
            try:
                await cluster._run(ops.probe_nodes(state, due))
            except Exception:  # the next call or deliver_hints() hands them over
                log.exception("probing %s failed", [n.name for n in due])
    finally:
        if cluster._prober is asyncio.current_task():
            cluster._prober = None
