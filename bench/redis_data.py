"""The data both Redis benchmark modules time over, and how they walk through it.

100,000 keys of 16 bytes (``key:`` and 12 digits) with 100 random bytes each,
seeded, so every run and both modules time the same records.
"""

from __future__ import annotations

import random

N_KEYS = 100_000
VALUE_BYTES = 100
SEED = 20240229


def make_data() -> tuple[list[bytes], list[bytes]]:
    """The keys and their values."""
    rng = random.Random(SEED)
    keys = [b"key:%012d" % i for i in range(N_KEYS)]
    values = [rng.randbytes(VALUE_BYTES) for _ in range(N_KEYS)]
    return keys, values


class Slices:
    """The next `size` keys (and values) of the data on every call, wrapping."""

    def __init__(self, data: tuple[list[bytes], list[bytes]], size: int) -> None:
        self.keys, self.values = data
        self.size = size
        self.start = 0

    def next(self) -> tuple[list[bytes], list[bytes]]:
        a = self.start
        self.start = (a + self.size) % len(self.keys)
        return self.keys[a : a + self.size], self.values[a : a + self.size]
