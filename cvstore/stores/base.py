"""The store interface: one node's versioned records, and nothing else.

A store never decides placement; the cluster tells it what to keep.  Keys are
bytes (the cluster encodes str keys as UTF-8).  Every write is conditional on
versions: ``put`` replaces a record only with a strictly newer version, so a
late or replayed write can never undo a newer one.  Backends implement this
rule atomically (a dict under a lock, a Lua script on a Redis server).

A backend that fails (a server down, a timeout) raises ``cvstore.StoreError``:
the cluster treats it like a node that is down for that call.  Any other
exception is a bug and propagates.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from cvstore.errors import StoreError
from cvstore.versions import TOMBSTONE, Record

__all__ = ("Store",)


class Store(abc.ABC):
    """Abstract base of node stores (MemoryStore, RedisStore).

    Reading: ``get``, ``get_many``.  Writing: ``put``, ``put_many``,
    ``put_many_columns`` (newer versions only), ``delete`` / ``delete_many``
    (remove outright: purging tombstones, handing a key off), ``purge_many``
    (remove only if the version is unchanged).  Scanning: ``scan`` (every
    record, for rebalancing and repair), ``keys``, ``count``.  Hints for other nodes (hinted
    handoff) are kept apart from live records: ``put_hints``, ``scan_hints``,
    ``delete_hints``, ``count_hints``.  Overlapping calls to several nodes:
    ``begin`` (by default the call runs at once).
    """

    # ------------------------------------------------------------ records

    @abc.abstractmethod
    def get(self, key: bytes) -> Record | None:
        """The record of `key`, tombstones included, or None."""

    @abc.abstractmethod
    def put(self, key: bytes, record: Record) -> bool:
        """Store `record` if its version is newer than the stored one.

        Returns whether it was applied.
        """

    def get_many(self, keys: Sequence[bytes]) -> list[Record | None]:
        """``[get(k) for k in keys]``, in one round trip where the backend can."""
        return [self.get(k) for k in keys]

    def put_many(self, items: Sequence[tuple[bytes, Record]]) -> list[bool]:
        """``[put(k, r) for k, r in items]``, in one round trip where it can."""
        return [self.put(k, r) for k, r in items]

    def put_many_columns(self, keys: Sequence[bytes], records: Sequence[Record]) -> list[bool]:
        """``put_many(list(zip(keys, records)))``: the same batch given as two lists.

        The cluster writes batches this way, so a backend can skip building
        the pairs.
        """
        return self.put_many(list(zip(keys, records)))

    @abc.abstractmethod
    def delete(self, key: bytes) -> bool:
        """Remove the record of `key` outright; returns whether there was one."""

    def delete_many(self, keys: Iterable[bytes]) -> int:
        """Remove the records of `keys`; returns how many there were."""
        return sum(1 for k in keys if self.delete(k))

    @abc.abstractmethod
    def scan(self) -> Iterator[tuple[bytes, Record]]:
        """Every (key, record), tombstones included, in no particular order."""

    @abc.abstractmethod
    def count(self) -> int:
        """How many records (tombstones included)."""

    def scan_versions(self) -> tuple[list[bytes], list[int], list[bool]]:
        """Every key with its record's version and whether it is a tombstone, without values.

        Three matching lists.  Repair compares replicas with these (hashed
        into Merkle trees) and reads values only where replicas differ;
        backends that can list versions without reading the values should
        override this.
        """
        keys: list[bytes] = []
        versions: list[int] = []
        tombs: list[bool] = []
        for key, record in self.scan():
            keys.append(key)
            versions.append(record[0])
            tombs.append(record[1] is TOMBSTONE)
        return keys, versions, tombs

    def keys(self) -> list[bytes]:
        """Every key that has a record (tombstones included), in no particular order.

        Rebalancing needs only the keys; backends that can list them without
        reading the values should override this.
        """
        return [key for key, _ in self.scan()]

    def purge_many(self, items: Iterable[tuple[bytes, int]]) -> int:
        """Remove each key whose stored version is still exactly the given one.

        For purging tombstones and stray copies without undoing a write that
        landed after the caller looked.  Returns how many were removed.  This
        default reads then deletes, so it is not atomic; backends override it
        with an atomic check-and-delete.
        """
        removed = 0
        for key, version in items:
            record = self.get(key)
            if record is not None and record[0] == version and self.delete(key):
                removed += 1
        return removed

    # -------------------------------------------------------------- hints

    @abc.abstractmethod
    def put_hints(self, owner: str, items: Sequence[tuple[bytes, Record]]) -> None:
        """Keep records meant for node `owner` until they can be handed over.

        A hint for a key replaces an older hint for the same (owner, key).
        """

    @abc.abstractmethod
    def scan_hints(self) -> Iterator[tuple[str, bytes, Record]]:
        """Every hint held: (owner, key, record)."""

    @abc.abstractmethod
    def delete_hints(self, owner: str, keys: Iterable[bytes]) -> None:
        """Drop the hints for `owner` and `keys` (delivered or expired)."""

    def count_hints(self) -> int:
        return sum(1 for _ in self.scan_hints())

    # ---------------------------------------------------------- lifecycle

    #: Whether calls wait on a server: the cluster then overlaps the calls of
    #: a batch to different nodes (``begin`` on each, then each finished).
    #: In-process stores leave it False and are called one after another.
    does_io = False

    def begin(self, method: str, *args: Any) -> Callable[[], Any]:
        """Start ``getattr(self, method)(*args)``; the function returned finishes it.

        Calling the returned function gives the method's result, or raises what
        the method raised (a StoreError when the backend failed).  The cluster
        begins a batch's call on every node before it finishes any, so a
        backend that talks to a server can send its request here and read the
        reply when finished: the servers then work at the same time.  This
        default runs the method at once.
        """
        try:
            result = getattr(self, method)(*args)
        except StoreError as exc:
            error = exc

            def fail() -> Any:
                raise error

            return fail
        return lambda: result

    def ping(self) -> bool:
        """Whether the backend answers; raises StoreError if it does not.

        The cluster probes a suspected node with this.
        """
        self.count()
        return True

    def stats(self, reset: bool = False) -> dict:
        """Call counts, errors and latency, for backends that keep them (else empty)."""
        return {}

    def close(self) -> None:
        """Release connections or files, if the backend holds any."""
