"""Large values over real redis-servers: refused before anything is sent, or stored with no
node suspected.

Each server's ``INFO commandstats`` tells whether it saw a command: a refused
call must leave every count unchanged.
"""

from __future__ import annotations

import pytest
import redis

from cvstore import Node, RedisStore
from cvstore.stores.redis import JSONCodec
from tests.support.drivers import Cluster

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster

MiB = 1024 * 1024
LIMIT = 8 * MiB  # the default max_value_bytes


def commands_seen(clients) -> list[int]:
    """Per server, the calls of every command but INFO itself."""
    return [
        sum(
            stats["calls"]
            for name, stats in client.info("commandstats").items()
            if name != "cmdstat_info"
        )
        for client in clients
    ]


@pytest.fixture
def spies(start_redis):
    servers = start_redis(3)
    clients = [redis.Redis(port=s.port) for s in servers]
    yield servers, clients
    for client in clients:
        client.close()


def test_a_value_over_the_limit_is_refused_before_any_server_sees_a_command(spies, make_cluster):
    servers, clients = spies
    c = make_cluster(servers)  # the default limit and RedisStore timeout (0.5 s)
    c.put("small", "v")
    over = b"x" * (LIMIT + 1)
    before = commands_seen(clients)
    with pytest.raises(ValueError, match=r"max_value_bytes \(8,388,608 bytes\), got 8,388,609"):
        c.put("big", over)
    with pytest.raises(ValueError, match=r"^mapping\['big'\] must be at most"):
        c.put_many({"a": "v", "big": over, "c": "v"})
    with pytest.raises(ValueError, match=r"got 8,388,609 bytes"):
        c.update(big=over)
    with pytest.raises(ValueError, match=r"^key must be at most 65,536 bytes"):
        c.get("k" * (64 * 1024 + 1))
    assert commands_seen(clients) == before  # nothing was sent
    assert c.suspected == () and len(c) == 1


def test_a_value_at_the_limit_is_stored_and_read_back_with_no_node_suspected(spies, make_cluster):
    servers, clients = spies
    # A timeout well above the transfer's: on a busy machine 0.5 s (the default) is not
    # always enough for three 8 MiB values (see the README's "Sizes"), and this test is
    # about the values and the script calls, not about the machine's speed.
    c = make_cluster(servers, timeout=10.0)
    at = bytes(range(256)) * (LIMIT // 256)
    c.put("big", at, consistency="all")
    for level in ("one", "quorum", "all"):
        assert c.get("big", consistency=level) == at
    c.put_many({"big2": at, "small": b"s"}, consistency="all")
    assert c.get_many(["big2", "small"], consistency="all") == {"big2": at, "small": b"s"}
    # a batch of large values goes in script calls of at most 16 MiB each, so no
    # server reads and copies more than that before it answers
    scripts = [client.info("commandstats")["cmdstat_evalsha"]["calls"] for client in clients]
    c.put_many({"b1": at, "b2": at, "b3": at}, consistency="all")
    after = [client.info("commandstats")["cmdstat_evalsha"]["calls"] for client in clients]
    assert [b - a for a, b in zip(scripts, after)] == [3, 3, 3]
    assert c.get_many(["b1", "b2", "b3"], consistency="all") == dict.fromkeys(
        ["b1", "b2", "b3"], at
    )
    assert c.suspected == ()
    assert all(row["errors"] == 0 for row in c.stats().per_node.values())
    assert [client.strlen(c.node("r1").store.prefix.encode() + b"r:big") for client in clients] == [
        13 + LIMIT
    ] * 3  # the record: version, tag and the value, on every server


def test_a_codec_value_is_measured_encoded_and_a_batch_with_one_too_large_sends_nothing(
    spies, prefix
):
    servers, clients = spies
    nodes = [
        Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=prefix, codec=JSONCodec()))
        for i, s in enumerate(servers)
    ]
    c = Cluster(nodes, max_value_bytes=1000)
    fits = {"text": "x" * 989}  # {"text":"x…"}: 1,000 bytes of JSON
    c.put_many({f"k{i}": fits for i in range(300)})  # (two script calls per server)
    before = commands_seen(clients)
    batch = {f"k{i}": {"text": "y"} for i in range(300)}
    batch["k299"] = {"text": "x" * 990}
    with pytest.raises(ValueError, match=r"^mapping\['k299'\] .*got 1,001 bytes$"):
        c.put_many(batch)
    assert commands_seen(clients) == before
    assert c.get_many([f"k{i}" for i in range(300)], consistency="all") == {
        f"k{i}": fits for i in range(300)
    }
    assert c.suspected == ()
    c.close()
    for node in nodes:
        node.store.close()
