"""cvstore: a consistent-hashing key-value store.

``HashRing`` places keys on nodes (C lookups over numpy arrays); ``Cluster``
keeps N versioned copies of each key on distinct nodes, Dynamo-style.
"""

import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from cvstore._types import Hash
from cvstore._version import __version__
from cvstore.core.levels import Level, ReadPolicy
from cvstore.errors import (
    ClusterClosedError,
    ConflictError,
    CvstoreError,
    EmptyRingError,
    FencedError,
    LayoutConflictError,
    NodeExistsError,
    NodeNotFoundError,
    StoreError,
    UnavailableError,
    UnreadableRecordError,
)

if _TYPE_CHECKING:
    from cvstore._ring import HashRing
    from cvstore.aio import AsyncCluster
    from cvstore.cluster import Cluster
    from cvstore.load import LoadTracker
    from cvstore.node import Node
    from cvstore.stores import MemoryStore
    from cvstore.stores.redis import AsyncRedisStore, RedisStore

# Imported on first use (module __getattr__, PEP 562).  The asyncio driver and
# the Redis stores are a third of the import time and most programs use
# neither, so ``import cvstore`` (and ``cvstore demo``) does not pay for them.
# The ring and the cluster (numpy among them) come on first use too, so that
# the ``cvstore`` command, which imports ``cvstore.cli`` and with it this
# package, is listening for Ctrl-C within milliseconds, not after numpy.
_LAZY = {
    "AsyncCluster": "cvstore.aio",
    "AsyncRedisStore": "cvstore.stores.redis",
    "Cluster": "cvstore.cluster",
    "HashRing": "cvstore._ring",
    "LoadTracker": "cvstore.load",
    "MemoryStore": "cvstore.stores",
    "Node": "cvstore.node",
    "RedisStore": "cvstore.stores.redis",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cvstore' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# Records of node health, hints, repair and membership go to the "cvstore"
# logger; a library adds no handler of its own (the application decides).
_logging.getLogger("cvstore").addHandler(_logging.NullHandler())

__all__ = (
    "AsyncCluster",
    "AsyncRedisStore",
    "Cluster",
    "ClusterClosedError",
    "ConflictError",
    "CvstoreError",
    "EmptyRingError",
    "FencedError",
    "Hash",
    "HashRing",
    "LayoutConflictError",
    "Level",
    "LoadTracker",
    "MemoryStore",
    "Node",
    "NodeExistsError",
    "NodeNotFoundError",
    "ReadPolicy",
    "RedisStore",
    "StoreError",
    "UnavailableError",
    "UnreadableRecordError",
    "__version__",
)
