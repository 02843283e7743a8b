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

from cpython.dict cimport PyDict_GetItemWithError
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.pythread cimport (
    NOWAIT_LOCK,
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
)
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_SET_ITEM

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


cdef object version_of(object record):
    """``record[0]``; for a tuple (a Record) read in place, without the sequence protocol."""
    if PyTuple_Check(record) and PyTuple_GET_SIZE(record) > 0:
        return <object>PyTuple_GET_ITEM(record, 0)
    return record[0]


cdef object make_record(object version, object value):
    """``record(version, value)`` for other compiled modules (declared in _records.pxd)."""
    return _make(version, value)


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


cdef class Table:
    """One in-process store's records by key, the newest version it stored, and its lock.

    ``MemoryStore`` keeps its records here: ``data`` is its dict,
    ``newest`` an upper bound of every version it stored, and the table is
    its lock (``acquire``, ``release``, ``with``), a plain lock like
    ``threading.Lock`` that C code takes without a Python call.  ``put`` is
    ``MemoryStore.put`` compiled: under the lock, the record is refused
    (False) when the key holds a version at least as new, else stored (True)
    and ``newest`` raised.  Called on every in-process write, three times a
    put at RF 3.
    """

    # (its fields are declared in _records.pxd)

    def __cinit__(self):
        self.data = {}
        self.newest = -1
        self._lock = PyThread_allocate_lock()
        if self._lock is NULL:
            raise MemoryError("could not allocate a lock")

    def __dealloc__(self):
        if self._lock is not NULL:
            PyThread_free_lock(self._lock)

    cdef void _take(self):
        # the usual case, free: taken without giving up the GIL; else wait
        # for it without the GIL, so that its holder can run and release it
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self._lock, WAIT_LOCK)
        self._held = True

    cdef int _give(self) except -1:
        if not self._held:
            raise RuntimeError("release unlocked lock")
        self._held = False
        PyThread_release_lock(self._lock)
        return 0

    def acquire(self):
        """Take the lock, waiting for it (as ``threading.Lock.acquire()``); True."""
        self._take()
        return True

    def release(self):
        """Give the lock back; RuntimeError if it is not held."""
        self._give()

    def locked(self):
        """Whether the lock is held."""
        return self._held

    def __enter__(self):
        self._take()
        return True

    def __exit__(self, *exc):
        self._give()

    def put(self, key, record):
        """Store `record` under `key` unless the key holds a version at least as new; whether it did."""
        return self.put_record(key, record)

    cdef bint put_record(self, object key, object record) except -1:
        cdef PyObject *old
        version = version_of(record)
        self._take()
        try:
            old = PyDict_GetItemWithError(self.data, key)
            if old is not NULL and version_of(<object>old) >= version:
                return False
            self.data[key] = record
            if version > self.newest:
                self.newest = version
            return True
        finally:
            self._give()
