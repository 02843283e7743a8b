"""A text picture of a hash ring: who owns which arc, and each node's share.

The hash space (0 .. 2**64) is drawn as one line of letters, one letter per
equal arc, naming the node that owns most of that arc; below it, each node's
share of the space (what it owns as primary) as a bar, next to the share its
weight asks for.
"""

from __future__ import annotations

import string

import numpy as np

from cvstore import HashRing
from cvstore._cli import text

WIDTH = 64
SAMPLES = 32  # hashes sampled per arc
LETTERS = string.ascii_uppercase + string.ascii_lowercase + string.digits


def arc_owners(ring: HashRing, width: int = WIDTH, samples: int = SAMPLES) -> np.ndarray:
    """For each of `width` equal arcs of the hash space, the index of its main owner."""
    points = np.asarray(ring.points)
    owners = np.asarray(ring.owners)
    step = 2.0**64 / (width * samples)
    hashes = ((np.arange(width * samples) + 0.5) * step).astype(np.uint64)
    at = np.searchsorted(points, hashes, side="left")
    at[at == len(points)] = 0  # past the last point: wrap to the first
    who = owners[at].reshape(width, samples)
    counts = np.apply_along_axis(np.bincount, 1, who, minlength=len(ring.nodes))
    return counts.argmax(axis=1)


def picture(ring: HashRing, up: dict[str, bool] | None = None) -> str:
    """The ring line, a legend with ownership bars, and what the shares mean."""
    if len(ring) == 0:
        return "the ring is empty: add a node with 'add NAME'"
    nodes = ring.nodes
    share = ring.ownership()
    weights = ring.weights
    total_weight = sum(weights.values())
    lines = [
        (
            f"ring: {text.plural(len(nodes), 'node')}, {text.num(len(ring.points))} points "
            f"({ring.vnodes} per unit of weight, hash {ring.hash})"
        ),
    ]
    lettered = len(nodes) <= len(LETTERS)
    if lettered:
        line = "".join(LETTERS[i] for i in arc_owners(ring))
        lines += [
            f"  0 {'-' * (WIDTH - 8)} 2^64",
            f"  {line}",
            "  (each letter is 1/64 of the hash space, named by the node that owns most of it)",
            "",
        ]
    items = []
    for i, name in enumerate(nodes):
        label = f"{LETTERS[i]} {name}" if lettered else name
        state = "" if up is None or up.get(name, True) else ", down"
        note = (
            f"{100 * share[name]:5.1f}% of the space "
            f"(weight {weights[name]:g}: {100 * weights[name] / total_weight:.1f}%{state})"
        )
        items.append((label, share[name], note))
    lines.append(text.bars(items))
    return "\n".join(lines)
