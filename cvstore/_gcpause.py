"""gc_paused(): hold off the cyclic garbage collector while a batch call allocates.

A batch call creates one record (a tuple) per key and no reference cycles.
Those allocations would otherwise trigger collections that walk every object
the stores hold, roughly once per 100,000-key batch, which costs as much as
the batch itself.  Reference counting still frees everything as usual; the
collector runs again as soon as the last paused call returns.  Calls from
several threads nest: the collector is re-enabled by the last one out, and
only if it was enabled when the first one came in.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ("gc_paused",)

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
