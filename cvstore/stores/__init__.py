"""Node stores: the ``Store`` interface and its backends.

``MemoryStore`` (a dict, the default) and ``RedisStore`` (a Redis server;
redis-py is imported only when one is made) live here; a backend is one
module implementing ``Store`` from ``cvstore.stores.base``.  ``open_url``
opens a store from a node's URL with the backend that declares its scheme.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any
from urllib.parse import urlsplit as _urlsplit

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


# The backends that open URLs (each declares its ``schemes``), imported only
# when a URL is opened: a backend that opens URLs adds its (module, class) here.
_URL_BACKENDS = (("cvstore.stores.redis", "RedisStore"),)


def _url_backends() -> list[type[Store]]:
    return [getattr(_importlib.import_module(m), c) for m, c in _URL_BACKENDS]


def open_url(url: str, *, asyncio: bool = False, **options: _Any) -> "Store | AsyncStore":
    """A store for the node at `url`, made by the backend that declares the URL's scheme.

    `asyncio`: the backend's ``async_twin`` (for ``AsyncCluster``).  `options`
    go to the store's constructor.  The store's ``url`` is `url`: whoever
    opened it closes it.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    scheme = _urlsplit(url).scheme
    backends = _url_backends()
    backend = next((cls for cls in backends if scheme in cls.schemes), None)
    if backend is None:
        known = ", ".join(f"{s}://" for cls in backends for s in cls.schemes)
        raise ValueError(f"url must be a URL of a store backend ({known}), got {url!r:.80}")
    kind: type[_Any] = backend
    if asyncio:
        if backend.async_twin is None:
            raise ValueError(f"url {url!r:.80}: {backend.__name__} has no asyncio twin")
        kind = backend.async_twin
    store = kind(url, **options)
    store.url = url
    return store


__all__ = ("AsyncRedisStore", "AsyncStore", "MemoryStore", "RedisStore", "Store", "open_url")
