"""Keys moved by a membership change, and balance, for every registered placement.

    python bench/placement_moves.py [--keys 1000000] [--nodes 10]

For each placement (built as a cluster builds it: 160 vnodes, xxh64, seed 0,
equal weights) it adds one node to `--nodes` and reports the fraction of keys
whose owner changed (the ideal is 1 / (nodes + 1), all of them to the new
node), the fraction of replica copies (N = 3) that changed, the same for
removing one node, and the most loaded node's keys over the mean.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cvstore.core.placements import PLACEMENTS, placer_factory


def owners(placer, keys, n):
    names = np.array(placer.nodes)
    return names[placer.get_nodes_many(keys, n)]


def moved_copies(before, after):
    """Fraction of (key, replica) copies in `after` that `before` did not have."""
    gained = sum(len(set(a) - set(b)) for a, b in zip(after.tolist(), before.tolist()))
    return gained / after.size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--nodes", type=int, default=10)
    args = parser.parse_args(argv)
    keys = [f"key:{i}" for i in range(args.keys)]
    names = [f"node{i}" for i in range(args.nodes)]
    ideal = 1 / (args.nodes + 1)
    print(
        f"{args.keys:,} keys; {args.nodes} -> {args.nodes + 1} nodes (add), "
        f"{args.nodes} -> {args.nodes - 1} (remove); ideal moved on add {ideal:.4f}"
    )
    print(
        "placement   add: owners moved  to new node  copies moved (N=3)  "
        "remove: owners moved  max/mean keys  time"
    )
    for name in PLACEMENTS:
        make = placer_factory(name, vnodes=160, hash="xxh64", seed=0)
        start = time.perf_counter()
        base = make(dict.fromkeys(names, 1.0))
        grown = make(dict.fromkeys([*names, "new"], 1.0))
        shrunk = make(dict.fromkeys(names[1:], 1.0))
        b, g, s = (
            owners(base, keys, 1)[:, 0],
            owners(grown, keys, 1)[:, 0],
            owners(shrunk, keys, 1)[:, 0],
        )
        moved = b != g
        to_new = float(np.mean(g[moved] == "new")) if moved.any() else 1.0
        sample = keys[:200_000]
        copies = moved_copies(owners(base, sample, 3), owners(grown, sample, 3))
        removed = float(np.mean(b != s))
        counts = np.unique(b, return_counts=True)[1]
        elapsed = time.perf_counter() - start
        print(
            f"{name:<11} {moved.mean():>18.4f} {to_new:>12.3f} {copies:>19.4f} "
            f"{removed:>22.4f} {counts.max() / counts.mean():>14.3f}  {elapsed:.1f} s"
        )


if __name__ == "__main__":
    main()
