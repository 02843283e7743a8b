"""Hot keys: the most requested keys, cluster-wide and per node, in fixed memory.

``SpaceSaving`` is the space-saving sketch (Metwally, Agrawal and El Abbadi,
2005), taking its keys in batches: at most `capacity` counters, whatever the
number of distinct keys.  A batch is counted exactly first; then a key
already counted adds its batch count, and a new key starts from the smallest
counter (``floor``, its possible overcount, ``error``) plus its batch count;
the `capacity` largest counters are kept.  After a stream of ``total`` keys:

- every key counted is reported with ``count - error <= true <= count``;
- ``error <= total / capacity`` for every key;
- every key whose true count is above ``total / capacity`` is counted.

(The counters never sum to more than ``total``: a new key's floor is paid
back by the counter it evicts, which is at least the floor.)

``HotKeys`` is what a cluster keeps.  The drivers' ``put`` and ``get`` count
down ``tick`` and, at one call in ``SAMPLE_EVERY`` (a countdown, not a
random draw), hand the key to ``sample``, which only appends it to a buffer
(``put_many`` and ``get_many`` hand their keys to ``sample_many``: the same
countdown along the batch);
the buffer is folded into the sketch every ``BUFFER`` samples and when the
stats are read.  Requests per node are counted at the fold from the key's
replicas (every node of its preference list, whichever of them answered),
in the placement of that moment.  A node's hot keys are the cluster-wide
hot keys it keeps a copy of.  Reported counts are the sampled counts times
``SAMPLE_EVERY``, so they estimate calls.  Pure: no clock, no random
source; the driver's lock makes the folds of several threads take turns.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from operator import itemgetter
from typing import Any

__all__ = ("BUFFER", "CAPACITY", "SAMPLE_EVERY", "HotKeys", "SpaceSaving")

CAPACITY = 32  # counters of the sketch
SAMPLE_EVERY = 64  # one put/get in SAMPLE_EVERY is counted
BUFFER = 512  # samples held before they are folded into the sketch

_count = itemgetter(1)


class SpaceSaving:
    """Top keys of a stream with at most `capacity` counters (see the module docstring)."""

    __slots__ = ("capacity", "counts", "errors", "total")

    def __init__(self, capacity: int = CAPACITY) -> None:
        if type(capacity) is not int or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        self.capacity = capacity
        self.counts: dict[Hashable, int] = {}
        self.errors: dict[Hashable, int] = {}
        self.total = 0

    def update(self, keys: Iterable[Hashable]) -> None:
        """Count a batch of keys (each occurrence once)."""
        self.merge(Counter(keys))

    def add(self, key: Hashable, n: int = 1) -> None:
        """Count `n` (>= 1) more occurrences of `key`."""
        self.merge({key: n})

    def merge(self, batch: Mapping[Any, int]) -> None:
        """Count a batch given as exact counts ``{key: n}``."""
        counts, errors = self.counts, self.errors
        floor = min(counts.values()) if len(counts) >= self.capacity else 0
        for key, n in batch.items():
            self.total += n
            count = counts.get(key)
            if count is None:
                counts[key] = floor + n
                errors[key] = floor
            else:
                counts[key] = count + n
        if len(counts) > self.capacity:
            kept = heapq.nlargest(self.capacity, counts.items(), key=_count)
            self.counts = dict(kept)
            self.errors = {key: errors[key] for key, _ in kept}

    @property
    def bound(self) -> float:
        """The largest overcount any reported key can have: total / capacity."""
        return self.total / self.capacity

    def top(self, k: int | None = None) -> list[tuple[Hashable, int, int]]:
        """``(key, count, error)`` by count, largest first (ties by key); `k` of them or all."""
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], repr(kv[0])))
        if k is not None:
            ranked = ranked[:k]
        return [(key, count, self.errors[key]) for key, count in ranked]


class HotKeys:
    """A cluster's hot keys: a sketch of the sampled keys, and sampled requests per node."""

    __slots__ = ("buffer", "capacity", "every", "lock", "requests", "sketch", "tick")

    def __init__(
        self,
        capacity: int = CAPACITY,
        every: int = SAMPLE_EVERY,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.capacity = capacity
        self.every = every
        self.tick = every  # the drivers count it down and call sample() below 1
        self.lock = lock if lock is not None else nullcontext()
        self.buffer: list[bytes] = []
        self.sketch = SpaceSaving(capacity)
        self.requests: dict[str, int] = {}  # sampled requests per node, as a replica

    def sample(self, key: bytes, placement: Any) -> None:
        """Count one sampled call for `key` (folded later, in `placement` or a newer one)."""
        self.tick = self.every
        buffer = self.buffer
        buffer.append(key)
        if len(buffer) >= BUFFER:
            self.fold(placement)

    def sample_many(self, keys: Sequence[bytes], placement: Any) -> None:
        """A batch call's keys: the same countdown, across the batch (one key in ``every``)."""
        every, n = self.every, len(keys)
        offset = max(self.tick, 1) - 1
        if n <= offset:
            self.tick -= n
            return
        self.buffer.extend(keys[offset::every])
        self.tick = every - (n - 1 - offset) % every
        if len(self.buffer) >= BUFFER:
            self.fold(placement)

    def fold(self, placement: Any) -> None:
        """Fold the buffered samples into the sketch and the requests per node."""
        with self.lock:
            keys, self.buffer = self.buffer, []
            if not keys:
                return
            batch = Counter(keys)
            self.sketch.merge(batch)
            if not placement.nodes:
                return
            distinct = list(batch)
            replicas = placement.replicas_many(distinct)
            names = [node.name for node in placement.nodes]
            requests = self.requests
            for row, n in zip(replicas.tolist(), batch.values()):
                for i in row:
                    name = names[i]
                    requests[name] = requests.get(name, 0) + n

    def report(
        self,
        placement: Any,
        replicas_of: Callable[[Any], Sequence[str]],
        k: int = 10,
    ) -> dict[str, Any]:
        """What ``stats()`` shows: estimated calls (sampled x every) and the top `k` keys.

        `replicas_of(key)`: the names of the key's replicas, for the per-node lists.
        """
        self.fold(placement)
        every = self.every
        with self.lock:
            top = self.sketch.top()
            sampled = self.sketch.total
            requests = dict(self.requests)
        names = [node.name for node in placement.nodes]
        per_node: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        rows = []
        for key, count, error in top:
            row = {"key": _shown(key), "count": count * every, "error": error * every}
            rows.append(row)
            for name in replicas_of(key) if names else ():
                if len(per_node[name]) < k:
                    per_node[name].append(row)
        return {
            "sample_every": every,
            "capacity": self.capacity,
            "sampled": sampled,
            "bound": sampled * every / self.capacity,
            "cluster": rows[:k],
            "per_node": per_node,
            "requests": {name: requests.get(name, 0) * every for name in names},
        }


def _shown(key: Any) -> Any:
    """A key as stats show it: str when it is UTF-8, else the bytes."""
    if type(key) is bytes:
        try:
            return key.decode()
        except UnicodeDecodeError:
            return key
    return key
