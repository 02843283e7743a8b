"""Argument types for argparse: whole numbers with k/M/G suffixes, weights, durations.

Each returns a function that argparse calls on the text; a bad value becomes
an ``argparse.ArgumentTypeError`` whose message argparse prefixes with the
argument's name, e.g. "argument --nodes: must be a whole number >= 1, got '0'".
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

LEVELS = ("one", "quorum", "all", "eventual", "strong")

_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9}


def parse_count(text: str) -> int | None:
    """``"10M"`` -> 10_000_000, ``"1_000"`` -> 1000, ``"1e6"`` -> 1_000_000; None if not a count."""
    t = text.strip().replace("_", "").replace(",", "").lower()
    scale = 1
    if t and t[-1] in _SUFFIXES:
        scale, t = _SUFFIXES[t[-1]], t[:-1]
    try:
        value = int(t)
    except ValueError:
        try:
            f = float(t)
        except ValueError:
            return None
        if not math.isfinite(f) or abs(f * scale - round(f * scale)) > 1e-6:
            return None
        return round(f * scale)
    return value * scale


def count(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number in [low, high]."""

    def convert(text: str) -> int:
        value = parse_count(text)
        bounds = f">= {low}" if high is None else f"from {low} to {high:,}"
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {bounds}, got {text!r}")
        return value

    convert.__name__ = "count"
    return convert


def weight(text: str) -> float:
    """A finite number > 0 (a node's relative capacity)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"weights must be numbers > 0, got {text!r}")
    return value


def duration(text: str) -> float:
    """Seconds: a number > 0 and at most 60."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 60):
        raise argparse.ArgumentTypeError(f"must be seconds > 0 and <= 60, got {text!r}")
    return value
