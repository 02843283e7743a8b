"""Threads: one cluster shared by writers, readers and membership changes at once."""

from __future__ import annotations

import threading
import time

import pytest

from cvstore import Cluster, Node

WRITERS = 4
KEYS_PER_WRITER = 150
ROUNDS = 6
CHANGES = 10


def test_concurrent_puts_and_gets_while_nodes_join_and_leave():
    cluster = Cluster([Node(f"base{i}") for i in range(4)], replication_factor=3)
    last: list[dict[str, int]] = [{} for _ in range(WRITERS)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(w: int) -> None:
        # Each writer owns its keys, so "the last value written" is well defined.
        keys = [f"w{w}:k{i}" for i in range(KEYS_PER_WRITER)]
        try:
            rnd = 0
            while rnd < ROUNDS or not stop.is_set():  # at least ROUNDS, and until changes end
                if rnd % 2:
                    batch = {key: rnd * 1000 + i for i, key in enumerate(keys)}
                    cluster.put_many(batch)
                    last[w].update(batch)
                else:
                    for i, key in enumerate(keys):
                        cluster.put(key, rnd * 1000 + i)
                        last[w][key] = rnd * 1000 + i
                        # A read right after the write sees it (quorum writes and reads).
                        got = cluster.get(key)
                        assert got == last[w][key], (key, got, last[w][key])
                seen = cluster.get_many(keys)
                assert seen == {k: last[w][k] for k in keys}
                rnd += 1
        except BaseException as exc:  # noqa: BLE001 - the main thread raises it
            errors.append(exc)

    def membership() -> None:
        members = [node.name for node in cluster.nodes]
        try:
            for i in range(CHANGES):  # replace the oldest node, one at a time
                cluster.add_node(Node(f"extra{i}"))
                cluster.remove_node(members.pop(0))
                members.append(f"extra{i}")
        except BaseException as exc:  # noqa: BLE001 - the main thread raises it
            errors.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    changer = threading.Thread(target=membership)
    changer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    changer.join()
    assert not errors, errors[0]
    assert {n.name for n in cluster.nodes} == {f"extra{i}" for i in range(CHANGES - 4, CHANGES)}

    expected = {k: v for part in last for k, v in part.items()}
    for key, value in expected.items():  # every replica holds the last value: none lost or stale
        assert [n.store.get(key.encode()).value for n in cluster.get_nodes_for_key(key)] == [
            value
        ] * 3
    assert cluster.get_many(list(expected), consistency="all") == expected
    assert len(cluster) == WRITERS * KEYS_PER_WRITER
    # A write that raced a hand-off may leave a copy on a node that no longer
    # replicates its key; it is never read, and repair removes it.
    report = cluster.repair()
    assert report.repaired == 0
    for node in cluster.nodes:
        for kb in node.store.keys():  # noqa: SIM118 - Store.keys(), not a dict's
            assert node in cluster.get_nodes_for_key(kb)


def test_readers_never_see_a_half_changed_ring():
    cluster = Cluster([Node(f"n{i}") for i in range(5)], replication_factor=3)
    data = {f"k{i}": i for i in range(400)}
    cluster.put_many(data)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                for key, value in list(data.items())[::7]:
                    assert cluster.get(key) == value
                    replicas = cluster.get_nodes_for_key(key)
                    assert len({n.name for n in replicas}) == 3
                time.sleep(0.001)  # let the membership thread have the interpreter too
        except BaseException as exc:  # noqa: BLE001 - the main thread raises it
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(5):
        cluster.add_node(Node(f"x{i}"))
        cluster.remove_node(f"x{i}")
    stop.set()
    for t in readers:
        t.join()
    assert not errors, errors[0]
    assert cluster.get_many(list(data), consistency="all") == data


@pytest.mark.slow
def test_batch_calls_from_two_threads_leave_the_collector_running():
    """No call switches off the garbage collector for the process (or any part of it)."""
    import gc
    import weakref

    cluster = Cluster([Node(f"n{i}") for i in range(4)], replication_factor=3)
    done = threading.Event()
    errors: list[BaseException] = []

    def batches(thread: int) -> None:
        keys = [f"t{thread}:k{i}" for i in range(20_000)]
        try:
            for rnd in range(15):
                cluster.put_many({k: rnd for k in keys})
                assert cluster.get_many(keys[::7]) == {k: rnd for k in keys[::7]}
        except BaseException as exc:  # noqa: BLE001 - the main thread raises it
            errors.append(exc)

    class Cycle:
        pass

    freed = []
    samples = []
    threads = [threading.Thread(target=batches, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        samples.append(gc.isenabled())
        cycle = Cycle()
        cycle.me = cycle  # garbage only the cyclic collector can free
        freed.append(weakref.ref(cycle))
        del cycle
        time.sleep(0.001)
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert samples and all(samples)  # the collector was never switched off
    # cycles made while the batches ran were freed by the collector on its own
    assert sum(ref() is None for ref in freed) > len(freed) // 2
