"""Print pip constraints pinning every declared dependency to its floor.

    python .ci/floors.py > floors.txt; pip install -c floors.txt '.[test]'
    python .ci/floors.py --check   # in that environment: each is installed at its floor

Reads pyproject.toml: each runtime dependency and each dependency of the
'redis' and 'plot' extras declared as ``name>=X`` becomes ``name==X``, so
CI installs exactly the declared minimum versions and runs the suite on
them.  The test tools (pytest, hypothesis, ...) are not pinned: they are
not what a user installs with cvstore.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

EXTRAS = ("redis", "plot")


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = list(project["dependencies"])
    for extra in EXTRAS:
        specs += project["optional-dependencies"][extra]
    pins = {}
    for spec in specs:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(,.*)?", spec)
        if match is None:
            raise SystemExit(f"floors.py: {spec!r} declares no '>=' floor")
        pins[match[1].lower()] = match[2]
    return pins


def _release(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.match(r"[0-9]+(?:\.[0-9]+)*", text)[0].split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check(pins: dict[str, str]) -> int:
    """0 if every pinned distribution is installed at exactly its floor."""
    wrong = 0
    for name, floor in sorted(pins.items()):
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        ok = installed != "not installed" and _release(installed) == _release(floor)
        print(f"  {name} {installed} (floor {floor}){'' if ok else '  <- not the floor'}")
        wrong += not ok
    return 1 if wrong else 0


if __name__ == "__main__":
    pins = floors(Path(__file__).resolve().parent.parent / "pyproject.toml")
    if sys.argv[1:] == ["--check"]:
        sys.exit(check(pins))
    print("\n".join(f"{name}=={floor}" for name, floor in sorted(pins.items())))
