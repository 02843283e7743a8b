"""cvstore: a consistent-hashing key-value store.

``HashRing`` places keys on nodes (C lookups over numpy arrays); ``Cluster``
keeps N versioned copies of each key on distinct nodes, Dynamo-style.
"""

import logging as _logging

from cvstore._ring import HashRing
from cvstore._types import Hash
from cvstore._version import __version__
from cvstore.aio import AsyncCluster
from cvstore.cluster import Cluster
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
from cvstore.node import Node
from cvstore.stores import AsyncRedisStore, MemoryStore, RedisStore

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
