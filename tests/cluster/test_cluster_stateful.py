"""A hypothesis state machine: the cluster against a plain dict through failures and membership changes.

Writes and reads use levels with R + W > N (quorum, all, strong), and at
most N - 1 nodes are down at once, so every read must see the last
acknowledged write, whatever happened in between.  Each call must also
succeed exactly when enough of the key's replicas are up.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cvstore import Cluster, Node, UnavailableError
from cvstore.versions import TOMBSTONE

RF = 3
NEEDS = {"quorum": 2, "all": 3, "strong": 2}
KEYS = st.sampled_from([f"k{i}" for i in range(16)])
LEVELS = st.sampled_from(sorted(NEEDS))


class ClusterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster = Cluster([Node(f"n{i}") for i in range(5)], replication_factor=RF, vnodes=16)
        self.model: dict[str, int] = {}
        self.next_node = 5

    def alive(self, key: str) -> int:
        return sum(node.is_up for node in self.cluster.get_nodes_for_key(key))

    def down(self) -> list[Node]:
        return [node for node in self.cluster.nodes if not node.is_up]

    # ------------------------------------------------------------- data

    @rule(key=KEYS, value=st.integers(), level=LEVELS)
    def put(self, key, value, level):
        if self.alive(key) >= NEEDS[level]:
            self.cluster.put(key, value, consistency=level)
            self.model[key] = value
        else:
            try:
                self.cluster.put(key, value, consistency=level)
            except UnavailableError as exc:
                assert exc.required == NEEDS[level] and exc.alive == self.alive(key)
            else:
                raise AssertionError(f"{level} put with {self.alive(key)} alive succeeded")

    @rule(key=KEYS, level=LEVELS)
    def delete(self, key, level):
        if self.alive(key) >= NEEDS[level]:
            self.cluster.delete(key, consistency=level)
            self.model.pop(key, None)
        else:
            try:
                self.cluster.delete(key, consistency=level)
            except UnavailableError:
                pass
            else:
                raise AssertionError("delete succeeded without enough replicas")

    @rule(key=KEYS, level=LEVELS)
    def get(self, key, level):
        if self.alive(key) >= NEEDS[level]:
            assert self.cluster.get(key, consistency=level) == self.model.get(key)
        else:
            try:
                self.cluster.get(key, consistency=level)
            except UnavailableError:
                pass
            else:
                raise AssertionError("get succeeded without enough replicas")

    @rule(keys=st.lists(KEYS, min_size=1, max_size=6, unique=True), value=st.integers())
    def put_many(self, keys, value):
        if all(self.alive(k) >= 2 for k in keys):
            self.cluster.put_many(dict.fromkeys(keys, value))
            self.model.update(dict.fromkeys(keys, value))
        else:
            try:
                self.cluster.put_many(dict.fromkeys(keys, value))
            except UnavailableError:
                pass
            else:
                raise AssertionError("put_many succeeded without enough replicas")

    @rule(keys=st.lists(KEYS, min_size=1, max_size=8, unique=True))
    def get_many(self, keys):
        if all(self.alive(k) >= 2 for k in keys):
            expected = {k: self.model[k] for k in keys if k in self.model}
            assert self.cluster.get_many(keys) == expected

    # ------------------------------------------------------- membership

    @precondition(lambda self: len(self.cluster.nodes) < 9)
    @rule()
    def add_node(self):
        node = Node(f"n{self.next_node}")
        self.next_node += 1
        report = self.cluster.add_node(node)
        assert report.missed == 0

    @precondition(lambda self: len(self.cluster.nodes) > RF)
    @rule(data=st.data())
    def remove_node(self, data):
        node = data.draw(st.sampled_from(self.cluster.nodes))
        self.cluster.remove_node(node)

    # --------------------------------------------------------- failures

    @precondition(lambda self: len(self.down()) < RF - 1)
    @rule(data=st.data())
    def fail(self, data):
        up = [node for node in self.cluster.nodes if node.is_up]
        data.draw(st.sampled_from(up)).fail()

    @precondition(lambda self: bool(self.down()))
    @rule(data=st.data())
    def recover(self, data):
        data.draw(st.sampled_from(self.down())).recover()

    @rule()
    def repair(self):
        report = self.cluster.repair()
        assert report.complete == (not self.down())
        if report.complete:
            self.assert_whole()

    @rule()
    def deliver_hints(self):
        self.cluster.deliver_hints()

    # -------------------------------------------------------- invariants

    def assert_whole(self) -> None:
        """After a complete repair every replica holds the model's value and nothing else holds copies."""
        for key in {f"k{i}" for i in range(16)}:
            replicas = self.cluster.get_nodes_for_key(key)
            for node in self.cluster.nodes:
                record = node.store.get(key.encode())
                if node not in replicas:
                    assert record is None, (key, node)
                elif key in self.model:
                    assert record is not None and record.value == self.model[key], (key, node)
                else:
                    assert record is None or record.value is TOMBSTONE, (key, node)

    @invariant()
    def at_most_n_minus_1_down(self):
        assert len(self.down()) <= RF - 1

    @invariant()
    def iteration_matches_when_all_are_up(self):
        if not self.down():
            assert sorted(self.cluster) == sorted(self.model)


TestCluster = ClusterMachine.TestCase
