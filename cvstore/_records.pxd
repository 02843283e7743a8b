# The record constructor and reader of _records.pyx, for other compiled modules (_direct.pyx).

cdef object make_record(object version, object value)
cdef object version_of(object record)
