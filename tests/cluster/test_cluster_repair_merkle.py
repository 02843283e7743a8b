"""Repair compares replicas with Merkle trees: only differing buckets are read and copied.

The stores count the records they hand out with values and the records
written to them, so the tests see exactly what repair transferred.
"""

from __future__ import annotations

from cvstore import MemoryStore, Node
from cvstore.versions import TOMBSTONE
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster
ALL_PLACEMENTS = True  # and under every registered placement (tests/conftest.py)


class CountingStore(MemoryStore):
    """A MemoryStore that counts records read with their values and records written."""

    def __init__(self) -> None:
        super().__init__()
        self.read = self.written = 0

    def get(self, key):
        record = super().get(key)
        self.read += record is not None
        return record

    def get_many(self, keys):
        records = super().get_many(keys)
        self.read += sum(r is not None for r in records)
        return records

    def scan(self):
        items = list(super().scan())
        self.read += len(items)
        return iter(items)

    def write_many(self, keys, records):  # every write comes here
        self.written += len(keys)
        return super().write_many(keys, records)


def moved(cluster):
    stores = [node.store for node in cluster.nodes]
    return sum(s.read for s in stores), sum(s.written for s in stores)


def reset(cluster):
    for node in cluster.nodes:
        node.store.read = node.store.written = 0


def test_repair_reads_and_writes_only_what_differs():
    cluster = Cluster([Node(f"n{i}", store=CountingStore()) for i in range(5)])
    keys = [f"k{i}" for i in range(5000)]
    cluster.put_many({k: "v1" for k in keys}, consistency="all")
    # Damage: a newer value on one replica of 4 keys, a replica's copy gone for 3 more.
    for k in keys[:4]:
        cluster.get_nodes_for_key(k)[1].storage[k] = "v2"
    for k in keys[10:13]:
        cluster.get_nodes_for_key(k)[2].store.delete(k.encode())
    reset(cluster)
    report = cluster.repair()
    read, written = moved(cluster)
    print(
        f"\nrepair over 5000 keys x 3: {report.leaves_differing} of {report.leaves_compared} "
        f"leaves differ, {read} records read, {written} written"
    )
    assert report.records_fetched == read == 7  # one source per damaged key
    assert written == report.repaired == 4 * 2 + 3
    assert 1 <= report.leaves_differing <= 7 < report.leaves_compared
    for k in keys:
        expected = "v2" if k in keys[:4] else "v1"
        assert [n.store.get(k.encode())[1] for n in cluster.get_nodes_for_key(k)] == [expected] * 3
    reset(cluster)
    again = cluster.repair()
    assert again.leaves_differing == 0 and again.records_fetched == 0 and again.repaired == 0
    assert moved(cluster) == (0, 0)


def test_repair_moves_strays_and_purges_old_tombstones_without_reading_the_rest():
    cluster = Cluster(
        [Node(f"n{i}", store=CountingStore()) for i in range(5)], hint_window=0, tombstone_grace=0
    )
    keys = [f"k{i}" for i in range(1000)]
    cluster.put_many({k: "v" for k in keys}, consistency="all")
    outsider = next(n for n in cluster.nodes if n not in cluster.get_nodes_for_key("stray"))
    outsider.storage["stray"] = "lost copy"  # on a node that does not replicate it
    cluster.delete(keys[0], consistency="all")
    reset(cluster)
    report = cluster.repair()
    read, written = moved(cluster)
    assert report.strays_removed == 1 and report.purged == 1
    assert read == 1 and written == 3  # the stray, copied to its three replicas
    assert outsider.store.get(b"stray") is None
    assert cluster.get("stray", consistency="all") == "lost copy"
    assert all(n.store.get(keys[0].encode()) is None for n in cluster.nodes)
    assert not any(r[1] is TOMBSTONE for n in cluster.nodes for _, r in n.store.scan())
