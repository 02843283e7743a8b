"""Reads: which replicas to ask, what their answers mean, and what to repair.

A read at a level asks that many live replicas, returns the newest version
among their answers (``records.newest``), and first writes it to any of
them that had an older copy or none (read repair).  A replica that fails is
replaced by another live one where there is one.  Every read observes the
version it returns (the reader's clock moves past it), so a client that
read a value writes above it.

With one replica to ask, the read policy picks it: ``random`` (spread the
load), ``primary`` (the first live one in the preference list) or
``fastest`` (the lowest recent latency, now and then another one so every
replica keeps being measured).
"""

from __future__ import annotations

from itertools import compress
from operator import is_not, itemgetter
from typing import Any

import numpy as np

from cvstore.core import hints as _hints
from cvstore.core.batch import groups, io_step, objects
from cvstore.core.calls import Call, Context, Op, Proc, failed
from cvstore.core.failures import partial_failure
from cvstore.core.records import Record, differs, newest
from cvstore.core.writes import no_nodes, refuse, refuse_down
from cvstore.errors import StoreError, UnreadableRecordError

__all__ = ("get", "get_many", "order_for_read")

_version = itemgetter(0)  # a record's version

_EXPLORE = 1 / 16  # share of "fastest" reads sent to another replica, to measure it


def order_for_read(ctx: Context, up: list[Any], need: int) -> list[Any]:
    """The live replicas in the order to ask them: the first `need`, then spares."""
    policy = ctx.read_policy
    if need == 1 and len(up) > 1:
        if policy == "random":
            i = int(ctx.random() * len(up))
            return up[i:] + up[:i]
        if policy == "fastest":
            if ctx.random() < _EXPLORE:  # now and then, measure another replica
                i = 1 + int(ctx.random() * (len(up) - 1))
                return [up[i]] + up[:i] + up[i + 1 :]
            # Nodes never measured go first, so every replica gets measured.
            return sorted(up, key=lambda node: -1.0 if node.latency is None else node.latency)
    return up


def get(ctx: Context, kb: bytes, level: str, now_ms: int) -> Proc[Record | None]:
    """The newest record of `kb` among the replicas `level` asks (see the module docstring)."""
    while True:
        p = ctx.placement
        if not p.nodes:
            raise no_nodes()
        need = p.rneed[level]
        replicas = p.replicas(kb)
        if ctx.hints.pending:
            yield from _hints.deliver_found(ctx.hints, p, replicas, now_ms)
        up = [node for node in replicas if node.is_up]
        if len(up) < need:
            raise refuse_down(ctx, level, "read", need, replicas)
        order = order_for_read(ctx, up, need)
        timed = ctx.read_policy == "fastest" and need == 1
        asked, spares = order[:need], order[need:]
        results = yield [Call(node, Op.GET, (kb,), timed) for node in asked]
        answered: list[Any] = []
        records: list[Record | None] = []
        errors: dict[str, StoreError] = {}
        while True:
            for node, result in zip(asked, results):
                if failed(result):
                    errors[node.name] = result
                else:
                    answered.append(node)
                    records.append(result)
            if len(answered) == need or not spares:
                break
            asked, spares = spares[: need - len(answered)], spares[need - len(answered) :]
            results = yield [Call(node, Op.GET, (kb,), timed) for node in asked]
        if len(answered) < need:
            raise refuse(
                ctx,
                partial_failure(
                    level, "read", need, len(replicas), len(answered), list(errors), errors
                ),
            )
        best = newest(records)
        if best is not None and need > 1:
            stale = [node for node, r in zip(answered, records) if differs(r, best)]
            if stale:
                yield from repair_copies(ctx, {node: [(kb, best)] for node in stale})
        # A read that overlapped a membership change is asked again of the new
        # replicas: the old ones may have handed the key off meanwhile.
        if ctx.placement is p:
            break
    if best is not None:
        ctx.observe(best[0])
    return best


def repair_copies(ctx: Context, writes: dict[Any, list[tuple[bytes, Record]]]) -> Proc[int]:
    """Write newest copies to the replicas found stale; returns how many were applied."""
    nodes = list(writes)
    results = yield [
        Call(node, Op.WRITE_MANY, tuple(map(list, zip(*writes[node])))) for node in nodes
    ]
    fixed = sum(sum(held is None for held in result) for result in results if not failed(result))
    if fixed:
        ctx.count("read_repairs", fixed)
    return fixed


def get_many(ctx: Context, kbs: list[bytes], level: str, now_ms: int) -> Proc[list[Record | None]]:
    """The newest record of each key, as ``get`` would read it, one store call per node."""
    while True:
        p = ctx.placement
        if not p.nodes:
            raise no_nodes()
        if ctx.hints.pending:
            yield from _hints.deliver_found(ctx.hints, p, p.nodes, now_ms)
        step = io_step(p.remote, len(kbs))
        best: list[Record | None] = []
        for i in range(0, len(kbs), step):
            best += yield from _read_batch(ctx, p, kbs[i : i + step], p.rneed[level], level, now_ms)
        if ctx.placement is p:
            break
    newest = max(map(_version, filter(None, best)), default=0)  # C-level: once per key
    if newest:
        ctx.observe(newest)
    return best


def _read_batch(
    ctx: Context, p: Any, kbs: list[bytes], need: int, level: str, now_ms: int
) -> Proc[list[Record | None]]:
    count = len(kbs)
    prefs = p.replicas_many(kbs)
    n = prefs.shape[1]
    up_rows = p.alive()[prefs]
    short = np.flatnonzero(up_rows.sum(axis=1) < need)
    if short.size:
        replicas = [p.nodes[j] for j in prefs[short[0]].tolist()]
        raise refuse_down(ctx, level, "read", need, replicas)
    rows = np.arange(count)
    policy = ctx.read_policy
    if need == 1:
        if policy == "primary" or n == 1:
            col = np.argmax(up_rows, axis=1)
        elif policy == "random":
            col = np.argmax(up_rows + ctx.rng.random(up_rows.shape), axis=1)
        else:
            latency = np.array([node.latency or 0.0 for node in p.nodes])
            col = np.argmin(np.where(up_rows, latency[prefs], np.inf), axis=1)
        chosen = prefs[rows, col][:, None]
    elif bool(up_rows.all()):
        chosen = prefs[:, :need]
    else:
        order = np.argsort(~up_rows, axis=1, kind="stable")[:, :need]
        chosen = np.take_along_axis(prefs, order, axis=1)
    kb_arr = objects(kbs, count)
    retry = np.zeros(count, dtype=bool)
    # One call per node for all the keys it is asked (a node is one replica of
    # each of its keys, whichever slot it fills for the key).
    tasks = [(pos // need, pos % need, j) for j, pos in groups(chosen.ravel())]
    timed = policy == "fastest" and need == 1
    results = yield [
        Call(p.nodes[j], Op.GET_MANY, (kb_arr[task_rows].tolist(),), timed)
        for task_rows, _, j in tasks
    ]
    columns = [np.full(count, None, dtype=object) for _ in range(need)]
    for (task_rows, slot, _), result in zip(tasks, results):
        if isinstance(result, UnreadableRecordError):
            # Records that do not parse: this replica failed for those keys
            # alone, which are read again one by one (from other replicas).
            retry[task_rows[result.positions]] = True
            result = result.records
        elif failed(result):
            retry[task_rows] = True
            continue
        records = objects(result, task_rows.size)
        if need == 1:
            columns[0][task_rows] = records
        else:
            for s in range(need):
                mine = slot == s
                columns[s][task_rows[mine]] = records[mine]
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
                    if differs(best[i], other[i]):
                        differ.add(i)
        repairs: dict[Any, list[tuple[bytes, Record]]] = {}
        for i in sorted(differ):
            row = [slot[i] for slot in slots]
            winner = newest(row)
            best[i] = winner
            if winner is None or retry[i]:
                continue
            for s, record in enumerate(row):
                if record is not winner and (record is None or record[0] < winner[0]):
                    repairs.setdefault(p.nodes[int(chosen[i, s])], []).append((kbs[i], winner))
        if repairs:
            yield from repair_copies(ctx, repairs)
    for i in np.flatnonzero(retry).tolist():  # a store failed: read these keys one by one
        best[i] = yield from _get_in(ctx, p, kbs[i], level, now_ms)
    return best


def _get_in(ctx: Context, p: Any, kb: bytes, level: str, now_ms: int) -> Proc[Record | None]:
    """``get`` of one key, without the observe (the batch observes once)."""
    placement = ctx.placement
    if placement is not p:  # the batch re-reads everything on a new placement anyway
        return None
    return (yield from get(ctx, kb, level, now_ms))
