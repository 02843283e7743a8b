"""`cvstore bench`: a row per ring, placements that agree, and the missing peers named."""

from __future__ import annotations

import json
import re
import sys

import pytest

from cvstore.cli import main

QUICK = ["bench", "--nodes", "10", "--keys", "2000", "--seconds", "0.01"]


def test_json_has_every_peer_and_they_agree(capsys):
    pytest.importorskip("uhashring")
    assert main([*QUICK, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    rows = {(x["ring"], x["placement"]): x for x in r["results"]}
    assert set(rows) == {
        ("cvstore", "xxh64"),
        ("cvstore", "ketama"),
        ("cvstore", "ketama-uhashring"),
        ("uhashring", "ketama-uhashring"),
        ("pure-Python bisect ring", "xxh64"),
    }
    for x in rows.values():
        assert x["get_node_ns"] > 0 and x["batch_keys_per_s"] > 0
    assert rows["cvstore", "xxh64"]["batch_call"] == "lookup_many"
    assert rows["uhashring", "ketama-uhashring"]["batch_call"] == "loop"
    # Same placement function, same owners: the reference, and uhashring against
    # cvstore's ketama-uhashring mode, agree on every key.
    assert rows["pure-Python bisect ring", "xxh64"]["agreement"] == 1.0
    assert rows["uhashring", "ketama-uhashring"]["agreement"] == 1.0
    assert r["missing"] == []
    assert (r["nodes"], r["vnodes"], r["keys"]) == (10, 160, 2000)


def test_table_names_missing_peers(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "uhashring", None)  # as if not installed
    assert main(QUICK) == 0
    out = capsys.readouterr().out
    assert "missing peers: uhashring (pip install uhashring)" in out
    assert not re.search(r"^  uhashring\s", out, re.MULTILINE)
    rows = re.findall(
        r"^  (cvstore|pure-Python bisect ring)\s+(xxh64|ketama|ketama-uhashring)\s+([\d,]+)\s+",
        out,
        re.MULTILINE,
    )
    assert [(a, b) for a, b, _ in rows] == [
        ("cvstore", "xxh64"),
        ("cvstore", "ketama"),
        ("cvstore", "ketama-uhashring"),
        ("pure-Python bisect ring", "xxh64"),
    ]
    assert all(int(ns.replace(",", "")) > 0 for _, _, ns in rows)
    assert "bench: 10 nodes x 160 vnodes" in out


def test_bad_vnodes_is_usage_error(capsys):
    assert main(["bench", "--vnodes", "10"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "cvstore bench: error: argument --vnodes: must be a multiple of 4 "
        "(ketama places 4 points a digest), got 10\n"
    )


def test_peers_too_big_to_build_quickly_are_skipped_and_named(capsys):
    assert main(["bench", "--nodes", "20000", "--vnodes", "160", "--keys", "100",
                 "--seconds", "0.01", "--json"]) == 0  # fmt: skip
    r = json.loads(capsys.readouterr().out)
    assert {x["ring"] for x in r["results"]} == {"cvstore"}
    assert r["missing"] == [
        (
            "uhashring and the pure-Python ring (3,200,000 points is more than the 2,000,000 "
            "they build in seconds)"
        )
    ]


def test_batch_over_more_keys_than_one_call_takes(capsys, monkeypatch):
    from cvstore._cli import bench

    monkeypatch.setattr(bench, "BATCH_CHUNK", 1000)  # so a small run spans several calls
    assert main(["bench", "--nodes", "5", "--keys", "2500", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "batch over 2,500 keys in calls of 1,000 (making their keys included)" in out
