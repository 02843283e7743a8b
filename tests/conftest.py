"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, Verbosity, settings

# HYPOTHESIS_PROFILE=ci runs more examples; dev (the default) keeps the suite quick.

# Test classes parametrized over the two drivers call one hypothesis method from two
# instances (one per driver): the examples are the same, so that check does not apply.
_PER_DRIVER = [HealthCheck.differing_executors]
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=_PER_DRIVER)
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, *_PER_DRIVER],
)
settings.register_profile(
    "debug",
    max_examples=10,
    deadline=None,
    verbosity=Verbosity.verbose,
    suppress_health_check=_PER_DRIVER,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


class Rand(random.Random):
    """A seeded random source whose repr shows the seed, to replay a failure."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.seed_value = seed

    def __repr__(self) -> str:
        return f"Rand(seed={self.seed_value})"


@pytest.fixture
def rand() -> Rand:
    return Rand(int(os.environ.get("CVSTORE_TEST_SEED", random.randrange(2**32))))


def pytest_generate_tests(metafunc):
    """Modules with ``BOTH_DRIVERS = True`` run each test under the sync and the async driver.

    ``CVSTORE_TEST_DRIVERS=sync`` (or ``async``) runs them under one: CI's runs of
    an installed wheel or sdist check the package, after the full run checked both.
    """
    if getattr(metafunc.module, "BOTH_DRIVERS", False):
        chosen = os.environ.get("CVSTORE_TEST_DRIVERS", "sync,async").split(",")
        metafunc.fixturenames.append("driver")
        metafunc.parametrize("driver", [d for d in ("sync", "async") if d in chosen], indirect=True)


@pytest.fixture
def driver(request):
    """The driver ``drivers.Cluster`` makes for this test ("sync" or "async")."""
    from tests.support import drivers

    drivers.current = getattr(request, "param", "sync")
    yield drivers.current
    drivers.current = "sync"
