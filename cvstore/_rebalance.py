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

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from cvstore._gcpause import gc_paused
from cvstore.errors import StoreError

__all__ = ("MembershipReport", "rebalance")


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


def _objects(items: Any, count: int) -> np.ndarray:
    # np.array would unpack records (tuples) into a second dimension.
    return np.fromiter(items, dtype=object, count=count)


def _groups(node_ids: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(node index, positions) for each node index present, positions ascending."""
    if node_ids.size == 0:
        return []
    top = int(node_ids.max())
    if top < 256:
        # numpy radix-sorts small integer types: far faster than a merge sort of int32.
        order = np.argsort(node_ids.astype(np.uint8), kind="stable")
    elif top < 65536:
        order = np.argsort(node_ids.astype(np.uint16), kind="stable")
    else:
        order = np.argsort(node_ids, kind="stable")
    sorted_ids = node_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    ends = np.r_[starts[1:], sorted_ids.size]
    return [(int(sorted_ids[s]), order[s:e]) for s, e in zip(starts.tolist(), ends.tolist())]


def _newest(columns: list[list[Any]]) -> tuple[list[Any], list[int]]:
    """Per row, the newest record across columns (None if none) and its column."""
    best_out: list[Any] = []
    src_out: list[int] = []
    append_best = best_out.append
    append_src = src_out.append
    for row in zip(*columns):
        best = None
        src = -1
        for c, record in enumerate(row):
            if record is not None and record is not best and (best is None or record[0] > best[0]):
                best = record
                src = c
        append_best(best)
        append_src(src)
    return best_out, src_out


def rebalance(
    old: Any, new: Any, install: Callable[[Any], None], hints: Any, *, action: str, node: str
) -> MembershipReport:
    """Move from placement `old` to `new`, streaming copies; `install` swaps the cluster's placement."""
    started = time.perf_counter()
    install(old.with_pending(new))
    with gc_paused():
        try:
            keys_arr, old_pref, new_pref, skipped = _affected(old, new)
            if keys_arr.size:
                plan = _stream(old, new, keys_arr, old_pref, new_pref, skipped, hints)
            else:
                plan = None
        except BaseException:
            install(old)
            raise
        install(new)
        dropped: dict[str, int] = {}
        if plan is not None:
            dropped = _drop(old, new, keys_arr, old_pref, new_pref, plan["failed"], skipped)
    return MembershipReport(
        action=action,
        node=node,
        moved=plan["moved"] if plan else 0,
        seconds=time.perf_counter() - started,
        keys=int(keys_arr.size),
        received=plan["received"] if plan else {},
        sent=plan["sent"] if plan else {},
        dropped=dropped,
        skipped=tuple(sorted(skipped)),
        missed=plan["missed"] if plan else 0,
        hinted=plan["hinted"] if plan else 0,
    )


def _affected(old: Any, new: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, set[str]]:
    skipped = {n.name for n in old.nodes if not n.is_up} | {
        n.name for n in new.nodes if not n.is_up
    }
    keyset: set[bytes] = set()
    for n in old.nodes:
        if n.is_up:
            try:
                keyset.update(n.store.keys())
            except StoreError:
                skipped.add(n.name)
    keys = list(keyset)
    keys_arr = _objects(keys, len(keys))
    if not keys or not old.nodes or not new.nodes:
        empty = np.empty((len(keys), 0), dtype=np.int32)
        old_pref = old.replicas_many(keys) if old.nodes and keys else empty
        new_pref = new.replicas_many(keys) if new.nodes and keys else empty
        return keys_arr, old_pref, new_pref, skipped
    return keys_arr, old.replicas_many(keys), new.replicas_many(keys), skipped


def _masks(
    old: Any, new: Any, old_pref: np.ndarray, new_pref: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(gained, lost): new replicas that were not old ones, old ones that are not new."""
    to_new = np.array([new.index.get(n.name, -1) for n in old.nodes], dtype=np.int32)
    old_as_new = to_new[old_pref]
    gained = ~(new_pref[:, :, None] == old_as_new[:, None, :]).any(axis=2)
    lost = ~(old_as_new[:, :, None] == new_pref[:, None, :]).any(axis=2)
    return gained, lost


def _stream(
    old: Any,
    new: Any,
    keys_arr: np.ndarray,
    old_pref: np.ndarray,
    new_pref: np.ndarray,
    skipped: set[str],
    hints: Any,
) -> dict[str, Any]:
    gained, _ = _masks(old, new, old_pref, new_pref)
    rows = np.flatnonzero(gained.any(axis=1))
    count = rows.size
    received: dict[str, int] = {}
    sent: dict[str, int] = {}
    failed = np.zeros(keys_arr.size, dtype=bool)
    if not count:
        return {
            "moved": 0,
            "received": received,
            "sent": sent,
            "missed": 0,
            "hinted": 0,
            "failed": failed,
        }
    sub_keys = keys_arr[rows]
    sub_old = old_pref[rows]
    # Read every old replica's copy of the moving keys, one batch per node.
    columns = []
    for c in range(sub_old.shape[1]):
        column = np.full(count, None, dtype=object)
        for j, pos in _groups(sub_old[:, c]):
            source = old.nodes[j]
            if not source.is_up or source.name in skipped:
                continue
            try:
                records = source.store.get_many(sub_keys[pos].tolist())
            except StoreError:
                skipped.add(source.name)
                continue
            column[pos] = _objects(records, pos.size)
        columns.append(column.tolist())
    best, src_col = _newest(columns)
    best_arr = _objects(best, count)
    has = np.fromiter((b is not None for b in best), dtype=bool, count=count)
    src_col_arr = np.asarray(src_col, dtype=np.int64)
    src_node = np.where(has, sub_old[np.arange(count), np.maximum(src_col_arr, 0)], -1)

    moved = missed = hinted = 0
    g_rows, g_cols = np.nonzero(gained[rows])
    targets = new_pref[rows][g_rows, g_cols]
    for t, pos in _groups(targets):
        target = new.nodes[t]
        r = g_rows[pos]
        ok = r[has[r]]
        missing = r[~has[r]]
        missed += missing.size
        failed[rows[missing]] = True
        if not ok.size:
            continue
        stored = False
        if target.is_up:
            try:
                target.store.put_many_columns(sub_keys[ok].tolist(), best_arr[ok].tolist())
                stored = True
            except StoreError:
                pass
        if not stored:
            # Like a write to a down replica: a hint for later.  The old copies
            # stay where they are until repair() finds the key whole.
            failed[rows[ok]] = True
            items = [
                (
                    sub_keys[i],
                    best_arr[i],
                    [new.nodes[j] for j in new_pref[rows[i]].tolist()],
                    [target],
                )
                for i in ok.tolist()
            ]
            stored_hints = hints.hint(new, items)
            hinted += stored_hints
            missed += ok.size - stored_hints
            continue
        moved += ok.size
        received[target.name] = received.get(target.name, 0) + int(ok.size)
        for j, pos2 in _groups(src_node[ok]):
            name = old.nodes[j].name
            sent[name] = sent.get(name, 0) + int(pos2.size)
    return {
        "moved": moved,
        "received": received,
        "sent": sent,
        "missed": missed,
        "hinted": hinted,
        "failed": failed,
    }


def _drop(
    old: Any,
    new: Any,
    keys_arr: np.ndarray,
    old_pref: np.ndarray,
    new_pref: np.ndarray,
    failed: np.ndarray,
    skipped: set[str],
) -> dict[str, int]:
    _, lost = _masks(old, new, old_pref, new_pref)
    l_rows, l_cols = np.nonzero(lost & ~failed[:, None])
    dropped: dict[str, int] = {}
    for j, pos in _groups(old_pref[l_rows, l_cols]):
        holder = old.nodes[j]
        if not holder.is_up or holder.name in skipped:
            continue
        try:
            removed = holder.store.delete_many(keys_arr[l_rows[pos]].tolist())
        except StoreError:
            continue  # the copies stay as strays until repair() removes them
        dropped[holder.name] = int(removed)
    return dropped
