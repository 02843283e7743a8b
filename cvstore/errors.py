"""The exceptions cvstore raises: one base class and what each failure means."""

from __future__ import annotations


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


class UnavailableError(CvstoreError):
    """Too few of a key's replicas are up for the requested consistency level.

    Raised before anything is written, so a refused write leaves no trace.
    ``level`` is the consistency level asked for, ``required`` how many live
    replicas it needs, ``alive`` how many there were, ``down`` the names of the
    replicas that were down.
    """

    def __init__(
        self, message: str, *, level: str, required: int, alive: int, down: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.level = level
        self.required = required
        self.alive = alive
        self.down = tuple(down)


class StoreError(CvstoreError):
    """A node's storage backend failed; ``node`` names the node."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node
