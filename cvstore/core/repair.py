"""Anti-entropy repair: make every key's replica set whole and current.

``repair`` hands over waiting hints, then compares replicas with Merkle
trees instead of reading every value.  Each node that is up lists its keys
with their versions (``Store.scan_versions``: a Redis server sends no
values).  Keys are grouped by their replica set (the key ranges of the ring
that share one), and each group is cut into ``LEAVES`` buckets by the key's
ring hash.  For every replica, a leaf is the XOR of a 64-bit hash of each
(key, version) it holds in that bucket, and the group's root is a hash of its
leaves.  Replicas whose roots agree are in sync for that group; where they
differ, only the differing leaves are opened, and only the keys in them are
settled one by one: the newest version is read from one replica that has it
and written to the replicas that lack it.  Stray copies (on nodes that do not
replicate their key) and tombstones older than the grace period are settled
the same way.

A key whose replicas are not all up is brought as far as it can be, but its
strays and tombstones are kept: removing them is only safe once every
replica is current.  The hashes are computed in this process for this pass
only, so Python's own hash of (key, version) serves.

A record a store cannot parse is not listed by ``scan_versions``: the
replica counts as lacking the key and is given the newest good copy, which
replaces the bad bytes.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvstore.core import hints as _hints
from cvstore.core.calls import Call, Context, Op, Proc, failed, readable
from cvstore.core.records import dead_since

__all__ = ("RepairReport", "repair")


@dataclass(frozen=True)
class RepairReport:
    """What ``Cluster.repair()`` did.

    Attributes
    ----------
    keys : int
        Distinct keys seen on the nodes that were up.
    repaired : int
        Replica copies written because they were missing or stale.
    strays_removed : int
        Copies removed from nodes that do not replicate their key.
    purged : int
        Deleted or expired keys whose last copies were removed (dead for
        longer than the grace period, every replica current).
    hints_delivered, hints_dropped : int
        Hints handed to their owners, and expired hints dropped, first.
    skipped : tuple[str, ...]
        Nodes that were down; keys they replicate were not completed.
    seconds : float
        Wall time.
    unreadable : int
        Records the stores could not parse or keys under their prefix that
        are not cvstore's, met by this pass (skipped, counted; a bad record
        is overwritten with the newest good copy where there is one).
    leaves_compared, leaves_differing : int
        Merkle leaves (key buckets of a replica set) compared between
        replicas, and how many of them differed.
    records_fetched : int
        Records read with their values to be copied (only from differing
        leaves, strays and tombstones; every other key is settled by its hash).
    """

    keys: int
    repaired: int
    strays_removed: int
    purged: int
    hints_delivered: int
    hints_dropped: int
    skipped: tuple[str, ...]
    seconds: float
    leaves_compared: int = 0
    leaves_differing: int = 0
    records_fetched: int = 0
    unreadable: int = 0

    @property
    def complete(self) -> bool:
        """True when every node was up, so every key is whole and current."""
        return not self.skipped


LEAVES = 256  # Merkle leaves per replica group
CHUNK = 10_000  # keys read (and written) per source per round


def repair(ctx: Context, now_ms: int, grace_ms: int) -> Proc[RepairReport]:
    """One anti-entropy pass over the current placement (see the module docstring).

    ``seconds`` and ``unreadable`` in the report are left 0: the driver
    times the pass and reads the stores' counters.
    """
    placement = ctx.placement
    book = ctx.hints
    dropped_before = book.dropped
    delivered = yield from _hints.deliver(book, placement, now_ms)
    hints_dropped = book.dropped - dropped_before

    nodes = placement.nodes
    skipped = [n.name for n in nodes if not n.is_up]
    up = [j for j, node in enumerate(nodes) if node.is_up]
    scans = yield [Call(nodes[j], Op.SCAN_VERSIONS) for j in up]
    listed: dict[int, tuple[list[bytes], list[int], list[bool], list[int]]] = {}
    for j, result in zip(up, scans):
        if failed(result):
            skipped.append(nodes[j].name)
        else:
            listed[j] = result
    keys_all: list[bytes] = []
    versions_all: list[int] = []
    tombs_all: list[bool] = []
    expires_all: list[int] = []
    owner_parts = []
    for j, (keys, versions, tombs, expires) in listed.items():
        keys_all.extend(keys)
        versions_all.extend(versions)
        tombs_all.extend(tombs)
        expires_all.extend(expires)
        owner_parts.append(np.full(len(keys), j, dtype=np.int32))
    total = len(keys_all)
    if not total:
        return _report(0, 0, 0, 0, delivered, hints_dropped, skipped, 0, 0, 0)

    holder = np.concatenate(owner_parts)
    n = placement.n
    # The key's replica set, as node indices in ascending order: its Merkle group.
    rows = np.sort(placement.replicas_many(keys_all), axis=1)
    groups, gid = np.unique(rows, axis=0, return_inverse=True)
    gid = gid.reshape(-1)
    bucket = (placement.ring.hash_many(keys_all) >> np.uint64(56)).astype(np.int64) % LEAVES
    leaf = gid.astype(np.int64) * LEAVES + bucket
    member = rows == holder[:, None]
    is_member = member.any(axis=1)
    col = member.argmax(axis=1)
    hashes = np.fromiter(map(hash, zip(keys_all, versions_all)), dtype=np.int64, count=total).view(
        np.uint64
    )
    tree = np.zeros((len(groups) * LEAVES, n), dtype=np.uint64)
    np.bitwise_xor.at(tree, (leaf[is_member], col[is_member]), hashes[is_member])

    # Compare roots, then leaves, between the replicas of each group that answered.
    listed_mask = np.zeros(len(nodes), dtype=bool)
    listed_mask[list(listed)] = True
    answered = listed_mask[groups]  # (groups, n)
    leaves = tree.reshape(len(groups), LEAVES, n)
    bad_by_group = np.zeros((len(groups), LEAVES), dtype=bool)
    for g in range(len(groups)):
        cols = np.flatnonzero(answered[g])
        if cols.size < 2:
            continue
        roots = {hashlib.blake2b(leaves[g, :, c].tobytes(), digest_size=16).digest() for c in cols}
        if len(roots) > 1:
            sub = leaves[g][:, cols]
            bad_by_group[g] = (sub != sub[:, :1]).any(axis=1)
    bad = bad_by_group.reshape(-1)
    compared = int(answered.any(axis=1).sum()) * LEAVES
    differing = int(bad.sum())
    # Strays, tombstones and expired values are settled key by key too, wherever they are.
    bad[leaf[~is_member]] = True
    tomb_arr = np.fromiter(tombs_all, dtype=bool, count=total)
    if any(expires_all):
        expiry = np.fromiter(expires_all, dtype=np.int64, count=total)
        tomb_arr |= (expiry > 0) & (expiry <= now_ms)
    bad[leaf[tomb_arr]] = True
    chosen = np.flatnonzero(bad[leaf])

    # The keys to settle: every (holder, version, dead since) of each (None: live).
    copies: dict[bytes, dict[int, tuple[int, int | None]]] = defaultdict(dict)
    for i, j in zip(chosen.tolist(), holder[chosen].tolist()):
        copies[keys_all[i]][j] = (
            versions_all[i],
            dead_since(versions_all[i], tombs_all[i], expires_all[i]),
        )
    settle = list(copies)
    fetch: dict[int, list[bytes]] = defaultdict(list)  # source node -> keys to read
    wanted: dict[bytes, list[int]] = {}  # key -> replicas to write its newest record to
    purges: dict[int, list[tuple[bytes, int]]] = defaultdict(list)
    stray_removals: dict[int, list[tuple[bytes, int]]] = defaultdict(list)
    purged_keys: set[bytes] = set()
    if settle:
        replica_rows = placement.replicas_many(settle).tolist()
    else:
        replica_rows = []
    for kb, row in zip(settle, replica_rows):
        held = copies[kb]
        best_j, best = -1, None
        for j, (version, dead) in held.items():
            if best is None or version > best[0] or (version == best[0] and j in row):
                best_j, best = j, (version, dead)
        if best is None:
            continue
        complete = all(j in listed for j in row)
        strays = [(j, held[j][0]) for j in held if j not in row]
        if complete and best[1] is not None and now_ms - best[1] >= grace_ms:
            # Deleted (or expired) for longer than the grace period, and every
            # replica current: no copy can bring the key back.
            # Every copy goes, each at the version it has now, so a write
            # that lands meanwhile survives (its version no longer matches).
            purged_keys.add(kb)
            for j, (version, _) in held.items():
                purges[j].append((kb, version))
            continue
        lacking = [j for j in row if j in listed and (j not in held or held[j][0] < best[0])]
        if lacking:
            fetch[best_j].append(kb)
            wanted[kb] = lacking
        if complete:
            for j, version in strays:
                stray_removals[j].append((kb, version))

    repaired = fetched = 0
    unsafe: set[bytes] = set()  # keys a failed read or write left incomplete
    # Newest copies are read and written in rounds of CHUNK keys per source,
    # so that memory stays bounded and progress is heard of.
    progress = ctx.progress
    total, done = sum(len(kbs) for kbs in fetch.values()), 0
    if progress is not None:
        progress(0, total)
    for start in range(0, max((len(kbs) for kbs in fetch.values()), default=0), CHUNK):
        sources = [j for j in fetch if len(fetch[j]) > start]
        chunks = {j: fetch[j][start : start + CHUNK] for j in sources}
        puts: dict[int, list[tuple[bytes, Any]]] = defaultdict(list)
        got_all = yield [Call(nodes[j], Op.GET_MANY, (chunks[j],)) for j in sources]
        for j, got in zip(sources, got_all):
            kbs = chunks[j]
            got = readable(got)  # a record that no longer parses: that key waits for the next pass
            if failed(got):
                skipped.append(nodes[j].name)
                unsafe.update(kbs)
                continue
            for kb, record in zip(kbs, got):
                if record is None:  # purged, moved or unreadable meanwhile: next pass
                    unsafe.add(kb)
                    continue
                fetched += 1
                for target in wanted[kb]:
                    puts[target].append((kb, record))
        targets = list(puts)
        results = yield [
            Call(nodes[j], Op.WRITE_MANY, tuple(map(list, zip(*puts[j])))) for j in targets
        ]
        for j, result in zip(targets, results):
            if failed(result):
                skipped.append(nodes[j].name)
                unsafe.update(kb for kb, _ in puts[j])
            else:
                repaired += sum(held is None for held in result)
        done += sum(len(kbs) for kbs in chunks.values())
        if progress is not None:
            progress(done, total)
    strays_removed = yield from _purge(nodes, stray_removals, unsafe)
    yield from _purge(nodes, purges, unsafe)
    purged = len(purged_keys - unsafe)
    distinct = len(set(keys_all))
    return _report(
        distinct, repaired, strays_removed, purged, delivered, hints_dropped, skipped,
        compared, differing, fetched,
    )  # fmt: skip


def _report(
    keys: int,
    repaired: int,
    strays_removed: int,
    purged: int,
    delivered: int,
    dropped: int,
    skipped: list[str],
    compared: int,
    differing: int,
    fetched: int,
) -> RepairReport:
    return RepairReport(
        keys=keys,
        repaired=repaired,
        strays_removed=strays_removed,
        purged=purged,
        hints_delivered=delivered,
        hints_dropped=dropped,
        skipped=tuple(sorted(set(skipped))),
        seconds=0.0,
        leaves_compared=compared,
        leaves_differing=differing,
        records_fetched=fetched,
    )


def _purge(
    nodes: Any, batches: dict[int, list[tuple[bytes, int]]], unsafe: set[bytes]
) -> Proc[int]:
    targets = []
    for j, items in batches.items():
        items = [(kb, version) for kb, version in items if kb not in unsafe]
        if items:
            targets.append((j, items))
    results = yield [Call(nodes[j], Op.PURGE_MANY, (items,)) for j, items in targets]
    return sum(r for r in results if not failed(r))
