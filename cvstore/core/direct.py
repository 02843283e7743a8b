"""The per-key calls, ``put`` and ``get``: done in place over in-process stores, or "not done".

When every member's store is the built-in in-process one (``Placement.direct``)
a per-key call needs no I/O step: its replicas can be called in place.
``put`` and ``get`` check their arguments and do the usual case that way
(every replica up, nothing refused, the copies agree), with the decisions of
the procedures of ``writes`` and ``reads``: the same replicas, the same level
table, the same random draw for the read policy, the same versions and
expiry.  Anything else (a replica down, a refusal, copies to repair, hints
waiting, a membership change, a layout on the nodes, the "fastest" and
"adaptive" policies (their reads are measured),
an eventual write) is not done here: they end with the driver's
``_general_put(kb, value, level)`` / ``_general_get(kb, level, default)``.
The sync driver runs the general procedure there; the asyncio driver
answers ``NOT_DONE`` and its coroutine runs it (with ``put_args`` /
``get_args``, the same checks).

The drivers call the compiled twin of ``put`` and ``get``
(``cvstore/_direct.pyx``, the same steps in Cython; ``Cluster.put`` and
``Cluster.get`` are its functions themselves): over in-process stores a call
is well under a microsecond and each Python frame costs as much as the lookup
on the ring.  These Python functions are its slow twin, kept line for line
alike; the checks are written out flat here as well as in ``put_args`` /
``get_args``.  ``tests/cluster/test_direct_path.py`` runs the same operations
through both twins and through the general path and compares every answer,
stored record, hint and random draw.
"""

from __future__ import annotations

from typing import Any

from cvstore._records import record as new_record
from cvstore.core.keys import MAX_KEY_BYTES, key_bytes, key_size_error
from cvstore.core.levels import level_error
from cvstore.core.records import TOMBSTONE, WRITER_BITS, Expiring
from cvstore.errors import closed_error

__all__ = ("NOT_DONE", "get", "get_args", "put", "put_args")

_MEASURED = ("fastest", "adaptive")  # read policies whose reads the driver measures


class _NotDone:
    """What a per-key call answers when the general procedure must decide."""

    def __repr__(self) -> str:
        return "NOT_DONE"


NOT_DONE: Any = _NotDone()


def put_args(ctx: Any, key: Any, value: Any, consistency: Any, ttl: Any) -> tuple[bytes, Any, Any]:
    """A put's key as stores key it, its value (checked, with its expiry) and level; or the error."""
    kb = key_bytes(key)
    if ctx.closed:
        raise closed_error()
    level = ctx.write_level if consistency is None else consistency
    try:
        ctx.placement.wneed[level]
    except (KeyError, TypeError):
        raise level_error("consistency", consistency) from None
    if len(kb) > MAX_KEY_BYTES:
        raise key_size_error("key", kb)
    return kb, ctx.checked_value(value, ttl), level


def get_args(ctx: Any, key: Any, consistency: Any) -> tuple[bytes, Any]:
    """A get's key as stores key it and its level; or the error."""
    kb = key_bytes(key)
    if ctx.closed:
        raise closed_error()
    level = ctx.read_level if consistency is None else consistency
    try:
        ctx.placement.rneed[level]
    except (KeyError, TypeError):
        raise level_error("consistency", consistency) from None
    if len(kb) > MAX_KEY_BYTES:
        raise key_size_error("key", kb)
    return kb, level


def put(self: Any, key: Any, value: Any, *, consistency: Any = None, ttl: Any = None) -> Any:
    """Store `value` under `key` on its replicas.

    The write is acknowledged when as many replicas as `consistency` needs
    (the cluster's ``write_consistency`` by default) applied it; a replica
    holding a newer version refuses it, and the write is stamped again above
    that version and rewritten (see the README's consistency section).
    Replicas that are down get the write later through hints.  With `ttl`
    (seconds) the key expires that long after the write.

    Raises
    ------
    UnavailableError
        Fewer replicas are up than the level needs (nothing was written),
        or too few applied the write.
    """
    ctx = self._state
    # put_args, written out (see the module docstring)
    if type(key) is str:
        kb = key.encode()
    elif type(key) is bytes:
        kb = key
    else:
        kb = key_bytes(key)
    if ctx.closed:
        raise closed_error()
    p = ctx.placement
    level = ctx.write_level if consistency is None else consistency
    try:
        p.wneed[level]
    except (KeyError, TypeError):
        raise level_error("consistency", consistency) from None
    if len(kb) > MAX_KEY_BYTES:
        raise key_size_error("key", kb)
    kind = type(value)
    if ttl is not None or (
        len(value) > ctx.max_str
        if kind is str
        else kind is not bytes or len(value) > ctx.max_value_bytes
    ):
        value = ctx.checked_value(value, ttl)
    hot = self._hot  # hot keys: one call in hot.every is counted (core.hotkeys)
    hot.tick = tick = hot.tick - 1
    if tick < 1:
        hot.sample(kb, p)
    # Every replica up and applying the write is an acknowledged write at any
    # level but the eventual ones (those hint the other replicas).
    if (
        p.direct
        and p.pending is None
        and not ctx.hints.pending
        and ctx.layout is None
        and level not in p.wone
    ):
        replicas = (
            list(map(p.node_of, p.replica_names(kb))) if p.zoned else p.get_items(kb, p.n, p.nodes)
        )
        for node in replicas:
            if not node.is_up:  # checked before writing: a refused call leaves no trace
                break
        else:
            record = new_record(ctx.stamp(), value)
            for node in replicas:
                if not node._put(kb, record):  # refused: stamped again and rewritten
                    break
            else:
                if ctx.placement is p:
                    return None
    return self._general_put(kb, value, level)


def get(self: Any, key: Any, default: Any = None, *, consistency: Any = None) -> Any:
    """The value of `key`, or `default` if it has none.

    Asks as many replicas as `consistency` needs (the cluster's
    ``read_consistency`` by default), returns the newest version among their
    answers, and first writes that version to any of them that had an older
    one or none (read repair).

    Raises
    ------
    UnavailableError
        Fewer replicas are up than the level needs.
    """
    ctx = self._state
    # get_args, written out (see the module docstring)
    if type(key) is str:
        kb = key.encode()
    elif type(key) is bytes:
        kb = key
    else:
        kb = key_bytes(key)
    if ctx.closed:
        raise closed_error()
    p = ctx.placement
    level = ctx.read_level if consistency is None else consistency
    try:
        need = p.rneed[level]
    except (KeyError, TypeError):
        raise level_error("consistency", consistency) from None
    if len(kb) > MAX_KEY_BYTES:
        raise key_size_error("key", kb)
    hot = self._hot  # hot keys: one call in hot.every is counted (core.hotkeys)
    hot.tick = tick = hot.tick - 1
    if tick < 1:
        hot.sample(kb, p)
    # The replicas asked are up and agree: their record, as reads.get and
    # records.value_of would answer.  Copies that differ need read repair.
    if p.direct and not ctx.hints.pending and ctx.read_policy not in _MEASURED and not ctx.layout:
        replicas = (
            list(map(p.node_of, p.replica_names(kb))) if p.zoned else p.get_items(kb, p.n, p.nodes)
        )
        for node in replicas:  # every replica up, or the general procedure reads around one
            if not node.is_up:
                return self._general_get(kb, level, default)
        if need == 1:
            node = replicas[0]
            if ctx.read_policy == "random":  # reads.order_for_read's choice, the same draw
                node = replicas[int(ctx.random() * len(replicas))]
            record = node._get(kb)
        else:
            record = replicas[0]._get(kb)
            for node in replicas[1:need] if need > 2 else (replicas[1],):
                other = node._get(kb)
                # records.differs(other, record), inlined
                if other is not record and (
                    other is None or record is None or other[0] != record[0]
                ):
                    return self._general_get(kb, level, default)  # read repair
        if ctx.placement is p:
            if record is None:
                return default
            if record[0] >> WRITER_BITS > ctx.clock._hlc:
                ctx.observe(record[0])  # a version this client has not passed yet
            value = record[1]  # records.value_of(record, default, now), inlined
            if value is TOMBSTONE:
                return default
            if type(value) is Expiring:
                return value.value if value.expires > ctx.now_ms() else default
            return value
    return self._general_get(kb, level, default)
