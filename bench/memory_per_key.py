"""Memory per key: an in-process ``Cluster`` (5 nodes, RF 3) against a dict of the same items.

    python bench/memory_per_key.py [--keys 1000000] [--json FILE]

Keys are ``key:0000000`` ... (11-character str), values ``val-0000000`` ...
(11-character str).  The key and value objects are made before measuring and
shared by both sides, so what is counted is what each keeps on top of them:
the dict its table; the cluster its three replicas of every key (records with
versions, each node's store) and whatever else it builds per key.

Each figure comes from a fresh interpreter (one per side and method):

- ``tracemalloc``: Python's allocation tracer, bytes traced after the
  structure is built minus before (``gc.collect()`` first).  Exact for what
  goes through Python's allocators (and numpy's arrays); blind to plain
  ``malloc`` from C code.
- ``rss``: the process's resident set (``/proc/self/statm``) after minus
  before.  Counts everything, but also freed temporaries the allocator keeps,
  so it is an upper bound.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEYS = 1_000_000
NODES = 5
RF = 3
BATCH = 100_000  # put_many in slices, so no second mapping of every item is alive at once


def items(n: int) -> tuple[list[str], list[str]]:
    return [f"key:{i:07d}" for i in range(n)], [f"val-{i:07d}" for i in range(n)]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build(side: str, keys: list[str], values: list[str]) -> Any:
    """The structure holding every item: a dict, or a cluster of in-process nodes."""
    if side == "dict":
        return dict(zip(keys, values))
    from cvstore import Cluster, Node

    cluster = Cluster([Node(f"n{i}") for i in range(NODES)], replication_factor=RF)
    for a in range(0, len(keys), BATCH):
        cluster.put_many(dict(zip(keys[a : a + BATCH], values[a : a + BATCH])))
    return cluster


def check(side: str, built: Any, keys: list[str], values: list[str]) -> None:
    """Every item is there (a sample is read back), so the memory is for all of them."""
    assert len(built) == len(keys), (side, len(built), len(keys))
    step = max(1, len(keys) // 1000)
    for i in range(0, len(keys), step):
        assert built.get(keys[i]) == values[i], (side, keys[i])


def measure(side: str, how: str, n: int) -> dict[str, Any]:
    """In this interpreter: bytes the structure for `n` items adds, by `how`."""
    if side == "cluster":
        import cvstore  # noqa: F401 - the import's own memory is not the keys'
    keys, values = items(n)
    gc.collect()
    if how == "tracemalloc":
        import tracemalloc

        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    else:
        before = rss_bytes()
    t0 = time.perf_counter()
    built = build(side, keys, values)
    seconds = time.perf_counter() - t0
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if how == "tracemalloc" else rss_bytes()
    if how == "tracemalloc":
        tracemalloc.stop()
    check(side, built, keys, values)
    return {
        "side": side,
        "how": how,
        "keys": n,
        "bytes": after - before,
        "bytes_per_key": (after - before) / n,
        "build_seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=KEYS)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--one", nargs=2, metavar=("SIDE", "HOW"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.keys < 1:
        parser.error(f"--keys must be >= 1, got {args.keys}")
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.keys)))
        return 0
    rows = []
    for how in ("tracemalloc", "rss"):
        for side in ("dict", "cluster"):
            out = subprocess.run(
                [sys.executable, __file__, "--keys", str(args.keys), "--one", side, how],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            ).stdout
            row = json.loads(out)
            rows.append(row)
            print(f"{how:11} {side:7} {row['bytes_per_key']:8.1f} bytes a key")
    per = {(r["how"], r["side"]): r["bytes_per_key"] for r in rows}
    ratios = {how: per[(how, "cluster")] / per[(how, "dict")] for how in ("tracemalloc", "rss")}
    for how, ratio in ratios.items():
        print(f"{how:11} cluster / dict = {ratio:.1f}x")
    if args.json:
        from importlib import metadata

        result = {
            "command": "python bench/memory_per_key.py " + " ".join(argv or sys.argv[1:]),
            "nodes": NODES,
            "replication_factor": RF,
            "python": platform.python_version(),
            "cvstore": metadata.version("cvstore"),
            "system": f"{platform.system()} {platform.machine()}",
            "rows": rows,
            "cluster_over_dict": ratios,
        }
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
