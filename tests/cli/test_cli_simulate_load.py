"""``cvstore simulate --zipf``: the load model's promises, and the command line around it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cvstore._cli.loadsim import bounded_assign, zipf_ranks
from cvstore.cli import main

SMALL = ("--nodes", "8", "--keys", "5000", "--requests", "20000")


def run_json(capsys, *argv):
    code = main(["simulate", *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def by_name(result):
    return {s["strategy"]: s for s in result["strategies"]}


@pytest.mark.parametrize("c", [1.01, 1.1, 1.25, 2.0])
def test_bounded_loads_never_exceed_the_bound_at_any_step(c):
    rng = np.random.default_rng(7)
    n, requests = 12, 6000
    weights = rng.uniform(0.5, 3.0, size=n)
    hot = rng.integers(0, n, size=50)  # a few owners get most requests (a skewed workload)
    owners = hot[zipf_ranks(1.2, 50, requests, rng)]
    walks = [[(int(o) + s) % n for s in range(n)] for o in owners]
    nodes, _ = bounded_assign(walks, weights, c)
    share = weights / weights.sum()
    load = np.zeros(n, dtype=np.int64)
    for total, (i, walk) in enumerate(zip(nodes.tolist(), walks)):
        bound = np.ceil(c * (total + 1) * share)
        # the nodes walked past were full; the one chosen had room
        passed = walk[: walk.index(i)]
        assert all(load[x] >= bound[x] for x in passed)
        load[i] += 1
        # after each assignment, every node is within the bound of the total so far
        assert (load <= bound).all()
    assert load.sum() == requests


def test_bounded_within_its_bound_in_the_simulator_with_weights(capsys):
    r = run_json(capsys, *SMALL, "--zipf", "1.1", "--weights", "1", "2", "--balance", "1.1")
    bounded = by_name(r)["bounded"]
    for name, count in bounded["per_node"].items():
        assert count <= r["bounds"][name]
        assert r["bounds"][name] == math.ceil(1.1 * 20000 * r["weights"][int(name[4:])] / 12)
    assert bounded["max_over_fair"] <= 1.1 + 1e-9 * 20000
    # the plain ring, on the same workload, is far over it (the hottest key's owner)
    assert by_name(r)["ring"]["max_over_fair"] > 1.5


def test_equal_speeds_give_every_strategy_the_same_p50_at_light_load(capsys):
    r = run_json(capsys, *SMALL, "--zipf", "1.1", "--utilization", "0.05")
    for s in r["strategies"]:  # an exponential service's median: ln 2 mean service times
        assert abs(s["p50"] - math.log(2)) < 0.15 * math.log(2), s["strategy"]


def test_a_slow_node_gets_fewer_reads_under_adaptive_than_random(capsys):
    r = run_json(
        capsys, *SMALL, "--zipf", "0.9", "--speeds", "1", "1", "1", "1", "1", "1", "1", "0.2"
    )
    s = by_name(r)
    assert s["random"]["slowest_node"] == "node7"
    assert s["adaptive"]["slowest_share"] < 0.5 * s["random"]["slowest_share"]
    assert s["adaptive"]["p99"] < s["random"]["p99"]


def test_the_same_seed_gives_the_same_report(capsys):
    a = run_json(capsys, *SMALL, "--zipf", "1.3", "--seed", "4")
    b = run_json(capsys, *SMALL, "--zipf", "1.3", "--seed", "4")
    c = run_json(capsys, *SMALL, "--zipf", "1.3", "--seed", "5")
    assert a == b and a != c


def test_the_table(capsys):
    code = main(["simulate", *SMALL, "--zipf", "1.1", "--speeds", "1", "0.5"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert out.startswith("simulate: 20,000 requests, Zipf(1.1) over 5,000 keys, on 8 nodes")
    for strategy in ("ring", "bounded", "random", "fastest", "adaptive"):
        assert f"\n  {strategy} " in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--requests", "10"), "argument --requests: needs --zipf S (the load mode)"),
        (("--balance", "1.2"), "argument --balance: needs --zipf S (the load mode)"),
        (("--zipf", "1", "--add", "2"), "argument --add: not with --zipf (the load mode)"),
        (("--zipf", "1", "--balance", "1"), "argument --balance: must be a number > 1"),
        (("--zipf", "-1"), "argument --zipf: must be a number >= 0 and <= 5, got '-1'"),
        (("--zipf", "1", "--utilization", "1"), "argument --utilization: must be a number > 0"),
        (("--zipf", "1", "--nodes", "2", "--speeds", "1", "2", "3"), "argument --speeds: got 3"),
        (
            ("--zipf", "1", "--speeds", "0"),
            "argument --speeds: speeds must be numbers from 1e-06 to 1e+06, got '0'",
        ),
    ],
)
def test_bad_options(capsys, argv, message):
    code = main(["simulate", "--keys", "100", *argv])
    _, err = capsys.readouterr()
    assert code == 2 and message in err


def test_too_many_keys_for_the_load_mode(capsys):
    code = main(["simulate", "--keys", "20M", "--zipf", "1"])
    _, err = capsys.readouterr()
    assert code == 2 and "argument --keys: at most 10,000,000 with --zipf" in err


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "load.png"
    code = main(["simulate", *SMALL, "--zipf", "1.1", "--plot", str(path)])
    out, _ = capsys.readouterr()
    assert code == 0 and f"wrote {path}" in out
    from matplotlib.image import imread

    assert imread(str(path)).shape[0] > 100
