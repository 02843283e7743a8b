"""Print a pytest-benchmark JSON run of bench/ as Markdown: medians per group.

Usage::

    pytest bench --benchmark-only --benchmark-json=bench/results/DATE-ring.json
    python bench/report.py bench/results/DATE-ring.json

Before committing a run, ``python bench/report.py --strip FILE`` drops the
per-round samples pytest-benchmark stores (megabytes; the statistics stay).
Without a file argument it reads the newest JSON in ``bench/results``.  Units: ns per
lookup for scalar calls (a timed call loops over ``extra_info["keys"]`` keys),
million keys per second for batch calls, milliseconds for build and add.  The
last column is how many times faster cvstore is than each row (below 1: slower).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

RESULTS = Path(__file__).resolve().parent / "results"


class Unit(NamedTuple):
    label: str
    value: Callable[[float, dict], float]  # (median seconds, extra_info) -> number
    higher_is_better: bool


NS_PER_KEY = Unit("ns/op", lambda s, info: s / info.get("keys", 1) * 1e9, False)
M_KEYS_PER_S = Unit("M keys/s", lambda s, info: info["keys"] / s / 1e6, True)
MS = Unit("ms", lambda s, info: s * 1e3, False)
US_PER_KEY = Unit("µs/op", lambda s, info: s / info.get("keys", 1) * 1e6, False)
K_RECORDS_PER_S = Unit("k records/s", lambda s, info: info["records"] / s / 1e3, True)
K_KEYS_PER_S = Unit("k keys/s", lambda s, info: info["keys"] / s / 1e3, True)

GROUP_ORDER = [
    "get_node",
    "get_nodes",
    "lookup_many",
    "bounded",
    "bounded_many",
    "hash",
    "build",
    "add_node",
    "cluster_put",
    "cluster_get",
    "cluster_put_many",
    "cluster_get_many",
    "cluster_update",
    "cluster_clear",
    "cluster_add_node",
    "cluster_add_node_100k",
    "cluster_remove_node",
    "redis-set",
    "redis-get",
    "redis-write-1000",
    "redis-read-1000",
    "redis-cluster-write",
    "redis-cluster-write-100k",
    "redis-cluster-read",
    "redis-cluster-put",
    "redis-cluster-get",
    "redis-async-put",
    "redis-async-get",
    "redis-async-write",
    "redis-async-read",
    "redis-concurrent-get",
]
UNITS = {
    "get_node": NS_PER_KEY,
    "get_nodes": NS_PER_KEY,
    "lookup_many": M_KEYS_PER_S,
    "bounded": NS_PER_KEY,
    "bounded_many": M_KEYS_PER_S,
    "hash": M_KEYS_PER_S,
    "build": MS,
    "add_node": MS,
    "cluster_put": NS_PER_KEY,
    "cluster_get": NS_PER_KEY,
    "cluster_put_many": M_KEYS_PER_S,
    "cluster_get_many": M_KEYS_PER_S,
    "redis-set": US_PER_KEY,
    "redis-get": US_PER_KEY,
    "redis-write-1000": M_KEYS_PER_S,
    "redis-read-1000": M_KEYS_PER_S,
    "redis-cluster-write": K_RECORDS_PER_S,
    "redis-cluster-write-100k": K_RECORDS_PER_S,
    "redis-cluster-read": K_RECORDS_PER_S,
    "redis-cluster-put": US_PER_KEY,
    "redis-cluster-get": US_PER_KEY,
    "redis-async-put": US_PER_KEY,
    "redis-async-get": US_PER_KEY,
    "redis-async-write": K_RECORDS_PER_S,
    "redis-async-read": K_RECORDS_PER_S,
    "redis-concurrent-get": K_KEYS_PER_S,
}
VERSIONED = [
    "python",
    "numpy",
    "cvstore",
    "uhashring",
    "xxhash",
    "jump-consistent-hash",
    "pytest-benchmark",
    "redis",
    "hiredis",
]


class Row(NamedTuple):
    group: str
    peer: str
    value: float
    unit: Unit
    info: dict


def _fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _size(group: str, info: dict) -> str:
    parts = []
    if "nodes" in info:
        parts.append(f"{info['nodes']:,} nodes x {info.get('vnodes', '?')}")
    if "keys" in info:
        parts.append(f"{info['keys']:,} keys")
    if "n" in info:
        parts.append(f"n={info['n']}")
    if "redis_server" in info:
        servers = info.get("servers", 1)
        parts.append(f"{servers} Redis {info['redis_server']} server{'s' * (servers > 1)}")
    return ", ".join(parts)


def load_rows(data: dict) -> list[Row]:
    rows = []
    for bench in data["benchmarks"]:
        group = bench.get("group") or "(none)"
        unit = UNITS.get(group, MS)
        peer = bench.get("param") or bench["name"]
        info = bench.get("extra_info", {})
        rows.append(Row(group, peer, unit.value(bench["stats"]["median"], info), unit, info))
    order = {g: i for i, g in enumerate(GROUP_ORDER)}
    rows.sort(key=lambda r: (order.get(r.group, len(order)), r.group))
    return rows


def _speedup(row: Row, base: Row | None) -> str:
    if base is None or row.value == 0 or base.value == 0:
        return ""
    ratio = base.value / row.value if row.unit.higher_is_better else row.value / base.value
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def header(data: dict, source: str) -> list[str]:
    machine: dict[str, Any] = data.get("machine_info", {})
    cpu = machine.get("cpu", {})
    versions = dict(machine.get("versions", {}))
    versions.setdefault("python", machine.get("python_version", "?"))
    lines = [
        f"Run: {data.get('datetime', '?')[:19]} (from `{source}`); medians.",
        "",
        f"Machine: {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores, "
        f"{machine.get('system', '?')} {machine.get('machine', '')}".rstrip(),
    ]
    if "loadavg" in machine:
        load = " / ".join(f"{x:.2f}" for x in machine["loadavg"])
        lines[-1] += f"; load average at start {load}"
    lines.append("")
    lines.append(
        "Versions: "
        + ", ".join(
            f"{'Python' if name == 'python' else name} {versions[name]}"
            for name in VERSIONED
            if versions.get(name)
        )
    )
    return lines


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| group | implementation | size | median | unit | cvstore speed-up |",
        "|---|---|---|---:|---|---:|",
    ]
    for group in dict.fromkeys(r.group for r in rows):
        in_group = [r for r in rows if r.group == group]
        base = next(
            (r for r in in_group if r.peer == "cvstore" or r.info.get("side") == "cvstore"), None
        )
        in_group.sort(key=lambda r: -r.value if r.unit.higher_is_better else r.value)
        for r in in_group:
            lines.append(
                f"| {group} | {r.peer} | {_size(group, r.info)} | {_fmt(r.value)} "
                f"| {r.unit.label} | {_speedup(r, base)} |"
            )
    return lines


def memory(rows: list[Row]) -> list[str]:
    built = [r for r in rows if r.group == "build" and "retained_bytes_per_point" in r.info]
    if not built:
        return []
    lines = [
        "| ring (1000 nodes x 160) | points | bytes/point: points+owners arrays"
        + " | bytes/point: all retained (tracemalloc) |",
        "|---|---:|---:|---:|",
    ]
    for r in built:
        arrays = r.info.get("bytes_per_point")
        lines.append(
            f"| {r.peer} | {r.info.get('points', 0):,} "
            f"| {'' if arrays is None else _fmt(arrays)} "
            f"| {_fmt(r.info['retained_bytes_per_point'])} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "json", nargs="?", help="a --benchmark-json file (default: newest in bench/results)"
    )
    parser.add_argument(
        "--strip",
        action="store_true",
        help="rewrite the file without the per-round samples, then print the report",
    )
    args = parser.parse_args(argv)
    if args.json:
        path = Path(args.json)
    else:
        runs = sorted(RESULTS.glob("*.json"))
        if not runs:
            parser.error("no JSON given and none in bench/results")
        path = runs[-1]
    data = json.loads(path.read_text())
    if args.strip:
        for bench in data["benchmarks"]:
            bench["stats"].pop("data", None)
        path.write_text(json.dumps(data, indent=2) + "\n")
    rows = load_rows(data)
    try:
        source = path.resolve().relative_to(RESULTS.parent.parent).as_posix()
    except ValueError:
        source = path.name
    out = header(data, source) + [""] + table(rows)
    mem = memory(rows)
    if mem:
        out += [""] + mem
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
