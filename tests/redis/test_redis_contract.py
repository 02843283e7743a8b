"""The store contract suite of tests/cluster/test_stores.py, run over RedisStore on a real server.

Every test class there whose tests take the ``store`` fixture is collected
here again, with ``store`` below: a RedisStore (JSON codec, since the contract
stores ints, lists and dicts too) under a prefix of its own on the shared
server.  Backend-specific classes (those that build their own store) stay
there.  New contract tests are picked up without touching this file.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

from cvstore.stores.redis import JSONCodec, RedisStore


def _contract_module():
    name = "_cvstore_store_contract"  # not "test_stores": pytest imports that one itself
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "cluster" / "test_stores.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _takes_store(cls: type) -> bool:
    return any(
        "store" in inspect.signature(fn).parameters
        for attr, fn in vars(cls).items()
        if attr.startswith("test") and callable(fn)
    )


_contract = _contract_module()
CONTRACT_CLASSES = sorted(
    name
    for name, obj in vars(_contract).items()
    if name.startswith("Test") and isinstance(obj, type) and _takes_store(obj)
)
globals().update({name: getattr(_contract, name) for name in CONTRACT_CLASSES})


def test_the_contract_is_collected_here():
    # if the suite is renamed or restructured, this says so instead of passing empty
    assert {"TestRecords", "TestHints"} <= set(CONTRACT_CLASSES)


@pytest.fixture
def store(redis_server, prefix):
    made = RedisStore(redis_server.url(), prefix=prefix, codec=JSONCodec(), name="contract")
    yield made
    made.clear()
    made.close()
