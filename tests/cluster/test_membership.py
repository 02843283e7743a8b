"""Membership kept on the nodes, in-process: layouts, epochs, fencing, changes by any client.

Clients are ``Cluster`` objects made with ``Cluster.create`` / ``Cluster.join``
over shared MemoryStores (``connect`` maps a node name to its store, as a
URL does for Redis).  The same promises run against real servers and real
processes in ``tests/redis/test_membership_redis.py``.
"""

from __future__ import annotations

import threading

import pytest

from cvstore import MemoryStore, Node, UnavailableError
from cvstore.core.layout import Layout, LayoutError, NodeSpec, first
from cvstore.core.placements import placer_factory
from cvstore.errors import FencedError, LayoutConflictError, StoreError
from cvstore.versions import Record
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster
ALL_PLACEMENTS = True  # and under every registered placement (tests/conftest.py)


class Servers:
    """Named MemoryStores standing in for servers: what ``connect`` reaches."""

    def __init__(self, *names: str) -> None:
        self.stores = {name: RecordingStore() for name in names}

    def add(self, name: str) -> MemoryStore:
        self.stores[name] = RecordingStore()
        return self.stores[name]

    def connect(self, spec: NodeSpec) -> MemoryStore:
        return self.stores[spec.name]

    def nodes(self, *names: str) -> list[Node]:
        return [Node(name, store=self.stores[name]) for name in names]

    def layouts(self) -> dict[str, int]:
        return {name: store.read_layout()[0] for name, store in self.stores.items()}


class RecordingStore(MemoryStore):
    """A MemoryStore that remembers the epochs of the record calls it accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[tuple[str, int]] = []

    def write_many(self, keys, records, epoch=0):
        result = super().write_many(keys, records, epoch)
        self.accepted.append(("write", epoch))
        return result

    def get_many(self, keys, epoch=0):
        result = super().get_many(keys, epoch)
        self.accepted.append(("read", epoch))
        return result


def create(servers: Servers, *names: str, **options) -> Cluster:
    return Cluster.create(servers.nodes(*names), connect=servers.connect, **options)


def join(servers: Servers, seed: str, **options) -> Cluster:
    return Cluster.join([servers.stores[seed]], connect=servers.connect, **options)


class TestLayouts:
    def test_creating_writes_the_first_layout_on_every_node(self):
        servers = Servers("a", "b", "c")
        cluster = create(servers, "a", "b", "c", replication_factor=2, vnodes=40)
        layout = cluster.layout
        assert layout.epoch == 1 and layout.names == ("a", "b", "c") and not layout.changing
        assert servers.layouts() == {"a": 1, "b": 1, "c": 1}
        for store in servers.stores.values():
            assert Layout.from_bytes(store.read_layout()[1]) == layout
        assert (layout.replication_factor, layout.vnodes) == (2, 40)

    def test_a_new_clusters_id_is_drawn_by_its_client_not_by_the_layout(self):
        ids = {create(Servers("a"), "a").layout.cluster for _ in range(3)}
        assert len(ids) == 3 and all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
        # the layout itself is a pure function of what it is given
        specs = [NodeSpec("a"), NodeSpec("b")]
        made = [first(specs, 2, vnodes=40, hash="xxh64", seed=0, cluster="c1") for _ in range(2)]
        assert made[0] == made[1] and made[0].cluster == "c1"

    def test_a_client_joins_from_one_node_and_gets_the_whole_cluster(self, placed_by):
        servers = Servers("a", "b", "c")
        first = create(servers, "a", "b", "c", replication_factor=2, vnodes=40)
        first.put_many({f"k{i}": i for i in range(200)})
        other = join(servers, "b")  # one address, nothing else
        assert [n.name for n in other.nodes] == ["a", "b", "c"]
        assert other.replication_factor == 2 and other.placer == first.placer
        # the joiner passed no placement=: it places as the layout says
        assert other.placement == first.placement == other.layout.placement == placed_by
        made = placer_factory(placed_by, vnodes=40, hash="xxh64", seed=0)
        assert other.placer == made({"a": 1.0, "b": 1.0, "c": 1.0})
        assert other.get_many([f"k{i}" for i in range(200)]) == {f"k{i}": i for i in range(200)}

    def test_a_node_of_one_cluster_cannot_create_another(self):
        servers = Servers("a", "b")
        create(servers, "a", "b")
        with pytest.raises(LayoutError, match="already belongs to cluster .*join it"):
            create(servers, "a")

    def test_layouts_round_trip_and_bad_ones_are_refused(self):
        servers = Servers("a")
        layout = create(servers, "a").layout
        assert Layout.from_bytes(layout.to_bytes()) == layout
        for junk, match in [
            (b"{not json", "must be JSON"),
            (b"[1, 2]", "must be a JSON object"),
            (b'{"format": 99}', "format 99"),
            (layout.to_bytes().replace(b'"epoch":1', b'"epoch":0'), "epoch must be an int >= 1"),
            (layout.to_bytes().replace(b'"weight":1.0', b'"weight":-1'), "weight must be"),
        ]:
            with pytest.raises(LayoutError, match=match):
                Layout.from_bytes(junk)

    def test_a_change_moves_through_three_epochs(self):
        layout = Layout("c1", 4, (NodeSpec("a"), NodeSpec("b")), 2)
        changing = layout.begin((NodeSpec("a"), NodeSpec("b"), NodeSpec("c")), "add", "c")
        assert (
            changing.epoch == 5
            and changing.changing
            and changing.install_order() == ["a", "b", "c"]
        )
        with pytest.raises(LayoutError, match="a change is already under way"):
            changing.begin((NodeSpec("a"),), "remove", "b")
        assert changing.commit().names == ("a", "b", "c") and changing.commit().epoch == 6
        assert changing.abort().names == ("a", "b") and not changing.abort().changing


class TestFencing:
    @pytest.mark.parametrize("rf", [1, 2, 3])
    def test_two_workers_one_adds_a_node_the_other_misses_nothing(self, rf):
        servers = Servers("r1", "r2", "r3", "r4")
        a = create(servers, "r1", "r2", "r3", replication_factor=rf)
        b = join(servers, "r1")
        keys = [f"key:{i}" for i in range(2000)]
        a.put_many({k: "v1" for k in keys})
        b.add_node(Node("r4", store=servers.stores["r4"]))
        # A still holds epoch 1: its first request is refused, it loads epoch 3, asks again
        got = a.get_many(keys)
        assert len(got) == 2000 and set(got.values()) == {"v1"}
        a.put_many({k: "v2" for k in keys})
        assert b.get_many(keys) == {k: "v2" for k in keys}
        assert a.layout == b.layout and a.layout.epoch == 3
        assert [n.name for n in a.nodes] == ["r1", "r2", "r3", "r4"]

    def test_no_store_accepts_a_call_from_an_old_epoch(self):
        servers = Servers("r1", "r2", "r3", "r4")
        a = create(servers, "r1", "r2", "r3")
        sleeper = join(servers, "r2")
        sleeper.put("k", "before")
        a.add_node(Node("r4", store=servers.stores["r4"]))
        a.remove_node("r1")
        assert a.layout.epoch == 5
        for store in servers.stores.values():
            store.accepted.clear()
        # the sleeper wakes: its calls go to the nodes of epoch 5 only, never to r1
        sleeper.put("k", "after")
        assert sleeper.get("k", consistency="all") == "after"
        assert sleeper.layout.epoch == 5 and "r1" not in [n.name for n in sleeper.nodes]
        for name, store in servers.stores.items():
            assert all(epoch == 5 for _, epoch in store.accepted), (name, store.accepted)
        assert servers.stores["r1"].accepted == []
        replicas = {n.name for n in a.get_nodes_for_key("k")}
        holding = {name for name, s in servers.stores.items() if s.get(b"k") is not None}
        assert holding == replicas

    def test_a_node_refuses_another_epoch_in_the_same_step(self):
        store = MemoryStore()
        store.swap_layout(0, 3, b"{}")
        with pytest.raises(
            FencedError, match="holds layout epoch 3, newer than the client's 2"
        ) as info:
            store.write_many([b"k"], [Record(1, "v")], epoch=2)
        assert info.value.newer and store.get(b"k") is None
        with pytest.raises(FencedError, match="older than the client's 4") as info:
            store.get_many([b"k"], epoch=4)
        assert not info.value.newer
        assert store.write_many([b"k"], [Record(1, "v")], epoch=3) == [None]
        assert store.write_many([b"j"], [Record(1, "v")]) == [None]  # epoch 0: not fenced

    def test_a_node_that_missed_a_change_is_brought_up_to_date(self):
        servers = Servers("r1", "r2", "r3", "r4")
        a = create(servers, "r1", "r2", "r3")
        behind = servers.stores["r3"]
        a.add_node(Node("r4", store=servers.stores["r4"]))
        behind.swap_layout(3, 1, a.layout.to_bytes().replace(b'"epoch":3', b'"epoch":1'))
        assert servers.layouts()["r3"] == 1  # as if it had been down during the change
        a.put_many({f"k{i}": i for i in range(100)})  # meets r3: pushes epoch 3 to it
        assert servers.layouts() == {"r1": 3, "r2": 3, "r3": 3, "r4": 3}


class TestChanges:
    def test_two_clients_adding_at_the_same_moment_one_wins(self):
        servers = Servers("r1", "r2", "r3", "x", "y")
        create(servers, "r1", "r2", "r3")
        clients = [join(servers, "r1"), join(servers, "r2")]
        barrier = threading.Barrier(2)
        outcome: dict[str, object] = {}
        # Both changes start from epoch 1: each client's first compare-and-set
        # waits until the other has read the layout and is about to swap too.
        first = servers.stores["r1"]
        swap = first.swap_layout
        racing = threading.Barrier(2)

        def swap_together(expected, epoch, data):
            if expected == 1 and racing.n_waiting < 2 and not racing.broken:
                try:
                    racing.wait(timeout=5)
                except threading.BrokenBarrierError:
                    pass
            return swap(expected, epoch, data)

        first.swap_layout = swap_together

        def add(client, name):
            barrier.wait()
            try:
                outcome[name] = client.add_node(Node(name, store=servers.stores[name]))
            except LayoutConflictError as exc:
                outcome[name] = exc

        threads = [threading.Thread(target=add, args=(c, n)) for c, n in zip(clients, "xy")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        errors = [v for v in outcome.values() if isinstance(v, LayoutConflictError)]
        assert len(outcome) == 2 and len(errors) == 1
        loser = errors[0]
        winner = "x" if isinstance(outcome["y"], LayoutConflictError) else "y"
        # met while the winner's change was under way, or after it installed a layout
        assert "another change is under way" in str(loser) or "changed the membership first" in str(
            loser
        )
        assert winner in [spec.name for spec in loser.layout.everyone()]  # the new layout
        epochs = servers.layouts()
        members = [n for n in ("r1", "r2", "r3", winner)]
        assert {epochs[n] for n in members} == {3}
        assert epochs["y" if winner == "x" else "x"] == 0  # the loser's node was never touched
        layouts = {servers.stores[n].read_layout()[1] for n in members}
        assert len(layouts) == 1
        assert Layout.from_bytes(layouts.pop()).names == ("r1", "r2", "r3", winner)

    def test_a_change_needs_every_node_up_except_one_being_removed(self):
        servers = Servers("r1", "r2", "r3", "r4")
        cluster = create(servers, "r1", "r2", "r3")
        cluster.put_many({f"k{i}": i for i in range(300)})
        down = BrokenStore.break_(servers, "r2")
        with pytest.raises(
            UnavailableError, match=r"add 'r4' needs every node .*r2 down: connection refused"
        ):
            cluster.add_node(Node("r4", store=servers.stores["r4"]))
        assert cluster.layout.epoch == 1  # nothing changed
        assert servers.stores["r4"].read_layout() == (0, None)
        assert servers.stores["r1"].read_layout()[0] == 1
        report = cluster.remove_node("r2")  # the dead node itself can go
        assert report.action == "remove" and cluster.layout.names == ("r1", "r3")
        assert report.skipped == ("r2",) and report.hinted == 0  # skipped: the removed node alone
        assert cluster.get_many([f"k{i}" for i in range(300)], consistency="all") == {
            f"k{i}": i for i in range(300)
        }
        down.fixed()

    def test_a_dead_node_whose_name_sorts_first_can_be_removed(self):
        # Issue 21, item 5: the first member by name alone decided every change, so
        # removing it while dead failed ("0 of 1 answered (r1 down) ... remove a dead
        # node first"), advice that goes in a circle.
        servers = Servers("r1", "r2", "r3", "r4")
        cluster = create(servers, "r1", "r2", "r3", "r4")
        data = {f"k{i}": i for i in range(300)}
        cluster.put_many(data, consistency="all")
        down = BrokenStore.break_(servers, "r1")
        report = cluster.remove_node("r1")
        assert report.action == "remove" and cluster.layout.names == ("r2", "r3", "r4")
        assert cluster.layout.epoch == 3 and not cluster.layout.changing
        assert {servers.stores[n].read_layout()[0] for n in ("r2", "r3", "r4")} == {3}
        assert cluster.get_many(list(data), consistency="all") == data
        other = join(servers, "r4")
        assert other.layout.names == ("r2", "r3", "r4")
        assert other.get_many(list(data), consistency="quorum") == data
        down.fixed()

    def test_a_change_still_needs_every_other_decider(self):
        servers = Servers("r1", "r2", "r3", "r4")
        cluster = create(servers, "r1", "r2", "r3", "r4")
        down = BrokenStore.break_(servers, "r1")
        with pytest.raises(UnavailableError, match="r1 down"):
            cluster.remove_node("r4")  # r1 is not the node removed: it may not be passed over
        assert {
            store.read_layout()[0] for name, store in servers.stores.items() if name != "r1"
        } == {1}
        down.fixed()

    def test_a_change_left_half_done_is_finished_by_another_client(self):
        servers = Servers("r1", "r2", "r3", "r4")
        a = create(servers, "r1", "r2", "r3", replication_factor=2)
        a.put_many({f"k{i}": i for i in range(500)})
        # a client installs the changing layout, then dies before streaming
        target = a.layout.begin((*a.layout.nodes, NodeSpec("r4")), "add", "r4")
        for name in target.install_order():
            servers.stores[name].swap_layout(1, target.epoch, target.to_bytes())
        b = join(servers, "r3")
        assert b.layout.changing
        b.put_many({f"k{i}": -i for i in range(0, 500, 2)})  # writes reach old and new replicas
        report = b.finish_change()
        assert report.action == "add" and report.node == "r4"
        assert b.layout.epoch == 3 and not b.layout.changing
        assert set(servers.layouts().values()) == {3}
        expected = {f"k{i}": (-i if i % 2 == 0 else i) for i in range(500)}
        assert b.get_many(list(expected), consistency="all") == expected
        assert a.get_many(list(expected)) == expected  # the stale client catches up
        assert b.finish_change() is None

    def test_a_change_can_be_taken_back(self):
        servers = Servers("r1", "r2", "r3", "r4")
        a = create(servers, "r1", "r2", "r3")
        target = a.layout.begin((*a.layout.nodes, NodeSpec("r4")), "add", "r4")
        for name in target.install_order():
            servers.stores[name].swap_layout(1, target.epoch, target.to_bytes())
        a.put("k", "during")
        report = a.finish_change(abort=True)
        assert report.action == "abort" and a.layout.names == ("r1", "r2", "r3")
        assert a.layout.epoch == 3 and a.get("k", consistency="all") == "during"
        assert a.repair().complete

    def test_weights_change_by_any_client(self):
        servers = Servers("r1", "r2", "r3")
        a = create(servers, "r1", "r2", "r3", replication_factor=1)
        a.put_many({f"k{i}": i for i in range(3000)})
        b = join(servers, "r1")
        b.set_weight("r1", 3.0)
        assert a.get_many([f"k{i}" for i in range(3000)]) == {f"k{i}": i for i in range(3000)}
        assert a.layout.spec("r1").weight == 3.0 and a.node("r1").weight == 3.0
        share = a.stats().share["r1"]
        assert 0.5 < share < 0.7  # about 3/5 of the keys

    def test_weights_change_in_process_too(self):
        cluster = Cluster([Node(f"n{i}") for i in range(3)], replication_factor=1)
        cluster.put_many({f"k{i}": i for i in range(3000)})
        report = cluster.set_weight("n0", 3.0)
        assert report.action == "weight" and report.moved > 0
        assert cluster.get_many([f"k{i}" for i in range(3000)]) == {f"k{i}": i for i in range(3000)}
        assert 0.5 < cluster.stats().share["n0"] < 0.7
        with pytest.raises(ValueError, match="weight must be a finite number > 0, got 0"):
            cluster.set_weight("n0", 0)


class BrokenStore:
    """Makes a named store fail every call as an unreachable server would, until fixed."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.saved = {}

    EVERY_CALL = (
        "get",
        "get_many",
        "write_many",
        "ping",
        "read_layout",
        "swap_layout",
        "count_hints",
        "keys",
        "scan_versions",
    )

    @classmethod
    def break_(cls, servers: Servers, name: str, methods=EVERY_CALL) -> BrokenStore:
        """`methods` fail from now on (by default every call: the server is cut off)."""
        broken = cls(servers.stores[name])
        for method in methods:
            broken.saved[method] = getattr(broken.store, method)

            def fail(*args, _name=name, **kwargs):
                raise StoreError("connection refused", node=_name)

            setattr(broken.store, method, fail)
        return broken

    def fixed(self) -> None:
        for method, original in self.saved.items():
            setattr(self.store, method, original)


def test_shared_needs_stores_that_keep_a_layout():
    with pytest.raises(ValueError, match=r"shared=True needs nodes whose stores keep a layout"):
        Cluster([Node("a")], shared=True)
    with pytest.raises(TypeError, match="shared must be True, False or None, got 'yes'"):
        Cluster([Node("a")], shared="yes")
    assert Cluster([Node("a")]).layout is None  # in-process: the membership stays here


class TestWritesDuringAChange:
    """Issue 21, item 4: a write acknowledged while the layout is changing must be on a write
    quorum of the old *and* of the new replica set, since a quorum read after the commit asks
    only the new one.  Before, the old set's quorum was enough and the copies to the new set
    were best effort: with r1 and the joining r4 cut off, writes to keys whose new replicas
    are r4, r1 and one other were acknowledged while only 1 of those 3 held them."""

    def changing(self) -> tuple[Servers, Cluster, list[str]]:
        servers = Servers("r1", "r2", "r3", "r4")
        a = create(servers, "r1", "r2", "r3")
        a.put_many({f"k{i}": "v0" for i in range(300)})
        target = a.layout.begin((*a.layout.nodes, NodeSpec("r4")), "add", "r4")
        for name in target.install_order():
            servers.stores[name].swap_layout(1, target.epoch, target.to_bytes())
        b = join(servers, "r2")
        assert b.layout.changing
        make = placer_factory(**target.placement_options())
        new = make({"r1": 1.0, "r2": 1.0, "r3": 1.0, "r4": 1.0})
        keys = [f"k{i}" for i in range(300)]
        cut = [k for k in keys if {"r1", "r4"} <= set(new.get_nodes(k.encode(), 3))]
        assert cut  # the ring puts some keys on r4 and r1 together
        return servers, b, cut

    def holders(self, servers: Servers, key: str, value: str, names) -> int:
        got = [servers.stores[n].get(key.encode()) for n in names]
        return sum(1 for record in got if record is not None and record[1] == value)

    def test_a_write_short_of_the_new_sets_quorum_is_not_acknowledged(self):
        servers, b, cut = self.changing()
        broken = [BrokenStore.break_(servers, name) for name in ("r1", "r4")]
        acknowledged = []
        for key in cut:
            try:
                b.put(key, "v1")
            except UnavailableError as exc:
                assert "may be applied" in str(exc)
            else:
                acknowledged.append(key)
        for fix in broken:
            fix.fixed()
        make = placer_factory(**b.layout.placement_options())
        new = make({"r1": 1.0, "r2": 1.0, "r3": 1.0, "r4": 1.0})
        short = [
            key
            for key in acknowledged
            if self.holders(servers, key, "v1", new.get_nodes(key.encode(), 3)) < 2
        ]
        assert short == []  # before: every key of `cut` was acknowledged on 1 of its 3
        assert len(acknowledged) < len(cut)

    def test_a_batch_short_of_the_new_sets_quorum_is_not_acknowledged(self):
        servers, b, cut = self.changing()
        broken = [BrokenStore.break_(servers, name) for name in ("r1", "r4")]
        with pytest.raises(UnavailableError, match="may be applied"):
            b.put_many({key: "v1" for key in cut})
        for fix in broken:
            fix.fixed()
        assert sorted(b.probe()) == ["r1", "r4"]  # back up
        b.put_many({key: "v2" for key in cut})  # all reachable again: acknowledged on both sets
        report = b.finish_change()
        assert report.action == "add" and not b.layout.changing
        assert b.get_many(cut, consistency="quorum") == {key: "v2" for key in cut}
        for key in cut:
            names = [n.name for n in b.get_nodes_for_key(key)]
            assert self.holders(servers, key, "v2", names) >= 2


class TestReadsDuringAChange:
    """A quorum read by a client still on the changing layout (e + 1) must see a write
    acknowledged by a client already on the commit (e + 2).  The commit reaches the nodes
    one after another (and may miss one for a while): a writer on e + 2 can be acknowledged
    by two of the key's new replicas while two of its old ones still hold e + 1, and a reader
    on e + 1 asked only the old replicas.  The membership-fault schedule found it over Redis
    (a quorum read 89 ms after a strong write returned the write before it)."""

    @pytest.mark.parametrize("batch", [False, True])
    def test_a_read_on_the_changing_layout_sees_a_write_under_the_commit(self, batch):
        servers = Servers("r1", "r2", "r3", "r4")
        a = create(servers, "r1", "r2", "r3")
        make = placer_factory(**a.layout.placement_options())
        old = make({"r1": 1.0, "r2": 1.0, "r3": 1.0})
        new = make({"r1": 1.0, "r2": 1.0, "r3": 1.0, "r4": 1.0})
        # a key whose new replicas include r4: `ahead`, one of its old replicas that stays,
        # will hold the commit; the other two (`behind`) still hold the changing layout
        key, ahead, behind = next(
            (k, kept[0], [n for n in names if n != kept[0]])
            for k in (f"k{i}" for i in range(1000))
            for names in [old.get_nodes(k.encode(), 3)]
            for now in [new.get_nodes(k.encode(), 3)]
            if "r4" in now
            for kept in [[n for n in names if n in now]]
        )
        a.put(key, "before")
        target = a.layout.begin((*a.layout.nodes, NodeSpec("r4")), "add", "r4")
        for name in target.install_order():
            servers.stores[name].swap_layout(1, target.epoch, target.to_bytes())
        reader = join(servers, "r1")
        assert reader.layout.changing and reader.get(key, consistency="quorum") == "before"
        # the reader cannot reach `ahead` (an asymmetric partition): its quorum of the old
        # replicas is `behind`
        next(n for n in reader.nodes if n.name == ahead).fail()
        # the commit reaches r4 and `ahead`; `behind` (one of them a new replica of the
        # key) are cut off from the writer, and still hold the changing layout
        cut = [BrokenStore.break_(servers, name) for name in behind]
        commit = target.commit()
        for name in ("r4", ahead):
            servers.stores[name].swap_layout(target.epoch, commit.epoch, commit.to_bytes())
        writer = join(servers, "r4")
        assert writer.layout.epoch == commit.epoch
        writer.put(key, "after", consistency="strong")  # acknowledged by r4 and `ahead`
        for fix in cut:
            fix.fixed()
        assert servers.layouts()[behind[0]] == servers.layouts()[behind[1]] == target.epoch
        if batch:
            assert reader.get_many([key], consistency="quorum") == {key: "after"}
        else:
            assert reader.get(key, consistency="quorum") == "after"
        for client in (a, reader, writer):
            client.close()

    def test_a_read_during_a_change_asks_a_quorum_of_each_set_and_no_more(self, monkeypatch):
        """docs/membership.md: a read on the changing layout has its level's count of the old
        and of the new replicas; a key whose replicas do not move costs nothing more, and one
        whose replicas move asks at most twice as many."""
        # no adaptive exploration: the replica it adds to 1 % of reads is not the change's
        monkeypatch.setattr("cvstore.core.reads.ADAPTIVE_EXPLORE", 0.0)
        servers = Servers("r1", "r2", "r3", "r4", "r5")
        a = create(servers, "r1", "r2", "r3", "r4")
        keys = [f"k{i}" for i in range(200)]
        a.put_many({k: "v" for k in keys})
        target = a.layout.begin((*a.layout.nodes, NodeSpec("r5")), "add", "r5")
        for name in target.install_order():
            servers.stores[name].swap_layout(
                servers.layouts()[name], target.epoch, target.to_bytes()
            )
        reader = join(servers, "r1", read_policy="adaptive")  # asks replicas in random order
        assert reader.layout.changing
        make = placer_factory(**target.placement_options())
        old = make({n: 1.0 for n in ("r1", "r2", "r3", "r4")})
        new = make({n: 1.0 for n in ("r1", "r2", "r3", "r4", "r5")})
        extra = 0
        for key in keys:
            for store in servers.stores.values():
                store.accepted.clear()
            assert reader.get(key, consistency="quorum") == "v"
            asked = {name for name, store in servers.stores.items() if store.accepted}
            before = set(old.get_nodes(key.encode(), 3))
            after = set(new.get_nodes(key.encode(), 3))
            assert len(asked & before) >= 2 and len(asked & after) >= 2, (key, asked)
            assert len(asked) == 2 if before == after else 2 <= len(asked) <= 4
            extra += len(asked) - 2
        assert extra > 0  # some reads asked an old replica that does not stay
        for client in (a, reader):
            client.close()

    def test_a_commit_waits_until_no_node_is_left_on_the_layout_before_the_change(self):
        """The other half of the same promise: a node that missed the changing layout still
        serves clients on the layout before it (e), which ask old replicas only.  If the commit
        went on without two such nodes, a client on e could read a quorum of them after a
        write under the commit.  So the commit needs every node but the one removed on e + 1
        or later, and brings those behind up to date first."""
        servers = Servers("r1", "r2", "r3", "r4")
        a = create(servers, "r1", "r2", "r3")
        a.put_many({f"k{i}": "v0" for i in range(100)})
        target = a.layout.begin((*a.layout.nodes, NodeSpec("r4")), "add", "r4")
        for name in ("r1", "r4"):  # the change's install missed r2 and r3
            servers.stores[name].swap_layout(
                servers.layouts()[name], target.epoch, target.to_bytes()
            )
        cut = [BrokenStore.break_(servers, name) for name in ("r2", "r3")]
        operator = join(servers, "r4")
        assert operator.layout == target
        with pytest.raises(
            UnavailableError,
            match=r"commit of add 'r4' needs every node .*r2 down: connection refused.*"
            r"r3 down: connection refused.*stays at epoch 2",
        ):
            operator.finish_change()
        for fix in cut:
            fix.fixed()
        assert servers.layouts() == {"r1": 2, "r2": 1, "r3": 1, "r4": 2}  # nothing committed
        # r2 and r3 still hold epoch 1; the commit brings them to 2 first, then commits
        report = operator.finish_change()
        assert report.action == "add" and servers.layouts() == {n: 3 for n in servers.stores}
        keys = [f"k{i}" for i in range(100)]
        assert a.get_many(keys, consistency="all") == {k: "v0" for k in keys}
        for client in (a, operator):
            client.close()


class TestACommitNeedsTheStreamWhole:
    """After the commit a key is read from its new replicas alone, so the commit may go on
    only once the stream read every old replica of each moving key (but the node removed)
    and wrote every copy a new replica gains.  A write acknowledged before the change may
    be on two of a key's three old replicas; a stream that read only the third, or that
    left a hint for the joining node instead of writing it, commits a key whose new
    replicas hold a quorum of the copy before.  The membership-fault schedule found it
    over Redis: an operator that believed two nodes down streamed without them, left hints,
    committed, and a quorum read 120 ms after a strong write returned the one before."""

    def setup(self, servers, **options):
        """A key whose replicas move to r4, written twice before the change: its second
        write missed one of the old replicas that stay (`short`), and its hint is not
        delivered.  Returns an operator holding the changing layout, the key, `leaving` (the
        old replica r4 replaces) and `full` (the one that stays and took both writes)."""
        a = create(servers, "r1", "r2", "r3")
        make = placer_factory(**a.layout.placement_options())
        old = make({"r1": 1.0, "r2": 1.0, "r3": 1.0})
        new = make({"r1": 1.0, "r2": 1.0, "r3": 1.0, "r4": 1.0})
        key, names, now = next(
            (k, names, now)
            for k in (f"k{i}" for i in range(1000))
            for names in [old.get_nodes(k.encode(), 3)]
            for now in [new.get_nodes(k.encode(), 3)]
            if "r4" in now
        )
        leaving = next(n for n in names if n not in now)
        full, short = (n for n in names if n in now)
        a.put(key, "before", consistency="all")
        cut = BrokenStore.break_(servers, short)
        a.put(key, "after", consistency="quorum")  # acknowledged by `leaving` and `full`
        a.close()
        cut.fixed()
        # its hint for `short` is not delivered yet (its holder cut off, say): none is
        for store in servers.stores.values():
            store.delete_hints(short, [key.encode()])
        assert servers.stores[short].get(key.encode())[1] == "before"
        assert sum(store.count_hints() for store in servers.stores.values()) == 0
        target = a.layout.begin((*a.layout.nodes, NodeSpec("r4")), "add", "r4")
        for name in target.install_order():
            servers.stores[name].swap_layout(
                servers.layouts()[name], target.epoch, target.to_bytes()
            )
        operator = join(servers, "r4", **options)
        assert operator.layout == target
        return operator, key, leaving, full

    def read_after_the_commit(self, servers, key, full):
        """The key read at quorum by a client cut off from `full`: the new replicas it asks
        are `short` and r4, which hold the write only if the stream put it there."""
        reader = join(servers, "r1")
        assert not reader.layout.changing
        next(n for n in reader.nodes if n.name == full).fail()
        try:
            return reader.get(key, consistency="quorum")
        finally:
            reader.close()

    @pytest.mark.parametrize("short_of", ["reads", "writes"])
    def test_a_commit_waits_for_every_copy_to_be_read_and_written(self, short_of):
        servers = Servers("r1", "r2", "r3", "r4")
        operator, key, leaving, full = self.setup(servers)
        if short_of == "reads":
            # the operator cannot read `leaving` and `full` (its links to them fail reads):
            # streamed from `short` alone, r4 would get 'before'
            failing = {leaving: ("get_many", "get"), full: ("get_many", "get")}
            named = full
        else:
            # the operator cannot write to r4: a hint for it would leave r4 without the write
            failing = {"r4": ("write_many",)}
            named = "r4"
        cut = [BrokenStore.break_(servers, name, calls) for name, calls in failing.items()]
        with pytest.raises(
            UnavailableError, match=rf"commit of add 'r4' needs every node .*{named} down"
        ):
            operator.finish_change()
        assert servers.layouts() == {n: 2 for n in servers.stores}  # nothing committed
        for fix in cut:
            fix.fixed()
        report = operator.finish_change()
        assert report.hinted == 0 and report.skipped == () and report.moved >= 1
        assert servers.layouts() == {n: 3 for n in servers.stores}
        # r4 holds the write itself, not through a hint someone must deliver first
        assert servers.stores["r4"].get(key.encode())[1] == "after"
        assert self.read_after_the_commit(servers, key, full) == "after"
        operator.close()

    def test_a_commit_asks_the_nodes_it_believes_down(self):
        """docs/membership.md, step 4: a suspicion may be stale (a node that failed once and
        answers again before a probe found it), so the stream asks every node it needs."""
        servers = Servers("r1", "r2", "r3", "r4")
        # no probe finds them back during the test, however slow the machine
        operator, key, leaving, full = self.setup(
            servers, probe_interval=3600.0, max_probe_interval=3600.0
        )
        cut = [BrokenStore.break_(servers, name) for name in (leaving, full)]
        with pytest.raises(UnavailableError):
            operator.get(key, consistency="all")
        for fix in cut:
            fix.fixed()
        assert {n.name for n in operator.nodes if n.suspected} == {leaving, full}
        operator.finish_change()
        assert servers.layouts() == {n: 3 for n in servers.stores}
        assert servers.stores["r4"].get(key.encode())[1] == "after"
        operator.close()
