"""Synthetic keys ``key-0``, ``key-1``, ... built as numpy byte-string arrays, no Python loop.

``synthetic_keys(start, stop)`` returns the keys of that range as a numpy
``S`` array (the ring's batch calls take it as is: a row's bytes without its
trailing NUL padding, exactly the key ``f"key-{i}"``).  The digits are
written with integer arithmetic on whole columns, one pass per digit, so ten
million keys take a fraction of a second instead of ten million f-strings.
"""

from __future__ import annotations

import numpy as np

PREFIX = b"key-"


def synthetic_keys(start: int, stop: int, prefix: bytes = PREFIX) -> np.ndarray:
    """``[f"key-{i}".encode() for i in range(start, stop)]`` as a numpy ``S`` array."""
    if not 0 <= start <= stop:
        raise ValueError(f"need 0 <= start <= stop, got start={start!r}, stop={stop!r}")
    n = stop - start
    digits = len(str(max(stop - 1, 0)))
    p = len(prefix)
    width = p + digits
    buf = np.zeros((n, width), dtype=np.uint8)
    if n == 0:
        return buf.view(f"S{width}").reshape(0)
    buf[:, :p] = np.frombuffer(prefix, dtype=np.uint8)
    lo = start
    while lo < stop:
        # Numbers with the same count of digits d fill columns p .. p+d-1;
        # shorter ones leave NULs after them, which numpy's S type drops.
        d = len(str(lo))
        hi = min(stop, 10**d)
        vals = np.arange(lo, hi, dtype=np.uint64)
        block = buf[lo - start : hi - start]
        for j in range(p + d - 1, p - 1, -1):
            block[:, j] = vals % 10 + 48
            vals //= 10
        lo = hi
    return buf.view(f"S{width}").reshape(n)
