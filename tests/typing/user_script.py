"""A small typed program that uses cvstore the way a service does.

tests/test_typing.py runs ``mypy --strict`` over it against the installed
package: it must pass with no error, and each ``assert_type`` states a type
the public API promises (a call that returned ``Any`` would fail it).  It
also runs as a plain program, so every line is real code.
"""

from __future__ import annotations

import asyncio
from collections.abc import ItemsView, KeysView, ValuesView
from typing import Any, assert_type

import numpy as np
from numpy.typing import NDArray

import cvstore
from cvstore import (
    AsyncCluster,
    Cluster,
    Hash,
    HashRing,
    Level,
    LoadTracker,
    MemoryStore,
    Node,
    ReadPolicy,
)


def sync_part() -> None:
    nodes = [Node(f"n{i}", store=MemoryStore()) for i in range(3)]
    level: Level = "quorum"
    with Cluster[bytes](nodes, replication_factor=3, write_consistency="all") as c:
        c.put("k", b"v", consistency=level)
        c.put(b"raw", b"w", ttl=60.0)
        assert_type(c.get("k"), bytes | None)
        assert_type(c.get("k", b""), bytes)
        assert_type(c.get("k", 0), bytes | int)
        assert_type(c["k"], bytes)
        c["x"] = b"y"
        c.put_many({"a": b"1", "b": b"2"}, consistency="one")
        c.put_many([(b"c", b"3")])
        assert_type(c.get_many(["a", "b"]), dict[str, bytes])
        assert_type(c.get_many([b"a"]), dict[bytes, bytes])
        c.update({"d": b"4"}, e=b"5")
        c.update([("f", b"6")])
        assert_type(c.setdefault("g", b"7"), bytes)
        assert_type(c.pop("g"), bytes)
        assert_type(c.pop("g", None), bytes | None)
        assert_type(c.popitem(), tuple[str | bytes, bytes])
        assert_type(c.keys(), KeysView[str | bytes])
        assert_type(c.items(), ItemsView[str | bytes, bytes])
        assert_type(c.values(), ValuesView[bytes])
        assert_type(len(c), int)
        assert_type("k" in c, bool)
        assert_type(c.ring, HashRing)
        assert_type(c.read_consistency, Level)
        assert_type(c.read_policy, ReadPolicy)
        c.read_consistency = "one"
        c.read_policy = "primary"
        assert_type(c.get_node_for_key("k"), Node)
        assert_type(c.nodes, tuple[Node, ...])
        c["k"] = b"again"  # popitem above takes any key, "k" among them
        del c["k"]
        c.clear()

    with Cluster([Node("u")]) as untyped:  # no value type given: Any, as for a bare dict
        untyped.put("k", {"any": "thing"})
        assert_type(untyped, Cluster[Any])

    kind: Hash = "ketama"
    ring = HashRing(["a", "b"], hash=kind)
    assert_type(ring.get_node("k"), str)
    assert_type(ring.lookup_many(["k", "l"]), NDArray[np.int32])
    loads = np.zeros(len(ring), dtype=np.int64)
    assert_type(ring.get_node_bounded("k", loads, 1.25), str)
    assert_type(ring.lookup_many_bounded(["k", "l"], [0] * len(ring), 1.25), NDArray[np.int32])
    tracker = LoadTracker(ring, c=1.25)
    with tracker.request("k") as node:
        assert_type(node, str)
    assert_type(tracker.acquire("k"), str)
    assert_type(tracker.loads(), dict[str, int])
    assert cvstore.__version__


async def async_part() -> None:
    async with AsyncCluster[int]([Node(f"a{i}") for i in range(3)]) as c:
        await c.put("n", 1, consistency="strong")
        assert_type(await c.get("n"), int | None)
        assert_type(await c.get("n", 0), int)
        assert_type(await c.get_many(["n"]), dict[str, int])
        assert_type(await c.items(), list[tuple[str | bytes, int]])
        assert_type(await c.pop("n", None), int | None)
        assert_type(c.ring, HashRing)
        async for key in c:
            assert_type(key, str | bytes)


if __name__ == "__main__":
    sync_part()
    asyncio.run(async_part())
