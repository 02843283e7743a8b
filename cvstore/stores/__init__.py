"""Node stores: the ``Store`` interface and its backends.

``MemoryStore`` (a dict, the default) and ``RedisStore`` (a Redis server;
redis-py is imported only when one is made) live here; a backend is one
module implementing ``Store`` from ``cvstore.stores.base``.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from cvstore.stores.base import AsyncStore, Store
from cvstore.stores.memory import MemoryStore

if _TYPE_CHECKING:
    from cvstore.stores.redis import AsyncRedisStore, RedisStore

_LAZY = ("AsyncRedisStore", "RedisStore")  # imported on first use, as in cvstore/__init__.py


def __getattr__(name: str) -> _Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'cvstore.stores' has no attribute {name!r}")
    from cvstore.stores import redis

    value = getattr(redis, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

__all__ = ("AsyncRedisStore", "AsyncStore", "MemoryStore", "RedisStore", "Store")
