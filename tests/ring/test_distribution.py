"""Balance, minimal movement on membership changes, and placement that does not
depend on the process (PYTHONHASHSEED)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cvstore import HashRing

KEYS = [f"key-{i}" for i in range(200_000)]


def test_balance_at_100_nodes_160_points():
    ring = HashRing([f"node-{i}" for i in range(100)], vnodes=160)
    shares = np.array(list(ring.ownership().values()))
    assert shares.sum() == pytest.approx(1.0)
    assert shares.std() / shares.mean() <= 0.10
    # The keys follow the ownership shares (sampled load within a few % of them).
    counts = np.bincount(ring.lookup_many(KEYS), minlength=100) / len(KEYS)
    assert np.abs(counts - shares).max() < 0.004


def test_weights_give_proportional_shares():
    ring = HashRing({"small": 1.0, "big": 3.0}, vnodes=400)
    own = ring.ownership()
    assert own["big"] / own["small"] == pytest.approx(3.0, rel=0.25)


@pytest.mark.parametrize("n", [4, 10, 50])
def test_adding_a_node_moves_about_one_over_n_plus_one_all_to_it(n):
    ring = HashRing([f"node-{i}" for i in range(n)])
    before = [ring.nodes[i] for i in ring.lookup_many(KEYS).tolist()]
    ring.add("newcomer")
    after = [ring.nodes[i] for i in ring.lookup_many(KEYS).tolist()]
    moved = [(b, a) for b, a in zip(before, after) if b != a]
    assert {a for _, a in moved} == {"newcomer"}  # every moved key moved TO the new node
    fraction = len(moved) / len(KEYS)
    assert fraction == pytest.approx(1 / (n + 1), rel=0.25)
    assert fraction == pytest.approx(ring.ownership()["newcomer"], abs=0.005)


def test_removing_a_node_moves_only_its_keys():
    ring = HashRing([f"node-{i}" for i in range(10)])
    before = [ring.nodes[i] for i in ring.lookup_many(KEYS).tolist()]
    ring.remove("node-3")
    after = [ring.nodes[i] for i in ring.lookup_many(KEYS).tolist()]
    for b, a in zip(before, after):
        if b != "node-3":
            assert a == b
        else:
            assert a != "node-3"


def test_remove_then_add_restores_the_same_ring():
    names = [f"node-{i}" for i in range(20)]
    ring = HashRing(names)
    ring.remove("node-7")
    ring.add("node-7")
    assert ring == HashRing(names)


PROBE = """
import json, sys
from cvstore import HashRing
ring = HashRing([f"node-{i}" for i in range(17)], seed=5)
keys = [f"k{i}" for i in range(5000)]
print(json.dumps([ring.get_node(k) for k in keys] + ring.get_nodes("x", 5)))
"""


def test_same_placement_in_processes_with_different_hash_seeds():
    outputs = []
    for hash_seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        result = subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
    ring = HashRing([f"node-{i}" for i in range(17)], seed=5)
    assert outputs[0][:5000] == [ring.get_node(f"k{i}") for i in range(5000)]
