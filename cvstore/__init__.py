"""cvstore: a consistent-hashing key-value store.

``HashRing`` places keys on nodes (C lookups over numpy arrays); ``Cluster``
keeps N versioned copies of each key on distinct nodes, Dynamo-style.
"""

from cvstore._ring import HashRing
from cvstore._version import __version__
from cvstore.errors import (
    CvstoreError,
    EmptyRingError,
    NodeExistsError,
    NodeNotFoundError,
    StoreError,
    UnavailableError,
)

__all__ = (
    "CvstoreError",
    "EmptyRingError",
    "HashRing",
    "NodeExistsError",
    "NodeNotFoundError",
    "StoreError",
    "UnavailableError",
    "__version__",
)
