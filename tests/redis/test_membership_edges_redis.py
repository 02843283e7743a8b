"""Membership edges on real redis-servers: a corrupt epoch, one server under two names,
a closed client, a join taken back, a node removed while down and brought back.

Runs under both drivers (tests/support/drivers.py) where the call exists in both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
import redis

import cvstore
from cvstore import ClusterClosedError, Node, NodeExistsError, RedisStore
from cvstore.core.layout import LayoutError
from tests.support import membership_workers as workers
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True


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
    report = cluster.remove_node("r2")  # the way out: the node with the corrupt epoch goes
    assert report.action == "remove" and cluster.layout.names == ("r1", "r3")
    assert cluster.get_many(keys, consistency="all") == {key: str(i) for i, key in enumerate(keys)}


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


# ------------------------------- 18.4 / 18.5: old copies never come back


def delete_and_purge(cluster, keys) -> None:
    """Delete `keys` and let repair() purge their tombstones (tombstone_grace is ~0)."""
    cluster.put_many({k: cvstore.core.records.TOMBSTONE for k in keys})
    time.sleep(0.01)  # past the (1 ms) grace period
    report = cluster.repair()
    assert report.purged >= len(keys), report


def records_on(server, prefix: str) -> int:
    with store(server, prefix) as s:
        return len(s.keys())


@pytest.mark.slow
def test_an_aborted_join_leaves_no_copy_to_bring_back(start_redis, prefix, spawn):
    servers = start_redis(4)
    creator = cvstore.Cluster.create(
        [Node(f"r{i + 1}", store=store(s, prefix)) for i, s in enumerate(servers[:3])]
    )
    keys = [f"k{i}" for i in range(500)]
    creator.put_many({k: "old" for k in keys})
    creator.close()
    for node in creator.nodes:
        node.store.close()
    out = spawn.Queue()
    dying = spawn.Process(
        target=workers.dies_before_commit,
        args=(servers[0].url(), prefix, "r4", servers[3].url(), out),
    )
    dying.start()
    assert out.get(timeout=60) == ("dying", 2)
    dying.join(timeout=30)
    assert dying.exitcode == 17
    streamed = records_on(servers[3], prefix)
    assert streamed > 100  # copies reached r4 before its client died
    other = Cluster.join([servers[1].url()], prefix=prefix, hint_window=0, tombstone_grace=0.001)
    try:
        assert other.layout.changing and other.layout.epoch == 2
        report = other.finish_change(abort=True)
        assert other.layout.names == ("r1", "r2", "r3") and other.layout.epoch == 3
        assert other.repair().complete
        left = records_on(servers[3], prefix)
        delete_and_purge(other, keys)
        other.add_node(Node("r4", store=store(servers[3], prefix)))
        back = other.get_many(keys, consistency="all")
        assert len(back) == 0, f"{len(back)} of 500 deleted keys came back"
        assert other.get_many(keys, consistency="one") == {}
        # the abort cleared the node taken back: no stray was left on it
        assert report.action == "abort" and report.dropped == {"r4": streamed} and left == 0
    finally:
        other.close()


def test_a_node_removed_while_down_is_refused_until_cleared(start_redis, make_cluster, prefix):
    servers = start_redis(4)
    cluster = make_cluster(servers, hint_window=0, tombstone_grace=0.001)
    keys = [f"k{i}" for i in range(500)]
    cluster.put_many({k: "old" for k in keys})
    held = records_on(servers[3], prefix)
    assert held > 100
    servers[3].pause()  # r4 stops answering, its data kept
    try:
        report = cluster.remove_node("r4")
    finally:
        servers[3].resume()
    assert report.action == "remove" and cluster.layout.names == ("r1", "r2", "r3")
    assert records_on(servers[3], prefix) == held  # it missed the removal: its copies are there
    delete_and_purge(cluster, keys)
    epoch = cluster.layout.epoch
    with pytest.raises(LayoutError, match=r"'r4' .* holds \d+ records .* Clear it first") as info:
        cluster.add_node(Node("r4", store=store(servers[3], prefix)))
    assert "forget-node" in str(info.value) and "store.clear()" in str(info.value)
    assert cluster.layout.epoch == epoch and cluster.layout.names == ("r1", "r2", "r3")
    assert epoch_of(servers[0], prefix) == epoch  # nothing changed on the members
    with store(servers[3], prefix) as r4:
        r4.clear()
    cluster.add_node(Node("r4", store=store(servers[3], prefix)))
    assert cluster.layout.names == ("r1", "r2", "r3", "r4")
    assert cluster.get_many(keys, consistency="all") == {}  # 0 of 500 come back


# ------------------------------------------- 18.2: a closed client stays closed


def test_a_closed_client_changes_nothing_on_the_servers(start_redis, prefix):
    from tests.support import drivers

    servers = start_redis(4)
    creator = cvstore.Cluster.create(
        [Node(f"r{i + 1}", store=store(s, prefix)) for i, s in enumerate(servers[:3])]
    )
    creator.put_many({f"k{i}": "v" for i in range(100)})
    extra = store(servers[3], prefix)

    def calls(client):
        return [
            lambda: client.add_node(Node("r4", store=extra)),
            lambda: client.remove_node("r1"),
            lambda: client.set_weight("r1", 2.0),
            lambda: client.finish_change(abort=True),
            lambda: client.probe(),
            lambda: client.repair(),
            lambda: client.put("k1", "new"),
        ]

    if drivers.current == "sync":
        client = cvstore.Cluster.join([servers[0].url()], prefix=prefix)
        client.close()
        for call in calls(client):
            with pytest.raises(ClusterClosedError):
                call()
    else:

        async def main() -> None:
            client = await cvstore.AsyncCluster.join([servers[0].url()], prefix=prefix)
            await client.close()
            for call in calls(client):
                with pytest.raises(ClusterClosedError):
                    await call()

        asyncio.run(main())
    assert [epoch_of(s, prefix) for s in servers] == [1, 1, 1, 0]  # the layout never moved
    assert creator.get("k1", consistency="all") == "v"
    creator.close()
    for node in creator.nodes:
        node.store.close()
    extra.close()
