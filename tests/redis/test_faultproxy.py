"""The fault proxy (tests/support/faultproxy.py) does what each mode says, seen by redis-py.

Each test talks to a real redis-server through one proxy link with a raw redis-py
client, and checks the server directly (not through the proxy) for what arrived.
The only time assertion is that a reply did not arrive within the client's timeout.
"""

from __future__ import annotations

import pytest
import redis
import redis.backoff
import redis.retry

from tests.support.faultproxy import FaultProxy
from tests.support.waiting import wait_until

SHORT = 0.3  # s: the client's timeout where a reply must NOT come
LONG = 5.0  # s: the client's timeout where a reply must come


@pytest.fixture
def proxy():
    with FaultProxy() as p:
        yield p


@pytest.fixture
def link(proxy, redis_server):
    return proxy.link("127.0.0.1", redis_server.port)


@pytest.fixture
def direct(redis_server):
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=LONG)
    yield client
    client.close()


def client_for(link, timeout: float) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=link.port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),  # one try: a fault shows
    )


def test_pass_forwards_both_ways(link, direct, prefix):
    client = client_for(link, LONG)
    assert client.set(prefix + "k", b"v")
    assert direct.get(prefix + "k") == b"v"
    assert client.get(prefix + "k") == b"v"
    assert link.accepted == 1
    client.close()


def test_delay_past_the_timeout_loses_the_reply_then_a_patient_client_gets_it(link, direct, prefix):
    impatient = client_for(link, SHORT)
    assert impatient.ping()  # connected (and its handshake answered) before the delay
    link.delay(up=0.0, down=2 * SHORT)
    with pytest.raises(redis.TimeoutError):
        impatient.set(prefix + "k", b"v")
    impatient.close()
    # The request was not lost, only its reply was late.
    assert wait_until(lambda: direct.get(prefix + "k") == b"v", seconds=LONG)
    patient = client_for(link, LONG)
    assert patient.get(prefix + "k") == b"v"
    patient.close()


def test_delay_with_jitter_keeps_the_order_of_bytes(link, prefix):
    link.delay(up=0.01, down=0.01, jitter=0.05)
    client = client_for(link, LONG)
    pipe = client.pipeline(transaction=False)
    for _ in range(50):
        pipe.incr(prefix + "n")
    assert pipe.execute() == list(range(1, 51))
    for i in range(51, 61):
        assert client.incr(prefix + "n") == i
    client.close()


def test_partition_cuts_open_connections_and_refuses_new_ones(link, direct, prefix):
    client = client_for(link, LONG)
    assert client.ping()
    link.partition()
    assert link.open_connections == 0
    with pytest.raises(redis.ConnectionError):
        client.set(prefix + "k", b"v")
    fresh = client_for(link, LONG)
    with pytest.raises(redis.ConnectionError):
        fresh.set(prefix + "k", b"v")
    assert link.refused >= 1
    assert direct.get(prefix + "k") is None
    link.heal()
    assert fresh.set(prefix + "k", b"after")
    assert direct.get(prefix + "k") == b"after"
    client.close()
    fresh.close()


def test_blackhole_accepts_and_never_answers(link, direct, prefix):
    link.blackhole()
    client = client_for(link, SHORT)
    with pytest.raises(redis.TimeoutError):
        client.set(prefix + "k", b"v")
    assert link.accepted == 1  # the connection was accepted, not refused
    assert direct.get(prefix + "k") is None  # and what was sent was discarded
    client.close()
    link.heal()
    client = client_for(link, LONG)
    assert client.set(prefix + "k", b"healed")
    assert direct.get(prefix + "k") == b"healed"
    client.close()


def test_stall_holds_bytes_and_delivers_them_late_on_heal(link, direct, prefix):
    impatient = client_for(link, SHORT)
    assert impatient.ping()  # connected before the stall
    link.stall()
    with pytest.raises(redis.TimeoutError):
        impatient.set(prefix + "k", b"late")
    assert direct.get(prefix + "k") is None  # held, not delivered
    link.heal()
    assert wait_until(lambda: direct.get(prefix + "k") == b"late", seconds=LONG)
    impatient.close()


def test_stall_then_heal_delivers_the_reply_to_a_waiting_client(link, proxy, prefix):
    import threading

    client = client_for(link, LONG)
    assert client.ping()
    link.stall()
    result: list[object] = []
    caller = threading.Thread(target=lambda: result.append(client.incr(prefix + "n")))
    caller.start()
    caller.join(SHORT)
    assert caller.is_alive()  # no reply while stalled
    link.heal()
    caller.join(LONG)
    assert result == [1]
    client.close()


def test_flap_alternates_pass_and_partition(link, direct, prefix):
    link.flap(period=0.1)
    ok = failed = 0
    for i in range(400):
        client = client_for(link, LONG)
        try:
            client.set(prefix + "k", str(i))
            ok += 1
        except redis.ConnectionError:
            failed += 1
        finally:
            client.close()
        if ok and failed:
            break
        wait_until(lambda: False, seconds=0.01, step=0.01)
    assert ok > 0 and failed > 0
    link.heal()
    client = client_for(link, LONG)
    for i in range(20):
        assert client.set(prefix + "k", f"healed{i}")
    client.close()


def _connections(direct) -> int:
    """Client connections the server holds, not counting `direct`'s own."""
    return len(direct.client_list()) - 1


def test_half_open_closes_the_servers_side_and_leaves_the_client_hanging(link, direct, prefix):
    client = client_for(link, SHORT)
    assert client.ping()
    assert _connections(direct) == 1
    link.half_open()
    # the server has let go of the connection; the client still believes in it
    assert wait_until(lambda: _connections(direct) == 0, seconds=LONG)
    with pytest.raises(redis.TimeoutError):  # no reset, no reply: a timeout
        client.set(prefix + "k", b"v")
    fresh = client_for(link, SHORT)
    with pytest.raises(redis.TimeoutError):  # a new connection is accepted and hangs too
        fresh.set(prefix + "k", b"v")
    assert _connections(direct) == 0
    assert direct.get(prefix + "k") is None  # nothing reached the server
    fresh.close()
    client.close()
    link.heal()
    client = client_for(link, LONG)
    assert client.set(prefix + "k", b"healed")
    assert direct.get(prefix + "k") == b"healed"
    client.close()


def test_leaving_half_open_resets_the_hanging_client_side(link, direct, prefix):
    client = client_for(link, LONG)
    assert client.ping()
    link.half_open()
    assert wait_until(lambda: _connections(direct) == 0, seconds=LONG)
    assert link.open_connections == 1  # the client's side, still open
    link.heal()
    assert link.open_connections == 0  # reset: there is no server side to heal back to
    # redis-py sees the reset before it sends and connects again
    assert client.set(prefix + "k", b"v")
    assert link.accepted == 2
    assert direct.get(prefix + "k") == b"v"
    client.close()


def test_one_way_applies_the_request_and_loses_the_reply(link, direct, prefix):
    client = client_for(link, SHORT)
    assert client.ping()
    link.one_way()
    with pytest.raises(redis.TimeoutError):
        client.set(prefix + "k", b"applied")
    assert wait_until(lambda: direct.get(prefix + "k") == b"applied", seconds=LONG)
    client.close()
    link.heal()
    client = client_for(link, LONG)
    assert client.get(prefix + "k") == b"applied"
    client.close()


def test_bad_parameters_are_refused_and_change_nothing(link):
    with pytest.raises(ValueError, match="period"):
        link.flap(period=0)
    with pytest.raises(ValueError, match="jitter"):
        link.delay(jitter=-1)
    with pytest.raises(ValueError, match="mode must be one of"):
        link.set_mode("drop")
    assert link.mode == "pass"


def test_links_are_independent(proxy, redis_server, prefix, direct):
    a = proxy.link("127.0.0.1", redis_server.port)
    b = proxy.link("127.0.0.1", redis_server.port)
    a.partition()
    ca, cb = client_for(a, LONG), client_for(b, LONG)
    with pytest.raises(redis.ConnectionError):
        ca.ping()
    assert cb.set(prefix + "k", b"b")
    ca.close()
    cb.close()


def test_the_proxy_in_a_child_process_forwards_and_delays(redis_server, direct, prefix):
    """bench/adaptive_reads.py measures through ProxyProcess: the same links, another process."""
    import os

    from tests.support.proxy_process import ProxyProcess

    with ProxyProcess() as child:
        remote = child.link("127.0.0.1", redis_server.port)
        client = client_for(remote, LONG)
        assert client.set(prefix + "k", b"v") and direct.get(prefix + "k") == b"v"
        remote.delay(down=SHORT * 2)
        impatient = client_for(remote, SHORT)
        with pytest.raises(redis.exceptions.TimeoutError):
            impatient.get(prefix + "k")  # the reply is held past this client's timeout
        remote.heal()
        assert client.get(prefix + "k") == b"v"
        with pytest.raises(RuntimeError, match="refused"):
            remote.set_mode("no-such-mode")
        impatient.close()
        client.close()
        pid = child._child.pid
    assert child._child.returncode is not None  # the child ended with the context
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
