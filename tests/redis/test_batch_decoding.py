"""Batch reads decode their records column-wise in C, and read the same records as before.

``RedisStore.get_many`` (and the asyncio store's) decodes the usual records
(bytes, str, tombstones) in ``cvstore._records.decode_plain``; any other
reply in the batch (a record with an expiry or a codec, bytes that are not a
record) sends the whole batch through the Python decoder, which knows them
all.  A quorum read compares its replicas' records with one C-level list
comparison and looks at keys one by one only when they differ.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time

import pytest
import redis

from cvstore import AsyncRedisStore, Node, RedisStore
from cvstore.core.records import TOMBSTONE, Expiring, Record
from cvstore.stores.redis import JSONCodec
from tests.support.drivers import Cluster

BOTH_DRIVERS = True  # the cluster tests run under Cluster and AsyncCluster

VERSION = (1_733_000_000_000 << 48) | (7 << 32) | 12345  # a real-sized 96-bit version


def _both(store, keys):
    """get_many of `keys` from `store` and from an asyncio store on the same server and prefix."""
    sync = store.get_many(keys)

    async def read():
        twin = AsyncRedisStore(store.address, prefix=store.prefix, codec=store.codec)
        try:
            return await twin.get_many(keys)
        finally:
            await twin.close()

    return sync, asyncio.run(read())


def test_a_batch_of_one_version_shares_it_and_its_records_are_left_untracked(redis_store):
    keys = [b"k%d" % i for i in range(50)]
    values = [b"v%d" % i if i % 2 else f"s{i}\udc80" for i in range(50)]
    redis_store.write_many(keys, [Record(VERSION, v) for v in values])
    redis_store.write_many([b"gone"], [Record(VERSION + 1, TOMBSTONE)])
    for got in _both(redis_store, [*keys, b"gone", b"missing"]):
        assert got[:-2] == [Record(VERSION, v) for v in values]
        assert got[-2:] == [Record(VERSION + 1, TOMBSTONE), None]
        assert all(type(r) is Record for r in got[:-1])
        assert all(type(r[1]) in (bytes, str) for r in got[:-2])
        # one version object for the batch's records, not one int per record
        assert len({id(r[0]) for r in got[:-2]}) == 1
        # records of atomic values are never walked by the collector
        assert not any(gc.is_tracked(r) for r in got[:-2])


def test_a_batch_with_other_records_reads_each_as_a_single_read_does(redis_server, prefix):
    store = RedisStore(redis_server.url(), prefix=prefix, codec=JSONCodec())
    try:
        records = {
            b"bytes": Record(1, b"\x00\xffraw"),
            b"str": Record(2, "h\u00e9\udcff"),
            b"tomb": Record(3, TOMBSTONE),
            b"expiring": Record(4, Expiring("soon", 2_000_000_000_000)),
            b"codec": Record(VERSION, {"a": [1, 2]}),
            b"empty": Record(5, b""),
        }
        store.write_many(list(records), list(records.values()))
        keys = [*records, b"missing"]
        for got in _both(store, keys):
            assert got == [*records.values(), None]
            assert got == [store.get(k) for k in keys]
    finally:
        store.clear()
        store.close()


@pytest.mark.parametrize(
    "junk", [b"\x00" * 12 + b"s\xff\xfe", b"\x00" * 12 + b"?", b"short", b"\x00" * 12]
)
def test_junk_in_a_batch_of_plain_records_is_reported_not_decoded(redis_store, junk):
    from cvstore import UnreadableRecordError

    keys = [b"a", b"b", b"c"]
    redis_store.write_many(keys, [Record(VERSION, b"x")] * 3)
    client = redis.Redis.from_url(redis_store.address)
    client.set(redis_store.prefix.encode() + b"r:b", junk)
    client.close()
    with pytest.raises(UnreadableRecordError) as caught:
        redis_store.get_many(keys)
    assert caught.value.positions == [1]
    assert caught.value.records == [Record(VERSION, b"x"), None, Record(VERSION, b"x")]


class _Opaque:
    """A decoded value whose == cannot be answered (as a numpy array's cannot)."""

    def __init__(self, data: object) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        raise ValueError("ambiguous")

    __hash__ = None  # type: ignore[assignment]


class _OpaqueCodec:
    def encode(self, value: _Opaque) -> bytes:
        return json.dumps(value.data).encode()

    def decode(self, data: bytes) -> _Opaque:
        return _Opaque(json.loads(data))


def test_a_quorum_batch_read_of_values_that_cannot_be_compared(start_redis, prefix):
    servers = start_redis(3)
    nodes = [
        Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=prefix, codec=_OpaqueCodec()))
        for i, s in enumerate(servers)
    ]
    cluster = Cluster(nodes, replication_factor=3)
    try:
        keys = [f"k{i}" for i in range(40)]
        cluster.put_many({k: _Opaque(i) for i, k in enumerate(keys)})
        got = cluster.get_many(keys, consistency="quorum")
        assert [got[k].data for k in keys] == list(range(40))
    finally:
        cluster.close()
        for node in nodes:
            node.store.close()


def test_live_values_is_dict_zip_without_missing_and_deleted_records():
    from cvstore._records import live_values

    keys = ["a", "b", "c", "a", "d"]
    records = [Record(1, "x"), None, Record(2, TOMBSTONE), Record(3, "y"), (4, b"z")]
    assert live_values(keys, records, TOMBSTONE, Expiring) == {"a": "y", "d": b"z"}
    # an expiring value or anything that is not a record: the caller decides, in Python
    assert live_values(["e"], [Record(1, Expiring("v", 10))], TOMBSTONE, Expiring) is None
    assert live_values(["f"], [b"not a record"], TOMBSTONE, Expiring) is None
    assert live_values(["g", "h"], [None], TOMBSTONE, Expiring) is None


def test_a_batch_read_leaves_out_missing_deleted_and_expired_keys(start_redis, make_cluster):
    cluster = make_cluster(start_redis(3))
    cluster.put_many({"a": "1", "b": "2", "c": "3"})
    cluster.delete("b")
    cluster.put("e", "soon", ttl=0.001)
    time.sleep(0.01)  # past the expiry
    got = cluster.get_many(["a", "b", "c", "a", "missing", "e"], consistency="quorum")
    assert got == {"a": "1", "c": "3"}
