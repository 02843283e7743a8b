"""What an installed cvstore carries: the typing and Cython sources beside the
compiled ring, and (when CI runs the suite against a wheel or an sdist install,
CVSTORE_TEST_INSTALLED=1) that the package under test is the installed one."""

from __future__ import annotations

import os
import sysconfig
from importlib import metadata, resources
from pathlib import Path

import pytest

import cvstore
import cvstore._ring

INSTALLED = os.environ.get("CVSTORE_TEST_INSTALLED") == "1"


@pytest.mark.parametrize("name", ["py.typed", "_ring.pyi", "_ring.pyx", "_chash.pxd"])
def test_package_ships_its_stubs_and_cython_sources(name):
    assert resources.files("cvstore").joinpath(name).is_file(), name


def test_stub_names_the_public_ring_api():
    stub = resources.files("cvstore").joinpath("_ring.pyi").read_text()
    for name in ("class HashRing", "def get_node", "def get_nodes_many", "def lookup_many"):
        assert name in stub


def test_metadata_declares_python_and_dependency_floors():
    meta = metadata.metadata("cvstore")
    assert meta["Requires-Python"] == ">=3.11"
    requires = metadata.requires("cvstore") or []
    assert any(r.startswith("numpy>=") for r in requires), requires
    assert any(r.startswith("redis>=6.0") and 'extra == "redis"' in r for r in requires), requires


@pytest.mark.skipif(not INSTALLED, reason="only when CI tests an installed wheel or sdist")
def test_the_package_under_test_is_the_installed_one():
    here = Path(cvstore.__file__).resolve().parent
    sites = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    assert any(site in here.parents for site in sites), (here, sites)
    assert Path(cvstore._ring.__file__).resolve().parent == here
    # The generated C is a build product that a wheel must not ship.
    assert not list(here.glob("*.c")), list(here.glob("*.c"))
