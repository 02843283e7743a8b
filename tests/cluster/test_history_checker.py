"""The history checker (tests/support/history.py) on hand-made histories.

Each history is small and written out by hand, with times as plain numbers, so each
test shows exactly which interleaving the checker must flag and which it must accept.
"""

from __future__ import annotations

import pytest

from cvstore import Cluster, Node
from tests.support.history import (
    INF,
    History,
    Op,
    check,
    promises_no_loss,
    promises_read_after_write,
)


def w(process, key, value, invoke, complete, level="quorum", outcome="ok"):
    return Op(process, "write", key, value, level, invoke, complete, outcome)


def r(process, key, value, invoke, complete, level="quorum", outcome="ok"):
    return Op(process, "read", key, value, level, invoke, complete, outcome)


def test_a_correct_concurrent_history_passes():
    ops = [
        w(1, "k", "a", 0, 2),
        w(2, "k", "b", 1, 3),  # concurrent with a: either may win
        r(3, "k", "a", 4, 5),  # a ordered after b: allowed
        r(1, "k", "b", 4, 6),  # a read concurrent with nothing, returns b: also allowed
        w(3, "k", "c", 2, INF, outcome="unknown"),  # may or may not be applied
        r(2, "k", "c", 7, 8),  # reading an unknown write is fine
        w(1, "j", "d", 0, 1),
        r(2, "j", None, 0, 0.5),  # read before the write completed: absent is fine
    ]
    report = check(ops, final={"k": "c", "j": "d"}, replicas={"k": ["c"] * 3, "j": ["d"] * 3})
    assert report.ok, report.summary()
    assert report.counts["writes_ok"] == 3
    assert report.counts["writes_unknown"] == 1


def test_a_lost_acknowledged_write_is_reported():
    a, b = w(1, "k", "a", 0, 1), w(2, "k", "b", 2, 3)  # b started after a was acknowledged
    report = check([a, b], final={"k": "a"})
    assert report.lost == [(b, "a")]
    assert not report.ok


def test_a_write_missing_at_the_end_is_lost():
    a = w(1, "k", "a", 0, 1)
    assert check([a], final={"k": None}).lost == [(a, None)]
    assert check([a], final={}).lost == [(a, None)]


def test_a_stale_read_is_reported():
    a, b = w(1, "k", "a", 0, 1), w(1, "k", "b", 2, 3)
    late = r(2, "k", "a", 4, 5)  # began after b was acknowledged, returned a
    report = check([a, b, late], final={"k": "b"})
    assert report.stale == [(late, b)]
    assert report.lost == []


def test_reading_nothing_after_an_acknowledged_write_is_stale():
    a = w(1, "k", "a", 0, 1)
    empty = r(2, "k", None, 2, 3)
    assert check([a, empty], final={"k": "a"}).stale == [(empty, a)]


def test_a_read_overlapping_the_write_may_return_the_old_value():
    a, b = w(1, "k", "a", 0, 1), w(1, "k", "b", 2, 5)
    overlapping = r(2, "k", "a", 3, 4)
    assert check([a, b, overlapping], final={"k": "b"}).ok


def test_a_phantom_value_is_reported():
    a = w(1, "k", "a", 0, 1)
    report = check([a, r(2, "k", "zz", 2, 3)], final={"k": "a"})
    assert report.phantom == [("k", "zz")]
    # A value written under another key is a phantom here as well, and so is one at the end.
    report = check([a, w(1, "j", "b", 0, 1)], final={"k": "b", "j": "b"})
    assert ("k", "b") in report.phantom


def test_replicas_that_disagree_are_reported():
    a = w(1, "k", "a", 0, 1)
    report = check([a], final={"k": "a"}, replicas={"k": ["a", "a", None]})
    assert report.disagree == [("k", ("a", "a", None))]


def test_failed_reads_are_not_checked():
    a = w(1, "k", "a", 0, 1)
    failed = r(2, "k", None, 2, 3, outcome="fail")
    assert check([a, failed], final={"k": "a"}).ok


@pytest.mark.parametrize(
    ("write_level", "read_level", "promised"),
    [
        ("quorum", "quorum", True),
        ("strong", "strong", True),
        ("quorum", "strong", True),
        ("all", "one", True),  # every replica has it when put returns
        ("one", "all", True),  # an all read asks every replica
        ("all", "eventual", True),
        ("quorum", "one", False),
        ("one", "quorum", False),
        ("one", "one", False),
        ("eventual", "eventual", False),
        ("eventual", "quorum", False),
    ],
)
def test_stale_reads_are_checked_per_level_exactly_as_promised(write_level, read_level, promised):
    assert promises_read_after_write(write_level, read_level) is promised
    a = w(1, "k", "a", 0, 1, level=write_level)
    b = w(1, "k", "b", 2, 3, level=write_level)
    late = r(2, "k", "a", 4, 5, level=read_level)
    report = check([a, b, late], final={"k": "b"})
    assert report.stale == ([(late, b)] if promised else [])


@pytest.mark.parametrize(
    ("level", "promised"),
    [("quorum", True), ("all", True), ("strong", True), ("one", False), ("eventual", False)],
)
def test_lost_writes_are_checked_per_level_exactly_as_promised(level, promised):
    # At W = 1 a later blind write can lose to an earlier one (README); not at quorum and above.
    assert promises_no_loss(level) is promised
    a, b = w(1, "k", "a", 0, 1, level=level), w(2, "k", "b", 2, 3, level=level)
    assert check([a, b], final={"k": "a"}).lost == ([(b, "a")] if promised else [])


def test_values_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        check([w(1, "k", "a", 0, 1), w(2, "k", "a", 2, 3)], final={})


def test_history_records_real_calls_and_their_outcomes():
    cluster = Cluster([Node(f"n{i}") for i in range(3)])
    history = History(process=7)
    value = history.value()
    assert history.write(lambda k, v: cluster.put(k, v), "k", value, "quorum")
    assert history.read(lambda k: cluster.get(k), "k", "quorum") == value

    def broken(key, value=None):
        raise OSError("cut")

    assert not history.write(broken, "k", history.value(), "quorum")
    assert history.read(broken, "k", "quorum") is None
    outcomes = [(op.op, op.outcome) for op in history.ops]
    assert outcomes == [("write", "ok"), ("read", "ok"), ("write", "unknown"), ("read", "fail")]
    assert history.ops[2].complete == INF
    assert len({op.value for op in history.ops if op.op == "write"}) == 2
    assert check(history.ops, final={"k": cluster.get("k")}).ok
    cluster.close()


# -- the order the checker derives, and each level's promise exactly (issue 21, item 3) ------


def test_a_one_write_by_a_client_that_read_the_older_value_must_win():
    # README: "a client that read a value stamps its later writes above it, at every level,
    # `one` and `eventual` included"; every level's write is on one replica, newer than what
    # it held, so after repair() the later write (or a newer one) is what the key holds.
    a = w(1, "k", "a", 0, 1, level="one")
    seen = r(2, "k", "a", 2, 3, level="all")  # an all read after `a`: `a`'s last stamp
    b = w(2, "k", "b", 4, 5, level="one")
    assert check([a, seen, b], final={"k": "a"}).lost == [(b, "a")]
    assert check([a, seen, b], final={"k": "b"}).ok


def test_a_read_that_may_have_returned_an_early_stamp_orders_nothing():
    # `a` may have been refused somewhere and stamped again: a `one` read can return its first
    # stamp from a replica the later stamp never reached; `b` is above that stamp only.
    # (Seen in a real run: a quorum write took 390 ms, re-stamped past newer writes.)
    a = w(1, "k", "a", 0, 1, level="one")
    seen = r(2, "k", "a", 2, 3, level="one")
    b = w(2, "k", "b", 4, 5, level="one")
    assert check([a, seen, b], final={"k": "a"}).ok
    during = r(2, "k", "a", 0.5, 0.6, level="all")  # read while `a` was still in progress
    assert check([a, during, w(2, "k", "b", 4, 5, level="one")], final={"k": "a"}).ok


def test_a_clients_own_later_write_must_win_at_one():
    a = w(1, "k", "a", 0, 1, level="eventual")
    b = w(1, "k", "b", 2, 3, level="eventual")  # HybridClock stamps strictly increase
    assert check([a, b], final={"k": "a"}).lost == [(b, "a")]


def test_an_acknowledged_one_write_must_not_vanish():
    a = w(1, "k", "a", 0, 1, level="one")
    assert check([a], final={"k": None}).lost == [(a, None)]


def test_a_quorum_write_after_a_one_write_may_lose_to_it():
    # W + W = 1 + 2 = N: the quorum write need not meet the one replica that applied `a`,
    # and a writer whose clock is behind stamps lower; not a promise, not reported.
    a = w(1, "k", "a", 0, 1, level="one")
    b = w(2, "k", "b", 2, 3, level="quorum")
    assert check([a, b], final={"k": "a"}).ok


def test_a_one_write_after_an_all_write_must_win():
    # every replica has `a` when its put returns, so the replica that applies `b` held it
    a = w(1, "k", "a", 0, 1, level="all")
    b = w(2, "k", "b", 2, 3, level="one")
    assert check([a, b], final={"k": "a"}).lost == [(b, "a")]


def test_an_all_read_after_unordered_one_writes_may_return_the_earlier():
    # `b` began after `a` was acknowledged, but at W = 1 nothing orders their stamps: the
    # all read returns the newer stamp, which may be `a`'s.  Not stale.
    a = w(1, "k", "a", 0, 1, level="one")
    b = w(2, "k", "b", 2, 3, level="one")
    read = r(3, "k", "a", 4, 5, level="all")
    assert check([a, b, read], final={"k": "a"}).ok


def test_the_order_is_transitive():
    x = w(1, "k", "x", 0, 1, level="all")
    y = w(3, "k", "y", 2, 3, level="one")  # above x: all + one > N
    seen = r(2, "k", "y", 4, 5, level="all")
    z = w(2, "k", "z", 6, 7, level="one")  # above y: its process read y's last stamp
    report = check([x, y, seen, z], final={"k": "x"})
    assert report.lost == [(y, "x"), (z, "x")]
    late = r(4, "k", "y", 8, 9, level="all")  # an all read after z: y is older than z
    assert check([x, y, seen, z, late], final={"k": "z"}).stale == [(late, z)]


def test_reads_at_one_that_go_back_are_counted_not_failed():
    a = w(1, "k", "a", 0, 1, level="one")
    b = w(1, "k", "b", 2, 3, level="one")
    first = r(2, "k", "b", 4, 5, level="one")
    back = r(2, "k", "a", 6, 7, level="one")  # older than what process 2 already read
    report = check([a, b, first, back], final={"k": "b"})
    assert report.ok, report.summary()
    assert report.counts["nonmonotonic_one"] == 1
    assert report.counts["stale_allowed_one"] == 1  # older than b, acknowledged before it
    assert report.counts["writes_ok_one"] == 2
    # The same at quorum is a stale read (b was acknowledged at quorum before it began).
    qa, qb = w(1, "k", "a", 0, 1), w(1, "k", "b", 2, 3)
    qfirst, qback = r(2, "k", "b", 4, 5), r(2, "k", "a", 6, 7)
    assert check([qa, qb, qfirst, qback], final={"k": "b"}).stale == [(qback, qb)]


def test_an_unknown_level_or_kind_of_operation_is_refused():
    with pytest.raises(ValueError, match="level must be one of .*'two'"):
        check([w(1, "k", "a", 0, 1, level="two")], final={})
    with pytest.raises(ValueError, match="op must be 'write' or 'read', got 'cas'"):
        check([Op(1, "cas", "k", "a", "one", 0, 1, "ok")], final={})
