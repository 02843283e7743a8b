"""Failures: hinted handoff, the hint window, repair, read repair, tombstones, failing stores."""

from __future__ import annotations

import re

import pytest

from cvstore import MemoryStore, Node, StoreError, UnavailableError
from cvstore.versions import TOMBSTONE, HybridClock, Record
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster
ALL_PLACEMENTS = True  # and under every registered placement (tests/conftest.py)

HOUR_MS = 3600 * 1000


class FakeWall:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms


def make_cluster(count: int = 5, wall: FakeWall | None = None, **kwargs) -> Cluster:
    clock = HybridClock(writer_id=1, wall_ms=wall) if wall is not None else None
    return Cluster([Node(f"node{i}") for i in range(count)], clock=clock, **kwargs)


def copies(cluster: Cluster, key: str) -> list[object]:
    """The value each replica holds for `key` (None if it has no live copy)."""
    out = []
    for node in cluster.get_nodes_for_key(key):
        record = node.store.get(key.encode())
        out.append(None if record is None or record.value is TOMBSTONE else record.value)
    return out


def keys_of(cluster: Cluster, node: Node, count: int, prefix: str = "k") -> list[str]:
    """`count` keys that `node` replicates."""
    out, i = [], 0
    while len(out) < count:
        key = f"{prefix}{i}"
        if node in cluster.get_nodes_for_key(key):
            out.append(key)
        i += 1
    return out


class TestNoLoss:
    @pytest.mark.parametrize("catch_up", ["deliver_hints", "repair", "next_call"])
    def test_ten_thousand_keys_survive_a_node_outage(self, catch_up):
        cluster = make_cluster(5)
        keys = [f"key:{i}" for i in range(10_000)]
        last = {key: f"v0-{key}" for key in keys}
        cluster.put_many(last)
        victim = cluster.node("node2")
        victim.fail()
        for i, key in enumerate(keys):  # keep writing: scalar puts, a batch, deletes
            if i % 10 == 0:
                cluster.put(key, f"v1-{key}")
                last[key] = f"v1-{key}"
        update = {key: f"v2-{key}" for key in keys[1::10]}
        cluster.put_many(update)
        last.update(update)
        for key in keys[2::50]:
            cluster.delete(key)
            last[key] = None
        victim.recover()
        if catch_up == "deliver_hints":
            assert cluster.deliver_hints() > 0
        elif catch_up == "repair":
            cluster.repair()
        else:  # any call that meets the node up hands its hints over
            cluster.get(keys_of(cluster, victim, 1)[0])
        assert cluster.stats().hints_pending == 0
        for key in keys:
            assert copies(cluster, key) == [last[key]] * 3, key
        assert cluster.get_many(keys, consistency="all") == {
            k: v for k, v in last.items() if v is not None
        }


class TestHints:
    def test_a_hint_is_held_apart_by_the_next_healthy_node(self):
        cluster = make_cluster(5)
        victim = cluster.node("node1")
        key = keys_of(cluster, victim, 1)[0]
        victim.fail()
        cluster.put(key, "v")
        walk = [cluster.node(n) for n in cluster.placer.get_nodes(key, 5)]
        replicas = cluster.get_nodes_for_key(key)
        substitute = next(n for n in walk if n not in replicas)
        [(owner, kb, record)] = list(substitute.store.scan_hints())
        assert (owner, kb, record.value) == (victim.name, key.encode(), "v")
        assert substitute.store.get(key.encode()) is None  # not a copy of the key
        assert victim.store.get(key.encode()) is None
        assert cluster.stats().hints_pending == 1

    def test_hints_are_delivered_by_the_next_call_that_finds_the_owner_up(self):
        cluster = make_cluster(5)
        victim = cluster.node("node3")
        hinted = keys_of(cluster, victim, 20, prefix="h")
        victim.fail()
        for key in hinted:
            cluster.put(key, key)
        assert all(victim.store.get(k.encode()) is None for k in hinted)
        victim.recover()
        other = keys_of(cluster, victim, 1, prefix="other")[0]
        cluster.get(other)  # touches the recovered node once
        assert all(victim.store.get(k.encode()).value == k for k in hinted)
        assert cluster.stats().hints_delivered == 20

    def test_deliver_hints_counts_what_it_handed_over_and_keeps_hints_for_down_owners(self):
        cluster = make_cluster(5)
        a, b = cluster.node("node0"), cluster.node("node4")
        a_keys = [k for k in keys_of(cluster, a, 30) if b not in cluster.get_nodes_for_key(k)][:10]
        b_keys = [k for k in keys_of(cluster, b, 30) if a not in cluster.get_nodes_for_key(k)][:10]
        a.fail()
        b.fail()
        cluster.put_many({k: 1 for k in a_keys + b_keys})
        a.recover()
        assert cluster.deliver_hints() == 10
        assert cluster.deliver_hints() == 0
        assert cluster.stats().hints_pending == 10
        b.recover()
        assert cluster.deliver_hints() == 10

    def test_a_hint_never_replaces_a_newer_version(self):
        cluster = make_cluster(5)
        victim = cluster.node("node2")
        key = keys_of(cluster, victim, 1)[0]
        victim.fail()
        cluster.put(key, "old")
        victim.store.put(key.encode(), Record(cluster.clock.now(), "newer"))
        victim.recover()
        cluster.deliver_hints()
        assert victim.store.get(key.encode()).value == "newer"

    def test_hints_older_than_the_window_are_dropped_and_repair_takes_over(self):
        wall = FakeWall()
        cluster = make_cluster(5, wall, hint_window=3600)
        victim = cluster.node("node1")
        keys = keys_of(cluster, victim, 5)
        victim.fail()
        for key in keys:
            cluster.put(key, "while down")
        wall.ms += HOUR_MS + 1
        victim.recover()
        assert cluster.deliver_hints() == 0
        stats = cluster.stats()
        assert (stats.hints_pending, stats.hints_dropped) == (0, 5)
        assert all(victim.store.get(k.encode()) is None for k in keys)
        report = cluster.repair()
        assert report.repaired == 5 and report.complete
        assert all(copies(cluster, k) == ["while down"] * 3 for k in keys)

    def test_expired_hints_for_a_still_down_owner_are_dropped_fresh_ones_kept(self):
        wall = FakeWall()
        cluster = make_cluster(5, wall, hint_window=3600)
        victim = cluster.node("node1")
        old_keys, new_keys = keys_of(cluster, victim, 6)[:3], keys_of(cluster, victim, 6)[3:]
        victim.fail()
        for key in old_keys:
            cluster.put(key, "old")
        wall.ms += HOUR_MS
        for key in new_keys:
            cluster.put(key, "new")
        wall.ms += 1000
        assert cluster.deliver_hints() == 0
        assert cluster.stats().hints_pending == 3
        victim.recover()
        assert cluster.deliver_hints() == 3

    def test_a_node_that_fails_while_it_holds_hints_keeps_them(self):
        cluster = make_cluster(5)
        victim = cluster.node("node0")
        key = keys_of(cluster, victim, 1)[0]
        victim.fail()
        cluster.put(key, "v")
        holder = next(n for n in cluster.nodes if n.store.count_hints())
        holder.fail()
        victim.recover()
        assert cluster.deliver_hints() == 0
        holder.recover()
        assert cluster.deliver_hints() == 1
        assert victim.store.get(key.encode()).value == "v"

    def test_hints_for_a_removed_node_go_to_the_keys_new_replicas(self):
        cluster = make_cluster(5)
        victim = cluster.node("node2")
        keys = keys_of(cluster, victim, 10)
        victim.fail()
        for key in keys:
            cluster.put(key, "during")
        cluster.remove_node("node2")
        assert cluster.stats().hints_pending == 0
        for key in keys:
            assert copies(cluster, key) == ["during"] * 3

    def test_hints_held_by_a_leaving_node_move_to_another(self):
        cluster = make_cluster(5)
        victim = cluster.node("node1")
        key = keys_of(cluster, victim, 1)[0]
        victim.fail()
        cluster.put(key, "v")
        holder = next(n for n in cluster.nodes if n.store.count_hints())
        cluster.remove_node(holder)
        assert holder.store.count_hints() == 0
        assert cluster.stats().hints_pending == 1
        victim.recover()
        assert cluster.deliver_hints() == 1
        assert victim.store.get(key.encode()).value == "v"


class TestDeletes:
    def test_no_resurrection_after_delete_with_a_replica_down(self):
        wall = FakeWall()
        cluster = make_cluster(5, wall, hint_window=0)  # hints expire: repair alone must do it
        key = "doomed"
        cluster.put(key, "alive")
        stale = cluster.get_nodes_for_key(key)[2]
        stale.fail()
        cluster.delete(key)
        wall.ms += 1
        stale.recover()
        assert stale.store.get(key.encode()).value == "alive"  # the stale copy is there
        report = cluster.repair()
        assert report.complete and report.repaired == 1
        assert stale.store.get(key.encode()).value is TOMBSTONE
        for level in ("one", "quorum", "all"):
            assert cluster.get(key, "gone", consistency=level) == "gone"
        assert key not in cluster
        assert list(cluster) == []

    def test_a_stale_replica_cannot_bring_a_key_back_through_a_read(self):
        cluster = make_cluster(3, read_policy="primary")
        cluster.put("k", "v")
        replicas = cluster.get_nodes_for_key("k")
        replicas[0].fail()
        cluster.delete("k")
        replicas[0].recover()
        # The recovered primary holds a hint-less stale copy only if its hint was lost:
        replicas[0].store.put(b"k", Record(1, "ancient"))
        assert cluster.get("k", consistency="quorum") is None
        assert cluster.get("k", consistency="all") is None

    def test_tombstones_are_purged_only_after_the_grace_period_and_a_complete_repair(self):
        wall = FakeWall()
        cluster = make_cluster(5, wall, hint_window=3600, tombstone_grace=7200)
        cluster.put_many({f"k{i}": i for i in range(50)})
        for i in range(10):
            cluster.delete(f"k{i}")
        assert cluster.repair().purged == 0  # too young
        wall.ms += 2 * HOUR_MS + 1
        down = cluster.node("node0")
        down.fail()
        report = cluster.repair()
        assert not report.complete
        purged_while_down = report.purged
        down.recover()
        report = cluster.repair()
        assert purged_while_down + report.purged == 10
        assert sum(n.store.count() for n in cluster.nodes) == 40 * 3
        assert all(r.value is not TOMBSTONE for n in cluster.nodes for _, r in n.store.scan())
        assert len(cluster) == 40

    def test_keys_whose_replica_is_down_keep_their_tombstones(self):
        wall = FakeWall()
        cluster = make_cluster(5, wall, hint_window=0, tombstone_grace=0)
        cluster.put("k", 1)
        cluster.delete("k")
        replica = cluster.get_nodes_for_key("k")[1]
        replica.fail()
        wall.ms += 1
        assert cluster.repair().purged == 0
        replica.recover()
        assert cluster.repair().purged == 1
        assert all(n.store.get(b"k") is None for n in cluster.nodes)

    def test_a_write_after_the_delete_is_not_purged(self):
        wall = FakeWall()
        cluster = make_cluster(3, wall, hint_window=0, tombstone_grace=0)
        cluster.delete("k")
        cluster.put("k", "back")
        wall.ms += 10
        cluster.repair()
        assert cluster.get("k", consistency="all") == "back"


class TestReadRepair:
    def test_a_quorum_read_repairs_the_replicas_it_asked(self):
        cluster = make_cluster(5, read_policy="primary")  # asks the first two in preference order
        cluster.put("k", "v1")
        primary = cluster.get_nodes_for_key("k")[0]
        primary.storage["k"] = "v2"  # only the primary has the newest value
        assert cluster.get("k", consistency="quorum") == "v2"
        assert copies(cluster, "k") == ["v2", "v2", "v1"]
        assert cluster.stats().read_repairs == 1

    def test_an_all_read_repairs_every_replica(self):
        cluster = make_cluster(5)
        cluster.put("k", "v1")
        third = cluster.get_nodes_for_key("k")[2]
        third.storage["k"] = "v2"
        assert cluster.get("k", consistency="all") == "v2"
        assert copies(cluster, "k") == ["v2", "v2", "v2"]
        assert cluster.stats().read_repairs == 2

    def test_a_missing_copy_is_filled_in(self):
        cluster = make_cluster(5, read_policy="primary")  # asks the first two in preference order
        cluster.put("k", "v")
        primary = cluster.get_nodes_for_key("k")[0]
        primary.store.delete(b"k")
        assert cluster.get("k") == "v"
        assert copies(cluster, "k") == ["v", "v", "v"]

    def test_get_many_repairs_too(self):
        cluster = make_cluster(5)
        keys = [f"k{i}" for i in range(200)]
        cluster.put_many({k: "v1" for k in keys})
        for k in keys[:50]:
            cluster.get_nodes_for_key(k)[1].storage[k] = "v2"
        expected = {k: ("v2" if i < 50 else "v1") for i, k in enumerate(keys)}
        assert cluster.get_many(keys, consistency="all") == expected
        assert all(copies(cluster, k) == [expected[k]] * 3 for k in keys)
        assert cluster.stats().read_repairs == 100


class TestRepair:
    def test_repair_fills_missing_and_stale_copies_everywhere(self):
        cluster = make_cluster(5)
        cluster.put_many({f"k{i}": "v1" for i in range(300)})
        for node in cluster.nodes:
            node.store.delete_many([f"k{i}".encode() for i in range(0, 300, 7)])
        for i in range(0, 300, 11):
            cluster.get_nodes_for_key(f"k{i}")[0].storage[f"k{i}"] = "v2"
        report = cluster.repair()
        assert report.complete and report.keys == 300 - len(range(0, 300, 7)) + len(
            [i for i in range(0, 300, 11) if i % 7 == 0]
        )
        for i in range(300):
            expected = "v2" if i % 11 == 0 else (None if i % 7 == 0 else "v1")
            assert copies(cluster, f"k{i}") == [expected] * 3
        assert cluster.repair().repaired == 0  # a second pass has nothing to do

    def test_repair_removes_copies_from_nodes_that_are_not_replicas(self):
        cluster = make_cluster(5)
        cluster.put("k", "v")
        outsider = next(n for n in cluster.nodes if n not in cluster.get_nodes_for_key("k"))
        outsider.store.put(b"k", Record(cluster.clock.now(), "stray and newest"))
        report = cluster.repair()
        assert report.strays_removed == 1
        assert outsider.store.get(b"k") is None
        assert copies(cluster, "k") == ["stray and newest"] * 3

    def test_repair_with_a_node_down_completes_what_it_can(self):
        cluster = make_cluster(5)
        cluster.put("k", "v")
        replicas = cluster.get_nodes_for_key("k")
        replicas[1].store.delete(b"k")
        replicas[2].fail()
        report = cluster.repair()
        assert report.skipped == (replicas[2].name,) and not report.complete
        assert replicas[1].store.get(b"k").value == "v"


class FlakyStore(MemoryStore):
    """A MemoryStore whose calls raise StoreError while `broken` is set (a dead server)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def _check(self) -> None:
        if self.broken:
            raise StoreError("connection refused", node="flaky")

    def get(self, key):
        self._check()
        return super().get(key)

    def get_many(self, keys):
        self._check()
        return super().get_many(keys)

    def put(self, key, record):
        self._check()
        return super().put(key, record)

    def write_many(self, keys, records):  # every batch and single write comes here
        self._check()
        return super().write_many(keys, records)

    def count(self):  # what the cluster's probe (Store.ping) calls
        self._check()
        return super().count()


class TestFailingStores:
    def make(self) -> tuple[Cluster, FlakyStore, str]:
        flaky = FlakyStore()
        nodes = [Node("flaky", store=flaky)] + [Node(f"node{i}") for i in range(4)]
        cluster = Cluster(nodes, replication_factor=3, read_policy="primary")
        key = keys_of(cluster, cluster.node("flaky"), 1)[0]
        return cluster, flaky, key

    def test_a_failing_replica_is_hinted_like_a_down_one(self):
        cluster, flaky, key = self.make()
        cluster.put(key, "before")
        flaky.broken = True
        cluster.put(key, "after")  # quorum met by the two healthy replicas
        assert cluster.stats().hints_pending == 1
        flaky.broken = False
        cluster.deliver_hints()
        assert copies(cluster, key) == ["after"] * 3

    def test_reads_go_around_a_failing_replica(self):
        cluster, flaky, key = self.make()
        cluster.put(key, "v")
        flaky.broken = True
        with pytest.raises(
            UnavailableError,
            match=r"^all read needs 3 of 3 replicas, 2 answered \(flaky failed: connection refused\)",
        ):
            cluster.get(key, consistency="all")  # the first call meets the failure
        assert cluster.suspected == ("flaky",) and not cluster.node("flaky").is_up
        for level in ("one", "quorum"):
            assert cluster.get(key, consistency=level) == "v"
        # From now on the suspect is not asked: the call is refused up front.
        with pytest.raises(
            UnavailableError,
            match=r"^all read needs 3 of 3 replicas, 2 alive \(flaky down: connection refused\)",
        ) as info:
            cluster.get(key, consistency="all")
        # the cause travels with the error: the suspect's last store error
        assert isinstance(info.value.__cause__, StoreError)
        assert info.value.causes["flaky"] is info.value.__cause__

    def test_the_cvstore_logger_records_a_node_down_hints_and_their_delivery(self, caplog):
        caplog.set_level("DEBUG", logger="cvstore")
        cluster, flaky, key = self.make()
        flaky.broken = True
        cluster.put(key, "while down")
        flaky.broken = False
        assert cluster.probe() == ["flaky"]
        said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "cvstore"]
        assert ("WARNING", "node flaky suspected down: connection refused") in said
        assert any(
            level == "DEBUG" and re.fullmatch(r"1 hint\(s\) for flaky written to node\d", text)
            for level, text in said
        ), said
        assert ("INFO", "node flaky is back up") in said
        assert any(
            level == "INFO" and re.fullmatch(r"1 hint\(s\) delivered to flaky from node\d", text)
            for level, text in said
        ), said
        # a library adds no handler of its own: the application decides where records go
        import logging

        assert [type(h) for h in logging.getLogger("cvstore").handlers] == [logging.NullHandler]

    def test_a_removed_suspect_is_forgotten(self):
        cluster, flaky, key = self.make()
        flaky.broken = True
        cluster.put(key, "v")
        assert cluster.suspected == ("flaky",)
        cluster.remove_node("flaky")
        assert cluster.suspected == ()
        assert "flaky" not in cluster.stats().per_node
        node = Node("flaky2", store=flaky)  # the same store, back under another name
        flaky.broken = False
        cluster.add_node(node)
        assert cluster.suspected == () and node.is_up

    def test_an_all_write_with_a_failing_replica_says_it_may_be_partly_applied(self):
        cluster, flaky, key = self.make()
        flaky.broken = True
        with pytest.raises(UnavailableError, match="may be applied on some replicas") as info:
            cluster.put(key, "v", consistency="all")
        assert isinstance(info.value.__cause__, StoreError)

    def test_batches_go_around_a_failing_replica(self):
        cluster, flaky, _ = self.make()
        keys = [f"b{i}" for i in range(200)]
        cluster.put_many({k: k for k in keys})
        flaky.broken = True
        assert cluster.get_many(keys) == {k: k for k in keys}
        cluster.put_many({k: k + "!" for k in keys})
        flaky.broken = False
        cluster.deliver_hints()
        assert all(copies(cluster, k) == [k + "!"] * 3 for k in keys)


class TestEventual:
    def test_an_eventual_batch_goes_around_a_failing_replica(self):
        flaky = FlakyStore()
        cluster = Cluster([Node("flaky", store=flaky)] + [Node(f"n{i}") for i in range(4)])
        keys = keys_of(cluster, cluster.node("flaky"), 30)
        flaky.broken = True
        cluster.put_many({k: k for k in keys}, consistency="eventual")
        flaky.broken = False
        cluster.deliver_hints()
        assert all(copies(cluster, k) == [k] * 3 for k in keys)

    def test_an_eventual_write_reaches_one_replica_and_the_rest_later(self):
        cluster = make_cluster(5)
        cluster.put("k", "v", consistency="eventual")
        held = copies(cluster, "k")
        assert held.count("v") == 1 and held.count(None) == 2
        assert cluster.stats().hints_pending == 2
        assert cluster.deliver_hints() == 2
        assert copies(cluster, "k") == ["v"] * 3

    def test_eventual_batches_are_handed_over_in_the_background_of_later_writes(self):
        cluster = make_cluster(5)
        cluster.put_many({f"k{i}": i for i in range(2000)}, consistency="eventual")
        # The batch left more hints than the hand-over threshold: they were delivered.
        assert cluster.stats().hints_pending == 0
        assert all(copies(cluster, f"k{i}") == [i] * 3 for i in range(0, 2000, 37))

    def test_a_quorum_read_after_an_eventual_write_sees_it(self):
        cluster = make_cluster(5, read_policy="primary")
        cluster.put("k", "v", consistency="eventual")
        assert cluster.get("k", consistency="quorum") == "v"
