"""How the core asks for I/O: procedures yield store calls, drivers make them.

A *procedure* is a generator that decides everything about one operation
(which replicas to ask, what their answers mean, what to repair or hint, when
to retry, which error to raise) and never touches a store itself.  Each time
it needs I/O it yields a list of ``Call`` (a node, an ``Op``, arguments) and
is sent back one result per call, in order: the value the store method
returned, or the ``StoreError`` it raised.  A driver runs a procedure to its
return value: the sync ``Cluster`` makes the calls of one step overlap by
sending every request before reading any reply; the asyncio driver gathers
them.  Before sending results back, a driver applies the one failure policy
(``suspects``): a node whose store was unreachable is suspected down.

``Op`` names the store methods a procedure may ask for; a store backend
implements them all (sync or async, see ``cvstore.stores.base``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from cvstore.errors import FencedError, StoreError, UnreadableRecordError

if TYPE_CHECKING:
    import numpy as np

    from cvstore.core.health import ReplicaStats
    from cvstore.core.hints import HintBook
    from cvstore.core.levels import ReadPolicy
    from cvstore.core.placement import Placement

__all__ = (
    "FENCED",
    "PENDING",
    "Call",
    "Context",
    "Hedged",
    "Op",
    "Proc",
    "Step",
    "answered",
    "failed",
    "readable",
    "suspects",
)

T = TypeVar("T")


class Op(enum.Enum):
    """A store method a procedure can ask a driver to call; the value is its name."""

    GET = "get"  # (key) -> Record | None
    GET_MANY = "get_many"  # (keys) -> list[Record | None]
    WRITE_MANY = "write_many"  # (keys, records) -> list[int | None]: None applied, else the version that refused it
    DELETE_MANY = "delete_many"  # (keys) -> int
    PURGE_MANY = "purge_many"  # ([(key, version)]) -> int
    KEYS = "keys"  # () -> list[bytes]
    SCAN_VERSIONS = "scan_versions"  # () -> (keys, versions, tombstone flags)
    COUNT = "count"  # () -> int
    PUT_HINTS = "put_hints"  # (owner, [(key, record)]) -> None
    READ_HINTS = "read_hints"  # () -> [(owner, key, record)]
    DELETE_HINTS = "delete_hints"  # (owner, keys) -> None
    # (owner, [(key, version)]) -> how many of those keys hold a hint of another version:
    # drops a hint only while it is still that version
    DELETE_HINTS_IF = "delete_hints_if"
    COUNT_HINTS = "count_hints"  # () -> int
    PING = "ping"  # () -> bool
    READ_LAYOUT = "read_layout"  # () -> (epoch, layout bytes or None)
    SWAP_LAYOUT = (
        "swap_layout"  # (expected epoch, epoch, layout bytes) -> (epoch, layout) held after
    )


# The calls a node refuses when the client's layout epoch is not its own.
FENCED = frozenset(
    {
        Op.GET,
        Op.GET_MANY,
        Op.WRITE_MANY,
        Op.DELETE_MANY,
        Op.PURGE_MANY,
        Op.PUT_HINTS,
        Op.DELETE_HINTS,
        Op.DELETE_HINTS_IF,
        Op.SCAN_VERSIONS,
    }
)


class Call(NamedTuple):
    """One store call: ``node.store.<op>(*args)``.

    ``timed``: the driver measures the call and feeds the node's latency
    estimate (the "fastest" read policy); such calls are made one at a time.
    ``tracked``: the driver counts the call as outstanding to its node while
    it is under way and then feeds ``ctx.replicas`` its latency and outcome
    (the "adaptive" read policy); such calls may overlap.
    """

    node: Any
    op: Op
    args: tuple[Any, ...] = ()
    timed: bool = False
    tracked: bool = False


Proc = Generator[Sequence[Call], Sequence[Any], T]


class _Pending:
    """The result of a call not answered yet (a step sent back early)."""

    def __repr__(self) -> str:
        return "PENDING"


PENDING: Any = _Pending()


class Step(list):  # type: ignore[type-arg]
    """Calls a driver may answer early.

    When ``enough(results)`` holds, with PENDING for the calls not answered
    yet, a driver may send the results on at once and finish the other calls
    in the background; ``late(answered)`` is then a procedure run on the
    (call, result) pairs that came in after, so they still count (a write
    that failed late is hinted).  A driver may as well wait for every call:
    the procedure decides the same with PENDING or with the real results.
    """

    def __init__(
        self,
        calls: Sequence[Call],
        enough: Callable[[Sequence[Any]], bool],
        late: Callable[[list[tuple[Call, Any]]], Proc[None]],
    ) -> None:
        super().__init__(calls)
        self.enough = enough
        self.late = late


class Hedged(list):  # type: ignore[type-arg]
    """Calls for `need` answers (a hedged read): ask the first `need`, one more only if need be.

    A driver makes ``self[:need]``; if they have not all answered within
    ``after`` seconds, it makes ``self[need]`` too.  It sends the results on
    as soon as `need` calls have answered (not failed), or every call made
    has come back, with PENDING for a call not made or not answered yet; a
    call still under way finishes in the background (and is measured all
    the same).  Only a driver whose ``ctx.hedging`` is True is given these.
    """

    def __init__(self, calls: Sequence[Call], after: float, need: int = 1) -> None:
        super().__init__(calls)
        self.after = after
        self.need = need


class Context(Protocol):
    """What a procedure is handed by its driver (no I/O behind any of it).

    ``placement`` is read anew each time: a membership change swaps it.
    ``stamp()`` issues a new version, ``observe(v)`` moves the clock past a
    version seen; ``causes(names)`` gives the last store error known for
    each named node that has one; ``count(name, n)`` adds to a counter of
    ``Cluster.stats()``; ``install(p)`` makes `p` the current placement.
    Randomness comes from here only: ``random()`` for one number, ``rng``
    (a NumPy generator the driver seeds) for arrays and ids.  ``replicas``
    holds what the driver measured of each replica (``health.ReplicaStats``,
    for the "adaptive" read policy); ``hedging`` says whether the driver
    makes ``Hedged`` steps.
    """

    placement: Placement
    hints: HintBook
    read_policy: ReadPolicy
    rng: np.random.Generator
    replicas: ReplicaStats
    hedging: bool

    def stamp(self) -> int: ...

    def observe(self, version: int) -> None: ...

    def causes(self, names: Sequence[str]) -> Mapping[str, StoreError]: ...

    def count(self, name: str, n: int = 1) -> None: ...

    def install(self, placement: Placement) -> None: ...

    def random(self) -> float: ...

    @property
    def progress(self) -> Callable[[int, int], None] | None:
        """Told (done, total) as long work (streaming, repair) goes on; None: nobody listens."""


def suspects(calls: Sequence[Call], results: Sequence[Any]) -> list[tuple[Any, StoreError]]:
    """The failure policy: (node, error) for every call whose node must be suspected down.

    Only an unreachable store makes its node suspected; an error reply
    (out of memory, a bad record) fails that call alone.
    """
    return [
        (call.node, result)
        for call, result in zip(calls, results)
        if isinstance(result, StoreError) and result.unreachable
    ]


def answered(result: Any) -> bool:
    """Whether a call's result is an answer: not PENDING, nor a failure or a fenced refusal."""
    return result is not PENDING and not isinstance(result, (StoreError, FencedError))


def failed(result: Any) -> bool:
    """Whether a call's result is a store failure."""
    return isinstance(result, StoreError)


def readable(result: Any) -> Any:
    """A GET_MANY result with its unreadable records as absent: for an
    ``UnreadableRecordError``, the records read around those that do not parse
    (None for them); any other result as it is.  For the calls that only copy
    records (repair, rebalancing): a read that answers a caller treats an
    unreadable record as that replica's failure instead.
    """
    if isinstance(result, UnreadableRecordError):
        return result.records
    return result
