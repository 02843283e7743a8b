"""RedisStore: one node's versioned records in a Redis server.

The cluster does placement, replication and repair on the client side; a
``RedisStore`` keeps one node's records in one Redis server (or one database
of it), under a key prefix so that several clusters, or several nodes of one
cluster, can share a server.  redis-py is an optional dependency: install
``cvstore[redis]`` (hiredis is pulled in to parse replies in C).

Layout
------
Every Redis key the store uses starts with ``prefix`` (default ``cvstore:``)::

    {prefix}r:{key}      string  the record of `key` (``codec``: version, tag, payload)
    {prefix}h:{owner}    hash    hints held for node `owner`: field = key, value = record
    {prefix}m:records    string  how many records there are (kept by the script)
    {prefix}m:hints      string  how many hints there are (kept by the script)

A record is one string, so ``get_many`` reads any number of records with one
``MGET``.  One Lua script does every write (``script``); a batch is one
script call per 250 records, all calls of a batch written at once: one round
trip.  Batches are packed column by column (``resp``), and requests are sent
before their replies are read (``wire``), so the cluster's request reaches
every server before it waits.

Failures
--------
redis-py's own retries are off and both socket timeouts are ``timeout``
seconds, so a dead or hung server makes a call fail within about `timeout`
rather than after redis-py's backoff loop; the cluster decides what to do.
Every Redis or socket failure is raised as ``cvstore.StoreError`` (with
``.node`` = this store's ``name``, ``.unreachable`` telling a server that
could not be reached from one that answered with an error) from the
original exception.  A store uses at most ``max_connections`` connections
at once; a call that finds none free within ``pool_timeout`` fails with a
StoreError that is not ``unreachable``: a busy client is not a dead server.
``stats()`` reports per-store call counts, latency, errors, waits for a
connection and the bad data met.

Nothing is unpickled: values come back as bytes, str, or whatever the codec
you chose decodes, so the data in a server can never run code in the client.

Modules: ``store`` (RedisStore), ``aio`` (AsyncRedisStore, over redis.asyncio: the
same requests and replies), ``requests`` (every request and reply, no I/O), ``codec`` (records as bytes), ``script``
(the Lua script), ``wire`` (connections, sending, SCAN), ``resp`` (packing
batches), ``stats`` (counters).
"""

from cvstore.stores.redis.aio import AsyncRedisStore
from cvstore.stores.redis.codec import JSONCodec
from cvstore.stores.redis.store import DEFAULT_PREFIX, DEFAULT_TIMEOUT, RedisStore

# Declared here, where both are defined (the asyncio module builds on the sync one).
RedisStore.async_twin = AsyncRedisStore

__all__ = ("DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "AsyncRedisStore", "JSONCodec", "RedisStore")
