"""Server instructions per record of batch writes and reads: cvstore's script against raw MSET/MGET.

    python bench/server_instructions.py [--batches 20] [--functions 15]

One redis-server (the one the Redis tests use) runs under ``valgrind
--tool=callgrind`` on 127.0.0.1; each case is counted alone (the counters are
zeroed before it and dumped after it), over `batches` batches of 1,000 keys
of 16 bytes with 100-byte values that are already stored (each case writes
over or reads the records of the previous pass, as the benchmarks do):

- ``raw MSET``: ``MSET`` of the 1,000 keys;
- ``cvstore put``: ``RedisStore.write_many`` of the 1,000 keys, one version
  (a cluster batch): the write script, 250 records a call, fenced by an epoch;
- ``raw MGET`` / ``cvstore get``: ``MGET`` of the 1,000 keys /
  ``RedisStore.get_many`` with an epoch (one MGET that reads the epoch too);
- ``script: ...``: the write script's calls (same keys and arguments, 250
  records a call) made to scripts that do less: return at once, only
  ``MSET`` the records, ``MGET`` the stored ones then ``MSET``: what a
  scripted write costs before any check or comparison.

Printed: instructions per record on the server, and with ``--functions`` the
functions that cost the most in each case (inclusive of what they call is
not shown: self cost, so the list adds up).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.redis_data import make_data

BATCH = 1_000
KEYS = 20_000

# Scripts called as the write script is, doing less (see main()).
FLOORS = {
    "nothing": "return {0}",
    "MSET only": """
local w = {}
for i = 3, #KEYS do w[#w + 1] = KEYS[i]; w[#w + 1] = ARGV[i + 1] end
redis.call('MSET', unpack(w))
return {0}""",
    "MGET and MSET": """
local olds = redis.call('MGET', unpack(KEYS, 3))
local w = {}
for i = 3, #KEYS do w[#w + 1] = KEYS[i]; w[#w + 1] = ARGV[i + 1] end
redis.call('MSET', unpack(w))
return {0}""",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--functions", type=int, default=0)
    parser.add_argument("--json", help="write the counts here")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")

    import redis

    from cvstore import RedisStore
    from cvstore.core.records import Record
    from cvstore.stores.redis.script import SCRIPT_BATCH
    from tests.support.redis_servers import find_redis_server

    binary = find_redis_server()
    if binary is None:
        sys.exit("no redis-server found")
    work = Path(tempfile.mkdtemp(prefix="server-instr-"))
    port = _free_port()
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={work}/cg.%p",
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        raw = redis.Redis(port=port, host="127.0.0.1", socket_timeout=120)
        for _ in range(600):
            try:
                raw.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        version = raw.info("server")["redis_version"]
        store = RedisStore(f"redis://127.0.0.1:{port}/0", prefix="b:", timeout=120)
        keys, values = make_data()
        keys, values = keys[:KEYS], values[:KEYS]
        epoch = 1
        store.swap_layout(0, epoch, b"{}")
        for i in range(0, KEYS, BATCH):
            raw.mset(dict(zip(keys[i : i + BATCH], values[i : i + BATCH])))
            store.write_many(
                keys[i : i + BATCH], [Record(1, v) for v in values[i : i + BATCH]], epoch
            )
        version_no = [1]

        def raw_mset(i: int) -> None:
            raw.mset(dict(zip(keys[i : i + BATCH], values[i : i + BATCH])))

        def cv_put(i: int) -> None:
            version_no[0] += 1
            v = version_no[0]
            refused = store.write_many(
                keys[i : i + BATCH], [Record(v, x) for x in values[i : i + BATCH]], epoch
            )
            assert refused == [None] * BATCH

        def raw_mget(i: int) -> None:
            raw.mget(keys[i : i + BATCH])

        def cv_get(i: int) -> None:
            store.get_many(keys[i : i + BATCH], epoch)

        # What a script costs before it checks anything: the same call (the
        # epoch key, the counter, 250 record keys; the operation, the epoch,
        # the version, 250 records) to scripts that do less than the write
        # script: nothing, then MSET, then MGET and MSET, then the real one.
        floors = {name: raw.script_load(text) for name, text in FLOORS.items()}
        head = (1 << 90).to_bytes(12, "big") + b"b"

        def floor(name: str) -> Any:
            def run(i: int) -> None:
                pipe = raw.pipeline(transaction=False)
                for a in range(i, i + BATCH, SCRIPT_BATCH):
                    rkeys = [b"b:r:" + k for k in keys[a : a + SCRIPT_BATCH]]
                    records = [head + v for v in values[a : a + SCRIPT_BATCH]]
                    pipe.evalsha(
                        floors[name],
                        len(rkeys) + 2,
                        b"b:m:epoch",
                        b"b:m:records",
                        *rkeys,
                        b"put",
                        b"1",
                        head[:12],
                        *records,
                    )
                pipe.execute()

            return run

        cases = [
            ("raw MSET", raw_mset),
            ("cvstore put", cv_put),
            ("raw MGET", raw_mget),
            ("cvstore get", cv_get),
            *((f"script: {name}", floor(name)) for name in FLOORS),
        ]
        print(f"Redis {version}; server instructions per record, {args.batches} batches of {BATCH}")
        counts: dict[str, float] = {}
        for n, (name, fn) in enumerate(cases):
            subprocess.run(
                ["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True
            )
            for b in range(args.batches):
                fn((b * BATCH) % KEYS)
            subprocess.run(
                ["callgrind_control", "-d", f"case{n}", str(proc.pid)],
                check=True,
                capture_output=True,
            )
            dumps = sorted(work.glob("cg.*"), key=lambda p: p.stat().st_mtime)
            dump = dumps[-1]
            text = dump.read_text(errors="replace")
            total = int(re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)[1])  # type: ignore[index]
            counts[name] = total / (args.batches * BATCH)
            print(f"{name:12} {counts[name]:10,.0f}")
            if args.functions:
                out = subprocess.run(
                    ["callgrind_annotate", "--inclusive=no", "--threshold=100", str(dump)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                # Self cost per function; callgrind_annotate also lists the
                # frames every dump is under (main and what calls it) at the
                # whole count: those, and the total, are left out.
                rows = [
                    line
                    for line in out.splitlines()
                    if re.match(r"^\s*[\d,]+ \(", line) and "(100.0%)" not in line
                ]
                for line in rows[: args.functions]:
                    print("     ", line.strip()[:140])
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "command": " ".join(sys.argv),
                        "redis_server": version,
                        "redis_py": redis.__version__,
                        "valgrind": subprocess.run(
                            ["valgrind", "--version"], check=True, capture_output=True, text=True
                        ).stdout.strip(),
                        "instructions_per_record": counts,
                    },
                    indent=1,
                )
                + "\n"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
