"""``cvstore demo``: a 3-node cluster (RF 3) taken through a failure, hints, growth and shrinking.

Each step prints what happened, in numbers read back from the cluster, and
one line on what the step proves.  The last step reads every key back and
checks it against what was written; the command exits 1 if any key is lost
or wrong.  Everything is in memory and takes well under a second (about
half a minute for a million keys).

The long steps (storing, reading back, streaming to a joining or from a
leaving node, checking every copy) show a progress bar on stderr, with keys
done and the rate, when stderr is a terminal or ``--progress`` asks for one;
stdout holds only the report, so it reads the same piped or in a log.
"""

from __future__ import annotations

import argparse
import random
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from cvstore import Cluster, Node, UnavailableError
from cvstore._cli import text

RF = 3
FIRST_NODES = ("node1", "node2", "node3")
CHUNK = 20_000  # keys per batch call, so a progress bar moves while a step runs

T = TypeVar("T")


def _say(*lines: str) -> None:
    for line in lines:
        print(line)


def _proves(claim: str) -> None:
    print(textwrap.fill(claim, width=92, initial_indent="   proves: ", subsequent_indent=" " * 11))
    print()


def _copies_and_primaries(cluster: Cluster, keys: list[str]) -> list[tuple[str, int, int]]:
    """(node, copies it holds, keys it is primary for), read from the stores and the ring."""
    stats = cluster.stats()
    ring = cluster.ring
    primaries = np.bincount(ring.lookup_many(keys), minlength=len(ring.nodes))
    return [
        (name, stats.keys_per_node.get(name, 0), int(primaries[i]))
        for i, name in enumerate(ring.nodes)
    ]


def _node_bars(cluster: Cluster, keys: list[str]) -> None:
    rows = _copies_and_primaries(cluster, keys)
    print(
        text.bars(
            [
                (name, copies, f"{text.num(copies)} copies, primary for {text.num(primary)}")
                for name, copies, primary in rows
            ],
            indent="     ",
        )
    )


def _complete_copies(
    cluster: Cluster, keys: list[str], expected: dict[str, str], progress: bool | None
) -> int:
    """Keys whose every replica holds the expected value (read from each node's store)."""
    ring = cluster.ring
    width = min(RF, len(ring.nodes))
    good = np.zeros(len(keys), dtype=np.int64)
    with text.progress(len(keys) * width, "checking every copy", progress, "copies") as bar:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            replicas = ring.get_nodes_many(chunk, width)
            for i, name in enumerate(ring.nodes):
                rows = np.flatnonzero((replicas == i).any(axis=1))
                if not len(rows):
                    continue
                wanted = [chunk[r] for r in rows]
                records = cluster.node(name).store.get_many([k.encode() for k in wanted])
                held = [
                    rec is not None and rec[1] == expected[k] for k, rec in zip(wanted, records)
                ]
                good[start + rows] += held
                bar.update(len(rows))
    return int(np.count_nonzero(good == width))


def _chunks(keys: list[str], desc: str, progress: bool | None) -> Iterator[list[str]]:
    """`keys` in batches of CHUNK, with a progress bar of the keys done."""
    with text.progress(len(keys), desc, progress) as bar:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            yield chunk
            bar.update(len(chunk))


def _read(
    cluster: Cluster, keys: list[str], level: Any, desc: str, progress: bool | None
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for chunk in _chunks(keys, desc, progress):
        found.update(cluster.get_many(chunk, consistency=level))
    return found


def _while_running(desc: str, work: Callable[[], T], progress: bool | None) -> T:
    """`work()` (one call that cannot report progress), with a ticking line on stderr."""
    if not (sys.stderr.isatty() if progress is None else progress):
        return work()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="cvstore-demo-work", daemon=True)
    bar = text.ticker(desc)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
            bar.refresh()
    finally:
        bar.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def run(keys_wanted: int, seed: int, progress: bool | None = False) -> int:
    started = time.perf_counter()
    rng = random.Random(seed)
    width = len(str(keys_wanted - 1))
    keys = [f"user:{i:0{width}d}" for i in range(keys_wanted)]
    expected = {key: f"profile-{i}" for i, key in enumerate(keys)}

    cluster = Cluster(replication_factor=RF, read_consistency="quorum", write_consistency="quorum")
    for name in FIRST_NODES:
        cluster.add_node(Node(name))
    _say(
        f"cvstore demo: an in-process cluster of {len(FIRST_NODES)} nodes, replication factor "
        f"{RF}, quorum ({RF // 2 + 1} of {RF}) reads and writes",
        "",
    )

    # 1. store ---------------------------------------------------------------
    for chunk in _chunks(keys, "storing", progress):
        cluster.put_many({key: expected[key] for key in chunk})
    rows = _copies_and_primaries(cluster, keys)
    copies = sum(c for _, c, _ in rows)
    _say(
        f"1. store {text.num(len(keys))} keys ({keys[0]} .. {keys[-1]}) at quorum",
        "   copies each node holds, and the keys it is first in line for (primary):",
    )
    _node_bars(cluster, keys)
    _say(
        f"   stored {text.num(len(keys))} keys as {text.num(copies)} copies: "
        f"{copies / len(keys):g} copies a key, each on a distinct node",
    )
    _proves(f"every write is kept on {RF} nodes; the ring spreads primaries about evenly")

    # 2. fail a node -----------------------------------------------------------
    down = cluster.node("node2")
    down.fail()
    read = _read(cluster, keys, "quorum", "reading at quorum", progress)
    good = sum(read.get(k) == v for k, v in expected.items())
    changed = sorted(rng.sample(keys, max(1, len(keys) // 6)))
    for key in changed:
        expected[key] = expected[key] + "-v2"
    hints_before = cluster.stats().hints_pending
    cluster.put_many({key: expected[key] for key in changed}, consistency="quorum")
    hints = cluster.stats().hints_pending - hints_before
    try:
        cluster.put(changed[0], expected[changed[0]], consistency="all")
        refused = "accepted (unexpected: a node is down)"
    except UnavailableError as exc:
        refused = f"refused: {exc}"
    _say(
        f"2. fail {down.name}",
        f"   read all {text.num(len(keys))} keys at quorum: {text.num(good)} of "
        f"{text.num(len(keys))} returned the stored value",
        f"   wrote {text.num(len(changed))} keys at quorum: all acknowledged by "
        f"{RF // 2 + 1} of {RF} replicas; {text.num(hints)} hints kept for {down.name}",
        f"   a write at 'all' is {refused}",
    )
    _proves(
        f"with 1 of {RF} nodes down, quorum reads and writes go on; a level that cannot be "
        "met is refused, never faked"
    )

    # 3. recover -----------------------------------------------------------------
    down.recover()
    delivered = cluster.deliver_hints()
    pending = cluster.stats().hints_pending
    caught_up = sum(down.storage.get(key) == expected[key] for key in changed)
    _say(
        f"3. recover {down.name}",
        f"   hints delivered to {down.name}: {text.num(delivered)} (still pending: "
        f"{text.num(pending)})",
        f"   {down.name} now holds the new value of {text.num(caught_up)} of the "
        f"{text.num(len(changed))} keys written while it was down",
    )
    _proves("hinted handoff brings a returning node up to date without a full repair")

    # 4. add a node ----------------------------------------------------------------
    before = cluster.ring
    report = _while_running(
        f"streaming copies to node4 ({text.num(len(keys) * RF)} copies in the cluster)",
        lambda: cluster.add_node(Node("node4")),
        progress,
    )
    after = cluster.ring
    n_after = len(after.nodes)
    owners_before = np.array(before.nodes)[before.lookup_many(keys)]
    owners_after = np.array(after.nodes)[after.lookup_many(keys)]
    owner_moves = int(np.count_nonzero(owners_before != owners_after))
    ideal_copies = len(keys) * RF / n_after
    ideal_owner = len(keys) / n_after
    between_old = sum(v for k, v in report.received.items() if k != "node4")
    sent = ", ".join(f"{k} {text.num(v)}" for k, v in sorted(report.sent.items()))
    _say(
        "4. add node4",
        f"   copies streamed to node4: {text.num(report.moved)} (ideal "
        f"{text.num(round(ideal_copies))} = {text.num(len(keys))} keys x {RF} copies / "
        f"{n_after} nodes; {report.moved / ideal_copies:.3f}x)",
        f"   primary owner changed for {text.num(owner_moves)} keys (ideal "
        f"{text.num(round(ideal_owner))} = 1/{n_after} of the keys; "
        f"{owner_moves / ideal_owner:.3f}x)",
        f"   copies moved between the old nodes: {text.num(between_old)} (node4 got its copies "
        f"from {sent})",
    )
    _node_bars(cluster, keys)
    _proves(
        "consistent hashing moves about 1/N of the data when a node joins, all of it to the "
        "new node"
    )

    # 5. remove a node gracefully -----------------------------------------------------
    leaving = cluster.node("node1")
    held = leaving.store.count()
    report = _while_running(
        f"streaming node1's {text.num(held)} copies to the others",
        lambda: cluster.remove_node("node1"),
        progress,
    )
    remaining = ", ".join(node.name for node in cluster.nodes)
    read = _read(cluster, keys, "all", "reading back at 'all'", progress)
    lost = [key for key in keys if read.get(key) != expected[key]]
    whole = _complete_copies(cluster, keys, expected, progress)
    _say(
        "5. remove node1 gracefully (it hands its copies over before it leaves)",
        f"   copies streamed: {text.num(report.moved)}; node1 held {text.num(held)} "
        "(the least that must move)",
        f"   read back every key at 'all': {text.num(len(keys) - len(lost))} of "
        f"{text.num(len(keys))} have their latest value; lost or wrong: {text.num(len(lost))}",
        f"   keys with all {RF} copies current on {remaining}: {text.num(whole)} of "
        f"{text.num(len(keys))}",
    )
    _node_bars(cluster, keys)
    _proves("a graceful removal loses nothing and leaves every key fully replicated")

    elapsed = time.perf_counter() - started
    if lost or whole != len(keys):
        shown = ", ".join(lost[:5]) + (", ..." if len(lost) > 5 else "")
        _say(f"result: FAILED: {text.num(len(lost))} keys lost or wrong ({shown})")
        return 1
    _say(
        f"result: OK: {text.num(len(keys))} keys written, a node failed and came back, one "
        f"joined, one left, nothing lost ({text.seconds(elapsed)})"
    )
    return 0


def command(args: argparse.Namespace) -> int:
    return run(args.keys, args.seed, args.progress)
