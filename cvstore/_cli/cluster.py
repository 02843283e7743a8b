"""``cvstore cluster``: operate a cluster whose membership lives on its Redis nodes.

Subcommands (each reaches the cluster through one or more ``--seed`` URLs,
or the URLs in ``$CVSTORE_SEED``, as any client does):

- ``create NAME=URL ...``  write the first layout on the nodes
- ``status``               the layout, each node up or down, keys, load against weight, hints
- ``add NAME URL``         add a node (streams its copies to it)
- ``remove NAME``          remove a node, dead or alive
- ``weight NAME W``        give a node a new weight
- ``repair``               anti-entropy over the whole cluster
- ``finish [--abort]``     finish a change a client left half done
- ``forget-node URL``      clear a removed node before it is started again (deletes its keys)

What protects the copies: ``create`` and ``add`` refuse a second member at
one server and database; ``forget-node`` refuses a member of any layout it
can read and deletes only this cluster's key shapes; a Ctrl-C ends with a
line naming the state left and the command that finishes or takes it back.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import textwrap
from typing import Any

from cvstore._cli import text
from cvstore._cli.errors import CommandError, Interrupted, UsageError
from cvstore._cli.nodes import check_url, diagnose, same_server

SEED_ENV = "CVSTORE_SEED"  # the seed URLs when --seed is absent (comma or space separated)
DEFAULT_BOUND = 1.25  # status: over its bound when a share > DEFAULT_BOUND x its weight's share
BYTES_SAMPLE = 64  # status: records per node whose MEMORY USAGE is asked


_SEED = "redis://cache-1:6379/0"

# One example line per operation, shown by its --help.
EXAMPLES = {
    "create": "cvstore cluster create r1=redis://cache-1:6379/0 r2=redis://cache-2:6379/0 "
    "r3=redis://cache-3:6379/0 --rf 3",
    "status": f"cvstore cluster status --seed {_SEED}",
    "add": f"cvstore cluster add r4 redis://cache-4:6379/0 --seed {_SEED}",
    "remove": f"cvstore cluster remove r2 --seed {_SEED}",
    "weight": f"cvstore cluster weight r4 2 --seed {_SEED}",
    "repair": f"cvstore cluster repair --seed {_SEED}",
    "finish": f"cvstore cluster finish --seed {_SEED}",
    "forget-node": "cvstore cluster forget-node redis://cache-2:6379/0 --yes",
}

_EXIT_CODES = (
    "exit codes: 0 done; 1 the cluster refused or could not do it (a node down, no cluster "
    "found, and for 'status' a node down); 2 bad usage or input; 130 interrupted (the last "
    "line says the state left and the command that finishes it)"
)


def _epilog(op: str) -> str:
    return f"example:\n  {EXAMPLES[op]}\n\n{textwrap.fill(_EXIT_CODES, 78)}"


def add_parser(sub: Any, count: Any, weight: Any) -> None:
    """The ``cluster`` subcommand and its own subcommands."""
    raw = argparse.RawDescriptionHelpFormatter
    cluster = sub.add_parser(
        "cluster",
        help="operate a cluster of Redis nodes that keeps its membership on the nodes",
        description=textwrap.fill(
            "Create, inspect and change a cluster whose layout (membership and epoch) lives "
            "on its Redis nodes. Every client that joins by address sees the change. --seed "
            f"may be left out when {SEED_ENV} names the seed URLs.",
            78,
        ),
        epilog="examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES.values()),
        formatter_class=raw,
    )
    ops = cluster.add_subparsers(dest="op", metavar="OP")

    def add_op(name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = ops.add_parser(
            name, help=help, description=textwrap.fill(kwargs.pop("description", help), 78),
            epilog=_epilog(name), formatter_class=raw, **kwargs,
        )  # fmt: skip
        return parser

    def common(parser: argparse.ArgumentParser, seeds: bool = True) -> None:
        if seeds:
            parser.add_argument(
                "--seed",
                action="append",
                metavar="URL",
                help="a node of the cluster (redis://host:port/db); repeat for more "
                f"(default: the URLs in ${SEED_ENV})",
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

    def progress(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="show a progress bar on stderr (default: only when stderr is a terminal)",
        )

    create = add_op("create", "write the first layout on the nodes")
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

    status = add_op(
        "status",
        "layout, nodes up or down, keys, load, hints",
        description="Show the layout, each node up or down, keys, load and hints. Exits 1 "
        "when a node is down (the status is printed all the same), so a script can check "
        "the cluster's health by the exit code.",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument(
        "--bound",
        type=_bound,
        default=DEFAULT_BOUND,
        metavar="C",
        help="a node is over its bound when its share of keys, bytes or requests is more "
        f"than C times its weight's share (default {DEFAULT_BOUND:g})",
    )
    common(status)

    add = add_op("add", "add a node and stream its copies to it")
    add.add_argument("name", metavar="NAME")
    add.add_argument("url", metavar="URL")
    add.add_argument("--weight", type=weight, default=1.0, metavar="W", help="weight (default 1)")
    add.add_argument("--zone", default=None, metavar="Z", help="failure domain (rack, zone)")
    common(add)
    progress(add)

    remove = add_op("remove", "remove a node (it may be down)")
    remove.add_argument("name", metavar="NAME")
    common(remove)
    progress(remove)

    reweight = add_op("weight", "give a node a new weight")
    reweight.add_argument("name", metavar="NAME")
    reweight.add_argument("weight", type=weight, metavar="W")
    common(reweight)
    progress(reweight)

    repair = add_op("repair", "make every replica set whole and current")
    common(repair)
    progress(repair)

    finish = add_op("finish", "finish a change a client left half done")
    finish.add_argument(
        "--abort", action="store_true", help="go back to the membership before the change"
    )
    common(finish)
    progress(finish)

    forget = add_op(
        "forget-node",
        "delete this cluster's keys on a node that was removed",
        description="Delete the keys this cluster keeps (records, hints, counters, layout "
        "under --prefix) on a node that was removed, before it is started again. Refused "
        "while the node is a member of the layout it holds or the layout the cluster's "
        "nodes hold; keys of other prefixes are never deleted.",
    )
    forget.add_argument("url", metavar="URL")
    forget.add_argument("--yes", action="store_true", help="really delete (required)")
    common(forget)


def _bound(value: str) -> float:
    try:
        c = float(value)
    except ValueError:
        c = float("nan")
    if not (1 <= c <= 100):
        raise argparse.ArgumentTypeError(f"must be a number >= 1 and <= 100, got {value!r}")
    return c


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
    from cvstore.errors import CvstoreError

    prog = f"cvstore cluster {args.op}"
    run = _Run(args)
    try:
        _check_urls(args, prog)
        try:
            from cvstore import Cluster, Node, RedisStore
        except ImportError as exc:  # pragma: no cover - the base install has no redis-py
            raise CommandError(str(exc)) from exc
        run.started = True
        if args.op == "create":
            return _create(args, run, Cluster, Node, RedisStore)
        if args.op == "forget-node":
            return _forget(args, run, Cluster, RedisStore)
        cluster = _join(args, Cluster)
        try:
            run.before = cluster.layout
            return _operate(args, run, cluster, Node, RedisStore)
        finally:
            cluster.close()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: let this line be said
        if not run.started:
            raise Interrupted("nothing was changed") from None
        try:
            state = _after_interrupt(args, run, Cluster, RedisStore)
        except Exception as exc:  # noqa: BLE001 - the line must be said whatever failed
            state = f"the state could not be read ({exc}); 'cvstore cluster status' shows it"
        raise Interrupted(state) from None
    except ImportError as exc:
        raise CommandError(str(exc)) from exc
    except CvstoreError as exc:  # what the cluster said (a node down, no layout, a conflict)
        raise CommandError(_in_cli_words(str(exc))) from exc
    except (TypeError, ValueError) as exc:  # what was asked of it (a URL, a name, a weight)
        raise UsageError(_in_cli_words(str(exc)), prog=prog) from exc


class _Run:
    """What a run has done so far, for the line an interruption ends with."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = False  # the arguments are checked and the work begins
        self.before: Any = None  # the layout when the command joined
        self.deleting = False  # forget-node has started deleting
        self.finished = False  # the work is done and its outcome is being printed

    def finish(self) -> None:
        """The work is done: its outcome is printed next, and (run as the program) a Ctrl-C
        from now on is ignored, so it cannot turn that outcome into an interruption."""
        self.finished = True
        if getattr(self.args, "as_program", False):
            signal.signal(signal.SIGINT, signal.SIG_IGN)


# The library's names for what the command line calls otherwise.
_CLI_WORDS = (
    ("finish_change(abort=True)", "'cvstore cluster finish --abort'"),
    ("finish_change()", "'cvstore cluster finish'"),
    ("Cluster.create", "'cvstore cluster create'"),
    ("join it with Cluster.join", "see it with 'cvstore cluster status --seed URL'"),
    ("Cluster.join", "'cvstore cluster status --seed URL'"),
    ("add_node", "'cvstore cluster add'"),
    ("remove_node", "'cvstore cluster remove'"),
    ("repair()", "'cvstore cluster repair'"),
    ("recover() it", "start it again"),
)


def _in_cli_words(message: str) -> str:
    for library, cli in _CLI_WORDS:
        message = message.replace(library, cli)
    return message


def _check_urls(args: argparse.Namespace, prog: str) -> None:
    """Every URL given, checked in the command line's words; --seed from CVSTORE_SEED if absent."""
    if hasattr(args, "seed"):
        if not args.seed:
            env = os.environ.get(SEED_ENV, "")
            args.seed = [u for u in env.replace(",", " ").split() if u]
            if not args.seed and args.op != "forget-node":
                raise UsageError(
                    f"--seed is required: give a node of the cluster (--seed redis://host:port/db) "
                    f"or set {SEED_ENV}",
                    prog=prog,
                )
            what = SEED_ENV
            args.seed_from_env = True  # the commands an interruption names need no --seed
        else:
            what = "--seed"
        for url in args.seed:
            check_url(url, what, prog)
    if args.op == "create":
        pairs = []
        for item in args.nodes:
            name, sep, url = item.partition("=")
            if not sep or not name or not url:
                raise UsageError(f"nodes must be NAME=URL, got {item!r}", prog=prog)
            pairs.append((name, check_url(url, f"the URL of {name}", prog)))
        seen: dict[str, str] = {}
        for name, url in pairs:
            if name in seen:
                raise UsageError(f"node name {name!r} is given twice", prog=prog)
            for other, other_url in seen.items():
                if same_server(url, other_url):
                    raise UsageError(
                        f"{name} and {other} have one address ({url} and {other_url} are the "
                        "same server and database): two members there would keep two copies of "
                        "a key on one server; give each node its own server",
                        prog=prog,
                    )
            seen[name] = url
        args.pairs = pairs
    elif args.op in ("add", "forget-node"):
        check_url(args.url, "URL", prog)


def _store(url: str, args: argparse.Namespace, store_class: Any) -> Any:
    return store_class(url, prefix=args.prefix, timeout=args.timeout)


def _join(args: argparse.Namespace, cluster_class: Any) -> Any:
    from cvstore.core.layout import LayoutError

    try:
        return cluster_class.join(args.seed, prefix=args.prefix, timeout=args.timeout)
    except LayoutError as exc:
        if not str(exc).startswith("no seed answered"):
            raise
        causes = "; ".join(diagnose(url, args.prefix, args.timeout) for url in args.seed)
        raise CommandError(
            f"no cluster found under prefix {args.prefix!r}: {causes}. To start one: "
            "'cvstore cluster create NAME=URL ...'"
        ) from exc


def _create(
    args: argparse.Namespace, run: _Run, cluster_class: Any, node_class: Any, store_class: Any
) -> int:
    nodes = [node_class(name, store=_store(url, args, store_class)) for name, url in args.pairs]
    try:
        cluster = cluster_class.create(nodes, replication_factor=args.rf, vnodes=args.vnodes)
        try:
            layout = cluster.layout
            run.finish()
            print(
                f"created cluster {layout.cluster}: {', '.join(layout.names)} "
                f"(epoch {layout.epoch}, replication factor {layout.replication_factor})"
            )
        finally:
            cluster.close()
    finally:
        for node in nodes:
            node.store.close()
    return 0


def _forget(args: argparse.Namespace, run: _Run, cluster_class: Any, store_class: Any) -> int:
    prog = "cvstore cluster forget-node"
    if not args.yes:
        raise UsageError(
            f"forget-node deletes this cluster's keys (prefix {args.prefix!r}) on {args.url}; "
            "add --yes to do it",
            prog=prog,
        )
    member = _membership_of(args, cluster_class, store_class)
    if member is not None:
        raise CommandError(member)
    with _store(args.url, args, store_class) as store:
        run.deleting = True
        removed = store.clear()
    run.finish()
    print(f"deleted {text.num(removed)} keys of prefix {args.prefix!r} on {args.url}")
    return 0


def _membership_of(args: argparse.Namespace, cluster_class: Any, store_class: Any) -> str | None:
    """Why the node at args.url must not be cleared (a member of a layout), or None."""
    from cvstore.core.layout import Layout, LayoutError

    layouts = []
    with _store(args.url, args, store_class) as store:
        try:
            _, data = store.read_layout()
        except Exception as exc:  # a node that does not answer is not cleared
            cause = diagnose(args.url, args.prefix, args.timeout)
            raise CommandError(f"{cause}; nothing was deleted") from exc
    own = None
    if data is not None:
        try:
            own = Layout.from_bytes(data)
        except LayoutError as exc:
            raise CommandError(
                f"{args.url} holds a layout under prefix {args.prefix!r} that does not parse "
                f"({exc}); nothing was deleted"
            ) from exc
        layouts.append(own)
    # The newest layout the cluster holds: from the members the node's own
    # layout names, and from any --seed given.
    seeds = [s.address for s in own.everyone() if s.address] if own is not None else []
    seeds += [u for u in args.seed or () if u not in seeds]
    seeds = [u for u in seeds if not same_server(u, args.url)]
    if seeds:
        try:
            cluster = cluster_class.join(seeds, prefix=args.prefix, timeout=args.timeout)
        except Exception:  # noqa: BLE001 - no newer layout readable: the node's own decides
            cluster = None
        if cluster is not None:
            layouts.append(cluster.layout)
            cluster.close()
    for layout in sorted(layouts, key=lambda layout: -layout.epoch)[:1]:
        for spec in layout.everyone():
            if same_server(spec.address, args.url) and spec.prefix == args.prefix:
                return (
                    f"{args.url} is node {spec.name} of cluster {layout.cluster} (layout "
                    f"epoch {layout.epoch}); nothing was deleted. Remove it first: "
                    f"'cvstore cluster remove {spec.name} --seed URL'"
                )
    return None


class _Bar:
    """A ``progress=`` callback that draws a bar on stderr (copies done of total, and the rate)."""

    def __init__(self, desc: str, enabled: bool | None) -> None:
        self.desc = desc
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = text.progress(total, self.desc, True, unit="copies")
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    @property
    def hook(self) -> Any:
        return self if self.enabled else None


def _operate(
    args: argparse.Namespace, run: _Run, cluster: Any, node_class: Any, store_class: Any
) -> int:
    if args.op == "status":
        return _status(args, cluster)
    bar = _Bar("repairing" if args.op == "repair" else "streaming", args.progress)
    try:
        return _change(args, run, cluster, node_class, store_class, bar.hook)
    finally:
        bar.close()


def _change(
    args: argparse.Namespace,
    run: _Run,
    cluster: Any,
    node_class: Any,
    store_class: Any,
    progress: Any,
) -> int:
    if args.op == "add":
        for spec in cluster.layout.everyone():
            if same_server(spec.address, args.url):
                raise UsageError(
                    f"{args.url} is the address of member {spec.name} ({spec.address}): a second "
                    "member there would keep two copies of a key on one server; give "
                    f"{args.name} its own server",
                    prog="cvstore cluster add",
                )
        store = _store(args.url, args, store_class)
        try:
            report = cluster.add_node(
                node_class(args.name, weight=args.weight, zone=args.zone, store=store),
                progress=progress,
            )
        finally:
            store.close()
        run.finish()
        print(
            f"added {args.name}: {text.num(report.moved)} copies streamed to it; {_epoch(cluster)}"
        )
    elif args.op == "remove":
        report = cluster.remove_node(args.name, progress=progress)
        run.finish()
        print(
            f"removed {args.name}: {text.num(report.moved)} copies streamed from it; "
            f"{_epoch(cluster)}"
        )
    elif args.op == "weight":
        report = cluster.set_weight(args.name, args.weight, progress=progress)
        run.finish()
        print(
            f"{args.name} has weight {args.weight:g}: {text.num(report.moved)} copies moved; "
            f"{_epoch(cluster)}"
        )
    elif args.op == "repair":
        report = cluster.repair(progress=progress)
        run.finish()
        print(
            f"repair: {text.num(report.keys)} keys, {text.num(report.repaired)} copies repaired, "
            f"{text.num(report.strays_removed)} strays removed, {text.num(report.purged)} purged, "
            f"{text.num(report.hints_delivered)} hints delivered"
            + (f"; skipped (down): {', '.join(report.skipped)}" if report.skipped else "")
        )
        return 0 if report.complete else 1
    elif args.op == "finish":
        report = cluster.finish_change(abort=args.abort, progress=progress)
        run.finish()
        if report is None:
            print(f"no change is under way; {_epoch(cluster)}")
        else:
            verb = "took back" if args.abort else "finished"
            print(f"{verb} the change ({report.action} {report.node}); {_epoch(cluster)}")
    return 0


def _epoch(cluster: Any) -> str:
    layout = cluster.layout
    return f"layout epoch {layout.epoch}: {', '.join(layout.names)}"


def _after_interrupt(
    args: argparse.Namespace, run: _Run, cluster_class: Any, store_class: Any
) -> str:
    """The state an interrupted command left, and the command that finishes or takes it back."""
    from_env = getattr(args, "seed_from_env", False)
    seed = f" --seed {args.seed[0]}" if getattr(args, "seed", None) and not from_env else ""
    prefix = f" --prefix {args.prefix}" if args.prefix != "cvstore:" else ""
    where = seed + prefix
    if args.op == "status":
        return "nothing was changed"
    if run.finished:
        return "after the work was done (see the line above); nothing is left half done"
    if args.op == "forget-node":
        if not run.deleting:
            return f"nothing was deleted on {args.url}"
        return (
            f"some keys of prefix {args.prefix!r} on {args.url} may be left; run "
            f"'cvstore cluster forget-node {args.url}{prefix} --yes' again to delete the rest"
        )
    if args.op == "repair":
        return (
            "repair stopped part way (no copy is lost by stopping it); run "
            f"'cvstore cluster repair{where}' again to finish it"
        )
    seeds = list(args.seed) if args.op != "create" else [url for _, url in args.pairs]
    if args.op == "create":
        where = f" --seed {seeds[0]}{prefix}"
    try:
        cluster = cluster_class.join(seeds, prefix=args.prefix, timeout=min(args.timeout, 1.0))
    except Exception as exc:  # noqa: BLE001 - say what could not be read, and how to look
        if args.op == "create" and "no seed answered" in str(exc):
            return "nothing was created (no node holds a layout)"
        return (
            f"the layout could not be read afterwards ({_in_cli_words(str(exc))}); run "
            f"'cvstore cluster status{where}' to see the state"
        )
    try:
        layout = cluster.layout
    finally:
        cluster.close()
    if args.op == "create":
        return (
            f"cluster {layout.cluster} was created (layout epoch {layout.epoch}: "
            f"{', '.join(layout.names)}); 'cvstore cluster status{where}' shows it"
        )
    if layout.changing:
        change = f"{layout.change.get('action')} {layout.change.get('node')}"
        return (
            f"the layout is left changing ({change}) at epoch {layout.epoch}; run "
            f"'cvstore cluster finish{where}' to complete it, or "
            f"'cvstore cluster finish --abort{where}' to take it back"
        )
    before = run.before
    if before is None or layout.epoch == before.epoch:  # None: stopped before it began
        return f"nothing was changed (layout epoch {layout.epoch}: {', '.join(layout.names)})"
    return (
        f"the change was made (layout epoch {layout.epoch}: {', '.join(layout.names)}), but "
        "copies may be left on nodes that no longer keep them; run "
        f"'cvstore cluster repair{where}' to remove them"
    )


def _memory_usage(store: Any, sample: int = BYTES_SAMPLE) -> int | None:
    """Bytes a node's records take in Redis (``RedisStore.memory_usage``), or None when the
    store is not a Redis one or does not answer."""
    from cvstore import RedisStore

    if not isinstance(store, RedisStore):
        return None
    try:
        return store.memory_usage(sample)
    except Exception:  # noqa: BLE001 - a node that does not answer: its bytes are unknown
        return None


def _shares(values: dict[str, Any]) -> dict[str, float | None]:
    known = {name: v for name, v in values.items() if v is not None}
    total = sum(known.values())
    return {name: (known[name] / total if total and name in known else None) for name in values}


MEASURES = ("keys", "bytes", "requests")


def _status(args: argparse.Namespace, cluster: Any) -> int:
    layout = cluster.layout
    stats = cluster.stats()
    epochs = {}
    for node in cluster.nodes:
        try:
            epochs[node.name] = node.store.read_layout()[0]
        except Exception:  # noqa: BLE001 - a node down: shown as such
            epochs[node.name] = None
    up_nodes = {node.name: node for node in cluster.nodes if node.name in stats.keys_per_node}
    sizes = {name: _memory_usage(node.store) for name, node in up_nodes.items()}
    hot = stats.hot_keys
    seen = bool(hot.get("sampled"))
    requests = {name: hot["requests"].get(name, 0) if seen else None for name in up_nodes}
    shares = {
        "keys": stats.share,
        "bytes": _shares(sizes),
        "requests": _shares(requests),
    }
    rows = []
    for spec in layout.everyone():
        row = stats.per_node.get(spec.name, {})
        up = row.get("up", False)
        fair = stats.weight_share.get(spec.name)
        over = [
            m
            for m in MEASURES
            if fair is not None
            and shares[m].get(spec.name) is not None
            and shares[m][spec.name] > args.bound * fair
        ]
        rows.append(
            {
                "node": spec.name,
                "address": spec.address,
                "zone": spec.zone,
                "up": bool(up),
                "epoch": epochs.get(spec.name),
                "keys": stats.keys_per_node.get(spec.name),
                "share": stats.share.get(spec.name),
                "bytes": sizes.get(spec.name),
                "bytes_share": shares["bytes"].get(spec.name),
                "requests": requests.get(spec.name),
                "requests_share": shares["requests"].get(spec.name),
                "weight": spec.weight,
                "weight_share": fair,
                "bound_share": None if fair is None else args.bound * fair,
                "over_bound": over,
                "hot_keys": hot.get("per_node", {}).get(spec.name, []),
                "last_failure": row.get("last_failure"),
            }
        )
    out = {
        "cluster": layout.cluster,
        "epoch": layout.epoch,
        "changing": layout.changing,
        "change": layout.change,
        "replication_factor": layout.replication_factor,
        "placement": layout.placement,
        "vnodes": layout.vnodes,
        "hash": layout.hash,
        "nodes": rows,
        "hints_pending": stats.hints_pending,
        "imbalance": stats.imbalance,
        "bound": args.bound,
        "bytes_sample": BYTES_SAMPLE,
        "requests_seen": hot.get("sampled", 0) * hot.get("sample_every", 0),
        "hot_keys": hot.get("cluster", []),
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
        f"{layout.replication_factor}, "
        + (
            f"{layout.vnodes} vnodes, {layout.hash}"
            if layout.placement == "ring"
            else f"placement {layout.placement}, seed {layout.seed}"
        )
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
                    "-" if r["bytes"] is None else text.num(r["bytes"]),
                    pct(r["bytes_share"]),
                    pct(r["requests_share"]),
                    f"{r['weight']:g}",
                    pct(r["weight_share"]),
                    r["zone"] or "-",
                )
                for r in rows
            ],
            [
                "node",
                "address",
                "state",
                "epoch",
                "keys",
                "share",
                "bytes",
                "share",
                "requests",
                "weight",
                "fair share",
                "zone",
            ],
            left=3,
        )
    )
    print(f"hints pending: {text.num(stats.hints_pending)}; imbalance {stats.imbalance:.2f}")
    print(
        f"bytes: Redis MEMORY USAGE of up to {BYTES_SAMPLE} records per node, times its "
        "records; requests: the calls this command's own client made, none of its own "
        "(a running client's stats().hot_keys has its requests)"
        if not seen
        else f"bytes: Redis MEMORY USAGE of up to {BYTES_SAMPLE} records per node, times its "
        "records; requests: the calls this client made"
    )
    over_rows = [r for r in rows if r["over_bound"]]
    for r in over_rows:
        said = ", ".join(
            f"{pct(r['share'] if m == 'keys' else r[m + '_share'])} of {m}" for m in r["over_bound"]
        )
        print(
            f"  {r['node']} is over its bound: {said}, against a fair share of "
            f"{pct(r['weight_share'])} (bound {args.bound:g} x = {pct(r['bound_share'])})"
        )
    if not over_rows:
        print(
            f"no node is over its bound ({args.bound:g} x its fair share of keys, bytes, requests)"
        )
    if seen and out["hot_keys"]:
        top = ", ".join(f"{h['key']!s} ~{text.num(h['count'])}" for h in out["hot_keys"][:5])
        print(f"hot keys (this client's calls, 1 in {hot['sample_every']} counted): {top}")
    if layout.changing:
        print(
            "a change is under way; if the client making it is gone, 'cvstore cluster finish' "
            "completes it and 'cvstore cluster finish --abort' takes it back"
        )
    for r in rows:
        if not r["up"] and r["last_failure"]:
            print(f"  {r['node']} down: {r['last_failure']}")
    return 0 if all(r["up"] for r in rows) else 1
