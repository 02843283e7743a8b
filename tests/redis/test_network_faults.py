"""Network faults a kill cannot make, checked from recorded histories (issue 21).

Three redis-servers; three client processes, each a ``Cluster`` over its own proxy links
(tests/support/faultproxy.py) to the three servers, with clocks offset from each other;
a seeded schedule (the seed is printed, ``CVSTORE_FAULT_SEED`` replays it) changes each
client's links every cycle: partitions of some servers, +50 ms links with jitter,
blackholes, stalls delivered late, flapping links.  Then every link heals, the clients
hand over their hints, a fresh client runs ``repair()`` and reads every key at ``all``,
and the checker (tests/support/history.py) must find 0 acknowledged writes lost, 0 stale
reads, 0 phantoms and replicas that agree, at ``quorum``, ``all`` and ``strong``
(each operation picks one at random).  Bounded: 15 s of faults, at most 4,000 operations per
client; about 20-25 s in all.  Run once with ``Cluster`` and once with ``AsyncCluster`` (four
concurrent callers per client process).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time

import pytest

from tests.support import fault_clients
from tests.support.faultproxy import FaultProxy
from tests.support.history import check

pytestmark = pytest.mark.slow

CLIENTS = 3
SERVERS = 3
KEYS = [f"hot{i}" for i in range(8)]
SECONDS = 15.0  # of faults
CYCLE = 0.75  # s between schedule changes
MAX_OPS = 4000  # per client
OFFSETS_MS = [0, 700, -800]  # each client's clock against the machine's


def faults(rng: random.Random, links) -> list[str]:
    """Change one client's links for one cycle; returns what was done, for the report.

    About a third of the cycles leave the client's links all healed; the others fault one
    link, or two (an asymmetric partition: this client loses a quorum, others keep it).
    """
    for link in links:
        link.heal()
    if rng.random() < 0.35:
        return ["pass"] * len(links)
    done = ["pass"] * len(links)
    for server in rng.sample(range(len(links)), 2 if rng.random() < 0.25 else 1):
        choice = rng.choices(
            ["partition", "delay", "blackhole", "stall", "flap"], weights=[3, 3, 1, 1, 2]
        )[0]
        link = links[server]
        if choice == "partition":
            link.partition()
        elif choice == "delay":
            link.delay(up=0.05, down=0.05, jitter=0.03)
        elif choice == "blackhole":
            link.blackhole()
        elif choice == "stall":
            link.stall()
        else:
            link.flap(period=0.15)
        done[server] = choice
    return done


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_partitions_delays_and_skewed_clocks_lose_nothing_at_quorum_and_all(
    driver, start_redis, prefix, tmp_path
):
    seed = int(os.environ.get("CVSTORE_FAULT_SEED", random.randrange(1 << 30)))
    print(f"network fault schedule seed: {seed} (CVSTORE_FAULT_SEED={seed} replays it)")
    rng = random.Random(seed)
    servers = start_redis(SERVERS)
    ctx = multiprocessing.get_context("spawn")
    healed = ctx.Event()
    ready = ctx.Barrier(CLIENTS + 1)
    cycles = 0
    tally: dict[str, int] = {}
    with FaultProxy() as proxy:
        links = [[proxy.link("127.0.0.1", s.port) for s in servers] for _ in range(CLIENTS)]
        procs = [
            ctx.Process(
                target=fault_clients.run_client,
                args=(
                    c + 1,
                    [link.port for link in links[c]],
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
        try:
            ready.wait(60)  # every client has made its Cluster
            end = time.monotonic() + SECONDS
            while time.monotonic() < end and any(p.is_alive() for p in procs):
                for c in range(CLIENTS):
                    for choice in faults(rng, links[c]):
                        tally[choice] = tally.get(choice, 0) + 1
                cycles += 1
                time.sleep(CYCLE)
        finally:
            proxy.heal_all()
            healed.set()
            for p in procs:
                p.join(90)
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join(5)
    assert [p.exitcode for p in procs] == [0] * CLIENTS

    ops = []
    for c in range(CLIENTS):
        ops += fault_clients.load_ops(tmp_path / f"client{c + 1}.jsonl")

    fresh = fault_clients.make_cluster(
        [s.port for s in servers], prefix, process=99, offset_ms=0, timeout=2.0
    )
    try:
        fresh.deliver_hints()
        fresh.repair()
        final = {key: fresh.get(key, consistency="all") for key in KEYS}
        replicas = {}
        for key in KEYS:
            held = []
            for node in fresh.get_nodes_for_key(key):
                record = node.store.get(key.encode())
                held.append(None if record is None else record.value)
            replicas[key] = held
    finally:
        stores = [node.store for node in fresh.nodes]
        fresh.close()
        for store in stores:
            store.close()

    report = check(ops, final, replicas)
    errors: dict[str, int] = {}  # why writes were not acknowledged (unknown outcome)
    for op in ops:
        if op.outcome == "unknown":
            kind = op.error.split("(", 1)[0]
            errors[kind] = errors.get(kind, 0) + 1
    print(
        f"{driver} driver, seed {seed}: {cycles} fault cycles, {CLIENTS} clients, "
        f"{SERVERS} servers, "
        f"link-cycles by mode {tally}; {report.summary()}; writes not acknowledged: {errors}"
    )
    assert report.counts["writes_ok"] > 100  # the run did something
    assert report.counts["reads_ok"] > 100
    assert report.lost == []
    assert report.stale == []
    assert report.phantom == []
    assert report.disagree == []
