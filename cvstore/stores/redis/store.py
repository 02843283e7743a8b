"""RedisStore: one node's versioned records in a Redis server (see the package docstring)."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cvstore.core.records import Record
from cvstore.stores.base import Pending, Store
from cvstore.stores.redis.codec import (
    HEAD,
    ORD_BYTES,
    ORD_STR,
    TAGS,
    VERSION_LIMIT,
    Codec,
    RecordCodec,
    Unreadable,
    check_version,
)
from cvstore.stores.redis.resp import Command
from cvstore.stores.redis.script import SCRIPT_BATCH, SCRIPT_SHA, spans
from cvstore.stores.redis.stats import StoreStats
from cvstore.stores.redis.wire import Wire, check_redis, command

__all__ = ("DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "RedisStore")

DEFAULT_TIMEOUT = 0.5  # seconds: socket connect and read/write timeout
DEFAULT_PREFIX = "cvstore:"
_MGET_BATCH = 10_000  # keys per MGET
_SCRIPT_SHA = SCRIPT_SHA.encode()
_first = itemgetter(0)  # a record's version
_value_of = itemgetter(1)  # a record's value
# URL options that would set what ``timeout`` sets: one place decides the timeout.
_TIMEOUT_OPTIONS = ("socket_timeout", "socket_connect_timeout")


def _as_bytes(key: Any, what: str = "key") -> bytes:
    if type(key) is bytes:
        return key
    if isinstance(key, bytes):
        return bytes(memoryview(key))
    if isinstance(key, str):
        return str.encode(key)
    raise TypeError(f"{what} must be bytes or str, got {type(key).__name__}")


def _glob_escape(text: bytes) -> bytes:
    """`text` as a literal in a SCAN MATCH pattern."""
    out = bytearray()
    for byte in text:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    return float(timeout)


def _check_url(url: str) -> None:
    """Refuse what redis-py would read wrongly or silently ignore in a URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"url_or_client must be a redis://, rediss:// or unix:// url, got scheme {parts.scheme!r}"
        )
    query = parse_qs(parts.query)
    for option in _TIMEOUT_OPTIONS:
        if option in query:
            raise ValueError(
                f"url_or_client must not set {option} (got {query[option][0]!r}); "
                "pass timeout= to RedisStore instead"
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
            parts.port
        except ValueError as exc:
            raise ValueError(f"url_or_client port must be a number, got {url!r}") from exc


class RedisStore(Store):
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
        timeout options) or a timeout that is not a finite number > 0.

    Examples
    --------
    >>> store = RedisStore("redis://127.0.0.1:6379/0", prefix="app:")  # doctest: +SKIP
    >>> store.put(b"k", Record(1, "v"))                                  # doctest: +SKIP
    True
    """

    remote = True  # batches to several nodes overlap: sent to each, then read

    def __init__(
        self,
        url_or_client: Any,
        *,
        prefix: str | bytes = DEFAULT_PREFIX,
        timeout: float | None = None,
        codec: Codec | None = None,
        name: str | None = None,
    ) -> None:
        redis = check_redis()
        if isinstance(url_or_client, str):
            _check_url(url_or_client)
            seconds = DEFAULT_TIMEOUT if timeout is None else _check_timeout(timeout)
            client = redis.Redis.from_url(
                url_or_client,
                socket_timeout=seconds,
                socket_connect_timeout=seconds,
                retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
            )
            self._owns_client = True
            self.timeout: float | None = seconds
        elif isinstance(url_or_client, redis.Redis):
            if timeout is not None:
                raise ValueError(
                    f"timeout applies to a url only, got timeout={timeout!r} with a client; "
                    "set socket_timeout on the client instead"
                )
            kwargs = url_or_client.connection_pool.connection_kwargs
            if kwargs.get("decode_responses"):
                raise ValueError(
                    "url_or_client must not decode responses, got a client with "
                    "decode_responses=True; RedisStore reads raw bytes"
                )
            client = url_or_client
            self._owns_client = False
            self.timeout = kwargs.get("socket_timeout")
        else:
            raise TypeError(
                "url_or_client must be a redis:// url or a redis.Redis client, "
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
        self._codec = RecordCodec(codec)
        self._records = prefix_b + b"r:"
        self._hints = prefix_b + b"h:"
        self._record_count = prefix_b + b"m:records"
        self._hint_count = prefix_b + b"m:hints"
        self._epoch_key = prefix_b + b"m:epoch"
        self._layout_key = prefix_b + b"m:layout"
        self._records_pattern = _glob_escape(self._records) + b"*"
        self._hints_pattern = _glob_escape(self._hints) + b"*"
        self._stats = StoreStats()
        self.address = self._describe()
        self._wire = Wire(redis, client, self.address, self._stats)
        self.name = name

    @property
    def name(self) -> str | None:  # type: ignore[override]
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        self._name = value
        wire = getattr(self, "_wire", None)
        if wire is not None:
            wire.name = value

    # ------------------------------------------------------------ helpers

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
        return f"RedisStore({self.address!r}, prefix={self.prefix!r}{extra})"

    def sibling(self, address: str, prefix: str) -> RedisStore:
        """A store like this one (timeout, codec, credentials, TLS) for another server.

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
        client = type(self._client).from_url(address, **keep)
        store = RedisStore(client, prefix=prefix, codec=self.codec)
        store._owns_client = True  # made here: closed by close()
        store.timeout = self.timeout
        return store

    @property
    def client(self) -> Any:
        """The redis-py client (for inspection and tests; do not write under the prefix)."""
        return self._client

    # ------------------------------------------------------------ records

    def get(self, key: bytes) -> Record | None:
        return self.send_get_many([_as_bytes(key)]).result()[0]

    def get_many(self, keys: Sequence[bytes], epoch: int = 0) -> list[Record | None]:
        return self.send_get_many(keys, epoch).result()

    def send_get_many(self, keys: Sequence[bytes], epoch: int = 0) -> Pending[list[Record | None]]:
        """Send the MGETs of `keys` now; ``result()`` reads and decodes the replies.

        With a layout `epoch`, the MGETs go between two reads of the node's
        epoch, in the same request: epochs only grow and a node only drops
        copies once it holds the layout that no longer places them there, so
        when both reads are the client's epoch the records are those of that
        epoch; otherwise FencedError.  (A MULTI/EXEC transaction would do as
        well, but a full server refuses the reads queued in one.)
        """
        if set(map(type, keys)) != {bytes}:
            keys = [_as_bytes(k) for k in keys]
        if not keys:
            return Pending(list)
        fence = command(b"GET", self._epoch_key)
        commands = [fence] if epoch else []
        for i in range(0, len(keys), _MGET_BATCH):
            cmd = Command()
            cmd.arg(b"MGET")
            cmd.column(keys[i : i + _MGET_BATCH], prefix=self._records)
            commands.append(cmd)
        if epoch:
            commands.append(fence)
        op = "get" if len(keys) == 1 else "get_many"
        read = self._wire.send(op, commands)

        def finish() -> list[Record | None]:
            replies = read()  # the connection is back in the pool before decoding
            if epoch:
                self._wire.check_epoch(replies[0], epoch)
                self._wire.check_epoch(replies[-1], epoch)
                replies = replies[1:-1]
            raws = replies[0] if len(replies) == 1 else [raw for part in replies for raw in part]
            records, bad = self._codec.decode_many(raws, list(keys), self._records)
            self._stats.moved(len(raws) - raws.count(None) - bad, 0)
            self._stats.bad_data(bad)
            return records

        return Pending(finish)

    def write_many(
        self, keys: Sequence[bytes], records: Sequence[Record], epoch: int = 0
    ) -> list[int | None]:
        """Store each record whose version is newer; one round trip for the batch.

        Returns, per record, None if applied, else the version that refused it.
        """
        return self.send_write_many(keys, records, epoch).result()

    def send_write_many(
        self, keys: Sequence[bytes], records: Sequence[Record], epoch: int = 0
    ) -> Pending[list[int | None]]:
        """Send the write script calls now; ``result()`` reads which records were refused."""
        if len(keys) != len(records):
            raise ValueError(
                f"keys and records must have the same length, got {len(keys)} and {len(records)}"
            )
        if not keys:
            return Pending(list)
        op = "put" if len(keys) == 1 else "put_many"
        if set(map(type, keys)) != {bytes}:
            keys = [_as_bytes(k) for k in keys]
        # A cluster batch writes one version to every key, and its values are
        # usually all bytes or all str: then the records are sent as the
        # values behind one 13-byte head, and the script reads the version once.
        versions = set(map(_first, records))
        if len(versions) == 1:
            version = next(iter(versions))
            if type(version) is int and 0 <= version < VERSION_LIMIT:
                values = list(map(_value_of, records))
                types = set(map(type, values))
                if types == {bytes} or types == {str}:
                    tag = ORD_BYTES
                    if types == {str}:
                        tag = ORD_STR
                        values = list(
                            map(str.encode, values, repeat("utf-8"), repeat("surrogatepass"))
                        )
                    head = self._codec.head(version, tag)
                    return self._send_put(keys, values, head, head[:HEAD], op, epoch)
        payloads = self._codec.encode_many(list(records))
        return self._send_put(keys, payloads, b"", b"", op, epoch)

    def _send_put(
        self,
        keys: Sequence[bytes],
        payloads: list[bytes],
        head: bytes,
        version: bytes,
        op: str,
        epoch: int,
    ) -> Pending[list[int | None]]:
        """Send the script calls that store ``head + payloads[i]`` as the records of ``keys[i]``.

        `version` is the 12-byte version every record carries, or b"" when
        the records' own versions differ.
        """
        parts = spans(keys, SCRIPT_BATCH)
        commands = []
        fence = b"%d" % epoch
        for a, b in parts:
            cmd = Command()
            for arg in (b"EVALSHA", _SCRIPT_SHA, b"%d" % (b - a + 2), self._epoch_key):
                cmd.arg(arg)
            cmd.arg(self._record_count)
            cmd.column(keys[a:b], prefix=self._records)
            cmd.arg(b"put")
            cmd.arg(fence)
            cmd.arg(version)
            cmd.column(payloads[a:b], prefix=head)
            commands.append(cmd)
        read = self._wire.send(op, commands)

        def finish() -> list[int | None]:
            replies = read()
            out: list[int | None] = [None] * len(keys)
            bad = 0
            foreign = []
            for (start, _), reply in zip(parts, replies):
                bad += reply[0]
                for i in range(1, len(reply), 2):
                    held = reply[i + 1]
                    if not held:  # a key of another type: not overwritten
                        foreign.append(keys[start + reply[i] - 1])
                    else:
                        out[start + reply[i] - 1] = int.from_bytes(held, "big")
            self._stats.moved(0, len(keys) - len(foreign))
            self._stats.bad_data(bad + len(foreign))
            if foreign:
                raise self._wire.refused(
                    op,
                    f"{len(foreign)} key(s) under the prefix hold values that are not cvstore "
                    f"records (e.g. {self._records + foreign[0]!r}); they were not overwritten",
                )
            return out

        return Pending(finish)

    def _scripts(
        self, op: str, name: bytes, calls: list[tuple[list[bytes], list[bytes]]], epoch: int = 0
    ) -> list[Any]:
        """Run script operation `name` once per (keys, arguments) call, in one round trip.

        Each call's keys follow the node's epoch key; its arguments follow
        the operation and the client's layout `epoch` (0: not fenced).
        """
        if not calls:
            return []
        head = [name, b"%d" % epoch]
        return self._wire.call(
            op, [Wire.script([self._epoch_key, *keys], [*head, *argv]) for keys, argv in calls]
        )

    def delete(self, key: bytes) -> bool:
        return self.delete_many([key]) > 0

    def delete_many(self, keys: Iterable[bytes], epoch: int = 0) -> int:
        """Remove the records of `keys` (keys of other types under the prefix stay)."""
        prefix, counter = self._records, self._record_count
        rkeys = [prefix + _as_bytes(k) for k in keys]
        calls = [
            ([counter, *rkeys[i : i + SCRIPT_BATCH]], [])
            for i in range(0, len(rkeys), SCRIPT_BATCH)
        ]
        return sum(self._scripts("delete_many", b"del", calls, epoch))

    def purge_many(self, items: Iterable[tuple[bytes, int]], epoch: int = 0) -> int:
        """Delete each record whose version is still exactly the given one (atomic).

        A record rewritten since the caller read it (another version) stays.
        """
        prefix, counter = self._records, self._record_count
        rkeys, versions = [], []
        for key, version in items:
            if type(version) is not int or not 0 <= version < VERSION_LIMIT:
                check_version(version)
            rkeys.append(prefix + _as_bytes(key))
            versions.append(version.to_bytes(HEAD, "big"))
        calls = [
            ([counter, *rkeys[i : i + SCRIPT_BATCH]], versions[i : i + SCRIPT_BATCH])
            for i in range(0, len(rkeys), SCRIPT_BATCH)
        ]
        return sum(self._scripts("purge_many", b"purge", calls, epoch))

    def scan(self) -> Iterator[tuple[bytes, Record]]:
        """Every (key, record) under the prefix, by SCAN (never KEYS).

        Keys of other types under the prefix are not listed; records that do
        not parse are skipped and counted.
        """
        strip = len(self._records)
        for rkeys in self._wire.scan("scan", self._records_pattern, b"string"):
            (raws,) = self._wire.call("scan", [_mget(rkeys)])
            keys = [rkey[strip:] for rkey in rkeys]
            records, bad = self._codec.decode_many(raws, keys, self._records)
            self._stats.bad_data(bad)
            self._stats.moved(len(raws) - raws.count(None) - bad, 0)
            for key, record in zip(keys, records):
                if record is not None:  # deleted since SCAN saw it, or unreadable
                    yield key, record

    def scan_versions(self, epoch: int = 0) -> tuple[list[bytes], list[int], list[bool]]:
        """Every key, its version and whether it is a tombstone; values stay on the server.

        SCAN lists the keys, then one script call per 250 keys (all of a
        SCAN page in one round trip) returns the first 13 bytes of each
        record.  Keys of other types and records that do not parse are
        skipped and counted.
        """
        strip = len(self._records)
        keys: list[bytes] = []
        versions: list[int] = []
        tombs: list[bool] = []
        seen: set[bytes] = set()
        from_bytes = int.from_bytes
        bad = 0
        for page in self._wire.scan("scan_versions", self._records_pattern):
            rkeys = [k for k in page if k not in seen]  # SCAN may repeat a key
            if not rkeys:
                continue
            seen.update(rkeys)
            calls = [
                ([self._record_count, *rkeys[i : i + SCRIPT_BATCH]], [])
                for i in range(0, len(rkeys), SCRIPT_BATCH)
            ]
            heads: list[Any] = []
            for part in self._scripts("scan_versions", b"heads", calls, epoch):
                heads.extend(part)
            for rkey, head in zip(rkeys, heads):
                if head is None:  # deleted since SCAN saw it
                    continue
                if head == 0 or len(head) <= HEAD or head[HEAD] not in TAGS:
                    bad += 1  # another type, or not a record
                    continue
                keys.append(rkey[strip:])
                versions.append(from_bytes(head[:HEAD], "big"))
                tombs.append(head[HEAD] == ord("t"))
        self._stats.bad_data(bad)
        return keys, versions, tombs

    def keys(self) -> list[bytes]:
        """Every key with a record (tombstones included), by SCAN without reading values."""
        strip = len(self._records)
        out: list[bytes] = []
        for page in self._wire.scan("keys", self._records_pattern, b"string"):
            out.extend(rkey[strip:] for rkey in page)
        return list(dict.fromkeys(out))  # SCAN may repeat a key

    def count(self) -> int:
        """How many records (tombstones included); O(1), kept by the write script.

        A counter that does not hold an integer is recomputed by a scan.
        """
        raw = self._wire.one("count", b"GET", self._record_count)
        parsed = _count_of(raw)
        if parsed is not None:
            return parsed
        total = sum(
            len(page) for page in self._wire.scan("count", self._records_pattern, b"string")
        )
        self._set_count(self._record_count, raw, total)
        return total

    def _set_count(self, counter: bytes, seen: Any, total: int) -> None:
        """Replace a counter that did not parse, unless it changed since it was read."""
        self._stats.bad_data(1)
        expected = seen if isinstance(seen, bytes) else b""
        self._scripts("count", b"setcount", [([counter], [expected, b"%d" % total])])

    # -------------------------------------------------------------- hints

    def _hint_key(self, owner: str) -> bytes:
        if not isinstance(owner, str) or not owner:
            raise TypeError(f"owner must be a non-empty str, got {owner!r}")
        return self._hints + owner.encode("utf-8")

    def put_hints(self, owner: str, items: Iterable[tuple[bytes, Record]], epoch: int = 0) -> None:
        """Keep records for node `owner` in this server, until handed over.

        A hint replaces the hint held for the same (owner, key) only if newer.
        """
        hkey = self._hint_key(owner)
        fields, records = [], []
        encode = self._codec.encode
        for key, record in items:
            fields.append(_as_bytes(key))
            records.append(encode(record))
        calls = [
            ([self._hint_count, hkey], [b"", *records[a:b], *fields[a:b]])
            for a, b in spans(fields, SCRIPT_BATCH)
        ]
        self._scripts("put_hints", b"hput", calls, epoch)

    def scan_hints(self) -> Iterator[tuple[str, bytes, Record]]:
        """Every hint held: (owner, key, record); hints that do not parse are skipped and counted."""
        strip = len(self._hints)
        for page in self._wire.scan("scan_hints", self._hints_pattern, b"hash"):
            for hkey in page:
                try:
                    owner = hkey[strip:].decode("utf-8")
                except UnicodeDecodeError:
                    self._stats.bad_data(1)
                    continue
                for flat in self._wire.hscan("scan_hints", hkey):
                    for key, raw in zip(flat[::2], flat[1::2]):
                        try:
                            record = self._codec.decode(raw, hkey + b" " + key)
                        except (Unreadable, TypeError):
                            self._stats.bad_data(1)
                            continue
                        yield owner, key, record

    def delete_hints(self, owner: str, keys: Iterable[bytes], epoch: int = 0) -> None:
        hkey = self._hint_key(owner)
        fields = [_as_bytes(k) for k in keys]
        calls = [
            ([self._hint_count, hkey], fields[i : i + SCRIPT_BATCH])
            for i in range(0, len(fields), SCRIPT_BATCH)
        ]
        self._scripts("delete_hints", b"hdel", calls, epoch)

    def count_hints(self) -> int:
        """How many hints are held; O(1), recomputed when the counter does not parse."""
        raw = self._wire.one("count_hints", b"GET", self._hint_count)
        parsed = _count_of(raw)
        if parsed is not None:
            return parsed
        total = 0
        for page in self._wire.scan("count_hints", self._hints_pattern, b"hash"):
            total += sum(self._wire.call("count_hints", [command(b"HLEN", k) for k in page]))
        self._set_count(self._hint_count, raw, total)
        return total

    # ------------------------------------------------------------ layout

    def read_layout(self) -> tuple[int, bytes | None]:
        """The layout epoch this node holds (0 without one) and the layout's bytes."""
        held, data = self._wire.one("read_layout", b"MGET", self._epoch_key, self._layout_key)
        return _count_of(held) or 0, data

    def swap_layout(self, expected: int, epoch: int, data: bytes) -> tuple[int, bytes | None]:
        """Install layout `data` at `epoch` if the node holds epoch `expected` (atomic).

        Returns the epoch and layout the node holds afterwards: the new ones
        if the swap happened, else what made it fail.
        """
        calls = [([self._layout_key], [b"%d" % expected, b"%d" % epoch, data])]
        ((held, layout),) = self._scripts("swap_layout", b"layout", calls)
        return int(held), layout

    # ---------------------------------------------------------- lifecycle

    def clear(self) -> int:
        """Delete every key under the prefix (records, hints, counters); returns how many."""
        pattern = _glob_escape(_as_bytes(self.prefix, "prefix")) + b"*"
        removed = 0
        for page in self._wire.scan("clear", pattern):
            removed += self._wire.one("clear", b"DEL", *page)
        return removed

    def ping(self) -> bool:
        """One round trip to the server; raises StoreError if it does not answer."""
        return bool(self._wire.one("ping", b"PING"))

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

    def close(self) -> None:
        """Close the connections, if this store opened them (from a URL)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mget(rkeys: list[bytes]) -> Command:
    cmd = Command()
    cmd.arg(b"MGET")
    cmd.column(rkeys)
    return cmd


def _count_of(raw: Any) -> int | None:
    """A counter's value, None if it holds something other than an integer (0 when absent)."""
    if raw is None:
        return 0
    try:
        return max(0, int(raw))
    except (TypeError, ValueError):
        return None
