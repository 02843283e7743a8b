"""``cvstore simulate``: load per node and movement on changes, on synthetic keys.

The keys ``key-0`` .. ``key-{K-1}`` are generated in chunks of about a
million (``synth.synthetic_keys``) and placed with the ring's batch calls:
``get_nodes_many(keys, rf)`` gives each key's preference list, whose first
column is the owner (the same as ``lookup_many``; with ``--rf 1`` only
``lookup_many`` is called).  Each chunk is placed on the ring and on every
changed ring (``--add``, ``--remove``, each a what-if from the same start),
so memory stays at a few chunks whatever K is.

What is counted
---------------
load
    keys each node owns, and replica copies each node holds, divided by the
    node's fair share (K x weight / total weight, times the copies per key).
keys moved
    keys whose owner differs between the two rings.
copies moved
    for each key, the nodes of the new preference list that were not in the
    old one: a copy that must be created on a node that had none.
ideal
    the least that must move for every node to hold its weight's share
    before and after: the sum over nodes of the share each one gains.
    Adding A nodes to N equal ones gives A/(N+A); removing gives the
    removed nodes' share.
needless moves
    keys moved from a node that stayed to another node that was there
    before; a consistent-hash ring makes none.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvstore import HashRing
from cvstore._cli import text
from cvstore._cli.errors import CommandError, UsageError
from cvstore._cli.synth import synthetic_keys

CHUNK = 1 << 20
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


@dataclass
class Load:
    """Counts per node (in ring.nodes order) and their spread around the fair share."""

    counts: np.ndarray
    fair: np.ndarray  # each node's fair share of the same total

    def ratios(self) -> np.ndarray:
        return self.counts / self.fair

    def summary(self, names: tuple[str, ...]) -> dict[str, Any]:
        r = self.ratios()
        return {
            "max_over_fair": float(r.max()),
            "min_over_fair": float(r.min()),
            "stddev_over_fair": float(r.std()),
            "busiest": names[int(np.argmax(r))],
            "idlest": names[int(np.argmin(r))],
        }


@dataclass
class Change:
    """One what-if: the ring after adding or removing nodes, and what moved."""

    kind: str  # "add" or "remove"
    names: list[str]
    ring: HashRing
    to_new: np.ndarray  # base ring index -> this ring's index, -1 for a removed node
    ideal_keys: float
    ideal_copies: float
    keys_moved: int = 0
    copies_moved: int = 0
    needless: int = 0
    owners: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    copies: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def label(self) -> str:
        return f"{self.kind} {text.plural(len(self.names), 'node')}"


def node_names(count: int, width: int) -> list[str]:
    """``node0000``-style names, zero-padded so that name order is number order."""
    return [f"node{i:0{width}d}" for i in range(count)]


def spread_weights(weights: list[float] | None, n: int) -> list[float]:
    """One weight per node: the list as given, or repeated to cover `n` nodes."""
    if not weights:
        return [1.0] * n
    if len(weights) > n:
        raise UsageError(
            f"argument --weights: got {len(weights)} weights for --nodes {n}; "
            "give one per node or fewer (repeated)"
        )
    return [weights[i % len(weights)] for i in range(n)]


def ideal_moved(before: dict[str, float], after: dict[str, float]) -> float:
    """The least fraction that must move: the sum of the shares nodes gain."""
    total_b = sum(before.values())
    total_a = sum(after.values())
    return sum(max(0.0, w / total_a - before.get(name, 0.0) / total_b) for name, w in after.items())


def _fair(weights: np.ndarray, total: float) -> np.ndarray:
    return total * weights / weights.sum()


def _place(ring: HashRing, keys: np.ndarray, rf: int) -> np.ndarray:
    """Preference lists (n_keys, min(rf, nodes)) as ring indices; column 0 is the owner."""
    if rf == 1:
        return ring.lookup_many(keys)[:, None]
    return ring.get_nodes_many(keys, rf)


def _make_ring(weights: dict[str, float], args: argparse.Namespace) -> HashRing:
    seed = args.seed if args.hash == "xxh64" else 0
    try:
        return HashRing(weights, vnodes=args.vnodes, hash=args.hash, seed=seed)
    except ValueError as exc:
        # The ring names what it refused: a weight, or vnodes (with the ring's size).
        option = "--weights" if str(exc).startswith("weight") else "--vnodes"
        raise UsageError(f"argument {option}: {exc}") from None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Compute everything ``simulate`` reports, as a JSON-ready dict (plus private arrays)."""
    n, k, rf = args.nodes, args.keys, args.rf
    add, remove = args.add or 0, args.remove or 0
    if remove >= n:
        raise UsageError(
            f"argument --remove: must be less than --nodes ({n}) so a node is left, got {remove}"
        )
    width = len(str(n + add - 1))
    names = node_names(n + add, width)
    base_names, new_names = names[:n], names[n:]
    weights = dict(zip(base_names, spread_weights(args.weights, n)))

    started = time.perf_counter()
    base = _make_ring(weights, args)
    w_base = np.array([weights[name] for name in base.nodes])
    copies_per_key = min(rf, n)

    changes: list[Change] = []
    if add:
        after = dict(weights, **{name: 1.0 for name in new_names})
        changes.append(_change("add", new_names, base, after, weights, rf, args))
    if remove:
        rng = np.random.default_rng(args.seed)
        gone = sorted(base_names[i] for i in rng.choice(n, size=remove, replace=False).tolist())
        after = {name: w for name, w in weights.items() if name not in gone}
        changes.append(_change("remove", gone, base, after, weights, rf, args))

    owners = np.zeros(n, dtype=np.int64)
    copies = np.zeros(n, dtype=np.int64)
    for c in changes:
        c.owners = np.zeros(len(c.ring), dtype=np.int64)
        c.copies = np.zeros(len(c.ring), dtype=np.int64)

    passes = 1 + len(changes)
    rings = [base] + [c.ring for c in changes]
    built = time.perf_counter()  # placements are timed from here: building is not placing
    # The batch lookups release the GIL: place the next chunk on every ring in
    # worker threads while this thread counts the chunk before it.
    with (
        text.progress(k * passes, "placing keys", args.progress) as bar,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):

        def submit(start: int) -> list[Future]:
            keys = synthetic_keys(start, min(k, start + CHUNK))
            return [pool.submit(_place, ring, keys, rf) for ring in rings]

        pending = submit(0)
        for start in range(0, k, CHUNK):
            current = pending
            if start + CHUNK < k:
                pending = submit(start + CHUNK)
            pref = current[0].result()
            owners += np.bincount(pref[:, 0], minlength=n)
            copies += np.bincount(pref.ravel(), minlength=n)
            bar.update(len(pref))
            for c, future in zip(changes, current[1:]):
                _count_moves(c, pref, future.result())
                bar.update(len(pref))
    placed = time.perf_counter()
    elapsed = placed - built

    base_load = Load(owners, _fair(w_base, k))
    base_copies = Load(copies, _fair(w_base, k * copies_per_key))
    result: dict[str, Any] = {
        "nodes": n,
        "vnodes": args.vnodes,
        "keys": k,
        "rf": rf,
        "copies_per_key": copies_per_key,
        "hash": args.hash,
        "seed": args.seed,
        "weights": "equal" if not args.weights else [float(w) for w in w_base],
        "load": {
            "keys": base_load.summary(base.nodes),
            "copies": base_copies.summary(base.nodes),
            "per_node": {name: int(c) for name, c in zip(base.nodes, owners)},
        },
        "changes": [_change_result(c, k, rf) for c in changes],
        "build_seconds": built - started,
        "seconds": elapsed,
        "placements_per_second": k * passes / elapsed if elapsed > 0 else None,
    }
    result["_arrays"] = {"base": base, "load": base_load, "changes": changes}
    return result


def _change(
    kind: str,
    names: list[str],
    base: HashRing,
    after: dict[str, float],
    before: dict[str, float],
    rf: int,
    args: argparse.Namespace,
) -> Change:
    ring = _make_ring(after, args)
    index = {x: i for i, x in enumerate(ring.nodes)}
    to_new = np.array([index.get(x, -1) for x in base.nodes], dtype=np.int32)
    # Copies: a node's fair share of copies is its weight share of (keys x copies per key).
    cb, ca = min(rf, len(before)), min(rf, len(after))
    copies_before = {x: w * cb for x, w in before.items()}
    copies_after = {x: w * ca for x, w in after.items()}
    total_b, total_a = sum(before.values()), sum(after.values())
    gained = sum(
        max(0.0, copies_after[x] / total_a - copies_before.get(x, 0.0) / total_b) for x in after
    )
    return Change(
        kind=kind,
        names=list(names),
        ring=ring,
        to_new=to_new,
        ideal_keys=ideal_moved(before, after),
        ideal_copies=gained / ca,
    )


def _count_moves(c: Change, pref_base: np.ndarray, pref_new: np.ndarray) -> None:
    n_new = len(c.ring)
    c.owners += np.bincount(pref_new[:, 0], minlength=n_new)
    c.copies += np.bincount(pref_new.ravel(), minlength=n_new)
    # The old preference lists in the new ring's indices (-1: a removed node).
    old = c.to_new[pref_base]
    moved = old[:, 0] != pref_new[:, 0]
    c.keys_moved += int(np.count_nonzero(moved))
    for j in range(pref_new.shape[1]):
        had_copy = (old == pref_new[:, j : j + 1]).any(axis=1)
        c.copies_moved += int(np.count_nonzero(~had_copy))
    # A needed move leaves a removed node or lands on an added one.
    stayed_old = old[:, 0] >= 0
    is_added = np.ones(n_new, dtype=bool)
    is_added[c.to_new[c.to_new >= 0]] = False
    c.needless += int(np.count_nonzero(moved & stayed_old & ~is_added[pref_new[:, 0]]))


def _change_result(c: Change, k: int, rf: int) -> dict[str, Any]:
    total_copies = k * min(rf, len(c.ring))
    w_after = np.array([c.ring.weights[x] for x in c.ring.nodes])
    load = Load(c.owners, _fair(w_after, k))
    return {
        "change": c.kind,
        "nodes": c.names,
        "keys_moved": c.keys_moved,
        "keys_moved_fraction": c.keys_moved / k,
        "keys_ideal_fraction": c.ideal_keys,
        "copies_moved": c.copies_moved,
        "copies_total": total_copies,
        "copies_moved_fraction": c.copies_moved / total_copies,
        "copies_ideal_fraction": c.ideal_copies,
        "needless_moves": c.needless,
        "load_after": load.summary(c.ring.nodes),
    }


def render(result: dict[str, Any]) -> str:
    """The plain-text report."""
    r = result
    weights = "equal weights" if r["weights"] == "equal" else "weights as given"
    lines = [
        (
            f"simulate: {text.num(r['keys'])} keys on {text.num(r['nodes'])} nodes "
            f"({r['vnodes']} vnodes per unit of weight, {weights}, hash {r['hash']}, "
            f"seed {r['seed']}), RF {r['rf']}"
        ),
        "",
        "load per node, as a multiple of its fair share (1.000 = exactly its weight's share)",
    ]
    keys, copies = r["load"]["keys"], r["load"]["copies"]
    per_node = r["load"]["per_node"]
    rows = [
        (
            "keys owned",
            _ratio(keys["max_over_fair"]),
            _ratio(keys["stddev_over_fair"]),
            _ratio(keys["min_over_fair"]),
        ),
        (
            f"copies held (RF {r['rf']})",
            _ratio(copies["max_over_fair"]),
            _ratio(copies["stddev_over_fair"]),
            _ratio(copies["min_over_fair"]),
        ),
    ]
    lines.append(text.table(rows, ["", "max", "stddev", "min"]))
    lines.append(
        f"  busiest {keys['busiest']} ({text.num(per_node[keys['busiest']])} keys), "
        f"idlest {keys['idlest']} ({text.num(per_node[keys['idlest']])} keys)"
    )
    if r["copies_per_key"] < r["rf"]:
        lines.append(
            f"  note: RF {r['rf']} on {text.plural(r['nodes'], 'node')}: each key has "
            f"{r['copies_per_key']} {'copy' if r['copies_per_key'] == 1 else 'copies'}, "
            "one per node, until more nodes join"
        )
    if r["changes"]:
        lines += ["", "what moves, for each change to the ring above (each from the same start)"]
        change_rows = []
        for c in r["changes"]:
            ideal = c["keys_ideal_fraction"]
            change_rows.append(
                (
                    f"{c['change']} {text.plural(len(c['nodes']), 'node')}",
                    f"{text.num(c['keys_moved'])} ({text.pct(c['keys_moved_fraction'])})",
                    text.pct(ideal),
                    _ratio(c["keys_moved_fraction"] / ideal) if ideal else "-",
                    f"{text.num(c['copies_moved'])} ({text.pct(c['copies_moved_fraction'])})",
                    text.pct(c["copies_ideal_fraction"]),
                    text.num(c["needless_moves"]),
                )
            )
        lines.append(
            text.table(
                change_rows,
                [
                    "change",
                    "keys moved",
                    "ideal",
                    "moved/ideal",
                    "copies moved",
                    "ideal",
                    "needless",
                ],
            )
        )
        for c in r["changes"]:
            shown = ", ".join(c["nodes"][:6]) + (", ..." if len(c["nodes"]) > 6 else "")
            verb = "added" if c["change"] == "add" else "removed (chosen with --seed)"
            lines.append(f"  {verb}: {shown}")
        lines += [
            "  ideal: the least that must move to give every node its weight's share",
            "  needless: keys moved between two nodes that were there before and after",
        ]
    rings = 1 + len(r["changes"])
    lines += [
        "",
        (
            f"placed {text.num(r['keys'])} keys on {text.plural(rings, 'ring')} in "
            f"{text.seconds(r['seconds'])} ({text.rate(r['placements_per_second'] or 0)} placements/s; "
            f"building the {text.plural(rings, 'ring')} took {text.seconds(r['build_seconds'])})"
        ),
    ]
    return "\n".join(lines)


def _ratio(x: float) -> str:
    """A load ratio: 3 decimals, or 3 significant digits when large (a tiny weight's node)."""
    return f"{x:.3f}" if x < 1e4 else f"{x:.3g}"


def _check_plot(path: str | None) -> None:
    if path is None:
        return
    if Path(path).suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"argument --plot: must name a .png, .svg or .pdf file, got {path!r}")
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(
            "argument --plot: needs matplotlib, which the 'plot' extra brings: "
            "pip install 'cvstore[plot]'"
        )
    parent = Path(path).parent
    if not parent.is_dir():
        raise UsageError(f"argument --plot: no such directory {str(parent)!r}")


LOAD_OPTIONS = ("requests", "speeds", "balance", "utilization")
LOAD_MAX_KEYS = 10_000_000


def _load_mode(args: argparse.Namespace) -> bool:
    """Whether --zipf turns on the load mode; its options checked (UsageError otherwise)."""
    if args.zipf is None:
        for option in LOAD_OPTIONS:
            if getattr(args, option, None) is not None:
                raise UsageError(f"argument --{option}: needs --zipf S (the load mode)")
        return False
    for option in ("add", "remove"):
        if getattr(args, option):
            raise UsageError(f"argument --{option}: not with --zipf (the load mode)")
    if args.keys > LOAD_MAX_KEYS:
        raise UsageError(
            f"argument --keys: at most {LOAD_MAX_KEYS:,} with --zipf (a probability per key is "
            f"held in memory), got {args.keys:,}"
        )
    if args.requests is None:
        args.requests = 100_000
    if args.balance is None:
        args.balance = 1.25
    if args.utilization is None:
        args.utilization = 0.7
    return True


def _run_load(args: argparse.Namespace) -> dict[str, Any]:
    from cvstore._cli.loadsim import run_load

    n = args.nodes
    names = node_names(n, len(str(n - 1)))
    weights = spread_weights(args.weights, n)
    if args.speeds and len(args.speeds) > n:
        raise UsageError(
            f"argument --speeds: got {len(args.speeds)} speeds for --nodes {n}; "
            "give one per node or fewer (repeated)"
        )
    speeds = spread_weights(args.speeds, n)
    _make_ring(dict(zip(names, weights)), args)  # the ring's own checks, in the options' words
    return run_load(args, weights, speeds, names)


def command(args: argparse.Namespace) -> int:
    _check_plot(args.plot)
    if _load_mode(args):
        from cvstore._cli.loadsim import render_load

        result = _run_load(args)
        if args.plot:
            from cvstore._cli.plot import plot_load

            try:
                plot_load(args.plot, result)
            except OSError as exc:
                raise CommandError(
                    f"cannot write --plot file {args.plot!r}: {exc.strerror}"
                ) from None
            result["plot"] = args.plot
        if args.json:
            json.dump(result, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(render_load(result))
            if args.plot:
                print(f"wrote {args.plot}")
        return 0
    result = run(args)
    arrays = result.pop("_arrays")
    if args.plot:
        from cvstore._cli.plot import plot_simulation

        try:
            plot_simulation(args.plot, result, arrays)
        except OSError as exc:
            raise CommandError(f"cannot write --plot file {args.plot!r}: {exc.strerror}") from None
        result["plot"] = args.plot
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(result))
        if args.plot:
            print(f"wrote {args.plot}")
    return 0
