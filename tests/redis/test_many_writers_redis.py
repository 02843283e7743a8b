"""Several clients over the same three real redis-servers: no acknowledged write is lost.

Each client is a ``Cluster`` with its own RedisStore connections (a second
process, as far as the servers can tell) and its own fake clock; the
scenarios (``tests/support/writers_scenarios.py``) set how the clocks disagree.
"""

from __future__ import annotations

import pytest

from tests.support import writers_scenarios as sc
from tests.support.drivers import raw

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster
ALL_PLACEMENTS = True  # and under every registered placement (tests/conftest.py)

ROUNDS = 100
pytestmark = pytest.mark.slow  # thousands of rounds against real servers


@pytest.fixture(scope="module")
def three_servers(redis_binary, tmp_path_factory):
    from tests.support import redis_servers

    servers = redis_servers.start_servers(
        3, tmp_path_factory.mktemp("many-writers"), binary=redis_binary
    )
    yield servers
    redis_servers.stop_servers(servers)


@pytest.mark.parametrize("level", ["quorum", "all", "strong"])
@pytest.mark.parametrize("scenario", sorted(sc.SCENARIOS))
def test_no_acknowledged_write_is_lost_to_a_later_one(three_servers, make_cluster, scenario, level):
    def make(clock):
        return make_cluster(three_servers, clock=clock)

    assert sc.SCENARIOS[scenario](make, level, ROUNDS) == []


def test_two_clients_with_skewed_clocks_converge_on_one_value_per_key(three_servers, make_cluster):
    # Concurrent writers stay last-write-wins: whatever interleaving, every
    # replica ends up with one value, and both clients read the same one.
    import threading

    a = make_cluster(three_servers, clock=sc.clock(sc.Wall(sc.T0), sc.HIGH))
    b = make_cluster(three_servers, clock=sc.clock(sc.Wall(sc.T0 - 30_000), sc.LOW))
    keys = [f"race:{i}" for i in range(50)]

    def write(client, tag):
        for round_ in range(20):
            for key in keys:
                client.put(key, f"{tag}{round_}", consistency="quorum")

    threads = [threading.Thread(target=write, args=(c, t)) for c, t in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    a.repair()
    for key in keys:
        copies = {raw(node).get(key.encode()).version for node in a.get_nodes_for_key(key)}
        assert len(copies) == 1
        assert a.get(key, consistency="all") == b.get(key, consistency="all")
