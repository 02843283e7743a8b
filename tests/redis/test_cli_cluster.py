"""``cvstore cluster`` against real redis-servers: create, status, add, remove, weight, repair, finish, forget-node."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from cvstore import Cluster, Node, RedisStore
from cvstore._cli.cluster import EXAMPLES
from cvstore.cli import main
from cvstore.core.layout import Layout


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_names_a_placement_other_than_the_ring(start_redis, capsys, prefix):
    servers = start_redis(2)
    nodes = [Node(f"r{i}", store=RedisStore(s.url(), prefix=prefix)) for i, s in enumerate(servers)]
    cluster = Cluster.create(nodes, replication_factor=2, placement="rendezvous")
    try:
        code, out, _ = run(
            capsys, "cluster", "status", "--seed", servers[0].url(), "--prefix", prefix
        )
        assert code == 0 and "replication factor 2, placement rendezvous, seed 0" in out
        code, out, _ = run(
            capsys, "cluster", "status", "--seed", servers[1].url(), "--prefix", prefix, "--json"
        )
        assert code == 0 and json.loads(out)["placement"] == "rendezvous"
    finally:
        cluster.close()


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
    assert code == 1 and err.count("\n") == 1 and "the database is empty" in err
    code, _, err = run(capsys, "cluster", "create", "r1", "--prefix", prefix)
    assert code == 2 and "nodes must be NAME=URL, got 'r1'" in err
    code, _, err = run(capsys, "cluster", "status", "--seed", "redis://127.0.0.1:1/0")
    assert code == 1 and err.count("\n") == 1
    code, _, err = run(capsys, "cluster")
    assert code == 2 and "missing operation" in err


# ------------------------------------------------- the real command, as a subprocess


def cvstore(*argv: str, env: dict[str, str] | None = None, timeout: float = 120):
    """Run the installed ``cvstore`` program; (exit code, stdout, stderr)."""
    environ = {k: v for k, v in os.environ.items() if k != "CVSTORE_SEED"}
    environ.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "cvstore", *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
    )
    return proc.returncode, proc.stdout, proc.stderr


def make(urls, prefix, rf=2):
    code, _, err = cvstore(
        "cluster", "create", *(f"r{i + 1}={u}" for i, u in enumerate(urls)), "--rf", str(rf),
        "--prefix", prefix,
    )  # fmt: skip
    assert code == 0, err
    return Cluster.join([urls[0]], prefix=prefix)


def layout_epoch(url, prefix):
    with RedisStore(url, prefix=prefix) as store:
        return store.read_layout()[0]


def test_add_refuses_an_address_a_member_has(start_redis, prefix):
    servers = start_redis(3)
    urls = [s.url() for s in servers]
    make(urls, prefix).close()
    same = urls[2].replace("127.0.0.1", "localhost")  # one server under two names
    for url in (urls[2], same):
        code, out, err = cvstore("cluster", "add", "r9", url, "--seed", urls[0], "--prefix", prefix)
        assert code == 2 and out == "" and err.count("\n") == 1, (code, err)
        assert "member r3" in err and "its own server" in err
    assert layout_epoch(urls[0], prefix) == 1  # nothing changed
    code, out, err = cvstore("cluster", "create", f"x={urls[0]}", "--prefix", prefix)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "already belongs to cluster" in err and "'cvstore cluster status --seed URL'" in err
    assert "Cluster." not in err


def test_create_refuses_one_address_given_twice(start_redis, prefix):
    servers = start_redis(2)
    a, b = (s.url() for s in servers)
    code, out, err = cvstore(
        "cluster", "create", f"x={a}", f"y={b}", f"z={a.replace('127.0.0.1', 'localhost')}",
        "--prefix", prefix,
    )  # fmt: skip
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "z and x have one address" in err
    assert layout_epoch(a, prefix) == 0 and layout_epoch(b, prefix) == 0


def test_forget_node_refuses_a_member_and_spares_other_prefixes(start_redis, prefix):
    servers = start_redis(3)
    urls = [s.url() for s in servers]
    client = make(urls, prefix)
    client.put_many({f"k{i}": str(i) for i in range(300)})
    # another cluster on the same servers whose prefix lies inside this one's
    inner_prefix = prefix + "node1:"
    inner = make(urls[:1], inner_prefix, rf=1)
    inner.put_many({f"i{i}": str(i) for i in range(50)})
    raw = redis.Redis.from_url(urls[0])
    inner_keys = set(raw.scan_iter(match=inner_prefix.encode() + b"*"))
    assert len(inner_keys) >= 50

    held = len(list(raw.scan_iter(match=prefix.encode() + b"r:*")))
    code, out, err = cvstore("cluster", "forget-node", urls[0], "--yes", "--prefix", prefix)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "is node r1 of cluster" in err and "cvstore cluster remove r1" in err
    assert len(list(raw.scan_iter(match=prefix.encode() + b"r:*"))) == held > 0

    code, out, err = cvstore("cluster", "remove", "r1", "--seed", urls[1], "--prefix", prefix)
    assert code == 0, err
    code, out, err = cvstore("cluster", "forget-node", urls[0], "--yes", "--prefix", prefix)
    assert code == 0 and out.startswith("deleted "), err
    assert list(raw.scan_iter(match=prefix.encode() + b"r:*")) == []
    assert set(raw.scan_iter(match=inner_prefix.encode() + b"*")) == inner_keys
    assert inner.get_many([f"i{i}" for i in range(50)]) == {f"i{i}": str(i) for i in range(50)}
    client.close()
    client = Cluster.join([urls[1]], prefix=prefix)
    assert client.get_many([f"k{i}" for i in range(300)], consistency="all") == {
        f"k{i}": str(i) for i in range(300)
    }
    raw.close()
    inner.close()
    client.close()


def test_each_reason_for_no_cluster_has_its_own_words(start_redis, prefix):
    servers = start_redis(2)
    urls = [s.url() for s in servers]
    make(urls[:1], prefix, rf=1).close()
    port = urls[1].rsplit(":", 1)[1].split("/")[0]
    cases = {
        "redis://127.0.0.1:1/0": "connection refused",
        "redis://no-such-host.invalid:6379/0": "no such host 'no-such-host.invalid'",
        urls[1]: "the database is empty",
        f"redis://127.0.0.1:{port}/99": "the server has no database 99",
    }
    for url, words in cases.items():
        code, _, err = cvstore("cluster", "status", "--seed", url, "--prefix", prefix)
        assert code == 1 and err.count("\n") == 1, (url, err)
        assert words in err and "Cluster.create" not in err and "cvstore cluster create" in err
    code, _, err = cvstore("cluster", "status", "--seed", urls[0], "--prefix", "elsewhere:")
    assert code == 1 and err.count("\n") == 1
    assert f"other prefixes found here: {prefix!r}" in err and "--prefix" in err
    code, _, err = cvstore("cluster", "forget-node", "redis://127.0.0.1:1/0", "--yes")
    assert code == 1 and err.count("\n") == 1
    assert "connection refused" in err and "nothing was deleted" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (
            ("status", "--seed", "http://x/0"),
            "--seed must be a redis://, rediss:// or unix:// URL, got 'http://x/0'",
        ),
        (
            ("status", "--seed", "redis://127.0.0.1:6379/0?socket_timeout=3"),
            "--seed must not set socket_timeout in the URL",
        ),
        (
            ("status", "--seed", "redis://127.0.0.1:99999/0"),
            "--seed must have a port from 1 to 65535, got 'redis://127.0.0.1:99999/0'",
        ),
        (
            ("add", "r4", "http://x/0", "--seed", "redis://127.0.0.1:1/0"),
            "URL must be a redis://, rediss:// or unix:// URL, got 'http://x/0'",
        ),
        (("create", "a=redis://h:0/0"), "the URL of a must have a port from 1 to 65535"),
        (("forget-node", "redis://h:1/x", "--yes"), "URL must name a database by number"),
    ],
)
def test_bad_urls_are_usage_errors_in_the_command_lines_words(argv, words):
    code, out, err = cvstore("cluster", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert words in err and "url_or_client" not in err and "RedisStore" not in err


def test_the_seed_can_come_from_the_environment(start_redis, prefix):
    servers = start_redis(2)
    urls = [s.url() for s in servers]
    make(urls, prefix).close()
    code, out, err = cvstore("cluster", "status", "--prefix", prefix, env={"CVSTORE_SEED": urls[1]})
    assert code == 0 and "layout epoch 1, stable" in out, err
    code, out, err = cvstore("cluster", "status", "--prefix", prefix)
    assert code == 2 and "--seed is required" in err and "CVSTORE_SEED" in err
    code, out, err = cvstore("cluster", "status", env={"CVSTORE_SEED": "http://x/0"})
    assert code == 2 and "CVSTORE_SEED must be a redis://" in err


@pytest.mark.parametrize("op", [None, *EXAMPLES])
def test_every_help_gives_an_example(op):
    code, out, err = cvstore("cluster", *([op] if op else []), "--help")
    assert code == 0 and err == ""
    assert "example" in out
    assert f"  cvstore cluster {op or ''}" in out


def test_a_node_down_status_exits_1_as_help_says_and_add_names_the_real_epoch(start_redis, prefix):
    servers = start_redis(4)
    urls = [s.url() for s in servers]
    make(urls[:3], prefix).close()
    servers[2].kill()
    code, out, _ = cvstore("cluster", "status", "--seed", urls[0], "--prefix", prefix)
    assert code == 1 and "DOWN" in out
    code, out, err = cvstore("cluster", "add", "r4", urls[3], "--seed", urls[0], "--prefix", prefix)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "r3 down" in err and "the layout stays at epoch 1" in err and "epoch 2" not in err
    assert layout_epoch(urls[0], prefix) == 1
    _, out, _ = cvstore("cluster", "status", "--help")
    assert "Exits 1 when a node is down" in " ".join(out.split())


def _changing(store) -> Layout | None:
    _, data = store.read_layout()
    layout = Layout.from_bytes(data) if data is not None else None
    return layout if layout is not None and layout.changing else None


def interrupt_when_changing(argv, seed, prefix):
    """Start ``cvstore`` with `argv`, send SIGINT once the layout says changing; the result."""
    # A test run started in the background of a shell inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: the command would never see the
    # Ctrl-C.  It is given Python's handler first, as a terminal's process has it.
    start = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('cvstore', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", start, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with RedisStore(seed, prefix=prefix) as store:
        deadline = time.monotonic() + 60
        while _changing(store) is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        # Frozen while the layout still says changing, the command gets its Ctrl-C as
        # it wakes, whatever the machine's load: on a busy machine the change used to
        # finish between this process seeing it and the signal landing.
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.05)  # a request already sent is answered meanwhile
        assert _changing(store) is not None, "the change never showed in the layout"
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.mark.slow
@pytest.mark.parametrize("op", ["remove", "add"])
def test_an_interrupted_change_says_how_to_finish_or_take_it_back(start_redis, prefix, op):
    servers = start_redis(4)
    urls = [s.url() for s in servers]
    client = make(urls[:3], prefix)
    keys = {f"k{i}": f"v{i}" for i in range(40_000)}  # streaming takes a while (> 0.5 s)
    client.put_many(keys)
    client.close()
    argv = ("remove", "r2") if op == "remove" else ("add", "r4", urls[3])
    common = ("--seed", urls[0], "--prefix", prefix)
    code, out, err = interrupt_when_changing(("cluster", *argv, *common), urls[0], prefix)
    assert code == 130 and out == "", (code, out, err)
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and err.count("\n") == 1, err
    node = argv[1]
    assert f"interrupted: the layout is left changing ({op} {node}) at epoch 2" in last
    assert f"'cvstore cluster finish --seed {urls[0]} --prefix {prefix}'" in last
    assert f"'cvstore cluster finish --abort --seed {urls[0]} --prefix {prefix}'" in last
    code, out, _ = cvstore("cluster", "status", *common)
    assert f"changing ({op} {node})" in out and "'cvstore cluster finish'" in out
    # the command it names finishes the change, and nothing is lost
    code, out, err = cvstore("cluster", "finish", *common)
    assert code == 0 and out.startswith(f"finished the change ({op} {node}); layout epoch 3"), err
    client = Cluster.join([urls[0]], prefix=prefix)
    assert client.get_many(list(keys), consistency="all") == keys
    client.close()


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_cluster_lines() -> list[str]:
    """The lines of the README's `cvstore cluster` example block, comments removed."""
    text = README.read_text()
    start = text.index("```bash\n", text.index("**`cvstore cluster`** operates a cluster"))
    block = text[start + len("```bash\n") : text.index("```", start + 7)]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_readmes_cluster_commands_run_in_order(start_redis):
    lines = readme_cluster_lines()
    ops = [line.split()[2] for line in lines if line.startswith("cvstore cluster ")]
    assert ops == [
        "create", "status", "add", "weight", "remove", "repair", "finish", "forget-node"
    ]  # fmt: skip
    servers = start_redis(4)
    real = {f"127.0.0.1:700{i + 1}": f"127.0.0.1:{s.port}" for i, s in enumerate(servers)}
    env: dict[str, str] = {}
    keys = {f"k{i}": f"v{i}" for i in range(1000)}
    for line in lines:
        for shown, actual in real.items():
            line = line.replace(shown, actual)
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value
            continue
        argv = shlex.split(line)
        assert argv[:2] == ["cvstore", "cluster"], line
        code, out, err = cvstore(*argv[1:], env=env)
        assert code == 0 and err == "", (line, out, err)
        if argv[2] == "create":
            client = Cluster.join([servers[0].url()])
            client.put_many(keys)
            client.close()
    urls = [s.url() for s in servers]
    code, out, _ = cvstore("cluster", "status", "--json", "--seed", urls[3])
    status = json.loads(out)
    assert code == 0 and [n["node"] for n in status["nodes"]] == ["r2", "r3", "r4"]
    assert {n["node"]: n["weight"] for n in status["nodes"]}["r4"] == 2
    assert sum(n["keys"] for n in status["nodes"]) == 2000  # 1,000 keys, 2 copies each
    with redis.Redis.from_url(urls[0]) as raw:
        assert raw.dbsize() == 0  # r1 forgotten
    client = Cluster.join([urls[1]])
    assert client.get_many(list(keys), consistency="all") == keys
    client.close()


def test_streaming_shows_a_progress_bar_when_asked_and_none_when_piped(start_redis, prefix):
    servers = start_redis(5)
    urls = [s.url() for s in servers]
    client = make(urls[:3], prefix)
    client.put_many({f"k{i}": "v" for i in range(25_000)})
    client.close()
    common = ("--seed", urls[0], "--prefix", prefix)
    code, out, err = cvstore("cluster", "add", "r4", urls[3], "--progress", *common)
    assert code == 0 and out.startswith("added r4: ")
    assert "streaming" in err and "copies/s" in err, err  # copies done of total, and the rate
    code, out, err = cvstore("cluster", "add", "r5", urls[4], *common)  # stderr is a pipe
    assert code == 0 and out.startswith("added r5: ") and err == ""
    code, out, err = cvstore("cluster", "repair", "--progress", *common)
    assert code == 0 and out.startswith("repair: 25,000 keys")


def test_clear_deletes_its_own_keys_and_no_nested_prefixs(redis_server, prefix):
    from cvstore.core.records import Record

    outer = RedisStore(redis_server.url(), prefix=prefix)
    nested = [RedisStore(redis_server.url(), prefix=prefix + p) for p in ("node1:", "r:", "h:")]
    for store in (outer, *nested):
        store.put_many([(b"k", Record(1, "v")), (b"node1:x", Record(1, "v"))])
        store.put_hints("n9", [(b"k", Record(2, "h"))])
    others = {prefix + "plain-key": "x"}  # not a key of the store's shapes
    with redis.Redis.from_url(redis_server.url()) as raw:
        raw.mset(others)
        before = set(raw.scan_iter(match=prefix.encode() + b"*"))
        assert outer.clear() == 5  # 2 records, 1 hint set, 2 counters
        after = set(raw.scan_iter(match=prefix.encode() + b"*"))
        assert before - after == {
            prefix.encode() + k for k in (b"r:k", b"r:node1:x", b"h:n9", b"m:records", b"m:hints")
        }
        for store in nested:
            assert store.count() == 2 and store.count_hints() == 1
            assert store.clear() == 5
        assert set(raw.scan_iter(match=prefix.encode() + b"*")) == {prefix.encode() + b"plain-key"}
        raw.delete(*others)


def test_ctrl_c_once_the_outcome_is_printed_does_not_change_it(start_redis, prefix):
    servers = start_redis(3)
    urls = [s.url() for s in servers]
    make(urls[:2], prefix).close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvstore", "cluster", "add", "r3", urls[2], "--seed", urls[0],
         "--prefix", prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    first = proc.stdout.readline()  # printed (and flushed) once the work is done
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert first.startswith("added r3: ") and rest == ""
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode == 0 and err == "", (proc.returncode, err)
