"""Several clients writing one key in turn: the scenarios of the many-writers rule.

Each scenario gets ``make(clock)``, which returns a new client (a ``Cluster``)
over the same nodes every time it is called, as a second web worker would be,
with the clock given.  Clocks are fake (``Wall``): the scenarios set exactly
how the clients' clocks disagree.  Each runs `rounds` times over fresh keys and
returns the rounds in which an acknowledged later write was lost, so a test
asserts ``== []`` and a failure names the rounds.

The promise checked: a write that starts after another write to the same key
was acknowledged wins over it, whatever the writers' clocks say, at every
level where two write quorums meet (quorum, all, strong).  After each
acknowledged write, at least W replicas hold it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cvstore import Cluster
from cvstore.versions import TOMBSTONE, HybridClock
from tests.support.drivers import raw

T0 = 1_700_000_000_000  # ms: when the scenarios happen
MISSING = "<missing>"
WRITE_NEEDS = {"quorum": 2, "all": 3, "strong": 2}  # of 3 replicas

Make = Callable[[HybridClock], Cluster]


class Wall:
    """A settable wall clock in milliseconds."""

    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def clock(wall: Wall, writer_id: int) -> HybridClock:
    return HybridClock(writer_id=writer_id, wall_ms=wall)


# Writer ids at the two ends: on equal stamps the first client always wins a
# tie, so the second one's write is the one a tie would lose.
HIGH, LOW = 2**32 - 1, 0


def holders(cluster: Cluster, key: str, value: Any) -> int:
    """How many of the key's replicas hold `value` (MISSING: no live copy), read from the stores."""
    count = 0
    for node in cluster.get_nodes_for_key(key):
        record = raw(node).get(key.encode())
        held = MISSING if record is None or record.value is TOMBSTONE else record.value
        count += held == value
    return count


def _check(
    clients: list[Cluster], key: str, expected: Any, level: str, lost: list[int], round_: int
) -> None:
    seen = [client.get(key, MISSING, consistency="quorum") for client in clients]
    if (
        any(value != expected for value in seen)
        or holders(clients[0], key, expected) < WRITE_NEEDS[level]
    ):
        lost.append(round_)


def same_millisecond(make: Make, level: str, rounds: int) -> list[int]:
    """A writes, then B writes the same key in the same millisecond; B loses every tie."""
    wall = Wall()
    a, b = make(clock(wall, HIGH)), make(clock(wall, LOW))
    lost: list[int] = []
    for i in range(rounds):
        key = f"same-ms:{i}"
        a.put(key, "from a", consistency=level)
        b.put(key, "from b", consistency=level)
        _check([a, b], key, "from b", level, lost, i)
    return lost


def skewed_read_then_write(make: Make, level: str, rounds: int) -> list[int]:
    """B's clock is 60 s behind A's; B reads A's value, then overwrites it."""
    a = make(clock(Wall(T0), HIGH))
    b = make(clock(Wall(T0 - 60_000), LOW))
    lost: list[int] = []
    for i in range(rounds):
        key = f"skew-read:{i}"
        a.put(key, "from a", consistency=level)
        if b.get(key, MISSING, consistency="quorum") != "from a":
            lost.append(i)
            continue
        b.put(key, "from b", consistency=level)
        _check([a, b], key, "from b", level, lost, i)
    return lost


def skewed_blind_write(make: Make, level: str, rounds: int) -> list[int]:
    """B's clock is 60 s behind A's; B overwrites A's value without reading it first."""
    a = make(clock(Wall(T0), HIGH))
    b = make(clock(Wall(T0 - 60_000), LOW))
    lost: list[int] = []
    for i in range(rounds):
        key = f"skew-blind:{i}"
        a.put(key, "from a", consistency=level)
        b.put(key, "from b", consistency=level)
        _check([a, b], key, "from b", level, lost, i)
    return lost


def restarted_after_step_back(make: Make, level: str, rounds: int) -> list[int]:
    """A writes; the wall clock steps back 5 s (as NTP does) and a new client writes the key."""
    lost: list[int] = []
    wall = Wall(T0)
    a = make(clock(wall, HIGH))
    for i in range(rounds):
        key = f"restart:{i}"
        wall.ms = T0 + i
        a.put(key, "before restart", consistency=level)
        # a restarted process: a brand-new clock that never saw A's stamps
        b = make(clock(Wall(T0 + i - 5_000), LOW))
        b.put(key, "after restart", consistency=level)
        _check([a, b], key, "after restart", level, lost, i)
        b.close()
    return lost


def delete_after_write(make: Make, level: str, rounds: int) -> list[int]:
    """A writes with a clock 60 s ahead; B deletes the key (a tombstone must win)."""
    a = make(clock(Wall(T0), HIGH))
    b = make(clock(Wall(T0 - 60_000), LOW))
    lost: list[int] = []
    for i in range(rounds):
        key = f"delete:{i}"
        a.put(key, "from a", consistency=level)
        b.delete(key, consistency=level)
        _check([a, b], key, MISSING, level, lost, i)
    return lost


def write_after_delete(make: Make, level: str, rounds: int) -> list[int]:
    """A deletes with a clock 60 s ahead; B writes the key again (the write must win)."""
    a = make(clock(Wall(T0), HIGH))
    b = make(clock(Wall(T0 - 60_000), LOW))
    lost: list[int] = []
    for i in range(rounds):
        key = f"undelete:{i}"
        a.put(key, "from a", consistency=level)
        a.delete(key, consistency=level)
        b.put(key, "from b", consistency=level)
        _check([a, b], key, "from b", level, lost, i)
    return lost


def batches(make: Make, level: str, rounds: int, size: int = 20) -> list[int]:
    """put_many from A, then put_many of the same keys from B with a clock 60 s behind and equal
    milliseconds on the other keys; every key must hold B's value."""
    wall_a, wall_b = Wall(T0), Wall(T0 - 60_000)
    a, b = make(clock(wall_a, HIGH)), make(clock(wall_b, LOW))
    lost: list[int] = []
    for i in range(rounds):
        keys = [f"batch:{i}:{j}" for j in range(size)]
        a.put_many({k: "from a" for k in keys}, consistency=level)
        # half the keys rewritten by B alone, so its batch mixes keys it must
        # rewrite (refused) with keys it wins at once
        b.put_many({k: "from b" for k in keys[::2]}, consistency=level)
        b.put_many({k: "from b" for k in keys}, consistency=level)
        got = b.get_many(keys, consistency="quorum")
        if (
            got != {k: "from b" for k in keys}
            or a.get_many(keys) != got
            or min(holders(a, k, "from b") for k in keys) < WRITE_NEEDS[level]
        ):
            lost.append(i)
    return lost


def batch_deletes(make: Make, level: str, rounds: int, size: int = 20) -> list[int]:
    """put_many from A (clock ahead), then B deletes every key and rewrites half of them."""
    a = make(clock(Wall(T0), HIGH))
    b = make(clock(Wall(T0 - 60_000), LOW))
    lost: list[int] = []
    for i in range(rounds):
        keys = [f"batch-del:{i}:{j}" for j in range(size)]
        a.put_many({k: "from a" for k in keys}, consistency=level)
        for k in keys:
            b.delete(k, consistency=level)
        b.put_many({k: "again" for k in keys[::2]}, consistency=level)
        expected = {k: "again" for k in keys[::2]}
        if a.get_many(keys, consistency="quorum") != expected:
            lost.append(i)
    return lost


SCENARIOS = {
    "same-millisecond": same_millisecond,
    "skewed-read-then-write": skewed_read_then_write,
    "skewed-blind-write": skewed_blind_write,
    "restarted-after-step-back": restarted_after_step_back,
    "delete-after-write": delete_after_write,
    "write-after-delete": write_after_delete,
    "batches": batches,
    "batch-deletes": batch_deletes,
}
