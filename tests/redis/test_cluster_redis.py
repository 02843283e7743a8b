"""The cluster over real Redis servers: exports, placement, failure detection, hints, stats.

Every server here is a real redis-server process started by the test; the
fault tests with kills under load are in test_cluster_faults.py.
"""

from __future__ import annotations

import time

import pytest

from cvstore import Cluster, Node, RedisStore, StoreError, UnavailableError
from cvstore.cluster import IO_BATCH
from cvstore.versions import TOMBSTONE
from tests.support.waiting import wait_until

KEYS = [f"user:{i}" for i in range(300)]


def raw(cluster, name, key):
    """The record node `name`'s server holds for `key` (None if none)."""
    return cluster.node(name).store.get(key.encode())


class TestExports:
    def test_redis_store_is_exported_from_the_package_and_stores(self):
        import cvstore.stores
        import cvstore.stores.redis

        assert cvstore.RedisStore is cvstore.stores.redis.RedisStore
        assert cvstore.stores.RedisStore is cvstore.stores.redis.RedisStore
        assert "RedisStore" in cvstore.__all__ and "RedisStore" in cvstore.stores.__all__

    def test_a_node_names_its_store_so_errors_name_the_node(self, start_redis):
        (server,) = start_redis(1)
        store = RedisStore(server.url(), prefix="n:")
        assert store.name is None
        Node("r7", store=store)
        assert store.name == "r7"
        server.kill()
        with pytest.raises(StoreError, match="node 'r7'") as info:
            store.ping()
        assert info.value.node == "r7"
        store.close()

    def test_a_store_named_already_keeps_its_name(self, redis_server, prefix):
        store = RedisStore(redis_server.url(), prefix=prefix, name="own")
        Node("r1", store=store)
        assert store.name == "own"
        store.close()


class TestLargeBatches:
    """Batches larger than IO_BATCH go to the servers in slices."""

    def test_a_batch_of_several_slices_writes_and_reads_every_key(self, start_redis, make_cluster):
        servers = start_redis(3)
        cluster = make_cluster(servers, timeout=5.0)
        n = 2 * IO_BATCH + 123
        batch = {b"k%d" % i: b"v%d" % i for i in range(n)}
        cluster.put_many(batch)
        assert [node.store.count() for node in cluster.nodes] == [n, n, n]
        assert cluster.get_many(list(batch), consistency="all") == batch

    def test_a_refused_batch_of_several_slices_writes_nothing(self, start_redis, make_cluster):
        # RF 2 on 4 servers, one of them down: at "all" only the keys it holds
        # are refused.  They come last, after a full slice of writable keys: the
        # batch is still refused before any slice is written.
        servers = start_redis(4)
        cluster = make_cluster(servers, replication_factor=2, timeout=5.0)
        dead = cluster.node("r4")
        dead.fail()
        writable, refused = [], []
        i = 0
        while len(writable) < IO_BATCH or not refused:
            key = b"k%d" % i
            holders = {node.name for node in cluster.get_nodes_for_key(key)}
            (refused if "r4" in holders else writable).append(key)
            i += 1
        batch = {key: b"v" for key in writable[:IO_BATCH] + refused[:1]}
        with pytest.raises(UnavailableError, match="all write needs 2 of 2"):
            cluster.put_many(batch, consistency="all")
        assert [node.store.count() for node in cluster.nodes if node is not dead] == [0, 0, 0]


class TestOverThreeServers:
    def test_each_key_lives_on_exactly_its_three_replicas_servers(self, start_redis, make_cluster):
        servers = start_redis(4)
        cluster = make_cluster(servers)
        cluster.put_many({k: f"v-{k}" for k in KEYS[:200]})
        for k in KEYS[200:]:
            cluster.put(k, f"v-{k}")
        for k in KEYS:
            holders = {n.name for n in cluster.nodes if raw(cluster, n.name, k) is not None}
            assert holders == {n.name for n in cluster.get_nodes_for_key(k)}
        assert cluster.get_many(KEYS) == {k: f"v-{k}" for k in KEYS}
        assert cluster.get(KEYS[5]) == f"v-{KEYS[5]}"
        cluster.delete(KEYS[5])
        assert cluster.get(KEYS[5]) is None
        assert all(
            raw(cluster, n.name, KEYS[5])[1] is TOMBSTONE
            for n in cluster.get_nodes_for_key(KEYS[5])
        )
        assert len(cluster) == len(KEYS) - 1

    def test_two_clients_with_the_same_membership_agree_on_every_replica(
        self, start_redis, make_cluster
    ):
        servers = start_redis(3)
        one = make_cluster(servers)
        # The other client lists its nodes in another order: placement must not care.
        other = Cluster(
            [
                Node(
                    n.name,
                    store=RedisStore(servers[int(n.name[1:]) - 1].url(), prefix=n.store.prefix),
                )
                for n in reversed(one.nodes)
            ],
            replication_factor=3,
        )
        try:
            keys = [f"agree:{i}" for i in range(2000)]
            for k in keys:
                assert [n.name for n in one.get_nodes_for_key(k)] == [
                    n.name for n in other.get_nodes_for_key(k)
                ]
            one.put_many({k: k.upper() for k in keys})
            assert other.get_many(keys, consistency="all") == {k: k.upper() for k in keys}
            other.put(keys[0], "from the other client")
            assert one.get(keys[0], consistency="quorum") == "from the other client"
        finally:
            other.close()
            for n in other.nodes:
                n.store.close()


class TestFailureDetection:
    def test_a_killed_server_is_suspected_hinted_and_gets_its_hints_when_back(
        self, start_redis, make_cluster
    ):
        servers = start_redis(3)
        cluster = make_cluster(servers, probe_interval=0.05, max_probe_interval=0.2)
        cluster.put_many({k: "old" for k in KEYS})
        servers[1].kill()
        cluster.put(KEYS[0], "new")  # the first call meets the dead server
        assert cluster.suspected == ("r2",)
        node = cluster.node("r2")
        assert node.suspected and not node.is_up
        assert "suspected" in repr(node)
        for k in KEYS[1:]:
            cluster.put(k, "new")  # quorum from r1 and r3; r2 hinted
        assert cluster.stats().hints_pending == len(KEYS)
        servers[1].restart()
        # No explicit delivery: ordinary calls probe it with backoff and hand it its hints.
        assert wait_until(
            lambda: node.is_up and cluster.stats().hints_pending == 0,
            action=lambda: cluster.get(KEYS[0]),
        )
        assert not node.suspected and cluster.suspected == ()
        assert all(raw(cluster, "r2", k)[1] == "new" for k in KEYS)

    def test_an_operator_fail_is_not_undone_by_a_probe(self, start_redis, make_cluster):
        servers = start_redis(3)
        # probes only when asked (the background prober waits a minute): the
        # explicit probe below is the one that finds r3 back
        cluster = make_cluster(servers, probe_interval=60, max_probe_interval=60)
        node = cluster.node("r3")
        servers[2].kill()
        cluster.put("k", "v")
        assert node.suspected
        node.fail()
        servers[2].restart()
        time.sleep(0.05)
        assert cluster.probe() == ["r3"]
        assert not node.suspected and not node.is_up  # still down: the operator said so
        node.recover()
        assert node.is_up
        cluster.deliver_hints()
        assert raw(cluster, "r3", "k")[1] == "v"

    def test_a_codec_error_does_not_mark_a_node_down(self, start_redis, make_cluster):
        servers = start_redis(3)
        cluster = make_cluster(servers)
        with pytest.raises(TypeError, match="value must be bytes or str, got dict"):
            cluster.put("k", {"a": 1})
        with pytest.raises(TypeError, match="value must be bytes or str, got dict"):
            cluster.put_many({"k": {"a": 1}})
        assert cluster.suspected == () and all(n.is_up for n in cluster.nodes)
        assert cluster.get("k") is None

    def test_calls_against_a_dead_server_raise_only_cvstore_errors(self, start_redis, make_cluster):
        servers = start_redis(3)
        cluster = make_cluster(servers)
        for server in servers:
            server.kill()
        with pytest.raises(UnavailableError, match="quorum write needs 2 of 3"):
            cluster.put("k", "v")
        with pytest.raises(UnavailableError, match="quorum read needs 2 of 3"):
            cluster.get("k")
        with pytest.raises(UnavailableError):
            cluster.get_many(["a", "b"])
        with pytest.raises(UnavailableError):
            cluster.put_many({"a": "1"})
        assert cluster.suspected == ("r1", "r2", "r3")


class TestStats:
    def test_stats_show_per_node_calls_latency_and_errors(self, start_redis, make_cluster):
        servers = start_redis(3)
        cluster = make_cluster(servers)
        cluster.put_many({k: "v" for k in KEYS})
        assert cluster.get_many(KEYS) == {k: "v" for k in KEYS}
        servers[0].kill()
        cluster.put("x", "y")
        stats = cluster.stats()
        assert stats.suspected == ("r1",) and "r1" in stats.down
        r1, r2 = stats.per_node["r1"], stats.per_node["r2"]
        assert r1["suspected"] is True and r1["up"] is False and r1["failures"] >= 1
        assert r1["errors"] >= 1 and r1["connection_errors"] >= 1
        assert "r1" in r1["last_failure"]
        assert r1["next_probe_in_s"] is not None
        assert r2["up"] is True and r2["failures"] == 0 and r2["errors"] == 0
        assert r2["calls"] >= 3 and r2["mean_ms"] > 0 and r2["p99_ms"] >= r2["p50_ms"] > 0
        assert stats.keys_per_node["r2"] == len(KEYS) + 1


class TestHintsAcrossClients:
    def test_a_new_client_delivers_hints_an_earlier_one_left(self, start_redis, make_cluster):
        servers = start_redis(3, appendonly=True)  # r3 comes back with what it had
        first = make_cluster(servers)
        first.put_many({k: "old" for k in KEYS})
        servers[2].kill()
        first.put_many({k: "new" for k in KEYS})  # r3 misses these; r1/r2 hold hints in Redis
        assert first.stats().hints_pending == len(KEYS)
        first.close()
        for node in first.nodes:
            node.store.close()
        del first
        servers[2].restart()
        second = make_cluster(servers)  # new clients, same membership
        assert second.stats().hints_pending == len(KEYS)
        assert all(raw(second, "r3", k)[1] == "old" for k in KEYS)
        second.get(KEYS[0])  # the first call that meets r3 up hands its hints over
        assert second.stats().hints_pending == 0
        assert all(raw(second, "r3", k)[1] == "new" for k in KEYS)


class TestMerkleRepair:
    @pytest.mark.slow
    def test_repair_transfers_only_the_records_that_differ(self, start_redis, make_cluster):
        servers = start_redis(3, appendonly=True)
        # hint_window=0: hints expire at once, so repair alone must bring r3 back.
        cluster = make_cluster(servers, hint_window=0.0)
        keys = [f"m{i}" for i in range(3000)]
        cluster.put_many({k: "v1" for k in keys}, consistency="all")
        servers[2].kill()
        missed = keys[:40]
        cluster.put_many({k: "v2" for k in missed})  # r3 misses these
        servers[2].restart()
        cluster.probe()
        for node in cluster.nodes:
            node.store.stats(reset=True)
        report = cluster.repair()
        stats = [node.store.stats() for node in cluster.nodes]
        read = sum(s["records_read"] for s in stats)
        written = sum(s["records_written"] for s in stats)
        print(
            f"\nredis repair over 3000 keys x 3: {report.leaves_differing} of "
            f"{report.leaves_compared} leaves differ, {read} records read, {written} written"
        )
        assert read == report.records_fetched == len(missed)
        assert written == report.repaired == len(missed)
        assert cluster.node("r3").store.stats()["records_written"] == len(missed)
        assert report.complete and 1 <= report.leaves_differing < report.leaves_compared
        want = ["v2" if k in missed else "v1" for k in keys]
        kbs = [k.encode() for k in keys]
        for node in cluster.nodes:  # one batch read per node, not 3,000 single reads
            assert [r[1] for r in node.store.get_many(kbs)] == want
        for node in cluster.nodes:
            node.store.stats(reset=True)
        again = cluster.repair()
        assert again.leaves_differing == 0 and again.records_fetched == 0
        assert sum(n.store.stats()["records_read"] for n in cluster.nodes) == 0
