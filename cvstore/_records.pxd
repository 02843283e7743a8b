# The record constructor and reader of _records.pyx, and its Table, for other
# compiled modules (_direct.pyx).

from cpython.pythread cimport PyThread_type_lock


cdef object make_record(object version, object value)
cdef object version_of(object record)


cdef class Table:
    cdef readonly dict data
    cdef public object newest
    cdef PyThread_type_lock _lock
    cdef bint _held

    cdef void _take(self)
    cdef int _give(self) except -1
    cdef bint put_record(self, object key, object record) except -1
