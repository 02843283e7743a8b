"""The exceptions cvstore raises: one base class and what each failure means."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CvstoreError(Exception):
    """Base class of every error cvstore raises on purpose."""


class EmptyRingError(CvstoreError, LookupError):
    """A key was looked up on a ring (or cluster) that has no nodes."""


class NodeExistsError(CvstoreError, ValueError):
    """A node was added under a name the ring or cluster already has."""


class NodeNotFoundError(CvstoreError, KeyError):
    """A node name is not a member of the ring or cluster."""

    def __str__(self) -> str:
        # KeyError would quote the message with repr(); show it as written.
        return str(self.args[0]) if self.args else ""


class StoreError(CvstoreError):
    """A node's storage backend failed; ``node`` names the node.

    ``unreachable`` tells the two kinds apart: True when the server could not
    be reached or did not answer in time (connection refused or reset, a
    timeout, a failed handshake or login): the cluster then suspects the
    node down.  False when the server answered with an error (out of memory,
    read-only, a permission or type error, a record that does not parse):
    only that replica's part of that call failed, and the node stays up.
    ``reason`` is the short cause (the server's own message where there is
    one), used in the messages of the errors that chain this one.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        unreachable: bool = True,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.node = node
        self.unreachable = bool(unreachable)
        self.reason = message if reason is None else reason


class UnreadableRecordError(StoreError):
    """A read met stored records that do not parse (bytes under the store's prefix
    that are not a record, or a payload its codec cannot decode).

    It is that replica's failure for that call, never an unreachable node
    (``unreachable`` is False): a cluster read asks another replica instead,
    and ``repair()`` overwrites the bad record with the newest good copy.
    ``keys`` are the keys whose records did not parse and ``positions`` their
    places in the call; ``records`` is what the read returned for every key,
    with None at those positions.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str | None,
        keys: list[bytes],
        positions: list[int],
        records: list[Any],
    ) -> None:
        super().__init__(message, node=node, unreachable=False, reason="a record does not parse")
        self.keys = keys
        self.positions = positions
        self.records = records


class UnavailableError(CvstoreError):
    """Too few of a key's replicas took part for the requested consistency level.

    ``level`` is the consistency level asked for, ``required`` how many
    replicas it needs, ``alive`` how many were up (or, for a call whose
    stores failed part way, how many answered), ``down`` the names of the
    replicas that were down or failed, and ``causes`` the last store error
    of each of them where one is known (name -> StoreError).  The last of
    those is also ``__cause__``.  A call refused before it started (too few
    replicas up) has written nothing, unless the message says "the write may
    be applied on some replicas": a write refused part way, or after an
    earlier try of the same call was sent (an attempt before it was stamped
    again, or a run before a node refused the client's layout epoch and the
    call was run again at the newer one), may be applied, as one that timed
    out may.
    """

    def __init__(
        self,
        message: str,
        *,
        level: str,
        required: int,
        alive: int,
        down: tuple[str, ...] = (),
        causes: Mapping[str, StoreError] | None = None,
    ) -> None:
        super().__init__(message)
        self.level = level
        self.required = required
        self.alive = alive
        self.down = tuple(down)
        self.causes: dict[str, StoreError] = dict(causes or {})


class ConflictError(UnavailableError):
    """A write was refused, attempt after attempt, by newer versions from concurrent writers.

    Each refusal moves the writer's clock past the version that refused it
    and the write is stamped again; a replica that answered an earlier
    attempt and refuses again holds a write that arrived after this one
    began, and counts as acknowledging it (the write is ordered just before
    that one).  So this is raised only when the refusals kept coming from
    replicas that had not answered before (replicas failing in turn): a write
    ends within N - W + 2 attempts, so this needs N - W >= 7 (15 replicas at
    quorum, 8 at one or eventual, never at all).
    The write may be applied on some replicas (as for any failed write);
    last-write-wins then keeps the newest.
    """


class FencedError(CvstoreError):
    """A node refused a request because it holds another layout epoch than the client's.

    ``newer`` is True when the node's layout is newer than the client's (the
    client is stale: it loads the newer layout and asks again), False when it
    is older (the node missed a change: the client brings it up to date).
    Drivers handle both and retry; this reaches a caller only if the layout
    kept changing through every retry (a write may then be applied on the
    replicas that took an earlier try).
    """

    def __init__(
        self, message: str, *, node: str | None, node_epoch: int, client_epoch: int
    ) -> None:
        super().__init__(message)
        self.node = node
        self.node_epoch = node_epoch
        self.client_epoch = client_epoch

    @property
    def newer(self) -> bool:
        return self.node_epoch > self.client_epoch


class LayoutConflictError(CvstoreError):
    """Another client changed the cluster's membership first; ``layout`` is the one it installed.

    The change asked for was not made.  Look at the new layout (it may
    already contain the change you wanted) and try again if it still applies.
    """

    def __init__(self, message: str, *, layout: object = None) -> None:
        super().__init__(message)
        self.layout = layout


class ClusterClosedError(CvstoreError, RuntimeError):
    """A call on a cluster after its ``close()``: it no longer has connections or threads."""


def closed_error() -> ClusterClosedError:
    """The error of a call on a closed cluster client."""
    return ClusterClosedError("the cluster is closed; make a new one")
