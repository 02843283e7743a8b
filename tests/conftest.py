"""Fixtures shared by the whole suite."""

from __future__ import annotations

import gc
import multiprocessing
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

    Modules with ``ALL_PLACEMENTS = True`` also run each under every registered
    placement (``CVSTORE_TEST_PLACEMENTS=ring`` picks some): ``drivers.Cluster``
    passes it as ``placement=`` unless the test gives one.

    ``CVSTORE_TEST_DRIVERS=sync`` (or ``async``) runs them under one: CI's runs of
    an installed wheel or sdist check the package, after the full run checked both.
    """
    if getattr(metafunc.module, "BOTH_DRIVERS", False):
        chosen = os.environ.get("CVSTORE_TEST_DRIVERS", "sync,async").split(",")
        metafunc.fixturenames.append("driver")
        metafunc.parametrize("driver", [d for d in ("sync", "async") if d in chosen], indirect=True)
    if getattr(metafunc.module, "ALL_PLACEMENTS", False):
        from cvstore.core.placements import PLACEMENTS

        chosen = os.environ.get("CVSTORE_TEST_PLACEMENTS", ",".join(PLACEMENTS)).split(",")
        metafunc.fixturenames.append("placed_by")
        metafunc.parametrize("placed_by", [p for p in PLACEMENTS if p in chosen], indirect=True)


@pytest.fixture(autouse=True)
def _contract_dimensions(request):
    """Set up the ``driver`` and ``placed_by`` fixtures a test was parametrized with.

    ``pytest_generate_tests`` parametrizes them indirectly on tests that do not
    name them; pytest (9) then gives the test the parameter but does not set
    the fixture up, so it is asked for here.
    """
    callspec = getattr(request.node, "callspec", None)
    if callspec is None:
        return
    for name in ("driver", "placed_by"):
        if name in callspec.params:
            request.getfixturevalue(name)


@pytest.fixture
def driver(request):
    """The driver ``drivers.Cluster`` makes for this test ("sync" or "async")."""
    from tests.support import drivers

    drivers.current = getattr(request, "param", "sync")
    yield drivers.current
    drivers.current = "sync"


@pytest.fixture
def placed_by(request):
    """The placement ``drivers.Cluster`` gives a cluster it makes ("ring", "rendezvous", ...)."""
    from tests.support import drivers

    drivers.placement = getattr(request, "param", "ring")
    yield drivers.placement
    drivers.placement = "ring"


@pytest.fixture
def spawn():
    """multiprocessing's "spawn" context, with no semaphore left for a collection to free.

    Queues, Events and Barriers hold named semaphores; one left in a reference cycle is
    freed by whichever garbage collection comes next.  On Python 3.12+, one that comes
    inside the resource tracker's own call (a test making a semaphore) runs their
    finalizers reentrantly: a warning per semaphore, which pytest reports as that test's
    failure (CPython gh-109629).  Collected before the test makes any and after it is
    done, they are freed outside any such call.
    """
    gc.collect()
    yield multiprocessing.get_context("spawn")
    gc.collect()
