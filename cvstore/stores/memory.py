"""MemoryStore: one node's versioned records in a Python dict (the default store).

Values are kept as they are (any Python object, not copied), so a value
stored is the very object read back.  A lock makes every write atomic,
including the "only if newer" rule; reads are single dict lookups, which the
interpreter already makes atomic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import compress, repeat
from operator import is_, itemgetter
from operator import lt as _lt
from typing import Any, ClassVar

from cvstore._records import Table
from cvstore.core.records import TOMBSTONE, Expiring, Record
from cvstore.errors import FencedError
from cvstore.stores.base import Store

__all__ = ("MemoryStore",)

_MISSING = object()
_version = itemgetter(0)
_value = itemgetter(1)


class MemoryStore(Store):
    """A dict of ``key bytes -> Record`` and, apart from it, the hints held for other nodes.

    Thread-safe.  Nothing to install or start: the default store of ``Node``.

    Examples
    --------
    >>> from cvstore.versions import Record, TOMBSTONE
    >>> store = MemoryStore()
    >>> store.put(b"k", Record(2, "new")), store.put(b"k", Record(1, "old"))
    (True, False)
    >>> store.get(b"k")
    Record(version=2, value='new')
    >>> store.put(b"k", Record(3, TOMBSTONE)), store.count()
    (True, 1)
    """

    # What it can do (the declarations of cvstore.stores.base): in-process, so
    # not remote, and called directly by the per-key fast path; it keeps a
    # layout (a cluster made with Cluster.create in one process).
    direct: ClassVar[bool] = True
    keeps_layout: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass may change what a write does (count, fail, delay it): the
        # fast path, which bypasses write_many, is for this class unless the
        # subclass declares otherwise.
        if "direct" not in cls.__dict__:
            cls.direct = False

    def __init__(self) -> None:
        # The records, the newest version and the lock live in a compiled
        # Table, whose put is this class's put in C (see _records.pyx).
        table = Table()
        self._table = table
        self._data: dict[bytes, Record] = table.data
        self._hints: dict[str, dict[bytes, Record]] = {}
        self._lock = table
        self._acquire = table.acquire
        self._release = table.release
        self._epoch = 0  # the layout this node holds (clusters sharing their membership)
        self._layout: bytes | None = None
        if type(self).get is MemoryStore.get:
            # A read is one dict lookup: bind it directly and skip a Python
            # frame on the cluster's hottest path (subclasses keep theirs).
            self.get = self._data.get  # type: ignore[method-assign,assignment]
        if type(self).put is MemoryStore.put:
            # A write is the table's put: the same steps as put below, in C.
            self.put = table.put  # type: ignore[method-assign]

    @property
    def _newest(self) -> int:
        # An upper bound of every version ever stored: a batch entirely above
        # it cannot lose to a stored record, so it is written without reads.
        return self._table.newest  # type: ignore[no-any-return]

    @_newest.setter
    def _newest(self, version: int) -> None:
        self._table.newest = version

    # ------------------------------------------------------------ records

    def get(self, key: bytes) -> Record | None:
        return self._data.get(key)

    def get_many(self, keys: Sequence[bytes], epoch: int = 0) -> list[Record | None]:
        if epoch:
            with self._lock:  # the epoch and the records read in one step
                self._fence(epoch)
                return list(map(self._data.get, keys))
        return list(map(self._data.get, keys))

    def _fence(self, epoch: int) -> None:
        if epoch and epoch != self._epoch:
            state = "newer" if self._epoch > epoch else "older"
            raise FencedError(
                f"node {self.name!r} holds layout epoch {self._epoch}, {state} than the "
                f"client's {epoch}",
                node=self.name,
                node_epoch=self._epoch,
                client_epoch=epoch,
            )

    def put(self, key: bytes, record: Record) -> bool:
        # Instances of this very class call Table.put instead (the same steps,
        # compiled); subclasses call this one.
        data = self._data
        version = record[0]
        # acquire, try, finally rather than "with": the same release on every
        # exit, without the context manager's two method calls, on every
        # in-process write's path (three times a put at RF 3)
        self._acquire()
        try:
            old = data.get(key)
            if old is not None and old[0] >= version:
                return False
            data[key] = record
            if version > self._newest:
                self._newest = version
            return True
        finally:
            self._release()

    def write_many(
        self, keys: Sequence[bytes], records: Sequence[Record], epoch: int = 0
    ) -> list[int | None]:
        if len(keys) != len(records):
            raise ValueError(
                f"keys and records must have the same length, got {len(keys)} and {len(records)}"
            )
        data = self._data
        versions = list(map(_version, records))
        with self._lock:
            if epoch:
                self._fence(epoch)
            newest = self._newest
            if versions and min(versions) > newest:
                # Newer than anything ever stored here (the usual case for a
                # cluster's own writes): no stored record can win, skip the reads.
                data.update(zip(keys, records))
                self._newest = max(versions)
                return [None] * len(keys)
            if versions:
                self._newest = max(newest, max(versions))
            if len(set(keys)) != len(keys):  # a repeated key: each record meets the one before
                return [self._put_locked(k, r) for k, r in zip(keys, records)]
            olds = list(map(data.get, keys))
            if None in olds:
                applied = [old is None or old[0] < rec[0] for old, rec in zip(olds, records)]
            else:  # every key exists: compare versions without a Python-level loop
                applied = list(map(_lt, map(_version, olds), versions))  # type: ignore[arg-type]
            if all(applied):
                data.update(zip(keys, records))
                return [None] * len(keys)
            data.update(compress(zip(keys, records), applied))
            return [None if ok else old[0] for ok, old in zip(applied, olds)]  # type: ignore[index]

    def _put_locked(self, key: bytes, record: Record) -> int | None:
        old = self._data.get(key)
        if old is not None and old[0] >= record[0]:
            return old[0]
        self._data[key] = record
        return None

    def put_many_columns(self, keys: Sequence[bytes], records: Sequence[Record]) -> list[bool]:
        held = self.write_many(keys, records)
        if held.count(None) == len(held):
            return [True] * len(held)
        return [h is None for h in held]

    def delete(self, key: bytes) -> bool:
        with self._lock:
            return self._data.pop(key, _MISSING) is not _MISSING

    def delete_many(self, keys: Iterable[bytes], epoch: int = 0) -> int:
        pop = self._data.pop
        with self._lock:
            self._fence(epoch)
            return sum(pop(key, _MISSING) is not _MISSING for key in keys)

    def purge_many(self, items: Iterable[tuple[bytes, int]], epoch: int = 0) -> int:
        data = self._data
        removed = 0
        with self._lock:
            self._fence(epoch)
            for key, version in items:
                record = data.get(key)
                if record is not None and record[0] == version:
                    del data[key]
                    removed += 1
        return removed

    def scan(self) -> Iterator[tuple[bytes, Record]]:
        with self._lock:
            items = list(self._data.items())
        return iter(items)

    def scan_versions(self, epoch: int = 0) -> tuple[list[bytes], list[int], list[bool], list[int]]:
        """Keys, versions, tombstone flags and expiries (0: none).

        Expired records are listed like any other: as a tombstone, one goes
        only when ``repair()`` purges it (every replica current, expired for
        longer than the grace period), never by a store on its own.
        """
        with self._lock:
            self._fence(epoch)
            keys = list(self._data)
            records = list(self._data.values())
        values = list(map(_value, records))
        tombs = list(map(is_, values, repeat(TOMBSTONE)))
        if Expiring not in set(map(type, values)):
            return keys, list(map(_version, records)), tombs, [0] * len(keys)
        expires = [v.expires if type(v) is Expiring else 0 for v in values]
        return keys, list(map(_version, records)), tombs, expires

    def keys(self) -> list[bytes]:
        with self._lock:
            return list(self._data)

    def count(self) -> int:
        return len(self._data)

    # -------------------------------------------------------------- hints

    def put_hints(self, owner: str, items: Sequence[tuple[bytes, Record]], epoch: int = 0) -> None:
        with self._lock:
            self._fence(epoch)
            held = self._hints.setdefault(owner, {})
            for key, record in items:
                old = held.get(key)
                if old is None or old[0] < record[0]:
                    held[key] = record

    def scan_hints(self) -> Iterator[tuple[str, bytes, Record]]:
        with self._lock:
            hints = [
                (owner, key, record)
                for owner, held in self._hints.items()
                for key, record in held.items()
            ]
        return iter(hints)

    def delete_hints(self, owner: str, keys: Iterable[bytes], epoch: int = 0) -> None:
        with self._lock:
            self._fence(epoch)
            held = self._hints.get(owner)
            if held is None:
                return
            for key in keys:
                held.pop(key, None)
            if not held:
                del self._hints[owner]

    def delete_hints_if(
        self, owner: str, items: Iterable[tuple[bytes, int]], epoch: int = 0
    ) -> int:
        spared = 0
        with self._lock:
            self._fence(epoch)
            held = self._hints.get(owner)
            if held is None:
                return 0
            for key, version in items:
                record = held.get(key)
                if record is None:
                    continue
                if record[0] == version:
                    del held[key]
                else:
                    spared += 1
            if not held:
                del self._hints[owner]
        return spared

    def count_hints(self) -> int:
        with self._lock:
            return sum(map(len, self._hints.values()))

    # ------------------------------------------------------------- layout

    def read_layout(self) -> tuple[int, bytes | None]:
        with self._lock:
            return self._epoch, self._layout

    def swap_layout(self, expected: int, epoch: int, data: bytes) -> tuple[int, bytes | None]:
        with self._lock:
            if self._epoch == expected:
                self._epoch, self._layout = epoch, data
            return self._epoch, self._layout

    def __repr__(self) -> str:
        return f"MemoryStore(records={self.count()}, hints={self.count_hints()})"
