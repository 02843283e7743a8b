"""A record that does not parse is its replica's failure for that read, never "absent".

Junk bytes are planted with a plain redis-py client on the first replica of
each key (the one ``read_policy="primary"`` asks at ``one``); the two other
replicas hold the value.  Reads go on to another replica, nobody is
suspected, and ``repair()`` overwrites the junk.
"""

from __future__ import annotations

import pytest
import redis

from cvstore import UnavailableError
from tests.support.drivers import raw

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster

KEYS = [f"k{i}" for i in range(60)]
JUNK = [b"\x00junk\x07", b"\x00" * 12 + b"?not a tag", b"", b"\x00" * 12 + b"s\xff\xfe"]


def plant_junk(cluster, servers, prefix) -> dict[str, str]:
    """Junk on each key's first replica; returns key -> the node holding junk."""
    clients = {f"r{i + 1}": redis.Redis(port=s.port) for i, s in enumerate(servers)}
    where = {}
    for i, k in enumerate(KEYS):
        first = cluster.get_nodes_for_key(k)[0].name
        clients[first].set(prefix.encode() + b"r:" + k.encode(), JUNK[i % len(JUNK)])
        where[k] = first
    for client in clients.values():
        client.close()
    return where


def test_a_read_at_one_goes_on_to_a_replica_that_holds_the_value(start_redis, make_cluster, prefix):
    servers = start_redis(3)
    c = make_cluster(servers, read_policy="primary")
    values = {k: f"v-{k}" for k in KEYS}
    c.put_many(values, consistency="all")
    plant_junk(c, servers, prefix)
    for level in ("one", "quorum"):
        assert [c.get(k, consistency=level) for k in KEYS] == list(values.values()), level
        assert c.get_many(KEYS, consistency=level) == values, level
    assert c.suspected == ()
    assert all(node.is_up for node in c.nodes)
    assert c.stats().unreadable >= len(KEYS)
    # at "all" the replica with junk cannot take part: refused, not read as absent
    with pytest.raises(
        UnavailableError, match=r"2 answered \(r\d failed: a record does not parse\)"
    ):
        c.get(KEYS[0], consistency="all")
    assert c.suspected == ()


def test_repair_overwrites_the_records_that_do_not_parse(start_redis, make_cluster, prefix):
    servers = start_redis(3)
    c = make_cluster(servers, read_policy="primary")
    c.put_many({k: f"v-{k}" for k in KEYS}, consistency="all")
    where = plant_junk(c, servers, prefix)
    report = c.repair()
    assert report.complete and report.repaired == len(KEYS)
    for k, name in where.items():
        assert raw(c.node(name)).get(k.encode()).value == f"v-{k}"
    assert c.get_many(KEYS, consistency="all") == {k: f"v-{k}" for k in KEYS}
    assert c.suspected == ()
