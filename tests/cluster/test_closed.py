"""A closed cluster does nothing: every public call raises ClusterClosedError before it acts.

The calls are enumerated from the classes themselves (methods, mapping
dunders, property setters), so a method added later is caught here until it
is listed below with the arguments to call it with.  Each is made on a
cluster whose membership lives on its nodes (MemoryStores with a layout),
and the nodes' records and layout epochs must not move.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from cvstore import AsyncCluster, Cluster, ClusterClosedError, MemoryStore, Node
from cvstore.core.layout import NodeSpec

# name -> (args, kwargs): how each public call is made on a closed cluster.
CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "put": (("k0", "new"), {}),
    "get": (("k0",), {}),
    "delete": (("k0",), {}),
    "put_many": (({"k0": "new"},), {}),
    "get_many": ((["k0"],), {}),
    "update": (({"k0": "new"},), {}),
    "setdefault": (("fresh", "new"), {}),
    "pop": (("k0",), {}),
    "popitem": ((), {}),
    "clear": ((), {}),
    "keys": ((), {}),
    "items": ((), {}),
    "values": ((), {}),
    "count": ((), {}),
    "contains": (("k0",), {}),
    "add_node": ((None,), {}),  # None: a fresh node, made by the test
    "remove_node": (("n0",), {}),
    "set_weight": (("n0", 2.0), {}),
    "finish_change": ((), {"abort": True}),
    "repair": ((), {}),
    "deliver_hints": ((), {}),
    "stats": ((), {}),
    "probe": ((), {}),
    "open": ((), {}),
    "node": (("n0",), {}),
    "get_node_for_key": (("k0",), {}),
    "get_nodes_for_key": (("k0",), {}),
    "__getitem__": (("k0",), {}),
    "__setitem__": (("k0", "new"), {}),
    "__delitem__": (("k0",), {}),
    "__contains__": (("k0",), {}),
    "__iter__": ((), {}),
    "__aiter__": ((), {}),
    "__len__": ((), {}),
    "__eq__": (({},), {}),
    "__ne__": (({},), {}),
    "__enter__": ((), {}),
    "__aenter__": ((), {}),
}
# Reading what the client last held (no I/O, nothing changes); their setters raise.
REPORTING = {
    "layout",
    "nodes",
    "replication_factor",
    "ring",
    "placement",
    "placer",
    "clock",
    "read_consistency",
    "write_consistency",
    "read_policy",
    "suspected",
}
SETTERS = {"read_consistency": "one", "write_consistency": "one", "read_policy": "primary"}
# Closing (again) is fine; repr shows what is left; create/join make a new cluster.
EXEMPT = {"close", "__exit__", "__aexit__", "__repr__", "__init__", "create", "join"}


def public_calls(cls: type) -> tuple[set[str], set[str]]:
    """(callables, properties) a user can reach on an instance of `cls`."""
    calls: set[str] = set()
    props: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or klass.__module__ == "typing":
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                continue
            if isinstance(attr, property):
                props.add(name)
            elif inspect.isfunction(attr) and name not in ("__init_subclass__", "__subclasshook__"):
                calls.add(name)
    return calls, props


def test_every_public_call_is_listed():
    for cls in (Cluster, AsyncCluster):
        calls, props = public_calls(cls)
        unknown = calls - set(CALLS) - EXEMPT - REPORTING
        assert unknown == set(), f"{cls.__name__}: list how to call {sorted(unknown)} in CALLS"
        assert props - REPORTING == set(), f"{cls.__name__}: classify {sorted(props - REPORTING)}"


class Servers:
    """MemoryStores standing in for servers, with their layouts (as test_membership's)."""

    def __init__(self, *names: str) -> None:
        self.stores = {name: MemoryStore() for name in names}

    def connect(self, spec: NodeSpec) -> MemoryStore:
        return self.stores[spec.name]

    def nodes(self, *names: str) -> list[Node]:
        return [Node(name, store=self.stores[name]) for name in names]

    def snapshot(self) -> dict[str, Any]:
        return {
            name: (store.read_layout(), dict(store.scan()), store.count_hints())
            for name, store in self.stores.items()
        }


def _args(name: str, servers: Servers) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = CALLS[name]
    if name == "add_node":
        args = (Node("n3", store=servers.stores["n3"]),)
    return args, kwargs


def test_a_closed_cluster_changes_nothing():
    servers = Servers("n0", "n1", "n2", "n3")
    cluster = Cluster.create(servers.nodes("n0", "n1", "n2"), connect=servers.connect)
    cluster.put_many({f"k{i}": i for i in range(50)})
    cluster.close()
    before = servers.snapshot()
    calls, props = public_calls(Cluster)
    for name in sorted(calls - EXEMPT):
        args, kwargs = _args(name, servers)
        with pytest.raises(ClusterClosedError, match="the cluster is closed"):
            result = getattr(cluster, name)(*args, **kwargs)
            if name in ("keys", "items", "values"):  # a view: its use reads the nodes
                list(result)
        assert servers.snapshot() == before, name
    for name, value in SETTERS.items():
        old = getattr(cluster, name)
        with pytest.raises(ClusterClosedError):
            setattr(cluster, name, value)
        assert getattr(cluster, name) == old
    for name in sorted(props):
        getattr(cluster, name)  # reporting what it held still works
    assert cluster.layout.epoch == 1 and [n.name for n in cluster.nodes] == ["n0", "n1", "n2"]
    cluster.close()  # twice is fine
    assert servers.snapshot() == before


def test_a_closed_async_cluster_changes_nothing():
    servers = Servers("n0", "n1", "n2", "n3")

    async def main() -> None:
        cluster = await AsyncCluster.create(
            servers.nodes("n0", "n1", "n2"), connect=servers.connect
        )
        await cluster.put_many({f"k{i}": i for i in range(50)})
        await cluster.close()
        before = servers.snapshot()
        calls, props = public_calls(AsyncCluster)
        for name in sorted(calls - EXEMPT):
            args, kwargs = _args(name, servers)
            with pytest.raises(ClusterClosedError, match="the cluster is closed"):
                result = getattr(cluster, name)(*args, **kwargs)
                if inspect.isawaitable(result):
                    await result
                elif hasattr(result, "__anext__"):
                    async for _ in result:
                        pass
            assert servers.snapshot() == before, name
        for name, value in SETTERS.items():
            old = getattr(cluster, name)
            with pytest.raises(ClusterClosedError):
                setattr(cluster, name, value)
            assert getattr(cluster, name) == old
        for name in sorted(props):
            getattr(cluster, name)
        assert cluster.layout.epoch == 1
        await cluster.close()
        assert servers.snapshot() == before

    asyncio.run(main())
