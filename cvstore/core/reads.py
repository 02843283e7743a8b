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

``adaptive`` ranks the live replicas of every read, at every level, by a
C3-style score of what the driver measured (``health.ReplicaStats``)::

    score = max(latency, LATENCY_FLOOR) * (1 + outstanding) ** 3 * (1 + ERROR_PENALTY * errors)

(latency: the replica's moving average, LATENCY_FLOOR for one not measured
yet; outstanding: read calls of this client under way to it; errors: its
recent failure rate, 0..1).  The `need` best answer; equal scores are
ordered at random, so replicas faster than the floor share the load.  A
share ``ADAPTIVE_EXPLORE`` of the reads that leave a replica out also ask a
random other one, so a replica that recovered is measured and noticed: on
a driver that hedges and within the hedge budget, as a hedge sent at once
beside the `need` best (the first `need` answers win, so the read waits for
it only if it is faster); otherwise in place of the best.  A read that leaves a replica out, on a driver that hedges, is a
``Hedged`` step: if the replicas asked have not all answered within the
largest p95 of the recent latencies of the best-ranked ones (at least
``HEDGE_FLOOR``), the next one is asked too and the first answers win
(``health.HEDGE_BUDGET`` bounds how many), so a replica that just turned
slow does not hold a read up.
Only which replicas answer changes: what a level waits for, and what a read
returns and repairs, stay as they are.
"""

from __future__ import annotations

from itertools import compress
from operator import is_not, itemgetter
from typing import Any

import numpy as np

from cvstore.core import hints as _hints
from cvstore.core.batch import groups, io_step, objects
from cvstore.core.calls import PENDING, Call, Context, Hedged, Op, Proc, failed
from cvstore.core.failures import partial_failure
from cvstore.core.records import Record, differs, newest
from cvstore.core.writes import no_nodes, refuse, refuse_down
from cvstore.errors import StoreError, UnreadableRecordError

__all__ = ("get", "get_many", "order_for_read", "score")

_version = itemgetter(0)  # a record's version

_EXPLORE = 1 / 16  # share of "fastest" reads sent to another replica, to measure it

# Share of "adaptive" reads that also ask a random other replica, so one that
# recovered is noticed.  Where the driver hedges the read does not wait for it;
# kept at 1 % so that where it does (a driver that does not hedge) those
# reads stay out of the p99.
ADAPTIVE_EXPLORE = 0.01
LATENCY_FLOOR = 0.001  # seconds: latencies below it score alike (a local network's)
ERROR_PENALTY = 10.0  # a replica failing every call scores 11 times worse
HEDGE_FLOOR = 0.0005  # seconds: the shortest wait before a hedge
# A hedge goes to a replica whose latency average is at most this many times
# the hedge's wait: a replica that much slower (the one left out for being
# slow) rarely answers before those asked, and would only take a hedge's load.
HEDGE_SPARE = 20.0


def score(latency: float | None, outstanding: int, errors: float) -> float:
    """A replica's adaptive score (lower is better; see the module docstring)."""
    base = LATENCY_FLOOR if latency is None or latency < LATENCY_FLOOR else latency
    return base * (1 + outstanding) ** 3 * (1.0 + ERROR_PENALTY * errors)


def rank(ctx: Context, up: list[Any], need: int) -> tuple[list[Any], bool]:
    """The live replicas by adaptive score, and whether this read explores.

    Ties are ordered by ``ctx.random()``; when the read explores, a random
    replica other than the best goes first (the best second).
    """
    view = ctx.replicas.view
    keyed = sorted((score(*view(node.name)), ctx.random(), i) for i, node in enumerate(up))
    order = [up[i] for _, _, i in keyed]
    if len(order) > need and ctx.random() < ADAPTIVE_EXPLORE:
        i = 1 + int(ctx.random() * (len(order) - 1))
        return [order[i]] + order[:i] + order[i + 1 :], True
    return order, False


def order_for_read(ctx: Context, up: list[Any], need: int) -> list[Any]:
    """The live replicas in the order to ask them: the first `need`, then spares."""
    policy = ctx.read_policy
    if policy == "adaptive" and len(up) > 1:
        return rank(ctx, up, need)[0]
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
        adaptive = ctx.read_policy == "adaptive"
        if adaptive and len(up) > 1:
            order, explored = rank(ctx, up, need)
        else:
            order, explored = order_for_read(ctx, up, need), False
        timed = ctx.read_policy == "fastest" and need == 1
        asked, spares = order[:need], order[need:]
        after: float | None = None
        if adaptive and spares and ctx.hedging:
            # Every read that could hedge counts toward the budget, hedged or not
            # (a quorum read whose spare is the slow replica does not hedge, and
            # its explorations must not find the budget spent).
            within = ctx.replicas.may_hedge()
            wait = hedge_after(ctx, order, need, explored)
            if (explored or wait is not None) and within:
                if explored:
                    # The explored replica is asked beside the best ones, not
                    # instead of one: it is measured, and the read waits only
                    # for the best.  A hedge sent at once, counted as one.
                    order = order[1 : need + 1] + order[:1] + order[need + 1 :]
                    after = 0.0
                else:
                    after = wait
        if after is None:
            results = yield [Call(node, Op.GET, (kb,), timed, adaptive) for node in asked]
        else:
            asked, spares = order[: need + 1], order[need + 1 :]
            results = yield Hedged(
                [Call(node, Op.GET, (kb,), False, True) for node in asked], after, need
            )
            if results[need] is PENDING:  # not sent (or the others answered): a spare again
                asked, spares, results = asked[:need], order[need:], results[:need]
        answered: list[Any] = []
        records: list[Record | None] = []
        errors: dict[str, StoreError] = {}
        while True:
            for node, result in zip(asked, results):
                if failed(result):
                    errors[node.name] = result
                elif result is not PENDING:  # (a hedge's slower call)
                    answered.append(node)
                    records.append(result)
            if len(answered) >= need or not spares:
                break
            asked, spares = spares[: need - len(answered)], spares[need - len(answered) :]
            results = yield [Call(node, Op.GET, (kb,), timed, adaptive) for node in asked]
        if len(answered) < need:
            raise refuse(
                ctx,
                partial_failure(
                    level, "read", need, len(replicas), len(answered), list(errors), errors
                ),
            )
        if p.pending is not None:  # a change under way: the new replicas too (see below)
            yield from _new_replicas(ctx, p.pending, kb, level, answered, records, errors, adaptive)
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


def _new_replicas(
    ctx: Context,
    q: Any,
    kb: bytes,
    level: str,
    answered: list[Any],
    records: list[Record | None],
    errors: dict[str, StoreError],
    tracked: bool,
) -> Proc[None]:
    """While a change is under way, a read also needs its level's count of the key's new
    replicas (placement `q`); the ones it asks for that join `answered` and `records`.

    A client still on the changing layout (epoch e + 1) asks the old replicas, while
    one that already holds the commit (e + 2) writes to the new ones only: the commit
    reaches nodes one after another, and may miss one for a while, so a write under
    the commit can be acknowledged by new replicas while a quorum of old ones still
    holds e + 1.  A read on e + 1 that also has its count of the new replicas meets one
    of the replicas that acknowledged such a write, which holds e + 2 and refuses it:
    the client loads the commit and reads again.  (Writes on e + 1 already reach both
    sets: ``writes._put_moving``.)  Old replicas that are new ones too count for both.
    """
    need = q.rneed[level]
    replicas = q.replicas(kb)
    asked = {id(node) for node in answered}
    have = sum(id(node) in asked for node in replicas)
    spares = [
        node
        for node in replicas
        if id(node) not in asked and node.is_up and node.name not in errors
    ]
    while have < need and spares:
        ask, spares = spares[: need - have], spares[need - have :]
        results = yield [Call(node, Op.GET, (kb,), False, tracked) for node in ask]
        for node, result in zip(ask, results):
            if failed(result):
                errors[node.name] = result
            else:
                answered.append(node)
                records.append(result)
                have += 1
    if have < need:
        if not errors:
            raise refuse_down(ctx, level, "read", need, replicas)
        raise refuse(
            ctx, partial_failure(level, "read", need, len(replicas), have, list(errors), errors)
        )


def hedge_after(ctx: Context, order: list[Any], need: int, explored: bool) -> float | None:
    """Seconds a read waits for its `need` replicas before it asks one more, or None: no hedge.

    Once each of the `need` best-ranked replicas (an explored one left
    aside) has a p95 of its latencies: the largest of those, at least
    ``HEDGE_FLOOR``; and only when the replica it would ask (``order[need]``)
    is not known to be slower than ``HEDGE_SPARE`` times that wait.  Whether
    the driver hedges and the budget allows is the caller's to ask.
    """
    best = order[1 : need + 1] if explored else order[:need]
    p95s = [ctx.replicas.p95(node.name) for node in best]
    known = [p95 for p95 in p95s if p95 is not None]
    if len(known) < len(p95s):
        return None
    after = max(HEDGE_FLOOR, *known)
    spare = ctx.replicas.view(order[need].name)[0]
    if spare is not None and spare > HEDGE_SPARE * after:
        return None
    return after


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
            chunk = kbs[i : i + step]
            got = yield from _read_batch(ctx, p, chunk, p.rneed[level], level, now_ms)
            if p.pending is not None:  # a change under way: the new replicas too (``get``)
                got = yield from _read_new_replicas(ctx, p, chunk, got, level, now_ms)
            best += got
        if ctx.placement is p:
            break
    newest = max(map(_version, filter(None, best)), default=0)  # C-level: once per key
    if newest:
        ctx.observe(newest)
    return best


def _read_new_replicas(
    ctx: Context, p: Any, kbs: list[bytes], got: list[Record | None], level: str, now_ms: int
) -> Proc[list[Record | None]]:
    """`got` (read from the old replicas of `p`, filled in place) with the keys whose
    replicas move read from their new ones too, the newer answer kept (``_new_replicas``)."""
    q = p.pending
    old = p.replicas_many(kbs)
    new = q.replicas_many(kbs)
    if old.shape == new.shape:
        where = {id(node): j for j, node in enumerate(p.nodes)}
        as_old = np.array([where.get(id(node), -1) for node in q.nodes], dtype=old.dtype)[new]
        moving = np.flatnonzero((np.sort(old, axis=1) != np.sort(as_old, axis=1)).any(axis=1))
    else:  # N differs (fewer nodes than the replication factor on one side): every key
        moving = np.arange(len(kbs))
    if not moving.size:
        return got
    rows = moving.tolist()
    newer = yield from _read_batch(
        ctx, q, [kbs[i] for i in rows], q.rneed[level], level, now_ms, outer=p
    )
    for i, record in zip(rows, newer):
        got[i] = newest((got[i], record))
    return got


def _read_batch(
    ctx: Context,
    p: Any,
    kbs: list[bytes],
    need: int,
    level: str,
    now_ms: int,
    outer: Any = None,
) -> Proc[list[Record | None]]:
    """Read `kbs` from `need` replicas each in placement `p`; keys a store failed for are
    read again one by one, in the client's placement `outer` (by default `p`)."""
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
    if policy == "adaptive" and n > 1:
        chosen = _ranked(ctx, p, prefs, up_rows, need)
    elif need == 1:
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
    tracked = policy == "adaptive"
    results = yield [
        Call(p.nodes[j], Op.GET_MANY, (kb_arr[task_rows].tolist(),), timed, tracked)
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
            try:
                if best == other:  # C-level: equal records have equal versions
                    continue
            except Exception:  # noqa: BLE001, S110 - a value whose == fails: compare below
                pass
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
        best[i] = yield from _get_in(ctx, p if outer is None else outer, kbs[i], level, now_ms)
    return best


def _ranked(ctx: Context, p: Any, prefs: Any, up_rows: Any, need: int) -> Any:
    """The `need` replicas each key of a batch asks under "adaptive" (rows of node indices).

    The best-scored live ones, equal scores in a random order per key; a
    share ``ADAPTIVE_EXPLORE`` of the keys ask live replicas in a random order.
    """
    view = ctx.replicas.view
    scores = np.array([score(*view(node.name)) for node in p.nodes])
    ranks = np.unique(scores, return_inverse=True)[1].astype(float)  # equal scores, equal ranks
    keyed = ranks[prefs] + 0.5 * ctx.rng.random(prefs.shape)
    explore = ctx.rng.random(len(prefs)) < ADAPTIVE_EXPLORE
    if explore.any():
        keyed[explore] = ctx.rng.random((int(explore.sum()), prefs.shape[1]))
    keyed[~up_rows] = np.inf
    order = np.argsort(keyed, axis=1, kind="stable")[:, :need]
    return np.take_along_axis(prefs, order, axis=1)


def _get_in(ctx: Context, p: Any, kb: bytes, level: str, now_ms: int) -> Proc[Record | None]:
    """``get`` of one key, without the observe (the batch observes once)."""
    placement = ctx.placement
    if placement is not p:  # the batch re-reads everything on a new placement anyway
        return None
    return (yield from get(ctx, kb, level, now_ms))
