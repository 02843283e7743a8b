"""`cvstore demo`: every number it prints equals what the cluster (and the ring) hold."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from cvstore import Cluster, HashRing
from cvstore._cli import demo
from cvstore.cli import main

K = 3000
KEYS = [f"user:{i:04d}" for i in range(K)]


def n(text):
    return int(text.replace(",", ""))


def bars(block):
    """{node: (copies, primaries)} from the bar lines of one step."""
    found = re.findall(
        r"^\s+(node\d)\s+#+\s+([\d,]+) copies, primary for ([\d,]+)$", block, re.MULTILINE
    )
    return {name: (n(c), n(p)) for name, c, p in found}


def steps(out):
    parts = re.split(r"^(?=\d\. )", out, flags=re.MULTILINE)
    return {int(p[0]): p for p in parts if p[:1].isdigit()}


@pytest.fixture
def clusters(monkeypatch):
    """Every Cluster the demo makes, to look at after it finished."""
    made = []

    class Recorded(Cluster):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(demo, "Cluster", Recorded)
    return made


def holders(names, keys, rf=3):
    """Copies per node and primaries per node, from a ring built here."""
    ring = HashRing(names)
    pref = ring.get_nodes_many(keys, rf)
    copies = np.bincount(pref.ravel(), minlength=len(names))
    primaries = np.bincount(pref[:, 0], minlength=len(names))
    return {name: (int(copies[i]), int(primaries[i])) for i, name in enumerate(ring.nodes)}


def test_demo_numbers_match_the_cluster(capsys, clusters):
    assert main(["demo"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    (cluster,) = clusters
    s = steps(out)

    # 1. all keys on all 3 nodes; primaries as the ring places them
    three = ["node1", "node2", "node3"]
    assert bars(s[1]) == holders(three, KEYS)
    assert f"stored {K:,} keys as {3 * K:,} copies" in s[1]

    # 2. node2 down: every read works, 1/6 of the keys rewritten with hints for node2
    changed = K // 6
    assert f"{K:,} of {K:,} returned the stored value" in s[2]
    assert f"wrote {changed:,} keys at quorum" in s[2]
    assert f"{changed:,} hints kept for node2" in s[2]
    assert "refused: all write needs 3 of 3 replicas, 2 alive (node2 down)" in s[2]

    # 3. the hints reach node2
    assert f"hints delivered to node2: {changed:,} (still pending: 0)" in s[3]
    assert f"node2 now holds the new value of {changed:,} of the {changed:,} keys" in s[3]
    assert cluster.stats().hints_delivered == changed

    # 4. node4 joins: exactly the copies its new preference lists give it are streamed
    four = [*three, "node4"]
    after_add = holders(four, KEYS)
    assert bars(s[4]) == after_add
    streamed = n(re.search(r"copies streamed to node4: ([\d,]+)", s[4])[1])
    assert streamed == after_add["node4"][0]
    old = np.array(HashRing(three).nodes)[HashRing(three).lookup_many(KEYS)]
    new = np.array(HashRing(four).nodes)[HashRing(four).lookup_many(KEYS)]
    owner_moves = n(re.search(r"primary owner changed for ([\d,]+) keys", s[4])[1])
    assert owner_moves == int((old != new).sum())
    assert "ideal 2,250 = 3,000 keys x 3 copies / 4 nodes" in s[4]
    assert "copies moved between the old nodes: 0" in s[4]

    # 5. node1 leaves: its copies are handed over, nothing is lost
    held = after_add["node1"][0]
    assert f"copies streamed: {held:,}; node1 held {held:,}" in s[5]
    assert f"{K:,} of {K:,} have their latest value; lost or wrong: 0" in s[5]
    assert f"keys with all 3 copies current on node2, node3, node4: {K:,} of {K:,}" in s[5]
    final = bars(s[5])
    assert final == holders(["node2", "node3", "node4"], KEYS)
    assert {name: c for name, (c, _) in final.items()} == cluster.stats().keys_per_node
    assert sorted(node.name for node in cluster.nodes) == ["node2", "node3", "node4"]
    values = cluster.get_many(KEYS, consistency="all")
    assert len(values) == K
    assert sum(v.endswith("-v2") for v in values.values()) == changed
    assert out.rstrip().splitlines()[-1].startswith(f"result: OK: {K:,} keys written")


def test_demo_key_count_and_seed(capsys, clusters):
    assert main(["demo", "--keys", "600", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "stored 600 keys as 1,800 copies" in out
    assert "wrote 100 keys at quorum" in out
    assert len(clusters[0]) == 600


def test_demo_exits_1_when_a_key_is_lost(capsys, monkeypatch):
    class Lossy(Cluster):
        def remove_node(self, node):
            report = super().remove_node(node)
            for member in self.nodes:  # a bug that drops one key everywhere
                member.store.delete(b"user:0042")
            return report

    monkeypatch.setattr(demo, "Cluster", Lossy)
    assert main(["demo"]) == 1
    out = capsys.readouterr().out
    assert "lost or wrong: 1" in out
    assert "result: FAILED: 1 keys lost or wrong (user:0042)" in out


# ------------------------------------------------- progress: a terminal only


def demo_command(*argv):
    return [sys.executable, "-m", "cvstore", "demo", "--keys", "40000", *argv]


def test_progress_shows_on_a_terminal():
    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, TERM="dumb", COLUMNS="120")
    command = demo_command()
    child = pexpect.spawn(command[0], command[1:], env=env, encoding="utf-8", timeout=120)
    try:
        # each long step: keys done and the rate (tqdm's "keys/s"), or how long it has run
        child.expect(r"storing: .*keys/s")
        child.expect(r"1\. store 40,000 keys")
        child.expect(r"reading at quorum: .*keys/s")
        child.expect(r"streaming copies to node4 \(120,000 copies in the cluster\): .* elapsed")
        child.expect(r"streaming node1's [\d,]+ copies to the others: .* elapsed")
        child.expect(r"reading back at 'all': .*keys/s")
        child.expect(r"checking every copy: .*copies/s")
        child.expect(r"result: OK: 40,000 keys written")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_no_progress_when_piped_or_refused():
    piped = subprocess.run(demo_command(), capture_output=True, text=True, timeout=120, check=False)
    assert piped.returncode == 0
    assert piped.stderr == ""  # the bar goes to stderr, and only to a terminal
    assert "\r" not in piped.stdout and "keys/s" not in piped.stdout
    assert piped.stdout.rstrip().splitlines()[-1].startswith("result: OK: 40,000 keys")
    asked = subprocess.run(
        demo_command("--progress"), capture_output=True, text=True, timeout=120, check=False
    )
    assert asked.returncode == 0 and "storing" in asked.stderr
    # the same report either way (all but the last line, which gives the time taken)
    assert asked.stdout.splitlines()[:-1] == piped.stdout.splitlines()[:-1]
    pexpect = pytest.importorskip("pexpect")
    command = demo_command("--no-progress")
    out = pexpect.run(command[0] + " " + " ".join(command[1:]), timeout=120, encoding="utf-8")
    assert "result: OK: 40,000 keys" in out
    assert "storing" not in out and "elapsed" not in out
