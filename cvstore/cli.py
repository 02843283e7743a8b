"""The ``cvstore`` command line: argument parsing and dispatch to the commands.

``main(argv)`` parses the arguments and runs one command from
``cvstore._cli``; each command module is imported only when it runs, so
``cvstore --help`` stays quick and ``import cvstore`` never loads any of it.

Exit codes: 0 success, 1 the command failed at run time (a node down, a file
that cannot be written), 2 bad usage or bad input.  Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from cvstore._cli import args as _args
from cvstore._cli.errors import CommandError, Interrupted, UsageError
from cvstore._version import __version__

__all__ = ("main",)

_COMMANDS = ("demo", "shell", "simulate", "bench", "cluster")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and do not exit the process."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')", prog=self.prog)


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="cvstore",
        description="cvstore: a consistent-hashing key-value store. Try 'cvstore demo' first.",
    )
    parser.add_argument("--version", action="version", version=f"cvstore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="a 3-node cluster (RF 3) through failures, hints, growth and shrinking",
        description="Run an in-process cluster of 3 nodes with replication factor 3 and "
        "show, step by step, what the cluster guarantees.",
    )
    demo.add_argument(
        "--keys",
        type=_args.count(1, 1_000_000),
        default=3000,
        metavar="K",
        help="how many keys to store (default 3000)",
    )
    demo.add_argument(
        "--seed",
        type=_args.count(0, 2**64 - 1),
        default=0,
        metavar="S",
        help="seed of the random choices (default 0)",
    )
    _add_progress(demo)

    shell = sub.add_parser(
        "shell",
        help="an interactive shell on a cluster (in memory, or Redis nodes)",
        description="Play with a cluster by hand: add and remove nodes, fail and recover "
        "them, put and get keys at a consistency level. Type 'help' in the shell.",
    )
    shell.add_argument(
        "--rf",
        type=_args.count(1, 64),
        default=None,
        metavar="R",
        help="replication factor of a new cluster (default 3)",
    )
    shell.add_argument(
        "--vnodes",
        type=_args.limited("vnodes"),
        default=None,
        metavar="V",
        help="ring points per unit of weight of a new cluster (default 160, at most 10,000,000)",
    )
    shell.add_argument(
        "--read",
        default="quorum",
        choices=_args.LEVELS,
        metavar="LEVEL",
        help="default read consistency (default quorum)",
    )
    shell.add_argument(
        "--write",
        default="quorum",
        choices=_args.LEVELS,
        metavar="LEVEL",
        help="default write consistency (default quorum)",
    )
    shell.add_argument(
        "--redis",
        nargs="+",
        metavar="URL",
        help="join the cluster these Redis servers hold, or start one with a node per URL "
        "(needs the 'redis' extra)",
    )
    shell.add_argument(
        "--prefix",
        default=None,
        metavar="P",
        help="the cluster's key prefix in Redis (default 'cvstore:')",
    )
    shell.add_argument(
        "--load", metavar="FILE", help="start from a session saved with the shell's 'save FILE'"
    )
    _add_progress(shell)

    sim = sub.add_parser(
        "simulate",
        help="load per node and keys moved, on millions of synthetic keys",
        description="Place synthetic keys (key-0, key-1, ...) on a ring with the batch "
        "lookups; report the load per node and, for --add/--remove, how many keys and "
        "replica copies move compared with the least that must.",
    )
    sim.add_argument(
        "--nodes",
        type=_args.limited("nodes"),
        default=100,
        metavar="N",
        help="nodes in the ring (default 100)",
    )
    sim.add_argument(
        "--vnodes",
        type=_args.limited("vnodes"),
        default=160,
        metavar="V",
        help="points per unit of weight (default 160)",
    )
    sim.add_argument(
        "--keys",
        type=_args.limited("keys"),
        default=1_000_000,
        metavar="K",
        help="synthetic keys; 10k, 10M are understood (default 1M)",
    )
    sim.add_argument(
        "--weights",
        type=_args.weight,
        nargs="+",
        metavar="W",
        help="node weights, one per node, or a shorter list repeated (default: all 1)",
    )
    sim.add_argument(
        "--rf",
        type=_args.count(1, 64),
        default=3,
        metavar="R",
        help="replication factor for replica copies (default 3)",
    )
    sim.add_argument(
        "--add",
        type=_args.limited("nodes"),
        metavar="A",
        help="what if A nodes of weight 1 are added",
    )
    sim.add_argument(
        "--remove",
        type=_args.limited("nodes"),
        metavar="R",
        help="what if R nodes (chosen with --seed) are removed",
    )
    sim.add_argument(
        "--hash",
        default="xxh64",
        choices=("xxh64", "ketama", "ketama-uhashring"),
        help="placement function (default xxh64)",
    )
    sim.add_argument(
        "--seed",
        type=_args.count(0, 2**64 - 1),
        default=0,
        metavar="S",
        help="ring seed (xxh64) and which nodes --remove takes (default 0)",
    )
    load = sim.add_argument_group(
        "load mode (--zipf)",
        "requests drawn from a Zipf workload, served by nodes of given speeds: load per node "
        "and simulated latency for the plain ring, bounded loads and the read policies",
    )
    load.add_argument(
        "--zipf",
        type=_args.zipf_exponent,
        metavar="S",
        help="request keys drawn from Zipf(S) over --keys (S from 0 to 5); turns on the load mode",
    )
    load.add_argument(
        "--requests",
        type=_args.count(1, 10_000_000),
        default=None,
        metavar="R",
        help="requests to simulate (default 100k)",
    )
    load.add_argument(
        "--speeds",
        type=_args.speed,
        nargs="+",
        metavar="MU",
        help="service rate per node, one per node or a shorter list repeated (default: all 1)",
    )
    load.add_argument(
        "--balance",
        type=_args.balance,
        default=None,
        metavar="C",
        help="bounded loads: no node above ceil(C x average x weight) (default 1.25)",
    )
    load.add_argument(
        "--utilization",
        type=_args.utilization,
        default=None,
        metavar="U",
        help="arrival rate as a fraction of the nodes' total service rate (default 0.7)",
    )
    sim.add_argument(
        "--plot", metavar="FILE.png", help="write a picture (needs the 'plot' extra: matplotlib)"
    )
    sim.add_argument("--json", action="store_true", help="print the results as JSON")
    _add_progress(sim)

    bench = sub.add_parser(
        "bench",
        help="cvstore against uhashring and a pure-Python ring, in this run",
        description="Time get_node and batch lookups of cvstore and, where installed, "
        "uhashring and the pure-Python reference ring, on the same keys and nodes.",
    )
    bench.add_argument(
        "--nodes",
        type=_args.limited("nodes"),
        default=100,
        metavar="N",
        help="nodes in each ring (default 100)",
    )
    bench.add_argument(
        "--vnodes",
        type=_args.limited("vnodes"),
        default=160,
        metavar="V",
        help="points per node (default 160)",
    )
    bench.add_argument(
        "--keys",
        type=_args.limited("keys"),
        default=200_000,
        metavar="K",
        help="keys in the batch lookup (default 200k)",
    )
    bench.add_argument(
        "--seconds",
        type=_args.duration,
        default=0.2,
        metavar="S",
        help="time spent on each measurement (default 0.2)",
    )
    bench.add_argument("--json", action="store_true", help="print the results as JSON")

    from cvstore._cli import cluster

    cluster.add_parser(sub, _args.count, _args.weight)
    return parser


def _add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: only when stderr is a terminal)",
    )


def _command_of(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    """The function that runs `args.command` (its module, and numpy with it, imported now)."""
    if args.command == "simulate":
        from cvstore._cli.simulate import command
    elif args.command == "bench":
        from cvstore._cli.bench import command
    elif args.command == "demo":
        from cvstore._cli.demo import command
    elif args.command == "cluster":
        from cvstore._cli.cluster import command
    else:
        from cvstore._cli.shell import command
    return command


def _done() -> None:
    """Ignore Ctrl-C from here to the exit: the command's work and its report are done."""
    import signal

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cvstore`` command line; returns the exit code (0, 1 or 2)."""
    prog = "cvstore"
    started = False  # a command has begun its work (before it, Ctrl-C changed nothing)
    try:
        parser = _build_parser()
        try:
            args, extra = parser.parse_known_args(argv)
        except SystemExit as exit_:  # --help, --version
            return exit_.code if isinstance(exit_.code, int) else 0
        if args.command is None:
            raise UsageError(
                f"missing command: choose one of {', '.join(_COMMANDS)} (see 'cvstore --help')"
            )
        prog = f"cvstore {args.command}"
        args.as_program = argv is None  # the process is this command (not a call from Python)
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see '{prog} --help')")
        command = _command_of(args)
        started = True
        status = command(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        if argv is None:  # run as the program: what was printed is the outcome, and a
            _done()  # Ctrl-C from now on must not turn it into a traceback or -2
        return status
    except UsageError as exc:
        print(f"{exc.prog or prog}: error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:  # the command said what state Ctrl-C left
        print(f"{prog}: interrupted: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        said = "interrupted" if started else "interrupted before it began; nothing was changed"
        print(f"{prog}: {said}", file=sys.stderr)
        return 130
    except MemoryError:
        print(
            f"{prog}: error: not enough memory for this run; try fewer nodes, vnodes or keys",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:
        # Output piped into `head` and the like, which read what they wanted and
        # left: the reader is satisfied, so this is a success.  Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
