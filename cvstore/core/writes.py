"""Writes: what a put or a batch needs, what the replicas' answers mean, when to write again.

The rule for several clients: a write is acknowledged only when at least W
replicas *applied* it (W from the level), or, from its second attempt on,
were found holding a newer version written there while this write was under
way.  A replica refuses a record when it already holds a version at least as
new; the writer then observes that version (its clock moves past it), stamps
the value again and rewrites it, at most ``MAX_ATTEMPTS`` times.

A refusal of the first attempt cannot tell a write that finished before this
one began (which this one must win over) from a concurrent one: so the value
is stamped again above every version that attempt was shown.  Because two
write quorums share a replica (W + W > N for quorum, all and strong), that
attempt met every write acknowledged before this one began on at least one of
the W or more replicas that answered it, so the new stamp is above all of
them, and this write wins over them whatever the writers' clocks say.

A replica that answered an earlier attempt and refuses a later one holds a
version above the new stamp, so above what it held when it answered: that
version was written there after this write began, by a write that had not
finished before this one began (a concurrent write; at W + W > N also newer
than every write that had).  Such a refusal counts as an acknowledgement: the
write is ordered just before that one, which last-write-wins keeps, as a
register allows for overlapping writes (a quorum read after it returns that
newer value or a later one, never a value this write superseded).  So a writer
whose clock is behind is not shut out of a key that a client ahead of it
writes faster than a round trip.  ``one`` and ``eventual`` (W = 1) only
promise that the write is newer than what the replica that applied it held,
or was overwritten there by a write that arrived after it began.

A replica that is down or unreachable gets the write as a hint (held by the
next node on the ring); one that answered with an error (a full server) is
not hinted: ``repair()`` or read repair completes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cvstore._records import record as new_record
from cvstore._records import records as new_records
from cvstore.core import hints as _hints
from cvstore.core.batch import groups, io_step, objects
from cvstore.core.calls import PENDING, Call, Context, Op, Proc, Step, failed
from cvstore.core.failures import conflict, may_be_applied, partial_failure, unavailable
from cvstore.core.records import Record
from cvstore.errors import EmptyRingError, StoreError, UnavailableError

__all__ = ("MAX_ATTEMPTS", "put", "put_many")

# Writes of one call: the first, plus rewrites after refusals by newer versions.
MAX_ATTEMPTS = 8


def no_nodes() -> EmptyRingError:
    return EmptyRingError("the cluster has no nodes; add one with cluster.add_node(Node(name))")


def refuse(ctx: Context, error: UnavailableError) -> UnavailableError:
    """Count an UnavailableError in the cluster's stats and return it to be raised."""
    ctx.count("unavailable")
    return error


def refuse_down(
    ctx: Context, level: str, op: str, need: int, replicas: Sequence[Any]
) -> UnavailableError:
    """The error for a call that needs `need` of `replicas` up and has fewer."""
    down = [node.name for node in replicas if not node.is_up]
    return refuse(ctx, unavailable(level, op, need, replicas, ctx.causes(down)))


# --------------------------------------------------------------- one key


def put(ctx: Context, kb: bytes, value: Any, level: str, now_ms: int) -> Proc[None]:
    """Write `value` under `kb` at `level` (see the module docstring)."""
    p = ctx.placement
    if not p.nodes:
        raise no_nodes()
    need = p.wneed[level]
    replicas = p.replicas(kb)
    if ctx.hints.pending:
        yield from _hints.deliver_found(ctx.hints, p, replicas, now_ms)
    if level in p.wone:
        record = yield from _put_one(ctx, p, kb, value, level, replicas, now_ms)
    else:
        record = yield from _put_all(ctx, p, kb, value, level, need, replicas)
    if p.pending is not None or ctx.placement is not p:
        yield from _put_moving(ctx, p, kb, record, replicas, level)


def _judge(
    targets: Sequence[Any], results: Sequence[Any], version: int, prior: Sequence[bool]
) -> tuple[int, list[int], list[int], list[Any], dict[str, StoreError]]:
    """(acknowledged, versions that superseded it, versions that refused it, unreachable
    nodes, errors by node) of one key's writes.

    A replica acknowledges by applying the write or, if it answered an earlier
    attempt (`prior`, in the order of `targets`), by holding a version newer
    than this one: a concurrent write superseded it (see the module docstring).
    """
    acked = 0
    superseded: list[int] = []
    refused: list[int] = []
    lost: list[Any] = []
    errors: dict[str, StoreError] = {}
    for node, result, before in zip(targets, results, prior):
        if result is PENDING:  # not answered yet: the step's late procedure sees it
            continue
        if failed(result):
            errors[node.name] = result
            if result.unreachable:
                lost.append(node)
            continue
        held = result[0]
        if held is None or held == version:  # equal: this very write landed already
            acked += 1
        elif before:
            acked += 1
            superseded.append(held)
        else:
            refused.append(held)
    return acked, superseded, refused, lost, errors


def _put_all(
    ctx: Context, p: Any, kb: bytes, value: Any, level: str, need: int, replicas: list[Any]
) -> Proc[Record]:
    """Send the write to every live replica; rewrite it above refusing versions."""
    answered: set[int] = set()  # id() of the replicas that answered an earlier attempt
    for attempt in range(1, MAX_ATTEMPTS + 1):
        up = [node for node in replicas if node.is_up]
        if len(up) < need:
            error = refuse_down(ctx, level, "write", need, replicas)
            raise error if attempt == 1 else may_be_applied(error, _EARLIER_ATTEMPT)
        record = new_record(ctx.stamp(), value)
        prior = [id(node) in answered for node in up]
        results = yield Step(
            [Call(node, Op.WRITE_MANY, ([kb], [record])) for node in up],
            enough=_acknowledged_by(record[0], need, prior),
            late=_hint_late(ctx, p, kb, record, replicas),
        )
        acked, superseded, refused, lost, errors = _judge(up, results, record[0], prior)
        if superseded:
            ctx.observe(max(superseded))  # later stamps of this client go above
        if acked >= need or not (refused and acked + len(refused) >= need):
            missed = [node for node in replicas if not node.is_up or node in lost]
            if missed:  # down or unreachable: the next node on the ring holds it for them
                yield from _hints.hint(ctx.hints, p, [(kb, record, replicas, missed)])
            if acked >= need:
                return record
            failures = [node.name for node in up if node.name in errors]
            error = partial_failure(level, "write", need, len(replicas), acked, failures, errors)
            raise refuse(ctx, error if attempt == 1 else may_be_applied(error, _EARLIER_ATTEMPT))
        if attempt < MAX_ATTEMPTS:
            ctx.observe(max(refused))
        answered.update(
            id(node)
            for node, result in zip(up, results)
            if result is not PENDING and not failed(result)
        )
    raise refuse(ctx, conflict(level, need, len(replicas), acked, MAX_ATTEMPTS))


# What a refusal after the first attempt adds: the attempts before it were sent.
_EARLIER_ATTEMPT = (
    "an earlier attempt of this call was sent to them before newer versions refused it"
)


def _acknowledged_by(version: int, need: int, prior: Sequence[bool]) -> Any:
    """Whether `need` replicas acknowledged the write of `version` (answers so far; see ``_judge``)."""

    def enough(results: Sequence[Any]) -> bool:
        acked = 0
        for result, before in zip(results, prior):
            if result is not PENDING and not failed(result):
                held = result[0]
                acked += held is None or held == version or before
        return acked >= need

    return enough


def _hint_late(ctx: Context, p: Any, kb: bytes, record: Record, replicas: list[Any]) -> Any:
    """What a write that answered after its call returned leaves: a hint if its node was lost."""

    def late(answered: list[tuple[Call, Any]]) -> Proc[None]:
        lost = [call.node for call, result in answered if failed(result) and result.unreachable]
        if lost:
            yield from _hints.hint(ctx.hints, p, [(kb, record, replicas, lost)])

    return late


def _put_one(
    ctx: Context, p: Any, kb: bytes, value: Any, level: str, replicas: list[Any], now_ms: int
) -> Proc[Record]:
    """An eventual write: one live replica applies it, the others get hints.

    From the second attempt on, a replica that answered an earlier one and
    refuses holds a write that arrived after this one began: this one is
    superseded there and done (see the module docstring), with no hints.
    """
    errors: dict[str, StoreError] = {}
    answered: set[int] = set()  # id() of the replicas that answered an earlier attempt
    for attempt in range(1, MAX_ATTEMPTS + 1):
        up = [node for node in replicas if node.is_up]
        if not up:
            error = refuse_down(ctx, level, "write", 1, replicas)
            raise error if attempt == 1 else may_be_applied(error, _EARLIER_ATTEMPT)
        record = new_record(ctx.stamp(), value)
        refused = None
        for node in up:
            (result,) = yield [Call(node, Op.WRITE_MANY, ([kb], [record]))]
            if failed(result):
                errors[node.name] = result
                continue
            held = result[0]
            if held is not None and held != record[0]:
                ctx.observe(held)
                if id(node) in answered:
                    return record  # superseded by a concurrent write
                answered.add(id(node))
                refused = held
                break
            others = [other for other in replicas if other is not node]
            if others:
                yield from _hints.hint_eventual(ctx.hints, node, others, [(kb, record)])
                if ctx.hints.backlog >= _hints.EVENTUAL_BATCH:
                    yield from _hints.deliver(ctx.hints, p, now_ms, list(ctx.hints.lagging))
            return record
        if refused is None:
            names = [node.name for node in up]
            error = partial_failure(level, "write", 1, len(replicas), 0, names, errors)
            raise refuse(ctx, error if attempt == 1 else may_be_applied(error, _EARLIER_ATTEMPT))
    raise refuse(ctx, conflict(level, 1, len(replicas), 0, MAX_ATTEMPTS))


def newer_sets(p: Any, current: Any) -> list[Any]:
    """The placements newer than `p` a write must also reach: its pending one, and the
    client's `current` one and its pending one if the layout changed during the write."""
    found: list[Any] = []
    for q in (p.pending, current, current.pending):
        if q is not None and q is not p and q.nodes and all(q is not f for f in found):
            found.append(q)
    return found


def _put_moving(
    ctx: Context, p: Any, kb: bytes, record: Record, replicas: list[Any], level: str
) -> Proc[None]:
    """Also write to the replicas of a pending or newly installed placement.

    While a change is under way the key has two replica sets, the old one
    (whose quorum the write already has) and the new one; a quorum read after
    the commit asks only the new one.  So a write at a level with W > 1 is
    acknowledged only once W replicas of every newer set hold it (or a newer
    version: a read through that replica returns something at least as new).
    Short of that, the replicas it missed get hints and the call fails, saying
    the write may be applied.  ``one``/``eventual`` writes stay best effort here
    (their promise is one replica).
    """
    strict = level not in p.wone
    # Which old replicas applied it is not known here (an asyncio write returns at
    # its quorum): those also in a newer set are asked again; a repeat of the same
    # record is answered "applied" and changes nothing.
    answers: dict[int, Any] = {}  # node id -> its answer to the write sent here
    held_by: set[int] = set()
    if not strict:  # best effort: only the replicas the write has not been to
        answers = {id(node): None for node in replicas}
    while True:
        current = ctx.placement
        for q in newer_sets(p, current):
            targets = q.replicas(kb)
            fresh = [node for node in targets if id(node) not in answers and node.is_up]
            if fresh:
                results = yield [Call(node, Op.WRITE_MANY, ([kb], [record])) for node in fresh]
                for node, result in zip(fresh, results):
                    answers[id(node)] = result
                    if not failed(result):
                        held_by.add(id(node))
            if not strict:
                continue
            need = q.wneed[level]
            holders = [node for node in targets if id(node) in held_by]
            if len(holders) >= need:
                continue
            missed = [node for node in targets if id(node) not in held_by]
            lost = [
                node
                for node in missed
                if not node.is_up
                or (failed(answers.get(id(node))) and answers[id(node)].unreachable)
            ]
            if lost:
                yield from _hints.hint(ctx.hints, q, [(kb, record, targets, lost)])
            errors = {
                node.name: answers[id(node)] for node in missed if failed(answers.get(id(node)))
            }
            raise refuse(
                ctx,
                partial_failure(
                    level, "write", need, len(targets), len(holders),
                    [node.name for node in missed], errors,
                ),
            )  # fmt: skip
        if ctx.placement is current:
            return
        p = current


# ----------------------------------------------------------------- batches


def writable(
    ctx: Context, p: Any, kbs: Sequence[bytes], need: int, level: str
) -> tuple[NDArray[np.int32], NDArray[np.bool_]]:
    """Each key's replicas and which of them are up; refuses if a key has too few up."""
    prefs = p.replicas_many(kbs)
    up_rows = p.alive()[prefs]
    if not up_rows.all():
        short = np.flatnonzero(up_rows.sum(axis=1) < max(need, 1))
        if short.size:
            replicas = [p.nodes[j] for j in prefs[short[0]].tolist()]
            raise refuse_down(ctx, level, "write", need, replicas)
    return prefs, up_rows


def put_many(
    ctx: Context, kbs: list[bytes], values: list[Any], level: str, now_ms: int
) -> Proc[None]:
    """Write a batch at `level`: the rule of ``put`` for every key, one store call per node.

    Refuses before writing anything if a key has too few replicas up.  Keys
    refused by newer versions are stamped again and rewritten together.
    """
    p = ctx.placement
    if not p.nodes:
        raise no_nodes()
    if ctx.hints.pending:
        yield from _hints.deliver_found(ctx.hints, p, p.nodes, now_ms)
    need = p.wneed[level]
    step = io_step(p.remote, len(kbs))
    if step < len(kbs):  # refuse before writing anything, as one batch would
        writable(ctx, p, kbs, need, level)
    for i in range(0, len(kbs), step):
        yield from _write_batch(
            ctx, p, kbs[i : i + step], values[i : i + step], need, level, now_ms
        )


def _write_batch(
    ctx: Context, p: Any, kbs: list[bytes], values: list[Any], need: int, level: str, now_ms: int
) -> Proc[None]:
    count = len(kbs)
    prefs, up_rows = writable(ctx, p, kbs, need, level)
    kb_arr = objects(kbs, count)
    val_arr = objects(values, count)
    final = np.empty(count, dtype=object)  # the record each key was acknowledged with
    if level in p.wone:
        yield from _write_batch_one(ctx, p, kb_arr, val_arr, prefs, up_rows, final, now_ms)
    else:
        yield from _write_batch_all(ctx, p, kb_arr, val_arr, prefs, need, level, final)
    if p.pending is not None or ctx.placement is not p:
        yield from _write_batch_moving(ctx, p, kbs, final.tolist(), level)


def _write_batch_all(
    ctx: Context,
    p: Any,
    kb_arr: NDArray[np.object_],
    val_arr: NDArray[np.object_],
    prefs: NDArray[np.int32],
    need: int,
    level: str,
    final: NDArray[np.object_],
) -> Proc[None]:
    n = prefs.shape[1]
    rows = np.arange(kb_arr.size)  # rows (keys) still to write
    # cells (key, replica) that answered an earlier attempt: a refusal there is a supersession
    answered: NDArray[np.bool_] | None = None
    error: UnavailableError | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        sub = prefs[rows]
        up = p.alive()[sub]
        enough = up.sum(axis=1) >= need
        if not enough.all():  # nodes went down since the batch began (a rewrite)
            short = int(np.flatnonzero(~enough)[0])
            replicas = [p.nodes[j] for j in sub[short].tolist()]
            down = refuse_down(ctx, level, "write", need, replicas)
            error = error or (down if attempt == 1 else may_be_applied(down, _EARLIER_ATTEMPT))
            rows, sub, up = rows[enough], sub[enough], up[enough]
            if not rows.size:
                break
        # One version for the batch, as a Cassandra batch has one timestamp:
        # versions order the writes of each key, and a batch writes each key once.
        version = ctx.stamp()
        count = rows.size
        everyone = count == kb_arr.size  # the first attempt, usually the only one: no copies
        records = new_records(version, val_arr if everyone else val_arr[rows])
        rec_arr = objects(records, count)
        if everyone:
            final[:] = rec_arr
        else:
            final[rows] = rec_arr
        keys_sub = kb_arr if everyone else kb_arr[rows]
        flat = np.flatnonzero(up.ravel())  # cells (row * n + column) of live replicas
        targets = groups(sub.ravel()[flat])
        calls = []
        for j, pos in targets:
            cells = flat[pos]
            calls.append(
                Call(
                    p.nodes[j],
                    Op.WRITE_MANY,
                    (keys_sub[cells // n].tolist(), rec_arr[cells // n].tolist()),
                )
            )
        results = yield calls
        applied = np.zeros(count * n, dtype=bool)  # applied, or superseded (see _judge)
        lost = ~up.ravel()  # cells to hint: down, or unreachable below
        refusal = np.zeros(count * n, dtype=bool)
        refused: dict[int, int] = {}  # row -> the newest version that refused it
        prior = None if answered is None else answered[rows].ravel()
        newest = -1  # the newest version that superseded a key
        errors: dict[str, StoreError] = {}
        for (j, pos), result in zip(targets, results):
            cells = flat[pos]
            if failed(result):
                errors[p.nodes[j].name] = result
                if result.unreachable:
                    lost[cells] = True
                continue
            if result.count(None) == len(result):  # every record applied: the usual case
                applied[cells] = True
                continue
            for cell, held in zip(cells.tolist(), result):
                if held is None or held == version:
                    applied[cell] = True
                    continue
                if prior is not None and prior[cell]:
                    applied[cell] = True
                    if held > newest:
                        newest = held
                else:
                    refusal[cell] = True
                    row = cell // n
                    if held > refused.get(row, -1):
                        refused[row] = held
        if newest >= 0:
            ctx.observe(newest)  # later stamps of this client go above
        acks = applied.reshape(count, n).sum(axis=1)
        done = acks >= need
        lost_rows = lost.reshape(count, n)
        again = np.zeros(count, dtype=bool)
        if refused:
            retry = np.fromiter(refused, dtype=np.intp, count=len(refused))
            refusals = refusal.reshape(count, n)[retry].sum(axis=1)
            can = (acks[retry] + refusals >= need) & ~done[retry]
            again[retry[can]] = True
        settled = ~again  # done or failed for good: hint what they missed
        hint_rows = np.flatnonzero(settled & lost_rows.any(axis=1))
        if hint_rows.size:
            items = []
            for i in hint_rows.tolist():
                replicas = [p.nodes[j] for j in sub[i].tolist()]
                missed = [node for node, gone in zip(replicas, lost_rows[i].tolist()) if gone]
                items.append((keys_sub[i], rec_arr[i], replicas, missed))
            yield from _hints.hint(ctx.hints, p, items)
        bad = np.flatnonzero(settled & ~done)
        if bad.size and error is None:
            i = int(bad[0])
            names = [p.nodes[j].name for j in sub[i].tolist()]
            failures = [
                name
                for name, ok in zip(names, applied.reshape(count, n)[i])
                if not ok and name in errors
            ]
            error = partial_failure(level, "write", need, n, int(acks[i]), failures, errors)
            if attempt > 1:
                error = may_be_applied(error, _EARLIER_ATTEMPT)
            error = refuse(ctx, error)
        if not again.any():
            break
        if attempt == MAX_ATTEMPTS:
            i = int(np.flatnonzero(again)[0])
            error = error or refuse(ctx, conflict(level, need, n, int(acks[i]), MAX_ATTEMPTS))
            break
        if answered is None:
            answered = np.zeros((kb_arr.size, n), dtype=bool)
        answered[rows] |= (applied | refusal).reshape(count, n)
        ctx.observe(max(refused[i] for i in np.flatnonzero(again).tolist()))
        rows = rows[again]
    if error is not None:
        raise error


def _write_batch_one(
    ctx: Context,
    p: Any,
    kb_arr: NDArray[np.object_],
    val_arr: NDArray[np.object_],
    prefs: NDArray[np.int32],
    up_rows: NDArray[np.bool_],
    final: NDArray[np.object_],
    now_ms: int,
) -> Proc[None]:
    """An eventual batch: each key's first live replica writes it, the others get hints."""
    count = kb_arr.size
    version = ctx.stamp()
    records = new_records(version, val_arr)
    rec_arr = objects(records, count)
    final[:] = rec_arr
    rows = np.arange(count)
    first = np.argmax(up_rows, axis=1)
    writer = prefs[rows, first]
    targets = groups(writer)
    results = yield [
        Call(p.nodes[j], Op.WRITE_MANY, (kb_arr[pos].tolist(), rec_arr[pos].tolist()))
        for j, pos in targets
    ]
    redo: list[int] = []
    for (j, pos), result in zip(targets, results):
        if failed(result):  # that replica failed: write these keys one by one to another
            redo.extend(pos.tolist())
            continue
        if result.count(None) != len(result):
            refused = {
                i for i, held in zip(pos.tolist(), result) if held is not None and held != version
            }
            if refused:
                redo.extend(refused)
                pos = np.array([i for i in pos.tolist() if i not in refused], dtype=np.intp)
        for c in range(prefs.shape[1]):
            skipped = pos[first[pos] != c]
            for owner, pos2 in groups(prefs[skipped, c]):
                hint = list(zip(kb_arr[skipped[pos2]].tolist(), rec_arr[skipped[pos2]].tolist()))
                yield from _hints.hint_eventual(ctx.hints, p.nodes[j], [p.nodes[owner]], hint)
    for i in redo:
        replicas = [p.nodes[x] for x in prefs[i].tolist()]
        final[i] = yield from _put_one(ctx, p, kb_arr[i], val_arr[i], "eventual", replicas, now_ms)
    if ctx.hints.backlog >= _hints.EVENTUAL_BATCH:
        yield from _hints.deliver(ctx.hints, p, now_ms, list(ctx.hints.lagging))


def _write_batch_moving(
    ctx: Context, p: Any, kbs: list[bytes], records: list[Record], level: str
) -> Proc[None]:
    """Also write the batch to the replicas of a pending or newly installed placement.

    The rule of ``_put_moving`` for each key: at a level with W > 1, W
    replicas of every newer set must hold it, or the keys short of that are
    hinted and the call fails (the writes may be applied).
    """
    count = len(kbs)
    kb_arr = objects(kbs, count)
    rec_arr = objects(records, count)
    strict = level not in p.wone
    error: UnavailableError | None = None
    while True:
        current = ctx.placement
        for q in newer_sets(p, current):
            q_prefs = q.replicas_many(kbs)
            n = q_prefs.shape[1]
            held = np.zeros(count * n, dtype=bool)
            lost = np.zeros(count * n, dtype=bool)
            errors: dict[str, StoreError] = {}
            sends = []
            for j, pos in groups(q_prefs.ravel()):
                if q.nodes[j].is_up:
                    sends.append((j, pos))
                else:
                    lost[pos] = True
            results = yield [
                Call(
                    q.nodes[j],
                    Op.WRITE_MANY,
                    (kb_arr[pos // n].tolist(), rec_arr[pos // n].tolist()),
                )
                for j, pos in sends
            ]
            for (j, pos), result in zip(sends, results):
                if not failed(result):  # applied, or a newer version held: both at least as new
                    held[pos] = True
                else:
                    errors[q.nodes[j].name] = result
                    lost[pos] |= bool(result.unreachable)
            if not strict:
                continue  # failures: repair() completes them
            acks = held.reshape(count, n).sum(axis=1)
            short = np.flatnonzero(acks < q.wneed[level])
            if not short.size:
                continue
            lost_rows = lost.reshape(count, n)
            items = []
            for i in short.tolist():
                replicas = [q.nodes[j] for j in q_prefs[i].tolist()]
                missed = [node for node, gone in zip(replicas, lost_rows[i].tolist()) if gone]
                if missed:
                    items.append((kb_arr[i], rec_arr[i], replicas, missed))
            if items:
                yield from _hints.hint(ctx.hints, q, items)
            if error is None:
                i = int(short[0])
                names = [q.nodes[j].name for j in q_prefs[i].tolist()]
                failures = [name for name, ok in zip(names, held.reshape(count, n)[i]) if not ok]
                error = refuse(
                    ctx,
                    partial_failure(
                        level, "write", q.wneed[level], n, int(acks[i]), failures, errors
                    ),
                )
        if ctx.placement is current:
            break
        p = current
    if error is not None:
        raise error
