"""Membership kept on the nodes: reading layouts, installing them, and the rules of a change.

Every node holds the cluster's layout (``cvstore.core.layout``) under its
store's prefix.  A client loads the newest layout it can read, and every
request it sends carries that layout's epoch: a node holding another epoch
refuses the request (``FencedError``), so a client acting on an old layout
loads the newer one and asks again, and a node that missed a change is
brought up to date by the first client that meets it.

A new layout is installed with a compare-and-set on the epoch, node by node
in ``Layout.install_order()``: the first node decides between two changes
racing from the same epoch (the loser's swap fails there and it stops, with
the winner's layout), then the others are swapped together.

What a change needs: every node of the current layout and every joining node
reachable, except a node that is being removed, which may be down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from cvstore.core.calls import Call, Op, Proc, failed
from cvstore.core.layout import Layout, LayoutError, newest
from cvstore.errors import FencedError, LayoutConflictError, StoreError, UnavailableError

__all__ = (
    "add",
    "caught_up",
    "change",
    "clear",
    "empty",
    "finish",
    "install",
    "load",
    "push",
    "reachable",
    "recover",
    "refresh",
    "remove",
    "reweight",
    "share",
    "start",
)


def load(nodes: Sequence[Any]) -> Proc[tuple[Layout | None, dict[str, int]]]:
    """The newest layout the `nodes` hold, and the epoch each node that answered holds.

    A node whose layout does not parse counts as holding none (epoch 0).
    """
    results = yield [Call(node, Op.READ_LAYOUT) for node in nodes]
    epochs: dict[str, int] = {}
    layouts: list[Layout | None] = []
    for node, result in zip(nodes, results):
        if failed(result):
            continue
        epoch, data = result
        layout = None
        if data is not None:
            try:
                layout = Layout.from_bytes(data)
            except LayoutError:
                epoch = 0
        epochs[node.name] = epoch if layout is not None else 0
        layouts.append(layout)
    return newest(layouts), epochs


# How many members, first by name, decide between changes racing from one epoch.
DECIDERS = 3


def install(
    layout: Layout,
    nodes: dict[str, Any],
    expected: dict[str, int],
    order: Sequence[str] | None = None,
    skippable: str | None = None,
) -> Proc[list[str]]:
    """Install `layout` on `nodes` (name -> node) with a compare-and-set each.

    `expected` is the epoch each node is believed to hold; `order` the nodes
    to install on (by default ``layout.install_order()``: the members by
    name, then the joining ones; a commit also goes to the nodes leaving).

    The first ``DECIDERS`` of them decide between changes racing from the
    same epoch: each change swaps them one at a time, in that order, and the
    first one it swaps decides — a change that finds another layout there
    stops, having written nothing.  Only `skippable` (the node a change
    removes) may be passed over, and only when it does not answer: so a dead
    member can be removed even when its name sorts first.  Two changes then
    share at least one decider (each passes over at most one of three), met
    in the same order; at the first they share one of them loses.  A change
    that loses after it swapped earlier deciders (the winner passed over
    those) writes the winner's layout over its own there, then stops.

    Returns the names of the nodes that could not be reached (they learn the
    layout when next contacted).  Raises LayoutConflictError if another
    layout won, UnavailableError if a decider that may not be passed over
    does not answer before this change won one.
    """
    order = [name for name in order or layout.install_order() if name in nodes]
    data = layout.to_bytes()
    missed: list[str] = []
    won: list[str] = []  # deciders this change swapped
    for name in order[:DECIDERS]:
        (result,) = yield [
            Call(nodes[name], Op.SWAP_LAYOUT, (expected.get(name, 0), layout.epoch, data))
        ]
        if failed(result):
            if name == skippable or won:  # the change has won: it learns the layout later
                missed.append(name)
                continue
            raise _unreachable(layout, [nodes[name]], {name: result})
        held, held_data = result
        if held == layout.epoch and held_data == data:
            won.append(name)
            continue
        if won and held < layout.epoch:  # behind: it missed a layout; bring it up to date
            expected[name] = held
            (again,) = yield [Call(nodes[name], Op.SWAP_LAYOUT, (held, layout.epoch, data))]
            if not failed(again) and again == (layout.epoch, data):
                won.append(name)
                continue
            if failed(again):
                missed.append(name)
                continue
            held, held_data = again
        if won and held > layout.epoch and not _holds(held, held_data):
            missed.append(name)  # a corrupt epoch decides nothing (see below)
            continue
        if won:  # another change passed over our earlier deciders and won here first
            for mine in won:
                yield [Call(nodes[mine], Op.SWAP_LAYOUT, (layout.epoch, held, held_data))]
        raise _conflict(name, held, held_data, layout)
    rest = order[DECIDERS:]
    if not rest:
        return missed
    results = yield [
        Call(nodes[name], Op.SWAP_LAYOUT, (expected.get(name, 0), layout.epoch, data))
        for name in rest
    ]
    retry: list[str] = []
    for name, result in zip(rest, results):
        if failed(result):
            missed.append(name)
            continue
        held, held_data = result
        if held == layout.epoch and held_data == data:
            continue
        if held > layout.epoch and not _holds(held, held_data):
            # its epoch is ahead of the layout it holds (a corrupt epoch): no client
            # can follow it, so it decides nothing; it is left out, as a node down is
            missed.append(name)
            continue
        if held > layout.epoch:
            raise _conflict(name, held, held_data, layout)
        # behind, or the same epoch under a change that lost at the deciders and
        # died before it wrote the winner's layout back: this one won, it goes on
        expected[name] = held
        retry.append(name)
    if retry:
        again = yield [
            Call(nodes[name], Op.SWAP_LAYOUT, (expected[name], layout.epoch, data))
            for name in retry
        ]
        for name, result in zip(retry, again):
            if failed(result):
                missed.append(name)
            elif result[0] != layout.epoch:
                raise _conflict(name, result[0], result[1], layout)
    return missed


def _holds(epoch: int, data: bytes | None) -> bool:
    """Whether `data` is a layout of `epoch` (what an install writes with the epoch)."""
    if data is None:
        return False
    try:
        return Layout.from_bytes(data).epoch == epoch
    except LayoutError:
        return False


def push(layout: Layout, node: Any, held: int) -> Proc[bool]:
    """Bring a node that holds an older epoch up to `layout`; whether it holds it now."""
    if held >= layout.epoch:
        return held == layout.epoch
    (result,) = yield [Call(node, Op.SWAP_LAYOUT, (held, layout.epoch, layout.to_bytes()))]
    return not failed(result) and result[0] == layout.epoch


def reachable(
    layout: Layout, nodes: dict[str, Any], action: str, removing: str | None = None
) -> Proc[None]:
    """Check that a change may start: every node it needs answers a ping.

    The nodes of the layout and the joining ones must answer; a node being
    removed may be down.  Raises UnavailableError naming the missing ones.
    """
    needed = [nodes[spec.name] for spec in layout.everyone() if spec.name in nodes]
    results = yield [Call(node, Op.PING) for node in needed]
    down = {
        node.name: result
        for node, result in zip(needed, results)
        if failed(result) and node.name != removing
    }
    if down:
        raise _unreachable(layout, needed, down, action)


def _unreachable(
    layout: Layout, needed: Sequence[Any], down: dict[str, StoreError], action: str = "a change"
) -> UnavailableError:
    names = "; ".join(f"{name} down: {error.reason}" for name, error in down.items())
    alive = len(needed) - len(down)
    error = UnavailableError(
        # `layout` is the one this change wanted to install; the nodes stay at
        # the one before it (every layout is the one before plus one)
        f"{action} needs every node of the layout up, {alive} of {len(needed)} answered "
        f"({names}); the layout stays at epoch {layout.epoch - 1}; bring them back, or "
        "remove a dead node first",
        level="membership",
        required=len(needed),
        alive=alive,
        down=tuple(down),
        causes=down,
    )
    error.__cause__ = list(down.values())[-1]
    return error


def _conflict(name: str, held: int, held_data: bytes | None, wanted: Layout) -> LayoutConflictError:
    winner = None
    if held_data is not None:
        try:
            winner = Layout.from_bytes(held_data)
        except LayoutError:
            winner = None
    what = winner.describe() if winner is not None else f"epoch {held}"
    return LayoutConflictError(
        f"another client changed the membership first: node {name!r} holds {what}, "
        f"not the layout of epoch {wanted.epoch} this change wanted; nothing was changed",
        layout=winner,
    )


# ------------------------------------------------------------ the procedures

# A membership change, whole: ``add``, ``remove`` and ``reweight`` below.  On a
# cluster whose layout lives on the nodes (``ctx.layout`` set) each is a change
# of that layout (``start``); on one kept by this client alone, a rebalance in
# this process, undone if it fails.  The driver checks the arguments first and
# times the change; everything decided about it is here.


def add(ctx: Any, node: Any, spec: Any, now_ms: int) -> Proc[Any]:
    """Add `node` (`spec`: how the layout names it) and stream to it exactly the copies it gets."""
    from cvstore.core import hints as _hints
    from cvstore.core import rebalance

    if ctx.layout is not None:
        return (
            yield from start(
                ctx,
                lambda layout: layout.begin((*layout.nodes, spec), "add", node.name),
                {node.name: node},
                None,
            )
        )
    old = ctx.placement
    yield from empty([node])  # old copies could bring deleted keys back
    if ctx.hints.pending:  # stream from replicas that are as whole as they can be
        yield from _hints.deliver_found(ctx.hints, old, old.nodes, now_ms)
    new = ctx.placement_of([*old.nodes, node])
    ctx.join(node)
    try:
        return (yield from rebalance.rebalance(ctx, old, new, action="add", node=node.name))
    except BaseException:
        ctx.leave(node)
        raise


def remove(
    ctx: Any, member: Any, now_ms: int, retrying: Callable[[Callable[[], Proc[Any]]], Proc[Any]]
) -> Proc[Any]:
    """Decommission `member`: stream its copies to their new replicas, then let it go.

    Its hints go to a member, and those meant for it to the keys' replicas;
    `retrying(make)` runs those steps again on a fenced refusal.
    """
    from cvstore.core import hints as _hints
    from cvstore.core import rebalance

    name = member.name
    old = ctx.placement
    if ctx.layout is not None:
        if len(ctx.layout.nodes) == 1:
            raise ValueError(f"cannot remove {name!r}: it is the cluster's last node")
        report = yield from start(
            ctx,
            lambda layout: layout.begin(
                tuple(s for s in layout.nodes if s.name != name), "remove", name
            ),
            {},
            name,
        )
    else:
        remaining = [n for n in old.nodes if n is not member]
        if not remaining:
            (held,) = yield [Call(member, Op.COUNT)]
            if failed(held) or held:
                raise ValueError(
                    f"cannot remove {name!r}: it is the cluster's last node and holds data "
                    "that would be lost; add another node first"
                )
        if ctx.hints.pending:
            yield from _hints.deliver_found(ctx.hints, old, old.nodes, now_ms)
        new = ctx.placement_of(remaining)
        report = yield from rebalance.rebalance(ctx, old, new, action="remove", node=name)
    yield from retrying(lambda: _hints.move(ctx.hints, ctx.placement, member))
    ctx.hints.forget_node(name)
    if ctx.placement.nodes:
        yield from retrying(lambda: _hints.deliver(ctx.hints, ctx.placement, now_ms))
    if ctx.layout is None:
        ctx.leave(member)
    return report


def reweight(ctx: Any, member: Any, weight: float) -> Proc[Any]:
    """Give `member` a new weight (relative capacity) and stream the copies that move."""
    from cvstore.core import rebalance

    name = member.name
    if ctx.layout is not None:
        return (
            yield from start(
                ctx,
                lambda layout: layout.begin(
                    tuple(replace(s, weight=weight) if s.name == name else s for s in layout.nodes),
                    "weight",
                    name,
                ),
                {},
                None,
            )
        )
    old = ctx.placement
    new = ctx.placement_of(list(old.nodes), {**old.weights, name: weight})
    report = yield from rebalance.rebalance(ctx, old, new, action="weight", node=name)
    member.weight = weight
    return report


def refresh(ctx: Any, fenced_by: Any = None) -> Proc[Layout | None]:
    """Load the newest layout from every node this client knows; apply it if it is newer.

    Nodes found holding an older epoch are brought up to date.  Returns the
    layout the client holds afterwards.
    """
    known = dict(ctx.members)
    layout, epochs = yield from load(list(known.values()))
    if layout is None:
        return ctx.layout
    current = ctx.layout
    if current is not None and layout.cluster != current.cluster:
        raise LayoutError(
            f"the nodes now hold a layout of another cluster ({layout.cluster}, not "
            f"{current.cluster}); a node was given to two clusters"
        )
    if current is None or layout.epoch > current.epoch:
        ctx.apply_layout(layout)
        known.update(ctx.members)
        if any(spec.name not in epochs for spec in layout.everyone()):  # new nodes: read them too
            _, more = yield from load(
                [known[s.name] for s in layout.everyone() if s.name not in epochs]
            )
            epochs.update(more)
    for name, held in epochs.items():
        node = known.get(name)
        if node is not None and held < layout.epoch and layout.spec(name) is not None:
            yield from push(layout, node, held)
    return ctx.layout


def change(ctx: Any, target: Layout, joining: dict[str, Any], removing: str | None) -> Proc[Any]:
    """Carry a change from the current stable layout to `target` (a changing layout) and commit.

    1. every node it needs answers; 2. `target` installed on every node with
    a compare-and-set (epoch e -> e + 1); 3. the client writes to the old and
    the new replicas; 4. every node but a removed one brought to e + 1, then
    copies stream from every old replica to every gained one (``caught_up``,
    ``whole``); 5. the commit (e + 2) installed on every node; 6. copies no
    longer placed are dropped, from nodes that hold the commit.  Returns the
    rebalancing report.
    """
    current = ctx.layout
    nodes = {**ctx.members, **joining}
    yield from reachable(target, nodes, _action(target), removing)
    if joining:  # a node joins empty, or left behind by this very cluster
        held, _ = yield from load(list(joining.values()))
        if held is not None and (held.cluster != current.cluster or held.epoch > current.epoch):
            raise LayoutError(
                f"node {next(iter(joining))!r} holds the layout of cluster {held.cluster} "
                f"(epoch {held.epoch}): it belongs to another cluster; clear it first"
            )
        yield from empty(list(joining.values()))
    expected = {name: current.epoch for name in current.names}
    yield from install(target, nodes, expected, skippable=removing)
    ctx.apply_layout(target, joining)
    return (yield from finish(ctx))


def finish(ctx: Any, abort: bool = False) -> Proc[Any]:
    """Carry the changing layout the client holds forward (stream, commit, drop), or abort it.

    Any client can finish a change another one left half done: streaming is
    a set of conditional writes, so doing it twice is harmless, and the
    commit is a compare-and-set that only one client wins (a client that
    finds the commit already installed has nothing left to do but drop).
    """
    from cvstore.core import rebalance

    changing = ctx.layout
    if changing is None or not changing.changing:
        raise LayoutError("no change is under way")
    nodes = dict(ctx.members)
    order = changing.install_order()
    expected = {name: changing.epoch for name in order}
    old, new = ctx.placement, ctx.placement.pending
    if abort:
        end = changing.abort()
        missed = yield from install(end, nodes, expected, order, _removing(changing))
        # Nodes that were joining hold copies streamed to them, outside every replica
        # set of `end`: those that took `end` (no client can write to them at e + 1
        # any more) are cleared now.  One that missed it keeps them, and is refused
        # by a later add_node until cleared (``empty``).
        joiners = [
            name
            for name in order
            if changing.spec(name) is not None and name not in changing.names and name not in missed
        ]
        kept = ctx.apply_layout(end, keep=joiners)
        try:
            cleared = yield from clear(ctx, kept)
        finally:
            ctx.release(kept)
        return rebalance.report(
            "abort", str(changing.change.get("node")), rebalance.empty(), cleared
        )
    removing = _removing(changing)
    end = changing.commit()
    # every node but the one removed: brought to e + 1, then read or written by the stream
    needed = [
        nodes[spec.name]
        for spec in changing.everyone()
        if spec.name in nodes and spec.name != removing
    ]
    yield from caught_up(changing, needed)
    moves = yield from rebalance.stream(ctx, old, new, ask=frozenset(n.name for n in needed))
    short = {name: error for name, error in moves.short().items() if name != removing}
    if short:  # see ``whole``
        raise whole(end, changing, needed, short)
    yield from install(end, nodes, expected, order, removing)
    ctx.apply_layout(end)
    dropped = yield from rebalance.drop(old, new, moves)
    return rebalance.report(
        str(changing.change.get("action")), str(changing.change.get("node")), moves, dropped
    )


def caught_up(changing: Layout, needed: Sequence[Any]) -> Proc[None]:
    """Before the stream and the commit: every node `needed` (those of `changing` but one it
    removes) holds its epoch or a newer one.

    A node that missed the changing layout (e + 1) still holds e and serves
    clients on e, who ask a key's old replicas only.  After the commit (e + 2)
    writes go to the new replicas only: two such nodes of a key's old replicas
    would be a quorum that never sees them.  So nodes found behind are brought
    to `changing` first, and one that does not answer, or cannot be brought,
    stops the commit (UnavailableError; the change stays under way, and any
    client can finish it later).  Clients on e + 1 read the new replicas too
    (``reads``), so a node left on e + 1 by the commit is harmless.  Done
    before the stream: a node the stream reads then takes no more writes
    under e (they would not be streamed).
    """
    results = yield [Call(node, Op.READ_LAYOUT) for node in needed]
    behind: dict[str, StoreError] = {}
    for node, result in zip(needed, results):
        if failed(result):
            behind[node.name] = result
        elif result[0] < changing.epoch and not (yield from push(changing, node, result[0])):
            reason = f"holds epoch {result[0]} and could not be brought to {changing.epoch}"
            behind[node.name] = StoreError(
                f"node {node.name!r} {reason}", node=node.name, unreachable=False, reason=reason
            )
    if behind:
        raise _unreachable(changing.commit(), needed, behind, f"the commit of {_action(changing)}")


def whole(
    end: Layout, changing: Layout, needed: Sequence[Any], short: dict[str, StoreError | None]
) -> UnavailableError:
    """Why the commit `end` waits: the stream could not read or write every node it needs.

    After the commit a key is read from its new replicas alone.  A write
    acknowledged before the change is on a quorum of the key's old replicas;
    the stream reads every old replica but the node removed (at least one of
    that quorum: N - 1 + N // 2 + 1 > N) and writes the newest copy to every
    replica the key gains, so the new replicas hold it on at least a quorum
    (those of the quorum that stay, and every gained one).  A stream that
    read fewer, or left a hint for a gained replica instead of writing it,
    could commit a key whose new replicas hold a quorum of an older copy.
    So the commit waits (the change stays under way; streaming again is
    harmless, and any client can finish it later).
    """
    causes = {
        name: error
        or StoreError(f"node {name!r} is believed down", node=name, reason="believed down")
        for name, error in short.items()
    }
    return _unreachable(end, needed, causes, f"the commit of {_action(changing)}")


def empty(nodes: Sequence[Any]) -> Proc[None]:
    """LayoutError unless every joining node holds no record and no hint.

    A node joins empty.  One that holds data (a node removed while it was
    down, a join taken back while it was unreachable, a server used before)
    could hand its old copies back as current: a key deleted and purged since
    would return.  The error says how to clear it.
    """
    results = yield [Call(node, op) for node in nodes for op in (Op.COUNT, Op.COUNT_HINTS)]
    for i, node in enumerate(nodes):
        records, hints = results[2 * i], results[2 * i + 1]
        for result in (records, hints):
            if failed(result):
                raise _unreachable_joiner(node, result)
        if records or hints:
            store = node.store
            address = store.address
            if address:
                prefix = store.prefix
                if isinstance(prefix, bytes):
                    prefix = prefix.decode("utf-8", "replace")
                where = f" ({address}, prefix {prefix!r})"
                how = (
                    "Clear it first (store.clear(), which deletes every key under its prefix, "
                    "or `cvstore cluster forget-node URL --prefix P --yes`), then add it again"
                )
            else:
                where = f" ({type(store).__name__})"
                how = "Add it with an empty store instead (Node(name) makes one)"
            raise LayoutError(
                f"node {node.name!r}{where} holds {records} records and {hints} hints: data "
                "left from before (a node removed while it was down, a join taken back while "
                "it was unreachable, or another use of its store); a node joins empty, or its "
                f"old copies could bring deleted keys back. {how}"
            )


def _unreachable_joiner(node: Any, error: StoreError) -> UnavailableError:
    failure = UnavailableError(
        f"add {node.name!r} needs the joining node to answer: {error.reason}",
        level="membership",
        required=1,
        alive=0,
        down=(node.name,),
        causes={node.name: error},
    )
    failure.__cause__ = error
    return failure


def clear(ctx: Any, nodes: Sequence[Any]) -> Proc[dict[str, int]]:
    """Delete every record `nodes` hold (nodes no layout places anything on); hints go to members.

    The deletes carry the client's epoch: a node that does not hold the
    client's layout refuses them and keeps its data.  Returns how many records
    each node dropped.
    """
    from cvstore.core import hints as _hints

    if not nodes:
        return {}
    for node in nodes:
        yield from _hints.move(ctx.hints, ctx.placement, node)
    listed = yield [Call(node, Op.KEYS) for node in nodes]
    targets = [(node, keys) for node, keys in zip(nodes, listed) if not failed(keys) and keys]
    results = yield [Call(node, Op.DELETE_MANY, (keys,)) for node, keys in targets]
    return {node.name: int(r) for (node, _), r in zip(targets, results) if not failed(r)}


def _removing(changing: Layout) -> str | None:
    """The node a changing layout removes (it may be down), if it removes one."""
    if changing.change.get("action") == "remove":
        return str(changing.change.get("node"))
    return None


def _action(layout: Layout) -> str:
    return f"{layout.change.get('action')} {layout.change.get('node')!r}"


# ------------------------------------------------ joining, creating, recovering


def share(
    ctx: Any,
    given: dict[str, Any],
    first_layout: Callable[[], Layout],
    replication_factor: int,
    create: bool,
) -> Proc[None]:
    """Follow the layout the `given` nodes hold, or install the first one on them.

    `first_layout()` builds the layout of a new cluster (only called when
    none is found); one without a cluster id gets a random one from
    ``ctx.rng``.  If no node answers, the client stays without a layout
    (every node refuses its epoch, -1) and tries again on its first call.
    """
    ctx.shared = True
    nodes = list(given.values())
    layout, epochs = yield from load(nodes)
    if layout is None and not epochs:
        if create:
            raise UnavailableError(
                "creating a cluster needs its nodes up, and none answered",
                level="membership",
                required=len(nodes),
                alive=0,
                down=tuple(given),
                causes=ctx.causes(list(given)),
            )
        return
    if layout is None:
        candidate = first_layout()
        if not candidate.cluster:  # a new cluster's id: random, from the driver's context
            candidate = replace(candidate, cluster=ctx.rng.bytes(8).hex())
        try:
            yield from install(candidate, given, {name: 0 for name in given})
            layout = candidate
        except LayoutConflictError:
            if create:
                raise
            layout, epochs = yield from load(nodes)  # another client was first
            if layout is None:
                raise
    elif create:
        holder = next(name for name in given if epochs.get(name))
        raise LayoutError(
            f"node {holder!r} already belongs to cluster {layout.cluster} "
            f"({layout.describe()}); join it with Cluster.join"
        )
    if layout.replication_factor != replication_factor and not create and replication_factor != 3:
        raise ValueError(  # 3 is the default: then the layout decides
            f"replication_factor={replication_factor} does not match the cluster's layout "
            f"({layout.replication_factor}); leave it out to follow the layout"
        )
    layout.check_places()  # one server under two names (a layout of an older client)
    stray = sorted(name for name in given if layout.spec(name) is None)
    if stray:
        raise ValueError(
            f"nodes {stray} are not in the cluster's layout ({layout.describe()}); "
            "add them with add_node, or join with Cluster.join"
        )
    ctx.apply_layout(layout, given)
    yield from refresh(ctx)


def recover(ctx: Any, error: FencedError, retry_share: Callable[[], Proc[None]]) -> Proc[None]:
    """What a client does when a node refused its epoch: load, or bring the node up to date."""
    if ctx.layout is None:  # the layout could not be read when this client started
        yield from retry_share()
    elif error.newer:
        yield from refresh(ctx)
        if ctx.layout is not None and error.node_epoch > ctx.layout.epoch:
            # no node answered with a layout that new: the node's epoch is corrupt
            # (or its layout unreadable); it cannot be followed, and its refusals
            # from now on fail its own part of a call (``epoch_ahead``), not the call
            ctx.epoch_ahead(error.node, error.node_epoch)
    else:
        node = ctx.members.get(error.node or "")
        if node is not None:  # the node missed a change: bring it up to date
            yield from push(ctx.layout, node, error.node_epoch)


def start(
    ctx: Any,
    transition: Callable[[Layout], Layout],
    joining: dict[str, Any],
    removing: str | None,
) -> Proc[Any]:
    """Make a change from the newest layout: refuse if one is under way, else ``change``."""
    yield from refresh(ctx)
    current = ctx.layout
    if current is not None and current.changing:
        raise LayoutConflictError(
            f"another change is under way ({current.change.get('action')} "
            f"{current.change.get('node')!r}, epoch {current.epoch}); wait for it, or finish "
            "it with finish_change() if its client died",
            layout=current,
        )
    try:
        return (yield from change(ctx, transition(current), joining, removing))
    except LayoutConflictError:
        yield from refresh(ctx)  # the winner's layout
        raise
