"""One set of limits for --vnodes, --nodes and --keys in every command, shared with
the library, and every numeric argument at its extremes refused in one line (exit 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from cvstore._limits import CLI_LIMITS, MAX_VNODES
from cvstore.cli import main

COMMANDS_WITH = {
    "vnodes": ["simulate", "shell", "bench"],
    "nodes": ["simulate", "bench"],
    "keys": ["simulate", "bench"],
}
EXTREMES = ["0", "-1", "5e-324", "1e308", "inf", "nan", "-inf", str(2**70), "9" * 400, "1e400"]


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_usage_error(code, err, prefix):
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(prefix), err
    assert "Traceback" not in err and "Warning" not in err
    assert not re.search(r"\d{25}", err), err  # numbers are shown compactly


def test_the_vnodes_limit_is_the_librarys():
    assert CLI_LIMITS["vnodes"] == (1, MAX_VNODES)


@pytest.mark.parametrize(
    "option, command", [(o, c) for o, commands in COMMANDS_WITH.items() for c in commands]
)
def test_each_command_takes_the_same_range(capsys, option, command):
    low, high = CLI_LIMITS[option]
    for bad in (str(low - 1), str(high + 1)):
        code, _, err = run(capsys, [command, f"--{option}", bad])
        assert_one_line_usage_error(code, err, f"cvstore {command}: error: argument --{option}: ")
        assert f"must be a whole number from {low} to {high:,}, got '{bad}'" in err


@pytest.mark.parametrize("value", EXTREMES)
@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--nodes"],
        ["simulate", "--vnodes"],
        ["simulate", "--keys"],
        ["simulate", "--rf"],
        ["simulate", "--add"],
        ["simulate", "--remove"],
        ["simulate", "--seed"],
        ["simulate", "--nodes", "3", "--weights", "1"],
        ["bench", "--nodes"],
        ["bench", "--vnodes"],
        ["bench", "--keys"],
        ["bench", "--seconds"],
        ["shell", "--vnodes"],
        ["shell", "--rf"],
        ["demo", "--keys"],
        ["demo", "--seed"],
    ],
)
def test_numeric_arguments_at_their_extremes(capsys, argv, value):
    if value == "0" and argv[-1] == "--seed":
        return  # seed 0 is the default, a valid value
    code, out, err = run(capsys, [*argv, value])
    option = argv[-1] if argv[-1].startswith("--") else "--weights"
    if value == "-inf":  # argparse reads it as an option, not a value: still one line
        assert_one_line_usage_error(code, err, f"cvstore {argv[0]}: error: ")
    else:
        assert_one_line_usage_error(code, err, f"cvstore {argv[0]}: error: argument {option}: ")
    assert out == ""


@pytest.mark.parametrize(
    "weights, message",
    [
        (
            ["1e308", "1e308"],
            "argument --weights: weights must be numbers from 1e-06 to 1e+06, got '1e308'",
        ),
        (["1e300"], "argument --weights: weights must be numbers from 1e-06 to 1e+06, got '1e300'"),
        (
            ["1e-300", "1"],
            "argument --weights: weights must be numbers from 1e-06 to 1e+06, got '1e-300'",
        ),
    ],
)
def test_simulate_extreme_weights(capsys, weights, message):
    code, _, err = run(capsys, ["simulate", "--keys", "10k", "--weights", *weights])
    assert_one_line_usage_error(code, err, "cvstore simulate: error: ")
    assert message in err


def test_extreme_weights_in_range_print_plain_numbers(capsys):
    code, out, err = run(
        capsys, ["simulate", "--nodes", "2", "--keys", "10k", "--weights", "1e-6", "1"]
    )
    assert code == 0 and err == ""
    assert not re.search(r"\d{25}", out)
    # The tiny node still has its one point, so it holds far more than its share.
    assert re.search(r"keys owned\s+[0-9.e+]+\s", out)


def test_a_weight_beyond_the_point_limit_names_weights(capsys):
    code, _, err = run(
        capsys, ["simulate", "--nodes", "2", "--keys", "10k", "--weights", "1", "1e6"]
    )
    assert_one_line_usage_error(code, err, "cvstore simulate: error: argument --weights: ")
    assert (
        "weight 1000000.0 gives 1.6e+08 points to one node with vnodes=160; the limit is 10,000,000"
        in err
    )


def test_simulate_ring_too_big_names_vnodes(capsys):
    code, _, err = run(
        capsys, ["simulate", "--nodes", "100000", "--vnodes", "1001", "--keys", "10"]
    )
    assert_one_line_usage_error(code, err, "cvstore simulate: error: argument --vnodes: ")
    assert (
        "vnodes=1001 with these 100,000 nodes gives the ring 100,100,000 points; the limit is 100,000,000"
        in err
    )


def test_simulate_rate_counts_placements_not_the_ring_build(capsys):
    code, out, _ = run(
        capsys, ["simulate", "--nodes", "50", "--keys", "20k", "--add", "1", "--json"]
    )
    assert code == 0
    r = json.loads(out)
    assert r["build_seconds"] >= 0 and r["seconds"] > 0
    assert r["placements_per_second"] == pytest.approx(r["keys"] * 2 / r["seconds"])


@pytest.mark.parametrize("nodes, copies", [(1, "1 copy"), (2, "2 copies")])
def test_simulate_says_when_rf_exceeds_the_nodes(capsys, nodes, copies):
    code, out, _ = run(capsys, ["simulate", "--nodes", str(nodes), "--keys", "1000", "--rf", "3"])
    assert code == 0
    assert f"note: RF 3 on {nodes} node{'s' if nodes > 1 else ''}: each key has {copies}" in out
    code, out, _ = run(capsys, ["simulate", "--nodes", "3", "--keys", "1000", "--rf", "3"])
    assert "note: RF" not in out


def test_demo_into_a_closed_pipe_exits_0_quietly():
    # `cvstore demo | head -1`: the reader leaves early; that is not a failure.
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvstore", "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait() == 0, err
    assert first.strip() and err == b""


def test_shell_says_when_rf_exceeds_the_nodes(capsys, monkeypatch):
    import io

    monkeypatch.setattr(
        sys, "stdin", io.StringIO("add node1\nput k v\nnodes\nadd node2\nadd node3\nput k v\n")
    )
    assert main(["shell"]) == 0
    out = capsys.readouterr().out
    note = "note: replication factor 3 with 1 node: each key has 1 copy, one per node"
    assert out.count(note) == 2  # after the put and in the nodes listing
    assert out.count("note: replication factor") == 2  # and none once 3 nodes are in
