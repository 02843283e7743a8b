"""Membership changes made by a client whose layout is old (issue 21, item 7).

Two clients of one cluster kept on the nodes: one changes the membership, the
other, idle meanwhile, then makes a change that is only right against the
newest layout.  Before, the idle client checked the node's name against its
own old layout and refused (``NodeNotFoundError`` / ``NodeExistsError``).
Runs under both drivers.
"""

from __future__ import annotations

from cvstore import Node, RedisStore
from tests.support.drivers import Cluster  # the sync or the async driver

BOTH_DRIVERS = True


def node(name: str, server, prefix: str) -> Node:
    return Node(name, store=RedisStore(server.url(), prefix=prefix, timeout=1.0))


def test_an_idle_client_removes_a_node_another_client_added(start_redis, make_cluster, prefix):
    servers = start_redis(4)
    busy = make_cluster(servers[:3])
    idle = make_cluster(servers[:3])
    busy.add_node(node("r4", servers[3], prefix))
    assert idle.layout.epoch == 1  # it has not looked since
    report = idle.remove_node("r4")
    assert report.action == "remove"
    assert idle.layout.names == ("r1", "r2", "r3")


def test_an_idle_client_reweights_a_node_another_client_added(start_redis, make_cluster, prefix):
    servers = start_redis(4)
    busy = make_cluster(servers[:3])
    idle = make_cluster(servers[:3])
    busy.add_node(node("r4", servers[3], prefix))
    report = idle.set_weight("r4", 2.0)
    assert report.action == "weight"
    assert idle.layout.spec("r4").weight == 2.0


def test_an_idle_client_adds_back_a_node_another_client_removed(start_redis, make_cluster, prefix):
    servers = start_redis(4)
    busy = make_cluster(servers[:3])
    busy.add_node(node("r4", servers[3], prefix))
    idle = Cluster.join([servers[0].url()], prefix=prefix, timeout=1.0)
    try:
        assert "r4" in idle.layout.names
        busy.remove_node("r4")
        for server in servers[3:]:  # r4 left; clear it so it may join again
            with RedisStore(server.url(), prefix=prefix) as leftover:
                leftover.clear()
        report = idle.add_node(node("r4", servers[3], prefix))
        assert report.action == "add"
        assert idle.layout.names == ("r1", "r2", "r3", "r4")
    finally:
        idle.close()
