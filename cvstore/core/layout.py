"""The layout: a cluster's membership as a value every node holds, numbered by an epoch.

A layout names the cluster (a random id), the nodes (name, weight, zone, and
where a client finds each: address and key prefix, never a credential), the
replication factor, the placement (its registered name, ``"ring"`` when the
field is absent) and its options, and whether a change is under way:
then ``next`` is the membership being moved to.  The epoch only grows; every
new layout is the one before plus one, installed on the nodes with a
compare-and-set on the epoch (``cvstore.core.membership``).

A change goes through three layouts::

    epoch e      stable    nodes = N
    epoch e + 1  changing  nodes = N, next = N'   writes go to the replicas in N and N',
                                                  reads to those in N; copies stream to N'
    epoch e + 2  stable    nodes = N'             copies no longer placed are dropped

``abort`` ends a change the other way (epoch e + 2, nodes = N).  This module
only builds, checks and encodes layouts; it does no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cvstore.core.placements import PLACEMENTS
from cvstore.errors import CvstoreError

__all__ = ("FORMAT", "Layout", "LayoutError", "NodeSpec")

FORMAT = 1  # the JSON layout's version; a client refuses a layout of a format it does not know
# A layout whose placement is not the ring is written as format 2, so a client
# from before placements (which would place its keys on a ring) refuses it.
FORMATS = (1, 2)


class LayoutError(CvstoreError, ValueError):
    """A layout that does not parse, or a change that is not allowed."""


@dataclass(frozen=True)
class NodeSpec:
    """One member as the layout records it: who it is and where a client finds it."""

    name: str
    weight: float = 1.0
    zone: str | None = None
    address: str = ""  # e.g. redis://host:port/db, no credentials; "" for an in-process store
    prefix: str = ""  # the store's key prefix on that server

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weight": self.weight,
            "zone": self.zone,
            "address": self.address,
            "prefix": self.prefix,
        }

    @staticmethod
    def from_json(data: Any) -> NodeSpec:
        if not isinstance(data, dict):
            raise LayoutError(f"a layout node must be an object, got {data!r:.60}")
        name, weight, zone = data.get("name"), data.get("weight", 1.0), data.get("zone")
        address, prefix = data.get("address", ""), data.get("prefix", "")
        if not isinstance(name, str) or not name:
            raise LayoutError(f"a layout node's name must be a non-empty str, got {name!r:.60}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise LayoutError(f"node {name!r}: weight must be a number, got {weight!r:.60}")
        if not (math.isfinite(weight) and weight > 0):
            raise LayoutError(f"node {name!r}: weight must be a finite number > 0, got {weight!r}")
        if zone is not None and not isinstance(zone, str):
            raise LayoutError(f"node {name!r}: zone must be a str or null, got {zone!r:.60}")
        if not isinstance(address, str) or not isinstance(prefix, str):
            raise LayoutError(f"node {name!r}: address and prefix must be strings")
        return NodeSpec(name, float(weight), zone, address, prefix)


@dataclass(frozen=True)
class Layout:
    """One epoch of a cluster's membership (see the module docstring)."""

    cluster: str
    epoch: int
    nodes: tuple[NodeSpec, ...]
    replication_factor: int
    vnodes: int = 160
    hash: str = "xxh64"
    seed: int = 0
    next: tuple[NodeSpec, ...] | None = None
    change: dict[str, Any] = field(default_factory=dict)  # what the change is: action, node
    placement: str = "ring"  # the registered placement (cvstore.core.placements)

    # ------------------------------------------------------------- views

    @property
    def changing(self) -> bool:
        """Whether a change is under way (``next`` is the membership it moves to)."""
        return self.next is not None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.nodes)

    def everyone(self) -> tuple[NodeSpec, ...]:
        """Every node the layout names: the members, then those only in ``next``."""
        named = {spec.name for spec in self.nodes}
        extra = tuple(spec for spec in self.next or () if spec.name not in named)
        return self.nodes + extra

    def check_places(self, nodes: Iterable[NodeSpec] | None = None) -> None:
        """LayoutError if two of `nodes` (by default every node named) share an address and prefix."""
        seen: dict[tuple[str, str], str] = {}
        for spec in self.everyone() if nodes is None else nodes:
            if not spec.address:
                continue
            other = seen.setdefault((spec.address, spec.prefix), spec.name)
            if other != spec.name:
                raise LayoutError(
                    f"nodes {other!r} and {spec.name!r} of the cluster's layout (epoch "
                    f"{self.epoch}) are the same server: both at {spec.address} with prefix "
                    f"{spec.prefix!r}; a key's copies on both would be one copy"
                )

    def spec(self, name: str) -> NodeSpec | None:
        for spec in self.everyone():
            if spec.name == name:
                return spec
        return None

    def install_order(self) -> list[str]:
        """The order a new layout is installed in: the members by name, then the new nodes.

        Every client installs in this order, so two changes racing from the
        same epoch meet first on the same node, where one of them loses.
        """
        members = sorted(spec.name for spec in self.nodes)
        joining = sorted(spec.name for spec in self.next or () if spec.name not in members)
        return members + joining

    def ring_options(self) -> dict[str, Any]:
        return {"vnodes": self.vnodes, "hash": self.hash, "seed": self.seed}

    def placement_options(self) -> dict[str, Any]:
        """The placement's name and options, as ``placements.placer_factory`` takes them."""
        return {"placement": self.placement, **self.ring_options()}

    def describe(self) -> str:
        state = f"changing to {[s.name for s in self.next or ()]}" if self.changing else "stable"
        return f"epoch {self.epoch}, nodes {list(self.names)}, {state}"

    # ------------------------------------------------------- transitions

    def begin(self, nodes: Sequence[NodeSpec], action: str, node: str) -> Layout:
        """The changing layout that moves this one to `nodes` (epoch + 1)."""
        if self.changing:
            raise LayoutError(
                f"a change is already under way ({self.change.get('action')} "
                f"{self.change.get('node')!r}, epoch {self.epoch}); finish it first "
                "with cluster.finish_change()"
            )
        _check_names(nodes)
        changing = replace(
            self,
            epoch=self.epoch + 1,
            next=tuple(nodes),
            change={"action": action, "node": node, "from_epoch": self.epoch},
        )
        changing.check_places(changing.next)
        return changing

    def commit(self) -> Layout:
        """The stable layout at the end of this change (epoch + 1, nodes = next)."""
        if self.next is None:
            raise LayoutError(f"no change is under way at epoch {self.epoch}")
        return replace(self, epoch=self.epoch + 1, nodes=self.next, next=None, change={})

    def abort(self) -> Layout:
        """The stable layout that undoes this change (epoch + 1, nodes as before it)."""
        if self.next is None:
            raise LayoutError(f"no change is under way at epoch {self.epoch}")
        return replace(self, epoch=self.epoch + 1, next=None, change={})

    # ---------------------------------------------------------- encoding

    def to_bytes(self) -> bytes:
        data = {
            "format": FORMAT,
            "cluster": self.cluster,
            "epoch": self.epoch,
            "replication_factor": self.replication_factor,
            "vnodes": self.vnodes,
            "hash": self.hash,
            "seed": self.seed,
            "nodes": [spec.to_json() for spec in self.nodes],
            "next": None if self.next is None else [spec.to_json() for spec in self.next],
            "change": self.change,
        }
        if self.placement != "ring":  # a ring layout's bytes stay as they were before placements
            data["format"] = 2
            data["placement"] = self.placement
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @staticmethod
    def from_bytes(raw: bytes) -> Layout:
        """The layout in `raw`; LayoutError if it is not one this client can read."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise LayoutError(f"a layout must be JSON, got {raw[:60]!r}") from exc
        if not isinstance(data, dict):
            raise LayoutError(f"a layout must be a JSON object, got {raw[:60]!r}")
        if data.get("format") not in FORMATS or isinstance(data.get("format"), bool):
            raise LayoutError(
                f"layout format {data.get('format')!r} is not one this client reads "
                f"({', '.join(map(str, FORMATS))}); upgrade cvstore"
            )
        cluster, epoch, rf = data.get("cluster"), data.get("epoch"), data.get("replication_factor")
        if not isinstance(cluster, str) or not cluster:
            raise LayoutError(f"a layout's cluster id must be a non-empty str, got {cluster!r:.60}")
        epoch, rf = _positive("epoch", epoch), _positive("replication_factor", rf)
        nodes = tuple(NodeSpec.from_json(n) for n in _list(data.get("nodes"), "nodes"))
        nxt = data.get("next")
        next_nodes = (
            None if nxt is None else tuple(NodeSpec.from_json(n) for n in _list(nxt, "next"))
        )
        _check_names(nodes)
        if next_nodes is not None:
            _check_names(next_nodes)
        vnodes, hash_name, seed = data.get("vnodes"), data.get("hash"), data.get("seed")
        if isinstance(vnodes, bool) or not isinstance(vnodes, int) or vnodes < 1:
            raise LayoutError(f"a layout's vnodes must be an int >= 1, got {vnodes!r:.60}")
        if not isinstance(hash_name, str):
            raise LayoutError(f"a layout's hash must be a str, got {hash_name!r:.60}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise LayoutError(f"a layout's seed must be an int, got {seed!r:.60}")
        change = data.get("change") or {}
        if not isinstance(change, dict):
            raise LayoutError(f"a layout's change must be an object, got {change!r:.60}")
        placement = data.get("placement", "ring")  # a layout from before placements: the ring
        if not isinstance(placement, str) or placement not in PLACEMENTS:
            raise LayoutError(
                f"a layout's placement must be one of {sorted(PLACEMENTS)}, got "
                f"{placement!r:.60}; upgrade cvstore if the cluster uses a newer one"
            )
        return Layout(
            cluster, epoch, nodes, rf, vnodes, hash_name, seed, next_nodes, change, placement
        )


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise LayoutError(f"a layout's {what} must be a list, got {value!r:.60}")
    return value


def _check_names(nodes: Iterable[NodeSpec]) -> None:
    seen: set[str] = set()
    for spec in nodes:
        if spec.name in seen:
            raise LayoutError(f"node {spec.name!r} appears twice in a layout")
        seen.add(spec.name)


def first(
    nodes: Sequence[NodeSpec],
    replication_factor: int,
    *,
    vnodes: int,
    hash: str,
    seed: int,
    placement: str = "ring",
    cluster: str = "",
) -> Layout:
    """The first layout of a new cluster (epoch 1).

    `cluster` is its id; "" leaves it to be named where randomness is at hand
    (``membership.share`` draws a new cluster's id from its context).
    """
    _check_names(nodes)
    layout = Layout(
        cluster, 1, tuple(nodes), replication_factor, vnodes, hash, seed, placement=placement
    )
    layout.check_places()
    return layout


def newest(layouts: Iterable[Layout | None]) -> Layout | None:
    """The layout with the highest epoch; LayoutError if they belong to different clusters."""
    found = [layout for layout in layouts if layout is not None]
    if not found:
        return None
    clusters = {layout.cluster for layout in found}
    if len(clusters) > 1:
        raise LayoutError(
            f"the nodes hold layouts of {len(clusters)} different clusters ({sorted(clusters)}); "
            "each node belongs to one cluster"
        )
    return max(found, key=lambda layout: layout.epoch)


def _positive(name: str, value: Any) -> int:
    """`value` if it is an int >= 1 (not a bool), else the LayoutError naming field `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LayoutError(f"a layout's {name} must be an int >= 1, got {value!r:.60}")
    return value
