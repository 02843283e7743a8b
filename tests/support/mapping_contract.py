"""A cluster is a MutableMapping: the behaviours of CPython's mapping protocol tests, as our own.

CPython's ``Lib/test/mapping_tests.py`` checks a mapping type against a
reference dict (``BasicTestMappingProtocol``, and the str-keyed parts of
``TestMappingProtocol``).  These classes check the same behaviours of a
``Cluster``: each test gets ``make()`` (an empty cluster, fixture
``new_cluster``) from the module that imports them, in memory
(``tests/cluster/test_mapping.py``) or over Redis (``tests/redis/test_mapping_redis.py``).
Values are str, which every store keeps as they are.
"""

from __future__ import annotations

from collections.abc import ItemsView, KeysView, MutableMapping, ValuesView

import pytest

REFERENCE = {"1": "2", "key1": "value1", "key2": "(1, 2, 3)"}
OTHER = {"key3": "value3", "key4": "value4"}


class TestBasicMappingProtocol:
    def test_it_is_a_mutable_mapping(self, new_cluster):
        assert isinstance(new_cluster(), MutableMapping)

    def test_empty(self, new_cluster):
        c = new_cluster()
        assert not c and len(c) == 0 and list(c) == [] and c == {}
        assert list(c.keys()) == list(c.values()) == list(c.items()) == []
        assert "1" not in c and c.get("1") is None and c.get("1", 3) == 3
        with pytest.raises(KeyError):
            c["1"]

    def test_read(self, new_cluster):
        c = new_cluster()
        c.update(REFERENCE)
        assert c and len(c) == len(REFERENCE)
        assert c == REFERENCE and REFERENCE == dict(c.items())
        assert c != {**REFERENCE, "extra": "x"} and c != {}
        for key, value in REFERENCE.items():
            assert key in c and c[key] == value and c.get(key) == value
        assert "nope" not in c
        with pytest.raises(KeyError):
            c["nope"]

    def test_views(self, new_cluster):
        c = new_cluster()
        c.update(REFERENCE)
        keys, values, items = c.keys(), c.values(), c.items()
        assert isinstance(keys, KeysView) and isinstance(values, ValuesView)
        assert isinstance(items, ItemsView)
        assert set(keys) == set(REFERENCE) and len(keys) == len(REFERENCE)
        assert sorted(values) == sorted(REFERENCE.values())
        assert sorted(items) == sorted(REFERENCE.items())
        assert "key1" in keys and ("key1", "value1") in items and "value1" in values
        assert ("key1", "wrong") not in items
        c["key5"] = "five"  # views are live, as a dict's are
        assert "key5" in keys and ("key5", "five") in items and len(items) == len(REFERENCE) + 1

    def test_write(self, new_cluster):
        c = new_cluster()
        for key, value in REFERENCE.items():
            c[key] = value
            assert c[key] == value
        for key in REFERENCE:
            del c[key]
            assert key not in c
        with pytest.raises(KeyError):
            del c["key1"]
        assert len(c) == 0

    def test_equality_with_any_mapping(self, new_cluster):
        a, b = new_cluster(), new_cluster()
        a.update(REFERENCE)
        b.update(REFERENCE)
        assert a == b and a == dict(REFERENCE) and not (a != b)  # noqa: SIM202 - __ne__ too
        b["key1"] = "changed"
        assert a != b
        assert (a == 42) is False  # not a mapping: unequal, no error

    def test_update_forms(self, new_cluster):
        c = new_cluster()
        c.update(REFERENCE)
        c.update(OTHER.items())  # an iterable of pairs
        c.update(key5="five", key6="six")  # keywords
        c.update({"key7": "a"}, key7="b")  # keywords win, as in dict.update
        assert c == {**REFERENCE, **OTHER, "key5": "five", "key6": "six", "key7": "b"}

        class KeysOnly:  # any object with keys() and __getitem__
            def keys(self):
                return ["key8"]

            def __getitem__(self, key):
                return "eight"

        c.update(KeysOnly())
        assert c["key8"] == "eight"
        c.update()  # nothing
        c.update({})
        with pytest.raises(TypeError, match="mapping must be a mapping or an iterable of"):
            c.update(42)
        # as dict.update: an element of the wrong length is a ValueError, one that is not
        # iterable a TypeError, each naming the element; nothing is written
        with pytest.raises(ValueError, match=r"mapping element #1 has length 3; 2 is required"):
            c.update([("x", "y"), ("a", "b", "c")])
        with pytest.raises(ValueError, match=r"mapping element #0 has length 1; 2 is required"):
            c.update([("a",)])
        with pytest.raises(TypeError, match=r"mapping element #0 must be a \(key, value\) pair"):
            c.update([1])
        assert "x" not in c and "a" not in c
        c.update([["list", "pair"]])  # any iterable of two items is a pair, as for a dict
        assert c["list"] == "pair"
        with pytest.raises(TypeError, match="update expected at most 1 positional argument, got 2"):
            c.update({}, {})

    def test_setdefault(self, new_cluster):
        c = new_cluster()
        c.update(REFERENCE)
        assert c.setdefault("key1", "other") == "value1" and c["key1"] == "value1"
        assert c.setdefault("new", "d") == "d" and c["new"] == "d"

    def test_pop(self, new_cluster):
        c = new_cluster()
        c.update(REFERENCE)
        assert c.pop("key1") == "value1" and "key1" not in c
        assert c.pop("key1", "gone") == "gone"
        with pytest.raises(KeyError):
            c.pop("key1")
        assert len(c) == len(REFERENCE) - 1

    def test_popitem(self, new_cluster):
        c = new_cluster()
        c.update(REFERENCE)
        popped = dict(c.popitem() for _ in range(len(REFERENCE)))
        assert popped == REFERENCE and len(c) == 0
        with pytest.raises(KeyError):
            c.popitem()

    def test_clear(self, new_cluster):
        c = new_cluster()
        c.update({f"k{i}": f"v{i}" for i in range(3000)})
        c.clear()
        assert len(c) == 0 and c == {} and c.get("k1") is None
        c.clear()  # an empty cluster too
        c["after"] = "x"
        assert c == {"after": "x"}

    def test_keys_are_str_or_bytes(self, new_cluster):
        c = new_cluster()
        c[b"raw"] = "bytes key"
        assert c["raw"] == "bytes key"  # "k" and b"k" are one key; a UTF-8 key iterates as str
        assert list(c) == ["raw"]
        with pytest.raises(TypeError, match="key must be str or bytes, got int"):
            c[1] = "x"
        with pytest.raises(TypeError, match="key must be str or bytes, got tuple"):
            c.get((1, 2))


class TestBatchPaths:
    """Calls over many keys use the batch paths: one write per node, no values read to clear."""

    def test_update_of_many_items_is_one_batch_write(self, new_cluster, counted):
        c = new_cluster()
        calls = counted(c)
        c.update({f"k{i}": f"v{i}" for i in range(20_000)})
        assert calls["write_many"] <= 2 * len(
            c.nodes
        )  # one per node (in slices of 10,000 to servers)
        assert len(c) == 20_000

    def test_clear_reads_no_values(self, new_cluster, counted):
        c = new_cluster()
        c.update({f"k{i}": f"v{i}" for i in range(5000)})
        calls = counted(c)
        c.clear()
        assert calls["get_many"] == 0 and calls["get"] == 0
        assert len(c) == 0

    def test_popitem_does_not_scan_per_pop(self, new_cluster, counted):
        c = new_cluster()
        c.update({f"k{i}": f"v{i}" for i in range(300)})
        calls = counted(c)
        for _ in range(300):
            c.popitem()
        assert calls["scan_versions"] <= 2 * len(c.nodes)  # one scan of every node, and a check
        assert len(c) == 0
