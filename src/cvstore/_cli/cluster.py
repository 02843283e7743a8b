"""``cvstore cluster``: operate a cluster whose membership lives on its Redis nodes.

Subcommands (each reaches the cluster through one or more ``--seed`` URLs,
as any client does):

- ``create NAME=URL ...``  write the first layout on the nodes
- ``status``               the layout, each node up or down, keys, load against weight, hints
- ``add NAME URL``         add a node (streams its copies to it)
- ``remove NAME``          remove a node, dead or alive
- ``weight NAME W``        give a node a new weight
- ``repair``               anti-entropy over the whole cluster
- ``finish [--abort]``     finish a change a client left half done
- ``forget-node URL``      clear a removed node before it is started again (deletes its keys)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cvstore._cli import text
from cvstore._cli.errors import CommandError, UsageError


def add_parser(sub: Any, count: Any, weight: Any) -> None:
    """The ``cluster`` subcommand and its own subcommands."""
    cluster = sub.add_parser(
        "cluster",
        help="operate a cluster of Redis nodes that keeps its membership on the nodes",
        description="Create, inspect and change a cluster whose layout (membership and "
        "epoch) lives on its Redis nodes. Every client that joins by address sees the change.",
    )
    ops = cluster.add_subparsers(dest="op", metavar="OP")

    def common(parser: argparse.ArgumentParser, seeds: bool = True) -> None:
        if seeds:
            parser.add_argument(
                "--seed",
                action="append",
                required=True,
                metavar="URL",
                help="a node of the cluster (redis://host:port/db); repeat for more",
            )
        parser.add_argument(
            "--prefix", default="cvstore:", metavar="P", help="key prefix (default 'cvstore:')"
        )
        parser.add_argument(
            "--timeout",
            type=_seconds,
            default=1.0,
            metavar="S",
            help="seconds to wait for a server (default 1)",
        )

    create = ops.add_parser("create", help="write the first layout on the nodes")
    create.add_argument(
        "nodes", nargs="+", metavar="NAME=URL", help="the nodes, e.g. r1=redis://h:7001/0"
    )
    create.add_argument(
        "--rf", type=count(1, 64), default=3, metavar="R", help="replication factor (default 3)"
    )
    create.add_argument(
        "--vnodes",
        type=count(1, 10_000),
        default=160,
        metavar="V",
        help="ring points per unit of weight (default 160)",
    )
    common(create, seeds=False)

    status = ops.add_parser("status", help="layout, nodes up or down, keys, load, hints")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    common(status)

    add = ops.add_parser("add", help="add a node and stream its copies to it")
    add.add_argument("name", metavar="NAME")
    add.add_argument("url", metavar="URL")
    add.add_argument("--weight", type=weight, default=1.0, metavar="W", help="weight (default 1)")
    add.add_argument("--zone", default=None, metavar="Z", help="failure domain (rack, zone)")
    common(add)

    remove = ops.add_parser("remove", help="remove a node (it may be down)")
    remove.add_argument("name", metavar="NAME")
    common(remove)

    reweight = ops.add_parser("weight", help="give a node a new weight")
    reweight.add_argument("name", metavar="NAME")
    reweight.add_argument("weight", type=weight, metavar="W")
    common(reweight)

    repair = ops.add_parser("repair", help="make every replica set whole and current")
    common(repair)

    finish = ops.add_parser("finish", help="finish a change a client left half done")
    finish.add_argument(
        "--abort", action="store_true", help="go back to the membership before the change"
    )
    common(finish)

    forget = ops.add_parser(
        "forget-node", help="delete every key under the prefix of a node that was removed"
    )
    forget.add_argument("url", metavar="URL")
    forget.add_argument("--yes", action="store_true", help="really delete (required)")
    common(forget, seeds=False)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not (0 < seconds <= 60):
        raise argparse.ArgumentTypeError(f"must be seconds > 0 and <= 60, got {value!r}")
    return seconds


def command(args: argparse.Namespace) -> int:
    if args.op is None:
        raise UsageError(
            "missing operation: create, status, add, remove, weight, repair, finish or "
            "forget-node (see 'cvstore cluster --help')",
            prog="cvstore cluster",
        )
    try:
        from cvstore import Cluster, CvstoreError, Node, RedisStore
    except ImportError as exc:  # pragma: no cover - the base install has no redis-py
        raise CommandError(str(exc)) from exc
    try:
        if args.op == "create":
            return _create(args, Cluster, Node, RedisStore)
        if args.op == "forget-node":
            return _forget(args, RedisStore)
        cluster = _join(args, Cluster)
        try:
            return _operate(args, cluster, Node, RedisStore)
        finally:
            cluster.close()
    except ImportError as exc:
        raise CommandError(str(exc)) from exc
    except CvstoreError as exc:  # what the cluster said (a node down, no layout, a conflict)
        raise CommandError(str(exc)) from exc
    except (TypeError, ValueError) as exc:  # what was asked of it (a URL, a name, a weight)
        raise UsageError(str(exc), prog=f"cvstore cluster {args.op}") from exc


def _store(url: str, args: argparse.Namespace, store_class: Any) -> Any:
    return store_class(url, prefix=args.prefix, timeout=args.timeout)


def _join(args: argparse.Namespace, cluster_class: Any) -> Any:
    return cluster_class.join(args.seed, prefix=args.prefix, timeout=args.timeout)


def _create(args: argparse.Namespace, cluster_class: Any, node_class: Any, store_class: Any) -> int:
    nodes = []
    for item in args.nodes:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise UsageError(f"nodes must be NAME=URL, got {item!r}", prog="cvstore cluster create")
        nodes.append(node_class(name, store=_store(url, args, store_class)))
    cluster = cluster_class.create(nodes, replication_factor=args.rf, vnodes=args.vnodes)
    try:
        layout = cluster.layout
        print(
            f"created cluster {layout.cluster}: {', '.join(layout.names)} "
            f"(epoch {layout.epoch}, replication factor {layout.replication_factor})"
        )
    finally:
        cluster.close()
        for node in nodes:
            node.store.close()
    return 0


def _forget(args: argparse.Namespace, store_class: Any) -> int:
    if not args.yes:
        raise UsageError(
            f"forget-node deletes every key under {args.prefix!r} on {args.url}; "
            "add --yes to do it",
            prog="cvstore cluster forget-node",
        )
    with _store(args.url, args, store_class) as store:
        removed = store.clear()
    print(f"deleted {text.num(removed)} keys under {args.prefix!r} on {args.url}")
    return 0


def _operate(args: argparse.Namespace, cluster: Any, node_class: Any, store_class: Any) -> int:
    if args.op == "status":
        return _status(args, cluster)
    if args.op == "add":
        store = _store(args.url, args, store_class)
        report = cluster.add_node(
            node_class(args.name, weight=args.weight, zone=args.zone, store=store)
        )
        store.close()
        print(
            f"added {args.name}: {text.num(report.moved)} copies streamed to it; {_epoch(cluster)}"
        )
    elif args.op == "remove":
        report = cluster.remove_node(args.name)
        print(
            f"removed {args.name}: {text.num(report.moved)} copies streamed from it; {_epoch(cluster)}"
        )
    elif args.op == "weight":
        report = cluster.set_weight(args.name, args.weight)
        print(
            f"{args.name} has weight {args.weight:g}: {text.num(report.moved)} copies moved; {_epoch(cluster)}"
        )
    elif args.op == "repair":
        report = cluster.repair()
        print(
            f"repair: {text.num(report.keys)} keys, {text.num(report.repaired)} copies repaired, "
            f"{text.num(report.strays_removed)} strays removed, {text.num(report.purged)} purged, "
            f"{text.num(report.hints_delivered)} hints delivered"
            + (f"; skipped (down): {', '.join(report.skipped)}" if report.skipped else "")
        )
        return 0 if report.complete else 1
    elif args.op == "finish":
        report = cluster.finish_change(abort=args.abort)
        if report is None:
            print(f"no change is under way; {_epoch(cluster)}")
        else:
            verb = "took back" if args.abort else "finished"
            print(f"{verb} the change ({report.action} {report.node}); {_epoch(cluster)}")
    return 0


def _epoch(cluster: Any) -> str:
    layout = cluster.layout
    return f"layout epoch {layout.epoch}: {', '.join(layout.names)}"


def _status(args: argparse.Namespace, cluster: Any) -> int:
    layout = cluster.layout
    stats = cluster.stats()
    epochs = {}
    for node in cluster.nodes:
        try:
            epochs[node.name] = node.store.read_layout()[0]
        except Exception:  # noqa: BLE001 - a node down: shown as such
            epochs[node.name] = None
    rows = []
    for spec in layout.everyone():
        row = stats.per_node.get(spec.name, {})
        up = row.get("up", False)
        rows.append(
            {
                "node": spec.name,
                "address": spec.address,
                "zone": spec.zone,
                "up": bool(up),
                "epoch": epochs.get(spec.name),
                "keys": stats.keys_per_node.get(spec.name),
                "share": stats.share.get(spec.name),
                "weight": spec.weight,
                "weight_share": stats.weight_share.get(spec.name),
                "last_failure": row.get("last_failure"),
            }
        )
    out = {
        "cluster": layout.cluster,
        "epoch": layout.epoch,
        "changing": layout.changing,
        "change": layout.change,
        "replication_factor": layout.replication_factor,
        "vnodes": layout.vnodes,
        "hash": layout.hash,
        "nodes": rows,
        "hints_pending": stats.hints_pending,
        "imbalance": stats.imbalance,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0 if all(r["up"] for r in rows) else 1
    state = (
        f"changing ({layout.change.get('action')} {layout.change.get('node')})"
        if layout.changing
        else "stable"
    )
    print(
        f"cluster {layout.cluster}, layout epoch {layout.epoch}, {state}; replication factor "
        f"{layout.replication_factor}, {layout.vnodes} vnodes, {layout.hash}"
    )

    def pct(x: Any) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    print(
        text.table(
            [
                (
                    r["node"],
                    r["address"],
                    "up" if r["up"] else "DOWN",
                    "-" if r["epoch"] is None else str(r["epoch"]),
                    "-" if r["keys"] is None else text.num(r["keys"]),
                    pct(r["share"]),
                    f"{r['weight']:g}",
                    pct(r["weight_share"]),
                    r["zone"] or "-",
                )
                for r in rows
            ],
            ["node", "address", "state", "epoch", "keys", "share", "weight", "fair share", "zone"],
            left=3,
        )
    )
    print(f"hints pending: {text.num(stats.hints_pending)}; imbalance {stats.imbalance:.2f}")
    for r in rows:
        if not r["up"] and r["last_failure"]:
            print(f"  {r['node']} down: {r['last_failure']}")
    return 0 if all(r["up"] for r in rows) else 1
