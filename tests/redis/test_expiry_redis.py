"""Expiry over real redis-servers: set on every replica in the write's own step, reclaimed by Redis."""

from __future__ import annotations

import redis
from waiting import wait_until

from cvstore import Cluster, Node, RedisStore


def test_an_expired_key_is_absent_everywhere_and_redis_reclaims_it(start_redis, prefix):
    servers = start_redis(3)
    nodes = [
        Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=prefix)) for i, s in enumerate(servers)
    ]
    # expired records linger 1 s (the grace period), then each server drops them itself
    c = Cluster(nodes, hint_window=0.5, tombstone_grace=1.0)
    c.put("k", "v", ttl=1.0)
    c.put_many({f"b{i}": str(i) for i in range(20)}, ttl=1.0)
    c.put("forever", "v")
    spies = [redis.Redis(port=s.port) for s in servers]
    raw = prefix.encode() + b"r:k"
    # the expiry is on every replica already: set in the same script call as the write
    ttls = [spy.pttl(raw) for spy in spies]
    assert all(1000 <= t <= 2000 for t in ttls), ttls
    assert all(spy.pttl(prefix.encode() + b"r:forever") == -1 for spy in spies)
    assert c.get("k", consistency="all") == "v" and len(c) == 22
    assert wait_until(lambda: c.get("k", consistency="quorum") is None, seconds=10, step=0.05)
    for level in ("one", "quorum", "all"):
        assert c.get("k", consistency=level) is None
    assert c.get_many([f"b{i}" for i in range(20)], consistency="all") == {}
    assert len(c) == 1 and list(c) == ["forever"]
    assert all(spy.exists(raw) for spy in spies)  # lingering, as a tombstone would
    assert wait_until(lambda: not any(spy.exists(raw) for spy in spies), seconds=10, step=0.05)
    assert c.get("forever", consistency="all") == "v"
    c.put("k", "again")  # a write without a ttl: permanent, no expiry on the key
    assert all(spy.pttl(raw) == -1 for spy in spies)
    for spy in spies:
        spy.close()
    c.close()
    for node in nodes:
        node.store.close()
