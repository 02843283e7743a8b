"""Instructions per cluster call, counted by callgrind: a figure this machine's noise does not move.

    python bench/instructions.py            # put and get, 20,000 calls each
    python bench/instructions.py --calls 5000
    python bench/instructions.py --keys 100000   # calls spread over 100,000 keys

Each operation runs twice under ``valgrind --tool=callgrind``: once with no
calls and once with `calls` calls, on an in-process cluster of 5 nodes at RF 3
(quorum); the difference divided by `calls` is the cost of one call, with the
start-up (imports, building the cluster, the keys) taken out.  The calls
cycle over `keys` keys (1,000 by default, each called many times; with more
keys than a placement remembers, 8,192, every call places its key anew).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys

KEYS = 1000

PROGRAM = """
import sys
from cvstore import Cluster, Node
cluster = Cluster(replication_factor=3)
for i in range(5):
    cluster.add_node(Node(f"n{{i}}"))
keys = [f"key:{{i}}" for i in range({keys})]
for k in keys:
    cluster.put(k, "v")
op, calls = sys.argv[1], int(sys.argv[2])
put, get = cluster.put, cluster.get
if op == "put":
    for i in range(calls):
        put(keys[i % {keys}], "value")
else:
    for i in range(calls):
        get(keys[i % {keys}])
"""


def collected(op: str, calls: int, keys: int = KEYS) -> int:
    """The total instructions callgrind counts for one run of the program."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            PROGRAM.format(keys=keys),
            op,
            str(calls),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no total:\n{result.stderr[-2000:]}")
    return int(match[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=KEYS)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    for op in ("put", "get"):
        start = collected(op, 0, args.keys)
        per_call = (collected(op, args.calls, args.keys) - start) / args.calls
        print(
            f"{op}: {per_call:,.0f} instructions per call ({args.calls:,} calls over "
            f"{args.keys:,} keys, 5 nodes, RF 3)"
        )


if __name__ == "__main__":
    main()
