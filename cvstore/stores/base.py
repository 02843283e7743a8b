"""The store protocol: one node's versioned records, and nothing else.

A store never decides placement; the cluster tells it what to keep.  Keys are
bytes (the cluster encodes str keys as UTF-8).  Every write is conditional on
versions: a record replaces the stored one only if its version is strictly
newer, so a late or replayed write can never undo a newer one, and a refused
write learns the version that refused it (``write_many``).  Backends
implement this rule atomically (a dict under a lock, a Lua script on a Redis
server).

A backend that fails raises ``cvstore.StoreError`` with ``unreachable`` set
when the server could not be reached or did not answer in time (the cluster
then suspects the node down) and clear when the server answered with an
error (only that call failed).  Bytes a store cannot read as a record are
counted (``stats()["unreadable"]``); a read that meets them raises
``cvstore.UnreadableRecordError`` (a StoreError that is never unreachable,
carrying the records read around them), scans and hint listings skip them.
Any other exception is a bug and propagates.

Fencing: a store that keeps a cluster's layout (``read_layout``,
``swap_layout``) takes the client's layout ``epoch`` in every record and hint
call (0: a client that keeps its own membership, not fenced) and raises
``FencedError`` if the epoch it holds is another one, in the same atomic step
as the call, before anything is read or written.

What a store can do it declares, as class attributes the cluster reads
(it never guesses from other attributes): ``remote`` (calls wait on a
server), ``direct`` (in-process: the per-key fast path may call ``get`` and
``put`` itself), ``keeps_layout`` (``read_layout``/``swap_layout`` work and
calls are fenced by epoch), ``addressable`` (other clients reach its data at
``address`` under ``prefix``, and ``sibling`` makes a store like it for
another address), ``async_twin`` (the asyncio store of the same backend) and
``schemes`` (the URL schemes ``cvstore.stores.open_url`` opens with it).
The store contract suite checks each declaration against what the store
does.

A new backend is one module: subclass ``Store``, implement the abstract
methods (the rest have working defaults), declare what it can do, and add it
to the store contract tests (``tests/cluster/test_stores.py``).  A backend that waits
on a server sets ``remote = True`` and overrides
``send_get_many``/``send_write_many`` to send a request at once and read the
reply later, so the cluster's calls to several nodes overlap.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from cvstore.core.records import TOMBSTONE, Expiring, Record
from cvstore.errors import FencedError, StoreError

__all__ = ("AsyncStore", "Pending", "Store", "close_either")

T = TypeVar("T")
U = TypeVar("U")


class Pending(Generic[T]):
    """A store call that was sent and whose reply is read by ``result()``.

    ``result()`` returns what the call returns or raises what it raised (a
    StoreError when the backend failed); call it exactly once.  A call whose
    reply comes on a socket names it, so a driver can wait for the first of
    several replies (a hedged read): ``fileno()`` is that socket's, or None
    when ``result()`` does not wait on one; ``detach()`` lets another thread
    call ``result()`` (the reply no longer counts as this thread's).
    """

    __slots__ = ("_finish", "_reply")

    def __init__(self, finish: Callable[[], T], reply: Any = None) -> None:
        self._finish = finish
        self._reply = reply  # a wire's reply with fileno() and detach(), or None

    def result(self) -> T:
        return self._finish()

    def fileno(self) -> int | None:
        """The socket the reply comes on, or None: ``result()`` does not wait on one."""
        return None if self._reply is None else self._reply.fileno()

    def detach(self) -> None:
        """Let another thread read the reply (``result()``)."""
        if self._reply is not None:
            self._reply.detach()

    def then(self, parse: Callable[[T], U]) -> Pending[U]:
        """The same call, its result passed through `parse`."""
        finish = self._finish
        return Pending(lambda: parse(finish()), self._reply)

    @staticmethod
    def now(call: Callable[..., T], *args: Any) -> Pending[T]:
        """Make the call at once; its result (or StoreError, FencedError) is kept for ``result()``."""
        try:
            value = call(*args)
        except (StoreError, FencedError) as exc:
            error = exc

            def fail() -> T:
                raise error

            return Pending(fail)
        return Pending(lambda: value)


class Abilities:
    """What a store declares it can do, read by the cluster (it never guesses
    from other attributes); ``Store`` and ``AsyncStore`` both stand on it, and
    the store contract suite checks each declaration against what the store does.
    """

    #: Whether calls wait on a server.  The cluster then sends a batch's
    #: requests to every such node before reading any reply, and slices large
    #: batches; in-process stores leave it False and are called in turn.
    remote: ClassVar[bool] = False

    #: Whether the cluster's per-key fast path may call ``get`` and ``put``
    #: directly, skipping ``write_many`` and epochs (an in-process store whose
    #: writes need nothing else).
    direct: ClassVar[bool] = False

    #: Whether the store keeps a cluster layout (``read_layout``,
    #: ``swap_layout``) and fences record and hint calls by its epoch: a
    #: cluster's membership can live on it (``Cluster.create``), and on
    #: stores that are also ``remote``, clients share it.
    keeps_layout: ClassVar[bool] = False

    #: Whether other clients reach this store's data at ``address`` under
    #: ``prefix`` (a server): a layout records them, and ``sibling`` makes a
    #: store like this one for another node the layout names.
    addressable: ClassVar[bool] = False

    #: The asyncio store of the same backend (the same data, read and written
    #: alike), or None.  In-process stores need none: the asyncio driver calls
    #: them directly.
    async_twin: ClassVar[type[AsyncStore] | None] = None

    #: The URL schemes ``cvstore.stores.open_url`` opens with this backend
    #: (``cls(url, **options)``).
    schemes: ClassVar[tuple[str, ...]] = ()

    #: The node's name, carried by the StoreErrors the store raises (the
    #: cluster sets it when the store joins a node).
    name: str | None = None

    #: Where the data is: a URL without credentials, and the key prefix there
    #: ("" and "" for a store in this process; see ``addressable``).
    address: str = ""
    prefix: str | bytes = ""

    #: The URL ``open_url`` opened this store from (whoever opened it closes
    #: it), else None.
    url: str | None = None

    #: How values are encoded (a codec with ``encode``/``decode``), or None:
    #: values are kept as the objects given.
    codec: Any = None


class Store(Abilities, abc.ABC):
    """Abstract base of node stores (MemoryStore, RedisStore).

    Reading: ``get``, ``get_many``.  Writing: ``write_many`` (the primitive:
    newer versions only, and what refused the others), with ``put``,
    ``put_many`` and ``put_many_columns`` as its boolean forms; ``delete`` /
    ``delete_many`` (remove outright: handing a key off), ``purge_many``
    (remove only if the version is unchanged).  Scanning: ``scan`` (every
    record), ``scan_versions`` (keys and versions without values), ``keys``,
    ``count``.  Hints for other nodes (hinted handoff) are kept apart from
    live records: ``put_hints``, ``scan_hints``/``read_hints``,
    ``delete_hints``, ``delete_hints_if`` (only if the version is unchanged),
    ``count_hints``.  Overlapping calls to several nodes:
    ``send_get_many``, ``send_write_many``.  Lifecycle: ``ping``, ``stats``,
    ``close``.
    """

    # ------------------------------------------------------------ records

    @abc.abstractmethod
    def get(self, key: bytes) -> Record | None:
        """The record of `key`, tombstones included, or None."""

    def get_many(self, keys: Sequence[bytes]) -> list[Record | None]:
        """``[get(k) for k in keys]``, in one round trip where the backend can."""
        return [self.get(k) for k in keys]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # write_many and put are each written in terms of the other: a backend
        # implements at least one of them (write_many to batch its writes).
        if cls.write_many is Store.write_many and cls.put is Store.put:
            raise TypeError(f"{cls.__name__} must implement write_many() or put()")

    def write_many(self, keys: Sequence[bytes], records: Sequence[Record]) -> list[int | None]:
        """Store each record whose version is newer than the one stored for its key.

        Returns, per record, None if it was applied, else the version of the
        stored record that refused it (at least as new).  A key may appear
        more than once; each of its records is compared with the one before.
        This default calls ``put`` and reads the refusing version with ``get``
        (not atomic: another writer may replace it in between, and then the
        version read is newer still, which is what a refused writer needs).
        """
        if len(keys) != len(records):
            raise ValueError(
                f"keys and records must have the same length, got {len(keys)} and {len(records)}"
            )
        out: list[int | None] = []
        for key, record in zip(keys, records):
            held: Record | None = None
            while held is None:  # refused, then gone before it was read: try again
                if self.put(key, record):
                    break
                held = self.get(key)
            out.append(None if held is None else held[0])
        return out

    def put(self, key: bytes, record: Record) -> bool:
        """Store `record` if its version is newer than the stored one; whether it was applied."""
        return self.write_many([key], [record])[0] is None

    def put_many(self, items: Sequence[tuple[bytes, Record]]) -> list[bool]:
        """``[put(k, r) for k, r in items]``, in one round trip where it can."""
        items = list(items)
        if not items:
            return []
        keys, records = zip(*items)
        return self.put_many_columns(list(keys), list(records))

    def put_many_columns(self, keys: Sequence[bytes], records: Sequence[Record]) -> list[bool]:
        """``put_many(list(zip(keys, records)))``: the same batch given as two lists."""
        if len(keys) != len(records):
            raise ValueError(
                f"keys and records must have the same length, got {len(keys)} and {len(records)}"
            )
        return [held is None for held in self.write_many(keys, records)]

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

    def scan_versions(self, epoch: int = 0) -> tuple[list[bytes], list[int], list[bool], list[int]]:
        """Every key with its record's version, whether it is a tombstone and when it expires.

        Four matching lists, without values (expiry 0: none; see
        ``records.Expiring``).  Repair compares replicas with these (hashed
        into Merkle trees) and reads values only where replicas differ;
        backends that can list versions without reading the values should
        override this.
        """
        keys: list[bytes] = []
        versions: list[int] = []
        tombs: list[bool] = []
        expires: list[int] = []
        for key, record in self.scan():
            keys.append(key)
            versions.append(record[0])
            value = record[1]
            tombs.append(value is TOMBSTONE)
            expires.append(value.expires if type(value) is Expiring else 0)
        return keys, versions, tombs, expires

    def keys(self) -> list[bytes]:
        """Every key that has a record (tombstones included), in no particular order."""
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

    def read_hints(self) -> list[tuple[str, bytes, Record]]:
        """``list(scan_hints())``: every hint held, read at once."""
        return list(self.scan_hints())

    @abc.abstractmethod
    def delete_hints(self, owner: str, keys: Iterable[bytes]) -> None:
        """Drop the hints for `owner` and `keys` (delivered or expired)."""

    def delete_hints_if(
        self, owner: str, items: Iterable[tuple[bytes, int]], epoch: int = 0
    ) -> int:
        """Drop each hint for `owner` whose record is still exactly the version given.

        A hint replaced by a newer one after it was read (and delivered) stays;
        returns how many such hints stayed.  This default reads the hints, then
        deletes by key; a store that can do both at once (MemoryStore,
        RedisStore) overrides it.
        """
        wanted = {bytes(key): version for key, version in items}
        keys, spared = [], 0
        for held_owner, key, record in self.scan_hints():
            if held_owner == owner and key in wanted:
                if wanted[key] == record[0]:
                    keys.append(key)
                else:
                    spared += 1
        if keys:
            if epoch:
                self.delete_hints(owner, keys, epoch)  # type: ignore[call-arg]
            else:
                self.delete_hints(owner, keys)
        return spared

    def count_hints(self) -> int:
        return sum(1 for _ in self.scan_hints())

    # ------------------------------------------------------------ layout

    def read_layout(self) -> tuple[int, bytes | None]:
        """The cluster layout this node holds: (its epoch, its bytes), or (0, None).

        Stores that cannot keep a layout (the default) are for clusters that
        keep their membership in the client's process.
        """
        raise NotImplementedError(f"{type(self).__name__} does not keep a cluster layout")

    def swap_layout(self, expected: int, epoch: int, data: bytes) -> tuple[int, bytes | None]:
        """Install `data` as the layout of `epoch` if the node holds epoch `expected` (atomic).

        Returns the (epoch, layout) the node holds afterwards.
        """
        raise NotImplementedError(f"{type(self).__name__} does not keep a cluster layout")

    def sibling(self, address: str, prefix: str) -> Store:
        """A store like this one (options, credentials) for the data at `address` under `prefix`.

        Only ``addressable`` stores make one; a cluster reaches a node its
        layout names this way.
        """
        raise NotImplementedError(f"{type(self).__name__} has no address to make a sibling from")

    # -------------------------------------------------------- overlapping

    def send_get_many(self, keys: Sequence[bytes], epoch: int = 0) -> Pending[list[Record | None]]:
        """Start ``get_many(keys)``; ``result()`` of what is returned finishes it.

        A remote backend sends the request here and reads the reply in
        ``result()``, so the cluster's request reaches every replica's server
        before it waits for any.  This default makes the call at once.
        """
        if epoch:
            return Pending.now(self.get_many, keys, epoch)
        return Pending.now(self.get_many, keys)

    def send_write_many(
        self, keys: Sequence[bytes], records: Sequence[Record], epoch: int = 0
    ) -> Pending[list[int | None]]:
        """Start ``write_many(keys, records)``, as ``send_get_many`` does."""
        if epoch:
            return Pending.now(self.write_many, keys, records, epoch)
        return Pending.now(self.write_many, keys, records)

    # ---------------------------------------------------------- lifecycle

    def ping(self) -> bool:
        """Whether the backend answers; raises StoreError if it does not.

        The cluster probes a suspected node with this.
        """
        self.count()
        return True

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """Call counts, errors and latency, for backends that keep them (else empty)."""
        return {}

    def close(self) -> None:
        """Release connections or files, if the backend holds any."""


class AsyncStore(Abilities, abc.ABC):
    """Abstract base of stores the asyncio driver awaits (``AsyncRedisStore``).

    The same operations as ``Store``, with the same meaning, as coroutines;
    ``stats()`` stays a plain method.  In-process stores (``MemoryStore``)
    need no async twin: the asyncio driver calls them directly, without a
    thread hop.
    """

    remote: ClassVar[bool] = True  # the rest of ``Abilities`` as declared there

    @abc.abstractmethod
    async def get(self, key: bytes) -> Record | None: ...

    @abc.abstractmethod
    async def get_many(self, keys: Sequence[bytes], epoch: int = 0) -> list[Record | None]: ...

    @abc.abstractmethod
    async def write_many(
        self, keys: Sequence[bytes], records: Sequence[Record], epoch: int = 0
    ) -> list[int | None]: ...

    @abc.abstractmethod
    async def delete_many(self, keys: Iterable[bytes], epoch: int = 0) -> int: ...

    @abc.abstractmethod
    async def purge_many(self, items: Iterable[tuple[bytes, int]], epoch: int = 0) -> int: ...

    @abc.abstractmethod
    async def scan_versions(
        self, epoch: int = 0
    ) -> tuple[list[bytes], list[int], list[bool], list[int]]: ...

    @abc.abstractmethod
    async def keys(self) -> list[bytes]: ...

    @abc.abstractmethod
    async def count(self) -> int: ...

    @abc.abstractmethod
    async def put_hints(
        self, owner: str, items: Sequence[tuple[bytes, Record]], epoch: int = 0
    ) -> None: ...

    @abc.abstractmethod
    async def read_hints(self) -> list[tuple[str, bytes, Record]]: ...

    @abc.abstractmethod
    async def delete_hints(self, owner: str, keys: Iterable[bytes], epoch: int = 0) -> None: ...

    async def delete_hints_if(
        self, owner: str, items: Iterable[tuple[bytes, int]], epoch: int = 0
    ) -> int:
        """``Store.delete_hints_if``: drop each hint still exactly the version given."""
        wanted = {bytes(key): version for key, version in items}
        keys, spared = [], 0
        for held_owner, key, record in await self.read_hints():
            if held_owner == owner and key in wanted:
                if wanted[key] == record[0]:
                    keys.append(key)
                else:
                    spared += 1
        if keys:
            await self.delete_hints(owner, keys, epoch)
        return spared

    @abc.abstractmethod
    async def count_hints(self) -> int: ...

    @abc.abstractmethod
    async def read_layout(self) -> tuple[int, bytes | None]: ...

    @abc.abstractmethod
    async def swap_layout(
        self, expected: int, epoch: int, data: bytes
    ) -> tuple[int, bytes | None]: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    def sibling(self, address: str, prefix: str) -> AsyncStore:
        """A store like this one for the data at `address` under `prefix` (see ``Store``)."""
        raise NotImplementedError(f"{type(self).__name__} has no address to make a sibling from")

    def stats(self, reset: bool = False) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        """Release connections, if the backend holds any."""


async def close_either(store: Store | AsyncStore) -> None:
    """Close a store of either kind from asyncio code (an ``AsyncCluster`` holds both)."""
    closing = store.close()
    if inspect.isawaitable(closing):
        await closing
