"""AsyncRedisStore: the RedisStore for asyncio code, over redis.asyncio.

It sends the same requests and reads the same replies as ``RedisStore``
(``requests``): the same records, script, codecs, prefixes, layout and
fencing, so sync and async clients share one cluster's data.  Nothing is
ever unpickled.

Each call takes a pooled connection, writes its request, reads every reply
and gives the connection back.  A call that is cancelled or times out while
a reply is on its way disconnects that connection, so a late reply is never
read as the next call's.  Both socket timeouts are `timeout` seconds.  At
most `max_connections` calls of a store are on the wire at once; the others
wait for a connection, up to `pool_timeout` seconds, in the order they came.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, Self, TypeVar

from cvstore.core.records import Record
from cvstore.stores.base import AsyncStore
from cvstore.stores.redis.codec import Codec
from cvstore.stores.redis.requests import Request, Steps, as_bytes
from cvstore.stores.redis.resp import Command, packed
from cvstore.stores.redis.store import DEFAULT_POOL_TIMEOUT, DEFAULT_PREFIX, RedisClientStore
from cvstore.stores.redis.wire import LOAD_SCRIPT, AsyncGate, Failures, check_redis

__all__ = ("AsyncRedisStore",)

T = TypeVar("T")


_LATE = 0.1  # a timer this late (a share of the timeout) means the loop is busy
_GRACE = 3  # how many times a busy loop earns a call another timeout


class _Deadline:
    """A call's timeout that a busy event loop cannot trip: ``seconds`` without a reply.

    redis-py's own socket timeouts are timers on the loop: when the loop runs
    late (thousands of tasks at once), a timer and the reply that beat it
    are seen in the same iteration and the timer wins, so a healthy server
    looks dead.  Here, when the time is up, the loop first delivers what it
    has already received (one more iteration) and only then is the call
    cancelled, if it is still waiting.  ``moved()`` (a reply read) restarts
    the time, so every reply has `seconds`, as with a socket timeout.  A loop
    that runs the timer itself late (by more than a tenth of `seconds`) is
    a busy client: the call gets `seconds` more, up to three times.
    """

    __slots__ = (
        "_cancelling",
        "_grace",
        "_handle",
        "_last",
        "_loop",
        "_seconds",
        "_task",
        "fired",
    )  # fmt: skip

    def __init__(self, seconds: float) -> None:
        loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        self._seconds = seconds
        self._last = loop.time()
        self._grace = 0
        self.fired = False
        self._handle: asyncio.Handle = loop.call_at(self._last + seconds, self._due)

    def moved(self) -> None:
        self._last = self._loop.time()

    def _due(self) -> None:
        now = self._loop.time()
        due = self._last + self._seconds
        if due > now:  # a reply came in meanwhile: wait from it
            self._handle = self._loop.call_at(due, self._due)
        elif now - due > self._seconds * _LATE and self._grace < _GRACE:
            # The loop itself ran this late: the client is busy (a connection's
            # handshake is several round trips behind it); more time, a few times.
            self._grace += 1
            self._last = now
            self._handle = self._loop.call_at(now + self._seconds, self._due)
        else:  # after what this iteration of the loop has already received
            self._handle = self._loop.call_soon(self._fire)

    def _fire(self) -> None:
        due = self._last + self._seconds
        if due > self._loop.time():  # the call moved on in the meantime
            self._handle = self._loop.call_at(due, self._due)
            return
        self.fired = True
        self._task.cancel()

    def halt(self) -> None:
        """Stop the clock (before giving the connection back: that is never cut short)."""
        self._handle.cancel()

    def ran_out(self) -> bool:
        """Whether the call's cancellation is this timeout's alone (counted back once)."""
        self._handle.cancel()
        if not self.fired:
            return False
        self.fired = False
        return self._task.uncancel() <= self._cancelling


# Connections a store that owns its pool keeps between calls (see ``AsyncWire``).
_KEPT = 16


class AsyncWire(Failures):
    """The asyncio connection side of one AsyncRedisStore.

    A store that times its calls itself (``deadline``: made from a URL, so its
    pool is its own) keeps up to 16 connections it used between calls, taken
    again as the pool would give them (connected, nothing unread, through the
    pool's own check), without the pool's lock and bookkeeping on every call.
    Kept connections count as in use to the pool; at most ``max_connections``
    calls hold one at once (the gate), so the pool never runs out; closing
    the client closes them.
    """

    def __init__(
        self, redis: Any, client: Any, address: str, stats: Any, pool_timeout: float = 0.0
    ) -> None:
        super().__init__(redis, address, stats, pool_timeout)
        self._client = client
        self._gate = AsyncGate.of(client.connection_pool)
        self._timeout_class = redis.TimeoutError
        # Seconds a call may go without a reply (``_Deadline``), or None: the
        # client's own socket timeouts apply (a client you passed).
        self.deadline: float | None = None
        self._kept: list[Any] = []
        pool = client.connection_pool
        self._check = getattr(pool, "ensure_connection", None)

    async def call(self, op: str, commands: list[Command]) -> list[Any]:
        """Write `commands` on one pooled connection, read every reply, give it back.

        With every connection busy, waits for one up to ``pool_timeout``; a
        call waits holding no connection, so waits cannot form a cycle.
        """
        started = time.perf_counter()
        slots = self._gate.slots()
        if slots.locked():
            self.stats.waited()
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await slots.acquire()
            except TimeoutError:
                raise self.exhausted(op, started, self._gate.size) from None
        else:
            await slots.acquire()  # free: returns without suspending
        seconds = self.deadline
        deadline = None if seconds is None else _Deadline(seconds)
        try:
            replies = await self._call(op, commands, started, deadline)
        except asyncio.CancelledError:
            if deadline is not None and deadline.ran_out():
                error = self._timeout_class(f"no reply within {seconds:.3g} s")
                raise self.fail(op, error, started) from None
            raise
        finally:
            if deadline is not None:
                deadline.ran_out()  # a cancellation turned into another error: counted back
            slots.release()
        self.stats.ok(time.perf_counter() - started)
        return replies

    async def _call(
        self, op: str, commands: list[Command], started: float, deadline: _Deadline | None
    ) -> list[Any]:
        pool = self._client.connection_pool
        kept = self._kept
        try:
            if kept:
                conn = kept.pop()
                try:
                    await self._check(conn)  # type: ignore[misc]
                except BaseException:
                    await pool.release(conn)
                    raise
            else:
                conn = await pool.get_connection()
        except self._errors as exc:
            raise self.fail(op, exc, started) from exc
        if deadline is not None:
            deadline.moved()
        try:
            await conn.send_packed_command(packed(commands), check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except self._reply_error as exc:
                    replies.append(exc)
                if deadline is not None:
                    deadline.moved()
            if self.lost_scripts(replies):
                replies = await self._reload(conn, commands, replies, deadline)
            replies = self.raise_errors(replies)
        except self._errors as exc:
            if deadline is not None:
                deadline.halt()
            await pool.release(conn)
            raise self.fail(op, exc, started) from exc
        except BaseException:  # cancelled or fenced: a reply may still be on its way
            if deadline is not None:
                deadline.halt()
            await _drop(conn)
            await pool.release(conn)
            raise
        if deadline is not None:
            deadline.halt()
            if len(kept) < _KEPT and self._check is not None:
                kept.append(conn)
                return replies
        await pool.release(conn)
        return replies

    async def _reload(
        self,
        conn: Any,
        commands: list[Command],
        replies: list[Any],
        deadline: _Deadline | None,
    ) -> list[Any]:
        """`replies` with the calls the server had lost the script for sent again after loading it."""
        lost = self.lost_scripts(replies)
        await conn.send_packed_command(LOAD_SCRIPT.chunks(), check_health=False)
        self.check_sha(await conn.read_response())
        again = [commands[i] for i in lost]
        await conn.send_packed_command(packed(again), check_health=False)
        for i in lost:
            try:
                replies[i] = await conn.read_response()
            except self._reply_error as exc:
                replies[i] = exc
            if deadline is not None:
                deadline.moved()
        return replies


async def _drop(conn: Any) -> None:
    try:
        await conn.disconnect(nowait=True)
    except Exception:  # noqa: BLE001, S110 - it is being thrown away anyway
        pass


class AsyncRedisStore(RedisClientStore, AsyncStore):
    """A node's records in a Redis server, for asyncio code (see ``RedisStore``).

    Takes the same arguments as ``RedisStore``, with a ``redis.asyncio.Redis``
    client where that takes a ``redis.Redis`` one; every operation is a
    coroutine except ``stats()``.  ``await store.close()`` closes the
    connections it opened.
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
        from redis import asyncio as redis_asyncio

        self._setup(
            redis,
            redis_asyncio.Redis,
            AsyncWire,
            url_or_client,
            prefix,
            timeout,
            codec,
            name,
            max_connections,
            pool_timeout,
        )

    async def _do(self, request: Request[T]) -> T:
        if not request.commands:
            return request.parse([])
        return request.parse(await self._wire.call(request.op, request.commands))

    async def _steps(self, steps: Steps[T]) -> T:
        try:
            request = steps.send(None)
            while True:
                request = steps.send(await self._do(request))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    # ------------------------------------------------------------ records

    async def get(self, key: bytes) -> Record | None:
        return (await self._do(self._requests.get_many([as_bytes(key)])))[0]

    async def get_many(self, keys: Sequence[bytes], epoch: int = 0) -> list[Record | None]:
        if not keys:
            return []
        return await self._do(self._requests.get_many(keys, epoch))

    async def write_many(
        self, keys: Sequence[bytes], records: Sequence[Record], epoch: int = 0
    ) -> list[int | None]:
        return await self._do(self._requests.write_many(keys, records, epoch))

    async def put(self, key: bytes, record: Record) -> bool:
        return (await self.write_many([as_bytes(key)], [record]))[0] is None

    async def delete(self, key: bytes) -> bool:
        return await self.delete_many([key]) > 0

    async def delete_many(self, keys: Iterable[bytes], epoch: int = 0) -> int:
        return await self._do(self._requests.delete_many(keys, epoch))

    async def purge_many(self, items: Iterable[tuple[bytes, int]], epoch: int = 0) -> int:
        return await self._do(self._requests.purge_many(items, epoch))

    async def scan_items(self) -> list[tuple[bytes, Record]]:
        """Every (key, record) under the prefix (``RedisStore.scan``, read at once)."""
        return await self._steps(self._requests.scan())

    async def scan_versions(
        self, epoch: int = 0
    ) -> tuple[list[bytes], list[int], list[bool], list[int]]:
        return await self._steps(self._requests.scan_versions(epoch))

    async def keys(self) -> list[bytes]:
        return await self._steps(self._requests.keys())

    async def count(self) -> int:
        return await self._steps(self._requests.count())

    # -------------------------------------------------------------- hints

    async def put_hints(
        self, owner: str, items: Iterable[tuple[bytes, Record]], epoch: int = 0
    ) -> None:
        await self._do(self._requests.put_hints(owner, items, epoch))

    async def read_hints(self) -> list[tuple[str, bytes, Record]]:
        return await self._steps(self._requests.read_hints())

    async def delete_hints(self, owner: str, keys: Iterable[bytes], epoch: int = 0) -> None:
        await self._do(self._requests.delete_hints(owner, keys, epoch))

    async def delete_hints_if(
        self, owner: str, items: Iterable[tuple[bytes, int]], epoch: int = 0
    ) -> int:
        return await self._do(self._requests.delete_hints_if(owner, items, epoch))

    async def count_hints(self) -> int:
        return await self._steps(self._requests.count_hints())

    # ------------------------------------------------------------ layout

    async def read_layout(self) -> tuple[int, bytes | None]:
        return await self._do(self._requests.read_layout())

    async def swap_layout(self, expected: int, epoch: int, data: bytes) -> tuple[int, bytes | None]:
        return await self._do(self._requests.swap_layout(expected, epoch, data))

    # ---------------------------------------------------------- lifecycle

    async def clear(self) -> int:
        """Delete this store's records, hints, counters and layout (no other prefix's); how many."""
        return await self._steps(self._requests.clear(as_bytes(self.prefix, "prefix")))

    async def ping(self) -> bool:
        return await self._do(self._requests.ping())

    async def close(self) -> None:
        """Close the connections, if this store opened them (from a URL)."""
        if self._owns_client:
            # the client closes the kept connections too (in use, to its pool), which
            # holds them only weakly: they are let go after
            await self._client.aclose()
            self._wire._kept.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
