"""The `cvstore` entry points: help, version, usage errors, and a light `import cvstore`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cvstore import __version__
from cvstore._cli.args import parse_count
from cvstore.cli import main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "shell", "simulate", "bench"):
        assert f"    {command}" in out


@pytest.mark.parametrize("command", ["demo", "shell", "simulate", "bench"])
def test_each_command_has_help(capsys, command):
    assert main([command, "--help"]) == 0
    assert f"usage: cvstore {command}" in capsys.readouterr().out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"cvstore {__version__}\n"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["frobnicate"], "cvstore: error: argument COMMAND: invalid choice: 'frobnicate'"),
        ([], "cvstore: error: missing command: choose one of demo, shell, simulate, bench"),
        (["--nodes", "3"], "cvstore: error: argument COMMAND: invalid choice: '3'"),
        (["simulate", "extra"], "cvstore simulate: error: unrecognized arguments: extra"),
        (
            ["bench", "--keys", "ten"],
            "cvstore bench: error: argument --keys: must be a whole number",
        ),
        (
            ["bench", "--seconds", "0"],
            "cvstore bench: error: argument --seconds: must be seconds from 0.001 to 60, got '0'",
        ),
        (["demo", "--keys", "-5"], "cvstore demo: error: argument --keys: must be a whole number"),
        (
            ["shell", "--rf", "0"],
            "cvstore shell: error: argument --rf: must be a whole number from 1",
        ),
        (
            ["shell", "--read", "some"],
            "cvstore shell: error: argument --read: invalid choice: 'some'",
        ),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys, argv, expected):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(expected), err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10", 10),
        ("10k", 10_000),
        ("10M", 10_000_000),
        ("1_000", 1000),
        ("2.5k", 2500),
        ("1e6", 1_000_000),
        ("1,000", 1000),
        ("x", None),
        ("1.5", None),
        ("", None),
        ("inf", None),
    ],
)
def test_counts_understand_suffixes(text, value):
    assert parse_count(text) == value


def run(*argv):
    return subprocess.run(
        [sys.executable, *argv], check=False, capture_output=True, text=True, timeout=60
    )


def test_python_m_cvstore_help():
    proc = run("-m", "cvstore", "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: cvstore ")
    proc = run("-m", "cvstore", "simulate", "--nodes", "x")
    assert proc.returncode == 2
    assert proc.stderr == (
        "cvstore simulate: error: argument --nodes: must be a whole number from 1 to 100,000, "
        "got 'x' (see 'cvstore simulate --help')\n"
    )


def test_import_cvstore_stays_light():
    code = (
        "import sys, cvstore, cvstore.cli\n"
        "heavy = [m for m in ('matplotlib', 'tqdm', 'tabulate', 'cvstore._cli.simulate',"
        " 'cvstore._cli.shell', 'cvstore._cli.demo', 'cvstore._cli.bench', 'uhashring')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
        "import cvstore._cli\n"
    )
    proc = run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n"
    proc = run("-c", "import sys, cvstore; print('cvstore.cli' in sys.modules)")
    assert proc.stdout == "False\n"


def test_import_cvstore_leaves_asyncio_and_redis_until_asked():
    # The asyncio driver and the Redis stores are imported on first use: neither
    # `import cvstore` nor `cvstore demo` pays for them; the names still work.
    optional = "('cvstore.aio', 'asyncio', 'redis', 'cvstore.stores.redis')"
    code = (
        "import sys, cvstore\n"
        f"print([m for m in {optional} if m in sys.modules])\n"
        "from cvstore.cli import main\n"
        "assert main(['demo', '--keys', '30']) == 0\n"
        f"print([m for m in {optional} if m in sys.modules])\n"
        "import asyncio\n"
        "from cvstore import AsyncCluster, AsyncRedisStore, RedisStore, Node\n"
        "from cvstore.stores import RedisStore as Same\n"
        "assert Same is RedisStore and cvstore.AsyncCluster is AsyncCluster\n"
        "assert {'AsyncCluster', 'RedisStore'} <= set(dir(cvstore))\n"
        "async def use():\n"
        "    async with AsyncCluster([Node('a'), Node('b')], replication_factor=2) as c:\n"
        "        await c.put('k', 'v')\n"
        "        return await c.get('k')\n"
        "print(asyncio.run(use()), AsyncRedisStore.__name__)\n"
    )
    proc = run("-c", code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[-2:] == ["[]", "v AsyncRedisStore"]
    proc = run("-c", "import cvstore; cvstore.NoSuchName")
    assert proc.returncode == 1
    assert "AttributeError: module 'cvstore' has no attribute 'NoSuchName'" in proc.stderr


def test_the_command_line_imports_no_numpy_before_it_listens_for_ctrl_c():
    # The `cvstore` script imports cvstore.cli (and so the package) before
    # main() can catch Ctrl-C: that import is kept free of numpy and the
    # cluster, so the window where Ctrl-C would print a traceback is a few
    # milliseconds, not the quarter second numpy takes.
    code = (
        "import sys, cvstore.cli\n"
        "print([m for m in ('numpy', 'cvstore._ring', 'cvstore.cluster') if m in sys.modules])\n"
    )
    proc = run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n"


# Ctrl-C arriving while numpy is being imported: a finder raises
# KeyboardInterrupt at that import, exactly as the signal would.
CTRL_C_DURING = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
from cvstore.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["demo"],
        ["simulate", "--nodes", "3", "--keys", "10"],
        ["cluster", "status", "--seed", "redis://127.0.0.1:1/0"],
    ],
)
def test_ctrl_c_while_starting_is_one_line_and_exit_130(argv):
    proc = run("-c", CTRL_C_DURING.format(module="numpy", argv=argv))
    assert proc.returncode == 130, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"cvstore {argv[0]}: interrupted")
    assert lines[0].endswith("nothing was changed")
