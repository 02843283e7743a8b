"""The "adaptive" read policy's decisions, pure: scores, order, exploration, hedges (issue 22).

No driver, no store, no clock: the replicas' measurements are fed to a
``ReplicaStats`` by hand and the random draws come from a list.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest

from cvstore.core import health, reads
from cvstore.core.calls import PENDING, Hedged, Op
from cvstore.core.health import ReplicaStats
from cvstore.core.reads import ADAPTIVE_EXPLORE, ERROR_PENALTY, HEDGE_FLOOR, LATENCY_FLOOR, score
from cvstore.core.records import Record
from cvstore.errors import StoreError
from tests.core.test_core import Context, Member, drive


class Draws:
    """ctx.random() answering from a list (then 0.5 for ever), each draw recorded."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)
        self.taken = 0

    def __call__(self) -> float:
        self.taken += 1
        return self.values.pop(0) if self.values else 0.5


def adaptive(members, draws=None, hedging=False, rf=3):
    ctx = Context(members, rf=rf)
    ctx.read_policy = "adaptive"
    ctx.replicas = ReplicaStats(nullcontext())
    ctx.hedging = hedging
    ctx.random = draws or Draws()
    return ctx


def measured(ctx, name, seconds, times=1, single=True):
    for _ in range(times):
        ctx.replicas.sent([name])
        ctx.replicas.answered(name, seconds, False, single)


# ------------------------------------------------------------------ the score


def test_the_score_is_latency_times_outstanding_cubed_times_the_error_penalty():
    assert score(0.02, 0, 0.0) == 0.02
    assert score(0.002, 1, 0.0) == pytest.approx(0.002 * 8)
    assert score(0.002, 2, 0.5) == pytest.approx(0.002 * 27 * (1 + ERROR_PENALTY * 0.5))
    # below the floor, latencies are alike; a replica never measured counts as the floor
    assert score(0.0001, 0, 0.0) == score(0.0009, 0, 0.0) == score(None, 0, 0.0) == LATENCY_FLOOR
    # a fast replica with many reads outstanding loses to a slower idle one
    assert score(0.001, 3, 0.0) > score(0.02, 0, 0.0)


def test_replica_stats_average_count_and_forget():
    stats = ReplicaStats(nullcontext())
    stats.sent(["a", "a"])
    assert stats.view("a") == (None, 2, 0.0)
    stats.answered("a", 0.010, False, True)
    stats.answered("a", 0.020, False, True)
    latency, outstanding, _ = stats.view("a")
    assert latency == pytest.approx(0.010 + health.LATENCY_ALPHA * 0.010) and outstanding == 0
    stats.sent(["a"])
    stats.answered("a", None, True, True)  # a failure: counted, not measured
    assert stats.view("a")[2] == pytest.approx(health.ERROR_ALPHA)
    assert stats.view("a")[0] == pytest.approx(latency)
    assert stats.report("a")["read_error_rate"] == pytest.approx(health.ERROR_ALPHA)
    stats.drop("a")
    assert stats.view("a") == (None, 0, 0.0)


def test_a_spike_moves_the_average_a_bounded_step_and_a_drop_a_full_one():
    stats = ReplicaStats(nullcontext())
    stats.answered("a", 0.0003, False, True)
    stats.answered("a", 0.5, False, True)  # one stall of the client: counted as 10.3 ms
    assert stats.view("a")[0] == pytest.approx(0.0003 + health.LATENCY_ALPHA * 0.010)
    stats.answered("b", 0.020, False, True)
    stats.answered("b", 0.5, False, True)  # from 20 ms: counted as 160 ms (8 times)
    assert stats.view("b")[0] == pytest.approx(0.020 + health.LATENCY_ALPHA * 0.140)
    stats.answered("b", 0.0, False, True)  # faster: counted in full
    assert stats.view("b")[0] == pytest.approx(0.09 * (1 - health.LATENCY_ALPHA))
    assert stats.p95("a") == 0.5  # the p95 (the hedge delay) takes samples as they are


def test_the_p95_is_of_the_latest_single_key_reads():
    stats = ReplicaStats(nullcontext())
    for i in range(96):  # 0..95 ms: the window keeps the latest 64 (32..95 ms)
        stats.answered("a", i / 1000, False, True)
    assert stats.p95("a") == pytest.approx(92 / 1000)  # rank int(0.95 * 64) = 60 of 32..95
    stats.answered("b", 5.0, False, False)  # a batch's call: in the average, not the p95
    assert stats.p95("b") is None and stats.view("b")[0] == 5.0


def test_hedges_stay_within_the_budget():
    stats = ReplicaStats(nullcontext())
    for _ in range(1000):
        if stats.may_hedge():
            stats.hedged("b", None)
    assert stats.hedges <= health.HEDGE_BUDGET * 1000 + 1
    assert stats.hedges >= health.HEDGE_BUDGET * 1000  # and it is spent, not lost


# ------------------------------------------------------------------ the order


def test_the_slow_replica_goes_last_and_equals_are_ordered_by_the_draws():
    members = [Member("a"), Member("b"), Member("c")]
    # draws: one tie-break per replica, then the exploration draw (0.5: none)
    ctx = adaptive(members, Draws(0.9, 0.1, 0.5, 0.5))
    measured(ctx, "a", 0.0002)
    measured(ctx, "b", 0.0003)
    measured(ctx, "c", 0.020)
    order, explored = reads.rank(ctx, members, 1)
    assert [m.name for m in order] == ["b", "a", "c"] and not explored
    ctx.random = Draws(0.1, 0.9, 0.5, 0.5)
    assert [m.name for m in reads.rank(ctx, members, 1)[0]] == ["a", "b", "c"]


def test_outstanding_reads_and_errors_push_a_replica_back():
    members = [Member("a"), Member("b"), Member("c")]
    ctx = adaptive(members)
    for name in "abc":
        measured(ctx, name, 0.002)
    ctx.replicas.sent(["a"])  # one read under way to a
    ctx.replicas.answered("b", None, True, True)  # b just failed
    ctx.replicas.sent(["b"])
    assert [m.name for m in reads.rank(ctx, members, 1)[0]] == ["c", "a", "b"]


def test_exploration_puts_another_replica_first_on_its_share_of_reads():
    members = [Member("a"), Member("b"), Member("c")]
    ctx = adaptive(members, Draws(0.5, 0.5, 0.5, ADAPTIVE_EXPLORE / 2, 0.99))
    measured(ctx, "a", 0.0002)
    measured(ctx, "b", 0.0003)
    measured(ctx, "c", 0.020)
    order, explored = reads.rank(ctx, members, 1)
    # explored: a random non-best replica first (0.99: the last), the best second
    assert explored and [m.name for m in order] == ["c", "a", "b"]
    # an exploration draw at the share does not explore; nor does a read asking every replica
    ctx.random = Draws(0.5, 0.5, 0.5, ADAPTIVE_EXPLORE)
    assert not reads.rank(ctx, members, 1)[1]
    ctx.random = Draws(0.5, 0.5, 0.5, 0.0)
    assert not reads.rank(ctx, members, 3)[1]


# ---------------------------------------------------------------- procedures


def test_a_one_read_asks_the_best_replica_and_a_quorum_read_the_best_two():
    members = [Member("a"), Member("b"), Member("c")]
    ctx = adaptive(members)
    measured(ctx, "a", 0.020)
    measured(ctx, "b", 0.0002)
    measured(ctx, "c", 0.0004)
    _, steps = drive(reads.get(ctx, b"k", "one", 0), lambda calls: [Record(1, "v")] * len(calls))
    assert [c.node.name for c in steps[0]] == ["b"] and steps[0][0].tracked
    _, steps = drive(reads.get(ctx, b"k", "quorum", 0), lambda calls: [Record(1, "v")] * len(calls))
    assert sorted(c.node.name for c in steps[0]) == ["b", "c"]


def test_a_hedging_driver_gets_a_hedged_step_after_the_best_replicas_p95():
    members = [Member("a"), Member("b"), Member("c")]
    ctx = adaptive(members, hedging=True)
    measured(ctx, "a", 0.020, times=10)
    measured(ctx, "b", 0.0002, times=10)
    measured(ctx, "c", 0.004, times=10)
    seen = []

    def answer(calls):
        seen.append(calls)
        return [PENDING, Record(2, "v")]  # the hedge answered first

    record, _ = drive(reads.get(ctx, b"k", "one", 0), answer)
    assert record == Record(2, "v") and len(seen) == 1
    step = seen[0]
    assert type(step) is Hedged and [c.node.name for c in step] == ["b", "c"]
    assert step.after == max(HEDGE_FLOOR, ctx.replicas.p95("b"))
    assert all(c.op is Op.GET and c.tracked for c in step)


def test_a_hedged_read_whose_replica_failed_at_once_asks_the_next_as_usual():
    members = [Member("a"), Member("b"), Member("c")]
    ctx = adaptive(members, hedging=True)
    measured(ctx, "b", 0.0002, times=10)
    measured(ctx, "c", 0.0004, times=10)
    measured(ctx, "a", 0.020, times=10)
    gone = StoreError("reset", node="b")
    answers = iter([[gone, PENDING], [Record(1, "v")]])
    record, steps = drive(reads.get(ctx, b"k", "one", 0), lambda calls: next(answers))
    assert record == Record(1, "v")
    assert [c.node.name for c in steps[1]] == ["c"]


def test_no_hedge_without_a_hedging_driver_or_a_p95_or_budget():
    members = [Member("a"), Member("b"), Member("c")]
    ctx = adaptive(members, hedging=False)
    measured(ctx, "b", 0.0002, times=10)
    _, steps = drive(reads.get(ctx, b"k", "one", 0), lambda calls: [Record(1, "v")] * len(calls))
    assert type(steps[0]) is not Hedged
    ctx = adaptive(members, hedging=True)  # nothing measured: no p95 to wait for
    _, steps = drive(reads.get(ctx, b"k", "one", 0), lambda calls: [Record(1, "v")] * len(calls))
    assert len(steps[0]) == 1


def test_a_batch_reads_from_the_best_replicas_but_for_its_exploration():
    members = [Member("a"), Member("b"), Member("c")]
    ctx = adaptive(members)
    ctx.rng = np.random.default_rng(3)
    measured(ctx, "a", 0.0002)
    measured(ctx, "b", 0.0003)
    measured(ctx, "c", 0.020)
    keys = [f"k{i}".encode() for i in range(2000)]
    _, steps = drive(
        reads.get_many(ctx, keys, "one", 0),
        lambda calls: [[Record(1, "v")] * len(c.args[0]) for c in calls],
    )
    per_node = {c.node.name: len(c.args[0]) for c in steps[0]}
    assert all(c.tracked for c in steps[0])
    # c: only explored keys (1 %, a third of them to c); a and b share the rest
    assert per_node.get("c", 0) <= 0.01 * len(keys)
    assert per_node["a"] > 0.4 * len(keys) and per_node["b"] > 0.4 * len(keys)
    _, steps = drive(
        reads.get_many(ctx, keys, "quorum", 0),
        lambda calls: [[Record(1, "v")] * len(c.args[0]) for c in calls],
    )
    per_node = {c.node.name: len(c.args[0]) for c in steps[0]}
    assert per_node.get("c", 0) <= 0.05 * len(keys)


def hedging_over(**latencies):
    """A hedging driver's context over members named by `latencies`, each measured 10 times."""
    ctx = adaptive([Member(name) for name in latencies], hedging=True)
    for name, seconds in latencies.items():
        measured(ctx, name, seconds, times=10)
    return ctx


def test_a_quorum_read_hedges_to_the_third_replica_after_the_slower_p95_of_the_two_best():
    # above LATENCY_FLOOR: ranked b, a, c
    ctx = hedging_over(a=0.0012, b=0.0011, c=0.0014)
    seen = []

    def answer(calls):
        seen.append(calls)
        if calls[0].op is Op.WRITE_MANY:
            return [[None]]  # the repair, applied
        return [Record(1, "old"), PENDING, Record(2, "new")]  # a late: the hedge answered

    record, steps = drive(reads.get(ctx, b"k", "quorum", 0), answer)
    step = seen[0]
    assert type(step) is Hedged and step.need == 2
    assert [c.node.name for c in step] == ["b", "a", "c"]
    assert step.after == max(HEDGE_FLOOR, ctx.replicas.p95("a"), ctx.replicas.p95("b"))
    # the newest of the two answers, and the older answer repaired; b (no answer) is not
    assert record == Record(2, "new")
    repairs = [c for s in steps[1:] for c in s if c.op is Op.WRITE_MANY]
    assert [c.node.name for c in repairs] == ["b"]


def test_a_quorum_read_short_of_answers_asks_the_spare_it_did_not_hedge_to():
    members = [Member("a"), Member("b"), Member("c")]
    ctx = adaptive(members, hedging=True)
    for name in "abc":  # above LATENCY_FLOOR: ranked a, b, c
        measured(ctx, name, 0.0011 + 0.0001 * "abc".index(name), times=10)
    gone = StoreError("reset", node="a")
    answers = iter([[Record(1, "v"), gone, PENDING], [Record(1, "v")]])
    record, steps = drive(reads.get(ctx, b"k", "quorum", 0), lambda calls: next(answers))
    assert record == Record(1, "v")
    assert [c.node.name for c in steps[1]] == ["c"]  # the hedge was not sent: asked now


def test_no_hedge_to_a_replica_far_slower_than_the_wait():
    # above LATENCY_FLOOR: ranked a, b, c; > HEDGE_SPARE times the wait (b's p95, 1.2 ms)
    ctx = hedging_over(a=0.0011, b=0.0012, c=0.040)

    def first_step(level):
        seen = []

        def answer(calls):
            seen.append(calls)
            return [Record(1, "v")] * len(calls)

        drive(reads.get(ctx, b"k", level, 0), answer)
        return type(seen[0]), [c.node.name for c in seen[0]]

    assert first_step("quorum") == (list, ["a", "b"])
    assert first_step("one") == (Hedged, ["a", "b"])  # to the second best, not to c
    # an explored read of c asks it beside the best two (the spare, at once)
    ctx.random = Draws(0.5, 0.5, 0.5, 0.0, 0.99)  # three tie-breaks, explore, pick the last
    assert first_step("quorum") == (Hedged, ["a", "b", "c"])


def test_a_hedging_driver_asks_the_explored_replica_beside_the_best_at_once():
    # above LATENCY_FLOOR: ranked a, b, c
    ctx = hedging_over(a=0.0011, b=0.0012, c=0.040)
    for level, asked in (("one", ["a", "c"]), ("quorum", ["a", "b", "c"])):
        ctx.random = Draws(0.5, 0.5, 0.5, 0.0, 0.99)  # tie-breaks, explore, pick the last (c)
        seen = []

        def answer(calls, seen=seen):
            seen.append(calls)
            return [Record(1, "v")] * (len(calls) - 1) + [PENDING]  # c has not answered

        record, steps = drive(reads.get(ctx, b"k", level, 0), answer)
        step = seen[0]
        # c is the spare, sent at once; the read returns with the best ones' answers
        assert type(step) is Hedged and step.after == 0.0
        assert [c.node.name for c in step] == asked and step.need == len(asked) - 1
        assert record == Record(1, "v") and len(steps) == 1
    # without a hedging driver the explored replica is asked instead of the best
    ctx.hedging = False
    ctx.random = Draws(0.5, 0.5, 0.5, 0.0, 0.99)
    _, steps = drive(reads.get(ctx, b"k", "one", 0), lambda calls: [Record(1, "v")] * len(calls))
    assert [c.node.name for c in steps[0]] == ["c"]


def test_explorations_sent_as_hedges_keep_within_the_hedge_budget():
    ctx = hedging_over(a=0.0011, b=0.0012, c=0.040)
    sent = 0
    for _ in range(200):  # every read explores (draw 0.0) and every hedge is made
        ctx.random = Draws(0.5, 0.5, 0.5, 0.0, 0.99)

        def answer(calls):
            nonlocal sent
            if type(calls) is Hedged:
                sent += 1
                ctx.replicas.hedged(calls[calls.need].node.name, None)  # as a driver counts it
                return [Record(1, "v")] * calls.need + [PENDING]
            return [Record(1, "v")] * len(calls)

        drive(reads.get(ctx, b"k", "one", 0), answer)
    assert sent == ctx.replicas.hedges <= health.HEDGE_BUDGET * ctx.replicas.reads + 1
    assert sent >= health.HEDGE_BUDGET * 200  # explorations past the budget go the old way


def test_quorum_reads_whose_spare_is_slow_still_count_toward_the_budget_explorations_use():
    # A quorum read's spare is the slow replica: no p95 hedge; its explorations (sent
    # as hedges) must still find a budget: every read that could hedge counts.
    ctx = hedging_over(a=0.0011, b=0.0012, c=0.040)
    waited_for_c = 0
    for i in range(400):
        explore = i % 50 == 0  # 2 % of the reads explore, c each time
        ctx.random = Draws(0.5, 0.5, 0.5, 0.0 if explore else 0.5, 0.99)
        seen = []

        def answer(calls, seen=seen):
            seen.append(calls)
            if type(calls) is Hedged:
                ctx.replicas.hedged(calls[calls.need].node.name, None)
                return [Record(1, "v")] * calls.need + [PENDING]
            return [Record(1, "v")] * len(calls)

        drive(reads.get(ctx, b"k", "quorum", 0), answer)
        first = seen[0]
        asked = first[: first.need] if type(first) is Hedged else first
        waited_for_c += any(c.node.name == "c" for c in asked)
    assert waited_for_c == 0  # every exploration of c went beside the best two
