"""bench/batch_cpu.py and bench/server_instructions.py, run for a moment: they measure every case.

The README's figures come from the scripts at 10 rounds and 20 batches; this
runs them at one round of two batches (servers started and stopped by the
scripts, on 127.0.0.1) and checks that every case was measured.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(script: str, args: list[str], out: Path) -> dict:
    subprocess.run(
        [sys.executable, f"bench/{script}", *args, "--json", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return json.loads(out.read_text())


def test_batch_cpu_measures_both_sides_of_every_batch(redis_mod, tmp_path):
    data = _run(
        "batch_cpu.py", ["--rounds", "1", "--batches", "2", "--keys", "5000"], tmp_path / "cpu.json"
    )
    sides = ("raw", "cvstore")
    cases = [
        f"{d}-{op}-{side}" for d in ("sync", "async") for op in ("write", "read") for side in sides
    ]
    assert sorted(data["medians"]) == sorted(cases)
    for figures in data["medians"].values():
        assert figures["client_ns"] > 0 and figures["wall_ns"] > 0
        assert figures["server_ns"] >= 0


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_server_instructions_counts_every_case(redis_mod, tmp_path):
    data = _run("server_instructions.py", ["--batches", "1"], tmp_path / "instr.json")
    counts = data["instructions_per_record"]
    assert set(counts) >= {"raw MSET", "cvstore put", "raw MGET", "cvstore get"}
    # a versioned write through the script costs the server more than a plain MSET
    assert counts["cvstore put"] > counts["script: nothing"] > 0
    assert counts["cvstore put"] > counts["raw MSET"] > 0
