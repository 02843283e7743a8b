"""``cvstore bench``: cvstore against the rings a user might use instead, timed in one run.

Every ring gets the same nodes and the same keys (``key-0`` ...).  Two
numbers per ring:

get_node ns/op
    a Python loop calling ``get_node`` once per key, divided by the keys:
    what a caller looking up one key at a time pays (loop included).
batch keys/s
    cvstore's ``lookup_many`` on a list of str keys; rings without a batch
    call run the same loop as above (marked "loop").

Peers: uhashring (ketama placement, compared with cvstore's ketama mode) if
it is installed, and ``cvstore._reference.ReferenceRing``, the pure-Python
bisect ring that the tests use as an oracle.  Each timing repeats until it
has run about ``--seconds`` and keeps the best round, so a busy machine
shows up as noise, not as a slower library.  For curated numbers with
statistics use ``pytest bench --benchmark-only`` in a clone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

from cvstore import HashRing
from cvstore._cli import text
from cvstore._cli.errors import UsageError

LOOP_KEYS = 20_000  # keys per round of a get_node loop
BATCH_CHUNK = 1_000_000  # keys per lookup_many call: a batch of any size fits in memory
# uhashring builds its ring with one list insertion per point (quadratic), and
# the pure-Python ring hashes every point in Python: above this many points
# they would take minutes to build, so they are skipped and named.
PEER_MAX_POINTS = 2_000_000


@dataclass
class Result:
    ring: str
    placement: str
    get_node_ns: float
    batch_keys_per_s: float
    batch_call: str  # "lookup_many" or "loop"
    agrees_with: str
    agreement: float  # fraction of keys placed on the same node as that cvstore ring


def _best_per_item(fn: Callable[[], Any], items: int, budget: float) -> float:
    """Seconds per item of the fastest round of fn(), rounds repeated for about `budget` s."""
    best = float("inf")
    spent = 0.0
    rounds = 0
    while rounds < 3 or spent < budget:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        rounds += 1
        if rounds >= 1000:
            break
    return best / items


def _loop(get: Callable[[str], str], keys: list[str]) -> Callable[[], list[str]]:
    return lambda: [get(k) for k in keys]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _uhashring(names: list[str], vnodes: int) -> Any | None:
    try:
        import uhashring
    except ImportError:
        return None
    # Its ketama mode: vnodes are MD5 digests of 4 points each (40 gives 160 points);
    # cvstore's hash="ketama-uhashring" places keys exactly as it does.
    nodes = {name: {"vnodes": vnodes // 4} for name in names}
    return uhashring.HashRing(nodes, hash_fn="ketama")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.vnodes % 4:
        raise UsageError(
            f"argument --vnodes: must be a multiple of 4 (ketama places 4 points a digest), "
            f"got {args.vnodes}"
        )
    names = [f"node-{i}" for i in range(args.nodes)]
    loop_keys = [f"key-{i}" for i in range(min(args.keys, LOOP_KEYS))]
    first_chunk = [f"key-{i}" for i in range(min(args.keys, BATCH_CHUNK))]
    budget = args.seconds
    results: list[Result] = []
    missing: list[str] = []

    try:
        fast = HashRing(names, vnodes=args.vnodes)
        ketama = HashRing(names, vnodes=args.vnodes, hash="ketama")
        uh_ketama = HashRing(names, vnodes=args.vnodes, hash="ketama-uhashring")
    except ValueError as exc:  # the ring's size limit, with these nodes and vnodes
        raise UsageError(f"argument --vnodes: {exc}") from None
    truth = {"xxh64": fast.get_node, "ketama": ketama.get_node,
             "ketama-uhashring": uh_ketama.get_node}  # fmt: skip

    def all_keys(batch: Callable[[list[str]], Any]) -> None:
        """One round of the batch call over every key, a chunk at a time."""
        batch(first_chunk)
        for start in range(BATCH_CHUNK, args.keys, BATCH_CHUNK):
            batch([f"key-{i}" for i in range(start, min(args.keys, start + BATCH_CHUNK))])

    def measure(name: str, placement: str, get: Callable[[str], str], batch: Any) -> None:
        ns = _best_per_item(_loop(get, loop_keys), len(loop_keys), budget) * 1e9
        if batch is not None:
            if args.keys <= BATCH_CHUNK:
                per_key = _best_per_item(lambda: batch(first_chunk), args.keys, budget)
            else:  # making the keys of later chunks is timed too: say so below
                per_key = _best_per_item(lambda: all_keys(batch), args.keys, budget)
            call = "lookup_many"
        else:
            per_key, call = ns / 1e9, "loop"
        check = loop_keys[:5000]
        same = sum(get(k) == truth[placement](k) for k in check) / len(check)
        agrees = f"cvstore ({placement})"
        results.append(Result(name, placement, ns, 1 / per_key, call, agrees, same))

    measure("cvstore", "xxh64", fast.get_node, fast.lookup_many)
    measure("cvstore", "ketama", ketama.get_node, ketama.lookup_many)
    measure("cvstore", "ketama-uhashring", uh_ketama.get_node, uh_ketama.lookup_many)

    from cvstore._reference import ReferenceRing, _xxh64_fast

    hashing = "xxhash's C XXH64" if _xxh64_fast is not None else "pure-Python XXH64"
    points = args.nodes * args.vnodes
    if points > PEER_MAX_POINTS:
        skipped = f"{points:,} points is more than the {PEER_MAX_POINTS:,} they build in seconds"
        missing.append(f"uhashring and the pure-Python ring ({skipped})")
    else:
        uh = _uhashring(names, args.vnodes)
        if uh is None:
            missing.append("uhashring (pip install uhashring)")
        else:
            measure("uhashring", "ketama-uhashring", uh.get_node, None)
        ref = ReferenceRing(names, vnodes=args.vnodes)
        measure("pure-Python bisect ring", "xxh64", ref.get_node, None)

    return {
        "nodes": args.nodes,
        "vnodes": args.vnodes,
        "keys": args.keys,
        "loop_keys": len(loop_keys),
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "versions": {
                d: _version(d) for d in ("cvstore", "numpy", "uhashring", "xxhash") if _version(d)
            },
        },
        "reference_hash": hashing,
        "results": [asdict(r) for r in results],
        "missing": missing,
    }


def render(r: dict[str, Any]) -> str:
    versions = ", ".join(f"{d} {v}" for d, v in r["machine"]["versions"].items())
    m = r["machine"]
    base = next(x for x in r["results"] if x["ring"] == "cvstore" and x["placement"] == "xxh64")
    rows = []
    for x in r["results"]:
        rows.append(
            (
                x["ring"],
                x["placement"],
                f"{x['get_node_ns']:,.0f}",
                f"{text.rate(x['batch_keys_per_s'])}"
                + (" (lookup_many)" if x["batch_call"] == "lookup_many" else " (loop)"),
                f"{base['batch_keys_per_s'] / x['batch_keys_per_s']:.1f}x slower"
                if x is not base
                else "1.0x",
                f"{100 * x['agreement']:.2f}%",
            )
        )
    lines = [
        (
            f"bench: {r['nodes']} nodes x {r['vnodes']} vnodes; get_node over {r['loop_keys']:,} "
            f"keys, batch over {r['keys']:,} keys"
            + (
                f" in calls of {BATCH_CHUNK:,} (making their keys included)"
                if r["keys"] > BATCH_CHUNK
                else ""
            )
            + "; best round of each"
        ),
        (
            f"python {m['python']} ({m['implementation']}, {m['machine']}, {m['cpus']} CPUs); "
            f"{versions}"
        ),
        "",
        text.table(
            rows,
            [
                "ring",
                "placement",
                "get_node ns/op",
                "batch keys/s",
                "batch vs cvstore",
                "same owner as cvstore",
            ],
            left=2,
        ),
        "",
        (
            f"  the pure-Python ring hashes with {r['reference_hash']}; "
            "get_node times include the Python loop that calls it"
        ),
    ]
    lines.append(
        "  missing peers: " + "; ".join(r["missing"]) if r["missing"] else "  missing peers: none"
    )
    return "\n".join(lines)


def command(args: argparse.Namespace) -> int:
    result = run(args)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(result))
    return 0
