"""A write rerun after a node refused the client's layout epoch (issue 21, item 6).

The driver reruns the whole call after loading the newer layout; the first run may already
have written on the replicas that took the old epoch.  If the rerun is then refused (too
few replicas up), its error must not claim that nothing was written: it says the write may
be applied, as a failure part way does.  Over real redis-servers (the layout lives on
them), under both drivers (tests/support/drivers.py).
"""

from __future__ import annotations

import dataclasses

import pytest

from cvstore import RedisStore, UnavailableError
from cvstore.core.layout import Layout
from tests.support.drivers import raw

BOTH_DRIVERS = True


def bump_epoch(server, prefix: str) -> int:
    """Install the same layout at the next epoch on `server` alone (as a change cut short
    after its first node would), so a client on the old epoch is refused there only."""
    with RedisStore(server.url(), prefix=prefix) as store:
        epoch, data = store.read_layout()
        newer = dataclasses.replace(Layout.from_bytes(data), epoch=epoch + 1)
        assert store.swap_layout(epoch, newer.epoch, newer.to_bytes())[0] == newer.epoch
    return epoch


@pytest.mark.parametrize("call", ["put", "put_many"])
def test_a_write_refused_after_a_fenced_run_says_it_may_be_applied(
    call, start_redis, make_cluster, prefix
):
    servers = start_redis(3)
    cluster = make_cluster(servers)
    old = bump_epoch(servers[0], prefix)  # r1 holds a newer layout than the client's
    assert cluster.layout.epoch == old
    servers[2].kill()  # r3 is unreachable
    # first run: r1 refuses the epoch, r2 applies the write, r3 cannot be reached; the rerun
    # at the newer epoch then finds 2 of the 3 replicas "all" needs
    with pytest.raises(UnavailableError) as info:
        if call == "put":
            cluster.put("k", "v", consistency="all")
        else:
            cluster.put_many({"k": "v"}, consistency="all")
    message = str(info.value)
    assert message.startswith("all write needs 3 of 3 replicas, 2 alive (r3 down")
    assert message.endswith(
        f"; the write may be applied on some replicas: an earlier run of this call was "
        f"stopped when node 'r1' refused the client's layout epoch {old} (it holds "
        f"{old + 1}), and may have written to them"
    )
    assert (info.value.level, info.value.required, info.value.alive) == ("all", 3, 2)
    assert cluster.layout.epoch == old + 1  # the rerun was at the newer epoch
    r2 = next(node for node in cluster.nodes if node.name == "r2")
    assert raw(r2).get(b"k").value == "v"  # and indeed the write is applied there
