"""``cvstore shell``: an interactive shell on a cluster (stdlib ``cmd`` + readline).

Every command prints one short answer or one line starting with ``error:``;
nothing the user types (or the cluster raises) ends in a traceback.  Line
editing, history (``~/.cvstore_history``, or the file named by
``CVSTORE_HISTORY``; empty to keep none) and tab completion of commands,
node names and consistency levels come from readline where Python has it.

Run with input from a file or a pipe, the shell echoes each command after
the prompt, so the output reads as a transcript, and exits 1 if any command
failed.

With ``--redis URL ...`` the shell first looks for a cluster on those
servers: a layout under ``--prefix`` (default ``cvstore:``, as ``cvstore
cluster`` and ``Cluster.join``) is joined, so the shell works on that
cluster, its nodes, data and membership.  Finding none there but a layout
under another prefix, it stops and says how to join that one, unless
``--prefix`` was given (then it starts its own cluster beside it and says
what it found).  Otherwise it starts a new cluster, one node per URL, whose
membership lives in the shell, node N's keys under ``PREFIX + "nodeN:"``.
"""

from __future__ import annotations

import argparse
import cmd
import contextlib
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from cvstore import Cluster, CvstoreError, EmptyRingError, HashRing, Node, UnavailableError
from cvstore._cli import text
from cvstore._cli.args import LEVELS, WEIGHT_HIGH, WEIGHT_LOW, parse_count, parse_weight, shown
from cvstore._cli.errors import CommandError, UsageError
from cvstore._cli.ringview import picture
from cvstore._cli.session import SessionError, load, save
from cvstore._cli.synth import synthetic_keys
from cvstore.core.levels import Level
from cvstore.versions import TOMBSTONE

DEFAULT_PREFIX = "cvstore:"  # as RedisStore, Cluster.join and cvstore cluster
LAYOUT_KEY = b"m:layout"  # a cluster's layout on a node: PREFIX + m:layout
URL_SCHEMES = ("redis", "rediss", "unix")
LONG_WORK = 100_000  # records from which membership changes show progress
FILL_CHUNK = 10_000
HISTORY_LENGTH = 1000

# name: (usage, what it does); the method's docstring is the longer help.
COMMANDS = {
    "add": ("add NAME [WEIGHT] [ZONE] [REDIS_URL]", "add a node; it gets its share of copies"),
    "remove": ("remove NAME", "remove a node gracefully (hands its copies over)"),
    "fail": ("fail NAME", "take a node down (a simulated outage)"),
    "recover": ("recover NAME", "bring a failed node back"),
    "put": ("put KEY VALUE [LEVEL]", "store a value"),
    "get": ("get KEY [LEVEL]", "read a value"),
    "del": ("del KEY [LEVEL]", "delete a key"),
    "where": ("where KEY", "the key's preference list and what each replica holds"),
    "nodes": ("nodes", "the nodes: weight, zone, state, records, ring share"),
    "ring": ("ring", "a picture of the ring: who owns which part of the hash space"),
    "stats": ("stats", "live keys per node vs weight, hints, repairs, refusals"),
    "repair": ("repair", "anti-entropy: make every key's replicas whole and current"),
    "hints": ("hints", "deliver waiting hints to nodes that are up"),
    "fill": ("fill COUNT [PREFIX]", "store COUNT synthetic keys (key-0, key-1, ...)"),
    "save": ("save FILE", "save this session (nodes and records) as JSON"),
    "help": ("help [COMMAND]", "this list, or more on one command"),
    "quit": ("quit", "leave (also exit, Ctrl-D)"),
}
USAGE = {name: usage for name, (usage, _) in COMMANDS.items()}


class ShellError(Exception):
    """A command that cannot run as typed; printed as one ``error:`` line."""


class Shell(cmd.Cmd):
    """The command loop; each ``do_*`` method is one command (its docstring is its help)."""

    prompt = "cvstore> "
    identchars = cmd.Cmd.identchars + "-"

    def __init__(
        self,
        cluster: Cluster,
        *,
        redis: Callable[[str, str], Any] | None = None,
        shared: bool = False,
        progress: bool | None = None,
        stdin: Any = None,
        stdout: Any = None,
    ) -> None:
        super().__init__(stdin=stdin, stdout=stdout)
        self.cluster = cluster
        self.redis = redis  # makes the store of a node added with a URL
        self.shared = shared  # a cluster joined on Redis: its membership lives on its nodes
        self.progress = progress
        self.failures = 0
        self.interactive = (stdin or sys.stdin).isatty()
        if not self.interactive:
            self.use_rawinput = False

    # ------------------------------------------------------------- the loop

    def say(self, *lines: str) -> None:
        for line in lines:
            self.stdout.write(line + "\n")

    def precmd(self, line: str) -> str:
        if not self.interactive and line and line != "EOF":
            # A transcript: echo the command after its prompt.
            self.stdout.write(line.rstrip("\n") + "\n")
        return line

    def onecmd(self, line: str) -> bool:
        try:
            return bool(super().onecmd(line))
        except ShellError as exc:
            self._error(str(exc))
        except EmptyRingError:
            self._error("the cluster has no nodes; add one with 'add NAME'")
        except UnavailableError as exc:
            self._error(f"unavailable: {exc}")
        except CvstoreError as exc:
            self._error(str(exc))
        except (ValueError, TypeError) as exc:
            self._error(str(exc))
        except KeyboardInterrupt:
            self._error("interrupted")
        except Exception as exc:  # noqa: BLE001 - the shell survives anything and says what it was
            self._error(f"{type(exc).__name__}: {exc}")
        return False

    def _error(self, message: str) -> None:
        self.failures += 1
        self.say(f"error: {message}")

    def emptyline(self) -> bool:
        return False  # cmd's default repeats the last command

    def default(self, line: str) -> None:
        word = line.split()[0]
        raise ShellError(f"unknown command {word!r}; type 'help' for the list")

    # ------------------------------------------------------------ arguments

    def _split(self, arg: str, command: str, least: int, most: int) -> list[str]:
        try:
            words = shlex.split(arg)
        except ValueError as exc:  # an open quote
            raise ShellError(f"{command}: {str(exc).lower()}; usage: {USAGE[command]}") from None
        if not least <= len(words) <= most:
            got = text.plural(len(words), "argument")
            wanted = USAGE[command].partition(" ")[2] or "no arguments"
            raise ShellError(f"{command} takes {wanted}, got {got}")
        return words

    def _level(self, words: list[str], index: int) -> Level | None:
        if len(words) <= index:
            return None
        level = words[index].lower()
        if level not in LEVELS:
            raise ShellError(f"level must be one of {', '.join(LEVELS)}, got {words[index]!r}")
        return cast(Level, level)

    def _node(self, name: str) -> Node:
        for node in self.cluster.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.cluster.nodes) or "none yet"
        raise ShellError(f"unknown node {name!r} (nodes: {known})")

    def _records(self) -> int:
        total = 0
        for node in self.cluster.nodes:
            with contextlib.suppress(Exception):  # a failing store counts as empty here
                total += node.store.count()
        return total

    def _long(self, desc: str, work: Callable[[], Any]) -> Any:
        """Run `work`, with a ticking progress line on stderr when the cluster is big."""
        records = self._records()
        enabled = self.progress if self.progress is not None else sys.stderr.isatty()
        if records < LONG_WORK or not enabled:
            return work()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = work()
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                outcome["error"] = exc

        worker = threading.Thread(target=run, name="cvstore-shell-work", daemon=True)
        bar = text.ticker(f"{desc}: {text.num(records)} records to go through")
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.1)
                bar.refresh()
        except KeyboardInterrupt:
            self.say("waiting for the change under way to finish (it cannot stop half-way)")
            worker.join()
        finally:
            bar.close()
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    # ------------------------------------------------------------- membership

    def do_add(self, arg: str) -> None:
        """Add a node: add NAME [WEIGHT] [ZONE] [REDIS_URL]. Streams it the copies it now holds."""
        words = self._split(arg, "add", 1, 4)
        url = None
        if len(words) == 4 or (len(words) > 1 and ":" in words[-1]):  # a URL has a ':'
            url = words.pop()
            problem = url_problem(url)
            if problem:
                raise ShellError(f"add: REDIS_URL {problem}, got {url!r}")
        elif self.shared:
            raise ShellError(
                "add: this cluster's nodes are Redis servers; give the new node's URL: "
                f"{USAGE['add']}"
            )
        name = words[0]
        weight = 1.0
        if len(words) > 1:
            parsed = parse_weight(words[1])
            if parsed is None:
                raise ShellError(
                    f"weight must be a number from {WEIGHT_LOW:g} to {WEIGHT_HIGH:g}, "
                    f"got {shown(words[1])}"
                )
            weight = parsed
        zone = words[2] if len(words) > 2 else None
        if any(n.name == name for n in self.cluster.nodes):
            raise ShellError(f"node {name!r} is already in the cluster")
        store = None
        if url is not None:
            if self.redis is None:
                store = make_redis_store(url, name, "cvstore:")
            else:
                store = self.redis(url, name)
            self._one_node_per_place(store, url)
        node = Node(name, weight=weight, zone=zone, store=store)
        report = self._long(f"adding {name}", lambda: self.cluster.add_node(node))
        where = f" on {url}" if url else ""
        self.say(
            f"added {name} (weight {weight:g}{', zone ' + zone if zone else ''}){where}: "
            f"{text.num(report.moved)} copies streamed to it in {text.seconds(report.seconds)}"
            + (f", {text.num(report.missed)} missed (run 'repair')" if report.missed else "")
        )

    def _one_node_per_place(self, store: Any, url: str) -> None:
        """Refuse (closing it) a store whose keys are those of a member: one server, two names."""
        place = (store.address, store.prefix)
        for member in self.cluster.nodes:
            if (
                member.store.address,
                member.store.prefix,
            ) == place:
                store.close()
                raise ShellError(
                    f"add: node {member.name!r} already keeps its keys at {url} under prefix "
                    f"{_prefix_text(store.prefix)!r}; a node needs a server (or db) of its own"
                )

    def _note_rf(self) -> None:
        """Say so when there are fewer nodes than the replication factor asks for."""
        nodes, rf = len(self.cluster.nodes), self.cluster.replication_factor
        if 0 < nodes < rf:
            self.say(f"note: {rf_note(rf, nodes)}")

    def do_remove(self, arg: str) -> None:
        """Remove a node gracefully: remove NAME. Its copies go to their new replicas first."""
        (name,) = self._split(arg, "remove", 1, 1)
        self._node(name)
        report = self._long(f"removing {name}", lambda: self.cluster.remove_node(name))
        self.say(
            f"removed {name}: {text.num(report.moved)} copies streamed to the remaining nodes in "
            f"{text.seconds(report.seconds)}"
            + (f", {text.num(report.missed)} missed (run 'repair')" if report.missed else "")
        )

    def do_fail(self, arg: str) -> None:
        """Take a node down (simulated outage): fail NAME."""
        (name,) = self._split(arg, "fail", 1, 1)
        node = self._node(name)
        if not node.is_up:
            raise ShellError(f"node {name!r} is already down")
        node.fail()
        self.say(f"{name} is down: writes for it become hints on other nodes")

    def do_recover(self, arg: str) -> None:
        """Bring a failed node back: recover NAME. Run 'hints' to hand it what it missed."""
        (name,) = self._split(arg, "recover", 1, 1)
        node = self._node(name)
        if node.is_up:
            raise ShellError(f"node {name!r} is not down")
        node.recover()
        pending = self.cluster.stats().hints_pending
        self.say(
            f"{name} is up; {text.plural(pending, 'hint')} pending in the cluster "
            "(delivered on the next access to their keys, or now with 'hints')"
        )

    # ------------------------------------------------------------------ data

    def do_put(self, arg: str) -> None:
        """Store a value: put KEY VALUE [LEVEL]. Quote a value with spaces: put k "a b"."""
        words = self._split(arg, "put", 2, 3)
        level = self._level(words, 2)
        self.cluster.put(words[0], words[1], consistency=level)
        replicas = self.cluster.get_nodes_for_key(words[0])
        up = [n.name for n in replicas if n.is_up]
        down = [n.name for n in replicas if not n.is_up]
        self.say(
            f"ok ({level or self.cluster.write_consistency}): on {', '.join(up)}"
            + (f"; hinted for {', '.join(down)}" if down else "")
        )
        self._note_rf()

    def do_get(self, arg: str) -> None:
        """Read a value: get KEY [LEVEL]."""
        words = self._split(arg, "get", 1, 2)
        level = self._level(words, 1)
        missing = object()
        value = self.cluster.get(words[0], missing, consistency=level)
        self.say("(not found)" if value is missing else _show(value))

    def do_del(self, arg: str) -> None:
        """Delete a key: del KEY [LEVEL]."""
        words = self._split(arg, "del", 1, 2)
        level = self._level(words, 1)
        self.cluster.delete(words[0], consistency=level)
        self.say(f"deleted ({level or self.cluster.write_consistency})")

    def do_fill(self, arg: str) -> None:
        """Store COUNT synthetic keys PREFIX0, PREFIX1, ... (default prefix key-): fill COUNT [PREFIX]."""
        words = self._split(arg, "fill", 1, 2)
        count = parse_count(words[0])
        if count is None or not 1 <= count <= 10**8:
            raise ShellError(
                f"count must be a whole number from 1 to 100,000,000, got {words[0]!r}"
            )
        prefix = words[1].encode() if len(words) > 1 else b"key-"
        started = time.perf_counter()
        with text.progress(count, "storing", self.progress) as bar:
            for start in range(0, count, FILL_CHUNK):
                keys = synthetic_keys(start, min(count, start + FILL_CHUNK), prefix).tolist()
                self.cluster.put_many({k: f"value-{k.decode()}" for k in keys})
                bar.update(len(keys))
        last = prefix.decode() + str(count - 1)
        self.say(
            f"stored {text.num(count)} keys ({prefix.decode()}0 .. {last}) in "
            f"{text.seconds(time.perf_counter() - started)}"
        )

    def do_where(self, arg: str) -> None:
        """Show a key's preference list and what each replica holds: where KEY."""
        (key,) = self._split(arg, "where", 1, 1)
        replicas = self.cluster.get_nodes_for_key(key)
        kb = key.encode()
        rows = []
        newest = None
        held = []
        for node in replicas:
            record: Any
            try:
                record = node.store.get(kb)
            except Exception as exc:  # noqa: BLE001 - shown in the table
                record = exc
            held.append(record)
            if isinstance(record, tuple) and (newest is None or record[0] > newest):
                newest = record[0]
        for i, (node, record) in enumerate(zip(replicas, held)):
            if isinstance(record, Exception):
                holds = f"store error: {record}"
            elif record is None:
                holds = "no copy"
            else:
                stale = "" if record[0] == newest else " (older version)"
                holds = ("deleted" if record[1] is TOMBSTONE else _show(record[1])) + stale
            rows.append(
                (
                    f"{i + 1}. {node.name}",
                    "primary" if i == 0 else "replica",
                    "up" if node.is_up else "down",
                    holds,
                )
            )
        self.say(f"{key!r} lives on {text.plural(len(replicas), 'node')} (its preference list):")
        self.say(text.table(rows, ["node", "role", "state", "holds"], left=4))

    # ---------------------------------------------------------------- looking

    def do_nodes(self, arg: str) -> None:
        """List the nodes: weight, zone, state, copies held and share of the ring."""
        self._split(arg, "nodes", 0, 0)
        nodes = self.cluster.nodes
        if not nodes:
            self.say("no nodes yet: add one with 'add NAME'")
            return
        share = _shares(self.cluster)
        rows = []
        for node in nodes:
            try:
                copies = text.num(node.store.count()) if node.is_up else "-"
            except Exception as exc:  # noqa: BLE001 - shown in the table
                copies = f"error: {exc}"
            rows.append(
                (
                    node.name,
                    f"{node.weight:g}",
                    node.zone or "-",
                    "up" if node.is_up else "down",
                    copies,
                    f"{100 * share[node.name]:.1f}%",
                    type(node.store).__name__,
                )
            )
        self.say(
            text.table(rows, ["node", "weight", "zone", "state", "records", "ring share", "store"])
        )
        c = self.cluster
        self.say(
            f"  replication factor {c.replication_factor}; reads {c.read_consistency}, "
            f"writes {c.write_consistency}"
        )
        self._note_rf()

    def do_ring(self, arg: str) -> None:
        """Draw the ring: which node owns which part of the hash space, and each node's share."""
        self._split(arg, "ring", 0, 0)
        placer = self.cluster.placer
        if not isinstance(placer, HashRing):
            self.say(
                f"the cluster places keys by {self.cluster.placement} hashing: "
                "it has no ring to draw"
            )
            return
        up = {node.name: node.is_up for node in self.cluster.nodes}
        self.say(picture(placer, up))

    def do_stats(self, arg: str) -> None:
        """Live keys per node against the share its weight asks for, hints and counters."""
        self._split(arg, "stats", 0, 0)
        s = self.cluster.stats()
        rows = [
            (
                name,
                text.num(count),
                f"{100 * s.share[name]:.1f}%",
                f"{100 * s.weight_share[name]:.1f}%",
            )
            for name, count in s.keys_per_node.items()
        ]
        if rows:
            self.say(text.table(rows, ["node", "live keys", "share", "weight share"]))
        self.say(
            f"  nodes {s.nodes} (down: {', '.join(s.down) or 'none'}); imbalance "
            f"{s.imbalance:.3f} (max share / weight share; 1.000 is even)",
            f"  hints: {text.num(s.hints_pending)} pending, {text.num(s.hints_written)} written, "
            f"{text.num(s.hints_delivered)} delivered, {text.num(s.hints_dropped)} dropped",
            f"  read repairs {text.num(s.read_repairs)}; calls refused as unavailable "
            f"{text.num(s.unavailable_errors)}",
        )

    # ------------------------------------------------------------- maintenance

    def do_repair(self, arg: str) -> None:
        """Anti-entropy: bring every key's replicas up to date (hints first)."""
        self._split(arg, "repair", 0, 0)
        r = self._long("repairing", self.cluster.repair)
        self.say(
            f"repaired {text.num(r.repaired)} copies of {text.num(r.keys)} keys; "
            f"{text.num(r.strays_removed)} stray copies removed, {text.num(r.purged)} tombstones "
            f"purged, {text.num(r.hints_delivered)} hints delivered ({text.seconds(r.seconds)})"
            + (f"; skipped down nodes: {', '.join(r.skipped)}" if r.skipped else "")
        )

    def do_hints(self, arg: str) -> None:
        """Hand waiting hints to their nodes that are up; shows what is still pending."""
        self._split(arg, "hints", 0, 0)
        delivered = self.cluster.deliver_hints()
        pending = self.cluster.stats().hints_pending
        self.say(f"delivered {text.plural(delivered, 'hint')}; {text.num(pending)} still pending")

    def do_save(self, arg: str) -> None:
        """Save the session (nodes and every record, as JSON) to a file: save FILE."""
        (path,) = self._split(arg, "save", 1, 1)
        try:
            counts = save(self.cluster, path)
        except OSError as exc:
            raise ShellError(f"cannot write {path!r}: {exc.strerror}") from None
        except SessionError as exc:
            raise ShellError(str(exc)) from None
        pending = self.cluster.stats().hints_pending
        self.say(
            f"saved {text.plural(counts['nodes'], 'node')} and {text.plural(counts['records'], 'record')} "
            f"to {path}"
            + (f" ({text.plural(pending, 'pending hint')} not saved)" if pending else "")
        )

    # ------------------------------------------------------------------ leaving

    def do_help(self, arg: str) -> None:
        """List the commands, or explain one: help [COMMAND]."""
        words = arg.split()
        if words:
            name = {"exit": "quit", "delete": "del"}.get(words[0], words[0])
            if name not in USAGE:
                raise ShellError(f"no command {words[0]!r}; type 'help' for the list")
            doc = (getattr(self, f"do_{name}").__doc__ or "").strip()
            self.say(f"usage: {USAGE[name]}", f"  {doc}")
            return
        self.say("commands:")
        width = max(len(u) for u in USAGE.values())
        for usage, summary in COMMANDS.values():
            self.say(f"  {usage:<{width}}  {summary}")
        self.say(
            f"LEVEL is one of {', '.join(LEVELS)}; quote keys and values that have spaces",
        )

    def do_quit(self, arg: str) -> bool:
        """Leave the shell (also: exit, Ctrl-D)."""
        return True

    do_exit = do_quit

    def do_EOF(self, arg: str) -> bool:  # cmd's name for the end of input
        self.say("")
        return True

    def do_delete(self, arg: str) -> None:
        self.do_del(arg)

    # -------------------------------------------------------------- completion

    def completenames(self, text_: str, *ignored: Any) -> list[str]:
        return [name + " " for name in (*USAGE, "exit") if name.startswith(text_)]

    def _complete_node(self, text_: str, line: str, position: int) -> list[str]:
        words = line.split()
        if len(words) - (0 if line.endswith(" ") else 1) != position:
            return []
        return [n.name for n in self.cluster.nodes if n.name.startswith(text_)]

    def complete_remove(self, text_: str, line: str, begidx: int, endidx: int) -> list[str]:
        return self._complete_node(text_, line, 1)

    complete_fail = complete_recover = complete_remove

    def _complete_level(self, text_: str, line: str, position: int) -> list[str]:
        words = line.split()
        if len(words) - (0 if line.endswith(" ") else 1) != position:
            return []
        return [level for level in LEVELS if level.startswith(text_)]

    def complete_put(self, text_: str, line: str, begidx: int, endidx: int) -> list[str]:
        return self._complete_level(text_, line, 3)

    def complete_get(self, text_: str, line: str, begidx: int, endidx: int) -> list[str]:
        return self._complete_level(text_, line, 2)

    complete_del = complete_get

    def complete_help(self, text_: str, *ignored: Any) -> list[str]:
        return [name for name in USAGE if name.startswith(text_)]


def rf_note(rf: int, nodes: int) -> str:
    """What a replication factor above the node count means."""
    copies = "1 copy" if nodes == 1 else f"{nodes} copies"
    return (
        f"replication factor {rf} with {text.plural(nodes, 'node')}: each key has {copies}, "
        "one per node, until more nodes join"
    )


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if (not value or value != value.strip() or "\n" in value) else value
    return repr(value)


# ---------------------------------------------------------------- setting up


def url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL, in words that follow its name, or None."""
    try:
        parts = urlsplit(url)
        if parts.scheme not in URL_SCHEMES:
            return "must be a redis://, rediss:// or unix:// URL"
        query = parse_qs(parts.query)
        for option in ("socket_timeout", "socket_connect_timeout"):
            if option in query:
                return f"must not set {option} (the shell sets its own timeout)"
        if parts.scheme == "unix":
            return None if parts.path else "must name a socket path (unix:///path)"
        if not parts.hostname:
            return "must name a host (redis://host:port/db)"
        if parts.port == 0:
            return "must have a port from 1 to 65535"
        dbs = [unquote(parts.path[1:])] if parts.path not in ("", "/") else []
        if not all(db.isdigit() for db in dbs + query.get("db", [])):
            return "must name a database by number (/0, /1, ...)"
    except ValueError:  # a port that is not a number or above 65535, a broken [IPv6]
        return "must be a redis://host:port/db URL with a port from 1 to 65535"
    return None


def check_urls(urls: list[str]) -> None:
    for url in urls:
        problem = url_problem(url)
        if problem:
            raise UsageError(f"--redis {problem}, got {url!r}")


def _redis_store(url: str, prefix: str, name: str) -> Any:
    """A RedisStore for `url` under `prefix`, checked reachable."""
    try:
        from cvstore.stores.redis import RedisStore

        store = RedisStore(url, prefix=prefix, name=name)
    except ImportError:
        raise UsageError(
            "RedisStore needs the 'redis' extra: pip install 'cvstore[redis]'"
        ) from None
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"--redis: {str(exc).removeprefix('url_or_client ')}, got {url!r}"
        ) from None
    try:
        store.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported
        store.close()
        raise CommandError(f"cannot reach redis at {url!r}: {exc}") from None
    return store


def make_redis_store(url: str, name: str, prefix: str) -> Any:
    """A RedisStore for node `name` of a shell's own cluster (keys under PREFIX + NAME + ':')."""
    return _redis_store(url, f"{prefix}{name}:", name)


def _prefix_text(prefix: Any) -> str:
    return prefix.decode() if isinstance(prefix, bytes) else str(prefix)


def _describe(layout: Any) -> str:
    names = ", ".join(layout.names)
    state = ", a membership change under way" if layout.changing else ""
    return f"epoch {layout.epoch}: {text.plural(len(layout.nodes), 'node')} {names}{state}"


def find_layouts(
    urls: list[str], prefix: str
) -> tuple[list[tuple[str, Any]], dict[str, Any], list[tuple[str, CommandError]]]:
    """What the servers hold: [(url, layout)] under `prefix`, {other prefix: (url, layout)},
    and [(url, why)] for the servers that could not be reached."""
    from cvstore.core.layout import Layout, LayoutError

    here: list[tuple[str, Any]] = []
    others: dict[str, Any] = {}
    down: list[tuple[str, CommandError]] = []
    for url in dict.fromkeys(urls):
        try:
            store = _redis_store(url, prefix, "seed")
        except CommandError as exc:  # a cluster is joined through any seed that answers
            down.append((url, exc))
            continue
        try:
            _, raw = store.read_layout()
            if raw is not None:
                try:
                    here.append((url, Layout.from_bytes(raw)))
                except (LayoutError, ValueError):
                    raise CommandError(
                        f"{url} holds a cluster layout under prefix {prefix!r} that does not "
                        "parse; see 'cvstore cluster status'"
                    ) from None
                continue
            client = store.client
            for key in client.scan_iter(match=b"*" + LAYOUT_KEY, count=1000):
                other = key[: -len(LAYOUT_KEY)].decode("utf-8", "replace")
                if other in others:
                    continue
                try:
                    others[other] = (url, Layout.from_bytes(client.get(key)))
                except (LayoutError, ValueError, TypeError):
                    continue  # not a layout after all: nothing to join
        finally:
            store.close()
    return here, others, down


def _history(path: str | None) -> Callable[[], None]:
    """Load readline history; returns what saves it at exit (nothing without readline)."""
    if not path:
        return lambda: None
    try:
        import readline
    except ImportError:  # no line editing on this Python; the shell still works
        return lambda: None
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(HISTORY_LENGTH)
    # Complete words separated by spaces only: node names may contain '-' or ':'.
    readline.set_completer_delims(" \t\n")

    def save_history() -> None:
        try:
            readline.write_history_file(path)
        except OSError:
            pass

    return save_history


def build_cluster(args: argparse.Namespace) -> tuple[Cluster, str, list[str]]:
    """The cluster the shell starts with, a line saying what it is, and notes to show."""
    if args.load and args.redis:
        raise UsageError("--load starts an in-memory session; it cannot be used with --redis")
    rf = 3 if args.rf is None else args.rf
    vnodes = 160 if args.vnodes is None else args.vnodes
    if args.load:
        try:
            cluster = load(args.load)
        except SessionError as exc:
            raise UsageError(f"argument --load: {exc}") from None
        records = sum(node.store.count() for node in cluster.nodes)
        return (
            cluster,
            (
                f"loaded {args.load}: {text.plural(len(cluster.nodes), 'node')}, "
                f"{text.plural(records, 'record')}"
            ),
            [],
        )
    notes: list[str] = []
    prefix = DEFAULT_PREFIX if args.prefix is None else args.prefix
    if args.redis:
        check_urls(args.redis)
        here, others, down = find_layouts(args.redis, prefix)
        if here:
            cluster, what, notes = _join(args, prefix, here)
            unused = [f"{url} did not answer; joined through the others" for url, _ in down]
            return cluster, what, [*unused, *notes]
        if down:
            raise down[0][1]
        if others:
            found = "; ".join(
                f"under prefix {other!r} on {url} ({_describe(layout)})"
                for other, (url, layout) in sorted(others.items())
            )
            url, _ = others[min(others)]
            join = f"cvstore shell --redis {url} --prefix {min(others)}"
            if args.prefix is None:
                raise UsageError(
                    f"no cluster under prefix {prefix!r} on {', '.join(dict.fromkeys(args.redis))}, "
                    f"but one {found}; to join it: {join}; to start a new cluster beside it, "
                    "give --prefix PREFIX"
                )
            notes.append(f"no cluster under prefix {prefix!r}, but one {found}; to join it: {join}")
    try:
        cluster = Cluster(
            replication_factor=rf,
            read_consistency=args.read,
            write_consistency=args.write,
            vnodes=vnodes,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.redis:
        return cluster, "an empty in-memory cluster", notes
    for i, url in enumerate(args.redis, start=1):
        name = f"node{i}"
        cluster.add_node(Node(name, store=make_redis_store(url, name, prefix)))
    count = len(args.redis)
    names = "node1" if count == 1 else f"node1 .. node{count}"
    where = f"{prefix}node1:" if count == 1 else f"{prefix}node1: .. {prefix}node{count}:"
    return (
        cluster,
        (
            f"a new cluster of {text.plural(count, 'Redis node')} ({names}; keys under "
            f"{where!r}, membership kept in this shell)"
        ),
        notes,
    )


def _join(
    args: argparse.Namespace, prefix: str, here: list[tuple[str, Any]]
) -> tuple[Cluster, str, list[str]]:
    """Join the cluster found under `prefix` (the newest layout the seeds hold)."""
    url, layout = max(here, key=lambda found: found[1].epoch)
    try:
        cluster = Cluster.join(
            [u for u, _ in here],
            prefix=prefix,
            read_consistency=args.read,
            write_consistency=args.write,
        )
    except CvstoreError as exc:
        raise CommandError(f"cannot join the cluster on {url}: {exc}") from None
    notes = []
    for option, given, used in (
        ("--rf", args.rf, cluster.replication_factor),
        ("--vnodes", args.vnodes, layout.vnodes),
    ):
        if given is not None and given != used:
            notes.append(f"{option} {given} not used: the cluster's layout says {used}")
    if layout.changing:
        notes.append(
            f"a membership change is under way ({layout.describe()}); "
            "'cvstore cluster finish' completes it"
        )
    nodes = cluster.nodes
    return (
        cluster,
        (
            f"joined the cluster under prefix {prefix!r} on {url} (layout epoch "
            f"{cluster.layout.epoch if cluster.layout else layout.epoch}): "
            f"{text.plural(len(nodes), 'Redis node')} ({', '.join(n.name for n in nodes)})"
        ),
        notes,
    )


def command(args: argparse.Namespace) -> int:
    cluster, what, notes = build_cluster(args)
    prefix = DEFAULT_PREFIX if args.prefix is None else args.prefix
    shared = what.startswith("joined")

    def redis_store(url: str, name: str) -> Any:
        try:
            if shared:  # a node of the joined cluster: a server (or db) of its own
                return _redis_store(url, prefix, name)
            return make_redis_store(url, name, prefix)
        except (UsageError, CommandError) as exc:
            raise ShellError(str(exc)) from None

    shell = Shell(cluster, redis=redis_store, shared=shared, progress=args.progress)
    c = cluster
    shell.intro = (
        f"cvstore shell: {what}; replication factor {c.replication_factor}, reads "
        f"{c.read_consistency}, writes {c.write_consistency}.\n"
        + "".join(f"note: {note}\n" for note in notes)
        + (
            f"note: {rf_note(c.replication_factor, len(c.nodes))}\n"
            if 0 < len(c.nodes) < c.replication_factor
            else ""
        )
        + "Type 'help' for the commands, 'quit' to leave."
        + ("" if c.nodes else " Start with: add node1")
    )
    save_history = (
        _history(os.environ.get("CVSTORE_HISTORY", os.path.expanduser("~/.cvstore_history")))
        if shell.interactive
        else (lambda: None)
    )
    try:
        while True:
            try:
                shell.cmdloop()
                break
            except KeyboardInterrupt:  # Ctrl-C at the prompt: a fresh prompt, not an exit
                shell.stdout.write("^C\n")
                shell.intro = ""
    finally:
        save_history()
        with contextlib.suppress(Exception):  # closing is best effort at exit
            cluster.close()
        for node in cluster.nodes:
            with contextlib.suppress(Exception):  # closing is best effort at exit
                node.store.close()
    return 1 if shell.failures and not shell.interactive else 0


__all__ = ("Shell", "command")


def _shares(cluster: Cluster) -> dict[str, float]:
    """Each node's share of the keys it owns: its arcs of the ring, or (for a placement
    without a ring, such as rendezvous) its weight over the total, which that placement
    gives in expectation."""
    placer = cluster.placer
    if isinstance(placer, HashRing):
        return placer.ownership()
    total = sum(node.weight for node in cluster.nodes)
    return {node.name: node.weight / total for node in cluster.nodes}
