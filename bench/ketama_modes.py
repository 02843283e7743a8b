"""Measure where hash="ketama" (libketama) and hash="ketama-uhashring" (uhashring) differ.

    python bench/ketama_modes.py

Prints the figures quoted in the README's "hash='ketama'" section: how many
equal-weight ring sizes get different digest counts, the keys that move
between the modes on such rings and on random weighted rings, and how often
the other two differences (the owner of a colliding point, a key equal to a
point) come up.  Deterministic: fixed seeds, synthetic keys.
"""

from __future__ import annotations

import random

import numpy as np

from cvstore import HashRing
from cvstore._cli.synth import synthetic_keys
from cvstore._reference import ketama_digest_counts, uhashring_digest_counts

KEYS = synthetic_keys(0, 1_000_000)


def differ(a: HashRing, b: HashRing, keys: np.ndarray = KEYS) -> int:
    names_a = np.array(a.nodes, dtype=object)[a.lookup_many(keys)]
    names_b = np.array(b.nodes, dtype=object)[b.lookup_many(keys)]
    return int(np.count_nonzero(names_a != names_b))


def main() -> None:
    sizes = range(1, 201)
    uneven = [
        n for n in sizes if ketama_digest_counts([1.0] * n) != uhashring_digest_counts([1.0] * n)
    ]
    print(
        f"equal weights, 1-200 nodes: digest counts differ for {len(uneven)} sizes; first: {uneven[:8]}"
    )
    for n in (61, 100, 200):
        names = [f"10.0.{i // 250}.{i % 250}:11211" for i in range(n)]
        lk, uh = HashRing(names, hash="ketama"), HashRing(names, hash="ketama-uhashring")
        d_lk, d_uh = ketama_digest_counts([1.0] * n), uhashring_digest_counts([1.0] * n)
        moved = differ(lk, uh)
        print(
            f"  {n} equal nodes: {4 * d_lk[0]} vs {4 * d_uh[0]} points a node; "
            f"{moved:,} of {len(KEYS):,} keys ({100 * moved / len(KEYS):.2f}%) placed differently"
        )

    rng = random.Random(10)
    rings = moved_rings = 0
    fractions = []
    for _ in range(150):
        n = rng.randint(2, 30)
        weights = {f"s{i}:11211": rng.randint(1, 1000) for i in range(n)}
        lk, uh = HashRing(weights, hash="ketama"), HashRing(weights, hash="ketama-uhashring")
        moved = differ(lk, uh, KEYS[:100_000])
        rings += 1
        moved_rings += moved > 0
        fractions.append(moved / 100_000)
    print(
        f"random integer weights 1-1000, 2-30 nodes: {moved_rings} of {rings} rings place keys "
        f"differently; median {100 * float(np.median(fractions)):.2f}%, "
        f"max {100 * max(fractions):.2f}% of 100,000 keys"
    )

    # Collisions: 32-bit points, so about points^2 / 2^33 pairs a ring.
    for n in (100, 1000):
        ring = HashRing([f"node-{i}" for i in range(n)], hash="ketama")
        points = np.asarray(ring.points)
        ties = int(np.count_nonzero(points[1:] == points[:-1]))
        print(
            f"  {n} nodes x 160 points: {ties} colliding point(s) "
            f"(expected about {len(points) ** 2 / 2**33:.2f})"
        )
    # A key whose hash equals a point: its owner differs (next point in uhashring).
    ring = HashRing([f"node-{i}" for i in range(100)], hash="ketama")
    points = set(np.asarray(ring.points).tolist())
    hits = sum(h in points for h in ring.hash_many(KEYS).tolist())
    print(
        f"  keys equal to a point, 100 nodes: {hits} of {len(KEYS):,} "
        f"(expected {len(KEYS) * len(points) / 2**32:.1f})"
    )


if __name__ == "__main__":
    main()
