"""Load balance and keys moved: the plain ring against bounded loads, under Zipf keys.

    python bench/bounded_loads.py [--requests 1000000] [--zipf 1.1] [--json FILE]

100 nodes of weights 1, 2 and 4 (50, 30 and 20 of them; 160 vnodes, xxh64).
Requests for Zipf-distributed keys arrive one at a time; each completes
`--window` requests later (3,040 by default: 16 in flight per unit of weight
once warm).  The plain ring sends each to its key's owner; the bounded ring
chooses with ``get_node_bounded(key, loads, c)`` on the loads in flight.

Balance: every 1,000 requests once warm, each node's load over its weighted
share (in flight x weight / total weight); the table shows the largest
(worst snapshot) and its mean over the snapshots.

Moves: with the loads the next request would see held fixed (the last
window's, less its oldest request), the fraction of 100,000
uniform keys whose chosen node changes when one node of weight 1 joins (it
starts with no load) or one node of weight 1 leaves (its load goes with it);
for the plain ring, keys whose owner changes.  "Extra" is the bounded ring's
fraction minus the plain ring's.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import numpy as np

from cvstore import HashRing

NODES = 100
SNAPSHOT = 1_000
MOVE_KEYS = 100_000


def weighted_nodes() -> dict[str, float]:
    return {
        f"node-{i:03d}": (1.0, 2.0, 4.0)[0 if i < 50 else 1 if i < 80 else 2] for i in range(NODES)
    }


def share_ratio(loads: np.ndarray, weight: np.ndarray, wsum: float) -> float:
    return float(np.max(loads / (loads.sum() * weight / wsum)))


def plain_balance(ring, key_of, inverse, window, weight, wsum):
    owners = ring.lookup_many(key_of)[inverse]
    ratios = []
    loads = None
    for end in range(window, len(owners) + 1, SNAPSHOT):
        loads = np.bincount(owners[end - window : end], minlength=len(ring))
        ratios.append(share_ratio(loads, weight, wsum))
    return ratios, loads


def bounded_balance(ring, key_of, inverse, window, weight, wsum, c):
    index = {name: i for i, name in enumerate(ring.nodes)}
    loads = np.zeros(len(ring), dtype=np.int64)
    placed = np.empty(len(inverse), dtype=np.int64)
    get = ring.get_node_bounded
    ratios = []
    bound_ok = True
    start = time.perf_counter()
    for step, k in enumerate(inverse.tolist()):
        if step >= window:
            loads[placed[step - window]] -= 1
        i = index[get(key_of[k], loads, c)]
        loads[i] += 1
        placed[step] = i
        if step % SNAPSHOT == SNAPSHOT - 1:
            total = int(loads.sum())
            bound_ok &= bool(np.all(loads <= np.ceil(c * total * weight / wsum)))
            if step >= window:
                ratios.append(share_ratio(loads, weight, wsum))
    seconds = time.perf_counter() - start
    seen = loads.copy()  # what the next request sees: the oldest completes first
    seen[placed[len(inverse) - window]] -= 1
    return ratios, seen, bound_ok, seconds


def changed(before: list[str], after: list[str]) -> float:
    return sum(a != b for a, b in zip(before, after)) / len(before)


def moves(nodes, loads_by_c):
    """{"plain"|c: {"add": fraction, "remove": fraction}}, the loads of each c held fixed."""
    keys = [f"key:{i}" for i in range(MOVE_KEYS)]
    ring = HashRing(nodes)
    grown = HashRing({**nodes, "node-new": 1.0})
    leaving = next(n for n, w in nodes.items() if w == 1.0)
    shrunk = HashRing({n: w for n, w in nodes.items() if n != leaving})

    def loads_for(r, loads):
        by_name = dict(zip(ring.nodes, loads.tolist()))
        return np.array([by_name.get(n, 0) for n in r.nodes], dtype=np.int64)

    out = {}
    base = [ring.nodes[i] for i in ring.lookup_many(keys).tolist()]
    out["plain"] = {
        "add": changed(base, [grown.nodes[i] for i in grown.lookup_many(keys).tolist()]),
        "remove": changed(base, [shrunk.nodes[i] for i in shrunk.lookup_many(keys).tolist()]),
    }
    for c, loads in loads_by_c.items():
        lb, lg, ls = (loads_for(r, loads) for r in (ring, grown, shrunk))
        before = [ring.get_node_bounded(k, lb, c) for k in keys]
        out[c] = {
            "add": changed(before, [grown.get_node_bounded(k, lg, c) for k in keys]),
            "remove": changed(before, [shrunk.get_node_bounded(k, ls, c) for k in keys]),
        }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--window", type=int, default=3_040)
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--c", type=float, nargs="+", default=[1.1, 1.25, 1.5])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    nodes = weighted_nodes()
    ring = HashRing(nodes)
    weight = np.array([nodes[n] for n in ring.nodes])
    wsum = math.fsum(weight.tolist())
    ids = np.random.default_rng(args.seed).zipf(args.zipf, args.requests)
    uniq, inverse = np.unique(ids, return_inverse=True)
    key_of = [f"item:{v}" for v in uniq.tolist()]
    hottest = np.bincount(inverse).max() / args.requests
    print(
        f"{args.requests:,} requests, Zipf({args.zipf}) over {len(uniq):,} distinct keys "
        f"(hottest {hottest:.1%}); {NODES} nodes of weights 1/2/4; {args.window:,} in flight"
    )

    rows = {}
    ratios, _ = plain_balance(ring, key_of, inverse, args.window, weight, wsum)
    rows["plain"] = {"max": max(ratios), "mean": float(np.mean(ratios))}
    last_loads = {}
    for c in args.c:
        ratios, loads, ok, seconds = bounded_balance(
            ring, key_of, inverse, args.window, weight, wsum, c
        )
        last_loads[c] = loads
        rows[c] = {
            "max": max(ratios),
            "mean": float(np.mean(ratios)),
            "bound_held": ok,
            "seconds": seconds,
            "ceil_c": max(math.ceil(c * args.window * w / wsum) / (args.window * w / wsum)
                          for w in (1.0, 2.0, 4.0)),
        }  # fmt: skip
    moved = moves(nodes, last_loads)

    print()
    print("| ring | max load / weighted share (worst snapshot) | mean of the snapshots' max "
          "| keys moved, +1 node | keys moved, -1 node |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        label = "plain" if name == "plain" else f"bounded, c = {name}"
        m = moved[name]
        extra = ""
        if name != "plain":
            extra_add = m["add"] - moved["plain"]["add"]
            extra_rm = m["remove"] - moved["plain"]["remove"]
            extra = f" (+{extra_add:.4f}, +{extra_rm:.4f})"
        print(
            f"| {label} | {row['max']:.3f} | {row['mean']:.3f} | {m['add']:.4f} "
            f"| {m['remove']:.4f}{extra} |"
        )
    print()
    print("moves: each c's loads held as the next request would see them")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "command": "python bench/bounded_loads.py "
                    + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "json"),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                    "machine": platform.machine(),
                    "distinct_keys": len(uniq),
                    "hottest_share": hottest,
                    "balance": {str(k): v for k, v in rows.items()},
                    "moved": {str(k): v for k, v in moved.items()},
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
