"""How a RedisStore talks to its server: one send path, one NOSCRIPT retry, one SCAN iterator.

Every command goes out as RESP chunks (``resp.Command``) on a connection
taken from redis-py's pool, and its replies are read back from that
connection; ``send`` writes now and returns the function that reads later,
so a cluster's requests reach every server before it waits for any.  Error
replies are read to the end of a request, so a connection never goes back to
the pool with a reply unread; a socket error or timeout makes redis-py close
the connection instead.  Script calls the server does not know (NOSCRIPT:
first use, a restart, SCRIPT FLUSH) are sent again on the same connection
after one SCRIPT LOAD, which is safe because a write only ever applies a
newer version.

Failures become ``StoreError``: ``unreachable`` for a refused or reset
connection, a timeout, a failed handshake (password, database, TLS); not
for an error reply from a server that answered (out of memory, read-only,
no permission), whose own message is the error's ``reason``, nor for a
client out of connections.

Connections: a store uses at most ``max_connections`` of its pool at once
(a ``Gate``, shared by the stores of one pool).  A call that finds them all
busy waits up to ``pool_timeout`` for one, then fails alone with a
StoreError that is not ``unreachable``: a busy client is not a dead server.
The sync side sends a cluster call's requests to several servers before it
reads any reply, so a thread holds connections of several pools at once;
it never waits for a connection while it holds one: before waiting, it
reads every reply it still has outstanding (``_settle``), which gives its
connections back.  A thread that waits holds nothing, so no two threads can
wait on each other, whatever order their requests go out in.

redis-py is used through its client, pool and connection objects; what this
relies on beyond redis-py's documented API (a pool's ``get_connection`` and
``release``, a connection's ``send_packed_command`` and ``read_response``) is
checked when the first store is made (``check_redis``), with a clear error.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, ClassVar

from cvstore.errors import FencedError, StoreError
from cvstore.stores.redis.requests import command
from cvstore.stores.redis.resp import Command, packed
from cvstore.stores.redis.script import SCRIPT, SCRIPT_SHA
from cvstore.stores.redis.stats import StoreStats

__all__ = ("INSTALL_HINT", "LOAD_SCRIPT", "AsyncGate", "Failures", "Gate", "Wire", "check_redis")

INSTALL_HINT = "pip install 'cvstore[redis]'"
SCAN_COUNT = 1000  # SCAN / HSCAN COUNT hint
_SCRIPT_SHA_BYTES = SCRIPT_SHA.encode()


def check_redis() -> Any:
    """redis-py, checked for what the store relies on; ImportError naming what is missing."""
    try:
        import redis
        import redis.backoff
        import redis.connection
        import redis.retry

        _ = redis.Redis  # an old or broken redis-py lacks it
    except (ImportError, AttributeError) as exc:
        raise ImportError(
            f"RedisStore needs redis-py, which is not installed; {INSTALL_HINT}"
        ) from exc
    needs = {
        "ConnectionPool.get_connection": getattr(
            redis.connection.ConnectionPool, "get_connection", None
        ),
        "ConnectionPool.release": getattr(redis.connection.ConnectionPool, "release", None),
        "Connection.send_packed_command": getattr(
            redis.connection.Connection, "send_packed_command", None
        ),
        "Connection.read_response": getattr(redis.connection.Connection, "read_response", None),
    }
    missing = [name for name, attr in needs.items() if not callable(attr)]
    if not missing:
        send: Any = needs["Connection.send_packed_command"]
        params = inspect.signature(send).parameters
        if "check_health" not in params:
            missing.append("Connection.send_packed_command(check_health=...)")
    if missing:
        version = getattr(redis, "__version__", "?")
        raise ImportError(
            f"RedisStore does not work with redis-py {version}: it lacks {', '.join(missing)}; "
            f"{INSTALL_HINT} installs a version that has them"
        )
    return redis


def _raiser(error: StoreError, cause: BaseException) -> Callable[[], list[Any]]:
    """A reader that raises `error` (from `cause`): a call that failed when it was sent."""

    def fail() -> list[Any]:
        raise error from (None if cause is error else cause)

    return fail


def _acquire_of(pool_class: Any) -> Callable[[Any], Any]:
    """How to take a connection from a pool: redis-py before 5.3 requires a command name."""
    param = inspect.signature(pool_class.get_connection).parameters.get("command_name")
    if param is not None and param.default is inspect.Parameter.empty:
        return lambda pool: pool.get_connection("_")
    return lambda pool: pool.get_connection()


# What redis-py raises when its own pool has no connection to give (a client
# you passed, or code using ``store.client``): MaxConnectionsError since
# redis-py 6.1; before, a plain ConnectionError with one of these messages.
_EXHAUSTED_MESSAGES = frozenset({"Too many connections", "No connection available."})


class Gate:
    """At most `size` connections of one pool in use by stores at once; a wait is bounded.

    One per redis-py pool (``Gate.of``), so stores sharing a client share it.
    """

    __slots__ = ("__weakref__", "_slots", "size")

    _of: ClassVar[weakref.WeakKeyDictionary[Any, Gate]] = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots = threading.BoundedSemaphore(size)

    @classmethod
    def of(cls, pool: Any) -> Any:
        with cls._lock:
            gate = cls._of.get(pool)
            if gate is None:
                gate = cls._of[pool] = cls(pool_size(pool))
            return gate

    def take(self) -> bool:
        """A connection slot if one is free now (never waits)."""
        return self._slots.acquire(False)

    def wait(self, seconds: float) -> bool:
        """A connection slot within `seconds`, else False."""
        return self._slots.acquire(True, seconds)

    def give(self) -> None:
        self._slots.release()


class AsyncGate:
    """``Gate`` for asyncio: one semaphore per event loop that uses the pool."""

    __slots__ = ("__weakref__", "_loop", "_slots", "size")

    _of: ClassVar[weakref.WeakKeyDictionary[Any, AsyncGate]] = weakref.WeakKeyDictionary()

    def __init__(self, size: int) -> None:
        self.size = size
        self._loop: Any = None
        self._slots = asyncio.Semaphore(size)

    @classmethod
    def of(cls, pool: Any) -> Any:
        gate = cls._of.get(pool)
        if gate is None:
            gate = cls._of[pool] = cls(pool_size(pool))
        return gate

    def slots(self) -> asyncio.Semaphore:
        """This loop's semaphore (a store used from a new loop starts with every slot free)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._slots = asyncio.Semaphore(self.size)
        return self._slots


def pool_size(pool: Any) -> int:
    """How many connections a redis-py pool may open (a pool without a bound: no bound)."""
    size = getattr(pool, "max_connections", None)
    if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
        return size
    return 2**31


class Failures:
    """How one store's failures read: StoreError (unreachable or an error reply), FencedError.

    Shared by the sync and the asyncio connection code; counts every failure
    in the store's stats.
    """

    def __init__(
        self, redis: Any, address: str, stats: StoreStats, pool_timeout: float = 0.0
    ) -> None:
        self.address = address
        self.stats = stats
        self.name: str | None = None
        self.pool_timeout = pool_timeout
        self._errors = (redis.RedisError, OSError)
        self._timeout_errors = (redis.TimeoutError, TimeoutError)
        self._reply_error = redis.ResponseError
        self._noscript_error = redis.exceptions.NoScriptError
        self._connection_error = redis.ConnectionError
        self._max_connections_error = getattr(redis.exceptions, "MaxConnectionsError", ())

    def _who(self) -> str:
        return f"node {self.name!r} ({self.address})" if self.name else self.address

    def _pool_exhausted(self, exc: BaseException) -> bool:
        """Whether redis-py's own pool had no connection to give (not a server failure)."""
        return isinstance(exc, self._max_connections_error) or (
            isinstance(exc, self._connection_error) and str(exc) in _EXHAUSTED_MESSAGES
        )

    def fail(self, op: str, exc: BaseException, started: float) -> StoreError:
        """The StoreError for `exc`, counted in the store's stats."""
        elapsed = time.perf_counter() - started
        unreachable = True
        text = str(exc) or type(exc).__name__
        if isinstance(exc, self._timeout_errors):
            kind, what = "timeout", f"timed out after {elapsed:.3g} s"
            reason = what
        elif isinstance(exc, self._reply_error):
            kind, what, reason, unreachable = "reply", "failed", text, False
        elif self._pool_exhausted(exc):
            kind, what, unreachable = "pool", "failed", False
            reason = f"no free connection in the client's pool ({text})"
            text = reason
        else:
            kind, what, reason = "connection", "connection failed", text
        message = f"{self._who()}: {op} {what}: {text}"
        self.stats.failed(elapsed, kind, message)
        return StoreError(message, node=self.name, unreachable=unreachable, reason=reason)

    def exhausted(self, op: str, started: float, size: int) -> StoreError:
        """The StoreError of a call that found no free connection within ``pool_timeout``."""
        elapsed = time.perf_counter() - started
        reason = (
            f"no free connection: all {size} busy for {self.pool_timeout:.3g} s (pool_timeout); "
            "raise max_connections or pool_timeout, or make fewer calls at once"
        )
        message = f"{self._who()}: {op} failed: {reason}"
        self.stats.failed(elapsed, "pool", message)
        return StoreError(message, node=self.name, unreachable=False, reason=reason)

    def refused(self, op: str, reason: str) -> StoreError:
        """A StoreError for a reply this store cannot accept (not a server failure)."""
        message = f"{self._who()}: {op} failed: {reason}"
        self.stats.failed(0.0, "reply", message)
        return StoreError(message, node=self.name, unreachable=False, reason=reason)

    def fenced(self, node_epoch: int, client_epoch: int) -> FencedError:
        state = "newer" if node_epoch > client_epoch else "older"
        return FencedError(
            f"{self._who()} holds layout epoch {node_epoch}, {state} than the client's "
            f"{client_epoch}",
            node=self.name,
            node_epoch=node_epoch,
            client_epoch=client_epoch,
        )

    def lost_scripts(self, replies: list[Any]) -> list[int]:
        """Which replies say the server does not know the script (NOSCRIPT)."""
        return [i for i, reply in enumerate(replies) if isinstance(reply, self._noscript_error)]

    def check_sha(self, sha: Any) -> None:
        if isinstance(sha, bytes):
            sha = sha.decode()
        if sha != SCRIPT_SHA:  # pragma: no cover - a server that hashes differently
            raise self._reply_error(f"SCRIPT LOAD returned sha {sha!r}, expected {SCRIPT_SHA!r}")

    def raise_errors(self, replies: list[Any]) -> list[Any]:
        """`replies`, or the first error among them (a fenced refusal as FencedError)."""
        for reply in replies:
            if isinstance(reply, Exception):
                if str(reply).startswith("CVSTORE-FENCED "):
                    _, have, want = str(reply).split()
                    raise self.fenced(int(have), int(want))
                raise reply
        return replies


LOAD_SCRIPT = command(b"SCRIPT", b"LOAD", SCRIPT.encode())


# Per thread: the replies it has sent for and not read yet (``_Reply``).
_local = threading.local()


def _outstanding() -> list[_Reply]:
    try:
        return _local.replies  # type: ignore[no-any-return]
    except AttributeError:
        replies: list[_Reply] = []
        _local.replies = replies
        return replies


def _settle() -> None:
    """Read every reply this thread has outstanding: it holds no connection afterwards."""
    for reply in list(_outstanding()):
        reply.finish()


class _Reply:
    """The replies to one request sent on a pooled connection; read once, early if need be.

    ``result()`` reads them (unless ``finish()`` already did), gives the
    connection back and returns them, or raises what reading raised.
    """

    __slots__ = ("_commands", "_conn", "_error", "_held", "_op", "_replies", "_started", "_wire")

    def __init__(
        self, wire: Wire, conn: Any, commands: list[Command], op: str, started: float
    ) -> None:
        self._wire = wire
        self._conn = conn
        self._commands = commands
        self._op = op
        self._started = started
        self._replies: list[Any] | None = None
        self._error: BaseException | None = None
        self._held = _outstanding()
        self._held.append(self)

    def finish(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        wire = self._wire
        self._held.remove(self)
        try:
            try:
                replies = wire._read(conn, self._commands)
            except wire._errors as exc:
                raise wire.fail(self._op, exc, self._started) from exc
            finally:
                wire._client.connection_pool.release(conn)
                wire._gate.give()
        except Exception as exc:  # noqa: BLE001 - a StoreError or FencedError: result() raises it
            self._error = exc
            return
        wire.stats.ok(time.perf_counter() - self._started)
        self._replies = replies

    def result(self) -> list[Any]:
        self.finish()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        replies = self._replies
        assert replies is not None
        return replies

    __call__ = result

    def fileno(self) -> int | None:
        """The connection's socket while the replies are unread (None once read, or unknown)."""
        sock = getattr(self._conn, "_sock", None)  # redis-py keeps it there while connected
        return None if sock is None else sock.fileno()

    def detach(self) -> None:
        """Let another thread read the replies: this thread no longer holds them."""
        if self in self._held:
            self._held.remove(self)
            self._held = [self]


class Wire(Failures):
    """The sync connection side of one RedisStore: send now, read later, retry scripts."""

    def __init__(
        self, redis: Any, client: Any, address: str, stats: StoreStats, pool_timeout: float = 0.0
    ) -> None:
        super().__init__(redis, address, stats, pool_timeout)
        self._client = client
        self._acquire = _acquire_of(type(client.connection_pool))
        self._gate = Gate.of(client.connection_pool)

    # ---------------------------------------------------------- requests

    def send(self, op: str, commands: list[Command]) -> Callable[[], list[Any]]:
        """Write `commands` on one connection now; return the function that reads their replies.

        The reader raises StoreError if the server failed or replied with an
        error, after reading every reply.  A client holding a single
        connection (shared under its lock) cannot leave a reply unread, so
        there the whole exchange happens here.  With every connection busy,
        this thread's outstanding replies are read first, then a free
        connection is waited for, up to ``pool_timeout``.
        """
        started = time.perf_counter()
        client = self._client
        if client.connection is not None:
            with getattr(client, "single_connection_lock", None) or nullcontext():
                try:
                    self._write(client.connection, commands)
                    replies = self._read(client.connection, commands)
                except self._errors as exc:
                    return _raiser(self.fail(op, exc, started), exc)
            self.stats.ok(time.perf_counter() - started)
            return lambda: replies
        gate = self._gate
        if not gate.take():
            _settle()  # never wait while holding a connection: no thread can wait on this one
            self.stats.waited()
            if not gate.wait(self.pool_timeout):
                error = self.exhausted(op, started, gate.size)
                return _raiser(error, error)
        pool = client.connection_pool
        try:
            conn = self._acquire(pool)
        except BaseException as exc:
            gate.give()
            if not isinstance(exc, self._errors):
                raise
            return _raiser(self.fail(op, exc, started), exc)
        try:
            self._write(conn, commands)
        except BaseException as exc:  # redis-py closed the connection: no reply is left to read
            pool.release(conn)
            gate.give()
            if not isinstance(exc, self._errors):
                raise
            return _raiser(self.fail(op, exc, started), exc)
        return _Reply(self, conn, commands, op, started)

    def call(self, op: str, commands: list[Command]) -> list[Any]:
        """Send `commands` and read their replies now."""
        return self.send(op, commands)()

    @staticmethod
    def _write(conn: Any, commands: list[Command]) -> None:
        conn.send_packed_command(packed(commands), check_health=False)

    def _read(self, conn: Any, commands: list[Command], retry: bool = True) -> list[Any]:
        # Every reply is read, error replies too, so that the connection stays
        # in step; a socket error or timeout makes redis-py close it instead.
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except self._reply_error as exc:
                replies.append(exc)
        lost = self.lost_scripts(replies)
        if lost and retry:  # the server lost the script: load it, send those calls again
            self._write(conn, [LOAD_SCRIPT])
            self.check_sha(conn.read_response())
            again = [commands[i] for i in lost]
            self._write(conn, again)
            for i, reply in zip(lost, self._read(conn, again, retry=False)):
                replies[i] = reply
        return self.raise_errors(replies)
