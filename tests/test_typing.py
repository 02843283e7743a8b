"""Types: what a type checker sees of the installed package.

mypy runs in a scratch directory, so it can only find cvstore where Python
imports it from: the editable install of a checkout (the checkout on sys.path
through a .pth line) or an installed wheel or sdist.  Three checks:

- tests/typing/user_script.py passes ``mypy --strict`` (its ``assert_type``
  lines fail if a public call returns ``Any`` or the wrong type);
- tests/typing/misuse.py gets exactly the errors its ``# error: CODE``
  comments name (a misspelled consistency level among them), on those lines;
- the package itself passes mypy with the project's configuration.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import get_args

import mypy  # noqa: F401 - in the test extra: when it is missing these tests fail, not skip
import pytest

import cvstore
from cvstore import Hash, Level, ReadPolicy
from cvstore._ring import HASHES
from cvstore.core.levels import LEVEL_NAMES, READ_POLICIES

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "typing"
PYPROJECT = HERE.parent / "pyproject.toml"
MARK = re.compile(r"#\s*error:\s*([a-z-]+)")
REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory away from the checkout, holding copies of the scripts and one mypy cache."""
    where = tmp_path_factory.mktemp("typing")
    for script in SCRIPTS.glob("*.py"):
        shutil.copy(script, where / script.name)
    return where


def run_mypy(scratch: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--cache-dir",
            str(scratch / ".mypy_cache"),
            "--no-color-output",
            "--no-error-summary",
            "--show-error-codes",
            *args,
        ],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def errors(output: str) -> set[tuple[int, str]]:
    found = set()
    for line in output.splitlines():
        match = REPORTED.match(line)
        if match:
            found.add((int(match["line"]), match["code"]))
    return found


def test_the_literal_types_name_exactly_what_the_checks_accept() -> None:
    assert get_args(Level) == LEVEL_NAMES
    assert get_args(ReadPolicy) == READ_POLICIES
    assert get_args(Hash) == HASHES


def test_a_typed_user_script_passes_mypy_strict(scratch: Path) -> None:
    run = run_mypy(scratch, "--strict", "user_script.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "error" not in run.stdout


def test_the_user_script_runs(scratch: Path) -> None:
    run = subprocess.run(
        [sys.executable, "user_script.py"],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr


def test_mypy_finds_cvstore_where_python_imports_it(scratch: Path) -> None:
    # reveal_type of the module's file: mypy must resolve the same package
    # (an editable install through an import hook would be "not found").
    (scratch / "where.py").write_text("import cvstore\nreveal_type(cvstore.Cluster)\n")
    run = run_mypy(scratch, "where.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'Revealed type is "def [V' in run.stdout, run.stdout
    assert "import-not-found" not in run.stdout
    assert Path(cvstore.__file__).parent.name == "cvstore"


def test_mypy_strict_catches_each_misuse_on_its_line(scratch: Path) -> None:
    lines = (scratch / "misuse.py").read_text().splitlines()
    expected = {(n, m[1]) for n, text in enumerate(lines, 1) if (m := MARK.search(text))}
    assert len(expected) >= 10
    run = run_mypy(scratch, "--strict", "misuse.py")
    assert run.returncode == 1, run.stdout + run.stderr
    assert errors(run.stdout) == expected, run.stdout


def test_the_package_passes_mypy(scratch: Path) -> None:
    if not PYPROJECT.is_file():
        pytest.fail(f"the project's pyproject.toml is missing beside the tests ({PYPROJECT})")
    run = run_mypy(scratch, "--config-file", str(PYPROJECT), "-p", "cvstore")
    assert run.returncode == 0, run.stdout + run.stderr
