"""Batch helpers shared by the procedures: grouping rows by node, object arrays, slices.

A batch call handles thousands of keys; these keep the per-key work in
NumPy and C-level iteration rather than Python loops.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ("IO_BATCH", "groups", "io_step", "objects")

# Keys per slice of a batch to servers.  A batch to servers goes in slices of
# IO_BATCH keys, each sent to every node before any reply is read: a whole
# large batch written to one server fills its socket while the other servers
# wait for their requests.  Measured, put_many of 200,000 keys over 3 Redis
# servers: 382k records/s whole, 424k-538k in slices of 2,000, 576k-699k of
# 5,000, 608k-745k of 10,000; get_many the same within noise.  Batches to
# in-process stores go whole.
IO_BATCH = 10_000


def io_step(remote: bool, count: int) -> int:
    """Keys per store call for a batch of `count` keys (see IO_BATCH)."""
    if remote and count > IO_BATCH:
        return IO_BATCH
    return max(count, 1)


def objects(items: Iterable[Any], count: int) -> NDArray[np.object_]:
    """A 1-d object array of `items` (np.array would unpack tuples into a second dimension)."""
    return np.fromiter(items, dtype=object, count=count)


def groups(node_ids: NDArray[np.integer]) -> list[tuple[int, NDArray[np.intp]]]:
    """(node index, positions) for each node index present, positions ascending."""
    if node_ids.size == 0:
        return []
    top = int(np.max(node_ids))
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
