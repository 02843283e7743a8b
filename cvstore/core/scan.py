"""Listing a cluster's live keys: every key whose newest copy on the up nodes is not deleted.

Each up node lists its keys with their versions and tombstone flags
(``scan_versions``: no values read).  A key is live unless its newest copy
among those listings is a tombstone; deleted keys are few, so only they are
settled copy by copy.
"""

from __future__ import annotations

from itertools import compress
from typing import Any

from cvstore.core.calls import Call, Op, Proc, failed

__all__ = ("live_keys",)


def live_keys(placement: Any) -> Proc[list[bytes]]:
    """Keys whose newest copy on the up nodes is not a tombstone, in no particular order."""
    up = [node for node in placement.nodes if node.is_up]
    listings = [r for r in (yield [Call(node, Op.SCAN_VERSIONS) for node in up]) if not failed(r)]
    found: set[bytes] = set()
    tombstoned: set[bytes] = set()
    for keys, _, tombs in listings:
        found.update(keys)
        if any(tombs):
            tombstoned.update(compress(keys, tombs))
    if not tombstoned:
        return list(found)
    newest: dict[bytes, tuple[int, bool]] = {}
    for keys, versions, tombs in listings:
        copies = dict(zip(keys, zip(versions, tombs)))
        for kb in tombstoned:
            copy = copies.get(kb)
            if copy is not None and (kb not in newest or copy[0] > newest[kb][0]):
                newest[kb] = copy
    dead = {kb for kb, (_, tomb) in newest.items() if tomb}
    return list(found - dead)
