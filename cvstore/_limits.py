"""The size limits of a ring, in one place: HashRing enforces them and the
command line's --vnodes, --nodes and --keys take their ranges from here.

They stop a typo (a weight of 1e12, vnodes of 2**63) from exhausting memory
or overflowing a C integer, and they keep every index within the ring's
32-bit owner and radix-table arrays.
"""

from __future__ import annotations

import numbers

#: points per unit of weight (HashRing's ``vnodes``)
MAX_VNODES = 10_000_000
#: points of one node: round(vnodes * weight), or 4 per ketama digest
MAX_POINTS_PER_NODE = 10_000_000
#: points of the whole ring (12 bytes each in the lookup arrays)
MAX_POINTS = 100_000_000
#: the sum of the loads given to a bounded lookup (requests in flight): below
#: 2**52, so the total + 1 and every load are exact in a double
MAX_TOTAL_LOAD = 2**52

#: the command line's ranges, the same for every command that takes the option.
#: A weight is relative, so a range of 1e12 between nodes is plenty, and it keeps
#: every share and load ratio a command prints a plain number.
CLI_LIMITS = {
    "vnodes": (1, MAX_VNODES),
    "nodes": (1, 100_000),
    "keys": (1, 1_000_000_000),
    "weight": (1e-6, 1e6),
}


def show_number(value: object) -> str:
    """A number as an error message shows it: its repr, but never hundreds of
    digits (an int of more than 20 digits is shown as 1.234e+56) and numpy
    scalars as the Python number they equal."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
        digits = str(abs(value))
        if len(digits) > 20:
            sign = "-" if value < 0 else ""
            return f"{sign}{digits[0]}.{digits[1:4]}e+{len(digits) - 1}"
        return repr(value)
    if isinstance(value, numbers.Real) and type(value) is not float:
        try:
            return repr(float(value))
        except OverflowError:
            pass
    return repr(value)  # a float's repr is already short: 1e+300, 5e-324


__all__ = (
    "CLI_LIMITS",
    "MAX_POINTS",
    "MAX_POINTS_PER_NODE",
    "MAX_TOTAL_LOAD",
    "MAX_VNODES",
    "show_number",
)
