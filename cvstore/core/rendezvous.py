"""Rendezvous placement: weighted highest-random-weight hashing, vectorised with numpy.

Every node scores every key; the key's preference list is the nodes by score,
highest first.  The function, so any client in any language can reproduce it
(``seed`` is the cluster's; all integers are unsigned 64-bit, wrapping)::

    h    = XXH64(utf-8 bytes of the key, seed)          # hash_key / hash_many
    s    = XXH64(utf-8 bytes of the node's name, seed)
    x    = mix(h XOR s)                                  # splitmix64's finaliser:
           # x ^= x >> 30; x *= 0xbf58476d1ce4e5b9; x ^= x >> 27;
           # x *= 0x94d049bb133111eb; x ^= x >> 31
    u    = ((x >> 12) + 0.5) / 2**52                     # exactly, in (0, 1)
    rank = -ln(u) * (1 / weight)                         # smallest first (ties: by name)

When every weight is equal the rank is ``x >> 12``, largest first (no log).
Ranks are IEEE doubles: a client whose ``ln`` differs in the last bit may
order two nodes whose ranks are that close apart differently, about one key
in 10**14.

Ranking by the smallest ``-ln(u) / w`` is ranking by the largest
``-w / ln(u)``, the standard weighted rendezvous score: a node of weight w
owns w / sum(weights) of the keys, and a change of membership moves only the
keys whose top node changed (adding a node moves about 1/(nodes + 1) of them,
all to the new node).  There is no ring to build: a placer is one array of
node seeds and one of weights; a lookup costs O(nodes) per key.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from math import log as _log
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from cvstore._ring import HashRing, xxh64
from cvstore.errors import EmptyRingError, NodeExistsError

__all__ = ("Rendezvous", "rendezvous_placer")

T = TypeVar("T")

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S12 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(12)
_MASK = (1 << 64) - 1
_UNIT = 1.0 / 4503599627370496.0  # 2**-52
_SMALL = 16  # up to this many nodes a single lookup is faster in Python than in numpy
_CHUNK = 1 << 15  # keys scored at once by the batch calls (bounds their temporary arrays)


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser on every element (in place; `x` is a fresh array)."""
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


def _ranks(
    h: NDArray[np.uint64], seeds: NDArray[np.uint64], inv_w: NDArray[np.float64] | None
) -> Any:
    """Every key hash in `h` (rows) by node (columns): smallest ranks first.

    -ln(u) / w; with equal weights (`inv_w` None), -(x >> 12) as int64.
    """
    top = _mix(h[:, None] ^ seeds[None, :]) >> _S12
    if inv_w is None:
        return -top.astype(np.int64)
    u = top.astype(np.float64)
    u += 0.5
    u *= _UNIT
    out = np.log(u)
    out *= -inv_w
    return out


def _first(ranks: Any, wanted: int) -> NDArray[np.intp]:
    """Per row, the columns of the `wanted` smallest ranks in order (ties: the lower column)."""
    if wanted == 1:
        return np.argmin(ranks, axis=1)[:, None]  # the first of equal minima
    if 4 * wanted >= ranks.shape[1]:
        return np.argsort(ranks, axis=1, kind="stable")[:, :wanted]
    # The wanted smallest, then ordered by (rank, column): the same as a stable full sort.
    cols = np.argpartition(ranks, wanted - 1, axis=1)[:, :wanted]
    vals = np.take_along_axis(ranks, cols, axis=1)
    order = np.lexsort((cols, vals), axis=1)
    out = np.take_along_axis(cols, order, axis=1)
    # A rank equal to the last one kept may sit in a lower column the partition left
    # out: those rows (about one in 10**13) take the full stable sort.
    tied = np.flatnonzero((ranks <= vals.max(axis=1)[:, None]).sum(axis=1) > wanted)
    if tied.size:
        out[tied] = np.argsort(ranks[tied], axis=1, kind="stable")[:, :wanted]
    return out


class Rendezvous:
    """Weighted rendezvous (HRW) placement of keys on named nodes.

    Rendezvous(nodes=None, *, seed=0): `nodes` are names (weight 1.0 each)
    or a mapping name -> weight.  Immutable: a new membership is a new
    placer.  Implements the core's ``Placer`` protocol.

    Lookup: ``get_node``, ``get_nodes``, ``get_items``.
    Batch lookup: ``hash_many``, ``lookup_many``, ``get_nodes_many``.
    Introspection: ``nodes``, ``weights``, ``seed``, ``len``, ``in``.

    >>> placer = Rendezvous(["a", "b", "c"])
    >>> placer.get_nodes("user:42", 3) == placer.nodes_ranked("user:42")
    True
    """

    __slots__ = (
        "_hasher",
        "_index",
        "_inv_w",
        "_names",
        "_pairs",
        "_seed",
        "_seeds",
        "_weights",
    )

    def __init__(self, nodes: Iterable[str] | Mapping[str, float] | None = None, *, seed: int = 0):
        # The ring checks the seed and hashes batches of keys in C (xxh64 with this seed).
        self._hasher = HashRing([], seed=seed)
        self._seed = int(seed)
        weights: dict[str, float] = {}
        if nodes is not None:
            if isinstance(nodes, (str, bytes)):
                raise TypeError(
                    "nodes must be an iterable of names or a mapping name -> weight, "
                    f"got {type(nodes).__name__}: {nodes!r}"
                )
            items = nodes.items() if isinstance(nodes, Mapping) else ((n, 1.0) for n in nodes)
            for name, weight in items:
                if not isinstance(name, str):
                    raise TypeError(f"node name must be a str, got {type(name).__name__}: {name!r}")
                if not name:
                    raise ValueError("node name must be a non-empty str, got ''")
                if name in weights:
                    raise NodeExistsError(f"node {name!r} is given twice")
                weights[name] = _check_weight(weight)
        names = tuple(sorted(weights))  # index order is name order: ties go to the first name
        self._names = names
        self._weights = {name: weights[name] for name in names}
        self._index = {name: i for i, name in enumerate(names)}
        self._seeds = np.array(
            [xxh64(name.encode(), self._seed) for name in names], dtype=np.uint64
        )
        inv = [1.0 / weights[name] for name in names]
        equal = len(set(inv)) <= 1
        self._inv_w = None if equal else np.array(inv, dtype=np.float64)
        # (node seed, 1 / weight or None) per node, for single lookups in Python
        self._pairs = [(int(s), None if equal else w) for s, w in zip(self._seeds.tolist(), inv)]

    # ------------------------------------------------------- introspection

    @property
    def nodes(self) -> tuple[str, ...]:
        """Node names in index order (name order)."""
        return self._names

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    @property
    def seed(self) -> int:
        return self._seed

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rendezvous):
            return NotImplemented
        return self._seed == other._seed and self._weights == other._weights

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Rendezvous({self._weights!r}, seed={self._seed})"

    def copy(self) -> Rendezvous:
        return self  # immutable

    # -------------------------------------------------------------- lookup

    def hash_key(self, key: str | bytes) -> int:
        """XXH64 of the key's bytes with the seed."""
        return int(self._hasher.hash_many([key])[0])

    def _order(self, key: Any, n: Any) -> list[int]:
        """The indices of the key's first `n` nodes (a stable sort: ties by name)."""
        n = _check_count(n)
        h = self._hasher.hash_key(key)
        count = len(self._names)
        if not count:
            raise _empty()
        if count <= _SMALL:  # _ranks for one key, in Python ints: the same arithmetic
            ranks: list[Any] = []
            add = ranks.append
            for seed, inv_w in self._pairs:
                x = h ^ seed
                x ^= x >> 30
                x = (x * 0xBF58476D1CE4E5B9) & _MASK
                x ^= x >> 27
                x = (x * 0x94D049BB133111EB) & _MASK
                x ^= x >> 31
                add(-(x >> 12) if inv_w is None else -_log(((x >> 12) + 0.5) * _UNIT) * inv_w)
            if n == 1:
                return [ranks.index(min(ranks))]
            return sorted(range(count), key=ranks.__getitem__)[:n]
        row = _ranks(np.array([h], dtype=np.uint64), self._seeds, self._inv_w)[0]
        return np.argsort(row, kind="stable")[:n].tolist()

    def get_node(self, key: str | bytes) -> str:
        """The key's owner: the node ranked first.  Runtime complexity: O(nodes)."""
        return self._names[self._order(key, 1)[0]]

    def get_nodes(self, key: str | bytes, n: int) -> list[str]:
        """The key's first `n` distinct nodes by rank (fewer when there are fewer nodes).

        Runtime complexity: O(nodes log nodes).
        """
        names = self._names
        return [names[i] for i in self._order(key, n)]

    def nodes_ranked(self, key: str | bytes) -> list[str]:
        """Every node, in the key's rank order."""
        return self.get_nodes(key, max(1, len(self._names)))

    def get_items(self, key: str | bytes, n: int, items: tuple[T, ...]) -> list[T]:
        """get_nodes(key, n) with each node given as ``items[index]``."""
        if not isinstance(items, tuple):
            raise TypeError(f"items must be a tuple, got {type(items).__name__}")
        if len(items) != len(self._names):
            raise ValueError(
                f"items must have one entry per node ({len(self._names)}), got {len(items)}"
            )
        return [items[i] for i in self._order(key, n)]

    # -------------------------------------------------------- batch lookup

    def hash_many(self, keys: Sequence[str | bytes] | NDArray[Any]) -> NDArray[np.uint64]:
        """hash_key for every key: a uint64 array."""
        return self._hasher.hash_many(keys)

    def get_nodes_many(
        self, keys: Sequence[str | bytes] | NDArray[Any], n: int
    ) -> NDArray[np.int32]:
        """Preference lists of every key: int32 array (len(keys), min(n, len(self))) of indices."""
        n = _check_count(n)
        hashes = self._hasher.hash_many(keys)
        if not self._names:
            raise _empty()
        wanted = min(n, len(self._names))
        out = np.empty((hashes.shape[0], wanted), dtype=np.int32)
        for start in range(0, hashes.shape[0], _CHUNK):
            ranks = _ranks(hashes[start : start + _CHUNK], self._seeds, self._inv_w)
            out[start : start + _CHUNK] = _first(ranks, wanted)
        return out

    def lookup_many(self, keys: Sequence[str | bytes] | NDArray[Any]) -> NDArray[np.int32]:
        """Every key's owner as an index into ``nodes`` (int32 array)."""
        return self.get_nodes_many(keys, 1)[:, 0].copy()


def _check_weight(weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        raise TypeError(f"weight must be a number > 0, got {type(weight).__name__}: {weight!r}")
    try:
        w = float(weight)
    except OverflowError:
        w = math.inf
    if not (w > 0.0 and math.isfinite(w)):
        raise ValueError(f"weight must be a finite number > 0, got {weight!r}")
    return w


def _check_count(n: Any) -> int:
    if type(n) is int and n >= 1:
        return n
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int >= 1, got {type(n).__name__}: {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    return int(n)


def _empty() -> EmptyRingError:
    return EmptyRingError("the placement has no nodes; add one first")


def rendezvous_placer(
    *, vnodes: int, hash: str, seed: int
) -> Callable[[Mapping[str, float]], Rendezvous]:
    """A factory of ``Rendezvous`` placers with these options (`vnodes` is the ring's: unused)."""
    if hash != "xxh64":
        raise ValueError(
            f"hash must be 'xxh64' with placement='rendezvous' (ketama is a ring's), got {hash!r}"
        )
    Rendezvous([], seed=seed)  # a bad seed fails here, at once

    def make(weights: Mapping[str, float]) -> Rendezvous:
        return Rendezvous(weights, seed=seed)

    return make
