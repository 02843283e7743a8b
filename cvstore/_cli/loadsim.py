"""``cvstore simulate --zipf S``: requests, not keys: load per node and latency, by strategy.

A seeded, deterministic model (numpy for the draws, pure Python for the
events); nothing in it is measured on a machine.

The workload
    ``--requests R`` requests; request j asks for key ``key-{r}`` with r drawn
    from Zipf(S) over ``--keys K`` (P(r) proportional to 1 / (r + 1)^S; key-0
    the hottest).  Arrivals are Poisson, at ``--utilization U`` times the
    nodes' total service rate.

The nodes
    ``--nodes N`` with ``--weights`` (their ring capacity) and ``--speeds``
    (service rate, requests per unit of time; repeated like --weights).  Each
    node is one FIFO server whose service times are exponential with mean
    1 / speed.  A request's latency is its wait in that queue plus its
    service.

Where a request goes
    ring
        the key's owner on the ring (the first node of its preference list).
    bounded
        consistent hashing with bounded loads: the owner if its requests so
        far are below ``ceil(c * (total + 1) * w / sum(w))`` (``total``: the
        requests assigned before this one, ``c``: ``--balance``), else the
        next node clockwise with room.  No node ever holds more than that
        bound (a test checks it).  Like the ring, it routes a request to one
        backend (a cache, a server), which need not keep a copy.
    random, fastest, adaptive
        a read at level one: one of the key's ``--rf`` replicas.  random:
        uniform.  fastest: the lowest smoothed latency this client observed
        (an EWMA with weight 0.1 of each answer's latency, 0 until a first
        answer; the driver's ``read_policy="fastest"``).  adaptive: the
        lowest ``ewma x (1 + outstanding)^3`` as C3 ranks replicas (its
        smoothed latency times the cube of 1 + the requests this client has
        outstanding there), so a slow or busy replica gets less.  The client
        learns a latency when the answer arrives, not when it sends.

What is reported, per strategy
    requests per node over its fair share (R x w / sum(w)): max and mean;
    the slowest node's share of requests; p50 and p99 latency in units of
    the mean service time of a speed-1 node.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np

from cvstore import HashRing
from cvstore._cli import text

STRATEGIES = ("ring", "bounded", "random", "fastest", "adaptive")
EWMA = 0.1  # weight of a new latency in fastest's and adaptive's smoothed latency
WALK = 16  # bounded: preference-list positions looked up in a batch; past them, one by one


def zipf_ranks(s: float, keys: int, requests: int, rng: np.random.Generator) -> np.ndarray:
    """`requests` key ranks drawn from Zipf(s) over `keys` keys (rank 0 the hottest)."""
    p = 1.0 / np.arange(1, keys + 1, dtype=np.float64) ** s
    p /= p.sum()
    return rng.choice(keys, size=requests, p=p)


def bounded_assign(
    walks: list[list[int]], weights: np.ndarray, c: float, walk_more: Any = None
) -> tuple[np.ndarray, int]:
    """Each request's node under bounded loads, and the largest bound met.

    `walks[j]`: request j's preference walk (node indices, owner first, every
    node at most once); `walk_more(j)` gives the whole walk when none of
    those has room.  A request goes to the first node of its walk whose
    requests so far are below ``ceil(c * (total + 1) * w / sum(w))``.
    """
    n = len(weights)
    share = weights / weights.sum()
    load = [0] * n
    out = np.empty(len(walks), dtype=np.int64)
    for j, walk in enumerate(walks):
        scale = c * (j + 1)
        for i in walk:
            if load[i] < math.ceil(scale * share[i]):
                break
        else:  # no room in the first WALK positions: the whole ring (always has room)
            for i in walk_more(j):
                if load[i] < math.ceil(scale * share[i]):
                    break
            else:  # pragma: no cover - sum of the bounds >= c * (total + 1) > total
                raise AssertionError("no node has room under the bound")
        load[i] += 1
        out[j] = i
    return out, max(load)


def serve(
    arrivals: np.ndarray,
    service: np.ndarray,
    choices: list[list[int]],
    speeds: np.ndarray,
    policy: str,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the FIFO queues: (each request's node, each request's latency).

    `choices[j]`: the nodes request j may go to (one for ring and bounded,
    the key's replicas for the read policies); `service[j]`: its work, in
    units of a speed-1 node's mean service time (divided by the node's speed).
    """
    n = len(speeds)
    free_at = [0.0] * n
    ewma = [0.0] * n
    outstanding = [0] * n
    answers: list[tuple[float, int, float]] = []  # (when, node, latency) not yet seen
    nodes = np.empty(len(arrivals), dtype=np.int64)
    latency = np.empty(len(arrivals), dtype=np.float64)
    picks = rng.random(len(arrivals))
    for j, t in enumerate(arrivals.tolist()):
        while answers and answers[0][0] <= t:  # answers that arrived before this request
            _, i, lat = heapq.heappop(answers)
            ewma[i] += EWMA * (lat - ewma[i]) if ewma[i] else lat
            outstanding[i] -= 1
        options = choices[j]
        if len(options) == 1 or policy in ("ring", "bounded"):
            i = options[0]
        elif policy == "random":
            i = options[int(picks[j] * len(options))]
        elif policy == "fastest":
            i = min(options, key=lambda x: ewma[x])
        else:  # adaptive
            i = min(options, key=lambda x: ewma[x] * (1 + outstanding[x]) ** 3)
        start = max(t, free_at[i])
        done = start + float(service[j]) / float(speeds[i])
        free_at[i] = done
        outstanding[i] += 1
        heapq.heappush(answers, (done, i, done - t))
        nodes[j] = i
        latency[j] = done - t
    return nodes, latency


def run_load(
    args: Any, weights: list[float], speeds: list[float], names: list[str]
) -> dict[str, Any]:
    """Every strategy on one seeded workload; a JSON-ready dict."""
    n, k, r, rf = args.nodes, args.keys, args.requests, args.rf
    rng = np.random.default_rng(args.seed)
    ring = HashRing(
        dict(zip(names, weights)),
        vnodes=args.vnodes,
        hash=args.hash,
        seed=args.seed if args.hash == "xxh64" else 0,
    )
    order = [names.index(x) for x in ring.nodes]  # ring index -> our node index
    w = np.array(weights, dtype=np.float64)
    mu = np.array(speeds, dtype=np.float64)

    ranks = zipf_ranks(args.zipf, k, r, rng)
    distinct, inverse = np.unique(ranks, return_inverse=True)
    kbs = [f"key-{x}".encode() for x in distinct.tolist()]
    depth = min(n, max(WALK, rf))
    walks_distinct = ring.get_nodes_many(kbs, depth)
    remap = np.array(order, dtype=np.int64)
    walks_distinct = remap[walks_distinct].tolist()
    walks = [walks_distinct[x] for x in inverse.tolist()]

    def walk_more(j: int) -> list[int]:
        return [names.index(x) for x in ring.get_nodes(kbs[inverse[j]], n)]

    rate = args.utilization * float(mu.sum())
    arrivals = np.cumsum(rng.exponential(1.0 / rate, size=r))
    service = rng.exponential(1.0, size=r)

    bounded_nodes, max_load = bounded_assign(walks, w, args.balance, walk_more)
    fair = r * w / w.sum()
    results = []
    slowest = int(np.argmin(mu))
    for strategy in STRATEGIES:
        if strategy == "ring":
            choices = [walk[:1] for walk in walks]
        elif strategy == "bounded":
            choices = [[int(i)] for i in bounded_nodes.tolist()]
        else:
            choices = [walk[:rf] for walk in walks]
        nodes, latency = serve(
            arrivals, service, choices, mu, strategy, np.random.default_rng(args.seed + 1)
        )
        counts = np.bincount(nodes, minlength=n)
        ratio = counts / fair
        results.append(
            {
                "strategy": strategy,
                "max_over_fair": float(ratio.max()),
                "mean_over_fair": float(ratio.mean()),
                "max_requests": int(np.max(counts)),
                "slowest_node": names[slowest],
                "slowest_share": float(counts[slowest] / r),
                "p50": float(np.percentile(latency, 50)),
                "p99": float(np.percentile(latency, 99)),
                "per_node": {name: int(x) for name, x in zip(names, counts)},
            }
        )
    bounds = {name: math.ceil(args.balance * r * wi / w.sum()) for name, wi in zip(names, weights)}
    return {
        "mode": "load",
        "nodes": n,
        "keys": k,
        "requests": r,
        "zipf": args.zipf,
        "rf": rf,
        "balance": args.balance,
        "utilization": args.utilization,
        "vnodes": args.vnodes,
        "hash": args.hash,
        "seed": args.seed,
        "weights": [float(x) for x in weights],
        "speeds": [float(x) for x in speeds],
        "bounded_max_requests": int(max_load),
        "bounds": bounds,
        "hottest_key_requests": int(np.count_nonzero(ranks == 0)),
        "strategies": results,
    }


def render_load(r: dict[str, Any]) -> str:
    """The plain-text report of the load mode."""
    speeds = sorted(set(r["speeds"]))
    lines = [
        (
            f"simulate: {text.num(r['requests'])} requests, Zipf({r['zipf']:g}) over "
            f"{text.num(r['keys'])} keys, on {text.num(r['nodes'])} nodes (speeds "
            f"{', '.join(f'{s:g}' for s in speeds)}), RF {r['rf']}, utilization "
            f"{r['utilization']:g}, balance c = {r['balance']:g}, seed {r['seed']}"
        ),
        f"the hottest key has {text.num(r['hottest_key_requests'])} requests",
        "",
    ]
    rows = [
        (
            s["strategy"],
            f"{s['max_over_fair']:.3f}",
            f"{s['mean_over_fair']:.3f}",
            text.pct(s["slowest_share"]),
            f"{s['p50']:.2f}",
            f"{s['p99']:.2f}",
        )
        for s in r["strategies"]
    ]
    lines.append(
        text.table(rows, ["strategy", "max/fair", "mean/fair", "slowest node", "p50", "p99"])
    )
    lines += [
        "  max/fair, mean/fair: requests per node over its weight's share",
        f"  slowest node: the share of requests sent to {r['strategies'][0]['slowest_node']}",
        "  p50, p99: latency in mean service times of a speed-1 node (queue wait + service)",
        (
            "  ring, bounded: to one node (bounded: next clockwise with room under "
            f"ceil({r['balance']:g} x average x weight)); random, fastest, adaptive: one of "
            "the key's replicas"
        ),
    ]
    return "\n".join(lines)
