"""Which of two membership changes racing from one epoch wins (issue 21, item 5).

``core.membership.install`` driven by hand against MemoryStores standing in for
servers, one step of each change at a time, in a chosen interleaving, with each
change's own view of which servers answer: no driver, no thread, nothing
random.  Before, the first member by name alone decided, so a change could not
remove that member while it was dead ("0 of 1 answered (r1 down)").
"""

from __future__ import annotations

import itertools

import pytest

from cvstore import MemoryStore
from cvstore.core import membership
from cvstore.core.layout import NodeSpec, first
from cvstore.errors import LayoutConflictError, StoreError, UnavailableError

NAMES = ("r1", "r2", "r3", "r4")


class Server:
    """A node as install() sees it: a name and a store."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.store = MemoryStore()


def cluster() -> tuple[dict[str, Server], object]:
    servers = {name: Server(name) for name in NAMES}
    layout = first([NodeSpec(n) for n in NAMES], 3, vnodes=16, hash="xxh64", seed=0, cluster="c")
    for server in servers.values():
        server.store.swap_layout(0, layout.epoch, layout.to_bytes())
    return servers, layout


def answer(calls, down: set[str]):
    """Make `calls` on the stores; a server in `down` does not answer this change."""
    results = []
    for call in calls:
        if call.node.name in down:
            results.append(StoreError("connection refused", node=call.node.name))
        else:
            results.append(getattr(call.node.store, call.op.value)(*call.args))
    return results


def run_interleaved(changes, schedule):
    """Run the changes' install() procedures, one step each as `schedule` says (then to the end).

    `changes`: [(procedure, servers it cannot reach)].  Returns each one's outcome:
    "won", or the error it raised.
    """
    outcomes: list[object] = [None] * len(changes)
    pending: list[object] = [None] * len(changes)
    started = [False] * len(changes)

    def step(i: int) -> None:
        proc, down = changes[i]
        try:
            calls = proc.send(pending[i]) if started[i] else next(proc)
            started[i] = True
            pending[i] = answer(calls, down)
        except StopIteration:
            outcomes[i] = "won"
        except (LayoutConflictError, UnavailableError) as exc:
            outcomes[i] = exc

    for i in itertools.chain(schedule, itertools.cycle(range(len(changes)))):
        if all(o is not None for o in outcomes):
            break
        if outcomes[i] is None:
            step(i)
    return outcomes


def install(layout, target, servers, removing=None):
    expected = {name: layout.epoch for name in layout.names}
    return membership.install(target, dict(servers), expected, skippable=removing)


def held(servers) -> dict[str, tuple[int, bytes]]:
    return {name: s.store.read_layout() for name, s in servers.items()}


def test_a_dead_first_member_can_be_removed():
    servers, layout = cluster()
    target = layout.begin(tuple(s for s in layout.nodes if s.name != "r1"), "remove", "r1")
    (outcome,) = run_interleaved([(install(layout, target, servers, "r1"), {"r1"})], [])
    assert outcome == "won"
    for name in ("r2", "r3", "r4"):
        assert held(servers)[name] == (target.epoch, target.to_bytes())
    assert held(servers)["r1"][0] == layout.epoch  # dead: it learns later


def test_only_the_removed_node_may_be_passed_over():
    servers, layout = cluster()
    target = layout.begin(tuple(s for s in layout.nodes if s.name != "r4"), "remove", "r4")
    (outcome,) = run_interleaved([(install(layout, target, servers, "r4"), {"r1"})], [])
    assert isinstance(outcome, UnavailableError) and "r1" in str(outcome)
    assert {e for e, _ in held(servers).values()} == {layout.epoch}  # nothing written


@pytest.mark.parametrize("schedule", [[0, 1], [1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 0, 1]])
def test_removing_a_dead_first_member_races_a_change_that_reaches_it(schedule):
    """X (adds nothing but re-weights r2) reaches r1; Y removes r1, which Y cannot reach.
    They share the deciders r2 and r3: whatever the interleaving, one wins, the other
    raises LayoutConflictError, and every server holds the winner's layout or the one before."""
    servers, layout = cluster()
    x_target = layout.begin(
        tuple(NodeSpec(s.name, weight=2.0) if s.name == "r2" else s for s in layout.nodes),
        "weight",
        "r2",
    )
    y_target = layout.begin(tuple(s for s in layout.nodes if s.name != "r1"), "remove", "r1")
    outcomes = run_interleaved(
        [
            (install(layout, x_target, servers), set()),
            (install(layout, y_target, servers, "r1"), {"r1"}),
        ],
        schedule,
    )
    assert sorted(type(o).__name__ if o != "won" else "won" for o in outcomes) == [
        "LayoutConflictError",
        "won",
    ]
    winner = x_target if outcomes[0] == "won" else y_target
    for name, (epoch, data) in held(servers).items():
        # the winner's layout, or (r1, dead to Y) the one before: never the loser's
        assert (epoch, data) in {
            (winner.epoch, winner.to_bytes()),
            (layout.epoch, layout.to_bytes()),
        }, name
    for name in ("r2", "r3", "r4"):
        assert held(servers)[name] == (winner.epoch, winner.to_bytes())


@pytest.mark.parametrize("schedule", [[0, 1], [1, 0], [0, 1, 0], [1, 0, 1, 0]])
def test_two_removals_each_passing_over_another_dead_node(schedule):
    """X removes r1 (dead to X), Y removes r2 (dead to Y): each passes over one decider,
    they still share r3; one wins."""
    servers, layout = cluster()
    x_target = layout.begin(tuple(s for s in layout.nodes if s.name != "r1"), "remove", "r1")
    y_target = layout.begin(tuple(s for s in layout.nodes if s.name != "r2"), "remove", "r2")
    outcomes = run_interleaved(
        [
            (install(layout, x_target, servers, "r1"), {"r1"}),
            (install(layout, y_target, servers, "r2"), {"r2"}),
        ],
        schedule,
    )
    assert sorted(type(o).__name__ if o != "won" else "won" for o in outcomes) == [
        "LayoutConflictError",
        "won",
    ]
    winner = x_target if outcomes[0] == "won" else y_target
    layouts = {held(servers)[name] for name in ("r3", "r4")}
    assert layouts == {(winner.epoch, winner.to_bytes())}
    loser_bytes = (y_target if winner is x_target else x_target).to_bytes()
    assert all(data != loser_bytes for _, data in held(servers).values())
