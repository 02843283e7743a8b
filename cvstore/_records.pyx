# cython: language_level=3
"""Records built in C, left untracked by the garbage collector when they can be.

A record is ``Record(version, value)``, a tuple subclass.  CPython stops
tracking a plain tuple once it sees that nothing in it can be part of a
reference cycle, but never a tuple subclass: every record an in-process store
holds would stay tracked for good, and every full collection would walk all
of them.  ``put_many`` of 100,000 keys over five in-process nodes triggered
one full collection per batch, a third of the batch's time.

So records are made here: a record whose value is not an object the
collector tracks at all (str, bytes, int, float, None, bool) is untracked at
once, as CPython would untrack a plain tuple of the same items.  It can never
be part of a cycle: it refers to its version and its value only (a Record has
no ``__dict__``), and neither refers to anything.  Any other value (a list, a
dict, an instance, the tombstone) leaves the record tracked, as usual.
"""

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_SET_ITEM

from cvstore.versions import Record

cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        pass
    bint PyObject_IS_GC(object obj)
    void PyObject_GC_UnTrack(void *obj)
    object PyType_GenericAlloc(PyTypeObject *type, Py_ssize_t nitems)

cdef object _Record = Record
cdef PyTypeObject *_record_type = <PyTypeObject *>Record


cdef inline object _make(object version, object value):
    # What tuple.__new__(Record, (version, value)) does, without the call:
    # the subclass's allocator (zeroed, tracked), then the two items.
    rec = PyType_GenericAlloc(_record_type, 2)
    Py_INCREF(version)
    PyTuple_SET_ITEM(rec, 0, version)
    Py_INCREF(value)
    PyTuple_SET_ITEM(rec, 1, value)
    if not PyObject_IS_GC(value) and not PyObject_IS_GC(version):
        PyObject_GC_UnTrack(<void *>rec)
    return rec


def record(version, value):
    """``Record(version, value)``, untracked by the collector when its value is atomic."""
    return _make(version, value)


def records(version, values):
    """``[record(version, value) for value in values]``: one version for a batch."""
    cdef list items = list(values)
    cdef list out = PyList_New(len(items))
    cdef Py_ssize_t i = 0
    for value in items:
        rec = _make(version, value)
        Py_INCREF(rec)
        PyList_SET_ITEM(out, i, rec)
        i += 1
    return out
