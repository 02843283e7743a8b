"""An asyncio caller that only retries must not keep a healed cluster down (issue 21 report).

Found by the network-fault runs (tests/redis/test_network_faults.py): a call on an
``AsyncCluster`` whose replicas are all suspected is refused with ``UnavailableError``
without awaiting anything, so a caller that retries in a loop never gives the event loop a
turn; the background prober never runs, the healed nodes stay suspected and every retry is
refused.  Marked xfail (strict) until the library yields there: this test then passes and
the mark must go.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from cvstore import AsyncCluster, AsyncRedisStore, Node, UnavailableError
from tests.support.faultproxy import FaultProxy

PATIENCE = 5.0  # s of retrying (a healed node is probed again within 0.05 s)


def test_a_caller_that_only_retries_sees_the_cluster_come_back(start_redis, prefix):
    servers = start_redis(3)

    async def main() -> str | None:
        with FaultProxy() as proxy:
            links = [proxy.link("127.0.0.1", s.port) for s in servers]
            nodes = [
                Node(
                    f"r{i + 1}",
                    store=AsyncRedisStore(
                        f"redis://127.0.0.1:{link.port}/0", prefix=prefix, timeout=0.25
                    ),
                )
                for i, link in enumerate(links)
            ]
            cluster = AsyncCluster(
                nodes, shared=False, probe_interval=0.05, max_probe_interval=0.05
            )
            await cluster.open()
            try:
                await cluster.put("k", "v", consistency="all")  # on every replica: `one` reads any
                for link in links:
                    link.partition()
                with pytest.raises(UnavailableError):
                    for _ in range(10):  # until every replica is suspected
                        await cluster.get("k", consistency="one")
                for link in links:
                    link.heal()
                deadline = time.monotonic() + PATIENCE  # as tests/support/waiting.py waits
                while time.monotonic() < deadline:
                    try:
                        return await cluster.get("k", consistency="one")
                    except UnavailableError:
                        continue
                return None
            finally:
                await cluster.close()
                for node in nodes:
                    await node.store.close()

    assert asyncio.run(main()) == "v"
