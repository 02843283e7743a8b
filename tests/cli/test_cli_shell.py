"""`cvstore shell`: scripted sessions through main(), a real pseudo-terminal, sessions on disk."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path

import pytest

from cvstore import HashRing
from cvstore._cli import shell as shell_module
from cvstore._cli.shell import Shell
from cvstore.cli import main


def run_shell(capsys, monkeypatch, script, *argv):
    """Feed `script` (one command a line) to `cvstore shell`; returns (code, {command: answer})."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    code = main(["shell", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def answers(out):
    """The transcript as [(command, answer lines)], in order."""
    chunks = out.split("cvstore> ")[1:]
    result = []
    for chunk in chunks:
        command, _, rest = chunk.partition("\n")
        result.append((command, rest.rstrip("\n")))
    if result and result[-1] == ("", ""):
        result.pop()  # the prompt at the end of the input
    return result


SESSION = """\
add node1
add node2
add node3
put user:1 alice
put "greeting key" "hello world" all
get user:1
get "greeting key"
where user:1
fail node2
get user:1
put user:2 bob
get user:2
get user:2 all
recover node2
hints
get user:2 all
del user:1
get user:1
nodes
stats
quit
"""


def test_scripted_session(capsys, monkeypatch):
    code, out, err = run_shell(capsys, monkeypatch, SESSION)
    assert code == 1, out  # one command (get at 'all' with a node down) failed
    assert err == ""
    a = answers(out)
    assert [c for c, _ in a] == SESSION.splitlines()
    said = dict(enumerate(ans for _, ans in a))
    ring = HashRing(["node1", "node2", "node3"])
    prefs = ring.get_nodes("user:1", 3)

    # the duration is whatever this machine took: its format, never its value
    assert re.fullmatch(
        r"added node1 \(weight 1\): 0 copies streamed to it in \d+(\.\d+)? (ms|s)", said[0]
    ), said[0]
    assert said[3] == f"ok (quorum): on {', '.join(prefs)}"
    assert said[5] == "alice"
    assert said[6] == "hello world"
    # where: the preference list in ring order, each replica holding the value
    rows = re.findall(
        r"^\s+(\d)\. (node\d)\s+(primary|replica)\s+up\s+alice$", said[7], re.MULTILINE
    )
    assert [name for _, name, _ in rows] == prefs
    assert said[8] == "node2 is down: writes for it become hints on other nodes"
    assert said[9] == "alice"  # quorum read with 2 of 3 up
    up = [n for n in ring.get_nodes("user:2", 3) if n != "node2"]
    assert said[10] == f"ok (quorum): on {', '.join(up)}; hinted for node2"
    assert said[11] == "bob"
    assert said[12] == "error: unavailable: all read needs 3 of 3 replicas, 2 alive (node2 down)"
    assert said[13].startswith("node2 is up; 1 hint pending")
    assert said[14] == "delivered 1 hint; 0 still pending"
    assert said[15] == "bob"
    assert said[17] == "(not found)"
    # nodes: every node up, holding user:1 (a tombstone), user:2 and the greeting
    for name in ("node1", "node2", "node3"):
        assert re.search(
            rf"^\s+{name}\s+1\s+-\s+up\s+3\s+[\d.]+%\s+MemoryStore$", said[18], re.MULTILINE
        )
    assert "hints: 0 pending, 1 written, 1 delivered, 0 dropped" in said[19]
    assert "calls refused as unavailable 1" in said[19]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("frobnicate", "error: unknown command 'frobnicate'; type 'help' for the list"),
        ("put onlykey", "error: put takes KEY VALUE [LEVEL], got 1 argument"),
        ("get", "error: get takes KEY [LEVEL], got 0 arguments"),
        (
            "get k sometimes",
            "error: level must be one of one, quorum, all, eventual, strong, got 'sometimes'",
        ),
        ("add node9 -1", "error: weight must be a number from 1e-06 to 1e+06, got '-1'"),
        ("add node9 heavy", "error: weight must be a number from 1e-06 to 1e+06, got 'heavy'"),
        ("add node9 5e-324", "error: weight must be a number from 1e-06 to 1e+06, got '5e-324'"),
        ("add node9 1e308", "error: weight must be a number from 1e-06 to 1e+06, got '1e308'"),
        ("add node9 nan", "error: weight must be a number from 1e-06 to 1e+06, got 'nan'"),
        (
            "add node9 " + "9" * 400,
            "error: weight must be a number from 1e-06 to 1e+06, got 9.999e+399",
        ),
        ("add node1", "error: node 'node1' is already in the cluster"),
        ("remove ghost", "error: unknown node 'ghost' (nodes: node1, node2)"),
        ("fail ghost", "error: unknown node 'ghost' (nodes: node1, node2)"),
        ("recover node1", "error: node 'node1' is not down"),
        ('put "open quote', "error: put: no closing quotation; usage: put KEY VALUE [LEVEL]"),
        ("fill many", "error: count must be a whole number from 1 to 100,000,000, got 'many'"),
        ("save /no/such/dir/s.json", "error: cannot write '/no/such/dir/s.json': "),
        ("help frob", "error: no command 'frob'; type 'help' for the list"),
        ("nodes extra", "error: nodes takes no arguments, got 1 argument"),
    ],
)
def test_bad_commands_are_one_error_line(capsys, monkeypatch, command, message):
    script = f"add node1\nadd node2\n{command}\nget k\n"
    code, out, _ = run_shell(capsys, monkeypatch, script)
    a = answers(out)
    assert a[2][0] == command
    assert a[2][1].startswith(message), a[2][1]
    assert "\n" not in a[2][1] and "Traceback" not in out
    assert a[3] == ("get k", "(not found)")  # the shell goes on
    assert code == 1  # a script with a failed command exits 1


def test_empty_cluster_errors_say_how_to_start(capsys, monkeypatch):
    _code, out, _ = run_shell(capsys, monkeypatch, "put k v\nring\nnodes\n")
    a = answers(out)
    assert a[0][1] == "error: the cluster has no nodes; add one with 'add NAME'"
    assert a[1][1] == "the ring is empty: add a node with 'add NAME'"
    assert a[2][1] == "no nodes yet: add one with 'add NAME'"


def test_ring_picture_shows_ownership(capsys, monkeypatch):
    code, out, _ = run_shell(capsys, monkeypatch, "add a\nadd b 3\nring\n")
    assert code == 0
    picture = answers(out)[2][1]
    ring = HashRing({"a": 1.0, "b": 3.0})
    share = ring.ownership()
    assert f"ring: 2 nodes, {len(ring.points):,} points (160 per unit of weight" in picture
    assert "A a  " in picture and "B b  " in picture
    assert f"{100 * share['a']:5.1f}% of the space (weight 1: 25.0%)" in picture
    assert f"{100 * share['b']:5.1f}% of the space (weight 3: 75.0%)" in picture
    strip = re.search(r"^  ([AB]{64})$", picture, re.MULTILINE)[1]
    assert 0 < strip.count("A") < strip.count("B")


def test_help_lists_every_command(capsys, monkeypatch):
    _, out, _ = run_shell(capsys, monkeypatch, "help\nhelp put\n")
    listing = answers(out)[0][1]
    for name in (
        "add",
        "remove",
        "fail",
        "recover",
        "put",
        "get",
        "del",
        "where",
        "nodes",
        "ring",
        "stats",
        "repair",
        "hints",
        "save",
        "help",
        "quit",
    ):
        assert re.search(rf"^  {name}\b", listing, re.MULTILINE), name
    assert answers(out)[1][1].startswith("usage: put KEY VALUE [LEVEL]\n")


def test_save_and_load_keep_nodes_records_and_versions(capsys, monkeypatch, tmp_path):
    path = tmp_path / "session.json"
    script = (
        "add node1\nadd node2 2 rack-a\nadd node3\nput a 1\nput b 'two words'\nput c 3\n"
        f"del c\nfail node3\nput a 11 one\nsave {path}\n"
    )
    code, out, _ = run_shell(capsys, monkeypatch, script, "--rf", "2", "--read", "one")
    assert code == 0, out
    saved = json.loads(path.read_text())  # plain JSON, nothing pickled
    assert answers(out)[-1][1] == (
        f"saved 3 nodes and {sum(len(n['records']) for n in saved['nodes'])} records to {path}"
        " (1 pending hint not saved)"
    )
    assert saved["replication_factor"] == 2 and saved["read_consistency"] == "one"
    nodes = {n["name"]: n for n in saved["nodes"]}
    assert (nodes["node2"]["weight"], nodes["node2"]["zone"]) == (2.0, "rack-a")
    assert [n["up"] for n in saved["nodes"]] == [True, True, False]
    deleted = [r for n in saved["nodes"] for r in n["records"] if r["key"] == "c"]
    assert deleted and all(
        r == {"key": "c", "version": deleted[0]["version"], "deleted": True} for r in deleted
    )

    script = f"get a\nget b\nget c\nnodes\nrecover node3\nput b new\nget b all\nsave {path}.2\n"
    code, out, _ = run_shell(capsys, monkeypatch, script, "--load", str(path))
    assert code == 0, out
    assert out.startswith(f"cvstore shell: loaded {path}: 3 nodes, ")
    a = [ans for _, ans in answers(out)]
    assert a[0:3] == ["11", "two words", "(not found)"]
    assert re.search(r"^\s+node3\s+1\s+-\s+down\s+-", a[3], re.MULTILINE)
    assert a[6] == "new"  # a write after loading is newer than every loaded version
    again = json.loads(Path(f"{path}.2").read_text())
    old_versions = {
        (n["name"], r["key"]): r["version"] for n in saved["nodes"] for r in n["records"]
    }
    new_versions = {
        (n["name"], r["key"]): r["version"] for n in again["nodes"] for r in n["records"]
    }
    for where, version in new_versions.items():
        if where[1] == "b":
            assert version > old_versions.get(where, "")
        elif where in old_versions:
            assert version == old_versions[where]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not a JSON session file"),
        ('{"format": "something"}', "format must be 'cvstore-session', got 'something'"),
        (
            '{"format": "cvstore-session", "version": 1, "replication_factor": 0}',
            "replication_factor must be an int >= 1, got 0",
        ),
        (
            (
                '{"format": "cvstore-session", "version": 1, "replication_factor": 3, '
                '"read_consistency": "one", "write_consistency": "one", '
                '"nodes": [{"name": "a", "weight": "heavy"}]}'
            ),
            "nodes[0].weight must be a number > 0, got 'heavy'",
        ),
        (
            (
                '{"format": "cvstore-session", "version": 1, "replication_factor": 3, '
                '"read_consistency": "one", "write_consistency": "one", '
                '"nodes": [{"name": "a", "records": [{"key": "k", "version": "zz", "value": "v"}]}]}'
            ),
            "nodes[0].records[0].version must be a hex version string, got 'zz'",
        ),
    ],
)
def test_bad_session_files_are_usage_errors(capsys, monkeypatch, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, out, err = run_shell(capsys, monkeypatch, "", "--load", str(path))
    assert code == 2 and out == ""
    assert err.startswith("cvstore shell: error: argument --load: ")
    assert message in err and err.count("\n") == 1


def test_missing_session_file(capsys, monkeypatch, tmp_path):
    code, _, err = run_shell(capsys, monkeypatch, "", "--load", str(tmp_path / "nope.json"))
    assert code == 2
    assert "argument --load: cannot read" in err and "No such file" in err


def test_load_and_redis_together_is_usage_error(capsys, monkeypatch, tmp_path):
    code, _, err = run_shell(capsys, monkeypatch, "", "--load", "x.json", "--redis", "redis://h")
    assert code == 2
    assert "--load starts an in-memory session; it cannot be used with --redis" in err


def test_redis_without_the_extra_names_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis-py were not installed
    code, out, err = run_shell(capsys, monkeypatch, "", "--redis", "redis://127.0.0.1:6379/0")
    assert code == 2 and out == ""
    assert err == (
        "cvstore shell: error: RedisStore needs the 'redis' extra: pip install 'cvstore[redis]'\n"
    )


BAD_URLS = [
    ("http://x/0", "must be a redis://, rediss:// or unix:// URL"),
    ("localhost:6379", "must be a redis://, rediss:// or unix:// URL"),
    ("redis://x:99999/0", "must be a redis://host:port/db URL with a port from 1 to 65535"),
    ("redis://x:0/0", "must have a port from 1 to 65535"),
    (
        "redis://x:6379/0?socket_timeout=3",
        "must not set socket_timeout (the shell sets its own timeout)",
    ),
    ("redis://x:6379/zero", "must name a database by number (/0, /1, ...)"),
    ("redis://:6379/0", "must name a host (redis://host:port/db)"),
    ("redis://[::1/0", "must be a redis://host:port/db URL with a port from 1 to 65535"),
]


@pytest.mark.parametrize(("url", "problem"), BAD_URLS)
def test_bad_redis_urls_are_said_in_the_shells_words(capsys, monkeypatch, url, problem):
    # --redis: refused before anything connects, naming the option and the URL
    code, out, err = run_shell(capsys, monkeypatch, "", "--redis", url)
    assert (code, out) == (2, "")
    assert err == f"cvstore shell: error: --redis {problem}, got {url!r}\n"
    # add NAME ... REDIS_URL: the same words, and no node is added
    script = f"add n1 {url}\nadd n2 2 rack-a {url}\nnodes\n"
    code, out, err = run_shell(capsys, monkeypatch, script)
    a = answers(out)
    assert a[0] == (f"add n1 {url}", f"error: add: REDIS_URL {problem}, got {url!r}")
    assert a[1] == (f"add n2 2 rack-a {url}", f"error: add: REDIS_URL {problem}, got {url!r}")
    assert a[2][1] == "no nodes yet: add one with 'add NAME'"
    assert code == 1 and err == ""


def test_unreachable_redis_is_a_runtime_error(capsys, monkeypatch):
    pytest.importorskip("redis")
    code, _, err = run_shell(capsys, monkeypatch, "", "--redis", "redis://127.0.0.1:1/0")
    assert code == 1
    assert err.startswith("cvstore shell: error: cannot reach redis at 'redis://127.0.0.1:1/0'")
    assert err.count("\n") == 1


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    from tests.support import redis_servers as servers

    try:
        import redis  # noqa: F401
    except ImportError:
        servers.missing("redis-py is not installed")
    binary = servers.binary_or_missing()
    (server,) = servers.start_servers(1, tmp_path_factory.mktemp("cli-redis"), binary=binary)
    yield server.url()
    server.stop()


def test_shell_on_redis_nodes(capsys, monkeypatch, redis_url):
    prefix = f"cli-test-{os.getpid()}:"
    script = "put k v\nget k\nwhere k\nnodes\nfail node2\nget k\n"
    code, out, err = run_shell(
        capsys, monkeypatch, script, "--redis", redis_url, redis_url, redis_url, "--prefix", prefix
    )
    assert code == 0, out + err
    assert out.startswith(
        f"cvstore shell: a new cluster of 3 Redis nodes (node1 .. node3; keys under "
        f"'{prefix}node1: .. {prefix}node3:', membership kept in this shell); "
    )
    a = [ans for _, ans in answers(out)]
    assert a[1] == "v"
    assert a[2].count(" v") == 3  # every replica holds it
    assert a[3].count("RedisStore") == 3
    assert a[5] == "v"
    import redis

    client = redis.Redis.from_url(redis_url)
    names = sorted(k.decode() for k in client.keys(f"{prefix}*r:k"))
    assert names == [f"{prefix}node{i}:r:k" for i in (1, 2, 3)]
    client.close()


def test_long_rebalancing_shows_progress(capsys, monkeypatch):
    monkeypatch.setattr(shell_module, "LONG_WORK", 100)  # 100,000 in real use
    code, out, err = run_shell(capsys, monkeypatch, "add a\nadd b\nfill 200\nadd c\n", "--progress")
    assert code == 0
    assert "adding c: 400 records to go through" in err
    assert "storing" in err
    assert answers(out)[3][1].startswith("added c (weight 1): ")


def test_completion_of_nodes_and_levels():
    from cvstore import Cluster, Node

    cluster = Cluster([Node("alpha"), Node("beta"), Node("alpine")])
    sh = Shell(cluster, stdin=io.StringIO(), stdout=io.StringIO())
    assert sh.completenames("re") == ["remove ", "recover ", "repair "]
    assert sorted(sh.complete_fail("al", "fail al", 5, 7)) == ["alpha", "alpine"]
    assert sh.complete_remove("", "remove alpha ", 13, 13) == []  # one argument only
    assert sh.complete_get("q", "get k q", 6, 7) == ["quorum"]
    assert sh.complete_put("", "put k v ", 8, 8) == list(shell_module.LEVELS)
    assert sh.complete_put("", "put k ", 6, 6) == []


# ------------------------------------------------------- a real pseudo-terminal


def test_interactive_session_in_a_pty(tmp_path):
    pexpect = pytest.importorskip("pexpect")
    history = tmp_path / "history"
    env = dict(os.environ, CVSTORE_HISTORY=str(history), TERM="dumb", COLUMNS="120")
    child = pexpect.spawn(
        sys.executable, ["-m", "cvstore", "shell"], env=env, encoding="utf-8", timeout=20
    )
    try:
        child.expect("Start with: add node1")
        prompt = "cvstore> "

        def do(command, expected):
            child.expect_exact(prompt)
            child.sendline(command)
            child.expect(expected)

        do("add node1", r"added node1 \(weight 1\)")
        do("add node2", r"added node2 \(weight 1\)")
        do("add alpha", r"added alpha \(weight 1\)")
        do("put city Lisbon", r"ok \(quorum\): on ")
        do("get city", r"\r\nLisbon\r\n")
        child.expect_exact(prompt)
        child.send("fail al\t")  # tab completes the node name
        child.sendline("")
        child.expect(r"alpha is down: writes for it become hints")
        do("get city", r"\r\nLisbon\r\n")  # 2 of 3 replicas up: quorum still answers
        do(
            "get city all",
            r"error: unavailable: all read needs 3 of 3 replicas, 2 alive "
            r"\(alpha down\)",
        )
        do("put city Porto", r"ok \(quorum\): on .*hinted for alpha")
        do("bogus", r"error: unknown command 'bogus'")
        child.expect_exact(prompt)
        child.send("\x1b[A\x1b[A")  # history: up twice, back to the put
        child.sendline("")
        child.expect(r"ok \(quorum\): on .*hinted for alpha")
        do("get city", r"\r\nPorto\r\n")
        do("quit", pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in (child.before or "")
    assert "put city Porto" in history.read_text()


def test_shell_on_one_redis_node_names_it_once_and_notes_the_rf(capsys, monkeypatch, redis_url):
    prefix = f"cli-test-one-{os.getpid()}:"
    code, out, err = run_shell(
        capsys, monkeypatch, "put k v\n", "--redis", redis_url, "--prefix", prefix
    )
    assert code == 0, out + err
    first, second = out.splitlines()[:2]
    assert first.startswith(
        f"cvstore shell: a new cluster of 1 Redis node (node1; keys under '{prefix}node1:', "
        "membership kept in this shell); replication factor 3"
    )
    assert second == (
        "note: replication factor 3 with 1 node: each key has 1 copy, one per node, "
        "until more nodes join"
    )
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
