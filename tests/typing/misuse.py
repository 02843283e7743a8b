"""Mistakes ``mypy --strict`` must catch in code that uses cvstore.

Each line marked ``# error: CODE`` must get exactly one mypy error with that
code, and no other line may get one (tests/test_typing.py checks both).
"""

from __future__ import annotations

from cvstore import AsyncCluster, Cluster, HashRing, Node


def misuse() -> None:
    c = Cluster[bytes]([Node("a")])
    c.put("k", b"v", consistency="quorom")  # error: arg-type
    c.get("k", consistency="bogus")  # error: call-overload
    c.put_many({"k": b"v"}, consistency="al")  # error: arg-type
    c.read_consistency = "strict"  # error: assignment
    c.read_policy = "nearest"  # error: assignment
    Cluster(write_consistency="majority")  # error: arg-type
    Cluster(read_policy="closest")  # error: arg-type
    Cluster(hash="md5")  # error: arg-type
    HashRing(["a"], hash="sha1")  # error: arg-type
    c.put("k", "a str, not bytes")  # error: arg-type
    c.put(1, b"v")  # error: arg-type
    text: str = c.get("k")  # error: assignment
    AsyncCluster(read_consistency="one!")  # error: arg-type


async def misuse_async() -> None:
    a = AsyncCluster[int]()
    await a.put("k", 1, consistency="quorum ")  # error: arg-type
    n: int = await a.get("k")  # error: assignment
