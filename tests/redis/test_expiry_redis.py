"""Expiry over real redis-servers: absent once expired, kept as a tombstone is, purged by repair.

Servers never expire a record on their own (no ``PEXPIREAT``): an expired
record on one replica is what keeps an older copy on another replica from
coming back, so it goes only when ``repair()`` could purge a tombstone.
"""

from __future__ import annotations

import time

import redis

from cvstore.versions import HybridClock
from tests.support.drivers import raw

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster

KEYS = [f"k{i}" for i in range(120)]


def test_an_expired_key_is_absent_everywhere_and_repair_reclaims_it(
    start_redis, make_cluster, prefix
):
    servers = start_redis(3)
    wall = [int(time.time() * 1000)]  # the writer's wall clock, moved by the test
    clock = HybridClock(writer_id=1, wall_ms=lambda: wall[0])
    c = make_cluster(servers, hint_window=0.5, tombstone_grace=1.0, clock=clock)
    c.put("k", "v", ttl=0.5)
    c.put_many({f"b{i}": str(i) for i in range(20)}, ttl=0.5)
    c.put("forever", "v")
    spies = [redis.Redis(port=s.port) for s in servers]
    raw_k = prefix.encode() + b"r:k"
    # no server-side expiry: the record stays until repair purges it
    assert all(spy.pttl(raw_k) == -1 for spy in spies)
    assert c.get("k", consistency="all") == "v" and len(c) == 22
    wall[0] += 600  # the keys expire
    for level in ("one", "quorum", "all"):
        assert c.get("k", consistency=level) is None
    assert c.get_many([f"b{i}" for i in range(20)], consistency="all") == {}
    assert len(c) == 1 and list(c) == ["forever"]
    assert c.repair().purged == 0  # within the grace period: kept, as a tombstone is
    assert all(spy.exists(raw_k) for spy in spies)
    wall[0] += 1000  # expired for longer than the grace period
    time.sleep(0.2)
    assert all(spy.exists(raw_k) for spy in spies)  # the servers keep it ...
    report = c.repair()  # ... until repair, with every replica current, purges it
    assert report.complete and report.purged == 21
    assert not any(spy.exists(raw_k) for spy in spies)
    assert c.get("forever", consistency="all") == "v" and len(c) == 1
    for spy in spies:
        spy.close()


def test_a_server_back_from_an_outage_past_the_grace_period_brings_nothing_back(
    start_redis, make_cluster
):
    # r2 is killed, keys are rewritten with a ttl (or deleted) and expire, the grace
    # period passes, repair runs while r2 is down; r2 restarts from its AOF with the
    # old values.  Nothing comes back, after an expiry exactly as after a delete.
    servers = start_redis(3, appendonly=True)
    c = make_cluster(servers, hint_window=0.3, tombstone_grace=0.6)
    c.put_many({k: "old" for k in KEYS}, consistency="all")
    expiring, deleted = KEYS[: len(KEYS) // 2], KEYS[len(KEYS) // 2 :]
    servers[1].kill()
    c.put_many({k: "new" for k in expiring}, ttl=0.3)
    for k in deleted:
        c.delete(k)
    time.sleep(1.2)  # expired, and dead for longer than the grace period
    report = c.repair()
    assert not report.complete and report.purged == 0
    assert c.get_many(KEYS, consistency="quorum") == {}
    servers[1].restart()
    c.probe()
    assert c.suspected == ()
    assert raw(c.node("r2")).count() == len(KEYS)  # the old values, every one
    for level in ("quorum", "all"):
        assert c.get_many(KEYS, consistency=level) == {}, level
    assert len(c) == 0
    report = c.repair()
    assert report.complete and report.purged == len(KEYS)
    for level in ("one", "quorum", "all"):
        assert c.get_many(KEYS, consistency=level) == {}, level
    assert [raw(node).count() for node in c.nodes] == [0, 0, 0]
