"""ClusterStats: a snapshot of how a cluster's data is spread and how it has fared."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cvstore.core.calls import Call, Op, Proc, failed

__all__ = ("ClusterStats", "gather", "make_stats")


@dataclass(frozen=True)
class ClusterStats:
    """What ``Cluster.stats()`` returns.

    Attributes
    ----------
    nodes : int
        Members, up or down.
    down : tuple[str, ...]
        Members that are down (absent from the per-node figures).
    keys_per_node : dict[str, int]
        Live keys (tombstones and expired values excluded) each up node holds.
    share : dict[str, float]
        Each up node's fraction of all live copies.
    weight_share : dict[str, float]
        The fraction its weight asks for, among the up nodes.
    imbalance : float
        max(share / weight_share): 1.0 is perfectly even, 1.2 means some
        node holds 20% more than its weight asks for.  0.0 when empty.
    hints_pending : int
        Hints held by up nodes, waiting for their owners.
    hints_written, hints_delivered, hints_dropped : int
        Since the cluster was made.
    read_repairs : int
        Replica copies fixed by reads, since the cluster was made.
    unavailable_errors : int
        Calls refused with UnavailableError, since the cluster was made.
    suspected : tuple[str, ...]
        Members suspected down because their store was unreachable (also in `down`).
    per_node : dict[str, dict]
        For every member: ``up``, ``suspected``, ``failed`` (taken down by
        ``fail()``), ``failures`` (store errors the cluster met),
        ``last_failure``, ``suspected_for_s``, ``next_probe_in_s``,
        ``latency_ms`` (the read latency the "fastest" policy tracks), the
        inputs of the "adaptive" policy's score (``read_latency_ms``, its
        moving average; ``read_p95_ms``; ``reads_outstanding``;
        ``read_error_rate``) with ``hedges_sent`` to the node and
        ``hedges_won`` by it, and
        everything the store's own ``stats()`` reports (a RedisStore: calls,
        errors, timeouts, connection_errors, error_replies, unreadable,
        mean_ms, max_ms, p50_ms, p99_ms).
    unreadable : int
        Records the stores could not parse, and keys under their prefixes
        that are not cvstore's, met so far (the sum of the stores' counts).
    hedges_sent, hedges_won : int
        Hedged reads ("adaptive" policy, both drivers) that asked one more
        replica (an exploring read's extra replica included), and those that
        replica answered before the ones asked first, since the cluster was made.
    hot_keys : dict
        What this client's calls asked for (``core.hotkeys``: one ``put`` or
        ``get`` in ``sample_every``, and one key in ``sample_every`` of each
        ``put_many``/``get_many``, is counted): ``cluster``, the top keys as
        ``{"key", "count", "error"}`` with counts estimating calls (the
        sampled count lies in ``[count - error, count]``, times
        ``sample_every``; ``error`` is at most ``bound``); ``per_node``, those
        of them each member keeps a copy of; ``requests``, the estimated calls
        per member as a replica; ``sampled``, the calls counted.
    """

    nodes: int
    down: tuple[str, ...]
    keys_per_node: dict[str, int]
    share: dict[str, float]
    weight_share: dict[str, float]
    imbalance: float
    hints_pending: int
    hints_written: int
    hints_delivered: int
    hints_dropped: int
    read_repairs: int
    unavailable_errors: int
    suspected: tuple[str, ...] = ()
    per_node: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreadable: int = 0
    hedges_sent: int = 0
    hedges_won: int = 0
    hot_keys: dict[str, Any] = field(default_factory=dict)


def gather(placement: Any, now_ms: int) -> Proc[tuple[dict[str, int], int]]:
    """(live copies per up node that answered, hints those nodes hold)."""
    up = [node for node in placement.nodes if node.is_up]
    results = yield [Call(node, Op.SCAN_VERSIONS) for node in up] + [
        Call(node, Op.COUNT_HINTS) for node in up
    ]
    scans, hint_counts = results[: len(up)], results[len(up) :]
    keys_per_node = {
        node.name: _live_copies(result[2], result[3], now_ms)
        for node, result in zip(up, scans)
        if not failed(result)
    }
    hints = sum(n for n in hint_counts if not failed(n))
    return keys_per_node, hints


def _live_copies(tombs: list[bool], expires: list[int], now_ms: int) -> int:
    dead = sum(tombs)
    if any(expires):
        dead += sum(1 for e in expires if 0 < e <= now_ms)
    return len(tombs) - dead


def make_stats(
    placement: Any,
    keys_per_node: dict[str, int],
    hints_pending: int,
    book: Any,
    counters: Mapping[str, int],
    per_node: dict[str, dict[str, Any]],
    hot_keys: dict[str, Any] | None = None,
) -> ClusterStats:
    """Assemble the snapshot from what ``gather`` found and the driver's own state."""
    total = sum(keys_per_node.values())
    weights = {name: placement.weights[name] for name in keys_per_node}
    weight_total = sum(weights.values())
    share = {name: (count / total if total else 0.0) for name, count in keys_per_node.items()}
    weight_share = {name: w / weight_total for name, w in weights.items()}
    imbalance = max((share[n] / weight_share[n] for n in share), default=0.0) if total else 0.0
    down = tuple(node.name for node in placement.nodes if node.name not in keys_per_node)
    return ClusterStats(
        nodes=len(placement.nodes),
        down=down,
        keys_per_node=keys_per_node,
        share=share,
        weight_share=weight_share,
        imbalance=imbalance,
        hints_pending=hints_pending,
        hints_written=book.written,
        hints_delivered=book.delivered,
        hints_dropped=book.dropped,
        read_repairs=counters.get("read_repairs", 0),
        unavailable_errors=counters.get("unavailable", 0),
        suspected=tuple(sorted(name for name, row in per_node.items() if row.get("suspected"))),
        per_node=per_node,
        unreadable=sum(int(row.get("unreadable", 0)) for row in per_node.values()),
        hedges_sent=counters.get("hedges_sent", 0),
        hedges_won=counters.get("hedges_won", 0),
        hot_keys=hot_keys or {},
    )
