"""``progress=`` on the long calls: told (done, total) as copies stream and repair reads, adding up."""

from __future__ import annotations

import pytest

from cvstore import Node
from cvstore.core.rebalance import STREAM_CHUNK
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster

KEYS = {f"key:{i}": f"v{i}" for i in range(3 * STREAM_CHUNK)}  # several rounds of streaming


def check_counts(calls: list[tuple[int, int]]) -> int:
    """The calls start at 0, never go back, keep one total and end at it; that total."""
    assert len(calls) >= 2, calls
    total = calls[0][1]
    assert calls[0] == (0, total)
    assert all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (total, total)
    return total


def test_adding_and_removing_report_every_copy_streamed():
    cluster = Cluster([Node(f"n{i}") for i in range(3)], replication_factor=2)
    cluster.put_many(KEYS)
    calls: list[tuple[int, int]] = []
    report = cluster.add_node(Node("n3"), progress=lambda d, t: calls.append((d, t)))
    total = check_counts(calls)
    assert total == report.moved + report.missed + report.hinted and report.moved > STREAM_CHUNK
    assert len(calls) > 2  # heard of while streaming, not only at the start and the end

    calls.clear()
    report = cluster.remove_node("n0", progress=lambda d, t: calls.append((d, t)))
    assert check_counts(calls) == report.moved > 0
    assert cluster.get_many(list(KEYS), consistency="all") == KEYS
    cluster.close()


def test_repair_reports_the_copies_it_reads():
    nodes = [Node(f"n{i}") for i in range(3)]
    cluster = Cluster(nodes, replication_factor=3)
    cluster.put_many(KEYS)
    store = cluster.nodes[0].store
    store.delete_many(store.keys())  # a replica lost its data
    calls: list[tuple[int, int]] = []
    report = cluster.repair(progress=lambda d, t: calls.append((d, t)))
    assert check_counts(calls) == report.records_fetched == len(KEYS)
    assert report.repaired == len(KEYS)
    cluster.close()


def test_progress_must_be_callable():
    cluster = Cluster([Node("n0")])
    with pytest.raises(TypeError, match="progress must be a callable"):
        cluster.add_node(Node("n1"), progress=5)
    assert [n.name for n in cluster.nodes] == ["n0"]
    cluster.close()
