"""``cvstore cluster`` against real redis-servers: create, status, add, remove, weight, repair, finish, forget-node."""

from __future__ import annotations

import json

from cvstore import Cluster
from cvstore.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_cluster_operated_from_the_command_line(start_redis, capsys, prefix):
    servers = start_redis(4)
    urls = [s.url() for s in servers]
    common = ("--prefix", prefix)
    code, out, err = run(
        capsys,
        "cluster",
        "create",
        *(f"r{i + 1}={u}" for i, u in enumerate(urls[:3])),
        "--rf",
        "2",
        *common,
    )
    assert code == 0 and err == "" and "created cluster" in out and "r1, r2, r3" in out
    client = Cluster.join([urls[0]], prefix=prefix)
    client.put_many({f"k{i}": f"v{i}" for i in range(500)})

    code, out, _ = run(capsys, "cluster", "status", "--seed", urls[1], *common)
    assert code == 0
    assert "layout epoch 1, stable; replication factor 2" in out
    for i in range(3):
        assert f"r{i + 1}" in out and urls[i] in out

    code, out, _ = run(capsys, "cluster", "add", "r4", urls[3], "--seed", urls[2], *common)
    assert code == 0 and out.startswith("added r4: ") and "layout epoch 3: r1, r2, r3, r4" in out
    code, out, _ = run(capsys, "cluster", "weight", "r4", "2", "--seed", urls[0], *common)
    assert code == 0 and "r4 has weight 2" in out and "epoch 5" in out
    code, out, _ = run(capsys, "cluster", "remove", "r1", "--seed", urls[3], *common)
    assert code == 0 and "layout epoch 7: r2, r3, r4" in out
    code, out, _ = run(capsys, "cluster", "finish", "--seed", urls[3], *common)
    assert code == 0 and out.startswith("no change is under way")
    code, out, _ = run(capsys, "cluster", "repair", "--seed", urls[3], *common)
    assert code == 0 and out.startswith("repair: 500 keys")

    code, out, _ = run(capsys, "cluster", "status", "--seed", urls[2], "--json", *common)
    status = json.loads(out)
    assert (
        code == 0
        and status["epoch"] == 7
        and [n["node"] for n in status["nodes"]] == ["r2", "r3", "r4"]
    )
    assert sum(n["keys"] for n in status["nodes"]) == 1000  # 500 keys, 2 copies each
    assert client.get_many([f"k{i}" for i in range(500)]) == {f"k{i}": f"v{i}" for i in range(500)}

    code, _, err = run(capsys, "cluster", "forget-node", urls[0], *common)
    assert code == 2 and "add --yes" in err
    code, out, _ = run(capsys, "cluster", "forget-node", urls[0], "--yes", *common)
    assert code == 0 and out.startswith("deleted ")
    client.close()


def test_errors_are_one_line(start_redis, capsys, prefix):
    (server,) = start_redis(1)
    code, _, err = run(capsys, "cluster", "status", "--seed", server.url(), "--prefix", prefix)
    assert code == 1 and err.count("\n") == 1 and "no seed answered with a cluster layout" in err
    code, _, err = run(capsys, "cluster", "create", "r1", "--prefix", prefix)
    assert code == 2 and "nodes must be NAME=URL, got 'r1'" in err
    code, _, err = run(capsys, "cluster", "status", "--seed", "redis://127.0.0.1:1/0")
    assert code == 1 and err.count("\n") == 1
    code, _, err = run(capsys, "cluster")
    assert code == 2 and "missing operation" in err
