"""Membership edges on real redis-servers: a corrupt epoch, one server under two names,
a closed client, a join taken back, a node removed while down and brought back.

Runs under both drivers (tests/drivers.py) where the call exists in both.
"""

from __future__ import annotations

import asyncio
import dataclasses
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


# ------------------------------------------------ 18.6: one server, two names


def test_one_server_under_two_names_is_refused(start_redis, make_cluster, prefix):
    servers = start_redis(3)
    cluster = make_cluster(servers[:2], replication_factor=2)
    cluster.put_many({f"k{i}": "v" for i in range(100)})
    twin = store(servers[0], prefix)  # r1's server and prefix, under another name
    with pytest.raises(NodeExistsError) as info:
        cluster.add_node(Node("r3", store=twin))
    message = str(info.value)
    assert "'r1'" in message and "'r3'" in message and servers[0].url() in message
    assert cluster.layout.epoch == 1 and [n.name for n in cluster.nodes] == ["r1", "r2"]
    assert epoch_of(servers[0], prefix) == 1 and epoch_of(servers[2], prefix) == 0
    # the same server under another prefix is another node
    cluster.add_node(Node("r3", store=store(servers[0], prefix + "other:")))
    assert cluster.layout.names == ("r1", "r2", "r3")
    twin.close()


def test_a_repeated_address_is_refused_when_creating(start_redis, prefix):
    (server, other) = start_redis(2)
    for make in (Cluster, Cluster.create):
        nodes = [
            Node("a", store=store(server, prefix)),
            Node("b", store=store(other, prefix)),
            Node("c", store=store(server, prefix)),
        ]
        with pytest.raises(NodeExistsError, match=r"'a' and 'c' are the same server: both at "):
            make(nodes)
        for node in nodes:
            node.store.close()
    assert epoch_of(server, prefix) == 0 and epoch_of(other, prefix) == 0  # nothing written


def test_joining_a_layout_with_one_server_under_two_names_is_refused(start_redis, prefix):
    servers = start_redis(2)
    creator = cvstore.Cluster.create(
        [Node(f"r{i + 1}", store=store(s, prefix)) for i, s in enumerate(servers)]
    )
    layout = creator.layout
    # a layout as an older client could have written it: r3 at r1's address
    bad = dataclasses.replace(
        layout,
        epoch=layout.epoch + 1,
        nodes=(*layout.nodes, dataclasses.replace(layout.nodes[0], name="r3")),
    )
    for server in servers:
        with store(server, prefix) as s:
            assert s.swap_layout(layout.epoch, bad.epoch, bad.to_bytes())[0] == bad.epoch
    with pytest.raises(
        LayoutError, match=r"'r1' and 'r3' .* same server: both at " + servers[0].url()
    ):
        Cluster.join([servers[1].url()], prefix=prefix)
    creator.close()
    for node in creator.nodes:
        node.store.close()


# ------------------------------------------------ 19.6: join with one URL


def test_join_takes_a_single_url_as_one_seed(start_redis, make_cluster, prefix):
    servers = start_redis(2)
    cluster = make_cluster(servers, replication_factor=2)
    cluster.put("k", "v")
    joined = Cluster.join(servers[1].url(), prefix=prefix)
    try:
        assert joined.get("k") == "v" and [n.name for n in joined.nodes] == ["r1", "r2"]
    finally:
        joined.close()
    with pytest.raises(
        TypeError, match="seeds must be a node URL, a store, or an iterable .*got bytes"
    ):
        Cluster.join(servers[1].url().encode(), prefix=prefix)
