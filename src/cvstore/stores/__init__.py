"""Node stores: the ``Store`` interface and its backends.

``MemoryStore`` (a dict, the default) and ``RedisStore`` (a Redis server;
redis-py is imported only when one is made) live here; a backend is one
module implementing ``Store`` from ``cvstore.stores.base``.
"""

from cvstore.stores.base import AsyncStore, Store
from cvstore.stores.memory import MemoryStore
from cvstore.stores.redis import AsyncRedisStore, RedisStore

__all__ = ("AsyncRedisStore", "AsyncStore", "MemoryStore", "RedisStore", "Store")
