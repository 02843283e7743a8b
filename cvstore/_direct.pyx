# cython: language_level=3
"""``put`` and ``get`` of ``cvstore.core.direct``, compiled: the same decisions, no Python frames.

Over in-process stores a per-key call is a few hundred nanoseconds of work
spread over half a dozen Python frames (the call, three ``MemoryStore.put``,
the clock), each costing about as much as the work it does.  These are the
same two functions, line for line, as C: the same checks in the same order
(and so the same errors), the same replicas from the ring, the same level
table and random draw, the same stamp from the driver's clock
(``ctx.stamp()``), the same records; what they do not do in place they hand
to the driver's ``_general_put`` / ``_general_get`` as the Python functions do.

What a placement says (the replicas' lookup, the level tables) is read once
per placement, not once per call: a ``Placement`` never changes once built,
so the last one's attributes are kept in C beside it, checked by identity.
A replica's write is its node's ``_put``, which for ``MemoryStore`` is the
compiled ``Table.put`` (``_records.pyx``).

``cvstore.core.direct``'s Python functions are the slow twin: the drivers
call these, and ``tests/cluster/test_direct_path.py`` runs the same random
operations through both (and through the general procedure) and compares
every answer, record, hint and random draw.
"""

from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE

from cvstore._records cimport make_record, version_of

from cvstore.core import direct as _twin
from cvstore.core.keys import MAX_KEY_BYTES, key_bytes, key_size_error
from cvstore.core.levels import level_error
from cvstore.core.records import TOMBSTONE, WRITER_BITS, Expiring
from cvstore.errors import closed_error

cdef object _MEASURED = ("fastest", "adaptive")  # read policies whose reads the driver measures
cdef object _TOMBSTONE = TOMBSTONE
cdef object _Expiring = Expiring
cdef object _WRITER_BITS = WRITER_BITS
cdef Py_ssize_t _MAX_KEY_BYTES = MAX_KEY_BYTES


cdef inline bytes _key(object key):
    if type(key) is str:
        return (<str>key).encode()
    if type(key) is bytes:
        return <bytes>key
    return key_bytes(key)


cdef inline object _value_of(object record):
    if PyTuple_Check(record) and PyTuple_GET_SIZE(record) > 1:
        return <object>PyTuple_GET_ITEM(record, 1)
    return record[1]


cdef class _Plan:
    # What the calls read of one placement: a Placement never changes once
    # built, so these are read once per placement instead of once per call.
    cdef object p
    cdef bint direct, pending, zoned
    cdef object get_items, n, nodes, wone, node_of, replica_names
    cdef dict wneed, rneed


cdef _Plan _plan = None  # the last placement's (several clusters: each call checks)


cdef inline _Plan _plan_of(object p):
    global _plan
    cdef _Plan plan = _plan
    if plan is not None and plan.p is p:
        return plan
    plan = _Plan()
    plan.p = p
    plan.direct = p.direct
    plan.pending = p.pending is not None
    plan.zoned = p.zoned
    plan.get_items = p.get_items
    plan.n = p.n
    plan.nodes = p.nodes
    plan.wone = p.wone
    plan.node_of = p.node_of
    plan.replica_names = p.replica_names
    plan.wneed = p.wneed
    plan.rneed = p.rneed
    _plan = plan
    return plan


cdef inline list _replicas(_Plan plan, bytes kb):
    if plan.zoned:
        return list(map(plan.node_of, plan.replica_names(kb)))
    return plan.get_items(kb, plan.n, plan.nodes)


def put(self, key, value, *, consistency=None, ttl=None):
    ctx = self._state
    cdef bytes kb = _key(key)
    if ctx.closed:
        raise closed_error()
    p = ctx.placement
    cdef _Plan plan = _plan_of(p)
    level = ctx.write_level if consistency is None else consistency
    try:
        plan.wneed[level]
    except (KeyError, TypeError):
        raise level_error("consistency", consistency) from None
    if len(kb) > _MAX_KEY_BYTES:
        raise key_size_error("key", kb)
    kind = type(value)
    if ttl is not None or (
        len(value) > ctx.max_str
        if kind is str
        else kind is not bytes or len(value) > ctx.max_value_bytes
    ):
        value = ctx.checked_value(value, ttl)
    hot = self._hot  # hot keys: one call in hot.every is counted (core.hotkeys)
    tick = hot.tick - 1
    hot.tick = tick
    if tick < 1:
        hot.sample(kb, p)
    cdef list replicas
    cdef Py_ssize_t i, count
    if (
        plan.direct
        and not plan.pending
        and not ctx.hints.pending
        and ctx.layout is None
        and level not in plan.wone
    ):
        replicas = _replicas(plan, kb)
        count = PyList_GET_SIZE(replicas)
        for i in range(count):
            if not (<object>PyList_GET_ITEM(replicas, i)).is_up:
                break  # checked before writing: a refused call leaves no trace
        else:
            record = make_record(ctx.stamp(), value)
            for i in range(count):
                if not (<object>PyList_GET_ITEM(replicas, i))._put(kb, record):
                    break  # refused: stamped again and rewritten
            else:
                if ctx.placement is p:
                    return None
    return self._general_put(kb, value, level)


def get(self, key, default=None, *, consistency=None):
    ctx = self._state
    cdef bytes kb = _key(key)
    if ctx.closed:
        raise closed_error()
    p = ctx.placement
    cdef _Plan plan = _plan_of(p)
    level = ctx.read_level if consistency is None else consistency
    try:
        need_obj = plan.rneed[level]
    except (KeyError, TypeError):
        raise level_error("consistency", consistency) from None
    if len(kb) > _MAX_KEY_BYTES:
        raise key_size_error("key", kb)
    hot = self._hot  # hot keys: one call in hot.every is counted (core.hotkeys)
    tick = hot.tick - 1
    hot.tick = tick
    if tick < 1:
        hot.sample(kb, p)
    cdef list replicas
    cdef Py_ssize_t i, count, need, stop
    if plan.direct and not ctx.hints.pending and ctx.read_policy not in _MEASURED and not ctx.layout:
        replicas = _replicas(plan, kb)
        count = PyList_GET_SIZE(replicas)
        for i in range(count):  # every replica up, or the general procedure reads around one
            if not (<object>PyList_GET_ITEM(replicas, i)).is_up:
                return self._general_get(kb, level, default)
        need = need_obj
        if need == 1:
            node = replicas[0]
            if ctx.read_policy == "random":  # reads.order_for_read's choice, the same draw
                node = replicas[<Py_ssize_t>(<double>ctx.random() * count)]
            record = node._get(kb)
        else:
            record = replicas[0]._get(kb)
            # the replicas after the first that the level asks: replicas[1:need]
            # (replicas[1] when need is 2, as the Python twin indexes it)
            stop = need if need <= 2 or need < count else count
            for i in range(1, stop):
                other = replicas[i]._get(kb)
                # records.differs(other, record), inlined
                if other is not record and (
                    other is None or record is None or version_of(other) != version_of(record)
                ):
                    return self._general_get(kb, level, default)  # read repair
        if ctx.placement is p:
            if record is None:
                return default
            version = version_of(record)
            if version >> _WRITER_BITS > ctx.clock._hlc:
                ctx.observe(version)  # a version this client has not passed yet
            value = _value_of(record)  # records.value_of(record, default, now), inlined
            if value is _TOMBSTONE:
                return default
            if type(value) is _Expiring:
                return value.value if value.expires > ctx.now_ms() else default
            return value
    return self._general_get(kb, level, default)


# The twins answer alike, and say so alike: help(Cluster.put) reads the same.
put.__doc__ = _twin.put.__doc__
get.__doc__ = _twin.get.__doc__
