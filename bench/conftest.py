"""Session fixtures for the benchmarks: seeded key lists, node names and rings.

Run with ``pytest bench --benchmark-only`` (the default ``pytest`` run only
collects ``tests/``).  Every input is built once per session from a fixed seed,
so two runs time the same keys on the same rings.
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from typing import Any

import numpy as np
import pytest

from cvstore import HashRing

VNODES = 160
KEY_SEED = 20240229
KEY_MIN_LEN = 10
KEY_MAX_LEN = 18
_KEY_ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789:_-", dtype=np.uint8)

# Distributions whose versions go into the JSON's machine_info (bench/report.py prints them).
_VERSIONED = (
    "cvstore",
    "numpy",
    "uhashring",
    "xxhash",
    "jump-consistent-hash",
    "pytest-benchmark",
    "redis",
    "hiredis",
)


@functools.cache
def make_keys(n: int, seed: int = KEY_SEED) -> list[str]:
    """`n` distinct ASCII str keys of 10-18 characters (so 10-18 UTF-8 bytes), seeded.

    The same (n, seed) always gives the same list; callers must not mutate it.
    The keys are sliced from one random text in a single comprehension that
    allocates nothing else, so the str objects lie in memory in list order, as
    in any freshly built list.  This matters: a batch over 1M keys is bound by
    reading the key objects, and the same keys scattered among freed
    temporaries take about twice as long to hash, for every implementation.
    """
    rng = np.random.default_rng([seed, n])
    while True:
        lengths = rng.integers(KEY_MIN_LEN, KEY_MAX_LEN + 1, size=n)
        ends = np.cumsum(lengths)
        codes = rng.integers(0, len(_KEY_ALPHABET), size=int(ends[-1]) if n else 0)
        text = _KEY_ALPHABET[codes].tobytes().decode("ascii")
        bounds = list(zip((ends - lengths).tolist(), ends.tolist()))
        keys = [text[start:end] for start, end in bounds]
        if len(set(keys)) == n:  # a repeat is all but impossible; draw again if it happens
            return keys


def node_names(count: int) -> list[str]:
    """``node-0`` ... ``node-{count-1}``."""
    return [f"node-{i}" for i in range(count)]


@pytest.fixture(scope="session")
def keys_1k() -> list[str]:
    return make_keys(1_000)


@pytest.fixture(scope="session")
def keys_100k() -> list[str]:
    return make_keys(100_000)


@pytest.fixture(scope="session")
def keys_1m() -> list[str]:
    return make_keys(1_000_000)


@pytest.fixture(scope="session")
def nodes_100() -> list[str]:
    return node_names(100)


@pytest.fixture(scope="session")
def nodes_1000() -> list[str]:
    return node_names(1000)


@pytest.fixture(scope="session")
def ring_100(nodes_100: list[str]) -> HashRing:
    """100 nodes x 160 points: the ring of the get_node and lookup_many targets."""
    return HashRing(nodes_100, vnodes=VNODES)


@pytest.fixture(scope="session")
def ring_1000(nodes_1000: list[str]) -> HashRing:
    """1000 nodes x 160 points: the ring of the build and add_node targets."""
    return HashRing(nodes_1000, vnodes=VNODES)


@pytest.fixture(scope="module")
def redis_mod() -> Any:
    """redis-py, or the Redis benchmarks are skipped."""
    return pytest.importorskip("redis")


@pytest.fixture(scope="module")
def start_redis_servers(redis_mod: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``start_redis_servers(count)`` -> redis-servers on 127.0.0.1, stopped when the module ends.

    The binary is found as the Redis tests find it; without one the benchmark
    is skipped (in CI: fails).
    """
    from tests.support import redis_servers

    started: list[Any] = []

    def start(count: int) -> list[Any]:
        binary = redis_servers.binary_or_missing()
        directory = tmp_path_factory.mktemp("bench-redis")
        servers = redis_servers.start_servers(count, directory, binary=binary)
        started.extend(servers)
        return servers

    yield start
    redis_servers.stop_servers(started)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Record library versions and the load average, so a saved run says what it measured."""
    machine_info["versions"] = {"python": platform.python_version()}
    for dist in _VERSIONED:
        machine_info["versions"][dist] = _version(dist)
    if hasattr(os, "getloadavg"):
        machine_info["loadavg"] = list(os.getloadavg())
