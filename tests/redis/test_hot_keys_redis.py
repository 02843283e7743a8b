"""``stats().hot_keys`` over real redis-servers (the general path, both drivers)."""

from __future__ import annotations

from tests.cluster.test_hot_keys_stats import check_hot_keys, drive
from tests.core.test_hotkeys import zipf_stream

BOTH_DRIVERS = True


def test_the_hottest_key_is_found_on_its_replicas(start_redis, make_cluster):
    cluster = make_cluster(start_redis(4), timeout=5.0)
    stream = zipf_stream(1.2, 500, 9_600, seed=5)  # 150 sampled calls (one in 64)
    drive(cluster, stream)
    check_hot_keys(cluster, stream)
