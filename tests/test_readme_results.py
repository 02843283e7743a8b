"""Every results file the README names is in the repository.

The README quotes no figure without the run it comes from
(``bench/results/...``); a file renamed or never committed would leave a
figure with nothing behind it.  Names may use a brace list
(``-quiet-{1,2,3}.json``: each must exist) or ``*`` (at least one must).
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "bench" / "results"
NAMED = re.compile(r"bench/results/[\w.*{},-]+\.(?:json|txt)")


def expand(name: str) -> list[str]:
    """A name with at most one {a,b,...} list, as the names it stands for."""
    match = re.search(r"\{([^}]*)\}", name)
    if match is None:
        return [name]
    return [name[: match.start()] + part + name[match.end() :] for part in match[1].split(",")]


def test_expand_names_every_file_of_a_brace_list():
    assert expand("a-{1,2}.json") == ["a-1.json", "a-2.json"]
    assert expand("a.json") == ["a.json"]


# The results are the repository's, not the sdist's: CI's run of the tests
# against an installed wheel copies the tests and the README alone.
@pytest.mark.skipif(not RESULTS.is_dir(), reason="bench/results is not beside these tests")
def test_every_results_file_the_readme_names_exists():
    names = sorted(set(NAMED.findall(README.read_text(encoding="utf-8"))))
    assert len(names) > 20  # the pattern still finds the README's names
    missing = [
        path
        for name in names
        for path in expand(name)
        if not any(ROOT.glob(path))  # a plain name globs to itself when it exists
    ]
    assert missing == []
