"""The picture of ``cvstore simulate --plot``: load per node, and what moved vs the ideal.

matplotlib comes from the optional ``plot`` extra and is imported only here.
The figure is drawn with the object API (``matplotlib.figure.Figure``), so no
GUI backend or global pyplot state is involved.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_BLUE = "#3b6ea8"
_ORANGE = "#e0893a"
_GREY = "#9a9a9a"


def plot_simulation(path: str, result: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Write the simulate figure to `path` (format from its suffix)."""
    from matplotlib.figure import Figure

    changes = result["changes"]
    base = arrays["base"]
    ratios = arrays["load"].ratios()
    panels = 1 + (len(changes) + 1 if changes else 0)
    fig = Figure(figsize=(10, 2.9 * panels + 0.4), layout="constrained")
    axes = list(fig.subplots(panels, 1, squeeze=False)[:, 0])

    ax = axes.pop(0)
    x = np.arange(len(ratios))
    ax.bar(x, ratios, width=1.0, color=_BLUE, linewidth=0)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlim(-0.5, len(ratios) - 0.5)
    ax.set_ylim(0, max(1.2, float(ratios.max()) * 1.08))
    ax.set_ylabel("keys / fair share")
    ax.set_xlabel(f"node ({base.nodes[0]} .. {base.nodes[-1]})")
    keys = result["load"]["keys"]
    ax.set_title(
        f"load per node: {result['keys']:,} keys on {result['nodes']:,} nodes, "
        f"{result['vnodes']} vnodes ({result['hash']})   "
        f"max {keys['max_over_fair']:.3f}  min {keys['min_over_fair']:.3f}  "
        f"stddev {keys['stddev_over_fair']:.3f}",
        fontsize=10,
    )

    for c, ax in zip(arrays["changes"], axes):
        _plot_change_per_node(ax, c, base, arrays["load"].counts, result)

    if changes:
        ax = axes[-1]
        labels = []
        moved, ideal = [], []
        for c in changes:
            what = f"{c['change']} {len(c['nodes'])}"
            labels += [f"{what}: keys", f"{what}: copies (RF {result['rf']})"]
            moved += [c["keys_moved_fraction"], c["copies_moved_fraction"]]
            ideal += [c["keys_ideal_fraction"], c["copies_ideal_fraction"]]
        y = np.arange(len(labels))
        h = 0.38
        got = ax.barh(y - h / 2, np.array(moved) * 100, h, color=_ORANGE, label="moved")
        want = ax.barh(
            y + h / 2,
            np.array(ideal) * 100,
            h,
            color=_GREY,
            label="ideal (every node at its fair share)",
        )
        ax.bar_label(got, fmt="%.3f%%", padding=3, fontsize=8)
        ax.bar_label(want, fmt="%.3f%%", padding=3, fontsize=8)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, max(max(moved), max(ideal)) * 100 * 1.25)
        ax.set_xlabel("% of keys / of replica copies")
        ax.set_title("what moves on each change (from the same start) vs the ideal", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)

    fig.savefig(path, dpi=100)


def _plot_change_per_node(
    ax: Any, change: Any, base: Any, before: np.ndarray, result: dict
) -> None:
    """Keys each node gains (+) or loses (-) in one change, as a share of a fair share."""
    names = sorted(set(base.nodes) | set(change.ring.nodes))
    pos = {name: i for i, name in enumerate(names)}
    delta = np.zeros(len(names))
    for name, count in zip(base.nodes, before):
        delta[pos[name]] -= count
    for name, count in zip(change.ring.nodes, change.owners):
        delta[pos[name]] += count
    fair = result["keys"] / len(base.nodes)
    touched = np.array([name in change.names for name in names])
    x = np.arange(len(names))
    ax.bar(
        x[~touched],
        delta[~touched] / fair,
        width=1.0,
        color=_BLUE,
        linewidth=0,
        label="nodes that stayed",
    )
    ax.bar(
        x[touched],
        delta[touched] / fair,
        width=max(1.0, len(names) / 150),
        color=_ORANGE,
        linewidth=0,
        label=f"{'added' if change.kind == 'add' else 'removed'} nodes",
    )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylabel("keys gained / fair share")
    ax.set_xlabel("node")
    ax.set_title(
        f"{change.label}: keys each node gains or loses "
        f"({change.keys_moved:,} keys move, {change.needless:,} between nodes that stayed)",
        fontsize=10,
    )
    ax.legend(loc="upper left" if change.kind == "add" else "lower left", fontsize=8)


def plot_load(path: str, result: dict[str, Any]) -> None:
    """Write the load-mode figure of ``simulate --zipf`` to `path`: requests per node over its
    fair share for each strategy, and p50/p99 latency per strategy."""
    from matplotlib.figure import Figure

    strategies = result["strategies"]
    names = list(strategies[0]["per_node"])
    weights = np.array(result["weights"])
    fair = result["requests"] * weights / weights.sum()
    fig = Figure(figsize=(10, 6.2), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    x = np.arange(len(names))
    width = 0.8 / len(strategies)
    for k, s in enumerate(strategies):
        counts = np.array([s["per_node"][name] for name in names])
        top.bar(
            x + (k - (len(strategies) - 1) / 2) * width, counts / fair, width, label=s["strategy"]
        )
    top.axhline(1.0, color="black", linewidth=0.8)
    top.axhline(result["balance"], color=_GREY, linewidth=0.8, linestyle="--")
    top.set_xticks(x, names if len(names) <= 20 else [""] * len(names))
    top.set_ylabel("requests / fair share")
    top.set_title(
        f"{result['requests']:,} requests, Zipf({result['zipf']:g}) over {result['keys']:,} keys, "
        f"{result['nodes']} nodes, balance c = {result['balance']:g} (dashed)"
    )
    top.legend(ncols=len(strategies), fontsize="small")
    labels = [s["strategy"] for s in strategies]
    xs = np.arange(len(labels))
    bottom.bar(xs - 0.2, [s["p50"] for s in strategies], 0.4, color=_BLUE, label="p50")
    bottom.bar(xs + 0.2, [s["p99"] for s in strategies], 0.4, color=_ORANGE, label="p99")
    bottom.set_xticks(xs, labels)
    bottom.set_yscale("log")  # a queue that overruns is thousands of times the healthy p50
    bottom.set_ylabel("latency (mean service times, log)")
    bottom.legend()
    fig.savefig(path)
