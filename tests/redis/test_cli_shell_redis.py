"""`cvstore shell --redis` on servers that already hold a cluster: the real command, piped input.

The cluster is made with ``Cluster.create`` (its layout on the nodes, as
``cvstore cluster create`` makes it); the shell must work on that cluster,
never build another one beside it without saying so.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from cvstore import Cluster, Node, RedisStore

KEYS = {f"user:{i}": f"profile-{i}" for i in range(300)}


def shell(*argv, script=""):
    """Run `cvstore shell ARGV` with `script` on stdin; (exit code, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "cvstore", "shell", *argv],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def answers(out):
    """{command: its answer} from the shell's transcript."""
    found = {}
    for chunk in out.split("cvstore> ")[1:]:
        command, _, rest = chunk.partition("\n")
        if command:
            found[command] = rest.rstrip("\n")
    return found


def create(servers, prefix):
    cluster = Cluster.create(
        [
            Node(f"r{i + 1}", store=RedisStore(server.url(), prefix=prefix))
            for i, server in enumerate(servers)
        ],
        replication_factor=3,
    )
    cluster.put_many(KEYS)
    cluster.close()


def keys_on(server):
    import redis

    client = redis.Redis.from_url(server.url())
    try:
        return sorted(k.decode() for k in client.keys("*"))
    finally:
        client.close()


def test_the_shell_joins_the_cluster_it_finds(start_redis):
    servers = start_redis(4)
    create(
        servers[:3], "cvstore:"
    )  # the default prefix of the shell, Cluster.join and cvstore cluster
    first, fourth = servers[0].url(), servers[3].url()
    script = (
        "nodes\n"
        "get user:7 all\n"
        "put city Lisbon all\n"
        "add r5\n"
        f"add r9 {first}\n"
        f"add r4 {fourth}\n"
        "get user:7 all\n"
    )
    code, out, err = shell("--redis", first, script=script)
    assert err == ""
    assert out.splitlines()[0] == (
        f"cvstore shell: joined the cluster under prefix 'cvstore:' on {first} (layout epoch 1): "
        "3 Redis nodes (r1, r2, r3); replication factor 3, reads quorum, writes quorum."
    )
    a = answers(out)
    assert [line.split()[0] for line in a["nodes"].splitlines()[2:5]] == ["r1", "r2", "r3"]
    assert a["get user:7 all"] == "profile-7"
    assert a["put city Lisbon all"].startswith("ok (all): on r")
    # a joined cluster's node is a Redis server: no in-process node, no second name for one
    assert a["add r5"] == (
        "error: add: this cluster's nodes are Redis servers; give the new node's URL: "
        "add NAME [WEIGHT] [ZONE] [REDIS_URL]"
    )
    assert a[f"add r9 {first}"] == (
        f"error: add: node 'r1' already keeps its keys at {first} under prefix 'cvstore:'; "
        "a node needs a server (or db) of its own"
    )
    assert a[f"add r4 {fourth}"].startswith(f"added r4 (weight 1) on {fourth}: ")
    assert code == 1  # the two refused adds

    # what the shell did is the cluster's: another client sees r4 and the new key
    other = Cluster.join([servers[1].url()])
    try:
        assert sorted(node.name for node in other.nodes) == ["r1", "r2", "r3", "r4"]
        assert other.layout.epoch == 3  # one membership change: changing, then stable
        assert other.get("city", consistency="all") == "Lisbon"
        assert other.get_many(list(KEYS), consistency="all") == KEYS
        assert other.node("r4").store.count() > 0  # r4 received its copies
    finally:
        other.close()
    for server in servers:  # nothing was written under a prefix of the shell's own
        assert not [k for k in keys_on(server) if not k.startswith(("cvstore:r:", "cvstore:m:"))]


def test_a_cluster_under_another_prefix_is_named_not_ignored(start_redis):
    servers = start_redis(3)
    create(servers, "app:")
    url = servers[0].url()
    before = keys_on(servers[0])

    code, out, err = shell("--redis", url, script="get user:1\n")
    assert (code, out) == (2, "")
    join = f"cvstore shell --redis {url} --prefix app:"
    assert err == (
        f"cvstore shell: error: no cluster under prefix 'cvstore:' on {url}, but one under "
        f"prefix 'app:' on {url} (epoch 1: 3 nodes r1, r2, r3); to join it: {join}; to start "
        "a new cluster beside it, give --prefix PREFIX\n"
    )
    assert keys_on(servers[0]) == before  # nothing written

    # the command it gives joins that cluster
    code, out, err = shell(*join.split()[2:], script="get user:1\n")
    assert (code, err) == (0, "")
    assert out.startswith(f"cvstore shell: joined the cluster under prefix 'app:' on {url}")
    assert answers(out)["get user:1"] == "profile-1"

    # a prefix chosen on purpose: a new cluster beside it, and a note of what is there
    code, out, err = shell("--redis", url, "--prefix", "mine:", script="get user:1\n")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(
        "cvstore shell: a new cluster of 1 Redis node (node1; keys under 'mine:node1:', "
        "membership kept in this shell)"
    )
    assert lines[1] == (
        f"note: no cluster under prefix 'mine:', but one under prefix 'app:' on {url} "
        f"(epoch 1: 3 nodes r1, r2, r3); to join it: {join}"
    )
    assert answers(out)["get user:1"] == "(not found)"


def test_a_seed_down_does_not_stop_the_join(start_redis):
    servers = start_redis(3)
    create(servers, "cvstore:")
    servers[0].stop()
    dead, alive = servers[0].url(), servers[1].url()
    code, out, err = shell("--redis", dead, alive, script="get user:5\n")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(
        f"cvstore shell: joined the cluster under prefix 'cvstore:' on {alive}"
    )
    assert lines[1] == f"note: {dead} did not answer; joined through the others"
    assert answers(out)["get user:5"] == "profile-5"  # quorum: 2 of 3 replicas up


@pytest.mark.parametrize("option", [["--rf", "2"], ["--vnodes", "100"]])
def test_options_of_a_new_cluster_do_not_reshape_a_joined_one(start_redis, option):
    servers = start_redis(3)
    create(servers, "cvstore:")
    code, out, err = shell("--redis", servers[2].url(), *option, script="get user:3\n")
    assert (code, err) == (0, "")
    used = {"--rf": 3, "--vnodes": 160}[option[0]]
    assert out.splitlines()[1] == (
        f"note: {option[0]} {option[1]} not used: the cluster's layout says {used}"
    )
    assert answers(out)["get user:3"] == "profile-3"


def test_the_shell_works_on_a_cluster_placed_by_rendezvous(start_redis):
    # A cluster whose layout names another placement than the ring: the shell
    # joins it and every command answers (no ring to draw, shares by weight).
    servers = start_redis(3)
    cluster = Cluster.create(
        [
            Node(f"r{i + 1}", store=RedisStore(server.url(), prefix="cvstore:"))
            for i, server in enumerate(servers)
        ],
        replication_factor=3,
        placement="rendezvous",
    )
    cluster.put_many(KEYS)
    cluster.close()
    script = "nodes\nring\nget user:7 all\nput city Lisbon\nget city\nstats\n"
    code, out, err = shell("--redis", servers[0].url(), "--vnodes", "40", script=script)
    assert (code, err) == (0, ""), (out, err)
    said = answers(out)
    assert "33.3%" in said["nodes"]
    assert said["ring"] == "the cluster places keys by rendezvous hashing: it has no ring to draw"
    assert said["get user:7 all"] == "profile-7"
    assert said["get city"] == "Lisbon"
    assert "--vnodes 40 not used" in out
