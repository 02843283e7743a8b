"""A stateful model: random add/remove/lookup sequences against the pure-Python twin."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cvstore import HashRing, NodeExistsError, NodeNotFoundError
from cvstore._reference import ReferenceRing

NAMES = st.sampled_from([f"node-{i}" for i in range(12)] + ["α", "β", "z"])
KEYS = st.one_of(st.text(max_size=20), st.binary(max_size=20))


class RingMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.ring = HashRing(vnodes=16)
        self.model = ReferenceRing(vnodes=16)

    @rule(name=NAMES, weight=st.sampled_from([0.25, 1.0, 1.5, 3.0]))
    def add(self, name, weight):
        if name in self.model.weights:
            before = np.asarray(self.ring.points).copy()
            try:
                self.ring.add(name, weight)
                raise AssertionError("duplicate add did not raise")
            except NodeExistsError:
                pass
            assert np.array_equal(self.ring.points, before)
        else:
            self.ring.add(name, weight)
            self.model.add(name, weight)

    @rule(name=NAMES)
    def remove(self, name):
        if name in self.model.weights:
            self.ring.remove(name)
            self.model.remove(name)
        else:
            try:
                self.ring.remove(name)
                raise AssertionError("removing an unknown node did not raise")
            except NodeNotFoundError:
                pass

    @precondition(lambda self: len(self.model) > 0)
    @rule(key=KEYS, n=st.integers(1, 5))
    def lookup(self, key, n):
        assert self.ring.get_node(key) == self.model.get_node(key)
        assert self.ring.get_nodes(key, n) == self.model.get_nodes(key, n)

    @precondition(lambda self: len(self.model) > 0)
    @rule(keys=st.lists(KEYS, max_size=20))
    def lookup_many(self, keys):
        got = [self.ring.nodes[i] for i in self.ring.lookup_many(keys).tolist()]
        assert got == [self.model.get_node(k) for k in keys]

    @invariant()
    def same_ring(self):
        self.ring._check()
        assert self.ring.nodes == self.model.nodes
        assert len(self.ring) == len(self.model)
        assert np.asarray(self.ring.points).tolist() == self.model.positions
        assert [self.ring.nodes[o] for o in np.asarray(self.ring.owners).tolist()] == [
            name for _, name in self.model.pairs
        ]


TestRingMachine = RingMachine.TestCase
