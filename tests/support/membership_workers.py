"""Client processes for the membership tests: each joins a Redis cluster by address and works.

They run in processes started with multiprocessing's "spawn" method, so each
is a fresh interpreter with its own connections, clock and layout, as a web
worker would be.  Every loop is bounded in count and time.
"""

from __future__ import annotations

import time
from typing import Any

PREFIX = "members:"


def _join(seed: str) -> Any:
    from cvstore import Cluster

    return Cluster.join([seed], prefix=PREFIX, timeout=1.0)


def _seq(value: Any) -> int:
    """The sequence number in a value ``p<proc>:<seq>``."""
    return int(str(value).rsplit(":", 1)[1])


MIN_WORK = 50  # acknowledged writes and reads a writer does before it heeds `stop`


def writer(seed: str, proc: int, rounds: int, seconds: float, stop: Any, out: Any) -> None:
    """Write and read this process's own keys and shared keys at quorum, checking every read.

    Reports (proc, acked, violations, counts): ``acked`` maps each key to the
    sequence number of the last write acknowledged for it; a violation is a
    read that returned a value older than one this process had acknowledged.
    """
    from cvstore import UnavailableError

    cluster = _join(seed)
    deadline = time.monotonic() + seconds
    acked: dict[str, int] = {}
    violations: list[str] = []
    counts = {"acked": 0, "refused": 0, "reads": 0}
    try:
        for i in range(rounds):
            # `stop` is heeded once this writer has done some work (a process
            # that started late on a busy machine still writes and reads its
            # share), never past `seconds`
            started = counts["acked"] > MIN_WORK and counts["reads"] > MIN_WORK
            if (stop.is_set() and started) or time.monotonic() > deadline:
                break
            for key in (f"p{proc}:k{i % 40}", f"shared:{i % 15}"):
                try:
                    cluster.put(key, f"p{proc}:{i}", consistency="quorum")
                except UnavailableError:
                    counts["refused"] += 1
                else:
                    acked[key] = i
                    counts["acked"] += 1
                try:
                    got = cluster.get(key, consistency="quorum")
                except UnavailableError:
                    continue
                counts["reads"] += 1
                mine = key.startswith(f"p{proc}:") or str(got).startswith(f"p{proc}:")
                if key in acked and mine and (got is None or _seq(got) < acked[key]):
                    violations.append(f"{key}: read {got!r} after acknowledging seq {acked[key]}")
    except BaseException as exc:  # noqa: BLE001 - reported, the test fails on it
        violations.append(f"error: {exc!r}")
    finally:
        cluster.close()
    out.put((proc, acked, violations, counts))


def changer(seed: str, commands: Any, out: Any) -> None:
    """Carry out membership commands ("add", name, url) / ("remove", name) in turn."""
    from cvstore import Node, RedisStore, UnavailableError

    cluster = _join(seed)
    try:
        for command in iter(commands.get, None):
            deadline = time.monotonic() + 20
            while True:
                try:
                    if command[0] == "add":
                        store = RedisStore(command[2], prefix=PREFIX, timeout=1.0)
                        report = cluster.add_node(Node(command[1], store=store))
                    else:
                        report = cluster.remove_node(command[1])
                except UnavailableError:  # a node is down: a change waits for it
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
                    continue
                break
            out.put(("done", command[0], command[1], report.moved, cluster.layout.epoch))
    except BaseException as exc:  # noqa: BLE001
        out.put(("error", repr(exc)))
    finally:
        cluster.close()


def racer(seed: str, name: str, url: str, barrier: Any, out: Any) -> None:
    """Add node `name`, having read the same layout as the other racer before swapping."""
    from cvstore import LayoutConflictError, Node, RedisStore

    cluster = _join(seed)
    first = cluster.node(cluster.layout.install_order()[0]).store
    swap = first.swap_layout

    def swap_together(expected: int, epoch: int, data: bytes) -> Any:
        if expected == 1:  # both changes start from epoch 1 and meet on the first node
            barrier.wait(timeout=20)
        return swap(expected, epoch, data)

    first.swap_layout = swap_together
    try:
        report = cluster.add_node(Node(name, store=RedisStore(url, prefix=PREFIX, timeout=1.0)))
        out.put((name, "added", report.node))
    except LayoutConflictError as exc:
        winner = sorted(spec.name for spec in exc.layout.everyone()) if exc.layout else []
        out.put((name, "conflict", winner))
    except BaseException as exc:  # noqa: BLE001
        out.put((name, "error", repr(exc)))
    finally:
        cluster.close()


def dies_before_commit(seed: str, prefix: str, name: str, url: str, out: Any) -> None:
    """Add node `name`, and die (os._exit) the moment the change would be committed.

    The changing layout is installed and every copy streamed to the new node;
    the commit's first swap ends the process, so no node gets the commit.
    """
    import os

    from cvstore import Cluster, Node, RedisStore

    cluster = Cluster.join([seed], prefix=prefix, timeout=1.0)
    start = cluster.layout.epoch
    first = cluster.node(cluster.layout.install_order()[0]).store
    swap = first.swap_layout

    def swap_or_die(expected: int, epoch: int, data: bytes) -> Any:
        if epoch == start + 2:  # the commit: this client dies here
            out.put(("dying", start + 1))
            out.close()
            out.join_thread()
            os._exit(17)
        return swap(expected, epoch, data)

    first.swap_layout = swap_or_die
    cluster.add_node(Node(name, store=RedisStore(url, prefix=prefix, timeout=1.0)))
    out.put(("committed", cluster.layout.epoch))  # not expected
