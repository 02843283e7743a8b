"""A slow pure-Python twin of HashRing's placement: the test oracle.

It follows the placement contract in the README word for word, with
``hashlib`` for MD5, a pure-Python XXH64 (or the ``xxhash`` package when it is
installed, which is faster and checked against this one in the tests) and
``bisect`` for the search.  It shares no code with the C ring.  It is also the
"hand-written bisect ring" peer in the benchmarks.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import struct
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction

_M64 = (1 << 64) - 1
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _M64
    return (_rotl(acc, 31) * _P1) & _M64


def xxh64_py(data: bytes, seed: int = 0) -> int:
    """XXH64 in pure Python, straight from the specification."""
    n = len(data)
    p = 0
    if n >= 32:
        v = [(seed + _P1 + _P2) & _M64, (seed + _P2) & _M64, seed, (seed - _P1) & _M64]
        while p + 32 <= n:
            for lane in range(4):
                v[lane] = _round(v[lane], struct.unpack_from("<Q", data, p + 8 * lane)[0])
            p += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M64
        for lane in v:
            h ^= _round(0, lane)
            h = (h * _P1 + _P4) & _M64
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while p + 8 <= n:
        h ^= _round(0, struct.unpack_from("<Q", data, p)[0])
        h = (_rotl(h, 27) * _P1 + _P4) & _M64
        p += 8
    if p + 4 <= n:
        h ^= (struct.unpack_from("<I", data, p)[0] * _P1) & _M64
        h = (_rotl(h, 23) * _P2 + _P3) & _M64
        p += 4
    while p < n:
        h ^= (data[p] * _P5) & _M64
        h = (_rotl(h, 11) * _P1) & _M64
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    h ^= h >> 32
    return h


_xxh64_fast: Callable[[bytes, int], int] | None
try:  # the C implementation of the same function, when installed
    from xxhash import xxh64_intdigest as _xxh64_fast
except ImportError:  # pragma: no cover - depends on the environment
    _xxh64_fast = None


def xxh64(data: bytes, seed: int = 0) -> int:
    if _xxh64_fast is not None:
        return _xxh64_fast(data, seed)
    return xxh64_py(data, seed)


def ketama_points(data: bytes) -> list[int]:
    """The four little-endian 32-bit points of MD5(data), as libketama reads them."""
    return list(struct.unpack("<4I", hashlib.md5(data).digest()))


def key_bytes(key: str | bytes) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, bytes):
        return bytes(key)
    raise TypeError(f"key must be str or bytes, got {type(key).__name__}; convert it first")


def float32(x: float) -> float:
    """Round a double to the nearest float32, as C's (float) cast does."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _scaled(weights: list[float]) -> list[float]:
    """The weights times the power of two that puts the largest in [1, 2)."""
    exponent = math.frexp(max(weights))[1]
    return [math.ldexp(w, 1 - exponent) for w in weights]


def ketama_digest_counts(weights: list[float], vnodes: int = 160) -> list[int]:
    """libketama's ``floorf(pct * 40.0 * (float)numservers)`` per node, in float32
    (weights in server-list order, scaled by a power of two first; 0 is a count)."""
    if not weights:
        return []
    scaled = _scaled(weights)
    total = float32(math.fsum(scaled))
    n = float32(float(len(weights)))
    return [math.floor(float32(float32(float32(w) / total) * (vnodes // 4) * n)) for w in scaled]


def uhashring_digest_counts(weights: list[float], vnodes: int = 160) -> list[int]:
    """uhashring's ``(vnodes * nodes * weight) // total`` per node, in exact arithmetic."""
    exact = [Fraction(w) for w in weights]
    total = sum(exact)
    return [math.floor((vnodes // 4) * len(exact) * w / total) for w in exact]


class ReferenceRing:
    """The placement contract in plain Python: sorted (point, name) pairs + bisect."""

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] | None = None,
        *,
        vnodes: int = 160,
        hash: str = "xxh64",
        seed: int = 0,
    ) -> None:
        self.vnodes = vnodes
        self.hash = hash
        self.seed = seed
        if nodes is None:
            self.weights: dict[str, float] = {}
        elif isinstance(nodes, Mapping):
            self.weights = {name: float(w) for name, w in nodes.items()}
        else:
            self.weights = {name: 1.0 for name in nodes}
        self._build()

    # The contract ------------------------------------------------------

    def hash_key(self, key: str | bytes) -> int:
        data = key_bytes(key)
        if self.hash == "xxh64":
            return xxh64(data, self.seed)
        return ketama_points(data)[0]

    def node_points(self, name: str, count: int) -> list[int]:
        """The points of node `name` (count points; 4 per digest in the ketama modes)."""
        if self.hash == "xxh64":
            return [xxh64(f"{name}-{i}".encode(), self.seed) for i in range(count)]
        return [p for k in range(count // 4) for p in ketama_points(f"{name}-{k}".encode())]

    def point_counts(self) -> dict[str, int]:
        if self.hash == "xxh64":
            return {n: max(1, math.floor(self.vnodes * w + 0.5)) for n, w in self.weights.items()}
        count = ketama_digest_counts if self.hash == "ketama" else uhashring_digest_counts
        digests = count(list(self.weights.values()), self.vnodes)
        return {n: 4 * d for n, d in zip(self.weights, digests)}

    def tie_order(self) -> list[str]:
        """Who owns an equal point: the first of this list.  xxh64: name order;
        ketama: the server list (insertion order); ketama-uhashring: the last listed."""
        if self.hash == "xxh64":
            return sorted(self.weights)
        order = list(self.weights)
        return order[::-1] if self.hash == "ketama-uhashring" else order

    def _build(self) -> None:
        rank = {name: i for i, name in enumerate(self.tie_order())}
        counts = self.point_counts()
        triples: list[tuple[int, int, str]] = []
        for name, count in counts.items():
            triples.extend((p, rank[name], name) for p in self.node_points(name, count))
        triples.sort()  # equal points in tie order
        self.pairs = [(p, name) for p, _, name in triples]
        self.positions = [p for p, _ in self.pairs]
        self.pointless = sorted(name for name, count in counts.items() if count == 0)

    # The API -----------------------------------------------------------

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(sorted(self.weights))

    def add(self, name: str, weight: float = 1.0) -> None:
        self.weights[name] = float(weight)
        self._build()

    def remove(self, name: str) -> None:
        del self.weights[name]
        self._build()

    def _start(self, key: str | bytes) -> int:
        # uhashring takes the first point after the key's hash; the others at or after.
        search = bisect.bisect_right if self.hash == "ketama-uhashring" else bisect.bisect_left
        i = search(self.positions, self.hash_key(key))
        return 0 if i == len(self.positions) else i

    def get_node(self, key: str | bytes) -> str:
        return self.pairs[self._start(key)][1]

    def get_nodes(self, key: str | bytes, n: int) -> list[str]:
        """Distinct owners clockwise from the key; nodes without points close the list."""
        wanted = min(n, len(self.weights))
        walked = min(wanted, len(self.weights) - len(self.pointless))
        found: list[str] = []
        i = self._start(key)
        while len(found) < walked:
            name = self.pairs[i][1]
            if name not in found:
                found.append(name)
            i = (i + 1) % len(self.pairs)
        return found + self.pointless[: wanted - walked]

    # Bounded loads ----------------------------------------------------

    def bound(self, name: str, total: int, c: float) -> int:
        """Node `name`'s bound when `total` requests are in flight and one more is
        placed: ``ceil(c * (total + 1) * w / W)``, W the sum of the weights, in
        doubles left to right (math.fsum for W), the weights first multiplied by
        the power of two that puts the largest in [1, 2)."""
        scaled = dict(zip(self.nodes, _scaled([self.weights[n] for n in self.nodes])))
        return math.ceil(c * float(total + 1) * scaled[name] / math.fsum(scaled.values()))

    def get_node_bounded(self, key: str | bytes, loads: list[int], c: float) -> str:
        """The key's ring owner if it is below its bound, else the owner of the
        next point clockwise that is; the ring owner if none is."""
        by_name = dict(zip(self.nodes, loads))
        total = sum(loads)
        start = self._start(key)
        for step in range(len(self.pairs)):
            name = self.pairs[(start + step) % len(self.pairs)][1]
            if by_name[name] < self.bound(name, total, c):
                return name
        return self.pairs[start][1]

    def lookup_many_bounded(self, keys: list[str | bytes], loads: list[int], c: float) -> list[int]:
        """Each key placed in turn, each placement adding 1 to its node's load;
        indices into ``nodes``."""
        loads = list(loads)
        index = {name: i for i, name in enumerate(self.nodes)}
        out = []
        for key in keys:
            i = index[self.get_node_bounded(key, loads, c)]
            loads[i] += 1
            out.append(i)
        return out

    def __len__(self) -> int:
        return len(self.weights)
