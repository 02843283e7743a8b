"""The availability matrix: each consistency level succeeds exactly when enough replicas are up."""

from __future__ import annotations

import itertools
import re

import pytest

from cvstore import Node, UnavailableError
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster
ALL_PLACEMENTS = True  # and under every registered placement (tests/conftest.py)

LEVELS = ("one", "quorum", "all")
NEEDS = {"one": 1, "quorum": 2, "all": 3, "eventual": 1, "strong": 2}
KEY = "matrix-key"


def snapshot(cluster: Cluster) -> dict[str, tuple[list, list]]:
    """Every record and every hint of every node, read from the stores directly."""
    return {
        node.name: (sorted(node.store.scan()), sorted(node.store.scan_hints()))
        for node in cluster.nodes
    }


@pytest.fixture
def cluster() -> Cluster:
    # Five nodes: down replicas have healthy substitutes for their hints.
    return Cluster([Node(f"node{i}") for i in range(5)], replication_factor=3)


def fail_replicas(cluster: Cluster, down: int) -> list[Node]:
    replicas = cluster.get_nodes_for_key(KEY)
    for node in replicas[len(replicas) - down :]:
        node.fail()
    return replicas


@pytest.mark.parametrize(
    ("read", "write", "down"), list(itertools.product(LEVELS, LEVELS, range(4)))
)
def test_matrix(cluster, read, write, down):
    cluster.put(KEY, "before", consistency="all")
    replicas = fail_replicas(cluster, down)
    alive = 3 - down
    before = snapshot(cluster)
    if alive >= NEEDS[write]:
        cluster.put(KEY, "after", consistency=write)
        expected = "after"
    else:
        with pytest.raises(UnavailableError, match=f"^{write} write needs") as info:
            cluster.put(KEY, "after", consistency=write)
        assert (info.value.level, info.value.required, info.value.alive) == (
            write,
            NEEDS[write],
            alive,
        )
        assert info.value.down == tuple(n.name for n in replicas[alive:])
        assert snapshot(cluster) == before, "a refused write left a trace"
        expected = "before"
    if alive >= NEEDS[read]:
        assert cluster.get(KEY, consistency=read) == expected
    else:
        with pytest.raises(
            UnavailableError, match=f"^{read} read needs {NEEDS[read]} of 3 replicas"
        ):
            cluster.get(KEY, consistency=read)


@pytest.mark.parametrize("down", range(4))
@pytest.mark.parametrize("level", ["eventual", "strong"])
def test_named_models(cluster, level, down):
    fail_replicas(cluster, down)
    if 3 - down >= NEEDS[level]:
        cluster.put(KEY, level, consistency=level)
        if level == "eventual":
            # Acknowledged by one replica; the others get it when hints are handed over.
            assert cluster.get(KEY, consistency=level) in (level, None)
            cluster.deliver_hints()
        assert cluster.get(KEY, consistency=level) == level
    else:
        with pytest.raises(UnavailableError, match=f"^{level} write needs {NEEDS[level]} of 3"):
            cluster.put(KEY, level, consistency=level)
        with pytest.raises(UnavailableError, match=f"^{level} read needs {NEEDS[level]} of 3"):
            cluster.get(KEY, consistency=level)


def test_message_names_the_level_the_counts_and_the_down_replicas(cluster):
    replicas = fail_replicas(cluster, 2)
    names = ", ".join(n.name for n in replicas[1:])
    message = f"quorum write needs 2 of 3 replicas, 1 alive ({names} down)"
    with pytest.raises(UnavailableError, match=f"^{re.escape(message)}$"):
        cluster.put(KEY, "v")


def test_hints_do_not_make_a_level_available(cluster):
    # Healthy substitutes hold hints, yet with every replica down even "one" is refused.
    fail_replicas(cluster, 3)
    assert any(node.is_up for node in cluster.nodes)
    with pytest.raises(UnavailableError, match="^one write needs 1 of 3 replicas, 0 alive"):
        cluster.put(KEY, "v", consistency="one")
    with pytest.raises(UnavailableError, match="^eventual write needs 1 of 3 replicas, 0 alive"):
        cluster.put(KEY, "v", consistency="eventual")


def test_a_refused_delete_leaves_the_value(cluster):
    cluster.put(KEY, "kept")
    fail_replicas(cluster, 2)
    before = snapshot(cluster)
    with pytest.raises(UnavailableError, match="^quorum write needs 2"):
        cluster.delete(KEY)
    assert snapshot(cluster) == before
    assert cluster.get(KEY, consistency="one") == "kept"


def test_the_cluster_default_levels_apply_when_a_call_gives_none():
    cluster = Cluster(
        [Node(f"node{i}") for i in range(3)], read_consistency="one", write_consistency="all"
    )
    cluster.nodes[0].fail()
    with pytest.raises(UnavailableError, match="^all write needs 3"):
        cluster.put(KEY, "v")
    cluster.put(KEY, "v", consistency="one")
    assert cluster.get(KEY) == "v"
    cluster.write_consistency = "quorum"
    cluster.put(KEY, "w")
    assert cluster.get(KEY, consistency="quorum") == "w"


class TestBatches:
    def test_put_many_is_refused_whole_if_any_key_lacks_replicas(self, cluster):
        keys = [f"k{i}" for i in range(300)]
        cluster.put_many({k: 0 for k in keys})
        cluster.nodes[0].fail()
        cluster.nodes[1].fail()
        before = snapshot(cluster)
        with pytest.raises(UnavailableError, match="^quorum write needs 2 of 3 replicas, 1 alive"):
            cluster.put_many({k: 1 for k in keys})
        assert snapshot(cluster) == before

    def test_put_many_succeeds_with_one_node_down_and_hints_the_rest(self, cluster):
        keys = [f"k{i}" for i in range(300)]
        cluster.nodes[2].fail()
        cluster.put_many({k: k for k in keys})
        assert cluster.stats().hints_pending == sum(
            1 for k in keys if cluster.nodes[2] in cluster.get_nodes_for_key(k)
        )
        assert cluster.get_many(keys) == {k: k for k in keys}

    def test_get_many_is_refused_if_any_key_lacks_replicas(self, cluster):
        keys = [f"k{i}" for i in range(300)]
        cluster.put_many({k: 0 for k in keys})
        for node in cluster.nodes[:3]:
            node.fail()
        with pytest.raises(UnavailableError, match="^all read needs 3 of 3 replicas"):
            cluster.get_many(keys, consistency="all")
        with pytest.raises(UnavailableError, match="^one read needs 1 of 3 replicas, 0 alive"):
            cluster.get_many(keys, consistency="one")
