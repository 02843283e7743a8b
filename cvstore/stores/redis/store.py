"""RedisStore: one node's versioned records in a Redis server (see the package docstring)."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from cvstore.core.records import Record
from cvstore.stores.base import Pending, Store
from cvstore.stores.redis.codec import Codec, RecordCodec
from cvstore.stores.redis.requests import Request, Requests, Steps, as_bytes
from cvstore.stores.redis.stats import StoreStats
from cvstore.stores.redis.wire import Wire, _Reply, check_redis

__all__ = (
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_POOL_TIMEOUT",
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT",
    "RedisStore",
)

T = TypeVar("T")

DEFAULT_TIMEOUT = 0.5  # seconds: socket connect and read/write timeout
DEFAULT_MAX_CONNECTIONS = 100  # connections of one store (from a URL) in use at once
DEFAULT_POOL_TIMEOUT = 5.0  # seconds a call waits for a free connection
DEFAULT_PREFIX = "cvstore:"
# URL options that would set what an argument of the store sets: one place decides each.
_URL_OPTIONS = {
    "socket_timeout": "timeout",
    "socket_connect_timeout": "timeout",
    "max_connections": "max_connections",
}


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    return float(timeout)


def _check_max_connections(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_connections must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"max_connections must be >= 1, got {value!r}")
    return value


def _check_pool_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"pool_timeout must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"pool_timeout must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _check_url(url: str) -> None:
    """Refuse what redis-py would read wrongly or silently ignore in a URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"url_or_client must be a redis://, rediss:// or unix:// url, got scheme {parts.scheme!r}"
        )
    query = parse_qs(parts.query)
    for option, argument in _URL_OPTIONS.items():
        if option in query:
            raise ValueError(
                f"url_or_client must not set {option} (got {query[option][0]!r}); "
                f"pass {argument}= to the store instead"
            )
    dbs = []
    if parts.scheme != "unix" and parts.path not in ("", "/"):
        dbs.append(unquote(parts.path[1:]))
    dbs += query.get("db", [])
    for db in dbs:
        if not db.isdigit():
            raise ValueError(f"url_or_client database must be a number >= 0, got {db!r}")
    if parts.scheme != "unix":
        try:
            _ = parts.port  # read to check it
        except ValueError as exc:
            raise ValueError(f"url_or_client port must be a number, got {url!r}") from exc


class RedisClientStore:
    """What the sync and the asyncio Redis stores share: options, client, names, stats.

    `client_class` is ``redis.Redis`` or ``redis.asyncio.Redis``; `wire_class`
    the connection code that goes with it.
    """

    # What a Redis store can do (the declarations of cvstore.stores.base):
    remote = True  # calls to several nodes overlap
    keeps_layout = True  # the layout and its epoch are keys under the prefix, swapped by a script
    addressable = True  # the server's URL (``address``) and ``prefix``; ``sibling`` below
    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "unix")

    def _setup(
        self,
        redis: Any,
        client_class: Any,
        wire_class: Any,
        url_or_client: Any,
        prefix: str | bytes,
        timeout: float | None,
        codec: Codec | None,
        name: str | None,
        max_connections: int | None = None,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        wait = _check_pool_timeout(pool_timeout)
        if isinstance(url_or_client, str):
            _check_url(url_or_client)
            seconds = DEFAULT_TIMEOUT if timeout is None else _check_timeout(timeout)
            size = (
                DEFAULT_MAX_CONNECTIONS
                if max_connections is None
                else _check_max_connections(max_connections)
            )
            # asyncio: the wire times each call itself (``aio._Deadline``), as
            # redis-py's timers on a busy loop would fail calls a server answered;
            # its own are turned off (redis-py 8 sets 5 s unless told: a timer and a
            # task per request, and a second timeout the loop's lateness can trip)
            timeouts: dict[str, float | None] = (
                {"socket_timeout": None, "socket_connect_timeout": None}
                if _is_async(client_class)
                else {"socket_timeout": seconds, "socket_connect_timeout": seconds}
            )
            client = client_class.from_url(
                url_or_client,
                retry=_no_retries(client_class),
                max_connections=size,
                **timeouts,
            )
            self._owns_client = True
            self.timeout: float | None = seconds
        elif isinstance(url_or_client, client_class):
            if timeout is not None:
                raise ValueError(
                    f"timeout applies to a url only, got timeout={timeout!r} with a client; "
                    "set socket_timeout on the client instead"
                )
            if max_connections is not None:
                raise ValueError(
                    f"max_connections applies to a url only, got max_connections="
                    f"{max_connections!r} with a client; the client's pool sets it"
                )
            kwargs = url_or_client.connection_pool.connection_kwargs
            if kwargs.get("decode_responses"):
                raise ValueError(
                    "url_or_client must not decode responses, got a client with "
                    "decode_responses=True; the store reads raw bytes"
                )
            client = url_or_client
            self._owns_client = False
            self.timeout = kwargs.get("socket_timeout")
        else:
            kind = "redis.asyncio.Redis" if _is_async(client_class) else "redis.Redis"
            raise TypeError(
                f"url_or_client must be a redis:// url or a {kind} client, "
                f"got {type(url_or_client).__name__}"
            )
        if isinstance(prefix, str):
            prefix_b = prefix.encode("utf-8")
        elif isinstance(prefix, bytes):
            prefix_b = prefix
        else:
            raise TypeError(f"prefix must be str or bytes, got {type(prefix).__name__}")
        if codec is not None and not (
            callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None))
        ):
            raise TypeError(
                f"codec must have encode(value) -> bytes and decode(bytes) methods, got {codec!r}"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be str or None, got {type(name).__name__}")

        self._client = client
        self.prefix = prefix
        self.codec = codec
        self._stats = StoreStats()
        self.address = self._describe()
        self.pool_timeout = wait
        self._wire = wire_class(redis, client, self.address, self._stats, wait)
        if self._owns_client and _is_async(client_class):
            self._wire.deadline = self.timeout
        self._requests = Requests(
            prefix_b, RecordCodec(codec), self._stats, self._wire.fenced, self._wire.refused
        )
        self.name = name

    @property
    def max_connections(self) -> int:
        """How many connections this store uses at once, at most (its pool's size)."""
        return self._wire._gate.size  # type: ignore[no-any-return]

    @property
    def name(self) -> str | None:
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        self._name = value
        wire = getattr(self, "_wire", None)
        if wire is not None:
            wire.name = value

    def _describe(self) -> str:
        """Where the server is, without the password."""
        pool = self._client.connection_pool
        kw = pool.connection_kwargs
        if "path" in kw:
            return f"unix://{kw['path']}?db={kw.get('db', 0)}"
        ssl = "SSL" in getattr(pool.connection_class, "__name__", "")
        scheme = "rediss" if ssl else "redis"
        host = str(kw.get("host", "localhost"))
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        return f"{scheme}://{host}:{kw.get('port', 6379)}/{kw.get('db', 0)}"

    def __repr__(self) -> str:
        extra = f", name={self.name!r}" if self.name is not None else ""
        return f"{type(self).__name__}({self.address!r}, prefix={self.prefix!r}{extra})"

    def sibling(self, address: str, prefix: str) -> Any:
        """A store like this one (timeouts, pool size, codec, credentials, TLS) for another server.

        A cluster that keeps its membership on the nodes reaches a node named
        by its layout this way: the layout holds the address and prefix, the
        client its own credentials.
        """
        _check_url(address)
        kwargs = self._client.connection_pool.connection_kwargs
        keep = {
            key: value
            for key, value in kwargs.items()
            if key in ("username", "password", "socket_timeout", "socket_connect_timeout", "retry")
            or key.startswith("ssl_")
        }
        client = type(self._client).from_url(address, max_connections=self.max_connections, **keep)
        make: Any = type(self)  # RedisStore or AsyncRedisStore
        store = make(client, prefix=prefix, codec=self.codec, pool_timeout=self.pool_timeout)
        store._owns_client = True  # made here: closed by close()
        store.timeout = self.timeout
        if hasattr(self._wire, "deadline"):
            store._wire.deadline = self._wire.deadline
        return store

    @property
    def client(self) -> Any:
        """The redis-py client (for inspection and tests; do not write under the prefix)."""
        return self._client

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """Calls, errors (timeouts, connection errors, error replies), bad data and latency.

        ``mean_ms``/``max_ms`` cover every call; ``p50_ms``/``p99_ms`` are upper
        bounds (powers of two in µs) over the calls that succeeded.  A batch is
        one call.  A call sent together with other nodes' is timed from its
        request to its reply being read, so it can include the time spent
        reading the replies of the nodes read before it.  ``unreadable``
        counts records that did not parse and keys under the prefix that are
        not cvstore's, met so far.
        """
        snap = self._stats.snapshot()
        if reset:
            self._stats.reset()
        return snap


def _is_async(client_class: Any) -> bool:
    return str(client_class.__module__).startswith("redis.asyncio")


def _no_retries(client_class: Any) -> Any:
    """redis-py's own retries off: the cluster decides what to do about a failure."""
    import redis.backoff

    if _is_async(client_class):
        import redis.asyncio.retry

        return redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0)
    import redis.retry

    return redis.retry.Retry(redis.backoff.NoBackoff(), 0)


class RedisStore(RedisClientStore, Store):
    """A node's records in a Redis server, under a key prefix.

    Parameters
    ----------
    url_or_client : str or redis.Redis
        A URL as redis-py reads it (``redis://[user:password@]host:port/db``,
        ``rediss://`` for TLS, ``unix:///path.sock?db=1``), or an existing
        ``redis.Redis`` client.  A client you pass is used as it is configured
        (its timeouts and retries are yours) and is not closed by ``close()``;
        it must not decode responses.  A URL's timeouts come from `timeout`,
        not from URL options.
    prefix : str or bytes
        Start of every key this store writes.  Stores sharing a server need
        prefixes of which neither starts with the other (end them with ``:``).
    timeout : float
        Seconds to connect and to wait for each reply (URLs only; default 0.5).
        redis-py's own retries are off, so a hung server fails a call after
        about this long.
    max_connections : int
        Connections to the server this store uses at once, at most (URLs
        only; default 100).  A client you pass keeps its own pool and its
        ``max_connections``.
    pool_timeout : float
        Seconds a call waits for a free connection when all are busy
        (default 5; 0: do not wait).  Past it the call fails with a
        StoreError that is not ``unreachable``: a busy client does not make
        its node suspected down.
    codec : object with ``encode(value) -> bytes`` and ``decode(bytes) -> value``
        For values other than bytes and str, e.g. ``JSONCodec()``.  Without a
        codec such values are refused; nothing is ever pickled.
    name : str
        The node's name, carried by the StoreErrors this store raises.  The
        cluster sets it when the store joins a node.

    Raises
    ------
    ImportError
        If redis-py is not installed (``pip install 'cvstore[redis]'``).
    ValueError
        For a URL redis-py would misread (a database that is not a number,
        timeout or pool options) or a timeout that is not a finite number > 0,
        ``max_connections`` < 1 or ``pool_timeout`` < 0.

    Examples
    --------
    >>> store = RedisStore("redis://127.0.0.1:6379/0", prefix="app:")  # doctest: +SKIP
    >>> store.put(b"k", Record(1, "v"))                                  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        url_or_client: Any,
        *,
        prefix: str | bytes = DEFAULT_PREFIX,
        timeout: float | None = None,
        codec: Codec | None = None,
        name: str | None = None,
        max_connections: int | None = None,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        redis = check_redis()
        self._setup(
            redis,
            redis.Redis,
            Wire,
            url_or_client,
            prefix,
            timeout,
            codec,
            name,
            max_connections,
            pool_timeout,
        )

    # ------------------------------------------------------------ running

    def _do(self, request: Request[T]) -> T:
        """Send one request and read its result now."""
        if not request.commands:
            return request.parse([])
        return request.parse(self._wire.call(request.op, request.commands))

    def _steps(self, steps: Steps[T]) -> T:
        """Run an operation of several round trips (a scan) to its result."""
        try:
            request = steps.send(None)
            while True:
                request = steps.send(self._do(request))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _send(self, request: Request[T]) -> Pending[T]:
        """Send one request now; its result is read by ``result()``."""
        if not request.commands:
            return Pending(lambda: request.parse([]))
        read = self._wire.send(request.op, request.commands)
        reply = read if isinstance(read, _Reply) else None  # (an answer already read: None)
        return Pending(
            lambda: request.parse(read()), reply
        )  # the connection is back before parsing

    # ------------------------------------------------------------ records

    def get(self, key: bytes) -> Record | None:
        return self._do(self._requests.get_many([as_bytes(key)]))[0]

    def get_many(self, keys: Sequence[bytes], epoch: int = 0) -> list[Record | None]:
        return self._do(self._requests.get_many(keys, epoch))

    def send_get_many(self, keys: Sequence[bytes], epoch: int = 0) -> Pending[list[Record | None]]:
        """Send the MGETs of `keys` now; ``result()`` reads and decodes the replies.

        With a layout `epoch`, each MGET reads the node's epoch with the
        records, atomically (see ``requests.Requests.get_many``).
        """
        return self._send(self._requests.get_many(keys, epoch))

    def write_many(
        self, keys: Sequence[bytes], records: Sequence[Record], epoch: int = 0
    ) -> list[int | None]:
        """Store each record whose version is newer; one round trip for the batch.

        Returns, per record, None if applied, else the version that refused it.
        """
        return self._do(self._requests.write_many(keys, records, epoch))

    def send_write_many(
        self, keys: Sequence[bytes], records: Sequence[Record], epoch: int = 0
    ) -> Pending[list[int | None]]:
        """Send the write script calls now; ``result()`` reads which records were refused."""
        return self._send(self._requests.write_many(keys, records, epoch))

    def delete(self, key: bytes) -> bool:
        return self.delete_many([key]) > 0

    def delete_many(self, keys: Iterable[bytes], epoch: int = 0) -> int:
        """Remove the records of `keys` (keys of other types under the prefix stay)."""
        return self._do(self._requests.delete_many(keys, epoch))

    def purge_many(self, items: Iterable[tuple[bytes, int]], epoch: int = 0) -> int:
        """Delete each record whose version is still exactly the given one (atomic).

        A record rewritten since the caller read it (another version) stays.
        """
        return self._do(self._requests.purge_many(items, epoch))

    def scan(self) -> Iterator[tuple[bytes, Record]]:
        """Every (key, record) under the prefix, by SCAN (never KEYS).

        Keys of other types under the prefix are not listed; records that do
        not parse are skipped and counted.
        """
        return iter(self._steps(self._requests.scan()))

    def scan_versions(self, epoch: int = 0) -> tuple[list[bytes], list[int], list[bool], list[int]]:
        """Every key, its version and whether it is a tombstone; values stay on the server.

        SCAN lists the keys, then one script call per 250 keys returns the
        first 13 bytes of each record.  Keys of other types and records that
        do not parse are skipped and counted.
        """
        return self._steps(self._requests.scan_versions(epoch))

    def keys(self) -> list[bytes]:
        """Every key with a record (tombstones included), by SCAN without reading values."""
        return self._steps(self._requests.keys())

    def count(self) -> int:
        """How many records (tombstones included); O(1), kept by the write script.

        A counter that does not hold an integer is recomputed by a scan.
        """
        return self._steps(self._requests.count())

    def memory_usage(self, sample: int = 64) -> int:
        """Bytes the records take in the server, estimated by MEMORY USAGE.

        Up to `sample` records, picked evenly along SCAN's order, are asked;
        their mean times the records (tombstones included) is the estimate,
        exact when there are `sample` records or fewer.  Redis errors propagate.
        """
        if type(sample) is not int or sample < 1:
            raise ValueError(f"sample must be an int >= 1, got {sample!r}")
        keys = self.keys()
        if not keys:
            return 0
        picked = keys[:: max(1, len(keys) // sample)][:sample]
        pipe = self._client.pipeline(transaction=False)
        for key in picked:
            pipe.memory_usage(self._requests.records + key)
        sizes = [int(size or 0) for size in pipe.execute()]
        return round(sum(sizes) * len(keys) / len(picked))

    # -------------------------------------------------------------- hints

    def put_hints(self, owner: str, items: Iterable[tuple[bytes, Record]], epoch: int = 0) -> None:
        """Keep records for node `owner` in this server, until handed over.

        A hint replaces the hint held for the same (owner, key) only if newer.
        """
        self._do(self._requests.put_hints(owner, items, epoch))

    def scan_hints(self) -> Iterator[tuple[str, bytes, Record]]:
        """Every hint held: (owner, key, record); hints that do not parse are skipped and counted."""
        return iter(self.read_hints())

    def read_hints(self) -> list[tuple[str, bytes, Record]]:
        return self._steps(self._requests.read_hints())

    def delete_hints(self, owner: str, keys: Iterable[bytes], epoch: int = 0) -> None:
        self._do(self._requests.delete_hints(owner, keys, epoch))

    def delete_hints_if(
        self, owner: str, items: Iterable[tuple[bytes, int]], epoch: int = 0
    ) -> int:
        """Drop each hint for `owner` still exactly the version given, in one script call;
        returns how many of the keys hold a hint of another version (left in place)."""
        return self._do(self._requests.delete_hints_if(owner, items, epoch))

    def count_hints(self) -> int:
        """How many hints are held; O(1), recomputed when the counter does not parse."""
        return self._steps(self._requests.count_hints())

    # ------------------------------------------------------------ layout

    def read_layout(self) -> tuple[int, bytes | None]:
        """The layout epoch this node holds (0 without one) and the layout's bytes."""
        return self._do(self._requests.read_layout())

    def swap_layout(self, expected: int, epoch: int, data: bytes) -> tuple[int, bytes | None]:
        """Install layout `data` at `epoch` if the node holds epoch `expected` (atomic).

        Returns the epoch and layout the node holds afterwards: the new ones
        if the swap happened, else what made it fail.
        """
        return self._do(self._requests.swap_layout(expected, epoch, data))

    # ---------------------------------------------------------- lifecycle

    def clear(self) -> int:
        """Delete this store's records, hints, counters and layout (no other prefix's); how many."""
        return self._steps(self._requests.clear(as_bytes(self.prefix, "prefix")))

    def ping(self) -> bool:
        """One round trip to the server; raises StoreError if it does not answer."""
        return self._do(self._requests.ping())

    def close(self) -> None:
        """Close the connections, if this store opened them (from a URL)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
