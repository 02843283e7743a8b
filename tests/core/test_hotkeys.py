"""The hot-keys sketch against exact counts, and what the cluster's stats() show of it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from cvstore.core.hotkeys import HotKeys, SpaceSaving


def zipf_stream(s: float, n_keys: int, length: int, seed: int) -> list[str]:
    """`length` keys drawn from Zipf(s) over `n_keys` keys (rank 1 the hottest), shuffled ids."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_keys + 1) ** s
    ranks = rng.choice(n_keys, size=length, p=p / p.sum())
    ids = rng.permutation(n_keys)  # the hottest key is not key-0
    return [f"key-{ids[r]}" for r in ranks.tolist()]


@pytest.mark.parametrize("s, capacity", [(1.1, 16), (0.9, 32), (1.5, 16)])
def test_the_true_top_keys_are_found_within_the_bound(s, capacity):
    stream = zipf_stream(s, 20_000, 200_000, seed=int(s * 10) + capacity)
    sketch = SpaceSaving(capacity)
    for start in range(0, len(stream), 500):  # in batches, as the cluster folds them
        sketch.update(stream[start : start + 500])
    for key in stream[:1000]:  # and one at a time
        sketch.add(key)
    stream = stream + stream[:1000]
    exact = Counter(stream)
    assert len(sketch.counts) <= capacity  # fixed memory, whatever the distinct keys
    assert sketch.total == len(stream)
    bound = len(stream) / capacity
    for key, count, error in sketch.top():
        assert count - error <= exact[key] <= count
        assert error <= bound
    # Every key above total / capacity is counted, and the hottest is first.
    above = [key for key, n in exact.most_common() if n > bound]
    assert above, "the stream must have keys above the bound for this test to mean something"
    assert set(above) <= set(sketch.counts)
    assert sketch.top(1)[0][0] == above[0]


def test_a_uniform_stream_keeps_the_memory_fixed():
    sketch = SpaceSaving(8)
    sketch.update(f"k{i}" for i in range(10_000))
    assert len(sketch.counts) == len(sketch.errors) == 8
    assert all(count - error == 1 for _, count, error in sketch.top())


@pytest.mark.parametrize("bad", [0, -1, 2.0, "8", None])
def test_bad_capacity(bad):
    with pytest.raises(ValueError, match=f"capacity must be an int >= 1, got {bad!r}"):
        SpaceSaving(bad)


def test_hot_keys_count_one_call_in_every_and_each_replica():
    from cvstore import Cluster, Node

    cluster = Cluster([Node(n) for n in "abcd"], replication_factor=2)
    p = cluster._state.placement
    hot = HotKeys(capacity=4, every=4)
    for i in range(4_000):
        hot.tick -= 1
        if hot.tick < 1:
            hot.sample(b"hot" if i % 8 == 3 else f"k{i}".encode(), p)
    report = hot.report(p, p.replica_names, k=3)
    assert report["sampled"] == 1_000 and report["sample_every"] == 4
    assert report["cluster"][0]["key"] == "hot"
    assert report["cluster"][0]["count"] - report["cluster"][0]["error"] <= 2_000
    assert 2_000 <= report["cluster"][0]["count"]
    holders = set(p.replica_names(b"hot"))
    for name, rows in report["per_node"].items():
        assert len(rows) <= 3
        assert (rows[:1] and rows[0]["key"] == "hot") == (name in holders)
    assert sum(report["requests"].values()) == 4_000 * 2
    assert min(report["requests"][n] for n in holders) >= 2_000
    cluster.close()


def test_a_batch_samples_one_key_in_every_along_the_countdown():
    hot = HotKeys(every=4)
    keys = [f"k{i}".encode() for i in range(10)]
    hot.tick -= 1  # one single call before the batch: 3 to go
    hot.sample_many(keys, None)
    assert hot.buffer == [b"k2", b"k6"]
    assert hot.tick == 1  # k7, k8, k9 counted down: the next call is sampled
    hot.sample_many(keys[:0], None)
    assert hot.tick == 1
    hot.sample_many([b"x"], None)
    assert hot.buffer[-1] == b"x" and hot.tick == 4
