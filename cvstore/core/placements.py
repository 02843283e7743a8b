"""The registered placements: a name, as ``placement=`` and the layout give it, -> a factory.

A factory takes the placement options (``vnodes``, ``hash``, ``seed``, as
keywords), checks them at once (a ValueError/TypeError naming the option) and
returns ``make(weights) -> Placer``: called with a membership's capacities
(node name -> weight) each time the membership changes, it builds the placer
for exactly those nodes (see ``cvstore.core.placement.Placer``).  Where a
key's copies live is a pure function of the layout (its placement name, the
options and the weights), so every client of a shared cluster finds every key.

Adding a placement is one module that defines the factory and one line in
``PLACEMENTS`` below.

Load never changes where data lives.  Callers that route requests to
backends by load use the ring's bounded-load lookups
(``HashRing.get_node_bounded``, ``cvstore.LoadTracker``); the cluster's reads
choose among a key's replicas by what the driver measures
(``read_policy="adaptive"``, ``core.reads``), not through the placer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cvstore.core.placement import Placer, ring_placer
from cvstore.core.rendezvous import rendezvous_placer

__all__ = ("DEFAULT", "PLACEMENTS", "check_placement", "placer_factory")

Factory = Callable[..., Callable[[Mapping[str, float]], Placer]]

#: name -> factory(*, vnodes, hash, seed) -> make(weights) -> Placer
PLACEMENTS: dict[str, Factory] = {
    "ring": ring_placer,
    "rendezvous": rendezvous_placer,
}

DEFAULT = "ring"


def check_placement(placement: Any) -> str:
    """`placement` if it is a registered name, else the TypeError/ValueError naming it."""
    if not isinstance(placement, str):
        raise TypeError(
            f"placement must be a str, one of {sorted(PLACEMENTS)}, "
            f"got {type(placement).__name__}: {placement!r:.60}"
        )
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {sorted(PLACEMENTS)}, got {placement!r:.60}")
    return placement


def placer_factory(
    placement: str, *, vnodes: int, hash: Any, seed: int
) -> Callable[[Mapping[str, float]], Placer]:
    """The placement's ``make(weights)``, with its options checked."""
    return PLACEMENTS[check_placement(placement)](vnodes=vnodes, hash=hash, seed=seed)
