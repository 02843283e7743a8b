"""Plain-text output for the commands: tables, bars, numbers and progress bars.

Everything prints plain ASCII-safe text that reads the same in a terminal
and in a log file: no colours, no cursor tricks, except the progress bar,
which goes to stderr and only when stderr is a terminal (or when asked).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

BAR_WIDTH = 40


def table(
    rows: Iterable[Sequence[Any]],
    headers: Sequence[str],
    *,
    indent: str = "  ",
    left: int = 1,
) -> str:
    """Rows in aligned columns under a header line (tabulate's "simple" format).

    The first `left` columns (names) are aligned left, the others (numbers) right.
    """
    from tabulate import tabulate

    align = ("left",) * left + ("right",) * (len(headers) - left)
    text = tabulate(
        list(rows), headers=list(headers), tablefmt="simple", disable_numparse=True, colalign=align
    )
    return "\n".join(indent + line for line in text.splitlines())


def bar(value: float, top: float, width: int = BAR_WIDTH) -> str:
    """A bar of '#' for `value` out of `top`, `width` characters at most."""
    if top <= 0 or value <= 0:
        return ""
    return "#" * max(1, round(width * min(value, top) / top))


def bars(
    items: Sequence[tuple[str, float, str]], width: int = BAR_WIDTH, indent: str = "  "
) -> str:
    """One line per (label, value, note): the label, a bar scaled to the largest value, the note."""
    if not items:
        return ""
    top = max(value for _, value, _ in items)
    label_width = max(len(label) for label, _, _ in items)
    return "\n".join(
        f"{indent}{label:<{label_width}}  {bar(value, top, width):<{width}}  {note}".rstrip()
        for label, value, note in items
    )


def num(n: int) -> str:
    """1234567 -> '1,234,567'."""
    return f"{n:,}"


def pct(fraction: float, digits: int = 3) -> str:
    """0.0123 -> '1.230%'."""
    return f"{100 * fraction:.{digits}f}%"


def seconds(s: float) -> str:
    return f"{s:.2f} s" if s >= 0.1 else f"{1000 * s:.1f} ms"


def rate(per_second: float) -> str:
    """A speed in M/s or k/s."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.1f} M"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f} k"
    return f"{per_second:.0f}"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress(total: int, desc: str, enabled: bool | None, unit: str = "keys") -> Any:
    """A tqdm progress bar on stderr, or a do-nothing one.

    `enabled` None means: only when stderr is a terminal, so logs and pipes
    stay clean.  The bar disappears when done (``leave=False``).
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.2,
    )


def ticker(desc: str) -> Any:
    """A line on stderr that shows how long `desc` has been running (refresh() it)."""
    from tqdm import tqdm

    return tqdm(
        total=None,
        desc=desc,
        file=sys.stderr,
        leave=False,
        bar_format="{desc}: {elapsed} elapsed",
        mininterval=0.2,
    )
