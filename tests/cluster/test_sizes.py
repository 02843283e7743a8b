"""Value and key sizes: a documented limit, checked before any store is called.

The same limits hold in memory as over Redis (tests/redis/test_sizes_redis.py),
so a program tried in memory behaves the same on servers.
"""

from __future__ import annotations

import pytest

from cvstore import Node
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster

MiB = 1024 * 1024
LIMIT = 8 * MiB  # the default max_value_bytes
KEY_LIMIT = 64 * 1024


def make(**kwargs):
    return Cluster([Node(f"n{i}") for i in range(3)], **kwargs)


def stored(cluster) -> int:
    return sum(node.store.count() for node in cluster.nodes)


class TestValues:
    def test_a_value_at_the_limit_is_stored_and_one_byte_more_is_refused(self):
        c = make()
        c.put("at", b"x" * LIMIT)
        assert len(c.get("at", consistency="all")) == LIMIT
        with pytest.raises(
            ValueError,
            match=r"^value must be at most max_value_bytes \(8,388,608 bytes\), "
            r"got 8,388,609 bytes$",
        ):
            c.put("over", b"x" * (LIMIT + 1))
        with pytest.raises(ValueError, match="got 8,388,609 bytes"):
            c.put("over", b"x" * (LIMIT + 1), ttl=60)
        with pytest.raises(ValueError, match="got 8,388,609 bytes"):
            c["over"] = bytearray(LIMIT + 1)
        assert "over" not in c and stored(c) == 3

    def test_a_str_is_measured_as_its_utf8(self):
        c = make()
        c.put("wide", "é" * (LIMIT // 2))  # 2 bytes each: exactly the limit
        assert c.get("wide") == "é" * (LIMIT // 2)
        with pytest.raises(ValueError, match=r"got 8,388,610 bytes$"):
            c.put("wider", "é" * (LIMIT // 2 + 1))
        with pytest.raises(ValueError, match=r"got 8,388,609 bytes$"):
            c.put("long", "x" * (LIMIT + 1))
        with pytest.raises(ValueError, match=r"got a str of 16,777,217 characters$"):
            c.put("longer", "x" * (2 * LIMIT + 1))  # not encoded just to measure it
        assert stored(c) == 3

    @pytest.mark.parametrize("call", ["put_many", "update"])
    def test_a_batch_with_one_value_too_large_writes_nothing(self, call):
        c = make(max_value_bytes=1000)
        batch = {f"k{i}": "v" * 1000 for i in range(50)}
        batch["k7"] = "v" * 1001
        with pytest.raises(ValueError, match=r"^mapping\['k7'\] must be at most max_value_bytes "):
            getattr(c, call)(batch)
        assert stored(c) == 0 and len(c) == 0
        del batch["k7"]
        getattr(c, call)(batch)
        assert len(c) == 49

    def test_the_limit_is_configurable_and_checked(self):
        c = make(max_value_bytes=10)
        c.put("k", "0123456789")
        with pytest.raises(ValueError, match=r"max_value_bytes \(10 bytes\), got 11 bytes"):
            c.put("k", "0123456789a")
        assert c.get("k") == "0123456789"
        c.put("n", 10**100)  # in memory, other values have no encoded size
        c.delete("k")  # a tombstone is no value
        for bad, error in [(0, ValueError), (-1, ValueError), (2**40, ValueError),
                           (True, TypeError), ("8", TypeError), (8.0, TypeError)]:  # fmt: skip
            with pytest.raises(error, match="max_value_bytes must be"):
                make(max_value_bytes=bad)


class TestKeys:
    def test_a_key_of_64_kib_is_taken_and_one_byte_more_is_refused_by_every_call(self):
        c = make()
        c.put("k" * KEY_LIMIT, "v")
        assert c.get("k" * KEY_LIMIT) == "v"
        long = "k" * (KEY_LIMIT + 1)
        match = r"must be at most 65,536 bytes \(as UTF-8\), got 65,537 bytes"
        with pytest.raises(ValueError, match="^key " + match):
            c.put(long, "v")
        with pytest.raises(ValueError, match="^key " + match):
            c.get(long)
        with pytest.raises(ValueError, match=r"^keys\[1\] " + match):
            c.put_many({"a": "v", long: "v"})
        with pytest.raises(ValueError, match=r"^keys\[2\] " + match):
            c.get_many(["a", "b", long])
        with pytest.raises(ValueError, match="^key " + match):
            c.delete(long)
        assert stored(c) == 3
