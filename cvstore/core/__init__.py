"""The replication core: every decision of the cluster, and no I/O.

Drivers (``cvstore.cluster.Cluster``, ``cvstore.aio.AsyncCluster``) run the
procedures here; the procedures never call a store, open a socket, start a
thread or read a clock.  They are handed what they need (a placement, a
version stamp, the time as a number) and yield the store calls they want
made (``calls.Call``), as h11 does for HTTP.

- ``records``    a record, tombstones, which copy is newest (the one comparison)
- ``keys``       str/bytes keys to store keys (the one encoding)
- ``levels``     consistency levels and read policies (the one table)
- ``placement``  a membership snapshot: who replicates a key (``Placer`` protocol)
- ``calls``      the call protocol between procedures and drivers, the failure policy
- ``writes``     put and put_many: acknowledgements, refusals and rewrites, hints
- ``reads``      get and get_many: replicas to ask, newest answer, read repair
- ``hints``      hinted handoff: holders, delivery, the hint book
- ``repair``     anti-entropy with Merkle trees
- ``rebalance``  what to stream and drop when membership changes
- ``scan``       live keys; ``stats`` the cluster snapshot; ``health`` the probe schedule
- ``failures``   the wording of UnavailableError
"""
