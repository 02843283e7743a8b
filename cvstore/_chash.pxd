# Declarations of the plain-C helpers in csrc/, one per header entry.
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t


cdef extern from "cvs_hash.h" nogil:
    uint64_t cvs_xxh64(const void *data, size_t length, uint64_t seed)
    void cvs_md5(const void *data, size_t length, uint8_t *out)
    uint32_t cvs_ketama_point(const uint8_t *digest, int j)


cdef extern from "cvs_search.h" nogil:
    size_t cvs_lower_bound(const uint64_t *pts, size_t n, uint64_t h)
    size_t cvs_find(const uint64_t *pts, const uint32_t *table, int shift, uint64_t h)
    void cvs_find_many(const uint64_t *pts, const int32_t *own, size_t npts,
                       const uint32_t *table, int shift, int strict,
                       const uint64_t *hv, size_t n, int32_t *out)
