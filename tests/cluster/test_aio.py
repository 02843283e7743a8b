"""What only the asyncio driver does: early answers, late failures, cancellation, its lifecycle.

Everything the two drivers share runs under both from the contract suites
(``BOTH_DRIVERS``); these tests drive ``AsyncCluster`` directly with stores
whose answers the test times: an asyncio store over a MemoryStore that
waits before answering, and can fail as an unreachable server does.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from cvstore import (
    AsyncCluster,
    ClusterClosedError,
    MemoryStore,
    Node,
    StoreError,
    UnavailableError,
)
from cvstore.stores.base import AsyncStore


class SlowStore(AsyncStore):
    """An asyncio store over a MemoryStore that answers after `delay` seconds, or fails."""

    def __init__(self, delay: float = 0.0) -> None:
        self.inner = MemoryStore()
        self.delay = delay
        self.broken = False
        self.calls = 0
        self.gate: asyncio.Event | None = None  # when set, calls wait for it

    async def _wait(self) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.broken:
            raise StoreError("connection refused", node=self.name)

    async def get(self, key):
        await self._wait()
        return self.inner.get(key)

    async def get_many(self, keys, epoch=0):
        await self._wait()
        return self.inner.get_many(keys, epoch)

    async def write_many(self, keys, records, epoch=0):
        await self._wait()
        return self.inner.write_many(keys, records, epoch)

    async def delete_many(self, keys, epoch=0):
        await self._wait()
        return self.inner.delete_many(keys, epoch)

    async def purge_many(self, items, epoch=0):
        await self._wait()
        return self.inner.purge_many(items, epoch)

    async def scan_versions(self, epoch=0):
        await self._wait()
        return self.inner.scan_versions(epoch)

    async def keys(self):
        await self._wait()
        return self.inner.keys()

    async def count(self):
        await self._wait()
        return self.inner.count()

    async def put_hints(self, owner, items, epoch=0):
        await self._wait()
        self.inner.put_hints(owner, items, epoch)

    async def read_hints(self):
        await self._wait()
        return self.inner.read_hints()

    async def delete_hints(self, owner, keys, epoch=0):
        await self._wait()
        self.inner.delete_hints(owner, keys, epoch)

    async def count_hints(self):
        await self._wait()
        return self.inner.count_hints()

    async def read_layout(self):
        await self._wait()
        return self.inner.read_layout()

    async def swap_layout(self, expected, epoch, data):
        await self._wait()
        return self.inner.swap_layout(expected, epoch, data)

    async def ping(self):
        await self._wait()
        return True


def run(coro):
    return asyncio.run(coro)


def three(slow: SlowStore) -> list[Node]:
    return [
        Node("fast1", store=SlowStore()),
        Node("fast2", store=SlowStore()),
        Node("slow", store=slow),
    ]


class TestEarlyAnswers:
    def test_a_write_returns_when_its_level_is_met_and_the_rest_finish_later(self):
        async def main():
            slow = SlowStore()
            async with AsyncCluster(three(slow), shared=False) as cluster:
                slow.gate = asyncio.Event()  # the slow replica answers only when let go
                await asyncio.wait_for(cluster.put("k", "v", consistency="quorum"), timeout=10)
                assert slow.inner.get(b"k") is None  # its write is still in flight
                assert len(cluster._background) == 1
                slow.gate.set()
                await asyncio.wait_for(asyncio.gather(*cluster._background), timeout=10)
                assert slow.inner.get(b"k").value == "v"  # ...and it finished

        run(main())

    def test_a_write_that_fails_after_the_call_returned_is_still_hinted(self):
        async def main():
            slow = SlowStore()
            async with AsyncCluster(
                three(slow), probe_interval=60, max_probe_interval=60
            ) as cluster:
                slow.gate = asyncio.Event()
                await cluster.put("k", "v")
                slow.broken = True
                slow.gate.set()
                await asyncio.gather(*cluster._background)
                assert cluster.suspected == ("slow",)  # the late failure counted
                stats = await cluster.stats()
                assert stats.hints_pending == 1  # and its copy waits as a hint
                slow.broken = False
                assert await cluster.probe() == ["slow"]
                assert slow.inner.get(b"k").value == "v"

        run(main())

    def test_an_all_write_waits_for_every_replica(self):
        async def main():
            slow = SlowStore(delay=0.05)
            async with AsyncCluster(three(slow)) as cluster:
                await cluster.put("k", "v", consistency="all")
                assert slow.inner.get(b"k").value == "v" and not cluster._background

        run(main())


class TestCancellation:
    def test_a_cancelled_call_leaves_what_a_failed_one_may_and_the_cluster_goes_on(self):
        async def main():
            stores = [SlowStore(), SlowStore(), SlowStore()]
            nodes = [Node(f"n{i}", store=s) for i, s in enumerate(stores)]
            async with AsyncCluster(nodes) as cluster:
                gate = asyncio.Event()
                for store in stores:
                    store.gate = gate
                call = asyncio.ensure_future(cluster.put("k", "v", consistency="all"))
                await asyncio.sleep(0.05)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
                for store in stores:
                    store.gate = None
                assert not cluster._background  # nothing of the call left running
                assert await cluster.get("k") is None  # not written: the requests were cancelled
                await cluster.put("k", "after")
                assert await cluster.get("k", consistency="all") == "after"

        run(main())

    def test_close_waits_for_writes_finishing_in_the_background(self):
        async def main():
            slow = SlowStore()
            cluster = AsyncCluster(three(slow))
            await cluster.open()
            slow.gate = asyncio.Event()
            await cluster.put("k", "v")
            asyncio.get_running_loop().call_later(0.05, slow.gate.set)
            await cluster.close()
            assert slow.inner.get(b"k").value == "v"
            await cluster.close()  # twice is fine
            with pytest.raises(ClusterClosedError, match="the cluster is closed"):
                await cluster.get("k")

        run(main())


class TestInProcess:
    def test_memory_stores_are_called_on_the_loop_thread_without_a_hop(self):
        seen: set[int] = set()

        class Watched(MemoryStore):
            def write_many(self, keys, records, epoch=0):
                seen.add(threading.get_ident())
                return super().write_many(keys, records, epoch)

        async def main():
            async with AsyncCluster([Node(f"n{i}", store=Watched()) for i in range(3)]) as c:
                await c.put_many({f"k{i}": i for i in range(100)})
                await c.delete("k1")
                return threading.get_ident()

        loop_thread = run(main())
        assert seen == {loop_thread}

    def test_the_calls_and_their_errors_match_the_sync_driver(self):
        async def main():
            async with AsyncCluster([Node(f"n{i}") for i in range(3)]) as c:
                await c.put_many({f"k{i}": i for i in range(10)})
                c.node("n1").fail()
                c.node("n2").fail()
                with pytest.raises(
                    UnavailableError, match="quorum write needs 2 of 3 replicas, 1 alive"
                ):
                    await c.put("k0", "x")
                assert await c.get("k0", consistency="one") == 0
                with pytest.raises(ValueError, match="consistency must be one of"):
                    await c.get("k0", consistency="bogus")
                with pytest.raises(TypeError, match="key must be str or bytes, got int"):
                    await c.get(5)

        run(main())


def test_the_module_example_runs():
    import doctest

    import cvstore.aio

    result = doctest.testmod(cvstore.aio, raise_on_error=False)
    assert result.attempted >= 3 and result.failed == 0


def test_the_mapping_calls_of_the_async_driver():
    async def main():
        async with AsyncCluster([Node(f"n{i}") for i in range(3)]) as c:
            await c.update({"a": "1", "b": "2"}, c="3")
            assert sorted(await c.items()) == [("a", "1"), ("b", "2"), ("c", "3")]
            assert sorted(await c.values()) == ["1", "2", "3"]
            assert await c.setdefault("a", "x") == "1" and await c.setdefault("d", "4") == "4"
            assert await c.pop("d") == "4" and await c.pop("d", None) is None
            with pytest.raises(KeyError):
                await c.pop("d")
            popped = dict([await c.popitem() for _ in range(3)])
            assert popped == {"a": "1", "b": "2", "c": "3"} and await c.count() == 0
            with pytest.raises(KeyError):
                await c.popitem()
            await c.update({f"k{i}": str(i) for i in range(100)})
            await c.clear()
            assert await c.keys() == []
            assert await c.contains("k1") is False

    run(main())
