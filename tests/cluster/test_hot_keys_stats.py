"""``stats().hot_keys``: the hottest keys of the calls made, cluster-wide and per node."""

from __future__ import annotations

from collections import Counter

from cvstore import Node
from cvstore.core.hotkeys import SAMPLE_EVERY
from tests.core.test_hotkeys import zipf_stream
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True
ALL_PLACEMENTS = True


def drive(cluster, stream):
    for i, key in enumerate(stream):
        if i % 2:
            cluster.put(key, "v")
        else:
            cluster.get(key)


def check_hot_keys(cluster, stream):
    exact = Counter(stream)
    hot = cluster.stats().hot_keys
    assert hot["sample_every"] == SAMPLE_EVERY
    assert hot["sampled"] == len(stream) // SAMPLE_EVERY
    hottest = exact.most_common(1)[0][0]
    top = hot["cluster"][0]
    assert top["key"] == hottest
    # The estimate is the sampled count times SAMPLE_EVERY: within the sampling's reach.
    assert abs(top["count"] - exact[hottest]) <= 0.25 * exact[hottest]
    replicas = {node.name for node in cluster.get_nodes_for_key(hottest)}
    for name, rows in hot["per_node"].items():
        if name in replicas:
            assert rows[0]["key"] == hottest
        else:
            assert hottest not in [row["key"] for row in rows]
    # Every sampled call counts once for each replica of its key.
    assert sum(hot["requests"].values()) == hot["sampled"] * SAMPLE_EVERY * 3


def test_the_hottest_key_is_found_on_its_replicas():
    cluster = Cluster([Node(f"n{i}") for i in range(5)], replication_factor=3)
    try:
        stream = zipf_stream(1.2, 2_000, 16_000, seed=3)
        drive(cluster, stream)
        check_hot_keys(cluster, stream)
    finally:
        cluster.close()


def test_batch_calls_feed_the_hot_keys():
    cluster = Cluster([Node(f"n{i}") for i in range(5)], replication_factor=3)
    try:
        stream = zipf_stream(1.2, 2_000, 16_000, seed=4)
        for start in range(0, len(stream), 400):
            chunk = stream[start : start + 400]
            cluster.put_many([(k, "v") for k in chunk])  # a key given twice is one write
            cluster.get_many(chunk)
        hot = cluster.stats().hot_keys
        assert hot["cluster"][0]["key"] == Counter(stream).most_common(1)[0][0]
        # Along the same countdown: each key a get_many is given, each distinct key of a
        # put_many (a key given twice is one write).
        distinct = sum(len(set(stream[i : i + 400])) for i in range(0, len(stream), 400))
        assert hot["sampled"] == (len(stream) + distinct) // SAMPLE_EVERY
    finally:
        cluster.close()


def test_a_cluster_with_no_calls_shows_no_hot_keys():
    cluster = Cluster([Node(f"n{i}") for i in range(3)], replication_factor=3)
    try:
        hot = cluster.stats().hot_keys
        assert hot["sampled"] == 0 and hot["cluster"] == []
        assert hot["per_node"] == {"n0": [], "n1": [], "n2": []}
    finally:
        cluster.close()
