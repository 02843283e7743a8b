"""The direct path against the general one: the same operations, the same answers and records.

Over the built-in in-process store a per-key call is done in place
(``cvstore._direct``, the compiled twin of ``cvstore.core.direct``) when it
can be; over any other store the same call always runs the core's general
procedure.  A hypothesis state machine drives clusters with the same random
operations (put, get, delete, batches, node
failures and recoveries, every level, both read policies that do not measure
time, expiring values): one over ``MemoryStore`` (direct when it can be, compiled),
one over a subclass the nodes do not recognise as built in (always general),
and, under the sync driver, one whose ``put``/``get`` are the Python functions
of ``core.direct`` over a direct store whose ``put`` is ``MemoryStore.put`` in
Python (the slow twins of the compiled ones), each with its own copy of one
fake clock and one random source.  Every answer
(value or error) must be the same, and after every step every node must hold
the same records and hints, and both random sources must have been drawn
alike (the two paths choose replicas with the same draws).

Runs under both drivers (``BOTH_DRIVERS``).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import cvstore
from cvstore import CvstoreError, MemoryStore, Node
from cvstore.core import direct as python_direct
from cvstore.versions import HybridClock
from tests.support import drivers
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster

NODES = 5
NAMES = [f"k{i}" for i in range(5)]
KEYS = st.sampled_from(NAMES)
LEVELS = st.sampled_from(["one", "quorum", "all", "strong", "eventual"])
VALUES = st.one_of(st.integers(), st.text(max_size=4), st.binary(max_size=4))
TTLS = st.sampled_from([None, 0.5, 0.5, 2.0])


class General(MemoryStore):
    """A MemoryStore the nodes do not take for the built-in one: every call takes the general path."""


class PythonStore(MemoryStore):
    """A direct MemoryStore whose put is MemoryStore.put in Python, not the compiled Table.put."""

    direct = True

    def put(self, key, record):
        return MemoryStore.put(self, key, record)


class PythonCluster(cvstore.Cluster):
    """The sync driver with core.direct's Python put and get: the slow twins."""

    put = python_direct.put
    get = python_direct.get


def answer(call, *args, **kwargs):
    """What a call answered: ("ok", value) or ("error", its type, its message)."""
    try:
        return ("ok", call(*args, **kwargs))
    except CvstoreError as exc:
        return ("error", type(exc).__name__, str(exc))


class DirectAgainstGeneral(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.wall = [1_000_000]
        self.step = 0
        self.sides = [self.make(MemoryStore), self.make(General)]
        if drivers.current == "sync":
            self.sides.append(self.make(PythonStore, PythonCluster))
        direct, general, *twin = (cluster for cluster, _, _ in self.sides)
        assert direct._place.direct and not general._place.direct
        assert all(cluster._place.direct for cluster in twin)
        assert type(direct).put is not python_direct.put

    def make(self, store: type[MemoryStore], cluster_type=Cluster):
        clock = HybridClock(writer_id=7, wall_ms=lambda: self.wall[0])
        nodes = [Node(f"n{i}", store=store()) for i in range(NODES)]
        cluster = cluster_type(
            nodes, replication_factor=3, vnodes=16, clock=clock, placement=drivers.placement
        )
        source = random.Random(20)
        cluster._state.random = source.random  # the same draws on both sides
        # and the same arrays of draws (a batch read at level one picks replicas with them)
        cluster._state.rng = np.random.default_rng(20)
        return cluster, nodes, source

    def both(self, name, *args, **kwargs):
        answers = []
        for cluster, _, _ in self.sides:
            answers.append(answer(getattr(cluster, name), *args, **kwargs))
        self.step += 1
        assert all(a == answers[0] for a in answers[1:]), (name, args, kwargs, answers)
        return answers[0]

    def teardown(self) -> None:
        for cluster, _, _ in self.sides:
            cluster.close()

    # ------------------------------------------------------------- data

    @rule(key=KEYS, value=VALUES, level=LEVELS, ttl=TTLS)
    def put(self, key, value, level, ttl):
        self.both("put", key, value, consistency=level, ttl=ttl)

    @rule(key=KEYS, level=LEVELS)
    def get(self, key, level):
        self.both("get", key, "absent", consistency=level)

    @rule(key=KEYS, level=LEVELS)
    def delete(self, key, level):
        self.both("delete", key, consistency=level)

    @rule(items=st.dictionaries(KEYS, VALUES, max_size=4), level=LEVELS)
    def put_many(self, items, level):
        self.both("put_many", items, consistency=level)

    @rule(keys=st.lists(KEYS, max_size=4), level=LEVELS)
    def get_many(self, keys, level):
        self.both("get_many", keys, consistency=level)

    # ---------------------------------------------------- nodes and time

    @rule(i=st.integers(0, NODES - 1))
    def fail(self, i):
        for _, nodes, _ in self.sides:
            nodes[i].fail()

    @rule(i=st.integers(0, NODES - 1))
    def recover(self, i):
        for _, nodes, _ in self.sides:
            nodes[i].recover()

    @rule(policy=st.sampled_from(["random", "primary"]))
    def read_policy(self, policy):
        for cluster, _, _ in self.sides:
            cluster.read_policy = policy

    @rule(ms=st.sampled_from([1, 600, 2500]))
    def time_passes(self, ms):
        self.wall[0] += ms

    @rule()
    def deliver_hints(self):
        self.both("deliver_hints")

    # -------------------------------------------------------- invariants

    @invariant()
    def every_key_reads_alike(self):
        for key in NAMES:
            self.both("get", key, "absent")

    @invariant()
    def same_records_hints_and_draws(self):
        (_, direct, one), *others = self.sides
        for _, nodes, other in others:
            for a, b in zip(direct, nodes):
                assert a.store._data == b.store._data, a.name
                assert a.store._hints == b.store._hints, a.name
                assert a.store._newest == b.store._newest, a.name
            assert one.getstate() == other.getstate()
        rngs = [cluster._state.rng.bit_generator.state for cluster, _, _ in self.sides]
        assert all(rng == rngs[0] for rng in rngs[1:])
        stats = [self.counted(cluster.stats()) for cluster, _, _ in self.sides]
        assert all(s == stats[0] for s in stats[1:]), stats

    @staticmethod
    def counted(stats):
        """What stats() counts that both paths must count alike (not the latencies)."""
        return (
            stats.keys_per_node,
            stats.hints_pending,
            stats.hints_written,
            stats.hints_delivered,
            stats.hints_dropped,
            stats.read_repairs,
            stats.unavailable_errors,
            stats.hot_keys,
        )


@pytest.mark.slow
def test_the_direct_path_answers_and_stores_as_the_general_path_does(driver):
    run_state_machine_as_test(
        DirectAgainstGeneral,
        settings=settings(max_examples=80, stateful_step_count=30, deadline=None),
    )


def test_the_keys_a_placement_remembers_follow_membership_changes(driver):
    """The compiled path remembers each key's replicas per placement: a new membership places anew."""
    nodes = [Node(f"n{i}") for i in range(4)]
    cluster = Cluster(nodes, replication_factor=3, vnodes=16)
    keys = [f"key{i}" for i in range(9000)]  # more than a placement keeps: it empties and refills
    for key in keys:
        cluster.put(key, 1)
    assert [cluster.get(key) for key in keys] == [1] * len(keys)
    cluster.add_node(Node("n4"))
    cluster.remove_node("n0")
    for key in keys[:300]:
        cluster.put(key, 2)
    for key in keys[:300]:
        kb = key.encode()
        replicas = cluster._place.replicas(kb)
        assert [node.store._data[kb].value for node in replicas] == [2, 2, 2], key
        assert cluster.get(key) == 2
    cluster.close()
