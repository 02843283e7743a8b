"""Polling for a condition that a background thread or a server makes true, bounded in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(
    predicate: Callable[[], bool],
    seconds: float = 10.0,
    step: float = 0.05,
    action: Callable[[], Any] | None = None,
) -> bool:
    """Call `action` (if any) and poll `predicate` until it holds or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if action is not None:
            action()
        if predicate():
            return True
        time.sleep(step)
    return predicate()
