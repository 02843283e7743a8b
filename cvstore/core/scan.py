"""Listing a cluster's live keys: every key whose newest copy on the up nodes is live.

Each up node lists its keys with their versions, tombstone flags and
expiries (``scan_versions``: no values read).  A key is live unless its
newest copy among those listings is a tombstone or has expired; such keys
are few, so only they are settled copy by copy.
"""

from __future__ import annotations

from itertools import compress
from typing import Any

from cvstore.core.calls import Call, Op, Proc, failed

__all__ = ("live_keys",)


def live_keys(placement: Any, now_ms: int) -> Proc[list[bytes]]:
    """Keys whose newest copy on the up nodes is live at `now_ms`, in no particular order."""
    up = [node for node in placement.nodes if node.is_up]
    listings = [r for r in (yield [Call(node, Op.SCAN_VERSIONS) for node in up]) if not failed(r)]
    found: set[bytes] = set()
    doubtful: set[bytes] = set()  # a copy somewhere is deleted or expired: settle by the newest
    for keys, _, tombs, expires in listings:
        found.update(keys)
        if any(tombs):
            doubtful.update(compress(keys, tombs))
        if any(expires):
            doubtful.update(k for k, e in zip(keys, expires) if e and e <= now_ms)
    if not doubtful:
        return list(found)
    newest: dict[bytes, tuple[int, bool]] = {}
    for keys, versions, tombs, expires in listings:
        copies = dict(zip(keys, zip(versions, tombs, expires)))
        for kb in doubtful:
            copy = copies.get(kb)
            if copy is not None and (kb not in newest or copy[0] > newest[kb][0]):
                version, tomb, expiry = copy
                newest[kb] = (version, tomb or 0 < expiry <= now_ms)
    dead = {kb for kb, (_, gone) in newest.items() if gone}
    return list(found - dead)
