"""cvstore._records: records built in C, untracked by the collector when they can be.

The C builders are compared with their pure-Python twin, ``Record(version,
value)``; the collector's view of each record is checked against the rule
(untracked exactly when neither item is an object the collector tracks),
and a cycle through a record's value is still collected.
"""

from __future__ import annotations

import gc
import sys
import weakref
from enum import Enum

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvstore import Cluster, Node
from cvstore._records import record, records
from cvstore.core.records import TOMBSTONE, Expiring, Record


class Color(str, Enum):
    RED = "red"


class Box:
    pass


atomic_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(), st.binary()
)
any_values = st.one_of(
    atomic_values,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.tuples(st.integers(), st.lists(st.integers(), max_size=2)),
)


def tracked_by_rule(version, value):
    """The twin of the C rule: untracked when neither item is a collector-managed type."""
    return any(type(item).__flags__ & (1 << 14) for item in (version, value))  # Py_TPFLAGS_HAVE_GC


@given(st.integers(min_value=0, max_value=2**63 - 1), any_values)
def test_record_is_the_named_tuple_twin(version, value):
    made = record(version, value)
    twin = Record(version, value)
    assert type(made) is Record
    assert made == twin
    if not tracked_by_rule(version, value):
        assert hash(made) == hash(twin)
    assert made.version is version and made.value is value
    assert gc.is_tracked(made) == tracked_by_rule(version, value)


@given(st.integers(min_value=0, max_value=2**63 - 1), st.lists(any_values, max_size=20))
def test_records_is_a_list_of_records_with_one_version(version, values):
    made = records(version, values)
    assert made == [Record(version, value) for value in values]
    assert all(type(r) is Record for r in made)
    assert [gc.is_tracked(r) for r in made] == [tracked_by_rule(version, v) for v in values]


@pytest.mark.parametrize("value", ["s", b"b", 7, 2.5, None, True, 2**100])
def test_a_record_of_an_atomic_value_is_untracked(value):
    assert not gc.is_tracked(record(1, value))


@pytest.mark.parametrize(
    "value", [[1], {"a": 1}, TOMBSTONE, Expiring("v", 10), Color.RED, Box(), (1, [2])]
)
def test_a_record_of_a_container_or_an_instance_stays_tracked(value):
    assert gc.is_tracked(record(1, value))
    assert gc.is_tracked(records(1, [value])[0])


def test_a_cycle_through_a_records_value_is_collected():
    box = Box()
    box.record = record(1, box)  # box -> record -> box
    gone = weakref.ref(box)
    del box
    gc.collect()
    assert gone() is None


def test_records_reads_a_numpy_object_array_and_any_iterable():
    values = np.empty(3, dtype=object)
    values[:] = ["a", 1, [2]]
    assert records(5, values) == [Record(5, "a"), Record(5, 1), Record(5, [2])]
    assert records(5, (v for v in "xy")) == [Record(5, "x"), Record(5, "y")]
    assert records(5, []) == []


def test_no_reference_is_leaked_or_lost():
    value = "a string of its own " * 3
    version = 2**70  # a long the test owns alone
    base_value, base_version = sys.getrefcount(value), sys.getrefcount(version)
    made = records(version, [value] * 1000)
    one = record(version, value)
    assert sys.getrefcount(value) - base_value == 1001
    assert sys.getrefcount(version) - base_version == 1001
    first = made[0]
    assert sys.getrefcount(first) == 3  # the list's, the name's and the call's argument
    del first
    del made, one
    assert sys.getrefcount(value) == base_value
    assert sys.getrefcount(version) == base_version


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError):
        records(1, 5)  # not iterable
    with pytest.raises(TypeError):
        record(1)  # type: ignore[call-arg]


def test_an_in_process_cluster_keeps_records_of_plain_values_untracked():
    """The point of it: stored records of strings are outside every collection."""
    cluster = Cluster([Node(f"n{i}") for i in range(3)], replication_factor=2)
    cluster.put_many({f"k{i}": f"v{i}" for i in range(200)})
    cluster.put("one", "value")
    cluster["other"] = "value"
    cluster.put("listy", [1, 2])
    held = [rec for node in cluster.nodes for rec in node.store._data.values()]
    assert len(held) == 2 * 203
    assert sum(gc.is_tracked(rec) for rec in held) == 2  # the list value's two copies
    cluster.delete("one")
    tombstones = [
        rec for node in cluster.nodes for rec in node.store._data.values() if rec.value is TOMBSTONE
    ]
    assert tombstones and all(gc.is_tracked(rec) for rec in tombstones)
