"""RedisStore: one node's versioned records in a Redis server.

The cluster does placement, replication and repair on the client side; a
``RedisStore`` keeps one node's records in one Redis server (or one database
of it), under a key prefix so that several clusters, or several nodes of one
cluster, can share a server.  redis-py is an optional dependency: install
``cvstore[redis]`` (hiredis is pulled in to parse replies in C).

Record layout
-------------
Every Redis key the store uses starts with ``prefix`` (default ``cvstore:``)::

    {prefix}r:{key}      string  the record of `key`
    {prefix}h:{owner}    hash    hints held for node `owner`: field = key, value = record
    {prefix}m:records    string  how many records there are (kept by the script)
    {prefix}m:hints      string  how many hints there are (kept by the script)

A record (a string value or a hint's hash value) is one byte string::

    <12 bytes: the version, big-endian> <1 tag byte> <payload>

    tag  b  bytes, the payload as is
         s  str, the payload is its UTF-8 (surrogates allowed, so every str round-trips)
         c  any other value, the payload is ``codec.encode(value)``
         t  tombstone (a deleted key), no payload

The version is the 96-bit stamp of ``cvstore.versions``; big-endian makes
byte order equal version order.  A record is one string, so ``get_many``
reads any number of records with one ``MGET``.

Versioned writes
----------------
One Lua script does every write, atomically on the server.  ``put`` and
``put_many`` replace a record only if the new version is strictly newer than
the stored one (a tombstone is a record like any other), and return which
records were applied.  The script reads the stored records of a batch with
one ``MGET``, compares versions as two 48-bit integers (``struct.unpack``:
exact in Lua's doubles, and unlike Lua's string ``<``, which calls
``strcoll``, independent of the server's locale), checks every record before
writing any, then writes the newer ones with one ``MSET``.  A batch is one
script call per 250 records (a key repeated within a batch starts a new
call, so each call sees each key once), all calls of a batch written at once:
one round trip.  A batch whose records share one version (a cluster batch)
passes that version once, and the script unpacks it once rather than per
record.  Batches are packed column by column (``cvstore.stores._resp``),
not argument by argument, and ``begin`` splits a batch into sending and
reading, so the cluster's request reaches every server before it waits.  The script also keeps the record and hint counts,
so ``count`` is O(1).  It is sent by SHA (``EVALSHA``); when the server does
not know it (first use, restart, SCRIPT FLUSH) it is loaded once with
``SCRIPT LOAD`` and the calls repeated, which is safe because a write only
ever applies a newer version.

Failures
--------
redis-py's own retries are off and both socket timeouts are ``timeout``
seconds, so a dead or hung server makes a call fail within about `timeout`
rather than after redis-py's backoff loop; the cluster decides what to do.
Every Redis or socket failure is raised as ``cvstore.StoreError`` (with
``.node`` = this store's ``name``) from the original exception.  ``stats()``
reports per-store call counts, latency and errors.

Nothing is unpickled: values come back as bytes, str, or whatever the codec
you chose decodes, so the data in a server can never run code in the client.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from contextlib import nullcontext
from itertools import repeat
from operator import getitem, itemgetter
from typing import Any, Callable, Iterable, Iterator, Sequence

from cvstore.errors import StoreError
from cvstore.stores._resp import Command
from cvstore.stores.base import Store
from cvstore.versions import TOMBSTONE, Record

__all__ = ("DEFAULT_TIMEOUT", "JSONCodec", "RedisStore")

DEFAULT_TIMEOUT = 0.5  # seconds: socket connect and read/write timeout
DEFAULT_PREFIX = "cvstore:"

# Records per script call (also bounds Lua's unpack()).  Measured with
# bench_redis_cluster.py, 3 servers: 1,000 a call gave put_many 63-66 % of raw
# MSET, 500 gave 74-78 %, 250 gave 83-97 %, 100 gave 85-91 %.  Smaller calls
# run more instructions (callgrind: +8 %) but keep each call's Lua strings in
# cache, and the server starts on the first call while the rest still arrive.
_SCRIPT_BATCH = 250
_MGET_BATCH = 10_000  # keys per MGET
_SCAN_COUNT = 1000  # SCAN / HSCAN COUNT hint
_HEAD = 12  # bytes of the version, before the tag
_VERSION_LIMIT = 1 << (8 * _HEAD)
_TAG_BYTES, _TAG_STR, _TAG_CODEC, _TAG_TOMBSTONE = b"b", b"s", b"c", b"t"
_ORD_BYTES, _ORD_STR, _ORD_TOMBSTONE = ord("b"), ord("s"), ord("t")
_new_record = tuple.__new__  # Record(v, x) without NamedTuple's Python-level __new__
_INSTALL_HINT = "pip install 'cvstore[redis]'"
_VERSIONS = slice(0, _HEAD)  # a record's version bytes
_PAYLOAD = slice(_HEAD + 1, None)  # a record's payload
_first = itemgetter(0)  # a record's version
_value_of = itemgetter(1)  # a record's value

# ARGV[1] is the operation.  Each call names each key (or hint field) once:
# the client splits batches at repeated keys.
_SCRIPT = """
local op = ARGV[1]

-- which records ARGV[first..] replace olds[1..], the records stored under
-- names[1 + shift..]: the positions of the records not applied (not newer;
-- usually none, so the reply stays small), the (name, record) pairs to write
-- and how many names are new; or nil and an error message.  `one` is the
-- 12-byte version every record carries (a cluster batch has one), or '' if
-- each record's own version must be read.
local function choose(names, shift, olds, first, one)
  local rejected, writes, created, nr, nw = {}, {}, 0, 0, 0
  local unpack_version = struct.unpack
  local nh, nl
  if one ~= '' then nh, nl = unpack_version('>I6I6', one) end
  for i = 1, #olds do
    local new, old = ARGV[first + i - 1], olds[i]
    local ok = true
    if old == false then
      created = created + 1
    else
      if #old < 13 then
        return nil, 'cvstore: malformed record in ' .. names[i + shift]
      end
      local oh, ol = unpack_version('>I6I6', old)
      if one == '' then nh, nl = unpack_version('>I6I6', new) end
      ok = nh > oh or (nh == oh and nl > ol)
    end
    if ok then
      writes[nw + 1] = names[i + shift]
      writes[nw + 2] = new
      nw = nw + 2
    else
      nr = nr + 1
      rejected[nr] = i
    end
  end
  return rejected, writes, created
end

if op == 'put' then
  -- KEYS[1] record counter, KEYS[2..] record keys;
  -- ARGV[2] the records' common version or '', ARGV[3..] records
  local olds = redis.call('MGET', unpack(KEYS, 2))
  local rejected, writes, created = choose(KEYS, 1, olds, 3, ARGV[2])
  if rejected == nil then return redis.error_reply(writes) end
  if #writes > 0 then redis.call('MSET', unpack(writes)) end
  if created > 0 then redis.call('INCRBY', KEYS[1], created) end
  return rejected
elseif op == 'hput' then
  -- KEYS[1] hint counter, KEYS[2] the owner's hash; ARGV[2] as for put,
  -- ARGV[3..n+2] records, then ARGV[n+3..2n+2] their fields (keys)
  local n = (#ARGV - 2) / 2
  local olds = redis.call('HMGET', KEYS[2], unpack(ARGV, n + 3))
  local rejected, writes, created = choose(ARGV, n + 2, olds, 3, ARGV[2])
  if rejected == nil then return redis.error_reply(writes) end
  if #writes > 0 then redis.call('HSET', KEYS[2], unpack(writes)) end
  if created > 0 then redis.call('INCRBY', KEYS[1], created) end
  return rejected
elseif op == 'purge' then
  -- KEYS[1] record counter, KEYS[2..] record keys; ARGV[2..] 12-byte versions:
  -- delete each record whose version is still exactly the one given
  local n = 0
  for i = 2, #KEYS do
    local old = redis.call('GET', KEYS[i])
    if old and string.sub(old, 1, 12) == ARGV[i] then
      n = n + redis.call('DEL', KEYS[i])
    end
  end
  if n > 0 then redis.call('DECRBY', KEYS[1], n) end
  return n
elseif op == 'heads' then
  -- KEYS[1..] record keys: the first 13 bytes of each record (version and
  -- tag), false where there is none; the values stay on the server
  local out = {}
  for i = 1, #KEYS do
    local head = redis.call('GETRANGE', KEYS[i], 0, 12)
    if head == '' then out[i] = false else out[i] = head end
  end
  return out
elseif op == 'del' then
  -- KEYS[1] record counter, KEYS[2..] record keys
  local n = redis.call('DEL', unpack(KEYS, 2))
  if n > 0 then redis.call('DECRBY', KEYS[1], n) end
  return n
elseif op == 'hdel' then
  -- KEYS[1] hint counter, KEYS[2] the owner's hash; ARGV[2..] fields
  local n = redis.call('HDEL', KEYS[2], unpack(ARGV, 2))
  if n > 0 then redis.call('DECRBY', KEYS[1], n) end
  return n
end
return redis.error_reply('cvstore: unknown operation ' .. tostring(op))
"""
_SCRIPT_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()
_SCRIPT_SHA_BYTES = _SCRIPT_SHA.encode()


class JSONCodec:
    """Values as JSON text (UTF-8): dicts, lists, numbers, bools, None.

    Round trips change what JSON cannot tell apart: tuples come back as lists,
    dict keys as str.  Pass ``RedisStore(..., codec=JSONCodec())``.
    """

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def decode(self, data: bytes) -> Any:
        return json.loads(data)

    def __repr__(self) -> str:
        return "JSONCodec()"


try:
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - depends on the environment
    _pack_command = None


def _import_redis() -> Any:
    try:
        import redis
        import redis.backoff
        import redis.retry

        redis.Redis  # noqa: B018 - a stray directory named redis is not redis-py
    except (ImportError, AttributeError) as exc:
        raise ImportError(
            f"RedisStore needs redis-py, which is not installed; {_INSTALL_HINT}"
        ) from exc
    return redis


def _glob_escape(text: bytes) -> bytes:
    """`text` as a literal in a SCAN MATCH pattern."""
    out = bytearray()
    for byte in text:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


def _as_bytes(key: Any, what: str = "key") -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise TypeError(f"{what} must be bytes or str, got {type(key).__name__}")


def _check_version(version: Any) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"record version must be int, got {type(version).__name__}")
    if not 0 <= version < _VERSION_LIMIT:
        raise ValueError(f"record version must be in [0, 2**96), got {version!r}")


def _raiser(error: StoreError, cause: BaseException) -> Callable[[], Any]:
    """A function that raises `error` (from `cause`): a failed call, reported when finished."""

    def fail() -> Any:
        raise error from cause

    return fail


def _spans(names: Sequence[bytes], size: int) -> list[tuple[int, int]]:
    """Split `names` into runs of at most `size` in which no name repeats.

    The write script reads every stored record of a call before it writes, so
    one call must not see a key twice; a repeat starts the next call (the
    calls run in order, so the later record is compared with the earlier).
    """
    if len(set(names)) == len(names):  # the usual case: no repeats
        return [(i, min(i + size, len(names))) for i in range(0, len(names), size)]
    spans = []
    start, seen = 0, set()
    for i, name in enumerate(names):
        if name in seen or i - start == size:
            spans.append((start, i))
            start, seen = i, set()
        seen.add(name)
    if start < len(names):
        spans.append((start, len(names)))
    return spans


class _Stats:
    """Per-store call counters and a latency histogram (powers of two in µs)."""

    __slots__ = (
        "_lock", "calls", "errors", "timeouts", "connection_errors", "seconds", "max_seconds",
        "buckets", "last_error", "records_read", "records_written",
    )  # fmt: skip

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._zero()

    def reset(self) -> None:
        with self._lock:
            self._zero()

    def _zero(self) -> None:
        self.calls = 0
        self.errors = 0
        self.timeouts = 0
        self.connection_errors = 0
        self.seconds = 0.0
        self.max_seconds = 0.0
        self.buckets = [0] * 32
        self.last_error: str | None = None
        self.records_read = 0
        self.records_written = 0

    def moved(self, read: int, written: int) -> None:
        with self._lock:
            self.records_read += read
            self.records_written += written

    def ok(self, seconds: float) -> None:
        bucket = min(int(seconds * 1e6).bit_length(), 31)
        with self._lock:
            self.calls += 1
            self.seconds += seconds
            if seconds > self.max_seconds:
                self.max_seconds = seconds
            self.buckets[bucket] += 1

    def failed(self, seconds: float, kind: str, message: str) -> None:
        with self._lock:
            self.calls += 1
            self.errors += 1
            self.seconds += seconds
            if seconds > self.max_seconds:
                self.max_seconds = seconds
            if kind == "timeout":
                self.timeouts += 1
            elif kind == "connection":
                self.connection_errors += 1
            self.last_error = message

    def _percentile(self, q: float, buckets: list[int], total: int) -> float:
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for i, n in enumerate(buckets):
            seen += n
            if seen >= rank:
                return (1 << i) / 1000.0  # bucket upper bound, µs -> ms
        return (1 << 31) / 1000.0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            buckets = list(self.buckets)
            calls, errors, seconds = self.calls, self.errors, self.seconds
            out = {
                "calls": calls,
                "errors": errors,
                "timeouts": self.timeouts,
                "connection_errors": self.connection_errors,
                "mean_ms": seconds / calls * 1000.0 if calls else 0.0,
                "max_ms": self.max_seconds * 1000.0,
                "last_error": self.last_error,
                "records_read": self.records_read,
                "records_written": self.records_written,
            }
        ok = sum(buckets)
        out["p50_ms"] = self._percentile(0.50, buckets, ok)
        out["p99_ms"] = self._percentile(0.99, buckets, ok)
        return out


class RedisStore(Store):
    """A node's records in a Redis server, under a key prefix.

    Parameters
    ----------
    url_or_client : str or redis.Redis
        A URL as redis-py reads it (``redis://[user:password@]host:port/db``,
        ``rediss://`` for TLS, ``unix:///path.sock?db=1``), or an existing
        ``redis.Redis`` client.  A client you pass is used as it is configured
        (its timeouts and retries are yours) and is not closed by ``close()``;
        it must not decode responses.
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

    Examples
    --------
    >>> store = RedisStore("redis://127.0.0.1:6379/0", prefix="app:")  # doctest: +SKIP
    >>> store.put(b"k", Record(1, "v"))                                  # doctest: +SKIP
    True
    """

    does_io = True  # batches to several nodes overlap: begun on each, then finished

    def __init__(
        self,
        url_or_client: Any,
        *,
        prefix: str | bytes = DEFAULT_PREFIX,
        timeout: float | None = None,
        codec: Any = None,
        name: str | None = None,
    ) -> None:
        redis = _import_redis()
        self._errors = (redis.RedisError, OSError)
        self._timeout_error = redis.TimeoutError
        self._connection_error = redis.ConnectionError
        self._noscript_error = redis.exceptions.NoScriptError
        self._response_error = redis.ResponseError

        if isinstance(url_or_client, str):
            if timeout is None:
                timeout = DEFAULT_TIMEOUT
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
            if not timeout > 0:
                raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
            self._client = redis.Redis.from_url(
                url_or_client,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
            )
            self._owns_client = True
            self.timeout: float | None = float(timeout)
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
            self._client = url_or_client
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

        self.prefix = prefix
        self.codec = codec
        self.name = name
        self._records = prefix_b + b"r:"
        self._hints = prefix_b + b"h:"
        self._record_count = prefix_b + b"m:records"
        self._hint_count = prefix_b + b"m:hints"
        self._records_pattern = _glob_escape(self._records) + b"*"
        self._hints_pattern = _glob_escape(self._hints) + b"*"
        self._stats = _Stats()
        self.address = self._describe()

    # ------------------------------------------------------------ helpers

    def _describe(self) -> str:
        """Where the server is, without the password."""
        pool = self._client.connection_pool
        kw = pool.connection_kwargs
        if "path" in kw:
            return f"unix://{kw['path']}?db={kw.get('db', 0)}"
        ssl = "SSL" in getattr(pool.connection_class, "__name__", "")
        scheme = "rediss" if ssl else "redis"
        return f"{scheme}://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"

    def __repr__(self) -> str:
        extra = f", name={self.name!r}" if self.name is not None else ""
        return f"RedisStore({self.address!r}, prefix={self.prefix!r}{extra})"

    @property
    def client(self) -> Any:
        """The redis-py client (for inspection and tests; do not write under the prefix)."""
        return self._client

    def _fail(self, op: str, exc: BaseException, started: float) -> StoreError:
        elapsed = time.perf_counter() - started
        if isinstance(exc, self._timeout_error) or isinstance(exc, TimeoutError):
            kind, what = "timeout", f"timed out after {elapsed:.3g} s"
        elif isinstance(exc, (self._connection_error, ConnectionError)):
            kind, what = "connection", "connection failed"
        else:
            kind, what = "error", "failed"
        who = f"node {self.name!r} ({self.address})" if self.name else self.address
        message = f"{who}: {op} {what}: {exc}"
        self._stats.failed(elapsed, kind, message)
        return StoreError(message, node=self.name)

    def _call(self, op: str, fn: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            result = fn(*args)
        except self._errors as exc:
            raise self._fail(op, exc, started) from exc
        self._stats.ok(time.perf_counter() - started)
        return result

    def _execute(self, *args: Any) -> Any:
        """``client.execute_command(*args)``, the command packed by hiredis directly.

        redis-py's packer looks at every argument in Python before handing
        them to hiredis; a batch's arguments are all bytes, str or int, so
        they go to hiredis as they are.  Without hiredis, or with a client
        holding a single connection, this is ``execute_command``.
        """
        client = self._client
        if _pack_command is None or client.connection is not None:
            return client.execute_command(*args)
        pool = client.connection_pool
        conn = pool.get_connection()
        try:
            # both disconnect the connection on a socket error or timeout, so a
            # late reply is never read as the next command's
            conn.send_packed_command([_pack_command(args)])
            return client.parse_response(conn, args[0])
        finally:
            pool.release(conn)

    def _evalsha(self, op: str, calls: list[tuple[list[bytes], list[bytes]]]) -> list[Any]:
        """Run the script once per (keys, argv) in `calls`, in one round trip.

        Calls the server rejected with NOSCRIPT are repeated after one SCRIPT
        LOAD.  Repeating is safe: a write only ever applies a newer version.
        """
        started = time.perf_counter()
        try:
            if len(calls) == 1:
                keys, argv = calls[0]
                try:
                    results = [self._execute("EVALSHA", _SCRIPT_SHA, len(keys), *keys, *argv)]
                except self._noscript_error:
                    self._load_script()
                    results = [self._execute("EVALSHA", _SCRIPT_SHA, len(keys), *keys, *argv)]
            else:
                results = self._pipeline_evalsha(calls, retry=True)
        except self._errors as exc:
            raise self._fail(op, exc, started) from exc
        self._stats.ok(time.perf_counter() - started)
        return results

    def _pipeline_evalsha(
        self, calls: list[tuple[list[bytes], list[bytes]]], retry: bool
    ) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for keys, argv in calls:
            pipe.execute_command("EVALSHA", _SCRIPT_SHA, len(keys), *keys, *argv)
        results = pipe.execute(raise_on_error=False)
        missing = [i for i, r in enumerate(results) if isinstance(r, self._noscript_error)]
        if missing and retry:
            self._load_script()
            again = self._pipeline_evalsha([calls[i] for i in missing], retry=False)
            for i, r in zip(missing, again):
                results[i] = r
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    def _load_script(self) -> None:
        sha = self._client.script_load(_SCRIPT)
        if isinstance(sha, bytes):
            sha = sha.decode()
        if sha != _SCRIPT_SHA:  # pragma: no cover - a server that hashes differently
            raise StoreError(
                f"{self.address}: SCRIPT LOAD returned sha {sha!r}, expected {_SCRIPT_SHA!r}",
                node=self.name,
            )

    def _encode(self, record: Any) -> bytes:
        version, value = record
        if type(version) is not int or not 0 <= version < _VERSION_LIMIT:
            _check_version(version)
        head = version.to_bytes(_HEAD, "big")
        if value is TOMBSTONE:
            return head + _TAG_TOMBSTONE
        cls = type(value)
        if cls is bytes:
            return head + _TAG_BYTES + value
        if cls is str:
            return head + _TAG_STR + value.encode("utf-8", "surrogatepass")
        if isinstance(value, bytes):
            return head + _TAG_BYTES + bytes(value)
        if isinstance(value, str):
            return head + _TAG_STR + str(value).encode("utf-8", "surrogatepass")
        if self.codec is None:
            raise TypeError(
                f"value must be bytes or str, got {cls.__name__}; "
                "pass codec=JSONCodec() (or your own codec) to RedisStore to store other types"
            )
        payload = self.codec.encode(value)
        if type(payload) is not bytes:
            raise TypeError(
                f"codec.encode must return bytes, got {type(payload).__name__} from {self.codec!r}"
            )
        return head + _TAG_CODEC + payload

    def _decode(self, raw: bytes, where: bytes) -> Record:
        tag = raw[_HEAD : _HEAD + 1]
        if tag == _TAG_BYTES:
            return Record(int.from_bytes(raw[:_HEAD], "big"), raw[_HEAD + 1 :])
        if tag == _TAG_STR:
            return Record(
                int.from_bytes(raw[:_HEAD], "big"),
                raw[_HEAD + 1 :].decode("utf-8", "surrogatepass"),
            )
        if tag == _TAG_TOMBSTONE:
            return Record(int.from_bytes(raw[:_HEAD], "big"), TOMBSTONE)
        if tag == _TAG_CODEC:
            if self.codec is None:
                raise TypeError(
                    f"the record in {where!r} was written with a codec; "
                    "pass the same codec= to RedisStore to read it"
                )
            return Record(int.from_bytes(raw[:_HEAD], "big"), self.codec.decode(raw[_HEAD + 1 :]))
        raise StoreError(
            f"{self.address}: malformed record in {where!r}: {raw[:40]!r}", node=self.name
        )

    # ------------------------------------------------------------ records

    def get(self, key: bytes) -> Record | None:
        rkey = self._records + _as_bytes(key)
        raw = self._call("get", self._client.execute_command, "GET", rkey)
        if raw is None:
            return None
        self._stats.moved(1, 0)
        return self._decode(raw, rkey)

    def get_many(self, keys: Sequence[bytes]) -> list[Record | None]:
        return self._begin_get_many(keys)()

    def begin(self, method: str, *args: Any) -> Callable[[], Any]:
        """Send a batch now, read the replies when finished (see ``Store.begin``).

        ``get``, ``put``, ``get_many`` and ``put_many_columns`` are split: the
        request is written to a pooled connection here and its replies read by
        the function returned, so the cluster's call reaches every replica's
        server before it waits for any.  Other methods run at once.
        """
        if method == "get_many":
            return self._begin_get_many(*args)
        if method == "put_many_columns":
            return self._begin_put_columns(*args)
        if method == "get":
            (key,) = args
            read = self._begin_get_many([key], op="get")
            return lambda: read()[0]
        if method == "put":
            key, record = args
            write = self._begin_put_columns([key], [record], op="put")
            return lambda: write()[0]  # as put() does
        return super().begin(method, *args)

    def _begin_get_many(
        self, keys: Sequence[bytes], op: str = "get_many"
    ) -> Callable[[], list[Record | None]]:
        if set(map(type, keys)) != {bytes}:
            keys = [_as_bytes(k) for k in keys]
        if not keys:
            return list
        commands = []
        for i in range(0, len(keys), _MGET_BATCH):
            command = Command()
            command.arg(b"MGET")
            command.column(keys[i : i + _MGET_BATCH], prefix=self._records)
            commands.append(command)
        read = self._send(op, commands)

        def finish() -> list[Record | None]:
            replies = read()
            raws = replies[0] if len(replies) == 1 else [raw for part in replies for raw in part]
            return self._decode_many(raws, keys)

        return finish

    def _decode_many(self, raws: list[Any], keys: Sequence[bytes]) -> list[Record | None]:
        missing = raws.count(None)
        self._stats.moved(len(raws) - missing, 0)
        if not missing and min(map(len, raws)) > _HEAD:
            # every key has a record: decode by column with C-level map when
            # the records are all bytes (or all str) values
            tags = set(map(getitem, raws, repeat(_HEAD)))
            if len(tags) == 1 and (tag := tags.pop()) in (_ORD_BYTES, _ORD_STR):
                versions = map(int.from_bytes, map(getitem, raws, repeat(_VERSIONS)), repeat("big"))
                payloads = map(getitem, raws, repeat(_PAYLOAD))
                if tag == _ORD_STR:
                    payloads = map(bytes.decode, payloads, repeat("utf-8"), repeat("surrogatepass"))
                return list(map(_new_record, repeat(Record), zip(versions, payloads)))
        # inline fast path of _decode for bytes, str and tombstones
        from_bytes, new = int.from_bytes, _new_record
        out: list[Record | None] = []
        add = out.append
        for raw, key in zip(raws, keys):
            if raw is None:
                add(None)
                continue
            tag = raw[_HEAD] if len(raw) > _HEAD else -1
            if tag == _ORD_BYTES:
                add(new(Record, (from_bytes(raw[:_HEAD], "big"), raw[_HEAD + 1 :])))
            elif tag == _ORD_STR:
                value = raw[_HEAD + 1 :].decode("utf-8", "surrogatepass")
                add(new(Record, (from_bytes(raw[:_HEAD], "big"), value)))
            elif tag == _ORD_TOMBSTONE:
                add(new(Record, (from_bytes(raw[:_HEAD], "big"), TOMBSTONE)))
            else:
                add(self._decode(raw, self._records + key))
        return out

    def put(self, key: bytes, record: Record) -> bool:
        return self._begin_put_columns([key], [record], op="put")()[0]

    def put_many(self, items: Iterable[tuple[bytes, Record]]) -> list[bool]:
        """Store each record whose version is newer; one round trip for the batch.

        Returns, per item, whether it was applied.  A key may appear more than
        once; each of its records is compared with the one before.
        """
        rkeys, records = self._encode_pairs(items)
        return self._begin_put(rkeys, b"", records, b"", b"")()

    def put_many_columns(self, keys: Sequence[bytes], records: Sequence[Record]) -> list[bool]:
        """``put_many`` with the batch given as two lists (as the cluster writes)."""
        return self._begin_put_columns(keys, records)()

    def _begin_put_columns(
        self, keys: Sequence[bytes], records: Sequence[Record], op: str = "put_many"
    ) -> Callable[[], list[bool]]:
        if len(keys) != len(records):
            raise ValueError(
                f"keys and records must have the same length, got {len(keys)} and {len(records)}"
            )
        # A cluster batch writes one version to every key (as bytes keys), and
        # its values are usually all bytes or all str: then the records are
        # sent as the values behind one 13-byte head, and the script reads
        # the new version once.
        if keys and set(map(type, keys)) == {bytes}:
            versions = set(map(_first, records))
            if len(versions) == 1:
                version = versions.pop()
                if type(version) is int and 0 <= version < _VERSION_LIMIT:
                    values = list(map(_value_of, records))
                    types = set(map(type, values))
                    if types == {bytes} or types == {str}:
                        tag = _ORD_BYTES
                        if types == {str}:
                            tag = _ORD_STR
                            values = list(
                                map(str.encode, values, repeat("utf-8"), repeat("surrogatepass"))
                            )
                        head = ((version << 8) | tag).to_bytes(_HEAD + 1, "big")
                        return self._begin_put(keys, self._records, values, head, head[:_HEAD], op)
        rkeys, encoded = self._encode_pairs(zip(keys, records))
        return self._begin_put(rkeys, b"", encoded, b"", b"", op)

    def _encode_pairs(
        self, items: Iterable[tuple[bytes, Record]]
    ) -> tuple[list[bytes], list[bytes]]:
        prefix, encode = self._records, self._encode
        rkeys: list[bytes] = []
        records: list[bytes] = []
        add_key, add_record = rkeys.append, records.append
        for key, record in items:
            add_key(prefix + (key if type(key) is bytes else _as_bytes(key)))
            # inline fast path of _encode for bytes and str values
            version, value = record
            cls = type(value)
            if type(version) is int and 0 <= version < _VERSION_LIMIT:
                if cls is bytes:
                    add_record(((version << 8) | _ORD_BYTES).to_bytes(_HEAD + 1, "big") + value)
                    continue
                if cls is str:
                    add_record(
                        ((version << 8) | _ORD_STR).to_bytes(_HEAD + 1, "big")
                        + value.encode("utf-8", "surrogatepass")
                    )
                    continue
            add_record(encode(record))
        return rkeys, records

    def _begin_put(
        self,
        keys: Sequence[bytes],
        key_prefix: bytes,
        payloads: list[bytes],
        head: bytes,
        version: bytes,
        op: str = "put_many",
    ) -> Callable[[], list[bool]]:
        """Send the script calls that store ``head + payloads[i]`` under ``key_prefix + keys[i]``.

        `version` is the 12-byte version every record carries, or b"" when
        the records' own versions differ.
        """
        if not keys:
            return list
        spans = _spans(keys, _SCRIPT_BATCH)
        commands = []
        for a, b in spans:
            command = Command()
            for arg in (b"EVALSHA", _SCRIPT_SHA_BYTES, b"%d" % (b - a + 1), self._record_count):
                command.arg(arg)
            command.column(keys[a:b], prefix=key_prefix)
            command.arg(b"put")
            command.arg(version)
            command.column(payloads[a:b], prefix=head)
            commands.append(command)
        read = self._send(op, commands)

        def finish() -> list[bool]:
            # each call replies with the 1-based positions of the records it refused
            replies = read()
            self._stats.moved(0, len(keys))
            out = [True] * len(keys)
            for (start, _), rejected in zip(spans, replies):
                for i in rejected:
                    out[start + i - 1] = False
            return out

        return finish

    def _send(self, op: str, commands: list[Command]) -> Callable[[], list[Any]]:
        """Write `commands` on one connection now; return the function that reads their replies.

        The reader raises StoreError if the server failed or replied with an
        error; script calls the server did not know (NOSCRIPT) are sent again
        after one SCRIPT LOAD.  A client holding a single connection (shared
        under its lock) cannot leave a reply unread, so there the whole
        exchange happens here.
        """
        started = time.perf_counter()
        client = self._client
        if client.connection is not None:
            with getattr(client, "single_connection_lock", None) or nullcontext():
                try:
                    self._write(client.connection, commands)
                    replies = self._read_replies(client.connection, commands)
                except self._errors as exc:
                    return _raiser(self._fail(op, exc, started), exc)
            self._stats.ok(time.perf_counter() - started)
            return lambda: replies
        pool = client.connection_pool
        try:
            conn = pool.get_connection()
        except self._errors as exc:
            return _raiser(self._fail(op, exc, started), exc)
        try:
            self._write(conn, commands)
        except self._errors as exc:  # redis-py closed the connection: no reply is left to read
            pool.release(conn)
            return _raiser(self._fail(op, exc, started), exc)

        def read() -> list[Any]:
            try:
                replies = self._read_replies(conn, commands)
            except self._errors as exc:
                raise self._fail(op, exc, started) from exc
            finally:
                pool.release(conn)
            self._stats.ok(time.perf_counter() - started)
            return replies

        return read

    @staticmethod
    def _write(conn: Any, commands: list[Command]) -> None:
        conn.send_packed_command(
            [chunk for command in commands for chunk in command.chunks()], check_health=False
        )

    def _read_replies(self, conn: Any, commands: list[Command], retry: bool = True) -> list[Any]:
        # Every reply is read, error replies too, so that the connection stays
        # in step; a socket error or timeout makes redis-py close it instead.
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except self._response_error as exc:
                replies.append(exc)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, self._noscript_error)]
        if (
            lost and retry
        ):  # the server lost the script (restart, SCRIPT FLUSH): load it, send again
            self._load_script()
            again = [commands[i] for i in lost]
            self._write(conn, again)
            for i, reply in zip(lost, self._read_replies(conn, again, retry=False)):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def delete(self, key: bytes) -> bool:
        rkey = self._records + _as_bytes(key)
        (n,) = self._evalsha("delete", [([self._record_count, rkey], [b"del"])])
        return n > 0

    def delete_many(self, keys: Iterable[bytes]) -> int:
        prefix, counter = self._records, self._record_count
        rkeys = [prefix + _as_bytes(k) for k in keys]
        calls = [
            ([counter, *rkeys[i : i + _SCRIPT_BATCH]], [b"del"])
            for i in range(0, len(rkeys), _SCRIPT_BATCH)
        ]
        if not calls:
            return 0
        return sum(self._evalsha("delete_many", calls))

    def purge_many(self, items: Iterable[tuple[bytes, int]]) -> int:
        """Delete each record whose version is still exactly the given one (atomic).

        A record rewritten since the caller read it (another version) stays.
        """
        prefix, counter = self._records, self._record_count
        rkeys, versions = [], []
        for key, version in items:
            if type(version) is not int or not 0 <= version < _VERSION_LIMIT:
                _check_version(version)
            rkeys.append(prefix + _as_bytes(key))
            versions.append(version.to_bytes(_HEAD, "big"))
        calls = [
            ([counter, *rkeys[i : i + _SCRIPT_BATCH]], [b"purge", *versions[i : i + _SCRIPT_BATCH]])
            for i in range(0, len(rkeys), _SCRIPT_BATCH)
        ]
        if not calls:
            return 0
        return sum(self._evalsha("purge_many", calls))

    def scan(self) -> Iterator[tuple[bytes, Record]]:
        """Every (key, record) under the prefix, by SCAN (never KEYS).

        As Redis's SCAN promises: a key present for the whole scan is returned;
        one written or deleted meanwhile may or may not be; a key may be
        returned twice if the server resizes its table during the scan.
        """
        client, strip = self._client, len(self._records)
        cursor = 0
        while True:
            cursor, rkeys = self._call(
                "scan", client.scan, cursor, self._records_pattern, _SCAN_COUNT
            )
            if rkeys:
                raws = self._call("scan", client.execute_command, "MGET", *rkeys)
                self._stats.moved(len(raws) - raws.count(None), 0)
                for rkey, raw in zip(rkeys, raws):
                    if raw is not None:  # deleted since SCAN saw it
                        yield rkey[strip:], self._decode(raw, rkey)
            if int(cursor) == 0:
                return

    def scan_versions(self) -> tuple[list[bytes], list[int], list[bool]]:
        """Every key, its version and whether it is a tombstone; values stay on the server.

        SCAN lists the keys, then one script call per 250 keys (all of a
        SCAN page in one pipeline) returns the first 13 bytes of each record.
        """
        client, strip = self._client, len(self._records)
        keys: list[bytes] = []
        versions: list[int] = []
        tombs: list[bool] = []
        seen: set[bytes] = set()
        from_bytes = int.from_bytes
        cursor = 0
        while True:
            cursor, rkeys = self._call(
                "scan_versions", client.scan, cursor, self._records_pattern, _SCAN_COUNT
            )
            rkeys = [k for k in rkeys if k not in seen]  # SCAN may repeat a key
            if rkeys:
                seen.update(rkeys)
                calls = [
                    (rkeys[i : i + _SCRIPT_BATCH], [b"heads"])
                    for i in range(0, len(rkeys), _SCRIPT_BATCH)
                ]
                heads: list[Any] = []
                for part in self._evalsha("scan_versions", calls):
                    heads.extend(part)
                for rkey, head in zip(rkeys, heads):
                    if head:  # deleted since SCAN saw it otherwise
                        keys.append(rkey[strip:])
                        versions.append(from_bytes(head[:_HEAD], "big"))
                        tombs.append(head[_HEAD:] == _TAG_TOMBSTONE)
            if int(cursor) == 0:
                return keys, versions, tombs

    def keys(self) -> list[bytes]:
        """Every key with a record (tombstones included), by SCAN without reading values."""
        client, strip = self._client, len(self._records)
        out: list[bytes] = []
        cursor = 0
        while True:
            cursor, rkeys = self._call(
                "keys", client.scan, cursor, self._records_pattern, _SCAN_COUNT
            )
            out.extend(rkey[strip:] for rkey in rkeys)
            if int(cursor) == 0:
                return list(dict.fromkeys(out))  # SCAN may repeat a key

    def count(self) -> int:
        """How many records (tombstones included); O(1), kept by the write script."""
        raw = self._call("count", self._client.execute_command, "GET", self._record_count)
        return max(0, int(raw)) if raw is not None else 0

    # -------------------------------------------------------------- hints

    def _hint_key(self, owner: str) -> bytes:
        if not isinstance(owner, str) or not owner:
            raise TypeError(f"owner must be a non-empty str, got {owner!r}")
        return self._hints + owner.encode("utf-8")

    def put_hints(self, owner: str, items: Iterable[tuple[bytes, Record]]) -> None:
        """Keep records for node `owner` in this server, until handed over.

        A hint replaces the hint held for the same (owner, key) only if newer.
        """
        hkey = self._hint_key(owner)
        fields, records = [], []
        for key, record in items:
            fields.append(_as_bytes(key))
            records.append(self._encode(record))
        calls = [
            ([self._hint_count, hkey], [b"hput", b"", *records[a:b], *fields[a:b]])
            for a, b in _spans(fields, _SCRIPT_BATCH)
        ]
        if calls:
            self._evalsha("put_hints", calls)

    def scan_hints(self) -> Iterator[tuple[str, bytes, Record]]:
        client, strip = self._client, len(self._hints)
        cursor = 0
        while True:
            cursor, hkeys = self._call(
                "scan_hints", client.scan, cursor, self._hints_pattern, _SCAN_COUNT
            )
            for hkey in hkeys:
                owner = hkey[strip:].decode("utf-8")
                hcursor = 0
                while True:
                    hcursor, fields = self._call(
                        "scan_hints", client.hscan, hkey, hcursor, None, _SCAN_COUNT
                    )
                    for key, raw in fields.items():
                        yield owner, key, self._decode(raw, hkey + b" " + key)
                    if int(hcursor) == 0:
                        break
            if int(cursor) == 0:
                return

    def delete_hints(self, owner: str, keys: Iterable[bytes]) -> None:
        hkey = self._hint_key(owner)
        fields = [_as_bytes(k) for k in keys]
        calls = [
            ([self._hint_count, hkey], [b"hdel", *fields[i : i + _SCRIPT_BATCH]])
            for i in range(0, len(fields), _SCRIPT_BATCH)
        ]
        if calls:
            self._evalsha("delete_hints", calls)

    def count_hints(self) -> int:
        raw = self._call("count_hints", self._client.execute_command, "GET", self._hint_count)
        return max(0, int(raw)) if raw is not None else 0

    # ---------------------------------------------------------- lifecycle

    def clear(self) -> int:
        """Delete every key under the prefix (records, hints, counters); returns how many."""
        client = self._client
        pattern = _glob_escape(_as_bytes(self.prefix, "prefix")) + b"*"
        removed, cursor = 0, 0
        while True:
            cursor, keys = self._call("clear", client.scan, cursor, pattern, _SCAN_COUNT)
            if keys:
                removed += self._call("clear", client.execute_command, "DEL", *keys)
            if int(cursor) == 0:
                return removed

    def ping(self) -> bool:
        """One round trip to the server; raises StoreError if it does not answer."""
        return bool(self._call("ping", self._client.execute_command, "PING"))

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """Calls, errors (timeouts, connection errors) and latency of this store.

        ``mean_ms``/``max_ms`` cover every call; ``p50_ms``/``p99_ms`` are upper
        bounds (powers of two in µs) over the calls that succeeded.  A batch is
        one call.  A call begun together with other nodes' (``begin``) is timed
        from its request to its reply being read, so it can include the time
        spent reading the replies of the nodes finished before it.
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
