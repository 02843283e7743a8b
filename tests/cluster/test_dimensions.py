"""The contract suites' dimensions are really set up, not only named in the test ids.

Under pytest 9, a fixture appended to ``metafunc.fixturenames`` got its
parameter but was never set up: every ``[async]`` test ran the sync driver
and nothing noticed.  These fail if that comes back.
"""

from __future__ import annotations

from tests.support import drivers
from tests.support.drivers import Cluster

BOTH_DRIVERS = True
ALL_PLACEMENTS = True


def test_the_driver_and_placement_a_test_is_named_for_are_the_ones_it_gets(request):
    params = request.node.callspec.params
    assert drivers.current == params["driver"]
    assert drivers.placement == params["placed_by"]
    cluster = Cluster(replication_factor=1)
    try:
        expected = "SyncOverAsync" if params["driver"] == "async" else "Cluster"
        assert type(cluster).__name__ == expected
        assert cluster.placement == params["placed_by"]
    finally:
        cluster.close()
