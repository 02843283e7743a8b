"""Bad data, full servers, failing connections and odd values: contained, counted, never lost.

Everything here is planted in real redis-servers with a plain redis-py client
(the way another program, or a bug, would leave it) and then met by the
cluster.
"""

from __future__ import annotations

import enum
import gc
import os
import threading
import time

import pytest
import redis

from cvstore import Cluster, Node, RedisStore, StoreError, UnavailableError
from cvstore.stores.redis import JSONCodec
from cvstore.versions import Record

KEYS = [f"k{i}" for i in range(60)]


def raw_key(prefix: str, key: str) -> bytes:
    return prefix.encode() + b"r:" + key.encode()


def values_on(cluster: Cluster, node_name: str, keys: list[str]) -> dict[str, object]:
    store = cluster.node(node_name).store
    return {k: r.value for k, r in zip(keys, store.get_many([k.encode() for k in keys])) if r}


class TestBadRecords:
    def test_junk_bytes_and_foreign_keys_are_contained_and_repaired(
        self, start_redis, make_cluster, prefix
    ):
        servers = start_redis(3)
        cluster = make_cluster(servers)
        cluster.put_many({k: f"v-{k}" for k in KEYS})
        spy = redis.Redis(port=servers[1].port)
        victims = KEYS[:10]
        for k in victims[:5]:
            spy.set(raw_key(prefix, k), b"\x00junk\x07")  # seven junk bytes
        for k in victims[5:]:
            spy.set(raw_key(prefix, k), b"\x00" * 12 + b"?not a tag")
        spy.hset(raw_key(prefix, "foreign-hash"), mapping={"a": "1"})  # not cvstore's
        spy.rpush(raw_key(prefix, KEYS[20]) + b"-list", b"x")

        # reads go on: the junk is r2's failure for those keys, the other replicas answer
        assert cluster.get_many(KEYS, consistency="quorum") == {k: f"v-{k}" for k in KEYS}
        assert cluster.suspected == ()
        report = cluster.repair()
        assert report.complete and report.skipped == ()
        assert (
            report.unreadable >= 2
        )  # the foreign keys met by the scan (junk was read-repaired or rewritten)
        # every real copy is back on r2, and the foreign keys are untouched
        held = values_on(cluster, "r2", victims)
        replicas_r2 = [k for k in victims if "r2" in [n.name for n in cluster.get_nodes_for_key(k)]]
        assert {k: held.get(k) for k in replicas_r2} == {k: f"v-{k}" for k in replicas_r2}
        assert spy.hgetall(raw_key(prefix, "foreign-hash")) == {b"a": b"1"}
        assert spy.lrange(raw_key(prefix, KEYS[20]) + b"-list", 0, -1) == [b"x"]
        stats = cluster.stats()
        assert stats.unreadable >= 2 and stats.per_node["r2"]["unreadable"] >= 2
        assert sorted(cluster) == sorted(KEYS)  # the foreign keys are not listed as ours
        spy.close()

    def test_a_write_never_overwrites_a_foreign_key(self, start_redis, make_cluster, prefix):
        servers = start_redis(3)
        cluster = make_cluster(servers)
        spy = redis.Redis(port=servers[0].port)
        spy.hset(raw_key(prefix, "taken"), mapping={"owner": "another program"})
        cluster.put("taken", "mine", consistency="quorum")  # r2 and r3 apply it
        assert spy.hgetall(raw_key(prefix, "taken")) == {b"owner": b"another program"}
        assert cluster.suspected == ()  # an answer, not an outage
        with pytest.raises(UnavailableError, match="not cvstore records") as info:
            cluster.put("taken", "mine", consistency="all")
        assert not info.value.__cause__.unreachable
        cluster.remove_node("r1")  # rebalancing neither reads nor deletes it
        assert spy.hgetall(raw_key(prefix, "taken")) == {b"owner": b"another program"}
        spy.close()

    def test_junk_counters_and_hints_never_stop_a_cluster(self, start_redis, make_cluster, prefix):
        servers = start_redis(3)
        cluster = make_cluster(servers)
        cluster.put_many({k: "v" for k in KEYS})
        cluster.node("r3").fail()
        cluster.put_many({k: "w" for k in KEYS[:10]})  # hints for r3
        spy = redis.Redis(port=servers[0].port)
        spy.set(prefix.encode() + b"m:records", b"twelve")
        spy.set(prefix.encode() + b"m:hints", b"\xff\xfe")
        spy.hset(prefix.encode() + b"h:\xff\xfeowner", mapping={b"k": b"bad"})  # not UTF-8
        first_hint = next(iter(spy.scan_iter(match=prefix.encode() + b"h:r3")), None)
        if first_hint is not None:
            spy.hset(first_hint, b"corrupt", b"\x00" * 5)  # a hint that does not parse
        # a new client builds, answers stats, delivers and repairs
        other = make_cluster(servers)
        stats = other.stats()
        assert stats.hints_pending >= 10
        assert stats.per_node["r1"]["unreadable"] >= 1  # the counters it recomputed
        cluster.node("r3").recover()
        assert other.deliver_hints() >= 10
        report = other.repair()
        assert report.complete
        assert other.get_many(KEYS, consistency="all") == {
            **{k: "v" for k in KEYS},
            **{k: "w" for k in KEYS[:10]},
        }
        store = cluster.node("r1").store
        assert store.count() == len(store.keys())  # recomputed from the keys
        assert int(spy.get(prefix.encode() + b"m:records")) == len(store.keys())  # and stored
        spy.close()

    def test_a_codec_record_read_without_the_codec_is_a_clear_error_and_returns_connections(
        self, start_redis, prefix
    ):
        (server,) = start_redis()
        with RedisStore(server.url(), prefix=prefix, codec=JSONCodec()) as writer:
            writer.put(b"k", Record(1, {"a": 1}))
        nodes = [Node("r1", store=RedisStore(server.url(), prefix=prefix))]
        cluster = Cluster(nodes, replication_factor=1)
        pool = nodes[0].store.client.connection_pool
        fds_before = len(os.listdir("/proc/self/fd"))
        for _ in range(40):
            with pytest.raises(TypeError, match="written with a codec"):
                cluster.get("k")
            with pytest.raises(TypeError, match="written with a codec"):
                cluster.get_many(["k", "j"])
        assert len(pool._in_use_connections) == 0
        assert len(os.listdir("/proc/self/fd")) <= fds_before + 2
        cluster.close()
        nodes[0].store.close()


class TestFullServer:
    def test_reads_keep_working_on_a_full_server_and_it_is_not_suspected(
        self, start_redis, make_cluster
    ):
        servers = start_redis(3, extra_config=["maxmemory-policy noeviction"])
        cluster = make_cluster(servers)
        cluster.put_many({k: "v" * 100 for k in KEYS})
        full = redis.Redis(port=servers[0].port)
        full.config_set("maxmemory", 1)  # any write now: OOM
        try:
            for _ in range(200):
                assert cluster.get_many(KEYS, consistency="quorum") == {k: "v" * 100 for k in KEYS}
                assert cluster.get(KEYS[0], consistency="all") == "v" * 100
            mine = [k for k in KEYS if "r1" in [n.name for n in cluster.get_nodes_for_key(k)]]
            # the server's own words (Redis 6 prefixes them with OOM, 7 with the script)
            with pytest.raises(UnavailableError, match="used memory > 'maxmemory'") as info:
                cluster.put(mine[0], "new", consistency="all")
            cause = info.value.causes["r1"]
            assert not cause.unreachable and "maxmemory" in cause.reason
            cluster.put(mine[0], "new", consistency="quorum")  # the two others apply it
            cluster.put_many({k: "newer" for k in mine}, consistency="quorum")
            assert cluster.suspected == () and cluster.node("r1").is_up
            stats = cluster.stats().per_node["r1"]
            assert stats["error_replies"] >= 2 and stats["connection_errors"] == 0
        finally:
            full.config_set("maxmemory", 0)
            full.close()
        cluster.repair()  # the full server gets what it missed once it has room
        assert values_on(cluster, "r1", mine) == {k: "newer" for k in mine}


class TestConnections:
    @pytest.mark.slow
    def test_file_descriptors_and_threads_return_to_baseline_after_failing_calls(
        self, start_redis, make_cluster
    ):
        servers = start_redis(3)
        cluster = make_cluster(servers, probe_interval=0.01, max_probe_interval=0.05)
        cluster.put_many({k: "v" for k in KEYS})
        gc.collect()
        fds = len(os.listdir("/proc/self/fd"))
        threads = threading.active_count()
        servers[2].kill()
        for i in range(2000):
            key = KEYS[i % len(KEYS)]
            cluster.put(key, f"v{i}")  # r3 suspected, hinted
            with pytest.raises(UnavailableError):
                cluster.get(key, consistency="all")
        servers[2].restart()
        deadline = time.monotonic() + 30
        while cluster.suspected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cluster.suspected == ()
        cluster.close()  # stops the prober thread
        gc.collect()
        assert threading.active_count() <= threads
        # pooled connections to the restarted server may be reopened: a few, not thousands
        assert len(os.listdir("/proc/self/fd")) <= fds + 6


class StrColor(str, enum.Enum):
    RED = "red"


class Shouting(str):
    def __str__(self) -> str:
        return self.upper()


class Tagged(bytes):
    def __bytes__(self) -> bytes:
        return b"tagged:" + bytes(memoryview(self))


class TestValues:
    def test_str_and_bytes_subclasses_are_stored_as_their_characters_and_bytes(
        self, start_redis, make_cluster
    ):
        servers = start_redis(3)
        cluster = make_cluster(servers)
        cluster.put("color", StrColor.RED)
        cluster.put("shout", Shouting("quiet"))
        cluster.put("tagged", Tagged(b"raw"))
        cluster.put_many({"c2": StrColor.RED, "s2": Shouting("also quiet"), "t2": Tagged(b"r2")})
        got = cluster.get_many(["color", "shout", "tagged", "c2", "s2", "t2"], consistency="all")
        assert got == {
            "color": "red",
            "shout": "quiet",
            "tagged": b"raw",
            "c2": "red",
            "s2": "also quiet",
            "t2": b"r2",
        }
        assert [type(v) for v in got.values()] == [str, str, bytes, str, str, bytes]
        # keys that are subclasses are their characters too
        cluster.put(Shouting("key"), "v")
        assert cluster.get("key") == "v"


class TestCauses:
    def test_a_wrong_password_is_named_in_the_error(self, start_redis, prefix):
        servers = start_redis(3, extra_config=["requirepass s3cret"])
        urls = [f"redis://:wrong@127.0.0.1:{s.port}/0" for s in servers]
        nodes = [Node(f"r{i + 1}", store=RedisStore(u, prefix=prefix)) for i, u in enumerate(urls)]
        cluster = Cluster(
            nodes
        )  # builds: the hint counts it asks for fail, the nodes are suspected
        assert cluster.suspected == ("r1", "r2", "r3")
        with pytest.raises(UnavailableError) as info:
            cluster.put("k", "v")
        message = str(info.value)
        assert "r1 down: invalid username-password pair" in message
        assert isinstance(info.value.__cause__, StoreError)
        assert set(info.value.causes) == {"r1", "r2", "r3"}
        with pytest.raises(UnavailableError, match=r"r1 down: invalid username-password pair"):
            cluster.get("k")
        cluster.close()
        for node in nodes:
            node.store.close()

    def test_a_database_that_does_not_exist_is_named_in_the_error(self, start_redis, prefix):
        (server,) = start_redis()
        nodes = [Node("r1", store=RedisStore(server.url(db=99), prefix=prefix))]
        cluster = Cluster(nodes, replication_factor=1)
        with pytest.raises(UnavailableError, match="r1 failed: .*(DB index|Invalid Database)"):
            cluster.put("k", "v")
        cluster.close()
        nodes[0].store.close()

    @pytest.mark.parametrize(
        ("url", "match"),
        [
            ("redis://127.0.0.1:6379/notadb", "database must be a number >= 0, got 'notadb'"),
            ("redis://127.0.0.1:6379/0?db=x", "database must be a number >= 0, got 'x'"),
            ("redis://127.0.0.1:6379/0?socket_timeout=5", "must not set socket_timeout"),
            ("redis://127.0.0.1:6379/0?socket_connect_timeout=5", "must not set socket_connect"),
            ("redis://127.0.0.1:notaport/0", "port must be a number"),
            ("http://127.0.0.1:6379/0", "scheme 'http'"),
        ],
    )
    def test_bad_connection_options_are_refused_at_construction(self, url, match):
        with pytest.raises(ValueError, match=match):
            RedisStore(url)

    def test_ipv6_addresses_print_with_brackets(self):
        store = RedisStore("redis://[::1]:6390/2", name="r6")
        assert store.address == "redis://[::1]:6390/2"
        assert "[::1]:6390" in repr(store)
        store.close()
