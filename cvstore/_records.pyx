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


# ------------------------------------------------------------------ decoding

cdef extern from "Python.h":
    object _PyLong_FromByteArray(const unsigned char *data, size_t n, int little_endian, int is_signed)
    object PyUnicode_DecodeUTF8(const char *data, Py_ssize_t size, const char *errors)
    object PyBytes_FromStringAndSize(const char *data, Py_ssize_t size)
    char *PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)

from libc.string cimport memcmp

cdef enum:
    HEAD = 12  # version bytes before a record's tag (codec.HEAD)


def decode_plain(list raws, object tombstone):
    """The records in `raws` (MGET replies: bytes, or None where there is no record).

    Decodes the common records, column-wise in C: a bytes value (tag ``b``),
    a str value (``s``, UTF-8 with surrogates) and a tombstone (``t``), None
    for None.  Returns None as soon as one reply is anything else (a record
    with an expiry or a codec, bytes that are not a record, a str that is not
    UTF-8): the caller decodes the batch in Python then, which knows them
    all and counts the unreadable ones.  Records of one version (a batch
    writes one) share one version object, made once.
    """
    cdef Py_ssize_t n = len(raws), i, size
    cdef list out = PyList_New(n)
    cdef const unsigned char *data
    cdef const unsigned char *last = NULL
    cdef unsigned char tag
    cdef object version = None, value, raw, rec
    for i in range(n):
        raw = raws[i]
        if raw is None:
            Py_INCREF(None)
            PyList_SET_ITEM(out, i, None)
            continue
        if type(raw) is not bytes:
            return None
        size = PyBytes_GET_SIZE(raw)
        if size <= HEAD:
            return None
        data = <const unsigned char *>PyBytes_AS_STRING(raw)
        tag = data[HEAD]
        if tag == 98:  # b
            value = PyBytes_FromStringAndSize(<const char *>data + HEAD + 1, size - HEAD - 1)
        elif tag == 115:  # s
            try:
                value = PyUnicode_DecodeUTF8(
                    <const char *>data + HEAD + 1, size - HEAD - 1, b"surrogatepass"
                )
            except UnicodeDecodeError:
                return None
        elif tag == 116:  # t
            value = tombstone
        else:
            return None
        # `last` points into the previous reply, which `raws` keeps alive
        if last == NULL or memcmp(last, data, HEAD) != 0:
            version = _PyLong_FromByteArray(data, HEAD, 0, 0)
            last = data
        rec = _make(version, value)
        Py_INCREF(rec)
        PyList_SET_ITEM(out, i, rec)
    return out


# ------------------------------------------------------------------ encoding

cdef extern from "Python.h":
    object PyUnicode_AsEncodedString(object unicode, const char *encoding, const char *errors)


def plain_batch(records):
    """A batch's records as one version and a column of payloads, if they allow it.

    For records that all carry one version (a cluster batch stamps one) and
    all hold exact ``bytes`` values, or all exact ``str`` values:
    ``(version, tag, payloads, longest, total)``, the payloads being the
    values' bytes (str as UTF-8 with surrogates), `tag` ``ord("b")`` or
    ``ord("s")``, `longest` and `total` their largest and summed lengths.
    None for any other batch (the caller encodes it record by record).
    """
    cdef list items = records if type(records) is list else list(records)
    cdef Py_ssize_t n = len(items), i, size, longest = 0, total = 0
    if n == 0:
        return None
    first = items[0]
    if not isinstance(first, tuple) or len(<tuple>first) != 2:
        return None
    version = (<tuple>first)[0]
    kind = type((<tuple>first)[1])
    if kind is not bytes and kind is not str:
        return None
    cdef list payloads = PyList_New(n)
    for i in range(n):
        rec = items[i]
        if not isinstance(rec, tuple) or len(<tuple>rec) != 2:
            return None
        v = (<tuple>rec)[0]
        if v is not version and not (type(v) is int and v == version):
            return None
        value = (<tuple>rec)[1]
        if type(value) is not kind:
            return None
        if kind is str:
            value = PyUnicode_AsEncodedString(value, b"utf-8", b"surrogatepass")
        size = PyBytes_GET_SIZE(value)
        if size > longest:
            longest = size
        total += size
        Py_INCREF(value)
        PyList_SET_ITEM(payloads, i, value)
    return version, (98 if kind is bytes else 115), payloads, longest, total


def all_bytes(items):
    """Whether every item of the list `items` is exactly ``bytes``."""
    cdef list column = items
    for item in column:
        if type(item) is not bytes:
            return False
    return True


def live_values(list keys, list records, object tombstone, object expiring):
    """``{key: value}`` of a batch read: records that are None or tombstones left out.

    None (the caller decides in Python) as soon as a value is an `expiring`
    one (its expiry is compared with the clock) or an item is not a record.
    A key given twice keeps its last value, as ``dict(zip(keys, values))``.
    """
    cdef dict out = {}
    cdef Py_ssize_t i, n = len(keys)
    if len(records) != n:
        return None
    for i in range(n):
        rec = records[i]
        if rec is None:
            continue
        if not isinstance(rec, tuple) or len(<tuple>rec) != 2:
            return None
        value = (<tuple>rec)[1]
        if value is tombstone:
            continue
        if type(value) is expiring:
            return None
        out[keys[i]] = value
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
