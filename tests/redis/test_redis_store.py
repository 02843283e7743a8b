"""RedisStore against real redis-server processes: values, versions, batches, hints, failures."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvstore.errors import StoreError, UnreadableRecordError
from cvstore.stores.base import Store
from cvstore.stores.redis import JSONCodec, RedisStore
from cvstore.stores.redis.script import SCRIPT_BATCH as _SCRIPT_BATCH
from cvstore.versions import TOMBSTONE, Record

try:
    import redis
except ImportError:  # pragma: no cover - depends on the environment
    if sys.modules["redis_servers"].redis_required():
        raise
    pytest.skip("redis-py is not installed", allow_module_level=True)

HUNG_BOUND = 5.0  # seconds: "does not hang", far above the 0.5 s timeout


def commandstats(client) -> dict[str, int]:
    """Server-side call counts per command (INFO commandstats)."""
    info = client.info("commandstats")
    return {name[len("cmdstat_") :]: v["calls"] for name, v in info.items()}


def calls_of(client, command: str, action) -> int:
    before = commandstats(client).get(command, 0)
    action()
    return commandstats(client).get(command, 0) - before


# --------------------------------------------------------------- values


class TestValues:
    @pytest.mark.parametrize(
        "value",
        [
            b"",
            b"plain",
            b"\x00\xff\x00 binary\r\n",
            b"\x00" * 12 + b"t looks like a tombstone",
            "",
            "text",
            "unicode: \u00e9\u4e2d\U0001f600",
            "lone surrogate \ud800 survives",
            "b" * 100_000,
        ],
    )
    def test_bytes_and_str_round_trip_with_type(self, redis_store, value):
        assert redis_store.put(b"k", Record(7, value))
        got = redis_store.get(b"k")
        assert got == Record(7, value)
        assert type(got.value) is type(value)

    def test_subclasses_come_back_as_bytes_and_str(self, redis_store):
        class Name(str):
            pass

        class Blob(bytes):
            pass

        redis_store.put_many([(b"s", Record(1, Name("n"))), (b"b", Record(1, Blob(b"x")))])
        s, b = redis_store.get_many([b"s", b"b"])
        assert (type(s.value), s.value) == (str, "n")
        assert (type(b.value), b.value) == (bytes, b"x")

    @pytest.mark.parametrize("value", [1, 2.5, None, [1], {"a": 1}, bytearray(b"x"), True])
    def test_other_types_need_a_codec(self, redis_store, value):
        with pytest.raises(TypeError, match=rf"got {type(value).__name__}; pass codec="):
            redis_store.put(b"k", Record(1, value))
        with pytest.raises(TypeError, match="pass codec="):
            redis_store.put_many([(b"ok", Record(1, "fine")), (b"k", Record(1, value))])
        assert redis_store.get_many([b"k", b"ok"]) == [None, None]  # nothing half-written
        assert redis_store.count() == 0

    def test_json_codec_round_trips(self, redis_server, prefix):
        store = RedisStore(redis_server.url(), prefix=prefix, codec=JSONCodec())
        values = {b"d": {"a": [1, 2.5, None, True]}, b"i": 42, b"n": None, b"s": "still str"}
        store.put_many([(k, Record(1, v)) for k, v in values.items()])
        assert {k: r.value for k, r in store.scan()} == values
        assert type(store.get(b"s").value) is str
        store.clear()

    def test_codec_record_without_codec_is_refused_not_guessed(self, redis_server, prefix):
        with RedisStore(redis_server.url(), prefix=prefix, codec=JSONCodec()) as writer:
            writer.put(b"k", Record(1, {"x": 1}))
        with RedisStore(redis_server.url(), prefix=prefix) as reader:
            with pytest.raises(TypeError, match="written with a codec; pass the same codec="):
                reader.get(b"k")
            reader.clear()

    def test_codec_must_return_bytes(self, redis_store, redis_server, prefix):
        class Bad:
            def encode(self, value):
                return "text, not bytes"

            def decode(self, data):
                return data

        store = RedisStore(redis_server.url(), prefix=prefix, codec=Bad())
        with pytest.raises(TypeError, match="codec.encode must return bytes, got str"):
            store.put(b"k", Record(1, 5))

    def test_codec_without_methods_is_refused(self, redis_server):
        with pytest.raises(TypeError, match="codec must have encode"):
            RedisStore(redis_server.url(), codec=object())

    def test_nothing_is_unpickled(self, redis_store):
        import pickle

        payload = pickle.dumps({"a": 1})
        redis_store.put(b"k", Record(1, payload))
        assert redis_store.get(b"k").value == payload  # bytes back, not an object

    def test_str_and_bytes_keys_are_the_same_key(self, redis_store):
        redis_store.put("k\u00e9", Record(1, "v"))
        assert redis_store.get("k\u00e9".encode()) == Record(1, "v")
        with pytest.raises(TypeError, match="key must be bytes or str, got int"):
            redis_store.get(5)


# ------------------------------------------------------------- versions


class TestVersions:
    def test_put_applies_only_strictly_newer(self, redis_store):
        assert redis_store.put(b"k", Record(10, "a")) is True
        assert redis_store.put(b"k", Record(10, "same version")) is False
        assert redis_store.put(b"k", Record(9, "older")) is False
        assert redis_store.get(b"k") == Record(10, "a")
        assert redis_store.put(b"k", Record(11, "b")) is True
        assert redis_store.get(b"k") == Record(11, "b")

    def test_tombstones_are_records(self, redis_store):
        redis_store.put(b"k", Record(5, "v"))
        assert redis_store.put(b"k", Record(4, TOMBSTONE)) is False
        assert redis_store.put(b"k", Record(6, TOMBSTONE)) is True
        got = redis_store.get(b"k")
        assert got == Record(6, TOMBSTONE) and got.deleted
        # a late write of an older value cannot resurrect the key
        assert redis_store.put(b"k", Record(5, "late")) is False
        assert redis_store.put_many([(b"k", Record(3, "later still"))]) == [False]
        assert redis_store.get(b"k").value is TOMBSTONE
        assert redis_store.count() == 1  # a tombstone counts as a record

    def test_halves_of_the_version_compare_correctly(self, redis_store):
        # the script compares two 48-bit halves; cross the boundary both ways
        lo_max, hi_one = (1 << 48) - 1, 1 << 48
        assert redis_store.put(b"k", Record(lo_max, "lo"))
        assert redis_store.put(b"k", Record(hi_one, "hi"))
        assert not redis_store.put(b"k", Record(lo_max, "lo again"))
        assert redis_store.put(b"k", Record(hi_one + 1, "hi+1"))
        top = (1 << 96) - 1
        assert redis_store.put(b"k", Record(top, "top"))
        assert not redis_store.put(b"k", Record(top - 1, "below top"))
        assert redis_store.get(b"k") == Record(top, "top")

    @pytest.mark.parametrize(
        ("version", "error", "match"),
        [
            (-1, ValueError, r"record version must be in \[0, 2\*\*96\), got -1"),
            (1 << 96, ValueError, "got 79228162514264337593543950336"),
            (1.0, TypeError, "record version must be int, got float"),
            (True, TypeError, "record version must be int, got bool"),
            ("1", TypeError, "record version must be int, got str"),
        ],
    )
    def test_bad_versions_are_refused(self, redis_store, version, error, match):
        with pytest.raises(error, match=match):
            redis_store.put(b"k", Record(version, "v"))
        assert redis_store.get(b"k") is None

    @settings(max_examples=40, deadline=None)
    @given(
        ops=st.lists(
            st.tuples(
                st.sampled_from([b"a", b"b", b"c"]),
                st.integers(0, (1 << 96) - 1) | st.integers(0, 50),
                st.sampled_from(["x", b"y", TOMBSTONE]),
            ),
            max_size=30,
        ),
        batch=st.booleans(),
    )
    def test_matches_a_last_write_wins_model(self, redis_server, ops, batch):
        store = RedisStore(redis_server.url(), prefix="hypothesis:lww:")
        store.clear()
        model: dict[bytes, Record] = {}
        expected_flags = []
        for key, version, value in ops:
            newer = key not in model or version > model[key].version
            expected_flags.append(newer)
            if newer:
                model[key] = Record(version, value)
        if batch:
            flags = store.put_many([(k, Record(v, x)) for k, v, x in ops])
        else:
            flags = [store.put(k, Record(v, x)) for k, v, x in ops]
        assert flags == expected_flags
        assert dict(store.scan()) == model
        assert store.count() == len(model)
        store.clear()
        store.close()


# -------------------------------------------------------------- batches


class TestBatches:
    def test_put_many_flags_follow_each_record(self, redis_store):
        redis_store.put(b"old", Record(5, "kept"))
        flags = redis_store.put_many(
            [
                (b"new", Record(1, "n")),
                (b"old", Record(4, "stale")),
                (b"dup", Record(2, "first")),
                (b"dup", Record(1, "older than first")),
                (b"dup", Record(3, "newest")),
                (b"tomb", Record(1, TOMBSTONE)),
            ]
        )
        assert flags == [True, False, True, False, True, True]
        assert redis_store.get_many([b"new", b"old", b"dup", b"tomb", b"none"]) == [
            Record(1, "n"),
            Record(5, "kept"),
            Record(3, "newest"),
            Record(1, TOMBSTONE),
            None,
        ]
        assert redis_store.count() == 4

    def test_repeated_keys_across_a_long_batch(self, redis_store):
        # a key repeats within and across the script calls (_SCRIPT_BATCH records each)
        items = []
        for i in range(2400):
            items.append((b"k%d" % (i % 700), Record(i % 1100, f"v{i}")))
        model: dict[bytes, Record] = {}
        expected = []
        for key, record in items:
            newer = key not in model or record.version > model[key].version
            expected.append(newer)
            if newer:
                model[key] = record
        assert redis_store.put_many(items) == expected
        assert dict(redis_store.scan()) == model
        assert redis_store.count() == 700

    @pytest.mark.parametrize(
        "values",
        [
            [b"a", b"", b"\x00" * 12 + b"t", b"x" * 5000],
            ["a", "", "lone surrogate \ud800", "\u00e9\u4e2d"],
            [b"a", "b", b"c"],  # mixed: the per-record path
            [b"a", TOMBSTONE, "c"],
            [bytearray(b"sub"), b"b"],  # a bytes-like that is not bytes
        ],
    )
    def test_columns_of_one_version_round_trip_with_types(self, redis_store, values):
        # a cluster batch: one version for every key (the head is built once)
        keys = [b"c%d" % i for i in range(len(values))]
        if any(type(v) is bytearray for v in values):
            with pytest.raises(TypeError):
                redis_store.put_many_columns(keys, [Record(7, v) for v in values])
            return
        assert redis_store.put_many_columns(keys, [Record(7, v) for v in values]) == [True] * len(
            values
        )
        got = redis_store.get_many(keys)
        assert got == [Record(7, v) for v in values]
        assert [type(r.value) for r in got] == [type(v) for v in values]
        assert all(type(r) is Record for r in got)
        # not newer: refused, the stored records stay
        assert redis_store.put_many_columns(keys, [Record(7, b"z") for _ in values]) == [
            False
        ] * len(values)
        assert redis_store.get_many(keys) == got

    def test_columns_of_one_version_with_repeats_and_str_keys(self, redis_store):
        redis_store.put(b"old", Record(9, b"kept"))
        keys = [b"a", "b", b"old", b"a"]
        flags = redis_store.put_many_columns(keys, [Record(5, b"v%d" % i) for i in range(4)])
        assert flags == [True, True, False, False]
        assert redis_store.get_many([b"a", b"b", b"old"]) == [
            Record(5, b"v0"),
            Record(5, b"v1"),
            Record(9, b"kept"),
        ]

    @given(
        stored=st.dictionaries(
            st.sampled_from([b"a", b"b", b"c", b"d"]),
            st.integers(0, (1 << 96) - 1) | st.integers(0, 4) | st.just((7 << 48) | 5),
        ),
        version=st.integers(0, (1 << 96) - 1) | st.integers(0, 4) | st.just((7 << 48) | 5),
        as_str=st.booleans(),
    )
    def test_one_version_columns_match_a_model(self, redis_server, stored, version, as_str):
        # the script reads a one-version batch's version once, from its own
        # argument: it must compare exactly as record by record would
        store = RedisStore(redis_server.url(), prefix="hypothesis:one:")
        store.clear()
        store.put_many([(k, Record(v, b"old")) for k, v in stored.items()])
        keys = [b"a", b"b", b"c", b"d"]
        values = ["new"] * 4 if as_str else [b"new"] * 4
        flags = store.put_many_columns(keys, [Record(version, x) for x in values])
        assert flags == [k not in stored or version > stored[k] for k in keys]
        expected = [
            Record(version, x) if newer else Record(stored[k], b"old")
            for k, x, newer in zip(keys, values, flags)
        ]
        assert store.get_many(keys) == expected
        store.clear()
        store.close()

    def test_columns_refuse_bad_versions(self, redis_store):
        for version in (-1, 1 << 96, True, 1.0):
            with pytest.raises((TypeError, ValueError)):
                redis_store.put_many_columns([b"a", b"b"], [Record(version, b"x")] * 2)
        assert redis_store.get_many([b"a", b"b"]) == [None, None]

    def test_purge_many_removes_only_unchanged_versions(self, redis_store):
        redis_store.put_many(
            [(b"a", Record(5, TOMBSTONE)), (b"b", Record(5, "v")), (b"c", Record(1, "c"))]
        )
        redis_store.put(b"b", Record(6, "rewritten after the caller looked"))
        assert redis_store.purge_many([(b"a", 5), (b"b", 5), (b"c", 2), (b"missing", 1)]) == 1
        assert redis_store.get_many([b"a", b"b", b"c"]) == [
            None,
            Record(6, "rewritten after the caller looked"),
            Record(1, "c"),
        ]
        assert redis_store.count() == 2
        with pytest.raises(ValueError, match="record version must be in"):
            redis_store.purge_many([(b"b", -6)])

    def test_keys_lists_every_key_without_values(self, redis_store):
        expected = {b"k%d" % i for i in range(2500)} | {b"tomb"}
        redis_store.put_many([(k, Record(1, "v")) for k in expected - {b"tomb"}])
        redis_store.put(b"tomb", Record(2, TOMBSTONE))
        redis_store.put_hints("n2", [(b"hinted only", Record(1, "h"))])
        keys = redis_store.keys()
        assert len(keys) == len(expected) and set(keys) == expected
        assert calls_of(redis_store.client, "mget", redis_store.keys) == 0

    def test_empty_batches(self, redis_store):
        assert redis_store.put_many([]) == []
        assert redis_store.get_many([]) == []
        assert redis_store.delete_many([]) == 0
        assert redis_store.purge_many([]) == 0
        assert redis_store.keys() == []
        redis_store.put_hints("n2", [])
        redis_store.delete_hints("n2", [])
        assert redis_store.count() == redis_store.count_hints() == 0

    def test_put_many_is_one_script_call_per_script_batch(self, redis_store):
        items = [(b"k%d" % i, Record(1, b"v%d" % i)) for i in range(2500)]
        client = redis_store.client
        evals = calls_of(client, "evalsha", lambda: redis_store.put_many(items))
        assert evals == math.ceil(2500 / _SCRIPT_BATCH)  # not one per record
        assert calls_of(client, "set", lambda: None) == 0
        assert redis_store.count() == 2500
        assert redis_store.get_many([k for k, _ in items]) == [r for _, r in items]

    def test_get_many_is_one_mget(self, redis_store):
        keys = [b"k%d" % i for i in range(1000)]
        redis_store.put_many([(k, Record(1, k)) for k in keys])
        client = redis_store.client
        before = commandstats(client)
        records = redis_store.get_many(keys + [b"missing"])
        after = commandstats(client)
        assert after.get("mget", 0) - before.get("mget", 0) == 1
        assert after.get("get", 0) - before.get("get", 0) == 0
        assert [r.value for r in records[:-1]] == keys and records[-1] is None

    def test_get_many_beyond_one_mget(self, redis_store):
        keys = [b"%d" % i for i in range(25_000)]
        redis_store.put_many([(k, Record(2, k)) for k in keys])
        got = redis_store.get_many(keys)
        assert [r.value for r in got] == keys

    def test_send_sends_now_and_result_reads_the_reply(self, redis_server, prefix):
        # the cluster sends a batch to every node before reading any reply:
        # the request must reach the server when sent, not when read
        store = RedisStore(redis_server.url(), prefix=prefix)
        watcher = redis.Redis(port=redis_server.port)
        pending = store.send_write_many([b"a", b"b"], [Record(3, b"x"), Record(3, "y")])
        deadline = time.monotonic() + HUNG_BOUND
        while watcher.exists(prefix.encode() + b"r:b") == 0:
            assert time.monotonic() < deadline, "the write did not reach the server before result()"
            time.sleep(0.01)
        assert pending.result() == [None, None]
        assert store.send_get_many([b"b", b"z", b"a"]).result() == [
            Record(3, "y"),
            None,
            Record(3, b"x"),
        ]
        store.clear()
        store.close()
        watcher.close()

    def test_sent_batches_are_read_in_any_order(self, redis_server, prefix):
        stores = [RedisStore(redis_server.url(), prefix=f"{prefix}{i}:") for i in range(3)]
        puts = [
            s.send_write_many([b"k%d" % j for j in range(50)], [Record(i + 1, b"v")] * 50)
            for i, s in enumerate(stores)
        ]
        assert [pending.result() for pending in reversed(puts)] == [[None] * 50] * 3
        gets = [s.send_get_many([b"k0", b"k49"]) for s in stores]
        assert [pending.result() for pending in reversed(gets)] == [
            [Record(i + 1, b"v")] * 2 for i in reversed(range(3))
        ]
        for s in stores:
            s.clear()
            s.close()

    def test_single_connection_client_can_send_several_batches(self, redis_server, prefix):
        client = redis.Redis(port=redis_server.port, single_connection_client=True)
        store = RedisStore(client, prefix=prefix)
        put = store.send_write_many([b"a"], [Record(1, b"x")])
        get = store.send_get_many([b"a"])
        assert get.result() == [Record(1, b"x")] and put.result() == [None]
        store.clear()
        client.close()

    def test_a_failed_send_reports_at_result(self, start_redis, prefix):
        (server,) = start_redis(1)
        store = RedisStore(server.url(), prefix=prefix, name="r1")
        store.put(b"k", Record(1, b"v"))
        server.kill()
        pending = store.send_get_many([b"k"])  # no exception yet: the cluster reads every node
        with pytest.raises(StoreError, match="r1") as info:
            pending.result()
        assert info.value.unreachable
        pending = store.send_write_many([b"k"], [Record(2, b"w")])
        with pytest.raises(StoreError):
            pending.result()
        assert store.stats()["errors"] == 2
        store.close()

    def test_an_error_reply_mid_request_leaves_the_connection_in_step(self, redis_store, prefix):
        # three commands in one request; the second one fails on the server:
        # the third reply must still be read, or the next command would get it
        from cvstore.stores.redis.requests import command

        client = redis_store.client
        text = prefix.encode() + b"text"
        client.set(text, b"not a number")
        with pytest.raises(StoreError, match="not an integer") as info:
            redis_store._wire.call(
                "test",
                [command(b"SET", text + b"2", b"1"), command(b"INCR", text), command(b"GET", text)],
            )
        assert not info.value.unreachable  # the server answered: an error reply
        assert "not an integer" in info.value.reason
        for i in range(5):  # every pooled connection answers its own commands
            redis_store.put(b"k%d" % i, Record(4, b"v%d" % i))
            assert redis_store.get_many([b"k%d" % i, b"none"]) == [Record(4, b"v%d" % i), None]
            assert redis_store.count() == i + 1
        assert client.get(text + b"2") == b"1"  # the first command ran

    def test_delete_and_delete_many(self, redis_store):
        redis_store.put_many([(b"k%d" % i, Record(1, "v")) for i in range(1500)])
        assert redis_store.delete(b"k0") is True
        assert redis_store.delete(b"k0") is False
        assert (
            redis_store.delete_many([b"k%d" % i for i in range(1, 1400)] + [b"k0", b"nope"]) == 1399
        )
        assert redis_store.count() == 100
        assert sorted(k for k, _ in redis_store.scan()) == sorted(
            b"k%d" % i for i in range(1400, 1500)
        )

    def test_concurrent_writers_keep_the_newest(self, redis_store):
        keys = [b"k%d" % i for i in range(200)]

        def writer(offset: int) -> None:
            for round_ in range(10):
                version = round_ * 10 + offset
                redis_store.put_many([(k, Record(version, f"w{offset}")) for k in keys])

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        assert redis_store.get_many(keys) == [Record(93, "w3")] * len(keys)
        assert redis_store.count() == len(keys)


# ---------------------------------------------------- scan and prefixes


class TestScanAndPrefix:
    def test_scan_sees_every_record_and_tombstone(self, redis_store):
        expected = {b"k%d" % i: Record(i + 1, f"v{i}") for i in range(3000)}
        expected[b"gone"] = Record(9, TOMBSTONE)
        redis_store.put_many(list(expected.items()))
        seen = dict(redis_store.scan())
        assert seen == expected
        assert redis_store.count() == len(expected)

    def test_scan_does_not_use_keys(self, redis_store):
        redis_store.put(b"k", Record(1, "v"))
        client = redis_store.client
        before = commandstats(client)
        assert list(redis_store.scan()) == [(b"k", Record(1, "v"))]
        after = commandstats(client)
        assert after.get("keys", 0) == before.get("keys", 0)
        assert after["scan"] > before.get("scan", 0)

    def test_two_prefixes_share_a_server(self, redis_server):
        a = RedisStore(redis_server.url(), prefix="appA:")
        b = RedisStore(redis_server.url(), prefix="appB:")
        try:
            a.put(b"k", Record(1, "from a"))
            b.put(b"k", Record(1, "from b"))
            b.put(b"only-b", Record(1, "b"))
            a.put_hints("n", [(b"k", Record(1, "hint a"))])
            assert a.get(b"k").value == "from a" and b.get(b"k").value == "from b"
            assert dict(a.scan()) == {b"k": Record(1, "from a")}
            assert a.count() == 1 and b.count() == 2
            assert b.count_hints() == 0 and list(b.scan_hints()) == []
            assert set(a.client.scan_iter(match=b"app[AB]:*")) == {
                b"appA:r:k",
                b"appA:h:n",
                b"appA:m:records",
                b"appA:m:hints",
                b"appB:r:k",
                b"appB:r:only-b",
                b"appB:m:records",
            }
            a.clear()
            assert a.count() == 0 and b.get(b"k").value == "from b"
        finally:
            a.clear()
            b.clear()

    def test_glob_characters_in_prefix_are_literal(self, redis_server):
        odd = RedisStore(redis_server.url(), prefix="a*[b]?\\:")
        plain = RedisStore(redis_server.url(), prefix="aX[b]Y\\:")  # matches the unescaped glob
        try:
            odd.put(b"k", Record(1, "odd"))
            plain.put(b"k", Record(1, "plain"))
            assert dict(odd.scan()) == {b"k": Record(1, "odd")}
            assert dict(plain.scan()) == {b"k": Record(1, "plain")}
        finally:
            odd.clear()
            plain.clear()

    def test_records_live_under_the_prefix_in_the_documented_layout(self, redis_store, prefix):
        redis_store.put(b"k", Record(0xABC, "v"))
        redis_store.put(b"t", Record(2, TOMBSTONE))
        redis_store.put_hints("node2", [(b"k", Record(3, b"h"))])
        raw = redis_store.client
        p = prefix.encode()
        assert raw.get(p + b"r:k") == (0xABC).to_bytes(12, "big") + b"sv"
        assert raw.get(p + b"r:t") == (2).to_bytes(12, "big") + b"t"
        assert raw.hgetall(p + b"h:node2") == {b"k": (3).to_bytes(12, "big") + b"bh"}
        assert raw.get(p + b"m:records") == b"2" and raw.get(p + b"m:hints") == b"1"


# ---------------------------------------------------------------- hints


class TestHints:
    def test_hints_are_apart_from_records(self, redis_store):
        redis_store.put(b"k", Record(1, "live"))
        redis_store.put_hints("n2", [(b"k", Record(5, "for n2")), (b"x", Record(2, TOMBSTONE))])
        redis_store.put_hints("n3", [(b"k", Record(6, b"for n3"))])
        assert redis_store.get(b"k") == Record(1, "live")
        assert dict(redis_store.scan()) == {b"k": Record(1, "live")}
        assert redis_store.count() == 1
        assert sorted(redis_store.scan_hints()) == [
            ("n2", b"k", Record(5, "for n2")),
            ("n2", b"x", Record(2, TOMBSTONE)),
            ("n3", b"k", Record(6, b"for n3")),
        ]
        assert redis_store.count_hints() == 3

    def test_a_hint_is_replaced_only_by_a_newer_one(self, redis_store):
        redis_store.put_hints("n2", [(b"k", Record(5, "v5"))])
        redis_store.put_hints("n2", [(b"k", Record(4, "v4")), (b"k", Record(5, "v5 again"))])
        assert list(redis_store.scan_hints()) == [("n2", b"k", Record(5, "v5"))]
        redis_store.put_hints("n2", [(b"k", Record(6, TOMBSTONE))])
        assert list(redis_store.scan_hints()) == [("n2", b"k", Record(6, TOMBSTONE))]
        assert redis_store.count_hints() == 1

    def test_delete_hints(self, redis_store):
        redis_store.put_hints("n2", [(b"k%d" % i, Record(1, "h")) for i in range(2100)])
        redis_store.put_hints("n3", [(b"k0", Record(1, "h"))])
        redis_store.delete_hints("n2", [b"k%d" % i for i in range(2050)] + [b"never"])
        assert redis_store.count_hints() == 51
        assert sorted(k for o, k, _ in redis_store.scan_hints() if o == "n2") == sorted(
            b"k%d" % i for i in range(2050, 2100)
        )
        redis_store.delete_hints("n3", [b"k0"])
        assert [o for o, _, _ in redis_store.scan_hints()].count("n3") == 0

    def test_owner_must_be_a_name(self, redis_store):
        with pytest.raises(TypeError, match="owner must be a non-empty str, got ''"):
            redis_store.put_hints("", [(b"k", Record(1, "v"))])
        with pytest.raises(TypeError, match="owner must be a non-empty str, got 3"):
            redis_store.delete_hints(3, [b"k"])

    def test_hints_survive_the_client_process(self, redis_server, prefix):
        code = textwrap.dedent(
            f"""
            from cvstore.stores.redis import RedisStore
            from cvstore.versions import Record, TOMBSTONE
            store = RedisStore({redis_server.url()!r}, prefix={prefix!r})
            store.put_hints("n2", [(b"k", Record(7, "held")), (b"d", Record(8, TOMBSTONE))])
            store.close()
            """
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        store = RedisStore(redis_server.url(), prefix=prefix)
        assert sorted(store.scan_hints()) == [
            ("n2", b"d", Record(8, TOMBSTONE)),
            ("n2", b"k", Record(7, "held")),
        ]
        assert store.count_hints() == 2
        store.clear()


# ------------------------------------------------- connecting and closing


class TestConnecting:
    def test_url_with_db_number(self, redis_server, prefix):
        store = RedisStore(redis_server.url(db=3), prefix=prefix)
        store.put(b"k", Record(1, "in db 3"))
        db3 = redis.Redis(port=redis_server.port, db=3)
        db0 = redis.Redis(port=redis_server.port, db=0)
        key = prefix.encode() + b"r:k"
        assert db3.exists(key) == 1 and db0.exists(key) == 0
        assert "/3" in repr(store)
        store.clear()
        store.close()
        db3.close()
        db0.close()

    def test_url_with_password(self, start_redis):
        (server,) = start_redis(extra_config=["requirepass s3cret"])
        url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
        with RedisStore(url, prefix="pw:") as store:
            assert store.put(b"k", Record(1, "v"))
            assert store.get(b"k") == Record(1, "v")
            assert "s3cret" not in repr(store)
        with RedisStore(server.url(), prefix="pw:", name="locked") as anonymous:
            with pytest.raises(StoreError, match="locked") as info:
                anonymous.get(b"k")
            assert isinstance(info.value.__cause__, redis.RedisError)

    def test_unix_socket_url(self, start_redis, tmp_path):
        sock = tmp_path / "r.sock"
        (server,) = start_redis(extra_config=[f"unixsocket {sock}", "unixsocketperm 700"])
        with RedisStore(f"unix://{sock}?db=2", prefix="u:") as store:
            store.put(b"k", Record(1, "over a unix socket"))
            assert store.get(b"k") == Record(1, "over a unix socket")
            assert repr(store).startswith(f"RedisStore('unix://{sock}?db=2'")
        assert redis.Redis(port=server.port, db=2).exists(b"u:r:k") == 1

    def test_rediss_url_uses_tls(self):
        # no TLS server here: check the client it builds, which connects lazily
        store = RedisStore("rediss://:pw@127.0.0.1:1/4", name="tls")
        pool = store.client.connection_pool
        assert issubclass(pool.connection_class, redis.SSLConnection)
        assert repr(store) == "RedisStore('rediss://127.0.0.1:1/4', prefix='cvstore:', name='tls')"
        store.close()

    def test_existing_client(self, redis_server, prefix):
        client = redis.Redis(port=redis_server.port)
        store = RedisStore(client, prefix=prefix)
        assert store.client is client
        store.put(b"k", Record(1, "v"))
        store.close()  # the caller's client stays open
        assert client.get(prefix.encode() + b"r:k") is not None
        assert RedisStore(client, prefix=prefix).get(b"k") == Record(1, "v")
        RedisStore(client, prefix=prefix).clear()
        client.close()

    def test_existing_single_connection_client(self, redis_server, prefix):
        client = redis.Redis(port=redis_server.port, single_connection_client=True)
        store = RedisStore(client, prefix=prefix)
        assert store.put_many_columns([b"a", b"b"], [Record(2, b"x"), Record(2, b"y")]) == [
            True,
            True,
        ]
        assert store.get_many([b"a", b"b", b"c"]) == [Record(2, b"x"), Record(2, b"y"), None]
        store.clear()
        client.close()

    def test_client_that_decodes_responses_is_refused(self, redis_server):
        client = redis.Redis(port=redis_server.port, decode_responses=True)
        with pytest.raises(ValueError, match="decode_responses=True"):
            RedisStore(client)
        client.close()

    def test_timeout_goes_with_a_url_only(self, redis_server):
        client = redis.Redis(port=redis_server.port)
        with pytest.raises(ValueError, match="timeout applies to a url only, got timeout=1"):
            RedisStore(client, timeout=1)
        client.close()

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"timeout": 0}, ValueError, "timeout must be a finite number of seconds > 0, got 0"),
            (
                {"timeout": -1.5},
                ValueError,
                "timeout must be a finite number of seconds > 0, got -1.5",
            ),
            ({"timeout": float("inf")}, ValueError, "finite number of seconds > 0, got inf"),
            ({"timeout": float("nan")}, ValueError, "finite number of seconds > 0, got nan"),
            ({"timeout": "1"}, TypeError, "timeout must be a number of seconds, got '1'"),
            ({"prefix": 5}, TypeError, "prefix must be str or bytes, got int"),
            ({"name": 5}, TypeError, "name must be str or None, got int"),
        ],
    )
    def test_bad_arguments(self, redis_server, kwargs, error, match):
        with pytest.raises(error, match=match):
            RedisStore(redis_server.url(), **kwargs)

    def test_url_or_client_type(self):
        with pytest.raises(
            TypeError, match="url_or_client must be a redis:// url or a redis.Redis"
        ):
            RedisStore(6379)

    def test_is_a_store_and_connects_lazily(self):
        # nothing listens on port 1: constructing must not connect
        store = RedisStore("redis://127.0.0.1:1/0", name="r9")
        assert isinstance(store, Store)
        with pytest.raises(StoreError, match="node 'r9'.*get connection failed") as info:
            store.get(b"k")
        assert info.value.node == "r9"

    def test_retries_are_off_and_timeouts_set(self, redis_server):
        store = RedisStore(redis_server.url(), timeout=0.25)
        kwargs = store.client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.25
        assert kwargs["retry"].get_retries() == 0
        store.close()


class TestImport:
    def run(self, code: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test_importing_cvstore_does_not_import_redis(self):
        result = self.run(
            """
            import sys, cvstore, cvstore.stores.redis
            print("redis" in sys.modules)
            """
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "False"

    def test_without_redis_py_the_error_names_the_extra(self):
        result = self.run(
            """
            import sys
            sys.modules["redis"] = None  # as if redis-py were not installed
            from cvstore.stores.redis import RedisStore
            try:
                RedisStore("redis://127.0.0.1:6379/0")
            except ImportError as exc:
                print(exc)
            """
        )
        assert result.returncode == 0, result.stderr
        assert "pip install 'cvstore[redis]'" in result.stdout


# ---------------------------------------------------------------- faults


class TestFaults:
    @pytest.mark.slow
    def test_a_hung_server_fails_within_the_timeout(self, start_redis):
        (server,) = start_redis()
        store = RedisStore(server.url(), name="r1", timeout=0.5)
        store.put(b"k", Record(1, "before"))
        server.pause()
        try:
            for op in (
                lambda: store.get(b"k"),
                lambda: store.put(b"k", Record(2, "during")),
                lambda: store.get_many([b"k", b"j"]),
                lambda: store.put_many([(b"k%d" % i, Record(2, "x")) for i in range(1500)]),
            ):
                started = time.monotonic()
                with pytest.raises(StoreError, match="timed out") as info:
                    op()
                assert time.monotonic() - started < HUNG_BOUND
                assert info.value.node == "r1"
                assert isinstance(info.value.__cause__, redis.TimeoutError)
            fresh = RedisStore(server.url(), timeout=0.5)  # connects while the server hangs
            started = time.monotonic()
            with pytest.raises(StoreError):
                fresh.get(b"k")
            assert time.monotonic() - started < HUNG_BOUND
        finally:
            server.resume()
        stats = store.stats()
        assert stats["timeouts"] == 4 and stats["errors"] == 4
        assert "timed out" in stats["last_error"]
        # after the server wakes, replies are matched to the right requests again
        assert store.get(b"k") in (Record(1, "before"), Record(2, "during"))
        assert store.get(b"nothing") is None
        store.put(b"after", Record(3, "after"))
        assert store.get(b"after") == Record(3, "after")
        assert store.get_many([b"after", b"nothing"]) == [Record(3, "after"), None]
        assert store.put_many([(b"after", Record(4, "again"))]) == [True]
        store.close()
        fresh.close()

    def test_a_stopped_server_is_a_connection_error(self, start_redis):
        (server,) = start_redis()
        store = RedisStore(server.url(), name="r2")
        store.put(b"k", Record(1, "v"))
        server.stop()
        with pytest.raises(StoreError, match="connection failed"):
            store.get(b"k")
        with pytest.raises(StoreError):
            list(store.scan())
        assert store.stats()["connection_errors"] >= 1
        server.restart()  # not appendonly: it comes back empty
        assert store.get(b"k") is None and store.count() == 0

    def test_script_is_reloaded_after_a_flush_or_restart(self, redis_store):
        client = redis_store.client
        client.script_flush()
        assert redis_store.put(b"a", Record(1, "one"))
        client.script_flush()
        flags = redis_store.put_many([(b"k%d" % i, Record(1, "v")) for i in range(2100)])
        assert flags == [True] * 2100
        client.script_flush()
        redis_store.put_hints("n2", [(b"k", Record(1, "h"))])
        assert redis_store.count() == 2101 and redis_store.count_hints() == 1

    def test_a_malformed_record_is_a_read_error_is_counted_and_is_overwritten(
        self, redis_store, prefix
    ):
        client = redis_store.client
        client.set(prefix.encode() + b"r:bad", b"not a record")
        client.set(prefix.encode() + b"r:short", b"\x00" * 5)
        client.set(prefix.encode() + b"r:empty", b"")
        redis_store.put(b"fine", Record(1, "f"))
        before = redis_store.stats()["unreadable"]
        # not "absent": an error of this store for this call, that never says the
        # server is unreachable, naming the key, with what the read got otherwise
        with pytest.raises(UnreadableRecordError, match=r"1 record\(s\) do not parse") as info:
            redis_store.get(b"bad")
        assert info.value.unreachable is False and info.value.keys == [b"bad"]
        assert isinstance(info.value, StoreError)
        with pytest.raises(UnreadableRecordError, match=r"3 record\(s\)") as info:
            redis_store.get_many([b"short", b"fine", b"bad", b"none", b"empty"])
        assert info.value.keys == [b"short", b"bad", b"empty"]
        assert info.value.positions == [0, 2, 4]
        assert info.value.records == [None, Record(1, "f"), None, None, None]
        assert redis_store.stats()["unreadable"] == before + 4
        client.delete(prefix.encode() + b"r:empty", prefix.encode() + b"r:fine")
        assert dict(redis_store.scan()) == {}  # skipped, not raised
        # a write replaces the bytes that are not a record; the good one lands too
        assert redis_store.put_many([(b"good", Record(1, "g")), (b"bad", Record(1, "b"))]) == [
            True,
            True,
        ]
        assert redis_store.get_many([b"good", b"bad"]) == [Record(1, "g"), Record(1, "b")]
        assert client.get(prefix.encode() + b"r:short") == b"\x00" * 5  # nobody asked to write it

    def test_stats_count_calls_and_latency(self, redis_store):
        redis_store.stats(reset=True)
        redis_store.put(b"k", Record(1, "v"))
        redis_store.get(b"k")
        redis_store.get_many([b"k"])
        stats = redis_store.stats()
        assert stats["calls"] == 3 and stats["errors"] == 0
        assert 0 < stats["mean_ms"] <= stats["max_ms"]
        assert 0 < stats["p50_ms"] <= stats["p99_ms"]
