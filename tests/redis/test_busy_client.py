"""A busy client is not a dead server: pools, waits for a connection, and what a caller sees.

Many callers on one cluster share each store's connections (``max_connections``
a store, default 100).  A call that finds them all busy waits for one (up to
``pool_timeout``) and, past that, fails alone with a StoreError that is not
``unreachable``: no node is ever suspected for it.  The sync driver never waits
for a connection while it holds one, so a small pool cannot deadlock threads
that send to the replicas in different orders.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from cvstore import Node, RedisStore, UnavailableError
from tests.support.drivers import Cluster, raw

BOTH_DRIVERS = True


def _suspicions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "suspected down" in r.getMessage()]


def _run_threads(count: int, work) -> list[BaseException]:
    """Run `work(i)` in `count` threads started together; the exceptions they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    return errors


def _nodes(servers, prefix: str, **store_options) -> list[Node]:
    return [
        Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=prefix, **store_options))
        for i, s in enumerate(servers)
    ]


@pytest.mark.slow
def test_200_threads_on_one_cluster_all_succeed_and_suspect_nobody(
    driver, start_redis, prefix, caplog
):
    """More callers than the pool has connections wait for one; every node stays up."""
    caplog.set_level(logging.WARNING, logger="cvstore")
    servers = start_redis(3)
    # timeout 10 s: the 2-core test machine is busy; the point is the pool, not the timer
    nodes = _nodes(servers, prefix, timeout=10.0)
    cluster = Cluster(nodes, replication_factor=3)
    try:

        def work(t: int) -> None:
            for j in range(10):
                cluster.put(f"t{t}:{j}", f"v{t}:{j}")
            for j in range(10):
                assert cluster.get(f"t{t}:{j}") == f"v{t}:{j}"

        errors = _run_threads(200, work)
        assert errors == []
        assert cluster.suspected == ()
        assert _suspicions(caplog) == []
        assert all(node.is_up for node in cluster.nodes)
        waited = sum(raw(node).stats()["pool_waits"] for node in cluster.nodes)
        if driver == "sync":  # the async twins count their own waits
            assert waited > 0  # the pool (100 a store) really was exhausted
    finally:
        cluster.close()
        for node in nodes:
            node.store.close()


@pytest.mark.slow
def test_a_pool_of_two_cannot_deadlock_threads_sending_in_different_orders(
    driver, start_redis, prefix, caplog
):
    """Each key's replicas come in its own order; 40 threads share 2 connections a store."""
    caplog.set_level(logging.WARNING, logger="cvstore")
    servers = start_redis(3)
    nodes = _nodes(servers, prefix, timeout=2.0, max_connections=2, pool_timeout=20.0)
    cluster = Cluster(nodes, replication_factor=3)
    try:
        orders = {tuple(n.name for n in cluster.get_nodes_for_key(f"k{i}")) for i in range(50)}
        assert len(orders) > 1  # the threads do take the stores in different orders

        def work(t: int) -> None:
            for j in range(10):
                cluster.put(f"k{(t * 7 + j) % 50}", str(t))
                cluster.get(f"k{(t + j) % 50}")

        errors = _run_threads(40, work)
        assert errors == []
        assert _suspicions(caplog) == []
        assert all(raw(node).stats()["no_connection"] == 0 for node in cluster.nodes)
    finally:
        cluster.close()
        for node in nodes:
            node.store.close()


def test_a_cluster_whose_calls_find_no_connection_suspects_nobody(driver, start_redis, prefix):
    """Past the wait, a write fails with UnavailableError naming the pool; no node goes down."""
    servers = start_redis(3)
    nodes = _nodes(servers, prefix, max_connections=1, pool_timeout=0)
    cluster = Cluster(nodes, replication_factor=3)
    try:
        errors = _run_threads(30, lambda t: [cluster.put(f"k{t}:{j}", "v") for j in range(5)])
        assert all(isinstance(e, UnavailableError) for e in errors), errors[:3]
        assert all("no free connection" in str(e) for e in errors)
        assert cluster.suspected == ()
        assert all(node.is_up for node in cluster.nodes)
        cluster.put("after", "v")  # quiet again: it works
    finally:
        cluster.close()
        for node in nodes:
            node.store.close()


@pytest.mark.slow
def test_200_callers_and_a_client_with_a_clock_ahead_read_their_writes_during_a_change(
    driver, start_redis, prefix, caplog
):
    """docs/membership.md, step 3, under load: while a change is open, reads have their
    level's count of the old and of the new replicas.  200 threads on one client (tasks of one
    AsyncCluster for the async driver) and a second client whose clock runs 800 ms ahead write
    the same keys in turn; every quorum read by either returns the last acknowledged write, the
    joining node (a new replica only) is read, and after the commit every key holds it."""
    from cvstore.core.layout import NodeSpec
    from cvstore.versions import HybridClock

    caplog.set_level(logging.WARNING, logger="cvstore")
    servers = start_redis(4)
    creator = Cluster.create(_nodes(servers[:3], prefix), replication_factor=3)
    layout = creator.layout
    creator.close()
    joining = NodeSpec("r4", address=layout.nodes[0].address.replace(
        f":{servers[0].port}/", f":{servers[3].port}/"), prefix=prefix)  # fmt: skip
    target = layout.begin((*layout.nodes, joining), "add", "r4")  # left open: never committed here
    for server in servers:
        with RedisStore(server.url(), prefix=prefix) as store:
            store.swap_layout(store.read_layout()[0], target.epoch, target.to_bytes())
    # timeout 10 s: the 2-core test machine is busy; the point is what reads return
    busy = Cluster.join([servers[0].url()], prefix=prefix, timeout=10.0, read_policy="adaptive")
    ahead = Cluster.join(
        [servers[1].url()], prefix=prefix, timeout=10.0,
        clock=HybridClock(writer_id=2, wall_ms=lambda: int(time.time() * 1000) + 800),
    )  # fmt: skip
    try:
        assert busy.layout.changing and ahead.layout.changing
        keys = {t: [f"t{t}:{j}" for j in range(3)] for t in range(200)}

        def work(t: int) -> None:
            for key in keys[t]:
                ahead.put(key, f"ahead:{key}", consistency="quorum")
                assert busy.get(key, consistency="quorum") == f"ahead:{key}"
                busy.put(key, f"busy:{key}", consistency="quorum")  # restamped above `ahead`'s
                assert ahead.get(key, consistency="quorum") == f"busy:{key}"
                assert busy.get(key, consistency="quorum") == f"busy:{key}"

        errors = _run_threads(200, work)
        assert errors == []
        assert busy.suspected == () and _suspicions(caplog) == []
        assert busy.layout.epoch == ahead.layout.epoch == target.epoch  # still open
        expected = {key: f"busy:{key}" for mine in keys.values() for key in mine}
        assert busy.get_many(list(expected), consistency="quorum") == expected
        ahead.finish_change()
        # r4 joins busy's members with the store it read through during the change
        assert busy.stats().per_node["r4"]["records_read"] > 0  # reads asked a new replica
        assert busy.get_many(list(expected), consistency="all") == expected
        assert busy.layout.epoch == target.epoch + 1
    finally:
        for client in (busy, ahead):
            client.close()
