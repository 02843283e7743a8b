"""Fault tests over real Redis servers, Jepsen / Cassandra-dtest style, bounded in time.

Servers are killed (SIGKILL), restarted on the same port and directory, and
hung (SIGSTOP) by the test that started them.  Each test prints its counts.
"""

from __future__ import annotations

import threading
import time

import pytest

from cvstore import UnavailableError
from cvstore.versions import TOMBSTONE
from tests.support import drivers
from tests.support.drivers import raw

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster

LEVELS = ("one", "quorum", "all")
NEED = {"one": 1, "quorum": 2, "all": 3}  # of N = 3 replicas


def records(cluster, key):
    """The record of `key` on each of its replicas' servers, read from the servers."""
    kb = key.encode()
    return [raw(node).get(kb) for node in cluster.get_nodes_for_key(key)]


@pytest.mark.slow
def test_kill_9_under_quorum_writes_loses_no_acknowledged_write(start_redis, make_cluster):
    servers = start_redis(3, appendonly=True)
    cluster = make_cluster(servers, timeout=0.5, probe_interval=0.05, max_probe_interval=0.5)
    writers, per_writer, deadline = 4, 400, time.monotonic() + 20.0
    acked: list[list[str]] = [[] for _ in range(writers)]
    failed: list[list[str]] = [[] for _ in range(writers)]
    other_errors: list[BaseException] = []
    progress = threading.Semaphore(0)

    def write(w: int) -> None:
        try:
            for i in range(per_writer):
                if time.monotonic() > deadline:
                    return
                key = f"w{w}:{i}"
                try:
                    cluster.put(key, f"value-{key}", consistency="quorum")
                except UnavailableError:
                    failed[w].append(key)
                else:
                    acked[w].append(key)
                progress.release()
        except BaseException as exc:  # noqa: BLE001 - the test raises it after the join
            other_errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for _ in range(300):  # kill once the writers are well under way
        progress.acquire(timeout=5)
    servers[1].kill()
    for _ in range(400):  # writes go on with one replica dead
        progress.acquire(timeout=5)
    servers[1].restart()  # same port, same directory: the AOF brings its data back
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "writers did not stop"
    assert not other_errors, other_errors

    cluster.deliver_hints()
    report = cluster.repair()
    assert report.complete, report
    ok = [k for ks in acked for k in ks]
    bad = [k for ks in failed for k in ks]
    lost = [k for k in ok if any(r is None or r[1] != f"value-{k}" for r in records(cluster, k))]
    present_failed = sum(all(r is not None for r in records(cluster, k)) for k in bad)
    print(
        f"\nkill -9 under quorum writes: {len(ok)} acknowledged, {len(bad)} failed "
        f"({present_failed} of them present anyway), {len(lost)} acknowledged lost; "
        f"hints delivered {cluster.stats().hints_delivered}, repair wrote {report.repaired}"
    )
    assert len(ok) >= 300  # the writers were writing when the server died
    assert lost == []
    # Whatever a failed write left is whole after repair: on every replica or none.
    for k in bad:
        assert len({None if r is None else r[0] for r in records(cluster, k)}) == 1


@pytest.mark.parametrize("down", [0, 1, 2, 3])
def test_availability_matrix_with_servers_killed(start_redis, make_cluster, down):
    """Each (read, write) level pair with `down` of 3 servers killed.

    The first call of a client after the kills meets the dead servers: a write
    succeeds when enough replicas acknowledge, else raises UnavailableError
    (and may then be applied on the replicas that acknowledged, hinted for
    the rest, so it is whole once they return).  From then on the dead
    replicas are suspected and a call that cannot be met is refused before
    anything is written: it leaves no trace.  Never a raw redis error.
    """
    servers = start_redis(3)
    setup = make_cluster(servers)
    setup.put_many({f"{r}/{w}": "before" for r in LEVELS for w in LEVELS}, consistency="all")
    for server in servers[:down]:
        server.kill()
    up = 3 - down
    counts = {"ok": 0, "unavailable": 0}
    for r in LEVELS:
        for w in LEVELS:
            cluster = make_cluster(servers)  # a client that has not met the dead servers yet
            key = f"{r}/{w}"
            # The first call: detects the dead servers.
            try:
                cluster.put(key, "first", consistency=w)
                first_ok = True
            except UnavailableError:
                first_ok = False
            assert first_ok == (up >= NEED[w])
            assert cluster.suspected == tuple(f"r{i + 1}" for i in range(down))
            # Later calls: refused up front, or applied.
            try:
                cluster.put(key, "second", consistency=w)
                second_ok = True
            except UnavailableError as exc:
                assert "alive" in str(exc)  # refused before writing
                second_ok = False
            assert second_ok == (up >= NEED[w])
            try:
                value = cluster.get(key, consistency=r)
                read_ok = True
            except UnavailableError:
                read_ok = False
            assert read_ok == (up >= NEED[r])
            if read_ok:
                # What the README promises: a read sees an acknowledged write when
                # R + W > N.  Below that it may ask a replica the write has not
                # reached yet (AsyncCluster answers a `one` write as soon as one
                # replica applied it and finishes the others in the background).
                # The sync driver reads every replica's reply before it returns, so
                # there every live replica holds an acknowledged write.
                if not second_ok:
                    expected = {"before", "first"}
                elif NEED[r] + NEED[w] > 3 or drivers.current == "sync":
                    expected = {"second"}
                else:
                    expected = {"before", "first", "second"}
                assert value in expected, (r, w, value)
            try:
                got = cluster.get_many([key], consistency=r)
                # Where one value is promised, both reads return it; where several are
                # (R + W <= N under AsyncCluster, a write still finishing in the
                # background), the second read may see a newer one than the first.
                assert up >= NEED[r]
                assert got[key] == value if len(expected) == 1 else got[key] in expected
            except UnavailableError:
                assert up < NEED[r]
            counts["ok" if second_ok else "unavailable"] += 1
    print(f"\n{down} of 3 servers killed: {counts}")


def test_a_hung_server_makes_calls_fail_or_degrade_within_the_timeout(start_redis, make_cluster):
    servers = start_redis(3)
    cluster = make_cluster(servers, timeout=0.3, probe_interval=0.2, max_probe_interval=1.0)
    keys = [f"h{i}" for i in range(50)]
    cluster.put_many({k: "old" for k in keys})
    servers[2].pause()  # SIGSTOP: connections are accepted, nothing answers
    try:
        started = time.monotonic()
        for k in keys:
            cluster.put(k, "new")  # quorum still met by r1 and r2
        assert cluster.get_many(keys) == {k: "new" for k in keys}
        with pytest.raises(UnavailableError):
            cluster.put("h-all", "x", consistency="all")
        with pytest.raises(UnavailableError):
            cluster.get(keys[0], consistency="all")
        elapsed = time.monotonic() - started
        print(f"\nhung server: 50 puts, a batch read and 2 refused calls in {elapsed:.2f} s")
        assert elapsed < 15.0  # does not hang (generous: one timeout per probe at most)
        assert cluster.suspected == ("r3",)
    finally:
        servers[2].resume()
    cluster.deliver_hints()
    assert cluster.suspected == ()
    assert all(r is not None and r[1] == "new" for k in keys for r in records(cluster, k))


@pytest.mark.parametrize("hints", ["kept", "expired"])
def test_a_tombstone_survives_a_node_down_during_the_delete(start_redis, make_cluster, hints):
    servers = start_redis(3, appendonly=True)
    # With hint_window=0 every hint is expired when delivered: only repair can bring the delete.
    window = 3600.0 if hints == "kept" else 0.0
    # the background prober waits a minute: deliver_hints() below is what hands them over
    cluster = make_cluster(
        servers,
        hint_window=window,
        tombstone_grace=7200.0,
        probe_interval=60,
        max_probe_interval=60,
    )
    keys = [f"t{i}" for i in range(100)]
    cluster.put_many({k: "alive" for k in keys}, consistency="all")
    servers[0].kill()
    for k in keys:
        cluster.delete(k)  # quorum: r2 and r3 take the tombstone
    servers[0].restart()  # r1 comes back with the old values
    assert all(raw(cluster.node("r1")).get(k.encode())[1] == "alive" for k in keys)
    delivered = cluster.deliver_hints()
    report = cluster.repair()
    print(f"\ntombstones, hints {hints}: {delivered} delivered, repair wrote {report.repaired}")
    assert report.complete
    for k in keys:
        assert all(r is not None and r[1] is TOMBSTONE for r in records(cluster, k))
        for _ in range(3):
            assert cluster.get(k, consistency="one") is None  # from any replica
    assert cluster.get_many(keys, consistency="all") == {}
    assert len(cluster) == 0


def while_it_waits(call, condition, release, seconds=2.5):
    """Run `call` in a thread: (whether `condition()` held before `release`, its outcome).

    `condition` is polled for up to `seconds` while the call runs; then
    `release` (resuming a hung server) lets the call finish.  A call that
    finished before the release (an asyncio write answered by the replicas
    that are not hung, the last one left to finish in the background) counts
    if `condition()` holds right after it, still before the release.  The
    outcome is what it returned or raised.
    """
    finished = threading.Event()
    outcome = []

    def run():
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001 - the outcome the test looks at
            outcome.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=run)
    thread.start()
    seen = False
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not finished.is_set():
            if condition():
                seen = True
                break
            time.sleep(0.01)
        if finished.is_set() and not seen:  # answered early: what it left, before the release
            seen = condition()
    finally:
        release()
        thread.join(10.0)
    assert finished.is_set(), "the call did not finish once released"
    return seen, outcome[0]


@pytest.mark.parametrize("batch", [False, True])
def test_a_write_reaches_every_replica_while_one_of_them_hangs(start_redis, make_cluster, batch):
    # The cluster sends a write to all replicas before it waits for any reply
    # (as a Dynamo coordinator does): with the key's first replica hung, the
    # other two already hold the write while the call still waits on the first.
    servers = start_redis(3)
    cluster = make_cluster(servers, timeout=3.0)  # the poll below (2.5 s) ends first
    key = "parallel"
    first, *others = cluster.get_nodes_for_key(key)
    cluster.put(key, "before")  # connections open (a new one would wait for its handshake)
    hung = servers[int(first.name[1:]) - 1]
    hung.pause()

    def others_have_it():
        got = [raw(n).get(key.encode()) for n in others]
        return all(r is not None and r[1] == "v" for r in got)

    call = (lambda: cluster.put_many({key: "v"})) if batch else (lambda: cluster.put(key, "v"))
    seen, outcome = while_it_waits(call, others_have_it, hung.resume)
    assert seen, "the other replicas got the write only after the hung one"
    assert outcome is None
    # under asyncio the put returned before the release: the hung replica's
    # write ends in the background, once its server runs again
    for _ in range(300):
        if [r[1] for r in records(cluster, key)] == ["v", "v", "v"]:
            break
        time.sleep(0.01)
    assert [r[1] for r in records(cluster, key)] == ["v", "v", "v"]


@pytest.mark.parametrize("batch", [False, True])
def test_a_quorum_read_asks_both_replicas_while_one_of_them_hangs(start_redis, make_cluster, batch):
    # Reads too: the second replica is asked while the first still keeps the
    # call waiting (its server counts the read: INFO commandstats).
    servers = start_redis(3)
    # "primary": the quorum is the first two in preference order (the first one hangs)
    cluster = make_cluster(servers, timeout=3.0, read_policy="primary")
    key = "parallel"
    first, second, _ = cluster.get_nodes_for_key(key)
    cluster.put(key, "v")  # connections open (a new one would wait for its handshake)
    hung = servers[int(first.name[1:]) - 1]

    def reads_served() -> int:
        stats = raw(second).client.info("commandstats")
        return stats.get("cmdstat_mget", {}).get("calls", 0)

    before = reads_served()
    hung.pause()
    call = (lambda: cluster.get_many([key])) if batch else (lambda: cluster.get(key))
    seen, outcome = while_it_waits(call, lambda: reads_served() > before, hung.resume)
    assert seen, "the second replica was asked only after the hung one"
    assert outcome == ({key: "v"} if batch else "v")
