"""The store contract, run against every store backend.

``STORE_FACTORIES`` is the parameter list: each entry makes a fresh, empty
store.  A backend joins the suite by appending its factory (RedisStore's can
skip itself when no server is available).
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvstore.core.records import Expiring
from cvstore.errors import FencedError, StoreError
from cvstore.stores import AsyncStore, MemoryStore, Store, open_url
from cvstore.versions import TOMBSTONE, Record

STORE_FACTORIES: list[Any] = [
    pytest.param(MemoryStore, id="memory"),
]


@pytest.fixture(params=STORE_FACTORIES)
def store(request) -> Store:
    made = request.param()
    yield made
    made.close()


class TestRecords:
    def test_missing_key_reads_none(self, store):
        assert store.get(b"nope") is None
        assert store.get_many([b"a", b"b"]) == [None, None]

    def test_put_then_get(self, store):
        assert store.put(b"k", Record(10, "v")) is True
        assert store.get(b"k") == Record(10, "v")

    def test_newer_version_replaces(self, store):
        store.put(b"k", Record(10, "old"))
        assert store.put(b"k", Record(11, "new")) is True
        assert store.get(b"k") == Record(11, "new")

    @pytest.mark.parametrize("version", [9, 10])
    def test_older_or_equal_version_is_refused(self, store, version):
        store.put(b"k", Record(10, "kept"))
        assert store.put(b"k", Record(version, "lost")) is False
        assert store.get(b"k") == Record(10, "kept")

    def test_tombstone_is_a_record_like_any_other(self, store):
        store.put(b"k", Record(10, "v"))
        assert store.put(b"k", Record(11, TOMBSTONE)) is True
        assert store.get(b"k").value is TOMBSTONE
        assert store.put(b"k", Record(10, "stale")) is False  # no resurrection
        assert store.count() == 1

    def test_big_versions_compare_as_numbers(self, store):
        small, big = (1 << 80) + 5, (1 << 95) + 1
        store.put(b"k", Record(big, "big"))
        assert store.put(b"k", Record(small, "small")) is False
        assert store.get(b"k").version == big

    def test_put_many_applies_only_newer_and_reports_which(self, store):
        store.put(b"a", Record(5, "a5"))
        store.put(b"b", Record(5, "b5"))
        applied = store.put_many(
            [(b"a", Record(6, "a6")), (b"b", Record(4, "b4")), (b"c", Record(1, "c1"))]
        )
        assert applied == [True, False, True]
        assert store.get_many([b"a", b"b", b"c"]) == [
            Record(6, "a6"),
            Record(5, "b5"),
            Record(1, "c1"),
        ]

    def test_put_many_of_nothing(self, store):
        assert store.put_many([]) == []
        assert store.put_many_columns([], []) == []

    def test_put_many_columns_is_put_many(self, store):
        store.put(b"a", Record(5, "a5"))
        assert store.put_many_columns([b"a", b"b"], [Record(4, "x"), Record(4, "b4")]) == [
            False,
            True,
        ]
        assert store.get_many([b"a", b"b"]) == [Record(5, "a5"), Record(4, "b4")]

    def test_put_many_all_newer_than_everything_stored(self, store):
        store.put_many([(b"a", Record(1, 1)), (b"b", Record(2, 2))])
        assert store.put_many([(b"a", Record(7, 7)), (b"b", Record(8, 8))]) == [True, True]
        assert store.get_many([b"a", b"b"]) == [Record(7, 7), Record(8, 8)]
        # ...and a later batch that is older for one key still loses there.
        assert store.put_many([(b"a", Record(6, 6)), (b"c", Record(9, 9))]) == [False, True]
        assert store.get(b"a") == Record(7, 7)

    def test_delete_removes_outright(self, store):
        store.put(b"k", Record(1, "v"))
        assert store.delete(b"k") is True
        assert store.delete(b"k") is False
        assert store.get(b"k") is None
        assert store.put(b"k", Record(1, "again")) is True  # nothing left to compare against

    def test_delete_many_counts_what_was_there(self, store):
        store.put_many([(b"a", Record(1, 1)), (b"b", Record(1, 1))])
        assert store.delete_many([b"a", b"b", b"zzz"]) == 2
        assert store.count() == 0

    def test_purge_many_removes_only_unchanged_versions(self, store):
        store.put_many([(b"a", Record(1, TOMBSTONE)), (b"b", Record(2, TOMBSTONE))])
        store.put(b"b", Record(3, "rewritten"))
        assert store.purge_many([(b"a", 1), (b"b", 2), (b"c", 1)]) == 1
        assert store.get(b"a") is None
        assert store.get(b"b") == Record(3, "rewritten")

    def test_scan_keys_and_count_include_tombstones(self, store):
        store.put_many([(b"a", Record(1, "x")), (b"b", Record(2, TOMBSTONE))])
        assert dict(store.scan()) == {b"a": Record(1, "x"), b"b": Record(2, TOMBSTONE)}
        assert sorted(store.keys()) == [b"a", b"b"]
        assert store.count() == 2

    def test_scan_versions_lists_versions_and_tombstones_without_values(self, store):
        assert store.scan_versions() == ([], [], [], [])
        big = (1 << 95) + 7
        store.put_many(
            [(b"a", Record(1, "x")), (b"b", Record(2, TOMBSTONE)), (b"c", Record(big, b""))]
        )
        store.delete(b"a")
        keys, versions, tombs, expires = store.scan_versions()
        assert sorted(zip(keys, versions, tombs, expires)) == [
            (b"b", 2, True, 0),
            (b"c", big, False, 0),
        ]

    def test_an_expiring_value_round_trips_and_its_expiry_is_listed(self, store):
        # (an expiry in 2096: a server drops a record once it has expired for its linger)
        store.put_many(
            [(b"e", Record(3, Expiring("soon", 4_000_000_000_123))), (b"p", Record(3, "always"))]
        )
        assert store.get(b"e") == Record(3, Expiring("soon", 4_000_000_000_123))
        keys, _versions, _tombs, expires = store.scan_versions()
        assert sorted(zip(keys, expires)) == [(b"e", 4_000_000_000_123), (b"p", 0)]
        # a later write without a ttl replaces it, expiry and all
        assert store.put(b"e", Record(4, "forever"))
        assert store.get(b"e") == Record(4, "forever")

    def test_send_then_result_is_the_call(self, store):
        pending = store.send_write_many([b"a", b"b"], [Record(2, b"x"), Record(2, b"y")])
        assert pending.result() == [None, None]
        pending = store.send_get_many([b"a", b"c", b"b"])
        assert pending.result() == [Record(2, b"x"), None, Record(2, b"y")]
        # a refused record learns the version that refused it
        assert store.send_write_many([b"a"], [Record(1, b"older")]).result() == [2]
        assert store.count() == 2
        assert store.get(b"a") == Record(2, b"x")

    def test_write_many_returns_the_refusing_version_of_each_record(self, store):
        store.put_many([(b"a", Record(5, b"x")), (b"b", Record(7, b"y"))])
        held = store.write_many(
            [b"a", b"b", b"c", b"a"],
            [Record(6, b"n"), Record(3, b"o"), Record(1, b"p"), Record(6, b"q")],
        )
        # a: applied; b: refused by 7; c: new; a again: refused by the record just applied
        assert held == [None, 7, None, 6]
        assert [store.get(k) for k in (b"a", b"b", b"c")] == [
            Record(6, b"n"),
            Record(7, b"y"),
            Record(1, b"p"),
        ]

    def test_ping_answers(self, store):
        assert store.ping() is True

    def test_values_of_many_kinds_round_trip(self, store):
        values = ["text", b"bytes", "", b"", "\u00e9\u4e2d", 0, 3.5, None, [1, 2], {"a": 1}]
        for i, value in enumerate(values):
            store.put(f"k{i}".encode(), Record(1, value))
        assert [store.get(f"k{i}".encode()).value for i in range(len(values))] == values

    def test_binary_keys(self, store):
        key = bytes(range(256))
        store.put(key, Record(1, "v"))
        assert store.get(key).value == "v"
        assert store.keys() == [key]


class TestHints:
    def test_hints_are_kept_apart_from_records(self, store):
        store.put_hints("node2", [(b"k", Record(5, "hinted"))])
        assert store.get(b"k") is None
        assert store.count() == 0
        assert list(store.scan()) == []
        assert store.keys() == []
        assert store.count_hints() == 1
        assert list(store.scan_hints()) == [("node2", b"k", Record(5, "hinted"))]

    def test_a_newer_hint_replaces_an_older_one_for_the_same_owner_and_key(self, store):
        store.put_hints("n", [(b"k", Record(5, "old"))])
        store.put_hints("n", [(b"k", Record(7, "new")), (b"j", Record(1, "j"))])
        store.put_hints("n", [(b"k", Record(6, "stale"))])
        assert sorted(store.scan_hints()) == [
            ("n", b"j", Record(1, "j")),
            ("n", b"k", Record(7, "new")),
        ]

    def test_hints_for_different_owners_are_separate(self, store):
        store.put_hints("a", [(b"k", Record(1, "for a"))])
        store.put_hints("b", [(b"k", Record(2, "for b"))])
        assert store.count_hints() == 2
        store.delete_hints("a", [b"k"])
        assert list(store.scan_hints()) == [("b", b"k", Record(2, "for b"))]

    def test_delete_hints_if_spares_a_hint_replaced_since_it_was_read(self, store):
        store.put_hints("n", [(b"k", Record(5, "read")), (b"j", Record(3, "j"))])
        store.put_hints("n", [(b"k", Record(7, "newer"))])  # lands after version 5 was read
        store.put_hints("other", [(b"k", Record(5, "for another owner"))])
        assert store.delete_hints_if("n", [(b"k", 5), (b"j", 3)]) == 1  # k was spared
        assert sorted(store.scan_hints()) == [
            ("n", b"k", Record(7, "newer")),
            ("other", b"k", Record(5, "for another owner")),
        ]
        assert store.count_hints() == 2
        assert store.delete_hints_if("n", [(b"k", 7), (b"gone", 1)]) == 0
        assert store.delete_hints_if("nobody", [(b"k", 5)]) == 0
        assert list(store.scan_hints()) == [("other", b"k", Record(5, "for another owner"))]
        assert store.count_hints() == 1

    def test_delete_hints_of_unknown_owner_or_key_is_harmless(self, store):
        store.put_hints("a", [(b"k", Record(1, 1))])
        store.delete_hints("zzz", [b"k"])
        store.delete_hints("a", [b"other"])
        assert store.count_hints() == 1

    def test_hints_survive_deleting_the_record_of_the_same_key(self, store):
        store.put(b"k", Record(1, "live"))
        store.put_hints("n", [(b"k", Record(2, "hint"))])
        store.delete(b"k")
        assert store.count_hints() == 1


class TestAbilities:
    """What a store declares it can do (``cvstore.stores.base``) is what it does."""

    def test_every_ability_is_declared_by_the_class(self, store):
        kind = type(store)
        for name in ("remote", "direct", "keeps_layout", "addressable"):
            assert isinstance(getattr(kind, name), bool), name
        assert kind.async_twin is None or issubclass(kind.async_twin, AsyncStore)
        assert isinstance(kind.schemes, tuple)
        assert isinstance(store.address, str) and isinstance(store.prefix, (str, bytes))

    def test_a_direct_store_is_in_process(self, store):
        if store.direct:
            assert not store.remote and not store.addressable and store.address == ""

    def test_a_store_that_keeps_a_layout_swaps_it_and_fences_by_its_epoch(self, store):
        if not store.keeps_layout:
            with pytest.raises(NotImplementedError):
                store.read_layout()
            return
        assert store.read_layout() == (0, None)
        assert store.swap_layout(0, 1, b"first") == (1, b"first")
        assert store.swap_layout(0, 2, b"second") == (1, b"first")  # expected 0: refused
        assert store.write_many([b"k"], [Record(5, "v")], 1) == [None]  # its epoch
        with pytest.raises(FencedError):
            store.write_many([b"k"], [Record(6, "w")], 2)
        with pytest.raises(FencedError):
            store.get_many([b"k"], 2)
        assert store.get(b"k") == Record(5, "v") and store.read_layout() == (1, b"first")

    def test_an_addressable_store_has_an_address_and_makes_siblings(self, store):
        if not store.addressable:
            assert store.address == "" and not store.prefix
            with pytest.raises(NotImplementedError):
                store.sibling("redis://127.0.0.1:6379/0", "p:")
            return
        assert store.address and "@" not in store.address  # never a credential
        prefix = store.prefix.decode() if isinstance(store.prefix, bytes) else store.prefix
        sibling = store.sibling(store.address, prefix + "sibling:")
        try:
            assert type(sibling) is type(store)
            assert (sibling.address, sibling.prefix) == (store.address, prefix + "sibling:")
            sibling.put(b"k", Record(1, "there"))
            assert store.get(b"k") is None  # another place: its data is its own
            sibling.delete(b"k")
        finally:
            sibling.close()

    def test_an_async_twin_can_do_what_the_store_can(self, store):
        twin = type(store).async_twin
        if twin is None:
            return
        for name in ("remote", "keeps_layout", "addressable"):
            assert getattr(twin, name) == getattr(type(store), name), name
        assert not twin.direct and twin.schemes == type(store).schemes


class TestThreads:
    def test_concurrent_puts_leave_the_newest_version(self, store):
        keys = [f"k{i}".encode() for i in range(50)]
        rng = random.Random(7)
        plans = [
            [(rng.choice(keys), rng.randrange(1, 10**6)) for _ in range(2000)] for _ in range(4)
        ]
        newest: dict[bytes, int] = {}
        for plan in plans:
            for key, version in plan:
                newest[key] = max(newest.get(key, 0), version)

        def work(plan):
            for i, (key, version) in enumerate(plan):
                if i % 2:
                    store.put(key, Record(version, version))
                else:
                    store.put_many([(key, Record(version, version))])

        threads = [threading.Thread(target=work, args=(plan,)) for plan in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {k: r.version for k, r in store.scan()} == newest
        assert all(r.value == r.version for _, r in store.scan())


class PythonPut(MemoryStore):
    """MemoryStore.put in Python, where a MemoryStore's own put is the compiled Table.put."""

    def put(self, key, record):
        return MemoryStore.put(self, key, record)


class TestMemoryStore:
    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from([b"a", b"b", b"c"]),
                st.integers(0, 6),
                st.sampled_from(["put", "write_many", "delete"]),
            ),
            max_size=30,
        )
    )
    def test_the_compiled_put_answers_and_stores_as_the_python_put_does(self, calls):
        compiled, python = MemoryStore(), PythonPut()
        assert compiled.put == compiled._table.put and python.put.__func__ is PythonPut.put
        for key, version, call in calls:
            record = Record(version, f"v{version}")
            answers = [
                getattr(store, call)(*((key, record) if call == "put" else ([key], [record])))
                if call != "delete"
                else store.delete(key)
                for store in (compiled, python)
            ]
            assert answers[0] == answers[1], (key, version, call)
            assert compiled._data == python._data
            assert compiled._newest == python._newest

    def test_its_lock_is_a_lock_that_a_put_waits_for(self):
        store = MemoryStore()
        lock = store._lock
        assert not lock.locked()
        with lock:
            assert lock.locked()
            done = threading.Event()

            def write():
                store.put(b"k", Record(1, "v"))
                done.set()

            writer = threading.Thread(target=write)
            writer.start()
            writer.join(0.2)  # it cannot have written: the lock is held here
            assert not done.is_set() and store.get(b"k") is None
        writer.join()
        assert done.is_set() and store.get(b"k") == Record(1, "v")
        assert lock.acquire() is True
        lock.release()
        with pytest.raises(RuntimeError, match="release unlocked lock"):
            lock.release()

    def test_values_are_kept_as_is_not_copied(self):
        store = MemoryStore()
        value = {"mutable": [1]}
        store.put(b"k", Record(1, value))
        assert store.get(b"k").value is value

    def test_is_a_store(self):
        assert isinstance(MemoryStore(), Store)

    def test_put_many_columns_needs_matching_lengths(self):
        with pytest.raises(
            ValueError, match="keys and records must have the same length, got 2 and 1"
        ):
            MemoryStore().put_many_columns([b"a", b"b"], [Record(1, 1)])

    def test_a_subclass_overriding_get_is_honoured(self):
        calls = []

        class Counting(MemoryStore):
            def get(self, key):
                calls.append(key)
                return super().get(key)

        store = Counting()
        store.put(b"k", Record(1, 1))
        store.get(b"k")
        assert calls == [b"k"]

    def test_repr_shows_sizes(self):
        store = MemoryStore()
        store.put(b"k", Record(1, 1))
        store.put_hints("n", [(b"j", Record(1, 1))])
        assert repr(store) == "MemoryStore(records=1, hints=1)"

    def test_send_reports_a_store_error_at_result(self):
        class Failing(MemoryStore):
            def get_many(self, keys):
                raise StoreError("node n1 is down", node="n1")

        pending = Failing().send_get_many([b"k"])  # the cluster reads every node's reply
        with pytest.raises(StoreError, match="n1 is down"):
            pending.result()

    def test_a_subclass_is_not_called_directly_unless_it_says_so(self):
        class Counting(MemoryStore):  # may count or fail writes: they go through write_many
            pass

        class Plain(MemoryStore):
            direct = True

        assert MemoryStore.direct and not Counting.direct and Plain.direct

    def test_a_backend_declares_nothing_it_was_not_written_to_do(self):
        class Bare(Store):  # every ability left at its default
            def get(self, key):
                return None

            def put(self, key, record):
                return True

            delete = scan = count = put_hints = scan_hints = delete_hints = get

        bare = Bare()
        assert not (bare.remote or bare.direct or bare.keeps_layout or bare.addressable)
        assert (bare.address, bare.prefix, bare.url, bare.codec) == ("", "", None, None)
        assert Bare.async_twin is None and Bare.schemes == ()
        with pytest.raises(NotImplementedError, match="Bare has no address"):
            bare.sibling("redis://127.0.0.1:6379/0", "p:")

    def test_open_url_names_the_schemes_it_knows(self):
        with pytest.raises(ValueError, match=r"url must be a URL of a store backend \(redis://"):
            open_url("http://example.com/0")
        with pytest.raises(TypeError, match="url must be a str, got int"):
            open_url(5)

    def test_a_backend_must_implement_write_many_or_put(self):
        with pytest.raises(TypeError, match="Lazy must implement write_many\\(\\) or put\\(\\)"):

            class Lazy(Store):
                def get(self, key):
                    return None

    def test_the_base_class_defaults_work_for_a_minimal_backend(self):
        class Minimal(Store):
            """Only the abstract methods: the batch and purge forms come from Store."""

            def __init__(self):
                self.data, self.hints = {}, {}

            def get(self, key):
                return self.data.get(key)

            def put(self, key, record):
                old = self.data.get(key)
                if old is not None and old.version >= record.version:
                    return False
                self.data[key] = record
                return True

            def delete(self, key):
                return self.data.pop(key, None) is not None

            def scan(self):
                return iter(list(self.data.items()))

            def count(self):
                return len(self.data)

            def put_hints(self, owner, items):
                self.hints.setdefault(owner, {}).update(items)

            def scan_hints(self):
                return iter([(o, k, r) for o, h in self.hints.items() for k, r in h.items()])

            def delete_hints(self, owner, keys):
                for k in keys:
                    self.hints.get(owner, {}).pop(k, None)

        store = Minimal()
        assert store.put_many_columns([b"a", b"b"], [Record(2, 2), Record(1, TOMBSTONE)]) == [
            True,
            True,
        ]
        assert store.get_many([b"a", b"b", b"c"]) == [Record(2, 2), Record(1, TOMBSTONE), None]
        assert sorted(store.keys()) == [b"a", b"b"]
        assert store.purge_many([(b"a", 1), (b"b", 1)]) == 1
        assert store.delete_many([b"a", b"b"]) == 1
        store.put_hints("n", [(b"k", Record(1, 1))])
        assert store.count_hints() == 1
        store.put_hints("n", [(b"k", Record(2, 2))])
        # the default: by key, only at that version
        assert store.delete_hints_if("n", [(b"k", 1)]) == 1
        assert store.count_hints() == 1
        assert store.delete_hints_if("n", [(b"k", 2)]) == 0
        assert store.count_hints() == 0
        store.put_hints("n", [(b"k", Record(1, 1))])
