"""Rings of 100 to 100,000 nodes, in interleaved rounds: build, add, remove, lookup_many.

    python bench/ring_scale.py [--rounds 7] [--sizes 100,10000,100000] [--keys 1000000] [--json FILE]

``bench_ring.py``'s ``scale_*`` groups time each case's rounds back to back,
so on a shared machine a burst of other work lands on one ring size and
not the others, and the lookup_many ratio between sizes (the target: at
10,000 and 100,000 nodes at least 70 % of the 100-node rate) moves with it.
Here every round times every case once, the sizes in an order that rotates
between rounds, and each round's ratios compare runs seconds apart:

- ``build``: ``HashRing(names, vnodes=160)`` of each size;
- ``add`` / ``remove``: one node added to the size's ring, then removed
  (targets: under 5 ms at 10,000 nodes and 50 ms at 100,000);
- ``lookup_many``: owners of ``--keys`` keys (``bench/conftest.py``'s keys:
  10-18 ASCII characters, laid out in memory in list order).

Each case records wall time (``time.perf_counter``) and this process's CPU
time (``time.process_time``: other processes' work does not count, their
use of the memory bus and caches does).  The JSON keeps every round, the
median of each case and the median (range) of each round's lookup_many rate
at a size over the same round's rate at the smallest size.  Every ring is
checked after timing: the one added to and removed from equals a fresh
build, and a sample of lookup_many's owners equals ``get_node``'s.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench is importable
    sys.path.insert(0, str(ROOT))

VNODES = 160
SIZES = (100, 10_000, 100_000)
KEYS = 1_000_000
NEW_NODE = "node-new"  # the node added and removed
SAMPLE = 500  # lookup_many owners checked against get_node


def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """(call(*args, **kwargs), wall seconds, this process's CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def one_round(
    rings: dict[int, Any], names: dict[int, list[str]], keys: list[str], order: list[int]
) -> dict[str, Any]:
    """Every case once, the sizes in `order`; {case: {size: {"wall": s, "cpu": s}}}."""
    from cvstore import HashRing

    out: dict[str, dict[str, dict[str, float]]] = {
        c: {} for c in ("build", "add", "remove", "lookup_many")
    }
    for size in order:
        ring = rings[size]
        gc.collect()  # a collection is no case's cost
        built, wall, cpu = timed(HashRing, names[size], vnodes=VNODES)
        out["build"][str(size)] = {"wall": wall, "cpu": cpu}
        del built  # gone before the changes below, as a ring replaced by a new one would be
        _, wall, cpu = timed(ring.add, NEW_NODE)
        out["add"][str(size)] = {"wall": wall, "cpu": cpu}
        _, wall, cpu = timed(ring.remove, NEW_NODE)
        out["remove"][str(size)] = {"wall": wall, "cpu": cpu}
        owners, wall, cpu = timed(ring.lookup_many, keys)
        out["lookup_many"][str(size)] = {"wall": wall, "cpu": cpu}
        step = max(1, len(keys) // SAMPLE)
        wrong = [
            i for i in range(0, len(keys), step) if ring.nodes[owners[i]] != ring.get_node(keys[i])
        ]
        if wrong:
            raise AssertionError(
                f"lookup_many disagrees with get_node at {size} nodes: keys {wrong[:5]}"
            )
    return out


def summary(rounds: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """Medians of every case, and each round's lookup_many rate against the smallest ring's."""
    medians = {
        case: {
            str(size): {
                clock: statistics.median(r[case][str(size)][clock] for r in rounds)
                for clock in ("wall", "cpu")
            }
            for size in sizes
        }
        for case in rounds[0]
    }
    base = str(sizes[0])
    ratios: dict[str, Any] = {}
    for size in sizes[1:]:
        ratios[str(size)] = {}
        for clock in ("wall", "cpu"):
            # rate at `size` / rate at the smallest = time at the smallest / time at `size`
            each = [
                r["lookup_many"][base][clock] / r["lookup_many"][str(size)][clock] for r in rounds
            ]
            ratios[str(size)][clock] = {
                "median": statistics.median(each),
                "min": min(each),
                "max": max(each),
            }
    return {"medians": medians, "lookup_many_rate_vs_smallest": ratios}


def machine() -> dict[str, Any]:
    import numpy as np

    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="node counts, comma-separated"
    )
    parser.add_argument("--keys", type=int, default=KEYS, help="keys a lookup_many")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        parser.error(f"--sizes must be node counts separated by commas, got {args.sizes!r}")
    if args.rounds < 1 or args.keys < 1 or len(sizes) < 2 or sizes[0] < 1:
        parser.error("--rounds and --keys must be positive, --sizes at least two positive counts")

    from bench.conftest import make_keys, node_names
    from cvstore import HashRing

    keys = make_keys(args.keys)
    names = {size: node_names(size) for size in sizes}
    rings = {size: HashRing(names[size], vnodes=VNODES) for size in sizes}
    load0 = os.getloadavg()
    rounds = []
    for r in range(args.rounds):
        order = sizes[r % len(sizes) :] + sizes[: r % len(sizes)]
        rounds.append(one_round(rings, names, keys, order))
        lm = rounds[-1]["lookup_many"]
        print(
            f"round {r + 1}: lookup_many ms "
            + ", ".join(f"{s}: {1e3 * lm[str(s)]['wall']:.1f}" for s in sizes)
            + "; add/remove ms "
            + ", ".join(
                f"{s}: {1e3 * rounds[-1]['add'][str(s)]['wall']:.1f}/{1e3 * rounds[-1]['remove'][str(s)]['wall']:.1f}"
                for s in sizes
            ),
            flush=True,
        )
    for size in sizes:  # each ring went through every add and remove: as fresh as a new one
        if rings[size] != HashRing(names[size], vnodes=VNODES):
            raise AssertionError(
                f"the {size}-node ring differs from a fresh build after the rounds"
            )
    result = {
        "command": "python bench/ring_scale.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "started_loadavg": list(load0),
        "ended_loadavg": list(os.getloadavg()),
        "machine": machine(),
        "vnodes": VNODES,
        "keys": args.keys,
        "sizes": sizes,
        **summary(rounds, sizes),
        "rounds": rounds,
    }
    for size, clocks in result["lookup_many_rate_vs_smallest"].items():
        print(
            f"lookup_many at {size} nodes: "
            + "; ".join(
                f"{clock} {v['median']:.2f} ({v['min']:.2f}-{v['max']:.2f})"
                for clock, v in clocks.items()
            )
            + f" of the {sizes[0]}-node rate"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
