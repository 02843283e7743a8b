"""Several clients over the same nodes: an acknowledged write is never lost to a later one.

In-process, two clients are two ``Cluster`` objects whose nodes share the
same stores.  The same scenarios run against real Redis servers in
``tests/redis/test_many_writers_redis.py``.
"""

from __future__ import annotations

import pytest

from cvstore import MemoryStore, Node
from cvstore.versions import HybridClock, Record, version_wall_ms
from tests.support import writers_scenarios as sc
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster
ALL_PLACEMENTS = True  # and under every registered placement (tests/conftest.py)

ROUNDS = 200


class Contended(MemoryStore):
    """A replica that another client, its clock just ahead, writes to before each write."""

    def __init__(self):
        super().__init__()
        self.refused = 0

    def write_many(self, keys, records):
        for key, record in zip(keys, records):
            other = Record(record.version + (1 << 32), f"other {record.version}")
            super().write_many([key], [other])
        held = super().write_many(keys, records)
        self.refused += len(held) - held.count(None)
        return held


def shared_stores(count: int = 3) -> list[MemoryStore]:
    return [MemoryStore() for _ in range(count)]


def client_factory(stores: list[MemoryStore]):
    def make(clock: HybridClock) -> Cluster:
        nodes = [Node(f"n{i}", store=store) for i, store in enumerate(stores)]
        return Cluster(nodes, replication_factor=3, clock=clock)

    return make


@pytest.mark.parametrize("level", ["quorum", "all", "strong"])
@pytest.mark.parametrize("scenario", sorted(sc.SCENARIOS))
def test_no_acknowledged_write_is_lost_to_a_later_one(scenario, level):
    make = client_factory(shared_stores())
    assert sc.SCENARIOS[scenario](make, level, ROUNDS) == []


class TestRefusals:
    def test_a_write_refused_by_a_newer_version_is_stamped_above_it(self):
        stores = shared_stores()
        future = HybridClock(writer_id=9, wall_ms=lambda: sc.T0 + 3_600_000).now()  # an hour ahead
        for store in stores:
            store.put(b"k", Record(future, "from the future"))
        wall = sc.Wall()
        client = client_factory(stores)(sc.clock(wall, 1))
        client.put("k", "now")
        held = [store.get(b"k") for store in stores]
        assert [r.value for r in held] == ["now"] * 3
        assert all(r.version > future for r in held)
        # the clock moved past what refused it: later stamps stay above too
        assert client.clock.now() > future and version_wall_ms(future) == sc.T0 + 3_600_000

    @pytest.mark.parametrize("level", ["quorum", "all", "strong", "one", "eventual"])
    def test_a_write_refused_by_concurrent_writes_is_ordered_before_them(self, level):
        """Issue 21, item 1: a client behind a faster writer is not shut out of the key."""

        stores = [Contended() for _ in range(3)]
        client = client_factory(stores)(sc.clock(sc.Wall(), 1))
        client.put("k", "mine", consistency=level)  # raised ConflictError after 8 attempts
        # stamped again once, above the first refusal; the second was by a write that
        # arrived while this one was under way: this one is ordered before it
        sent_to = 1 if level == "eventual" else 3  # "one" sends to every replica too
        assert sum(store.refused for store in stores) == 2 * sent_to
        held = [store.get(b"k") for store in stores if store.get(b"k") is not None]
        assert len(held) == sent_to and all(r.value.startswith("other ") for r in held)
        assert client.get("k", consistency="all") == held[0].value
        assert client.clock.now() > held[0].version  # later writes go above what superseded it
        client.put_many({"k": "mine", "j": "mine too"}, consistency=level)
        for key in (b"k", b"j"):
            held = [store.get(key) for store in stores if store.get(key) is not None]
            assert held and all(r.value.startswith("other ") for r in held)

    def test_refusals_on_a_minority_do_not_fail_a_quorum_write(self):
        stores = shared_stores()
        ahead = HybridClock(writer_id=9, wall_ms=lambda: sc.T0 + 60_000).now()
        stores[0].put(b"k", Record(ahead, "newer on one replica"))  # e.g. a concurrent writer
        client = client_factory(stores)(sc.clock(sc.Wall(), 1))
        client.put("k", "mine", consistency="quorum")  # two replicas applied it
        assert [store.get(b"k").value for store in stores].count("mine") >= 2

    def test_a_write_through_node_storage_refused_by_a_concurrent_write_is_ordered_before_it(
        self,
    ):
        stores = [Contended() for _ in range(3)]
        client = client_factory(stores)(sc.clock(sc.Wall(), 1))
        primary = client.get_node_for_key("k")
        primary.storage["k"] = "mine"  # raised ConflictError after 8 attempts
        assert primary.store.refused == 2 and primary.storage["k"].startswith("other ")

    def test_a_write_through_node_storage_is_stamped_above_what_the_node_holds(self):
        stores = shared_stores()
        a = client_factory(stores)(sc.clock(sc.Wall(sc.T0), sc.HIGH))
        b = client_factory(stores)(sc.clock(sc.Wall(sc.T0 - 60_000), sc.LOW))
        a.put("k", "from a", consistency="all")
        primary = b.get_node_for_key("k")
        primary.storage["k"] = "through storage"  # B's clock is a minute behind
        assert primary.store.get(b"k").value == "through storage"
        b.repair()
        assert a.get("k", consistency="all") == "through storage"


class TestReadsObserve:
    @pytest.mark.parametrize("level", ["one", "eventual", "quorum"])
    def test_a_client_that_read_a_value_writes_above_it(self, level):
        stores = shared_stores()
        a = client_factory(stores)(sc.clock(sc.Wall(sc.T0), sc.HIGH))
        b = client_factory(stores)(sc.clock(sc.Wall(sc.T0 - 60_000), sc.LOW))
        for i in range(50):
            a.put(f"k{i}", "from a", consistency="all")
            assert b.get(f"k{i}", consistency=level) == "from a"
            before = b.clock.now()
            read = stores[0].get(f"k{i}".encode()).version
            assert before > read  # the read moved B's clock past the version it returned

    def test_a_batch_read_observes_the_newest_version_it_returns(self):
        stores = shared_stores()
        a = client_factory(stores)(sc.clock(sc.Wall(sc.T0), sc.HIGH))
        b = client_factory(stores)(sc.clock(sc.Wall(sc.T0 - 60_000), sc.LOW))
        a.put_many({f"k{i}": i for i in range(100)})
        newest = max(store.get(f"k{i}".encode()).version for store in stores for i in range(100))
        assert b.get_many([f"k{i}" for i in range(100)], consistency="one") == {
            f"k{i}": i for i in range(100)
        }
        assert b.clock.now() > newest
