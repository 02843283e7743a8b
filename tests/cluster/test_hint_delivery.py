"""Hint delivery never deletes a hint newer than the one it delivered (issue 21, item 2).

Delivery reads a holder's hints for an owner, writes them to the owner, then drops them.
A newer hint for the same key written between the read and the drop (another client's
write that missed the same owner) must stay and be delivered later; it used to be deleted
by key, so the owner stayed behind until ``repair()``.  The interleaving is made exact: a
real MemoryStore on which the other client's hint lands right after delivery read the hints.
"""

from __future__ import annotations

from cvstore import Node
from cvstore.stores import MemoryStore
from cvstore.versions import HybridClock, Record
from tests.support.drivers import Cluster

BOTH_DRIVERS = True


class RacingStore(MemoryStore):
    """A MemoryStore that runs `on_read` (once) right after its hints are read."""

    on_read = None

    def read_hints(self):
        held = super().read_hints()
        action, self.on_read = self.on_read, None
        if action is not None:
            action()
        return held


def test_a_hint_written_while_delivery_runs_is_kept_and_delivered_later():
    nodes = [Node(f"n{i}", store=RacingStore()) for i in range(4)]
    cluster = Cluster(nodes, replication_factor=3)
    try:
        replicas = {node.name for node in cluster.get_nodes_for_key("k")}
        owner = next(node for node in nodes if node.name in replicas)
        holder = next(node for node in nodes if node.name not in replicas)
        clock = HybridClock(writer_id=1)
        old, new = Record(clock.now(), "old"), Record(clock.now(), "new")
        holder.store.put_hints(owner.name, [(b"k", old)])
        holder.store.on_read = lambda: holder.store.put_hints(owner.name, [(b"k", new)])

        cluster.deliver_hints()
        assert owner.store.get(b"k") == old
        assert list(holder.store.scan_hints()) == [(owner.name, b"k", new)]  # not deleted

        assert cluster.deliver_hints() == 1
        assert owner.store.get(b"k") == new
        assert holder.store.count_hints() == 0
    finally:
        cluster.close()


def test_the_hint_left_behind_is_delivered_by_the_next_call_that_meets_its_owner():
    nodes = [Node(f"n{i}", store=RacingStore()) for i in range(4)]
    cluster = Cluster(nodes, replication_factor=3)
    try:
        replicas = {node.name for node in cluster.get_nodes_for_key("k")}
        owner = next(node for node in nodes if node.name in replicas)
        holder = next(node for node in nodes if node.name not in replicas)
        clock = HybridClock(writer_id=1)
        old, new = Record(clock.now(), "old"), Record(clock.now(), "new")
        holder.store.put_hints(owner.name, [(b"k", old)])
        holder.store.on_read = lambda: holder.store.put_hints(owner.name, [(b"k", new)])
        cluster.deliver_hints()
        assert holder.store.count_hints() == 1

        other = next(
            key
            for key in (f"other{i}" for i in range(100))
            if owner in cluster.get_nodes_for_key(key)
        )
        cluster.put(other, "x")  # a call that meets the owner delivers what it is owed
        assert owner.store.get(b"k") == new
        assert holder.store.count_hints() == 0
    finally:
        cluster.close()
