"""AsyncRedisStore: the RedisStore for asyncio code, over redis.asyncio.

It sends the same requests and reads the same replies as ``RedisStore``
(``requests``): the same records, script, codecs, prefixes, layout and
fencing, so sync and async clients share one cluster's data.  Nothing is
ever unpickled.

Each call takes a pooled connection, writes its request, reads every reply
and gives the connection back.  A call that is cancelled or times out while
a reply is on its way disconnects that connection, so a late reply is never
read as the next call's.  Both socket timeouts are `timeout` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from cvstore.core.records import Record
from cvstore.stores.base import AsyncStore
from cvstore.stores.redis.codec import Codec
from cvstore.stores.redis.requests import Request, Steps, as_bytes
from cvstore.stores.redis.resp import Command, packed
from cvstore.stores.redis.store import DEFAULT_PREFIX, RedisClientStore
from cvstore.stores.redis.wire import LOAD_SCRIPT, Failures, check_redis

__all__ = ("AsyncRedisStore",)

T = TypeVar("T")


class AsyncWire(Failures):
    """The asyncio connection side of one AsyncRedisStore."""

    def __init__(self, redis: Any, client: Any, address: str, stats: Any) -> None:
        super().__init__(redis, address, stats)
        self._client = client

    async def call(self, op: str, commands: list[Command]) -> list[Any]:
        """Write `commands` on one pooled connection, read every reply, give it back."""
        started = time.perf_counter()
        pool = self._client.connection_pool
        try:
            conn = await pool.get_connection()
        except self._errors as exc:
            raise self.fail(op, exc, started) from exc
        try:
            replies = await self._exchange(conn, commands)
        except self._errors as exc:
            await pool.release(conn)
            raise self.fail(op, exc, started) from exc
        except BaseException:  # cancelled or fenced: a reply may still be on its way
            await _drop(conn)
            await pool.release(conn)
            raise
        await pool.release(conn)
        self.stats.ok(time.perf_counter() - started)
        return replies

    async def _exchange(self, conn: Any, commands: list[Command], retry: bool = True) -> list[Any]:
        await conn.send_packed_command(packed(commands), check_health=False)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except self._reply_error as exc:
                replies.append(exc)
        lost = self.lost_scripts(replies)
        if lost and retry:  # the server lost the script: load it, send those calls again
            await conn.send_packed_command(LOAD_SCRIPT.chunks(), check_health=False)
            self.check_sha(await conn.read_response())
            again = [commands[i] for i in lost]
            for i, reply in zip(lost, await self._exchange(conn, again, retry=False)):
                replies[i] = reply
        return self.raise_errors(replies)


async def _drop(conn: Any) -> None:
    try:
        await conn.disconnect(nowait=True)
    except Exception:  # noqa: BLE001 - it is being thrown away anyway
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
    ) -> None:
        redis = check_redis()
        from redis import asyncio as redis_asyncio

        self._setup(
            redis, redis_asyncio.Redis, AsyncWire, url_or_client, prefix, timeout, codec, name
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
            await self._client.aclose()

    async def __aenter__(self) -> AsyncRedisStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
