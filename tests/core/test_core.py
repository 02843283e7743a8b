"""The replication core on its own: decisions tested with no store, no socket, no thread.

Procedures are driven by hand: each yielded list of calls is answered with
results chosen by the test (applied, refused by a version, failed), and the
test checks what the procedure decided to do next.
"""

from __future__ import annotations

import ast
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cvstore.core
from cvstore.core import hints, levels, reads, writes
from cvstore.core.calls import Call, Op, suspects
from cvstore.core.health import Schedule
from cvstore.core.placement import Placement, ring_placer
from cvstore.core.records import TOMBSTONE, Record, differs, newest
from cvstore.errors import StoreError, UnavailableError

CORE = Path(cvstore.core.__file__).parent


# ----------------------------------------------------------------- layering


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


# What the core may not import: I/O, threads, clocks, randomness, logging.  It
# is handed all of those by its driver (core.calls.Context).
IMPURE = {
    "os", "random", "time", "threading", "asyncio", "socket", "logging", "selectors",
    "concurrent", "multiprocessing", "subprocess", "signal", "redis",
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(p.name for p in CORE.glob("*.py")))
def test_the_core_imports_no_io_thread_clock_randomness_or_logging(module):
    imported = imported_modules(CORE / module)
    forbidden = {name for name in imported if name.split(".")[0] in IMPURE}
    forbidden |= {name for name in imported if layer_of(name) in ("stores", "drivers", "cli")}
    assert forbidden == set(), f"{module} imports {sorted(forbidden)}"
    assert global_randomness(CORE / module) == [], f"{module} draws from numpy's global generator"


def global_randomness(path: Path) -> list[int]:
    """Lines that call into ``np.random`` (its global generator, or a new unseeded one)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "random"
        and isinstance(node.func.value.value, ast.Name)
        and node.func.value.value.id in ("np", "numpy")
    ]


def test_the_purity_checks_catch_an_impure_core_module(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\nfrom random import random\nimport numpy as np\n"
        "from cvstore.stores.base import Store\nx = np.random.random(3)\n"
        "def f(rng: np.random.Generator) -> None: ...\n"  # a type, not a draw
    )
    imported = imported_modules(probe)
    assert {n for n in imported if n.split(".")[0] in IMPURE} == {"os", "random"}
    assert layer_of("cvstore.stores.base") == "stores"
    assert global_randomness(probe) == [5]


# The layers of DESIGN.md, bottom to top: a module imports its own layer and
# those below it, never one above.  The shared leaves (errors, type names,
# limits, the version string) import nothing of cvstore and serve every layer.
LAYERS = ("ring", "versions", "core", "stores", "drivers", "cli")
LEAVES = {"cvstore.errors", "cvstore._types", "cvstore._limits", "cvstore._version"}


def layer_of(module: str) -> str | None:
    """The layer of a cvstore module (None: a leaf, or not cvstore's)."""
    if module in LEAVES or not (module == "cvstore" or module.startswith("cvstore.")):
        return None
    parts = module.split(".")
    second = parts[1] if len(parts) > 1 else ""
    if second in ("_ring", "_chash", "_reference"):
        return "ring"
    if second in ("versions", "_records"):
        return "versions"
    if second == "core":
        return "core"
    if second == "stores":
        return "stores"
    if second in ("cli", "_cli", "__main__"):
        return "cli"
    return "drivers"  # cluster, aio, _driver, node, and the package's face (cvstore)


def package_modules() -> dict[str, Path]:
    """Every module of the package (Python and Cython) by its dotted name."""
    package = CORE.parent
    found = {}
    for path in [*package.rglob("*.py"), *package.rglob("*.pyx")]:
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def cvstore_imports(path: Path) -> set[str]:
    if path.suffix == ".pyx":  # Cython: its import lines, read as text
        return {
            line.split()[1]
            for line in path.read_text().splitlines()
            if line.startswith(("from cvstore", "import cvstore", "cimport cvstore"))
        }
    return {name for name in imported_modules(path) if name.split(".")[0] == "cvstore"}


def upward_imports(modules: dict[str, Path]) -> list[str]:
    found = []
    for name, path in sorted(modules.items()):
        own = layer_of(name)
        if name == "cvstore":  # the package's face imports what it offers, on first use
            continue
        for target in sorted(cvstore_imports(path)):
            theirs = layer_of(target)
            if name in LEAVES and target not in LEAVES:
                found.append(f"{name} (a leaf) imports {target}")
            elif own and theirs and LAYERS.index(theirs) > LAYERS.index(own):
                found.append(f"{name} ({own}) imports {target} ({theirs})")
    return found


def test_no_layer_imports_a_higher_one():
    modules = package_modules()
    assert {
        "cvstore.versions",
        "cvstore.core.reads",
        "cvstore.stores.base",
        "cvstore._records",
    } <= set(modules)
    assert upward_imports(modules) == []


def test_the_layer_check_finds_an_upward_import(tmp_path):
    lower = tmp_path / "versions.py"
    lower.write_text("from cvstore.core.records import Record\n")
    leaf = tmp_path / "errors.py"
    leaf.write_text("import cvstore.node\n")
    assert upward_imports({"cvstore.versions": lower, "cvstore.errors": leaf}) == [
        "cvstore.errors (a leaf) imports cvstore.node",
        "cvstore.versions (versions) imports cvstore.core.records (core)",
    ]


def guesses(path: Path) -> list[str]:
    """``hasattr(x, ...)`` and ``getattr(x, name, default)`` calls on a store, node or seed."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and (node.func.id == "hasattr" or (node.func.id == "getattr" and len(node.args) == 3))
        ):
            target = ast.unparse(node.args[0])
            if any(word in target for word in ("store", "node", "seed", "member")):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_ability_of_a_store_is_guessed_from_its_attributes():
    # Stores declare what they can do (cvstore.stores.base); the layers that use
    # them read the declarations instead of probing for attributes.
    package = CORE.parent
    paths = [*CORE.glob("*.py"), *package.glob("_cli/*.py"), *package.glob("*.py")]
    assert [found for path in paths for found in guesses(path)] == []


def test_the_guess_finder_finds_guesses(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "a = hasattr(node.store, 'sibling')\n"
        "b = getattr(store, 'address', '')\n"
        "c = getattr(store, op.value)\n"  # a method by name: not a guess
        "d = getattr(args, 'seed', None)\n"  # not a store
    )
    assert guesses(probe) == [
        "probe.py:1: hasattr(node.store, 'sibling')",
        "probe.py:2: getattr(store, 'address', '')",
    ]


def test_nothing_below_the_drivers_imports_a_driver():
    package = CORE.parent
    for path in [*package.glob("stores/**/*.py"), *CORE.glob("*.py"), package / "node.py"]:
        imported = imported_modules(path)
        assert not {
            m for m in imported if m in {"cvstore.cluster", "cvstore.aio", "cvstore._driver"}
        }, path


# ------------------------------------------------------------------ records


def test_newest_is_the_highest_version_and_the_first_of_equal_ones():
    a, b, c = Record(3, "a"), Record(5, "b"), Record(5, "c")
    assert newest([None, a, b, c, None]) is b
    assert newest([None, None]) is None
    assert newest([]) is None


def test_differs_compares_versions_not_values():
    assert not differs(Record(2, "x"), Record(2, "y"))  # one write, read twice
    assert differs(Record(2, "x"), Record(3, "x"))
    assert differs(None, Record(1, TOMBSTONE)) and differs(Record(1, 1), None)
    assert not differs(None, None)


# ------------------------------------------------------------------- levels


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_the_level_table(n):
    quorum = n // 2 + 1
    assert levels.read_needs(n) == {
        "one": 1,
        "quorum": quorum,
        "all": n,
        "eventual": 1,
        "strong": quorum,
    }
    assert levels.write_needs(n) == {
        "one": 1,
        "quorum": quorum,
        "all": n,
        "eventual": 1,
        "strong": quorum,
    }
    # the levels that promise a write wins over an earlier acknowledged one: two write quorums meet
    meet = {name for name, rule in levels.LEVELS.items() if 2 * rule.writes(n) > n}
    assert {"quorum", "all", "strong"} <= meet
    assert levels.WRITE_ONE == {"eventual"}


def test_a_bad_level_names_the_argument_and_the_value():
    with pytest.raises(
        ValueError, match=r"consistency must be one of \('one', 'quorum'.*got 'bogus'"
    ):
        levels.check_level("consistency", "bogus")
    with pytest.raises(ValueError, match=r"read_policy must be one of .*got 3"):
        levels.check_policy("read_policy", 3)


# ------------------------------------------------------------------- health


class Member:
    def __init__(self, name: str, up: bool = True, zone: Any = None) -> None:
        self.name, self.weight, self.zone, self.is_up = name, 1.0, zone, up
        self.remote = self.direct = False
        self.latency = None

    def __repr__(self) -> str:
        return f"Member({self.name})"


def test_the_probe_schedule_backs_off_and_forgets():
    schedule = Schedule(interval=0.1, max_interval=0.35)
    node = Member("r1")
    down = StoreError("connection refused", node="r1")
    assert schedule.failed(node, down, now=10.0)
    assert not schedule.failed(node, down, now=10.05)  # already suspected
    assert schedule.due(10.05) == [] and schedule.due(10.1) == [node]
    schedule.probe_failed(node, down, now=10.1)
    assert schedule.next_due() == pytest.approx(10.3)  # 0.2 s
    schedule.probe_failed(node, down, now=10.3)
    assert schedule.next_due() == pytest.approx(10.65)  # 0.35 s: the maximum
    assert schedule.report("r1", now=10.4)["suspected_for_s"] == pytest.approx(0.4)
    assert schedule.answered(node) and not schedule.suspects
    assert schedule.failures["r1"] == 4
    schedule.drop("r1")
    assert "r1" not in schedule.failures and schedule.next_due() is None


def test_only_an_unreachable_store_makes_a_suspect():
    schedule = Schedule(0.1, 1.0)
    full = StoreError("OOM command not allowed", node="r1", unreachable=False)
    assert not schedule.failed(Member("r1"), full, now=0.0)
    assert schedule.suspects == {} and schedule.last_error["r1"] is full
    calls = [Call(Member("a"), Op.GET), Call(Member("b"), Op.GET), Call(Member("c"), Op.GET)]
    gone = StoreError("reset", node="b")
    assert suspects(calls, [full, gone, Record(1, 1)]) == [(calls[1].node, gone)]


# --------------------------------------------------------- driving procedures


class Context:
    """What a driver hands a procedure, without a driver."""

    def __init__(self, members: list[Member], rf: int = 3) -> None:
        self.placement = Placement(members, rf, ring_placer(vnodes=40, hash="xxh64", seed=0))
        self.hints = hints.HintBook(3_600_000, nullcontext())
        self.read_policy = "primary"
        self.counters: dict[str, int] = {}
        self.observed: list[int] = []
        self._next = 100 << 32

    def stamp(self) -> int:
        self._next += 1 << 32
        return self._next

    def observe(self, version: int) -> None:
        self.observed.append(version)
        self._next = max(self._next, version)

    def causes(self, names):
        return {}

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def install(self, placement: Placement) -> None:
        self.placement = placement

    def random(self) -> float:
        return 0.0

    rng = np.random.default_rng(0)

    progress = None  # nobody listens to streaming's and repair's progress


def drive(proc, answer):
    """Run `proc`, answering each step with ``answer(calls)``; returns (value, steps)."""
    steps = []
    try:
        calls = proc.send(None)
        while True:
            steps.append(list(calls))
            calls = proc.send(answer(calls))
    except StopIteration as stop:
        return stop.value, steps


def test_a_write_refused_by_a_newer_version_is_stamped_again_above_it():
    ctx = Context([Member(f"n{i}") for i in range(3)])
    newer = 500 << 32
    written: list[int] = []

    def answer(calls):
        out = []
        for call in calls:
            if call.op is Op.WRITE_MANY:
                version = call.args[1][0][0]
                written.append(version)
                out.append([None] if version > newer else [newer])
            else:
                out.append(None)
        return out

    _, steps = drive(writes.put(ctx, b"k", "v", "quorum", 0), answer)
    assert ctx.observed == [newer]
    assert len(steps) == 2 and all(len(step) == 3 for step in steps)  # every replica, twice
    assert len(set(written[:3])) == 1 and min(written[3:]) > newer


def test_refusals_that_cannot_make_a_quorum_are_not_retried():
    ctx = Context([Member(f"n{i}") for i in range(3)])
    down = StoreError("connection refused", node="x")

    def answer(calls):  # one refusal, two unreachable: retrying cannot reach 2
        return [[7 << 32]] + [down] * (len(calls) - 1)

    with pytest.raises(
        UnavailableError, match=r"quorum write needs 2 of 3 replicas, 0 acknowledged"
    ):
        drive(writes.put(ctx, b"k", "v", "quorum", 0), answer)
    assert ctx.observed == [] and ctx.counters == {"unavailable": 1}


def test_a_rewrite_refused_by_concurrent_writes_is_acknowledged_as_ordered_before_them():
    """Issue 21, item 1: a writer behind a faster one is not shut out of the key."""
    ctx = Context([Member(f"n{i}") for i in range(3)])

    def answer(calls):  # another writer always got there first, just above this stamp
        return [[call.args[1][0][0] + (1 << 32)] for call in calls]

    for level in ("quorum", "all", "strong"):
        ctx.observed.clear()
        _, steps = drive(writes.put(ctx, b"k", level, level, 0), answer)
        assert len(steps) == 2  # stamped again once, above what refused the first attempt
        first, second = (step[0].args[1][0][0] for step in steps)
        assert second > first + (1 << 32)
        # the replicas that refused the rewrite had answered the first attempt: what they
        # hold arrived after this write began, and the clock moved past it
        assert ctx.observed == [first + (1 << 32), second + (1 << 32)]


def test_a_refusal_counts_only_from_a_replica_that_answered_an_earlier_attempt():
    ctx = Context([Member(f"n{i}") for i in range(3)])
    full = StoreError("OOM", node="x", unreachable=False)
    replies = iter(
        [
            ["newer", "newer", full],  # n2 failed: its refusals are not yet known to be late
            ["newer", full, "newer"],  # n0 superseded (1), n2 refused: stamped again
            ["newer", full, "newer"],  # n0 and n2 superseded: 2 of 3
        ]
    )

    def answer(calls):
        return [
            [call.args[1][0][0] + (1 << 32)] if reply == "newer" else reply
            for call, reply in zip(calls, next(replies))
        ]

    _, steps = drive(writes.put(ctx, b"k", "v", "quorum", 0), answer)
    assert len(steps) == 3 and ctx.counters == {}


@pytest.mark.parametrize("rf", [3, 5, 7])
def test_refusals_from_replicas_failing_in_turn_end_within_n_minus_w_plus_two_attempts(rf):
    """Each rewrite that is not acknowledged met a replica that had not answered before."""
    ctx = Context([Member(f"n{i}") for i in range(rf)], rf=rf)
    full = StoreError("OOM", node="x", unreachable=False)
    need = rf // 2 + 1
    attempt = iter(range(100))

    def answer(calls):  # each attempt, other replicas fail: those that answer always refuse
        k = next(attempt)
        failing = {(k * (rf - need) + i) % rf for i in range(rf - need)}
        return [
            full if i in failing else [call.args[1][0][0] + (1 << 32)]
            for i, call in enumerate(calls)
        ]

    _, steps = drive(writes.put(ctx, b"k", "v", "quorum", 0), answer)
    assert 2 <= len(steps) <= rf - need + 2 <= writes.MAX_ATTEMPTS
    assert ctx.counters == {}


def test_a_rewrite_refused_for_replicas_down_says_the_first_attempt_may_be_applied():
    ctx = Context([Member(f"n{i}") for i in range(3)])
    newer = 500 << 32

    def answer(calls):  # n0 applied, the others refused; then two go down before the rewrite
        if calls[0].op is Op.WRITE_MANY:
            for call in calls[1:]:
                call.node.is_up = False
            return [[None]] + [[newer]] * (len(calls) - 1)
        return [None] * len(calls)

    with pytest.raises(UnavailableError) as info:
        drive(writes.put(ctx, b"k", "v", "all", 0), answer)
    assert str(info.value).endswith(
        "; the write may be applied on some replicas: an earlier attempt of this call was "
        "sent to them before newer versions refused it"
    )
    assert str(info.value).startswith("all write needs 3 of 3 replicas, 1 alive")


def test_a_down_replica_gets_a_hint_on_the_next_node_of_the_walk():
    members = [Member(f"n{i}") for i in range(5)]
    ctx = Context(members)
    replicas = ctx.placement.replicas(b"k")
    replicas[1].is_up = False
    walk = [m for m in ctx.placement.walk(b"k") if m not in replicas]

    def answer(calls):
        return [[None] if call.op is Op.WRITE_MANY else None for call in calls]

    _, steps = drive(writes.put(ctx, b"k", "v", "quorum", 0), answer)
    assert [c.node for c in steps[0]] == [replicas[0], replicas[2]]  # the live replicas
    (hint,) = steps[1]
    assert hint.op is Op.PUT_HINTS and hint.node is walk[0] and hint.args[0] == replicas[1].name
    assert ctx.hints.pending == {replicas[1].name: {walk[0].name}}


def test_an_error_reply_is_not_hinted_and_does_not_fail_a_met_quorum():
    ctx = Context([Member(f"n{i}") for i in range(3)])
    full = StoreError("OOM", node="x", unreachable=False)

    def answer(calls):
        return [full] + [[None]] * (len(calls) - 1)

    _, steps = drive(writes.put(ctx, b"k", "v", "quorum", 0), answer)
    assert len(steps) == 1 and ctx.hints.pending == {}


def test_a_quorum_read_returns_the_newest_and_repairs_the_stale_replica():
    ctx = Context([Member(f"n{i}") for i in range(3)])
    old, new = Record(1 << 32, "old"), Record(2 << 32, "new")

    def answer(calls):
        if calls[0].op is Op.GET:
            return [old, new]
        return [[None] for _ in calls]

    record, steps = drive(reads.get(ctx, b"k", "quorum", 0), answer)
    assert record == new and ctx.observed == [new.version]
    (repair,) = steps[1]
    assert repair.op is Op.WRITE_MANY and repair.node is steps[0][0].node
    assert repair.args == ([b"k"], [new]) and ctx.counters == {"read_repairs": 1}


def test_a_failed_replica_is_replaced_by_a_spare_for_the_read():
    ctx = Context([Member(f"n{i}") for i in range(3)])
    gone = StoreError("reset", node="x")
    answers = iter([[gone, Record(1, "a")], [Record(1, "a")]])
    record, steps = drive(reads.get(ctx, b"k", "quorum", 0), lambda calls: next(answers))
    assert record == Record(1, "a") and len(steps) == 2 and len(steps[1]) == 1


def test_a_random_batch_read_draws_from_the_context_only():
    keys = [f"k{i}".encode() for i in range(300)]

    def asked(seed: int) -> list[tuple[str, list[bytes]]]:
        ctx = Context([Member(f"n{i}") for i in range(5)])
        ctx.read_policy = "random"
        ctx.rng = np.random.default_rng(seed)
        _, steps = drive(
            reads.get_many(ctx, keys, "one", 0),
            lambda calls: [[None] * len(c.args[0]) for c in calls],
        )
        return [(call.node.name, call.args[0]) for call in steps[0]]

    # the replica each key is read from: the same for the same generator, so
    # nothing else (numpy's global generator) chose it
    assert asked(7) == asked(7)
    assert asked(7) != asked(8)


def test_zones_spread_the_replicas_first():
    members = [Member(f"a{i}", zone="a") for i in range(4)] + [Member("b0", zone="b")]
    ctx = Context(members, rf=2)
    for key in (b"x", b"y", b"z", b"w"):
        assert {m.zone for m in ctx.placement.replicas(key)} == {"a", "b"}
