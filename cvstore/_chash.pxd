# Declarations of the plain-C helpers in csrc/, one per header entry.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "cvs_hash.h" nogil:
    uint64_t cvs_xxh64(const void *data, size_t length, uint64_t seed)
    void cvs_md5(const void *data, size_t length, uint8_t *out)
    uint32_t cvs_ketama_point(const uint8_t *digest, int j)


cdef extern from "cvs_points.h" nogil:
    void cvs_xxh64_node_points(const char *name, size_t name_len, size_t count, uint64_t seed,
                               char *buf, uint64_t *out)


cdef extern from "cvs_search.h" nogil:
    size_t cvs_lower_bound(const uint64_t *pts, size_t n, uint64_t h)
    size_t cvs_find(const uint64_t *pts, const uint32_t *table, int shift, uint64_t h)
    void cvs_find_many(const uint64_t *pts, const int32_t *own, size_t npts,
                       const uint32_t *table, int shift, int strict,
                       const uint64_t *hv, size_t n, int32_t *out)


cdef extern from "cvs_merge.h" nogil:
    void cvs_merge_node(const uint64_t *ap, const int32_t *ao, size_t na,
                        const uint64_t *bp, size_t nb, int32_t bo,
                        uint64_t *rp, int32_t *ro)
    int cvs_drop_node(const uint64_t *ap, const int32_t *ao, size_t na,
                      const uint64_t *cp, size_t nc, int32_t gone,
                      uint64_t *rp, int32_t *ro)
    void cvs_table_adjust(const uint32_t *to, size_t buckets, const uint64_t *cp,
                          size_t nc, int shift, int sign, uint32_t *tn)
    void cvs_table_fill(const uint64_t *pts, size_t n, int shift, size_t buckets,
                        uint32_t *table)


cdef extern from "cvs_bounded.h" nogil:
    int cvs_has_room(int64_t load, double s, double w, double wsum)
    int32_t cvs_bounded_owner(const int32_t *own, size_t npts, size_t start,
                              const int64_t *load, const double *w, double s, double wsum)


cdef extern from "cvs_blocks.h" nogil:
    size_t cvs_block_min
    size_t cvs_block_min_set(size_t nbytes)
    void *cvs_block_take(size_t nbytes, size_t *cap)
    void cvs_block_give(void *p, size_t cap)
    void cvs_pool_clear()
    int cvs_pool_count()
    size_t cvs_pool_kept()
