"""Membership changes while the network fails, checked from recorded histories (issue 21).

Five redis-servers; a cluster created on r1-r3 with its layout on the nodes; three client
processes join it, each through its own proxy links (``connect`` maps a node's name to the
client's link), with clocks offset from each other, writing and reading hot keys at
``quorum``, ``all`` and ``strong`` — every request fenced by the client's epoch.  Two
operators in this process, each behind links of its own, add, remove and re-weight nodes
(r4 and r5 are spare), and one leaves a change half done that the other finishes, while a
seeded schedule (the seed is printed; ``CVSTORE_FAULT_SEED`` replays it) partitions,
delays, blackholes, stalls and flaps every client's and operator's links.  Then every link
heals, an open change is finished, the clients stop and hand over their hints, a fresh client runs
``repair()`` and reads every key at ``all``, and the checker (tests/support/history.py) must
find 0 acknowledged writes lost, 0 stale reads, 0 phantoms, replicas that agree, and every
member on one epoch.  Bounded: CYCLES fault cycles, at most MAX_OPS operations per client.
Both drivers.  Items 4-7 of issue 21 were found by this schedule.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from cvstore import Node, RedisStore
from cvstore.core.layout import Layout
from cvstore.errors import CvstoreError
from tests.support import fault_clients, membership_fault_clients
from tests.support.faultproxy import FaultProxy
from tests.support.history import check

pytestmark = pytest.mark.slow

CLIENTS = 3
SERVERS = 5
NAMES = [f"r{i + 1}" for i in range(SERVERS)]
KEYS = [f"hot{i}" for i in range(8)] + [f"warm{i}" for i in range(40)]
CYCLES = 24  # of faults, each with one membership step
CYCLE = 0.75  # s at most between cycles
SECONDS = 120.0  # a client's bound if the parent never heals
MAX_OPS = 20000  # per client
OFFSETS_MS = [0, 700, -800]

# What the operators try, in turn, one a cycle (a step that fails is tried again later).
PLAN = [
    ("add", "r4"),
    ("weight", "r2", 2.0),
    ("remove", "r1"),
    ("add", "r5"),
    ("abandon", "remove", "r3"),  # left half done by one operator, finished by the other
    ("add", "r1"),
    ("weight", "r2", 1.0),
    ("remove", "r4"),
    ("add", "r3"),
]


def fault(rng: random.Random, links) -> None:
    """One cycle of one party's links: all healed (a third of the time), else one or two
    faulted (an asymmetric partition: this party loses a quorum, others keep it)."""
    for link in links:
        link.heal()
    if rng.random() < 0.35:
        return
    for i in rng.sample(range(len(links)), 2 if rng.random() < 0.25 else 1):
        choice = rng.choices(["partition", "delay", "blackhole", "stall", "flap"], [3, 3, 1, 1, 2])[
            0
        ]
        link = links[i]
        if choice == "delay":
            link.delay(up=0.05, down=0.05, jitter=0.03)
        elif choice == "flap":
            link.flap(period=0.15)
        else:
            getattr(link, choice)()


def direct(server, prefix: str) -> RedisStore:
    return RedisStore(server.url(), prefix=prefix, timeout=2.0)


def clear(server, prefix: str) -> None:
    """What an operator does before adding back a node that left: empty its store."""
    with direct(server, prefix) as store:
        store.clear()


def abandon(servers, prefix: str, action: str, name: str) -> None:
    """Install a changing layout on every node, as a client that dies right after would."""
    stores = {n: direct(s, prefix) for n, s in zip(NAMES, servers)}
    try:
        held = {n: store.read_layout() for n, store in stores.items()}
        current = max(
            (Layout.from_bytes(data) for _, data in held.values() if data is not None),
            key=lambda layout: layout.epoch,
        )
        if current.changing:
            return
        if action == "remove" and name in current.names and len(current.names) > 1:
            target = current.begin(tuple(s for s in current.nodes if s.name != name), action, name)
        else:
            return
        for n in target.install_order():
            stores[n].swap_layout(current.epoch, target.epoch, target.to_bytes())
    finally:
        for store in stores.values():
            store.close()


def step(operator, other, servers, ports, prefix: str, plan_step) -> str:
    """Try one step of the plan through `operator` (finishing an open change first)."""
    operator.finish_change() if operator.layout.changing else None
    kind, *args = plan_step
    names = set(operator.layout.names) if operator.layout else set()
    if kind == "add":
        (name,) = args
        if name in names:
            return "skip"
        clear(servers[NAMES.index(name)], prefix)
        store = RedisStore(f"redis://127.0.0.1:{ports[name]}/0", prefix=prefix, timeout=0.5)
        operator.add_node(Node(name, store=store))
    elif kind == "remove":
        (name,) = args
        if name not in names or len(names) <= 3:
            return "skip"
        operator.remove_node(name)
    elif kind == "weight":
        name, weight = args
        if name not in names:
            return "skip"
        operator.set_weight(name, weight)
    else:  # abandon
        action, name = args
        if name not in names or len(names) <= 3:
            return "skip"
        abandon(servers, prefix, action, name)
        other.finish_change()
    return "done"


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_membership_changes_under_partitions_lose_nothing(
    driver, start_redis, prefix, tmp_path, spawn
):
    seed = int(os.environ.get("CVSTORE_FAULT_SEED", random.randrange(1 << 30)))
    print(f"membership fault schedule seed: {seed} (CVSTORE_FAULT_SEED={seed} replays it)")
    rng = random.Random(seed)
    servers = start_redis(SERVERS)
    from cvstore import Cluster

    made = Cluster.create(
        [Node(n, store=direct(s, prefix)) for n, s in zip(NAMES[:3], servers)], replication_factor=3
    )
    made.close()
    healed = spawn.Event()
    ready = spawn.Barrier(CLIENTS + 1)
    tally = {"done": 0, "skip": 0, "failed": 0}
    failures: dict[str, int] = {}
    cycles = 0
    with FaultProxy() as proxy:
        links = [{n: proxy.link("127.0.0.1", s.port) for n, s in zip(NAMES, servers)}
                 for _ in range(CLIENTS + 2)]  # fmt: skip
        ports = [{n: link.port for n, link in mine.items()} for mine in links]
        procs = [
            spawn.Process(
                target=membership_fault_clients.run_client,
                args=(
                    c + 1,
                    ports[c],
                    "r1",
                    prefix,
                    KEYS,
                    ["quorum", "all", "strong"],
                    OFFSETS_MS[c],
                    SECONDS,
                    MAX_OPS,
                    seed,
                    ready,
                    healed,
                    str(tmp_path / f"client{c + 1}.jsonl"),
                    driver,
                ),
            )
            for c in range(CLIENTS)
        ]
        for p in procs:
            p.start()
        operators = [
            membership_fault_clients.join(ports[CLIENTS + i], "r2", prefix, process=50 + i,
                                          offset_ms=0, timeout=0.5)
            for i in range(2)
        ]  # fmt: skip
        plan = list(PLAN)
        try:
            ready.wait(60)
            while cycles < CYCLES and any(p.is_alive() for p in procs):
                for mine in links:
                    fault(rng, list(mine.values()))
                turn = cycles % 2
                try:
                    outcome = step(operators[turn], operators[1 - turn], servers, ports[CLIENTS + turn],
                                   prefix, plan[0])  # fmt: skip
                except CvstoreError as exc:
                    outcome = "failed"
                    kind = type(exc).__name__
                    failures[kind] = failures.get(kind, 0) + 1
                tally[outcome] += 1
                if outcome != "failed":
                    plan.append(plan.pop(0))
                cycles += 1
                time.sleep(CYCLE * rng.random())
        finally:
            proxy.heal_all()
            for _ in range(10):  # an open change: finished once the links are whole
                try:
                    operators[0].finish_change()
                    break
                except CvstoreError:
                    time.sleep(0.3)
            healed.set()
            for p in procs:
                p.join(90)
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join(5)
            for operator in operators:
                operator.close()
    assert [p.exitcode for p in procs] == [0] * CLIENTS

    ops = []
    for c in range(CLIENTS):
        ops += fault_clients.load_ops(tmp_path / f"client{c + 1}.jsonl")
    # A node's address in the layout is the link of the operator that added it: the fresh
    # client reaches every server by name, directly.
    fresh = membership_fault_clients.join(
        {n: s.port for n, s in zip(NAMES, servers)}, "r2", prefix, process=99, offset_ms=0,
        timeout=2.0,
    )  # fmt: skip
    try:
        assert not fresh.layout.changing
        final, replicas = fault_clients.final_state(fresh, KEYS)
        epochs = {n: fresh.nodes[[m.name for m in fresh.nodes].index(n)].store.read_layout()[0]
                  for n in fresh.layout.names}  # fmt: skip
        members = fresh.layout.names
    finally:
        fresh.close()
    report = check(ops, final, replicas)
    print(
        f"{driver} driver, seed {seed}: {cycles} cycles, {CLIENTS} clients, {SERVERS} servers; "
        f"membership steps {tally} (failed by {failures}), members at the end {members}; "
        f"{report.summary()}"
    )
    replay = f"CVSTORE_FAULT_SEED={seed}"  # in every failure: a report may leave out the print
    assert len(set(epochs.values())) == 1, (replay, epochs)  # every member on one epoch
    # the run faulted and changed the membership
    assert cycles == CYCLES and tally["done"] >= 4, (replay, tally)
    assert report.counts["writes_ok"] > 100, replay
    assert report.counts["reads_ok"] > 100, replay
    assert report.lost == [], (replay, report.lost[:5])
    assert report.stale == [], (replay, report.stale[:5])
    assert report.phantom == [], (replay, report.phantom[:5])
    assert report.disagree == [], (replay, report.disagree)
