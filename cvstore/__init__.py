"""cvstore: a consistent-hashing key-value store.

``HashRing`` places keys on nodes (C lookups over numpy arrays); ``Cluster``
keeps N versioned copies of each key on distinct nodes, Dynamo-style.
"""

from cvstore._ring import HashRing
from cvstore._version import __version__
from cvstore.cluster import Cluster
from cvstore.errors import (
    CvstoreError,
    EmptyRingError,
    NodeExistsError,
    NodeNotFoundError,
    StoreError,
    UnavailableError,
)
from cvstore.node import Node
from cvstore.stores import MemoryStore, RedisStore

__all__ = (
    "Cluster",
    "CvstoreError",
    "EmptyRingError",
    "HashRing",
    "MemoryStore",
    "Node",
    "NodeExistsError",
    "NodeNotFoundError",
    "RedisStore",
    "StoreError",
    "UnavailableError",
    "__version__",
)
