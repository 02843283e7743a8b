"""bench/ring_scale.py, run for a moment: every case measured in every round, ratios from them.

The README's ring-scale figures come from the script at 7 rounds on rings of
100, 10,000 and 100,000 nodes; this runs it at 2 rounds on rings of 10 and
200 nodes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ring_scale_times_every_case_each_round(tmp_path):
    out = tmp_path / "scale.json"
    subprocess.run(
        [
            sys.executable,
            "bench/ring_scale.py",
            "--rounds",
            "2",
            "--sizes",
            "200,10",
            "--keys",
            "3000",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    data = json.loads(out.read_text())
    assert data["sizes"] == [10, 200] and data["keys"] == 3000 and len(data["rounds"]) == 2
    for each in data["rounds"]:
        assert set(each) == {"build", "add", "remove", "lookup_many"}
        for case in each.values():
            assert set(case) == {"10", "200"}
            assert all(t["wall"] > 0 and t["cpu"] >= 0 for t in case.values())
    ratio = data["lookup_many_rate_vs_smallest"]["200"]["wall"]
    each = [
        r["lookup_many"]["10"]["wall"] / r["lookup_many"]["200"]["wall"] for r in data["rounds"]
    ]
    assert ratio["min"] == min(each) and ratio["max"] == max(each)
    assert min(each) <= ratio["median"] <= max(each)


def test_ring_scale_refuses_a_single_size(tmp_path):
    run = subprocess.run(
        [sys.executable, "bench/ring_scale.py", "--sizes", "100"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "--sizes" in run.stderr
