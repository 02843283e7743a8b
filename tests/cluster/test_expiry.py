"""Keys that expire: absent at every level once expired, never brought back, never lost before.

A fake wall clock drives both the version stamps and the expiry, so each
test says exactly when a key expires and when its last copies may go
(``tombstone_grace`` after it expired, as for a delete).
"""

from __future__ import annotations

import pytest

from cvstore import Node
from cvstore.core.records import Expiring
from cvstore.versions import HybridClock
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster

T0 = 1_700_000_000_000
HOUR = 3600.0
LEVELS = ("one", "quorum", "all", "strong", "eventual")


class Wall:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


def make(wall: Wall, count: int = 5, **kwargs):
    kwargs.setdefault("hint_window", HOUR)
    kwargs.setdefault("tombstone_grace", 2 * HOUR)
    clock = HybridClock(writer_id=1, wall_ms=wall)
    return Cluster([Node(f"n{i}") for i in range(count)], clock=clock, **kwargs)


def held(cluster, key: str) -> list[object]:
    """What each replica's store holds for `key` (None for nothing)."""
    out = []
    for node in cluster.get_nodes_for_key(key):
        record = node.store.get(key.encode())
        out.append(None if record is None else record.value)
    return out


class TestReads:
    def test_a_key_reads_until_it_expires_then_is_absent_at_every_level(self):
        wall = Wall()
        c = make(wall)
        c.put("k", "v", ttl=60)
        c.put_many({f"b{i}": str(i) for i in range(50)}, ttl=60)
        for level in LEVELS:
            assert c.get("k", consistency=level) == "v"
        assert len(c) == 51 and "k" in c
        wall.advance(59.999)
        assert c.get("k", consistency="all") == "v"
        wall.advance(0.001)  # the moment it expires
        for level in LEVELS:
            assert c.get("k", "gone", consistency=level) == "gone"
            assert c.get_many(["k", "b1"], consistency=level) == {}
        assert "k" not in c and len(c) == 0 and list(c) == [] and c == {}
        with pytest.raises(KeyError):
            c["k"]
        stats = c.stats()
        assert sum(stats.keys_per_node.values()) == 0

    def test_a_later_write_without_a_ttl_makes_it_permanent(self):
        wall = Wall()
        c = make(wall)
        c.put("k", "short", ttl=10)
        c.put("k", "for good")
        wall.advance(HOUR)
        assert c.get("k", consistency="all") == "for good"
        c.put("k", "short again", ttl=10)  # and the other way round
        wall.advance(11)
        assert c.get("k") is None

    @pytest.mark.parametrize(
        ("ttl", "error", "match"),
        [
            (0, ValueError, "ttl must be a finite number of seconds > 0, got 0"),
            (-1, ValueError, "got -1"),
            (float("inf"), ValueError, "got inf"),
            (float("nan"), ValueError, "got nan"),
            (1e12, ValueError, "ttl must be at most ten years"),
            pytest.param(
                2**1024,  # too large for a float: no OverflowError, the same ValueError
                ValueError,
                r"ttl must be at most ten years \(315360000 s\), got 1\.797e\+308",
                id="2**1024",
            ),
            pytest.param(-(2**1024), ValueError, r"seconds > 0, got -1\.797e\+308", id="-2**1024"),
            pytest.param(10**400, ValueError, "ttl must be at most ten years", id="10**400"),
            ("60", TypeError, "ttl must be a number of seconds or None, got str"),
            (True, TypeError, "got bool"),
        ],
    )
    def test_a_bad_ttl_is_refused_and_writes_nothing(self, ttl, error, match):
        c = make(Wall())
        with pytest.raises(error, match=match):
            c.put("k", "v", ttl=ttl)
        with pytest.raises(error, match=match):
            c.put_many({"k": "v"}, ttl=ttl)
        assert len(c) == 0


class TestNothingComesBack:
    def test_not_through_an_outage_with_hints(self):
        wall = Wall()
        c = make(wall)
        c.put("k", "old", consistency="all")  # permanent, on every replica
        victim = c.get_nodes_for_key("k")[2]
        victim.fail()
        c.put("k", "new", ttl=60)  # quorum; the victim gets a hint
        wall.advance(61)
        victim.recover()
        assert c.deliver_hints() == 1
        assert held(c, "k")[2] == Expiring("new", T0 + 60_000)  # the expiry came with it
        for level in LEVELS:
            assert c.get("k", consistency=level) is None

    def test_not_when_the_hint_was_lost_and_repair_or_read_repair_meet_the_old_copy(self):
        wall = Wall()
        c = make(wall, hint_window=0.0, tombstone_grace=HOUR)  # hints expire at once
        c.put("k", "old", consistency="all")
        victim = c.get_nodes_for_key("k")[2]
        victim.fail()
        c.put("k", "new", ttl=60)
        wall.advance(61)
        victim.recover()
        c.deliver_hints()  # dropped: past the hint window
        assert held(c, "k")[2] == "old"  # the victim still holds the old permanent value
        # a read that meets the write's quorum sees the expired copy is newest: absent (a
        # read at one may ask the victim until repair, as after a delete it missed)
        for level in ("quorum", "all", "strong"):
            assert c.get("k", consistency=level) is None
        report = c.repair()
        assert report.complete and held(c, "k") == [Expiring("new", T0 + 60_000)] * 3
        for level in LEVELS:
            assert c.get("k", consistency=level) is None
        wall.advance(HOUR)  # expired for longer than the grace period: its copies go
        c.repair()  # (the stores drop them as they list their records, as Redis does on time)
        assert held(c, "k") == [None, None, None] and c.get("k", consistency="all") is None

    def test_not_through_a_membership_change(self):
        wall = Wall()
        c = make(wall, count=3)
        c.put_many({f"e{i}": "expiring" for i in range(300)}, ttl=60)
        c.put_many({f"p{i}": "permanent" for i in range(300)})
        wall.advance(61)
        c.add_node(Node("n3"))
        c.remove_node("n0")
        assert c.get_many([f"e{i}" for i in range(300)], consistency="all") == {}
        assert c.get_many([f"p{i}" for i in range(300)], consistency="all") == {
            f"p{i}": "permanent" for i in range(300)
        }
        assert len(c) == 300


class TestAReplicaBackFromALongOutage:
    """A replica down for longer than ``tombstone_grace`` while keys expire or are deleted.

    Its copies are the old values from before the outage.  The expired records on the
    other replicas are what keeps those old copies from coming back: they may go only
    when a tombstone could (every replica current), whatever runs meanwhile.
    """

    KEYS = tuple(f"k{i}" for i in range(200))

    def outage(self, wall: Wall, end: str):
        c = make(wall, count=3, hint_window=HOUR, tombstone_grace=2 * HOUR)
        c.put_many(dict.fromkeys(self.KEYS, "old"), consistency="all")
        victim = c.node("n1")
        victim.fail()
        if end == "ttl":
            c.put_many(dict.fromkeys(self.KEYS, "new"), ttl=60)
        else:
            for k in self.KEYS:
                c.delete(k)
        for _ in range(4):  # the outage lasts 3 h; repair, reads and scans run meanwhile
            wall.advance(HOUR)
            report = c.repair()
            assert not report.complete and report.purged == 0
            assert c.get_many(list(self.KEYS), consistency="quorum") == {} and len(c) == 0
        victim.recover()
        return c, victim

    @pytest.mark.parametrize("end", ["ttl", "delete"])
    def test_nothing_comes_back_by_reads_repair_or_iteration(self, end):
        wall = Wall()
        c, _ = self.outage(wall, end)
        assert c.deliver_hints() == 0  # the hints were dropped: past the hint window
        # reads that meet the write's quorum see the dead record is newest, and read
        # repair carries it to the victim (a read at one may still ask the victim
        # until repair, after a delete as after an expiry)
        for level in ("quorum", "all", "strong"):
            assert c.get_many(list(self.KEYS), consistency=level) == {}, level
            assert [c.get(k, consistency=level) for k in self.KEYS[:20]] == [None] * 20
        assert len(c) == 0 and list(c) == []
        report = c.repair()  # every replica up and current: now the dead copies may go
        assert report.complete
        assert report.purged == len(self.KEYS)
        for level in LEVELS:
            assert c.get_many(list(self.KEYS), consistency=level) == {}, level
        assert all(node.store.count() == 0 for node in c.nodes)
        assert c.get_many(list(self.KEYS), consistency="all") == {} and len(c) == 0

    @pytest.mark.parametrize("end", ["ttl", "delete"])
    def test_nothing_comes_back_when_repair_runs_first(self, end):
        wall = Wall()
        c, victim = self.outage(wall, end)
        old_copies = sum(1 for k in self.KEYS if victim in c.get_nodes_for_key(k))
        assert victim.store.count() == old_copies  # still the old values
        c.repair()
        assert victim.store.count() == 0  # (the purge removed its old copies too)
        assert c.get_many(list(self.KEYS), consistency="all") == {} and len(c) == 0


class TestNothingIsLost:
    def test_an_unexpired_key_survives_an_outage_repair_and_a_change(self):
        wall = Wall()
        c = make(wall, count=4)
        c.put_many({f"k{i}": str(i) for i in range(200)}, ttl=HOUR)
        c.node("n1").fail()
        c.put_many({f"k{i}": f"new{i}" for i in range(0, 200, 2)}, ttl=HOUR)
        c.node("n1").recover()
        c.repair()
        c.add_node(Node("n4"))
        wall.advance(HOUR - 1)
        expected = {f"k{i}": (f"new{i}" if i % 2 == 0 else str(i)) for i in range(200)}
        assert c.get_many(list(expected), consistency="all") == expected
        wall.advance(1)
        assert c.get_many(list(expected)) == {}

    def test_expired_records_go_when_repair_purges_them_as_tombstones(self):
        wall = Wall()
        c = make(wall, count=3, tombstone_grace=2 * HOUR)
        c.put_many({f"k{i}": "v" for i in range(100)}, ttl=60)
        stores = [node.store for node in c.nodes]
        wall.advance(61)
        assert len(c) == 0 and [s.count() for s in stores] == [100, 100, 100]  # lingering
        assert c.repair().purged == 0  # not yet: within the grace period
        wall.advance(2 * HOUR)
        assert len(c) == 0 and [s.count() for s in stores] == [100, 100, 100]  # stores keep them
        assert c.repair().purged == 100
        assert [s.count() for s in stores] == [0, 0, 0]
