"""Membership edges on real redis-servers: a corrupt epoch, one server under two names,
a closed client, a join taken back, a node removed while down and brought back.

Runs under both drivers (tests/drivers.py) where the call exists in both.
"""

from __future__ import annotations

import asyncio
import multiprocessing

import membership_workers as workers  # beside the tests: tests/conftest.py puts that folder on sys.path
import pytest
import redis
from drivers import Cluster, raw  # the sync or the async driver (tests/drivers.py)

import cvstore
from cvstore import ClusterClosedError, Node, NodeExistsError, RedisStore
from cvstore.core.layout import LayoutError

BOTH_DRIVERS = True
spawn = multiprocessing.get_context("spawn")


def store(server, prefix: str) -> RedisStore:
    return RedisStore(server.url(), prefix=prefix, timeout=1.0)


def epoch_of(server, prefix: str) -> int:
    with store(server, prefix) as s:
        return s.read_layout()[0]


# ------------------------------------------------------ 18.8: a corrupt epoch


def test_a_node_with_a_corrupt_epoch_fails_alone(start_redis, make_cluster, prefix):
    servers = start_redis(3)
    cluster = make_cluster(servers)
    keys = [f"k{i}" for i in range(200)]
    cluster.put_many({k: "0" for k in keys})
    client = redis.Redis.from_url(servers[1].url())
    client.set(f"{prefix}m:epoch", 1_000_000)  # r2's epoch, far ahead of any layout
    client.close()
    for i, key in enumerate(keys):
        cluster.put(key, str(i))
        assert cluster.get(key) == str(i)
    row = cluster.stats().per_node["r2"]
    assert row["epoch_ahead"] == 1_000_000 and row["ahead_refusals"] > 0
    assert not row["suspected"]  # an answering node, not a dead one
    fresh = Cluster.join([servers[0].url()], prefix=prefix, timeout=1.0)
    try:
        assert fresh.get_many(keys) == {key: str(i) for i, key in enumerate(keys)}
        fresh.put("new", "v")
        assert fresh.get("new") == "v"
    finally:
        fresh.close()
    with pytest.raises(cvstore.UnavailableError, match="r2"):
        cluster.get("k1", consistency="all")  # the level that needs r2 says why it failed
