"""`cvstore simulate`: its printed numbers equal what the ring computes on its own."""

from __future__ import annotations

import json
import re
import struct
import sys

import numpy as np
import pytest

from cvstore import HashRing
from cvstore._cli.synth import synthetic_keys
from cvstore.cli import main

K = 30_000


def run(capsys, *argv):
    code = main(["simulate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def names(n, width=None):
    width = width or len(str(n - 1))
    return [f"node{i:0{width}d}" for i in range(n)]


def owners_by_name(ring, keys):
    return np.array(ring.nodes)[ring.lookup_many(keys)]


def copies_moved(before, after, keys, rf):
    """New copies: for each key, nodes in the new preference list not in the old one."""
    old = [set(row) for row in np.array(before.nodes)[before.get_nodes_many(keys, rf)].tolist()]
    new = np.array(after.nodes)[after.get_nodes_many(keys, rf)].tolist()
    return sum(len(set(row) - o) for row, o in zip(new, old))


@pytest.fixture(scope="module")
def keys():
    return [f"key-{i}" for i in range(K)]


def test_synthetic_keys_are_the_f_strings():
    for start, stop in [(0, 0), (0, 1), (0, 12), (95, 1005), (999_990, 1_000_010)]:
        got = synthetic_keys(start, stop)
        assert got.dtype.kind == "S"
        assert got.tolist() == [f"key-{i}".encode() for i in range(start, stop)]


def test_json_numbers_equal_the_rings_own_count(capsys, keys):
    r = run_json(
        capsys,
        "--nodes",
        "20",
        "--vnodes",
        "40",
        "--keys",
        str(K),
        "--add",
        "2",
        "--remove",
        "3",
        "--rf",
        "3",
        "--seed",
        "7",
    )
    base = HashRing(names(20, 2), vnodes=40, seed=7)
    owners = owners_by_name(base, keys)

    # load per node
    counts = {n: int((owners == n).sum()) for n in base.nodes}
    assert r["load"]["per_node"] == counts
    ratios = np.array(list(counts.values())) / (K / 20)
    assert r["load"]["keys"]["max_over_fair"] == pytest.approx(ratios.max())
    assert r["load"]["keys"]["min_over_fair"] == pytest.approx(ratios.min())
    assert r["load"]["keys"]["stddev_over_fair"] == pytest.approx(ratios.std())
    assert r["load"]["keys"]["busiest"] == max(counts, key=counts.get)

    add, remove = r["changes"]
    # add: node20, node21 join; every moved key lands on one of them
    assert add["change"] == "add" and add["nodes"] == ["node20", "node21"]
    grown = HashRing(names(22), vnodes=40, seed=7)
    after = owners_by_name(grown, keys)
    moved = owners != after
    assert add["keys_moved"] == int(moved.sum())
    assert add["keys_moved_fraction"] == pytest.approx(moved.mean())
    assert set(after[moved]) <= {"node20", "node21"}
    assert add["needless_moves"] == 0
    assert add["keys_ideal_fraction"] == pytest.approx(2 / 22)
    assert add["copies_moved"] == copies_moved(base, grown, keys, 3)
    assert add["copies_total"] == 3 * K
    assert add["copies_ideal_fraction"] == pytest.approx(2 / 22)

    # remove: the three nodes the JSON names leave; only their keys move
    gone = remove["nodes"]
    assert len(gone) == 3 and set(gone) <= set(base.nodes)
    shrunk = HashRing([n for n in base.nodes if n not in gone], vnodes=40, seed=7)
    after = owners_by_name(shrunk, keys)
    moved = owners != after
    assert remove["keys_moved"] == int(moved.sum()) == sum(counts[n] for n in gone)
    assert remove["keys_ideal_fraction"] == pytest.approx(3 / 20)
    assert remove["copies_moved"] == copies_moved(base, shrunk, keys, 3)
    assert remove["needless_moves"] == 0


def test_text_report_prints_the_same_numbers(capsys, keys):
    code, out, err = run(
        capsys, "--nodes", "10", "--vnodes", "64", "--keys", str(K), "--add", "1", "--rf", "2"
    )
    assert code == 0 and err == ""
    base = HashRing(names(10, 2), vnodes=64)
    grown = HashRing(names(11), vnodes=64)
    moved = int((owners_by_name(base, keys) != owners_by_name(grown, keys)).sum())
    copies = copies_moved(base, grown, keys, 2)
    row = re.search(
        r"^\s+add 1 node\s+([\d,]+) \(([\d.]+)%\)\s+([\d.]+)%\s+([\d.]+)\s+"
        r"([\d,]+) \(([\d.]+)%\)\s+([\d.]+)%\s+([\d,]+)$",
        out,
        re.MULTILINE,
    )
    assert row, out
    assert int(row[1].replace(",", "")) == moved
    assert float(row[2]) == pytest.approx(100 * moved / K, abs=5e-4)
    assert float(row[3]) == pytest.approx(100 / 11, abs=5e-4)
    assert float(row[4]) == pytest.approx((moved / K) / (1 / 11), abs=5e-4)
    assert int(row[5].replace(",", "")) == copies
    assert int(row[8]) == 0
    assert f"simulate: {K:,} keys on 10 nodes" in out
    owners = owners_by_name(base, keys)
    counts = {n: int((owners == n).sum()) for n in base.nodes}
    busiest = max(counts, key=counts.get)
    assert f"busiest {busiest} ({counts[busiest]:,} keys)" in out
    load = re.search(r"keys owned\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out)
    assert float(load[1]) == pytest.approx(counts[busiest] / (K / 10), abs=5e-4)


def test_weights_and_ketama(capsys, keys):
    r = run_json(
        capsys,
        "--nodes",
        "4",
        "--vnodes",
        "160",
        "--keys",
        str(K),
        "--weights",
        "1",
        "3",
        "--hash",
        "ketama",
        "--rf",
        "1",
        "--add",
        "1",
    )
    weights = {"node0": 1.0, "node1": 3.0, "node2": 1.0, "node3": 3.0}
    base = HashRing(weights, vnodes=160, hash="ketama")
    owners = owners_by_name(base, keys)
    assert r["load"]["per_node"] == {n: int((owners == n).sum()) for n in base.nodes}
    assert r["weights"] == [1.0, 3.0, 1.0, 3.0]
    fair = K * np.array([1, 3, 1, 3]) / 8
    counts = np.array(list(r["load"]["per_node"].values()))
    assert r["load"]["keys"]["max_over_fair"] == pytest.approx((counts / fair).max())
    (add,) = r["changes"]
    grown = HashRing(dict(weights, node4=1.0), vnodes=160, hash="ketama")
    assert add["keys_moved"] == int((owners != owners_by_name(grown, keys)).sum())
    assert add["keys_ideal_fraction"] == pytest.approx(1 / 9)
    assert add["copies_moved"] == add["keys_moved"]  # RF 1: a copy is a key


def test_ten_million_keys_on_a_thousand_nodes(capsys):
    """The size the issue asks for: it runs, and its numbers hang together."""
    r = run_json(capsys, "--nodes", "1000", "--keys", "10M", "--add", "1")
    assert r["keys"] == 10_000_000
    assert sum(r["load"]["per_node"].values()) == 10_000_000
    (add,) = r["changes"]
    assert add["needless_moves"] == 0
    assert 0.5 < add["keys_moved_fraction"] / add["keys_ideal_fraction"] < 1.5
    assert add["load_after"]["max_over_fair"] < 1.5


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "sim.png"
    code, out, err = run(
        capsys, "--nodes", "30", "--keys", "20k", "--add", "2", "--remove", "1", "--plot", str(path)
    )
    assert code == 0, err
    assert f"wrote {path}" in out
    # 10 x 12.0 inches at 100 dpi: a load panel, a panel per change, the movement panel
    assert png_size(path) == (1000, 1200)
    from matplotlib.image import imread

    assert imread(path).shape[:2] == (1200, 1000)

    path = tmp_path / "load.png"
    assert main(["simulate", "--nodes", "5", "--keys", "1000", "--plot", str(path)]) == 0
    assert png_size(path) == (1000, 330)


def test_plot_without_matplotlib_names_the_extra(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    code, out, err = run(capsys, "--keys", "1000", "--plot", str(tmp_path / "x.png"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "needs matplotlib" in err and "pip install 'cvstore[plot]'" in err
    assert not (tmp_path / "x.png").exists()


def test_progress_bar_only_when_asked(capsys):
    code, _, err = run(capsys, "--nodes", "3", "--keys", "5000")
    assert code == 0 and err == ""  # stderr is not a terminal here: logs stay clean
    code, _, err = run(capsys, "--nodes", "3", "--keys", "5000", "--progress")
    assert code == 0 and "placing keys" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--nodes", "0"], "argument --nodes: must be a whole number from 1 to 100,000, got '0'"),
        (
            ["--nodes", "lots"],
            "argument --nodes: must be a whole number from 1 to 100,000, got 'lots'",
        ),
        (
            ["--keys", "1.5"],
            "argument --keys: must be a whole number from 1 to 1,000,000,000, got '1.5'",
        ),
        (
            ["--weights", "1", "-2"],
            "argument --weights: weights must be numbers from 1e-06 to 1e+06, got '-2'",
        ),
        (
            ["--nodes", "3", "--weights", "1", "1", "1", "1"],
            "argument --weights: got 4 weights for --nodes 3",
        ),
        (["--nodes", "4", "--remove", "4"], "argument --remove: must be less than --nodes (4)"),
        (["--hash", "md5"], "argument --hash: invalid choice: 'md5'"),
        (
            ["--hash", "ketama", "--vnodes", "10"],
            "argument --vnodes: vnodes must be a multiple of 4",
        ),
        (
            ["--plot", "out.txt"],
            "argument --plot: must name a .png, .svg or .pdf file, got 'out.txt'",
        ),
        (["--plot", "/no/such/dir/x.png"], "argument --plot: no such directory '/no/such/dir'"),
        (["--nodes"], "argument --nodes: expected one argument"),
        (["--frob"], "unrecognized arguments: --frob"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expected):
    code, out, err = run(capsys, "--keys", "100", *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("cvstore simulate: error: ")
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
