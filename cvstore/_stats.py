"""ClusterStats: a snapshot of how a cluster's data is spread and how it has fared."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cvstore.errors import StoreError

__all__ = ("ClusterStats", "collect")


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
        Live keys (tombstones excluded) each up node holds.
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
        Members suspected down because their store failed (also in `down`).
    per_node : dict[str, dict]
        For every member: ``up``, ``suspected``, ``failed`` (taken down by
        ``fail()``), ``failures`` (store errors the cluster met),
        ``last_failure``, ``suspected_for_s``, ``next_probe_in_s``,
        ``latency_ms`` (the read latency the "fastest" policy tracks), and
        everything the store's own ``stats()`` reports (a RedisStore: calls,
        errors, timeouts, connection_errors, mean_ms, max_ms, p50_ms, p99_ms).
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


def collect(
    placement: Any, hints: Any, read_repairs: int, unavailable_errors: int, health: Any = None
) -> ClusterStats:
    keys_per_node: dict[str, int] = {}
    down = []
    for node in placement.nodes:
        if not node.is_up:
            down.append(node.name)
            continue
        try:
            _, _, tombs = node.store.scan_versions()  # no values read
        except StoreError:
            down.append(node.name)
            continue
        keys_per_node[node.name] = len(tombs) - sum(tombs)
    total = sum(keys_per_node.values())
    weights = {name: placement.by_name[name].weight for name in keys_per_node}
    weight_total = sum(weights.values())
    share = {name: (count / total if total else 0.0) for name, count in keys_per_node.items()}
    weight_share = {name: w / weight_total for name, w in weights.items()}
    imbalance = max((share[n] / weight_share[n] for n in share), default=0.0) if total else 0.0
    per_node: dict[str, dict[str, Any]] = {}
    for node in placement.nodes:
        latency = node.latency
        row: dict[str, Any] = {
            "up": node.is_up,
            "suspected": node.suspected,
            "failed": node._failed,
            "latency_ms": None if latency is None else latency * 1000.0,
        }
        if health is not None:
            row.update(health.report(node.name))
        row.update(node.store.stats())
        per_node[node.name] = row
    return ClusterStats(
        nodes=len(placement.nodes),
        down=tuple(down),
        keys_per_node=keys_per_node,
        share=share,
        weight_share=weight_share,
        imbalance=imbalance,
        hints_pending=hints.count(placement),
        hints_written=hints.written,
        hints_delivered=hints.delivered,
        hints_dropped=hints.dropped,
        read_repairs=read_repairs,
        unavailable_errors=unavailable_errors,
        suspected=tuple(sorted(n.name for n in placement.nodes if n.suspected)),
        per_node=per_node,
    )
