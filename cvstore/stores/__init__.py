"""Node stores: the ``Store`` interface and its backends.

``MemoryStore`` (a dict, the default) lives here; a backend is one module
implementing ``Store`` from ``cvstore.stores.base``.
"""

from cvstore.stores.base import Store
from cvstore.stores.memory import MemoryStore

__all__ = ("MemoryStore", "Store")
