"""``cvstore cluster status`` capacity lines, and ``cvstore cluster weight`` moving exactly the
keys the placement predicts, against real redis-servers."""

from __future__ import annotations

import json

import pytest
import redis

from cvstore import Cluster, Node, RedisStore
from cvstore.cli import main
from cvstore.core.hotkeys import SAMPLE_EVERY
from cvstore.core.placements import placer_factory


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def memory_of(url: str, prefix: str) -> int:
    """MEMORY USAGE of every record under `prefix` on one server: the exact bytes."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}r:*", count=1000))
        return sum(int(client.memory_usage(k) or 0) for k in keys)
    finally:
        client.close()


def test_status_shows_shares_of_keys_and_bytes_against_weights(start_redis, capsys, prefix):
    servers = start_redis(3)
    urls = [s.url() for s in servers]
    weights = {"r1": 1.0, "r2": 1.0, "r3": 2.0}
    nodes = [
        Node(name, weight=w, store=RedisStore(url, prefix=prefix))
        for (name, w), url in zip(weights.items(), urls)
    ]
    cluster = Cluster.create(nodes, replication_factor=1)
    try:
        small = {f"k{i}": "v" * 10 for i in range(80)}
        cluster.put_many(small)
        # Big values on r1 only: its share of bytes is far over its bound, not of keys.
        big = [
            k for k in (f"big{i}" for i in range(200)) if cluster.get_node_for_key(k).name == "r1"
        ]
        cluster.put_many({k: "x" * 50_000 for k in big[:8]})
        code, out, err = run(
            capsys, "cluster", "status", "--seed", urls[0], "--prefix", prefix, "--json"
        )
        assert code == 0, err
        status = json.loads(out)
        assert status["bound"] == 1.25
        rows = {r["node"]: r for r in status["nodes"]}
        exact = {name: memory_of(url, prefix) for name, url in zip(weights, urls)}
        total = sum(exact.values())
        assert {name: row["bytes"] for name, row in rows.items()} == exact
        for name, row in rows.items():
            assert row["weight_share"] == weights[name] / 4
            assert row["bound_share"] == 1.25 * weights[name] / 4
            assert row["keys"] <= 64  # every record sampled: the bytes are exact
            assert row["bytes"] == exact[name]
            assert row["bytes_share"] == exact[name] / total
            assert row["requests"] is None and row["requests_share"] is None
            over = [
                m
                for m, share in (("keys", row["share"]), ("bytes", row["bytes_share"]))
                if share > 1.25 * row["weight_share"]
            ]
            assert row["over_bound"] == over
        assert "bytes" in rows["r1"]["over_bound"]

        code, out, _ = run(capsys, "cluster", "status", "--seed", urls[1], "--prefix", prefix)
        assert code == 0
        share = 100 * rows["r1"]["bytes_share"]
        assert "r1 is over its bound: " in out
        assert f"{share:.1f}% of bytes, against a fair share of 25.0% (bound 1.25 x = 31.2%)" in out
        assert "requests: the calls this command's own client made, none of its own" in out
        # A looser bound: no node is over it.
        code, out, _ = run(
            capsys, "cluster", "status", "--seed", urls[1], "--prefix", prefix, "--bound", "100"
        )
        assert code == 0 and "no node is over its bound (100 x its fair share" in out
        code, out, err = run(
            capsys, "cluster", "status", "--seed", urls[1], "--prefix", prefix, "--bound", "0.9"
        )
        assert code == 2 and "argument --bound: must be a number >= 1 and <= 100, got '0.9'" in err
    finally:
        cluster.close()
        for node in nodes:
            node.store.close()


def test_weight_moves_exactly_the_predicted_keys(start_redis, capsys, prefix):
    servers = start_redis(4)
    urls = [s.url() for s in servers]
    nodes = [Node(f"r{i + 1}", store=RedisStore(u, prefix=prefix)) for i, u in enumerate(urls)]
    cluster = Cluster.create(nodes, replication_factor=2)
    keys = [f"key-{i}" for i in range(1_500)]
    try:
        cluster.put_many({k: k for k in keys})
        layout = cluster.layout
    finally:
        cluster.close()
    # The prediction, from the placement alone: the layout's placer for the old weights
    # and for r2's new one.
    make = placer_factory(
        layout.placement, vnodes=layout.vnodes, hash=layout.hash, seed=layout.seed
    )
    old_weights = {spec.name: spec.weight for spec in layout.everyone()}
    rf = layout.replication_factor
    old_placer, new_placer = make(old_weights), make(dict(old_weights, r2=3.0))
    before = {k: set(old_placer.get_nodes(k.encode(), rf)) for k in keys}
    after = {k: set(new_placer.get_nodes(k.encode(), rf)) for k in keys}
    new_copies = sum(len(after[k] - before[k]) for k in keys)
    assert new_copies > 0
    for i, url in enumerate(urls):  # the prediction of the old placement holds before
        with RedisStore(url, prefix=prefix) as store:
            assert {k.decode() for k in store.keys()} == {  # noqa: SIM118
                k for k in keys if f"r{i + 1}" in before[k]
            }

    code, out, err = run(
        capsys, "cluster", "weight", "r2", "3", "--seed", urls[0], "--prefix", prefix
    )
    assert code == 0, err
    assert out.startswith(f"r2 has weight 3: {new_copies:,} copies moved;"), out
    # Each server holds exactly the keys the new placement gives it, no more, no fewer.
    for i, url in enumerate(urls):
        name = f"r{i + 1}"
        with RedisStore(url, prefix=prefix) as store:
            held = {k.decode() for k in store.keys()}  # noqa: SIM118
        assert held == {k for k in keys if name in after[k]}, name
    for node in nodes:
        node.store.close()


def test_status_of_a_client_that_made_calls_shows_its_requests_and_hot_keys(
    start_redis, capsys, prefix
):
    """The status of a running client (``_status`` with its cluster): requests where known."""
    import argparse

    from cvstore._cli.cluster import _status

    servers = start_redis(3)
    urls = [s.url() for s in servers]
    nodes = [Node(f"r{i + 1}", store=RedisStore(u, prefix=prefix)) for i, u in enumerate(urls)]
    Cluster.create(nodes, replication_factor=1).close()
    client = Cluster.join([urls[0]], prefix=prefix)
    try:
        client.put_many({f"k{i}": "v" for i in range(30)})
        for i in range(960):  # k0 is two calls in three
            client.get("k0" if i % 3 else f"k{i % 30}")
        owner = client.get_node_for_key("k0").name
        code = _status(argparse.Namespace(json=True, bound=1.25), client)
        out, _ = capsys.readouterr()
        assert code == 0
        status = json.loads(out)
        hot = client.stats().hot_keys
        assert status["hot_keys"][0]["key"] == "k0"
        rows = {r["node"]: r for r in status["nodes"]}
        total = sum(hot["requests"].values())
        for name, row in rows.items():
            assert row["requests"] == hot["requests"][name]
            assert row["requests_share"] == hot["requests"][name] / total
        assert "requests" in rows[owner]["over_bound"]
        assert rows[owner]["hot_keys"][0]["key"] == "k0"
        code = _status(argparse.Namespace(json=False, bound=1.25), client)
        out, _ = capsys.readouterr()
        assert f"  {owner} is over its bound: " in out and "of requests" in out
        assert f"hot keys (this client's calls, 1 in {SAMPLE_EVERY} counted): k0 ~" in out
    finally:
        client.close()
        for node in nodes:
            node.store.close()


def test_memory_usage_is_exact_up_to_its_sample_and_refuses_a_bad_one(start_redis, prefix):
    (server,) = start_redis(1)
    with RedisStore(server.url(), prefix=prefix) as store:
        assert store.memory_usage() == 0
        cluster = Cluster([Node("r1", store=store)], replication_factor=1)
        cluster.put_many({f"k{i}": "x" * (100 * i) for i in range(40)})
        exact = memory_of(server.url(), prefix)
        assert store.memory_usage(40) == exact
        assert store.memory_usage(64) == exact
        estimate = store.memory_usage(10)  # 10 of 40, picked evenly: an estimate
        assert 0.5 * exact < estimate < 1.5 * exact
        for bad in (0, -1, 1.5, "8"):
            with pytest.raises(ValueError, match=f"sample must be an int >= 1, got {bad!r}"):
                store.memory_usage(bad)
