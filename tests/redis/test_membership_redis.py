"""Membership on real redis-servers, with real client processes: no client acts on an old layout.

Client processes (``tests/support/membership_workers.py``) join by address, as web
workers would; the parent starts and kills servers and checks what every
process acknowledged against what a fresh client reads afterwards.
"""

from __future__ import annotations

import time

import pytest

from cvstore import Cluster, Node, RedisStore
from cvstore.core.layout import Layout
from tests.support import membership_workers as workers

PREFIX = workers.PREFIX


def store(server) -> RedisStore:
    return RedisStore(server.url(), prefix=PREFIX, timeout=1.0)


def raw_layout(server) -> tuple[int, bytes | None]:
    with store(server) as s:
        return s.read_layout()


def close(*clusters: Cluster) -> None:
    for cluster in clusters:
        cluster.close()
        for node in cluster.nodes:
            node.store.close()


@pytest.mark.parametrize("rf", [1, 2, 3])
def test_two_workers_one_adds_a_node_nothing_missing_or_stale(start_redis, rf):
    servers = start_redis(4)
    a = Cluster(
        [Node(f"r{i + 1}", store=store(s)) for i, s in enumerate(servers[:3])],
        replication_factor=rf,
    )
    b = Cluster.join([servers[0].url()], prefix=PREFIX)
    keys = [f"key:{i}" for i in range(2000)]
    a.put_many({k: "v1" for k in keys})
    b.add_node(Node("r4", store=store(servers[3])))
    got = a.get_many(keys)  # A still held epoch 1: refused, loads epoch 3, asks again
    assert sum(v != "v1" for v in got.values()) + (2000 - len(got)) == 0
    a.put_many({k: "v2" for k in keys})
    got = b.get_many(keys)
    assert sum(v != "v2" for v in got.values()) + (2000 - len(got)) == 0
    assert a.layout == b.layout and a.layout.epoch == 3
    assert {raw_layout(s)[0] for s in servers} == {3}
    close(a, b)


def test_a_sleeping_client_wakes_to_the_right_nodes(start_redis):
    servers = start_redis(4)
    creator = Cluster.create([Node(f"r{i + 1}", store=store(s)) for i, s in enumerate(servers[:3])])
    sleeper = Cluster.join([servers[1].url()], prefix=PREFIX)
    sleeper.put("k", "before")
    creator.add_node(Node("r4", store=store(servers[3])))
    creator.remove_node("r1")
    assert creator.layout.epoch == 5 and creator.layout.names == ("r2", "r3", "r4")
    with store(servers[0]) as r1:
        before = r1.count()
        sleeper.put("k", "after")
        sleeper.put_many({f"j{i}": str(i) for i in range(200)})
        assert r1.count() == before  # nothing written to the node that left
        assert r1.read_layout()[0] == 5  # it learned the layout that no longer places it
    assert sleeper.layout.epoch == 5 and [n.name for n in sleeper.nodes] == ["r2", "r3", "r4"]
    assert sleeper.get("k", consistency="all") == "after"
    assert creator.get_many([f"j{i}" for i in range(200)], consistency="all") == {
        f"j{i}": str(i) for i in range(200)
    }
    close(creator, sleeper)


@pytest.mark.slow
def test_two_processes_adding_at_the_same_moment_one_wins(start_redis, spawn):
    servers = start_redis(5)
    creator = Cluster.create([Node(f"r{i + 1}", store=store(s)) for i, s in enumerate(servers[:3])])
    barrier = spawn.Barrier(2)
    out = spawn.Queue()
    procs = [
        spawn.Process(
            target=workers.racer, args=(servers[0].url(), name, server.url(), barrier, out)
        )
        for name, server in (("r4", servers[3]), ("r5", servers[4]))
    ]
    for p in procs:
        p.start()
    results = {
        name: (outcome, detail) for name, outcome, detail in (out.get(timeout=60) for _ in procs)
    }
    for p in procs:
        p.join(timeout=30)
    assert sorted(outcome for outcome, _ in results.values()) == ["added", "conflict"], results
    winner = next(name for name, (outcome, _) in results.items() if outcome == "added")
    loser = "r5" if winner == "r4" else "r4"
    assert results[loser][1] == sorted(
        ["r1", "r2", "r3", winner]
    )  # the error carries the new layout
    members = servers[:3] + [servers[3] if winner == "r4" else servers[4]]
    held = {raw_layout(s) for s in members}
    assert len(held) == 1
    epoch, data = held.pop()
    assert epoch == 3 and Layout.from_bytes(data).names == ("r1", "r2", "r3", winner)
    assert raw_layout(servers[4] if winner == "r4" else servers[3]) == (0, None)
    close(creator)


@pytest.mark.slow
def test_client_processes_lose_nothing_through_changes_and_a_killed_server(start_redis, spawn):
    servers = start_redis(4, appendonly=True)
    creator = Cluster.create([Node(f"r{i + 1}", store=store(s)) for i, s in enumerate(servers[:3])])
    seed = servers[2].url()
    stop = spawn.Event()
    out, commands, changes = spawn.Queue(), spawn.Queue(), spawn.Queue()
    writers = [
        spawn.Process(target=workers.writer, args=(seed, proc, 5000, 60.0, stop, out))
        for proc in range(3)
    ]
    changer = spawn.Process(target=workers.changer, args=(seed, commands, changes))
    for p in [*writers, changer]:
        p.start()
    try:
        commands.put(("add", "r4", servers[3].url()))
        assert changes.get(timeout=60)[:3] == ("done", "add", "r4")
        servers[0].kill()  # SIGKILL: r1 is gone mid-flight
        time.sleep(1.0)  # the writers go on at quorum, hinting for r1
        servers[0].restart()  # the AOF brings its data back
        commands.put(("remove", "r2"))
        done = changes.get(timeout=60)
        assert done[:3] == ("done", "remove", "r2"), done
        epoch = done[4]
    finally:
        commands.put(None)
        stop.set()
    results = [out.get(timeout=90) for _ in writers]
    for p in [*writers, changer]:
        p.join(timeout=30)
        assert not p.is_alive()
    violations = [v for _, _, vs, _ in results for v in vs]
    assert violations == []
    counts = [c for _, _, _, c in results]
    assert all(c["acked"] > workers.MIN_WORK and c["reads"] > workers.MIN_WORK for c in counts), (
        counts
    )
    # a fresh client reads every acknowledged write with its latest value
    fresh = Cluster.join([servers[3].url()], prefix=PREFIX)
    assert fresh.layout.epoch == epoch == 5 and fresh.layout.names == ("r1", "r3", "r4")
    fresh.deliver_hints()
    last: dict[str, int] = {}
    for proc, acked, _, _ in results:
        for key, seq in acked.items():
            if key.startswith("shared:"):
                last[key] = max(last.get(key, -1), seq)
            else:
                last[key] = seq
    got = fresh.get_many(list(last), consistency="quorum")
    stale = {
        key: got.get(key)
        for key, seq in last.items()
        if key not in got or (not key.startswith("shared:") and workers._seq(got[key]) < seq)
    }
    assert stale == {}
    print(f"\nclient processes: {counts}; every acknowledged write read back")
    close(creator, fresh)


def test_shared_false_keeps_the_membership_in_the_client(start_redis):
    servers = start_redis(2)
    nodes = [Node(f"r{i + 1}", store=store(s)) for i, s in enumerate(servers)]
    single = Cluster(nodes, replication_factor=2, shared=False)
    single.put("k", "v")
    assert single.layout is None and all(raw_layout(s) == (0, None) for s in servers)
    assert single.get("k", consistency="all") == "v"
    close(single)
