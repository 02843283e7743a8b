"""bench/memory_per_key.py with a few keys: each side holds every item, and is measured.

The figures in the README come from the script at 1,000,000 keys; this runs its
in-interpreter measurement at 2,000 keys (under ``pytest bench``, with or
without ``--benchmark-disable``), so what the script counts is checked.
"""

from __future__ import annotations

import pytest

from bench import memory_per_key

KEYS = 2_000


@pytest.mark.parametrize("side", ["dict", "cluster"])
def test_memory_per_key_counts_a_full_structure(side):
    row = memory_per_key.measure(side, "tracemalloc", KEYS)  # checks every item is there
    assert row["keys"] == KEYS
    # a dict keeps at least a pointer to the key and one to the value; the cluster 3 records
    assert row["bytes_per_key"] >= 16 if side == "dict" else row["bytes_per_key"] > 100


def test_check_refuses_a_structure_missing_items():
    keys, values = memory_per_key.items(10)
    with pytest.raises(AssertionError):
        memory_per_key.check("dict", dict(zip(keys[:9], values[:9])), keys, values)
    built = memory_per_key.build("cluster", keys, values)
    memory_per_key.check("cluster", built, keys, values)
    built.put(keys[3], "other")
    with pytest.raises(AssertionError):
        memory_per_key.check("cluster", built, keys, values)
