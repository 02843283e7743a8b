"""Rebalancing: stream replica copies to their new nodes when membership changes.

Used by ``Cluster.add_node`` and ``Cluster.remove_node``.  The keys come from
the stores, their old and new replicas from the ring's batch call
(``get_nodes_many`` over all keys at once), and the difference between the
two index arrays says which copies to stream and which to drop.  Order of
work, so that nothing is lost and readers never see a half-changed ring:

1. install the old placement with the new one pending, so writes from now
   on also reach the new replicas;
2. copy every gained replica from the newest copy among the old replicas
   (conditional puts: a write that got there first is never undone);
3. install the new placement in one assignment;
4. drop copies from nodes that no longer replicate a key, but only for keys
   whose copies were all streamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cvstore.core import hints as _hints
from cvstore.core.batch import groups as _groups
from cvstore.core.batch import objects
from cvstore.core.batch import objects as _objects
from cvstore.core.calls import Call, Context, Op, Proc, failed, readable
from cvstore.core.records import newest_by_row
from cvstore.errors import StoreError

__all__ = ("MembershipReport", "Moves", "drop", "rebalance", "report", "stream")


@dataclass(frozen=True)
class MembershipReport:
    """What ``add_node`` or ``remove_node`` did.

    Attributes
    ----------
    action : str
        ``"add"`` or ``"remove"``.
    node : str
        The node that joined or left.
    moved : int
        Replica copies streamed to nodes that newly replicate their key.
    seconds : float
        Wall time of the whole change.
    keys : int
        Distinct keys examined.
    received, sent, dropped : dict[str, int]
        Per node: copies streamed to it, copies streamed from it (the node
        whose copy was newest), copies removed from it because it no longer
        replicates the key.
    skipped : tuple[str, ...]
        Nodes that were down: their copies were neither read nor dropped.
    missed : int
        Copies that could not be streamed (no live source, or a target down
        with no node to hold a hint); ``repair()`` completes them.
    hinted : int
        Copies for a target that was down or failing, left as hints for it.
        A change of a layout kept on the nodes never commits short: a node
        other than a removed one that could not be read, or a copy left as
        a hint, stops its commit (``membership.whole``), so its report has
        no hinted copies and skips at most the removed node.
    """

    action: str
    node: str
    moved: int
    seconds: float
    keys: int = 0
    received: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    missed: int = 0
    hinted: int = 0

    def __repr__(self) -> str:
        return (
            f"MembershipReport({self.action} {self.node!r}: moved={self.moved} of "
            f"{self.keys} keys in {self.seconds:.3f}s, missed={self.missed})"
        )


@dataclass
class Moves:
    """What streaming found and did, for the drop that follows and the report."""

    keys: NDArray[np.object_]
    old_pref: NDArray[np.int32]
    new_pref: NDArray[np.int32]
    # nodes left out, each with the error that left it out (None: believed down, not asked)
    skipped: dict[str, StoreError | None]
    plan: dict[str, Any] | None

    def short(self) -> dict[str, StoreError | None]:
        """The nodes whose copies were not all read or written: those skipped, and the
        targets a copy went to as a hint instead (each with its error)."""
        unwritten = self.plan["unwritten"] if self.plan else {}
        return {**self.skipped, **unwritten}


def rebalance(
    ctx: Context, old: Any, new: Any, *, action: str, node: str
) -> Proc[MembershipReport]:
    """Move from placement `old` to `new` in this process (``seconds`` left 0 for the driver).

    Clusters whose membership lives on the nodes do the same steps with a
    layout installed on every node between them (see the drivers).
    """
    ctx.install(old.with_pending(new))
    try:
        moves = yield from stream(ctx, old, new)
    except BaseException:
        ctx.install(old)
        raise
    ctx.install(new)
    dropped = yield from drop(old, new, moves)
    return report(action, node, moves, dropped)


def stream(ctx: Context, old: Any, new: Any, ask: frozenset[str] = frozenset()) -> Proc[Moves]:
    """Copy every replica `new` gains from the newest copy among the old replicas.

    Nodes named in `ask` are asked even while this client believes them down
    (a commit needs their copies: a suspicion may be stale, and its error
    says why it was not); other nodes believed down are skipped.
    """
    keys_arr, old_pref, new_pref, skipped = yield from _affected(old, new, ask)
    plan = None
    if keys_arr.size:
        plan = yield from _stream(ctx, old, new, keys_arr, old_pref, new_pref, skipped)
    return Moves(keys_arr, old_pref, new_pref, skipped, plan)


def drop(old: Any, new: Any, moves: Moves) -> Proc[dict[str, int]]:
    """Remove the copies `new` no longer places, for keys whose copies were all streamed."""
    if moves.plan is None:
        return {}
    return (
        yield from _drop(
            old,
            new,
            moves.keys,
            moves.old_pref,
            moves.new_pref,
            moves.plan["failed"],
            moves.plan["held"],
            moves.skipped,
        )
    )


def empty() -> Moves:
    """Moves of a change that streamed nothing."""
    none = np.empty((0, 0), dtype=np.int32)
    return Moves(objects([], 0), none, none, {}, None)


def report(action: str, node: str, moves: Moves, dropped: dict[str, int]) -> MembershipReport:
    plan = moves.plan
    return MembershipReport(
        action=action,
        node=node,
        moved=plan["moved"] if plan else 0,
        seconds=0.0,
        keys=int(moves.keys.size),
        received=plan["received"] if plan else {},
        sent=plan["sent"] if plan else {},
        dropped=dropped,
        skipped=tuple(sorted(moves.skipped)),
        missed=plan["missed"] if plan else 0,
        hinted=plan["hinted"] if plan else 0,
    )


def _affected(
    old: Any, new: Any, ask: frozenset[str]
) -> Proc[
    tuple[NDArray[np.object_], NDArray[np.int32], NDArray[np.int32], dict[str, StoreError | None]]
]:
    skipped: dict[str, StoreError | None] = {
        n.name: None for n in (*old.nodes, *new.nodes) if not n.is_up and n.name not in ask
    }
    up = [n for n in old.nodes if n.name not in skipped]
    listed = yield [Call(n, Op.KEYS) for n in up]
    keyset: set[bytes] = set()
    for n, keys in zip(up, listed):
        if failed(keys):
            skipped[n.name] = keys
        else:
            keyset.update(keys)
    keys = list(keyset)
    keys_arr = _objects(keys, len(keys))
    if not keys or not old.nodes or not new.nodes:
        empty = np.empty((len(keys), 0), dtype=np.int32)
        old_pref = old.replicas_many(keys) if old.nodes and keys else empty
        new_pref = new.replicas_many(keys) if new.nodes and keys else empty
        return keys_arr, old_pref, new_pref, skipped
    return keys_arr, old.replicas_many(keys), new.replicas_many(keys), skipped


def _masks(
    old: Any, new: Any, old_pref: NDArray[np.int32], new_pref: NDArray[np.int32]
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(gained, lost): new replicas that were not old ones, old ones that are not new."""
    to_new = np.array([new.index.get(n.name, -1) for n in old.nodes], dtype=np.int32)
    old_as_new = to_new[old_pref]
    gained = ~(new_pref[:, :, None] == old_as_new[:, None, :]).any(axis=2)
    lost = ~(old_as_new[:, :, None] == new_pref[:, None, :]).any(axis=2)
    return gained, lost


STREAM_CHUNK = 10_000  # keys streamed per round (a read per source, a write per target)


def _stream(
    ctx: Context,
    old: Any,
    new: Any,
    keys_arr: NDArray[np.object_],
    old_pref: NDArray[np.int32],
    new_pref: NDArray[np.int32],
    skipped: dict[str, StoreError | None],
) -> Proc[dict[str, Any]]:
    gained, _ = _masks(old, new, old_pref, new_pref)
    moving = np.flatnonzero(gained.any(axis=1))
    received: dict[str, int] = {}
    sent: dict[str, int] = {}
    unsafe = np.zeros(keys_arr.size, dtype=bool)  # keys not streamed whole: keep their old copies
    # The version each old replica held when its copy was read (None: none read).
    # A copy is dropped only while it still holds that version: one written
    # since (a write acknowledged during the change) is newer than the one
    # streamed, and stays for repair() to judge.
    held = np.full(old_pref.shape, None, dtype=object)
    totals = {"moved": 0, "missed": 0, "hinted": 0}
    unwritten: dict[str, StoreError] = {}  # targets a write failed for (a hint instead)
    progress = ctx.progress
    copies, done = int(gained[moving].sum()), 0
    if progress is not None:
        progress(0, copies)
    # In rounds of STREAM_CHUNK keys, so that memory stays bounded and
    # progress is heard of while a large node streams.
    for start in range(0, moving.size, STREAM_CHUNK):
        rows = moving[start : start + STREAM_CHUNK]
        yield from _stream_rows(
            ctx, old, new, keys_arr, old_pref, new_pref, skipped, gained, rows,
            received, sent, unsafe, held, totals, unwritten,
        )  # fmt: skip
        done += int(gained[rows].sum())
        if progress is not None:
            progress(done, copies)
    return {
        **totals,
        "received": received,
        "sent": sent,
        "failed": unsafe,
        "held": held,
        "unwritten": unwritten,
    }


def _stream_rows(
    ctx: Context,
    old: Any,
    new: Any,
    keys_arr: NDArray[np.object_],
    old_pref: NDArray[np.int32],
    new_pref: NDArray[np.int32],
    skipped: dict[str, StoreError | None],
    gained: NDArray[np.bool_],
    rows: NDArray[np.intp],
    received: dict[str, int],
    sent: dict[str, int],
    unsafe: NDArray[np.bool_],
    held: NDArray[np.object_],
    totals: dict[str, int],
    unwritten: dict[str, StoreError],
) -> Proc[None]:
    """Stream the gained copies of the keys in `rows`, adding to the counts given."""
    count = rows.size
    sub_keys = keys_arr[rows]
    sub_old = old_pref[rows]
    # Read every old replica's copy of the moving keys, one batch per node.
    reads = []
    for c in range(sub_old.shape[1]):
        for j, pos in _groups(sub_old[:, c]):
            if old.nodes[j].name not in skipped:
                reads.append((c, j, pos))
    results = yield [
        Call(old.nodes[j], Op.GET_MANY, (sub_keys[pos].tolist(),)) for _, j, pos in reads
    ]
    columns_arr = [np.full(count, None, dtype=object) for _ in range(sub_old.shape[1])]
    for (c, j, pos), records in zip(reads, results):
        records = readable(records)  # a copy that does not parse is no copy: the others count
        if failed(records):
            skipped[old.nodes[j].name] = records
            continue
        columns_arr[c][pos] = _objects(records, pos.size)
        held[rows[pos], c] = [None if r is None else r[0] for r in records]
    columns = [column.tolist() for column in columns_arr]
    best, src_col = newest_by_row(columns)
    best_arr = _objects(best, count)
    has = np.fromiter((b is not None for b in best), dtype=bool, count=count)
    src_col_arr = np.asarray(src_col, dtype=np.int64)
    src_node = np.where(has, sub_old[np.arange(count), np.maximum(src_col_arr, 0)], -1)

    moved = missed = hinted = 0
    g_rows, g_cols = np.nonzero(gained[rows])
    targets = new_pref[rows][g_rows, g_cols]
    writes = []
    for t, pos in _groups(targets):
        r = g_rows[pos]
        ok = r[has[r]]
        missing = r[~has[r]]
        missed += missing.size
        unsafe[rows[missing]] = True
        if ok.size:
            writes.append((new.nodes[t], ok))
    # (a target a write failed for in an earlier round gets hints from then on)
    up_writes = [
        (target, ok)
        for target, ok in writes
        if target.name not in skipped and target.name not in unwritten
    ]
    results = yield [
        Call(target, Op.WRITE_MANY, (sub_keys[ok].tolist(), best_arr[ok].tolist()))
        for target, ok in up_writes
    ]
    stored_by: dict[int, bool] = {}
    for (target, _), result in zip(up_writes, results):
        stored_by[id(target)] = not failed(result)
        if failed(result):
            unwritten[target.name] = result
    for target, ok in writes:
        if not stored_by.get(id(target), False):
            # Like a write to a down replica: a hint for later.  The old copies
            # stay where they are until repair() finds the key whole.
            unsafe[rows[ok]] = True
            items = [
                (
                    sub_keys[i],
                    best_arr[i],
                    [new.nodes[j] for j in new_pref[rows[i]].tolist()],
                    [target],
                )
                for i in ok.tolist()
            ]
            stored_hints = yield from _hints.hint(ctx.hints, new, items)
            hinted += stored_hints
            missed += ok.size - stored_hints
            continue
        moved += ok.size
        received[target.name] = received.get(target.name, 0) + int(ok.size)
        for j, pos2 in _groups(src_node[ok]):
            name = old.nodes[j].name
            sent[name] = sent.get(name, 0) + int(pos2.size)
    totals["moved"] += moved
    totals["missed"] += missed
    totals["hinted"] += hinted


def _drop(
    old: Any,
    new: Any,
    keys_arr: NDArray[np.object_],
    old_pref: NDArray[np.int32],
    new_pref: NDArray[np.int32],
    unsafe: NDArray[np.bool_],
    held: NDArray[np.object_],
    skipped: dict[str, StoreError | None],
) -> Proc[dict[str, int]]:
    _, lost = _masks(old, new, old_pref, new_pref)
    # a copy not read (none held then, or unreadable) is not dropped: repair() judges it
    l_rows, l_cols = np.nonzero(lost & ~unsafe[:, None] & (held != None))
    drops = []
    for j, pos in _groups(old_pref[l_rows, l_cols]):
        holder = old.nodes[j]
        if holder.is_up and holder.name not in skipped:
            rows, cols = l_rows[pos], l_cols[pos]
            drops.append((holder, list(zip(keys_arr[rows].tolist(), held[rows, cols].tolist()))))
    results = yield [Call(holder, Op.PURGE_MANY, (items,)) for holder, items in drops]
    dropped: dict[str, int] = {}
    for (holder, _), removed in zip(drops, results):
        if not failed(removed):  # a failure leaves strays that repair() removes
            dropped[holder.name] = int(removed)
    return dropped
