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
So are the keys it placed: up to 8,192 str or bytes keys, each with its
bytes and its replicas (emptied when full, dropped with the placement), so
a key called again skips its encoding and the ring, and the stores' dicts
find the same bytes object by identity.
A replica's write is its node's ``_put``, which for ``MemoryStore`` is the
compiled ``Table.put`` (``_records.pyx``).

``cvstore.core.direct``'s Python functions are the slow twin: the drivers
call these, and ``tests/cluster/test_direct_path.py`` runs the same random
operations through both (and through the general procedure) and compares
every answer, record, hint and random draw.
"""

from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.dict cimport PyDict_GetItemWithError
from cpython.object cimport PyObject
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

cdef extern from "Python.h":
    ctypedef struct PyMethodDef:
        pass
    ctypedef struct PyCFunctionObject:
        PyMethodDef *m_ml
        PyObject *m_self
    bint PyCFunction_Check(object op)
    bint PyMethod_Check(object op)
    PyObject *PyMethod_GET_FUNCTION(object op)
    PyObject *PyMethod_GET_SELF(object op)
    bint PyDict_CheckExact(object op)
    object PyObject_GenericGetDict(object obj, void *context)

cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset

cdef extern from "Python.h":
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member

from cvstore._records cimport Table, make_record, version_of

from cvstore.core import direct as _twin
from cvstore.core.keys import MAX_KEY_BYTES, key_bytes, key_size_error
from cvstore.core.levels import level_error
from cvstore.core.records import TOMBSTONE, WRITER_BITS, Expiring
from cvstore.errors import closed_error
from cvstore.node import Node
from cvstore.versions import COUNTER_BITS, HybridClock

cdef object _MEASURED = ("fastest", "adaptive")  # read policies whose reads the driver measures


cdef inline bint _measured(object policy) except -1:
    # policy in _MEASURED, with the usual policies answered by identity first
    if policy is "primary" or policy is "random":
        return False
    return policy in _MEASURED
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


cdef object _HybridClock = HybridClock
cdef int _COUNTER_BITS = COUNTER_BITS


cdef class Stamp:
    """``clock.now()`` of a ``HybridClock`` on the system clock, compiled: the same steps.

    The physical time in milliseconds is what ``time.time_ns() // 1_000_000``
    reads (the realtime clock), the logical part is raised under the clock's
    own lock, so stamps from here, from ``clock.now()`` and ``now_many()``
    and what ``observe()`` passed all stay strictly increasing together.
    """

    cdef object clock, acquire, release

    def __cinit__(self, clock):
        self.clock = clock
        self.acquire = clock._acquire
        self.release = clock._release

    cdef object now(self):
        cdef timespec ts
        clock_gettime(CLOCK_REALTIME, &ts)
        cdef long long ms = <long long>ts.tv_sec * 1000 + ts.tv_nsec // 1000000
        wall = ms << _COUNTER_BITS
        clock = self.clock
        self.acquire()
        hlc = clock._hlc + 1
        if wall > hlc:
            hlc = wall
        clock._hlc = hlc
        self.release()
        return (hlc << _WRITER_BITS) | clock.writer_id

    def __call__(self):
        return self.now()


def stamper(clock):
    """What stamps a write for a driver: a compiled ``Stamp`` for a HybridClock on the system clock."""
    if type(clock) is _HybridClock and clock._wall_ms is None:
        return Stamp(clock)
    return clock.now


cdef inline dict _dict_of(object ctx):
    # The driver state's attributes, read from its __dict__: it has no
    # descriptors for the names read here (plain attributes set in __init__).
    return PyObject_GenericGetDict(ctx, NULL)


cdef inline object _field(dict d, object ctx, str name):
    cdef PyObject *v = PyDict_GetItemWithError(d, name)
    if v is NULL:
        return getattr(ctx, name)
    return <object>v


cdef object _Node = Node


cdef Py_ssize_t _offset(object cls, str name):
    # where a __slots__ attribute of `cls` sits in its instances
    return (<PyMemberDescrObject *>cls.__dict__[name]).d_member.offset


cdef Py_ssize_t _IS_UP = _offset(Node, "is_up")
cdef Py_ssize_t _GET = _offset(Node, "_get")
cdef Py_ssize_t _PUT = _offset(Node, "_put")


cdef inline object _slot(object node, Py_ssize_t offset, str name):
    # node.<name>: read in its slot when node is a Node itself (a subclass may
    # define the name otherwise), else looked up
    cdef PyObject *value
    if type(node) is _Node:
        value = (<PyObject **>(<char *><PyObject *>node + offset))[0]
        if value is not NULL:
            return <object>value
    return getattr(node, name)


cdef object _probe = {}.get  # a dict's get, to know one when a node's _get is one
cdef PyMethodDef *_DICT_GET = (<PyCFunctionObject *>_probe).m_ml


cdef inline object _read(object node, bytes kb):
    # node._get(kb); when that is a dict's get (MemoryStore), the lookup itself
    getter = _slot(node, _GET, "_get")
    cdef PyObject *found
    cdef PyObject *table
    if PyCFunction_Check(getter) and (<PyCFunctionObject *>getter).m_ml == _DICT_GET:
        table = (<PyCFunctionObject *>getter).m_self
        if table is not NULL and PyDict_CheckExact(<object>table):
            found = PyDict_GetItemWithError(<object>table, kb)
            return None if found is NULL else <object>found
    return getter(kb)


cdef object _TABLE_PUT = Table.put  # to know a Table's put when a node's _put is one


cdef inline bint _write(object node, bytes kb, object record) except -1:
    # node._put(kb, record), as a truth value; a Table's put called in C
    putter = _slot(node, _PUT, "_put")
    cdef PyObject *table
    if PyMethod_Check(putter) and PyMethod_GET_FUNCTION(putter) == <PyObject *>_TABLE_PUT:
        table = PyMethod_GET_SELF(putter)
        if type(<object>table) is Table:
            return (<Table>table).put_record(kb, record)
    return bool(putter(kb, record))


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
    # str or bytes key -> (its bytes, its replicas): what the ring said of a
    # key, kept for the next call on it (the same bytes object each time, so
    # the stores' dicts also find it by identity); emptied when full.
    cdef dict keys


# How many keys a placement remembers (about 150 bytes each beside the keys).
DEF KEYS_KEPT = 8192


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
    plan.keys = {}
    _plan = plan
    return plan


cdef inline list _replicas(_Plan plan, bytes kb):
    if plan.zoned:
        return list(map(plan.node_of, plan.replica_names(kb)))
    return plan.get_items(kb, plan.n, plan.nodes)


cdef inline tuple _known(_Plan plan, object key):
    # (bytes, replicas) of a str or bytes key this placement has placed, or None
    cdef PyObject *entry
    if type(key) is str or type(key) is bytes:
        entry = PyDict_GetItemWithError(plan.keys, key)
        if entry is not NULL:
            return <tuple>entry
    return None


cdef inline list _placed(_Plan plan, object key, bytes kb):
    # the key's replicas from the ring, remembered for a str or bytes key
    cdef list replicas = _replicas(plan, kb)
    if type(key) is str or type(key) is bytes:
        if len(plan.keys) >= KEYS_KEPT:
            plan.keys.clear()
        plan.keys[key] = (kb, replicas)
    return replicas


def put(self, key, value, *, consistency=None, ttl=None):
    ctx = self._state
    cdef dict st = _dict_of(ctx)
    p = _field(st, ctx, "placement")  # read before the key's checks; reading it raises nothing
    cdef _Plan plan = _plan_of(p)
    cdef tuple known = _known(plan, key)
    cdef bytes kb = _key(key) if known is None else <bytes>known[0]
    if _field(st, ctx, "closed"):
        raise closed_error()
    level = _field(st, ctx, "write_level") if consistency is None else consistency
    try:
        plan.wneed[level]
    except (KeyError, TypeError):
        raise level_error("consistency", consistency) from None
    if len(kb) > _MAX_KEY_BYTES:
        raise key_size_error("key", kb)
    kind = type(value)
    if ttl is not None or (
        len(value) > _field(st, ctx, "max_str")
        if kind is str
        else kind is not bytes or len(value) > _field(st, ctx, "max_value_bytes")
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
        and not _field(st, ctx, "hints").pending
        and _field(st, ctx, "layout") is None
        and level not in plan.wone
    ):
        replicas = _placed(plan, key, kb) if known is None else <list>known[1]
        count = PyList_GET_SIZE(replicas)
        for i in range(count):
            if not _slot(<object>PyList_GET_ITEM(replicas, i), _IS_UP, "is_up"):
                break  # checked before writing: a refused call leaves no trace
        else:
            stamp = _field(st, ctx, "stamp")
            version = (<Stamp>stamp).now() if type(stamp) is Stamp else stamp()
            record = make_record(version, value)
            for i in range(count):
                if not _write(<object>PyList_GET_ITEM(replicas, i), kb, record):
                    break  # refused: stamped again and rewritten
            else:
                if _field(st, ctx, "placement") is p:
                    return None
    return self._general_put(kb, value, level)


def get(self, key, default=None, *, consistency=None):
    ctx = self._state
    cdef dict st = _dict_of(ctx)
    p = _field(st, ctx, "placement")  # read before the key's checks; reading it raises nothing
    cdef _Plan plan = _plan_of(p)
    cdef tuple known = _known(plan, key)
    cdef bytes kb = _key(key) if known is None else <bytes>known[0]
    if _field(st, ctx, "closed"):
        raise closed_error()
    level = _field(st, ctx, "read_level") if consistency is None else consistency
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
    if (
        plan.direct
        and not _field(st, ctx, "hints").pending
        and not _measured(_field(st, ctx, "read_policy"))
        and not _field(st, ctx, "layout")
    ):
        replicas = _placed(plan, key, kb) if known is None else <list>known[1]
        count = PyList_GET_SIZE(replicas)
        for i in range(count):  # every replica up, or the general procedure reads around one
            if not _slot(<object>PyList_GET_ITEM(replicas, i), _IS_UP, "is_up"):
                return self._general_get(kb, level, default)
        need = need_obj
        if need == 1:
            node = replicas[0]
            if _field(st, ctx, "read_policy") == "random":  # reads.order_for_read's choice
                node = replicas[<Py_ssize_t>(<double>_field(st, ctx, "random")() * count)]
            record = _read(node, kb)
        else:
            record = _read(replicas[0], kb)
            # the replicas after the first that the level asks: replicas[1:need]
            # (replicas[1] when need is 2, as the Python twin indexes it)
            stop = need if need <= 2 or need < count else count
            for i in range(1, stop):
                other = _read(replicas[i], kb)
                # records.differs(other, record), inlined
                if other is not record and (
                    other is None or record is None or version_of(other) != version_of(record)
                ):
                    return self._general_get(kb, level, default)  # read repair
        if _field(st, ctx, "placement") is p:
            if record is None:
                return default
            version = version_of(record)
            if version >> _WRITER_BITS > _field(st, ctx, "clock")._hlc:
                _field(st, ctx, "observe")(version)  # a version this client has not passed yet
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
