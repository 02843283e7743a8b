"""read_policy="adaptive" over real Redis servers: which replicas the reads choose (issue 22).

Three redis-servers, each reached through a link of a fault proxy
(tests/support/faultproxy.py); one link delays every reply by 20 ms.  The
tests count the MGETs each *server* received (its INFO commandstats), not
times: a read the cluster sent to a replica is one MGET there, hedges and
exploration included.

Why the bounds hold: "adaptive" also asks a random non-best replica on
``ADAPTIVE_EXPLORE`` (1 %) of the reads (both drivers hedge: beside the best
ones, at once), and with three replicas half of those go to the slow one:
about 0.5 % of the reads once its latency is known.
A hedge goes to the next-ranked replica, never to one far slower than its
wait (``reads.HEDGE_SPARE``): not to the slow one.  The test allows 8 %
(over 1,500 reads, 120 reads against the 7.5 expected): on a loaded machine the
client's own stalls make a fast replica look slow for a while, and reads go to
the slow one meanwhile.  ``random`` sends it about a third (asserted >= 20 %).  Once the delay is removed, each
exploration of the recovered replica halves its latency average
(``health.LATENCY_ALPHA``): about five explorations, some 1,000 reads, bring
it under ``LATENCY_FLOOR``, where it ties with the others and gets a third
again; the test allows 6,000 reads (30 explorations expected).
"""

from __future__ import annotations

import time

import pytest

from cvstore import Node, RedisStore
from cvstore.core import health, reads
from tests.support.drivers import Cluster, raw
from tests.support.faultproxy import FaultProxy

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster

DELAY = 0.02  # s added to every reply of the slow replica's link
KEYS = [f"k{i}" for i in range(50)]


def mgets(server) -> int:
    """MGETs this server has served (a read of the cluster is one)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port)
    try:
        return int(client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))
    finally:
        client.close()


@pytest.fixture
def proxied(start_redis, prefix):
    """(make(read_policy) -> cluster over three proxied servers, servers, links)."""
    servers = start_redis(3)
    made = []
    with FaultProxy() as proxy:
        links = [proxy.link("127.0.0.1", server.port) for server in servers]

        def make(read_policy):
            nodes = [
                Node(
                    f"r{i + 1}",
                    store=RedisStore(f"redis://127.0.0.1:{link.port}/0", prefix=prefix, timeout=2),
                )
                for i, link in enumerate(links)
            ]
            cluster = Cluster(nodes, replication_factor=3, read_policy=read_policy)
            made.append((cluster, nodes))
            return cluster

        yield make, servers, links
        for cluster, nodes in made:
            views = [raw(node) for node in cluster.nodes]
            cluster.close()
            for store in {id(s): s for s in [*views, *(n.store for n in nodes)]}.values():
                store.close()


def read(cluster, count: int, servers) -> list[int]:
    """`count` reads at "one"; the MGETs each server served meanwhile."""
    before = [mgets(server) for server in servers]
    for i in range(count):
        assert cluster.get(KEYS[i % len(KEYS)], consistency="one") == str(i % len(KEYS))
    return [mgets(server) - b for server, b in zip(servers, before)]


@pytest.mark.slow  # about 5 s: 300 random reads, a third of them 20 ms; up to 6,000 after
def test_the_slow_replica_serves_few_one_reads_and_a_recovered_one_gets_its_share_back(proxied):
    make, servers, links = proxied
    writer = make("random")
    writer.put_many({key: str(i) for i, key in enumerate(KEYS)}, consistency="all")
    links[0].delay(down=DELAY)

    served = read(make("random"), 300, servers)
    assert served[0] >= 0.20 * sum(served), served  # random: about a third

    cluster = make("adaptive")
    read(cluster, 200, servers)  # warm-up: every replica measured
    served = read(cluster, 1500, servers)
    assert sum(served) >= 1500
    assert served[0] <= 0.08 * 1500, (served, reads.ADAPTIVE_EXPLORE)

    links[0].heal()
    for done in range(100, 6001, 100):
        served = read(cluster, 100, servers)
        if served[0] >= 0.15 * sum(served):  # its share back (a third is fair)
            break
    else:
        pytest.fail(f"the recovered replica did not get its share back in 6,000 reads: {served}")
    print(f"recovered replica back after {done} reads")


def test_quorum_reads_leave_the_slow_replica_out_and_answer_the_same(proxied):
    make, servers, links = proxied
    writer = make("random")
    writer.put_many({key: str(i) for i, key in enumerate(KEYS)}, consistency="all")
    links[0].delay(down=DELAY)
    cluster = make("adaptive")
    for i in range(100):  # warm-up
        cluster.get(KEYS[i % len(KEYS)])
    before = [mgets(server) for server in servers]
    for i in range(600):
        assert cluster.get(KEYS[i % len(KEYS)], consistency="quorum") == str(i % len(KEYS))
    served = [mgets(server) - b for server, b in zip(servers, before)]
    # A quorum read asks two of the three: the two fast ones, but for exploration (1 %,
    # half of it to r1) and a loaded machine's noise (see the module docstring); asking
    # in preference order ("random", "primary" and "fastest" at quorum) sends r1 2/3.
    assert served[0] <= 0.15 * 600, served


def test_stats_show_the_score_inputs_and_hedges(proxied, driver):
    make, servers, _ = proxied
    writer = make("random")
    writer.put_many({key: str(i) for i, key in enumerate(KEYS)}, consistency="all")
    cluster = make("adaptive")
    read(cluster, 300, servers)
    stats = cluster.stats()
    for name in ("r1", "r2", "r3"):
        row = stats.per_node[name]
        assert row["read_latency_ms"] is not None and row["read_latency_ms"] > 0
        assert row["reads_outstanding"] == 0
        assert row["read_error_rate"] == 0.0
        assert row["hedges_sent"] >= 0 and row["hedges_won"] <= row["hedges_sent"]
    assert stats.hedges_won <= stats.hedges_sent
    assert stats.hedges_sent == sum(row["hedges_sent"] for row in stats.per_node.values())


TURNS_SLOW = 0.2  # s: the delay of the replica that turns slow


def hedgeable(stats, reads_made: int) -> int | None:
    """The replica a read asking it first would hedge around, were it to turn slow; or None.

    The one with the lowest latency average (the reads ask it first, or it ties), when its
    p95 (the hedge's wait) is well under ``TURNS_SLOW``, the others are within
    ``reads.HEDGE_SPARE`` times that wait (a stall of this machine can leave a rarely asked
    replica's average high for hundreds of reads: no hedge goes there) and hedges are left
    in the budget.
    """
    rows = [stats.per_node[f"r{i + 1}"] for i in range(3)]
    latency = [row["read_latency_ms"] for row in rows]
    if None in latency or stats.hedges_sent + 5 > health.HEDGE_BUDGET * reads_made:
        return None
    best = latency.index(min(latency))
    p95 = rows[best]["read_p95_ms"]
    if p95 is None or p95 > TURNS_SLOW * 1000.0 / 4:
        return None
    wait = max(reads.HEDGE_FLOOR * 1000.0, p95)
    if any(ms > reads.HEDGE_SPARE * wait for ms in latency):
        return None
    return best


def test_a_replica_that_turns_slow_is_hedged_around(proxied, driver):
    """The reads that still pick a replica just turned slow are answered by a hedge to the
    next one (counted in stats).

    Replicas under ``reads.LATENCY_FLOOR`` tie, so each read asks one of the three first at
    random; the slow one is asked first by the next read that draws it, unless a hedge or an
    exploration reaches it before (one attempt in 50 on a quiet machine, more under load):
    then it is outstanding, ranked last, and no read asks it first.  Such an attempt tested
    nothing; it is run again on a new client, up to three times.
    """
    make, servers, links = proxied
    writer = make("random")
    writer.put_many({key: str(i) for i, key in enumerate(KEYS)}, consistency="all")
    for _attempt in range(3):
        cluster = make("adaptive")
        made = 0
        for _ in range(30):  # every replica measured fast: each has a p95 of a fraction of a ms
            read(cluster, 100, servers)
            made += 100
            before = cluster.stats()
            slow = hedgeable(before, made)
            if slow is not None:
                break
        else:
            pytest.fail(f"no replica would be hedged around after {made} reads: {before.per_node}")
        latency = [before.per_node[f"r{i + 1}"]["read_latency_ms"] for i in range(3)]
        links[slow].delay(down=TURNS_SLOW)  # much slower than its p95
        served = read(cluster, 100, servers)
        made += 100
        after = cluster.stats()
        sent = after.hedges_sent - before.hedges_sent
        won = after.hedges_won - before.hedges_won
        name = f"r{slow + 1}"
        spared = after.per_node[name]["hedges_sent"] - before.per_node[name]["hedges_sent"]
        # it is asked until a reply of its shows it slow: a hedge answers each such read
        assert served[slow] >= 1, (served, latency)
        if won == 0 and spared >= 1:  # reached as a spare first: never asked first
            links[slow].heal()
            continue
        assert won >= 1 and won <= sent, (sent, won, spared)
        break
    else:
        pytest.fail("in three attempts a hedge or exploration reached the slow replica first")
    assert after.hedges_sent <= health.HEDGE_BUDGET * made + 1
    # the replies the hedged reads returned without are still read (the connections go back
    # to their pools) and measured: the slow replica's average rose
    for _ in range(100):
        rows = cluster.stats().per_node
        if all(rows[f"r{i + 1}"]["reads_outstanding"] == 0 for i in range(3)):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"replies of hedged reads left unread: {rows}")
    assert rows[f"r{slow + 1}"]["read_latency_ms"] > latency[slow]
