"""Argument types for argparse: whole numbers with k/M/G suffixes, weights, durations.

Each returns a function that argparse calls on the text; a bad value becomes
an ``argparse.ArgumentTypeError`` whose message argparse prefixes with the
argument's name, e.g. "argument --nodes: must be a whole number >= 1, got '0'".

The ranges of --vnodes, --nodes and --keys, and of weights, come from one
table shared with the library (``cvstore._limits.CLI_LIMITS``), so every
command takes the same values.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation, localcontext

from cvstore._limits import CLI_LIMITS, show_number
from cvstore.core.levels import LEVEL_NAMES

LEVELS = LEVEL_NAMES  # the consistency levels, from the core's one table

_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9}


def parse_count(text: str) -> int | None:
    """``"10M"`` -> 10_000_000, ``"1_000"`` -> 1000, ``"1e6"`` -> 1_000_000; None if not a count.

    The text is read as an exact decimal, so "1.5k" is 1500 and "5e-324" or
    "0.5" are not whole numbers (no rounding to 0 or 1).
    """
    t = text.strip().replace("_", "").replace(",", "").lower()
    scale = 1
    if t and t[-1] in _SUFFIXES:
        scale, t = _SUFFIXES[t[-1]], t[:-1]
    try:
        number = Decimal(t)
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite():
        return None
    if number.adjusted() > 4000:  # thousands of digits: beyond every limit, not expanded
        return None
    with localcontext() as exact:
        exact.prec = 4100  # enough digits that nothing below rounds
        value = number * scale
    if value != value.to_integral_value():
        return None
    return int(value)


def shown(text: str) -> str:
    """The text a user gave, quoted, or compactly when it is a very long number."""
    if len(text) <= 24:
        return repr(text)
    value = parse_count(text)
    return show_number(value) if value is not None else repr(text[:20] + "...")


def count(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number in [low, high]."""

    def convert(text: str) -> int:
        value = parse_count(text)
        bounds = f">= {low}" if high is None else f"from {low} to {high:,}"
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {bounds}, got {shown(text)}")
        return value

    convert.__name__ = "count"
    return convert


def limited(option: str) -> Callable[[str], int]:
    """A whole number in the shared range of `option` ("vnodes", "nodes" or "keys")."""
    low, high = CLI_LIMITS[option]
    return count(int(low), int(high))


WEIGHT_LOW, WEIGHT_HIGH = CLI_LIMITS["weight"]


def parse_weight(text: str) -> float | None:
    """A weight in the shared range, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if WEIGHT_LOW <= value <= WEIGHT_HIGH else None  # also false for nan


def weight(text: str) -> float:
    """A node's relative capacity: a number in the shared weight range."""
    value = parse_weight(text)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"weights must be numbers from {WEIGHT_LOW:g} to {WEIGHT_HIGH:g}, got {shown(text)}"
        )
    return value


def duration(text: str) -> float:
    """Seconds: a number from 0.001 to 60."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.001 <= value <= 60:  # also false for nan
        raise argparse.ArgumentTypeError(f"must be seconds from 0.001 to 60, got {shown(text)}")
    return value


def _number(name: str, low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = (low < value if low_open else low <= value) and value <= high  # false for nan
        if not ok:
            side = ">" if low_open else ">="
            raise argparse.ArgumentTypeError(
                f"must be a number {side} {low:g} and <= {high:g}, got {shown(text)}"
            )
        return value

    convert.__name__ = name
    return convert


zipf_exponent = _number("zipf", 0.0, 5.0)
balance = _number("balance", 1.0, 100.0, low_open=True)
utilization = _number("utilization", 0.0, 0.99, low_open=True)


def speed(text: str) -> float:
    """A node's service rate (``simulate --speeds``): a number in the shared weight range."""
    value = parse_weight(text)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"speeds must be numbers from {WEIGHT_LOW:g} to {WEIGHT_HIGH:g}, got {shown(text)}"
        )
    return value
