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
no permission), whose own message is the error's ``reason``.

redis-py is used through its client, pool and connection objects; what this
relies on beyond redis-py's documented API (a pool's ``get_connection`` and
``release``, a connection's ``send_packed_command`` and ``read_response``) is
checked when the first store is made (``check_redis``), with a clear error.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from cvstore.errors import FencedError, StoreError
from cvstore.stores.redis.requests import command
from cvstore.stores.redis.resp import Command, packed
from cvstore.stores.redis.script import SCRIPT, SCRIPT_SHA
from cvstore.stores.redis.stats import StoreStats

__all__ = ("INSTALL_HINT", "LOAD_SCRIPT", "Failures", "Wire", "check_redis")

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

        redis.Redis
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
        raise error from cause

    return fail


def _acquire_of(pool_class: Any) -> Callable[[Any], Any]:
    """How to take a connection from a pool: redis-py before 5.3 requires a command name."""
    param = inspect.signature(pool_class.get_connection).parameters.get("command_name")
    if param is not None and param.default is inspect.Parameter.empty:
        return lambda pool: pool.get_connection("_")
    return lambda pool: pool.get_connection()


class Failures:
    """How one store's failures read: StoreError (unreachable or an error reply), FencedError.

    Shared by the sync and the asyncio connection code; counts every failure
    in the store's stats.
    """

    def __init__(self, redis: Any, address: str, stats: StoreStats) -> None:
        self.address = address
        self.stats = stats
        self.name: str | None = None
        self._errors = (redis.RedisError, OSError)
        self._timeout_errors = (redis.TimeoutError, TimeoutError)
        self._reply_error = redis.ResponseError
        self._noscript_error = redis.exceptions.NoScriptError

    def _who(self) -> str:
        return f"node {self.name!r} ({self.address})" if self.name else self.address

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
        else:
            kind, what, reason = "connection", "connection failed", text
        message = f"{self._who()}: {op} {what}: {text}"
        self.stats.failed(elapsed, kind, message)
        return StoreError(message, node=self.name, unreachable=unreachable, reason=reason)

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


class Wire(Failures):
    """The sync connection side of one RedisStore: send now, read later, retry scripts."""

    def __init__(self, redis: Any, client: Any, address: str, stats: StoreStats) -> None:
        super().__init__(redis, address, stats)
        self._client = client
        self._acquire = _acquire_of(type(client.connection_pool))

    # ---------------------------------------------------------- requests

    def send(self, op: str, commands: list[Command]) -> Callable[[], list[Any]]:
        """Write `commands` on one connection now; return the function that reads their replies.

        The reader raises StoreError if the server failed or replied with an
        error, after reading every reply.  A client holding a single
        connection (shared under its lock) cannot leave a reply unread, so
        there the whole exchange happens here.
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
        pool = client.connection_pool
        try:
            conn = self._acquire(pool)
        except self._errors as exc:
            return _raiser(self.fail(op, exc, started), exc)
        try:
            self._write(conn, commands)
        except BaseException as exc:  # redis-py closed the connection: no reply is left to read
            pool.release(conn)
            if not isinstance(exc, self._errors):
                raise
            return _raiser(self.fail(op, exc, started), exc)

        def read() -> list[Any]:
            try:
                replies = self._read(conn, commands)
            except self._errors as exc:
                raise self.fail(op, exc, started) from exc
            finally:
                pool.release(conn)
            self.stats.ok(time.perf_counter() - started)
            return replies

        return read

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
