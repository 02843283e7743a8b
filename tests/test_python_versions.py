"""An unsupported Python is refused in seconds, by the build itself, with one clear line.

pip checks ``requires-python`` only after resolving the extras: on 3.10,
``pip install -e '.[test]'`` backtracked through old releases for 14+ minutes
instead of refusing.  setup.py therefore refuses first (CI also runs both
README commands on a real 3.10 where the machine has one, see .ci/run).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "setup.py"
PYPROJECT = ROOT / "pyproject.toml"

pytestmark = pytest.mark.skipif(
    os.environ.get("CVSTORE_TEST_INSTALLED") == "1",
    reason="the build script is part of a checkout; an installed package has none",
)


def declared_oldest() -> tuple[int, int]:
    match = re.search(r'^requires-python = ">=(\d+)\.(\d+)"$', PYPROJECT.read_text(), re.MULTILINE)
    assert match, "pyproject.toml declares requires-python as >=X.Y"
    return int(match[1]), int(match[2])


def setup_oldest() -> tuple[int, int]:
    match = re.search(r"^OLDEST = \((\d+), (\d+)\)$", SETUP.read_text(), re.MULTILINE)
    assert match, "setup.py names the oldest Python it builds for"
    return int(match[1]), int(match[2])


def test_the_build_refuses_the_python_that_pyproject_refuses():
    assert setup_oldest() == declared_oldest()


def run_setup_as(version: tuple[int, ...]) -> subprocess.CompletedProcess[str]:
    """setup.py run by this interpreter told that it is `version` (no build happens)."""
    code = (
        "import sys, runpy\n"
        f"sys.version_info = {tuple(version)!r}\n"
        "sys.argv = ['setup.py', '--version']\n"
        f"runpy.run_path({str(SETUP)!r}, run_name='__main__')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_older_python_is_refused_with_one_line_naming_the_versions():
    major, minor = declared_oldest()
    result = run_setup_as((major, minor - 1, 13))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"cvstore needs Python {major}.{minor} or newer" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_oldest_supported_python_is_not_refused():
    # Past the check setup.py needs its build requirements (Cython), which pip
    # installs in the build's own environment: here only the check is asked.
    result = run_setup_as(declared_oldest() + (0,))
    assert "cvstore needs Python" not in result.stderr
