# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, binding=True, embedsignature=True
"""HashRing: the consistent-hash ring, with its lookups in C over numpy arrays.

The placement it computes is a documented function (see the README, "How
placement works"); ``cvstore._reference`` is a slow pure-Python twin of it.
"""

cimport cython
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.buffer cimport PyBUF_FORMAT
from cpython.ref cimport Py_INCREF
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_Check
from libc.float cimport DBL_MAX
from libc.math cimport floor, floorf
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

from cvstore._chash cimport (
    cvs_block_min,
    cvs_block_min_set,
    cvs_block_give,
    cvs_block_take,
    cvs_pool_clear,
    cvs_pool_count,
    cvs_pool_kept,
    cvs_bounded_owner,
    cvs_drop_node,
    cvs_merge_node,
    cvs_table_adjust,
    cvs_table_fill,
    cvs_ketama_point,
    cvs_find,
    cvs_find_many,
    cvs_md5,
    cvs_xxh64,
    cvs_xxh64_node_points,
)

import bisect
import math
import warnings
import numbers
import threading
from fractions import Fraction

import numpy as np

from cvstore._limits import (
    MAX_POINTS,
    MAX_POINTS_PER_NODE,
    MAX_TOTAL_LOAD,
    MAX_VNODES,
    show_number,
)
from cvstore.errors import EmptyRingError, NodeExistsError, NodeNotFoundError

DEFAULT_VNODES = 160
DEFAULT_SEED = 0
HASHES = ("xxh64", "ketama", "ketama-uhashring")

cdef enum:
    KIND_XXH64 = 0
    KIND_KETAMA = 1          # libketama: float32 digest counts, first listed wins a tie
    KIND_UHASHRING = 2       # uhashring: integer digest counts, last listed wins, strictly after
    # Up to this many wanted nodes, a preference-list walk checks distinctness by
    # scanning what it found so far; above it, a per-node stamp array is cheaper.
    LINEAR_DISTINCT_MAX = 8
    # lookup_many prefetches (cvs_find_many) on rings of at least this many
    # points (1.5 MB of points, owners and table), larger than a core's cache.
    PREFETCH_MIN_POINTS = 1 << 17
    # A build keeps the hashed points between its two passes up to this many
    # (2 MB); above, it hashes them again rather than touch fresh memory.
    BUILD_KEEP_POINTS = 1 << 18
    # A build's first pass places points in at most 2**10 ranges: its 2,048
    # write positions (points and owners) stay in a core's L2 cache.
    BUILD_COARSE_BITS = 10


# ---------------------------------------------------------------- helpers (C)

cdef inline int _key_bytes(object key, const char **data, Py_ssize_t *size) except -1:
    """Point `data`/`size` at the bytes a key hashes as (str -> UTF-8)."""
    if PyUnicode_Check(key):
        data[0] = PyUnicode_AsUTF8AndSize(key, size)
        return 0
    if PyBytes_Check(key):
        data[0] = PyBytes_AS_STRING(key)
        size[0] = PyBytes_GET_SIZE(key)
        return 0
    raise TypeError(f"key must be str or bytes, got {type(key).__name__}; convert it first")


cdef inline uint64_t _hash_bytes(int kind, uint64_t seed, const char *data, size_t n) noexcept nogil:
    cdef uint8_t digest[16]
    if kind == KIND_XXH64:
        return cvs_xxh64(data, n, seed)
    cvs_md5(data, n, digest)
    return cvs_ketama_point(digest, 0)


cdef inline size_t _write_decimal(char *out, uint64_t value) noexcept nogil:
    """Write `value` in decimal at `out` (no terminator); return the length."""
    cdef char tmp[24]
    cdef size_t n = 0, i
    while True:
        tmp[n] = <char>(48 + value % 10)
        n += 1
        value //= 10
        if value == 0:
            break
    for i in range(n):
        out[i] = tmp[n - 1 - i]
    return n


cdef int _xxh64_node_points(const char *name, size_t name_len, Py_ssize_t count,
                            uint64_t seed, uint64_t *out) noexcept nogil:
    """out[i] = XXH64(f"{name}-{i}", seed) for i in range(count) (csrc/cvs_points.h).
    0, or -1 when a long name's buffer could not be allocated."""
    cdef char small[256]
    cdef char *buf = &small[0]
    if name_len + 24 > 256:
        buf = <char *>malloc(name_len + 24)
        if buf == NULL:
            return -1
    cvs_xxh64_node_points(name, name_len, <size_t>count, seed, buf, out)
    if buf != &small[0]:
        free(buf)
    return 0


cdef int _ketama_node_points(const char *name, size_t name_len, Py_ssize_t digests,
                             uint64_t *out) noexcept nogil:
    """libketama: MD5(f"{name}-{k}") gives 4 little-endian 32-bit points each.
    0, or -1 when the name's buffer could not be allocated."""
    cdef char *buf = <char *>malloc(name_len + 24)
    cdef uint8_t digest[16]
    cdef Py_ssize_t k
    cdef int j
    cdef size_t digits
    if buf == NULL:
        return -1
    memcpy(buf, name, name_len)
    buf[name_len] = 45  # '-'
    for k in range(digests):
        digits = _write_decimal(buf + name_len + 1, <uint64_t>k)
        cvs_md5(buf, name_len + 1 + digits, digest)
        for j in range(4):
            out[4 * k + j] = cvs_ketama_point(digest, j)
    free(buf)
    return 0


cdef inline size_t _owner_index(const uint64_t *pts, size_t npts, const uint32_t *table,
                                int shift, uint64_t h, bint strict) noexcept nogil:
    """Index of the point owning hash `h`: the first point >= h (> h when
    `strict`, uhashring's rule for 32-bit hashes), wrapping to 0."""
    cdef size_t i
    if strict:
        if h >= 0xFFFFFFFFu:  # no 32-bit point lies above it
            return 0
        h += 1
    i = cvs_find(pts, table, shift, h)
    return 0 if i == npts else i


cdef Py_ssize_t _walk(const uint64_t *pts, const int32_t *own, size_t npts,
                      const uint32_t *table, int shift, bint strict, uint64_t h,
                      Py_ssize_t wanted, int32_t *out, uint32_t *stamp,
                      uint32_t mark) noexcept nogil:
    """Collect the first `wanted` distinct owners clockwise from hash `h`.

    The caller guarantees `wanted` <= number of nodes that have a point, so
    the walk ends.  `stamp` (one slot per node) marks the nodes already taken
    with `mark`; when it is NULL, `out` is scanned instead.
    """
    cdef size_t i = _owner_index(pts, npts, table, shift, h, strict)
    cdef Py_ssize_t found = 0, j
    cdef int32_t o
    cdef bint seen
    while found < wanted:
        o = own[i]
        if stamp != NULL:
            seen = stamp[o] == mark
            stamp[o] = mark
        else:
            seen = False
            for j in range(found):
                if out[j] == o:
                    seen = True
                    break
        if not seen:
            out[found] = o
            found += 1
        i += 1
        if i == npts:
            i = 0
    return found


cdef inline void _free6(void *a, void *b, void *c, void *d, void *e, void *f) noexcept nogil:
    free(a)
    free(b)
    free(c)
    free(d)
    free(e)
    free(f)


cdef extern from "Python.h":
    int PyTraceMalloc_Track(unsigned int domain, size_t ptr, size_t size)
    int PyTraceMalloc_Untrack(unsigned int domain, size_t ptr)

# tracemalloc's domain for the blocks below, so that the memory a ring holds
# shows in tracemalloc's totals as numpy's own arrays do (its domain is 389047).
cdef unsigned int BLOCK_DOMAIN = 0x63767362
cdef char *BYTE_FORMAT = b"B"  # (a literal: lives as long as the module)


cdef class _Block:
    """Memory for one of a ring's large arrays (see csrc/cvs_blocks.h).

    An array made over it (``_new_array``) keeps it alive; once no array
    does, its memory goes back to the pool for the next change to take.
    """
    cdef void *ptr
    cdef size_t cap
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, size_t nbytes):
        cdef size_t cap = 0
        self.ptr = cvs_block_take(nbytes, &cap)
        if self.ptr == NULL:
            raise MemoryError(f"could not allocate {nbytes:,} bytes for the ring")
        self.cap = cap
        self.shape[0] = <Py_ssize_t>nbytes
        self.strides[0] = 1
        PyTraceMalloc_Track(BLOCK_DOMAIN, <size_t>self.ptr, nbytes)

    def __getbuffer__(self, Py_buffer *buf, int flags):
        buf.buf = self.ptr
        buf.obj = self
        buf.len = self.shape[0]
        buf.readonly = 0
        buf.itemsize = 1
        buf.format = NULL
        if flags & PyBUF_FORMAT:
            buf.format = BYTE_FORMAT
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer *buf):
        pass

    def __dealloc__(self):
        if self.ptr != NULL:
            PyTraceMalloc_Untrack(BLOCK_DOMAIN, <size_t>self.ptr)
            cvs_block_give(self.ptr, self.cap)
            self.ptr = NULL


cdef object _new_array(Py_ssize_t n, object dtype):
    """An uninitialised 1-d array of `n` items: over a pooled block when large
    (csrc/cvs_blocks.h), from numpy otherwise."""
    cdef size_t nbytes = <size_t>n * <size_t>np.dtype(dtype).itemsize
    if nbytes < cvs_block_min:
        return np.empty(n, dtype=dtype)
    return np.frombuffer(_Block(nbytes), dtype=dtype, count=n)


def _pool_state():
    """(blocks kept, bytes kept) in the pool of freed array memory (for tests)."""
    return cvs_pool_count(), cvs_pool_kept()


def _pool_min(size_t nbytes):
    """Pool arrays of `nbytes` and more from now on; returns the size before (for tests)."""
    return cvs_block_min_set(nbytes)


def _pool_clear():
    """Free every block the pool keeps (for tests: a known starting point)."""
    cvs_pool_clear()


cdef int _build_sorted(int kind, uint64_t seed, Py_ssize_t nnodes, const char **name_ptr,
                       const Py_ssize_t *name_size, const Py_ssize_t *node_count,
                       const int32_t *node_owner, uint64_t *ap, int32_t *ao, size_t n,
                       int hash_bits, int bits, uint32_t *table) noexcept nogil:
    """Hash every node's points (nodes in build order) straight into their
    sorted places in ap/ao (n in all), and fill the radix table (2**bits + 1
    entries).  Returns -1 if out of memory.

    Two counting-sort passes, each over few enough buckets that its counters
    stay in cache: by the top ceil(bits/2) bits, at most BUILD_COARSE_BITS,
    into ap/ao (the points are hashed twice, once to count and once to place,
    so no array of the ring's size is needed besides the result: fresh memory
    costs more here than hashing, as the kernel clears every new page; kept
    for 100,000 nodes, it cut 12 % of the CPU time and added 113 MB to the
    peak), then, one such range at a
    time through a small buffer, by the next bits; then an insertion sort
    inside each final bucket (about one point each: hash outputs are
    uniform).  Every pass is stable, so equal points keep the build order.
    """
    cdef int cbits = (bits + 1) // 2 if bits < 2 * BUILD_COARSE_BITS else BUILD_COARSE_BITS
    cdef int fbits = bits - cbits
    cdef int shift = hash_bits - bits, cshift = hash_bits - cbits
    cdef size_t ncoarse = <size_t>1 << cbits, nfine = <size_t>1 << fbits
    cdef size_t fmask = nfine - 1
    cdef size_t *ccount = <size_t *>calloc(ncoarse + 1, sizeof(size_t))
    cdef size_t *ccur = <size_t *>malloc(ncoarse * sizeof(size_t))
    cdef size_t *fcount = <size_t *>malloc((nfine + 1) * sizeof(size_t))
    cdef Py_ssize_t most = 1, k, x, y
    cdef size_t i, c, f, lo, hi, d, widest = 1
    cdef uint64_t *node_buf = NULL
    cdef uint64_t *bp = NULL
    cdef int32_t *bo = NULL
    cdef uint64_t p
    cdef int32_t o
    for k in range(nnodes):
        if node_count[k] > most:
            most = node_count[k]
    # A small ring's points are kept between the passes instead of hashed again.
    cdef bint keep = n <= BUILD_KEEP_POINTS
    cdef size_t off = 0
    cdef uint64_t *src
    node_buf = <uint64_t *>malloc((n if keep else <size_t>most) * sizeof(uint64_t))
    if ccount == NULL or ccur == NULL or fcount == NULL or node_buf == NULL:
        _free6(ccount, ccur, fcount, node_buf, bp, bo)
        return -1
    for k in range(nnodes):  # pass 1: count the points of each coarse range
        if node_count[k]:
            src = node_buf + off if keep else node_buf
            if _node_points_into(kind, seed, name_ptr[k], <size_t>name_size[k],
                                 node_count[k], src) < 0:
                _free6(ccount, ccur, fcount, node_buf, bp, bo)
                return -1
            for x in range(node_count[k]):
                ccount[(src[x] >> cshift) + 1] += 1
            off += <size_t>node_count[k]
    for c in range(ncoarse):
        if ccount[c + 1] > widest:
            widest = ccount[c + 1]
        ccount[c + 1] += ccount[c]
        ccur[c] = ccount[c]
    off = 0
    for k in range(nnodes):  # pass 2: place them, in build order
        if node_count[k]:
            if keep:
                src = node_buf + off
            else:
                src = node_buf
                if _node_points_into(kind, seed, name_ptr[k], <size_t>name_size[k],
                                     node_count[k], src) < 0:
                    _free6(ccount, ccur, fcount, node_buf, bp, bo)
                    return -1
            for x in range(node_count[k]):
                c = <size_t>(src[x] >> cshift)
                ap[ccur[c]] = src[x]
                ao[ccur[c]] = node_owner[k]
                ccur[c] += 1
            off += <size_t>node_count[k]
    bp = <uint64_t *>malloc(widest * sizeof(uint64_t))
    bo = <int32_t *>malloc(widest * sizeof(int32_t))
    if bp == NULL or bo == NULL:
        _free6(ccount, ccur, fcount, node_buf, bp, bo)
        return -1
    for c in range(ncoarse):  # pass 3: each coarse range by the next bits
        lo = ccount[c]
        hi = ccount[c + 1]
        memcpy(bp, &ap[lo], (hi - lo) * sizeof(uint64_t))
        memcpy(bo, &ao[lo], (hi - lo) * sizeof(int32_t))
        for f in range(nfine + 1):
            fcount[f] = 0
        for i in range(hi - lo):
            fcount[((bp[i] >> shift) & fmask) + 1] += 1
        for f in range(nfine):
            fcount[f + 1] += fcount[f]
            fcount[f] += lo          # becomes the bucket's start, then its cursor
            table[c * nfine + f] = <uint32_t>fcount[f]
        for i in range(hi - lo):
            f = <size_t>((bp[i] >> shift) & fmask)
            d = fcount[f]
            ap[d] = bp[i]
            ao[d] = bo[i]
            fcount[f] = d + 1
        for f in range(nfine):  # bucket f is now [table[c*nfine+f], cursor): sort it stably
            lo = table[c * nfine + f]
            hi = fcount[f]
            for x in range(<Py_ssize_t>lo + 1, <Py_ssize_t>hi):
                p = ap[x]
                o = ao[x]
                y = x - 1
                while y >= <Py_ssize_t>lo and ap[y] > p:
                    ap[y + 1] = ap[y]
                    ao[y + 1] = ao[y]
                    y -= 1
                ap[y + 1] = p
                ao[y + 1] = o
    table[ncoarse * nfine] = <uint32_t>n
    _free6(ccount, ccur, fcount, node_buf, bp, bo)
    return 0


cdef int _node_points_into(int kind, uint64_t seed, const char *name, size_t name_len,
                           Py_ssize_t count, uint64_t *out) noexcept nogil:
    """A node's points into `out`: 0, or -1 when memory ran out."""
    if kind == KIND_XXH64:
        return _xxh64_node_points(name, name_len, count, seed, out)
    return _ketama_node_points(name, name_len, count // 4, out)


cdef inline bint _utf32_row_to_utf8(const uint32_t *row, Py_ssize_t width, char *out,
                             size_t *out_len) noexcept nogil:
    """Encode one numpy 'U' cell (trailing NULs stripped, as numpy does) as UTF-8.

    Returns False for a code point UTF-8 cannot encode (a surrogate or one
    above U+10FFFF): the caller then takes the object path, which raises the
    same error the scalar call would.
    """
    cdef Py_ssize_t n = width, i
    cdef size_t k = 0
    cdef uint32_t c
    while n > 0 and row[n - 1] == 0:
        n -= 1
    for i in range(n):
        c = row[i]
        if c < 0x80:
            out[k] = <char>c
            k += 1
        elif c < 0x800:
            out[k] = <char>(0xC0 | (c >> 6))
            out[k + 1] = <char>(0x80 | (c & 0x3F))
            k += 2
        elif c < 0x10000:
            if 0xD800 <= c <= 0xDFFF:
                return False
            out[k] = <char>(0xE0 | (c >> 12))
            out[k + 1] = <char>(0x80 | ((c >> 6) & 0x3F))
            out[k + 2] = <char>(0x80 | (c & 0x3F))
            k += 3
        elif c <= 0x10FFFF:
            out[k] = <char>(0xF0 | (c >> 18))
            out[k + 1] = <char>(0x80 | ((c >> 12) & 0x3F))
            out[k + 2] = <char>(0x80 | ((c >> 6) & 0x3F))
            out[k + 3] = <char>(0x80 | (c & 0x3F))
            k += 4
        else:
            return False
    out_len[0] = k
    return True


# ------------------------------------------------------ bounded loads (helpers)

cdef extern from *:
    """
    /* The head of numpy's array object (PyArrayObject_fields in numpy's
     * public ndarraytypes.h, unchanged from numpy 1.7 to 2.x): read directly
     * because numpy's buffer export (format string, buffer info) costs more
     * than a whole ring lookup. */
    typedef struct {
        PyObject_HEAD
        char *data;
        int nd;
        Py_ssize_t *dimensions;
        Py_ssize_t *strides;
        PyObject *base;
        PyObject *descr;
        int flags;
    } cvs_ndarray_head;
    """
    ctypedef struct cvs_ndarray_head:
        char *data
        int nd
        Py_ssize_t *dimensions
        Py_ssize_t *strides
        void *descr
        int flags

cdef object _ndarray = np.ndarray
cdef object _int64_dtype = np.dtype(np.int64)
cdef int _NPY_ARRAY_ALIGNED = 0x0100
cdef int64_t _MAX_TOTAL_LOAD = MAX_TOTAL_LOAD


cdef inline const int64_t *_int64_data(object loads, Py_ssize_t *n) noexcept:
    """The data of `loads` (its length in n) if it is a numpy 1-D aligned array
    of native int64 with unit stride, the fast path; else NULL."""
    if type(loads) is not _ndarray:
        return NULL
    cdef cvs_ndarray_head *a = <cvs_ndarray_head *><void *>loads
    if (a.nd != 1 or a.strides[0] != 8 or a.descr != <void *>_int64_dtype
            or not (a.flags & _NPY_ARRAY_ALIGNED)):
        return NULL
    n[0] = a.dimensions[0]
    return <const int64_t *>a.data


cdef const int64_t *_sequence_loads(object loads, int64_t *small, Py_ssize_t nsmall,
                                    int64_t **heap, Py_ssize_t *n) except? NULL:
    """The loads of a list or tuple of exact ints, copied into `small` (or into
    a malloc'd *heap the caller frees) with their count in n; NULL, holding
    no memory, if an item is not an exact int or does not fit in int64 (the
    caller converts it with numpy then, which gives the error).  Runs no
    Python code."""
    cdef Py_ssize_t count = len(loads), i
    cdef int64_t *out = small
    cdef object item
    cdef int overflow = 0
    if count > nsmall:
        out = <int64_t *>malloc(count * sizeof(int64_t))
        if out == NULL:
            raise MemoryError()
        heap[0] = out
    for i in range(count):
        item = loads[i]
        if type(item) is not int:
            break
        out[i] = PyLong_AsLongLongAndOverflow(item, &overflow)
        if overflow:
            break
    else:
        n[0] = count
        return out
    free(heap[0])  # (a failed conversion holds no memory)
    heap[0] = NULL
    return NULL


cdef int64_t _loads_total(const int64_t *lv, Py_ssize_t n) noexcept nogil:
    """The sum of the n loads, or -1 if one is negative or the sum exceeds
    MAX_TOTAL_LOAD.  Branch-free within blocks of 2048 (so it vectorizes):
    a load below 2**52 has no bit from 52 up (a negative one has bit 63),
    and 2048 of them sum below 2**63, so a block's sum cannot wrap."""
    cdef uint64_t total = 0, part, bits
    cdef Py_ssize_t i = 0, j, end
    while i < n:
        end = n if n - i < 2048 else i + 2048
        part = 0
        bits = 0
        for j in range(i, end):
            bits |= <uint64_t>lv[j]
            part += <uint64_t>lv[j]
        if bits >> 52:
            return -1
        total += part
        if total > <uint64_t>_MAX_TOTAL_LOAD:
            return -1
        i = end
    return <int64_t>total


def _loads_array(loads, nnodes):
    """`loads` as a validated C-contiguous int64 array (the same object when it
    already is one), or the TypeError/ValueError that names what is wrong."""
    if isinstance(loads, (str, bytes)) or loads is None:
        raise TypeError(f"loads must be a sequence or numpy array of ints, one per node, "
                        f"got {type(loads).__name__}: {loads!r:.60}")
    try:
        with warnings.catch_warnings():
            # numpy < 1.24 makes a ragged list an object array with a warning, not an error
            warnings.simplefilter("error")
            arr = np.asarray(loads)
    except (TypeError, ValueError, Warning) as exc:  # ragged, or not array-like at all
        raise TypeError(f"loads must be a sequence or numpy array of ints, one per node, "
                        f"got {type(loads).__name__}: {loads!r:.60}") from exc
    if arr.ndim != 1:
        raise ValueError(f"loads must be 1-dimensional (one entry per node), got shape {arr.shape}")
    if arr.shape[0] != nnodes:
        raise ValueError(f"loads must have one entry per node ({nnodes}), got {arr.shape[0]}")
    if arr.dtype.kind not in "iu" and arr.shape[0]:  # ([] is float64 to numpy)
        raise TypeError(f"loads must hold ints (an int64 array, one entry per node), "
                        f"got dtype {arr.dtype}")
    if nnodes:
        low = int(np.argmin(arr))
        if arr[low] < 0:
            raise ValueError(f"loads must be >= 0, got {show_number(arr[low])} at index {low}")
        total = sum(arr.tolist())
        if total > MAX_TOTAL_LOAD:
            raise ValueError(f"loads must sum to at most 2**52, got {show_number(total)}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.dtype is not _int64_dtype:
        # an equivalent type under another descriptor (numpy 1.x keeps long long's):
        # the fast path knows the int64 descriptor alone
        arr = arr.astype(_int64_dtype)
    return arr


cdef double _check_balance(c) except -1.0:
    """The balance factor as a double, or the TypeError/ValueError naming it."""
    cdef double v
    if type(c) is float:
        v = c
    elif isinstance(c, bool) or not isinstance(c, numbers.Real):
        raise TypeError(f"c must be a number > 1, got {type(c).__name__}: {c!r:.60}")
    else:
        try:
            v = float(c)
        except OverflowError:  # an int beyond the float range
            v = math.inf
    if not (v > 1.0 and v <= DBL_MAX):  # false for inf and nan too
        raise ValueError(f"c must be a finite number > 1, got {show_number(c)}")
    return v


# ------------------------------------------------------------ argument checks

def _check_name(name):
    if not isinstance(name, str):
        raise TypeError(f"node name must be a str, got {type(name).__name__}: {name!r}")
    if not name:
        raise ValueError("node name must be a non-empty str, got ''")
    return name


def _check_weight(weight):
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        raise TypeError(f"weight must be a number > 0, got {type(weight).__name__}: {weight!r}")
    try:
        w = float(weight)
    except OverflowError:  # an int beyond the float range
        w = math.inf
    if not (w > 0.0 and math.isfinite(w)):
        raise ValueError(f"weight must be a finite number > 0, got {show_number(weight)}")
    return w


def _check_count(n, what="n", high=None):
    if type(n) is int and 1 <= n and (high is None or n <= high):  # the common case
        return n
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{what} must be an int >= 1, got {type(n).__name__}: {n!r}")
    if n < 1:
        raise ValueError(f"{what} must be >= 1, got {show_number(n)}")
    if high is not None and n > high:
        raise ValueError(f"{what} must be <= {high:,}, got {show_number(n)}")
    return int(n)


def _scaled_weights(weights):
    """The weights times one power of two that puts the largest in [1, 2).

    Scaling by a power of two changes no float32 rounding and no quotient, so
    libketama's digest counts are unchanged wherever its float32 arithmetic
    is finite; it keeps rings of tiny (1e-50) or huge (1e39) weights from
    underflowing or overflowing float32 (where libketama divides 0 by 0).
    """
    exponent = math.frexp(max(weights))[1]
    return [math.ldexp(w, 1 - exponent) for w in weights]


def _scaled_weight_array(weights):
    """(_scaled_weights(weights) as a float64 array, math.fsum of it), with
    numpy: ldexp by a power of two is exact, as math.ldexp's is."""
    arr = np.asarray(weights, dtype=np.float64)
    if arr.shape[0] == 0:
        return np.empty(0, dtype=np.float64), 0.0
    high = float(arr.max())
    scaled = np.ldexp(arr, 1 - math.frexp(high)[1])
    if float(arr.min()) == high:
        # n equal terms: n * x rounded once is fsum's correctly rounded sum
        return scaled, float(scaled.shape[0]) * float(scaled[0])
    return scaled, math.fsum(scaled.tolist())


cdef list _libketama_digests(list weights, Py_ssize_t vnodes):
    """Digests per node in libketama's arithmetic, weights in server-list order.

    libketama computes ``floorf(pct * 40.0 * (float)numservers)`` with
    ``float pct = (float)memory_i / (float)memory_total``: a float32 quotient,
    a product in double rounded to float32 by floorf's parameter.  Done in
    doubles throughout, 7 equal nodes would get 39 digests each instead of
    40.  ``vnodes / 4`` stands in for the 40.  A node can get 0 digests.
    """
    scaled = _scaled_weights(weights)
    cdef float total = <float>math.fsum(scaled)
    cdef float servers = <float>len(weights)
    cdef double per_node = <double>(vnodes // 4)
    cdef float pct
    cdef list counts = []
    for w in scaled:
        pct = <float>(<double>w) / total
        counts.append(<Py_ssize_t>floorf(<float>(<double>pct * per_node * <double>servers)))
    return counts


def _uhashring_digests(weights, vnodes):
    """Digests per node as uhashring's ketama mode counts them, in exact arithmetic:
    ``floor(vnodes / 4 * nodes * weight / total weight)``."""
    exact = [Fraction(w) for w in weights]
    total = sum(exact)
    scale = (vnodes // 4) * len(exact)
    return [int(math.floor(scale * w / total)) for w in exact]


def _ketama_digests(weights, vnodes, hash="ketama"):
    """Digests per node (weights in server-list order) for hash "ketama" or
    "ketama-uhashring"; each digest gives 4 points."""
    if not weights:
        return []
    if hash == "ketama":
        return _libketama_digests(list(weights), vnodes)
    return _uhashring_digests(weights, vnodes)


def xxh64(data, seed=0):
    """XXH64 of `data` (bytes-like) with `seed`: the C function placement uses."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    return cvs_xxh64(&view[0] if view.shape[0] else NULL, view.shape[0], <uint64_t>seed)


def md5(data):
    """MD5 digest of `data` (bytes-like): the C function ketama mode uses."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    cdef uint8_t digest[16]
    cvs_md5(&view[0] if view.shape[0] else NULL, view.shape[0], digest)
    return bytes(digest[:16])


def _restore_ring(weights, vnodes, hash, seed):
    return HashRing(weights, vnodes=vnodes, hash=hash, seed=seed)


# ------------------------------------------------------------------ the ring

@cython.embedsignature(False)  # the docstring's first line is the signature (below)
cdef class HashRing:
    """HashRing(nodes=None, *, vnodes=160, hash='xxh64', seed=0)
--

A consistent-hash ring of named, weighted nodes with virtual-node points.

``nodes`` is an iterable of node names or a mapping name -> weight.
``hash`` is "xxh64" (the default), "ketama" (libketama's placement) or
"ketama-uhashring" (uhashring's ketama mode).

Lookup: ``get_node(key)``, ``get_nodes(key, n)`` (preference list),
``hash_key(key)``.
Batch lookup (GIL released): ``lookup_many(keys)``,
``get_nodes_many(keys, n)``, ``hash_many(keys)``.
Bounded loads (a request's node given each node's load and a balance
factor c): ``get_node_bounded(key, loads, c)``,
``lookup_many_bounded(keys, loads, c)`` (GIL released).
Membership: ``add(name, weight=1.0)``, ``remove(name)``.
Introspection: ``nodes``, ``weights``, ``points``, ``owners``,
``ownership()``, ``len()``, ``in``, ``==``, pickling.

Membership changes build new arrays and swap them in at once, so readers
in other threads always see a whole ring, the old one or the new one.
"""

    cdef readonly object points
    cdef readonly object owners
    cdef const uint64_t[::1] _pv
    cdef const int32_t[::1] _ov
    cdef const uint32_t[::1] _tv
    cdef object _table_arr
    cdef const uint32_t *_table
    cdef int _shift
    cdef const uint64_t *_pts
    cdef const int32_t *_own
    cdef size_t _npts
    cdef tuple _names
    cdef dict _index
    cdef dict _weights
    cdef Py_ssize_t _vnodes
    cdef uint64_t _seed
    cdef int _kind
    cdef bint _strict
    # Nodes that have no point (ketama modes: 0 digests), in name order: they
    # own no key and close every preference list that the walk cannot fill.
    cdef object _unreached_arr
    cdef const int32_t[::1] _unreached
    cdef Py_ssize_t _nreach
    # Weights in name order, times the power of two that puts the largest in
    # [1, 2), and their sum (math.fsum), for the bounded lookups.
    cdef object _weight_arr
    cdef const double[::1] _wv
    cdef double _wsum
    cdef object _raw_arr  # the weights in name order, unscaled
    cdef object _write_lock

    def __init__(self, nodes=None, *, vnodes=DEFAULT_VNODES, hash="xxh64", seed=DEFAULT_SEED):
        vnodes = _check_count(vnodes, "vnodes", MAX_VNODES)
        if not isinstance(hash, str) or hash not in HASHES:
            raise ValueError(f"hash must be one of {HASHES}, got {hash!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
        if not 0 <= seed < 2 ** 64:
            raise ValueError(f"seed must be in [0, 2**64), got {show_number(seed)}")
        if hash != "xxh64":
            if vnodes % 4:
                raise ValueError(f"vnodes must be a multiple of 4 with hash={hash!r}, got {vnodes!r}")
            if seed != 0:
                raise ValueError(f"seed must be 0 with hash={hash!r} (ketama has no seed), got {seed!r}")
        self._vnodes = vnodes
        self._seed = seed
        self._kind = HASHES.index(hash)
        self._strict = self._kind == KIND_UHASHRING
        self._write_lock = threading.Lock()

        weights = {}
        if nodes is not None:
            if isinstance(nodes, (str, bytes)):
                raise TypeError(
                    f"nodes must be an iterable of names or a mapping name -> weight, "
                    f"got {type(nodes).__name__}: {nodes!r}")
            if hasattr(nodes, "items"):
                for name, weight in nodes.items():
                    if type(name) is not str or not name:
                        _check_name(name)
                    if name in weights:
                        raise NodeExistsError(f"node {name!r} is given twice")
                    # (a float that is finite and > 0 is its own checked weight)
                    if type(weight) is not float or not (0.0 < <double>weight <= DBL_MAX):
                        weight = _check_weight(weight)
                    weights[name] = weight
            else:
                for name in nodes:
                    if type(name) is not str or not name:
                        _check_name(name)
                    size = len(weights)
                    weights[name] = 1.0
                    if len(weights) == size:
                        raise NodeExistsError(f"node {name!r} is given twice")
        self._install_built(weights)

    # ------------------------------------------------------------ building

    cdef Py_ssize_t _points_for(self, double weight) except -1:
        cdef double count = floor(<double>self._vnodes * weight + 0.5)
        if not count <= MAX_POINTS_PER_NODE:  # also false for inf
            raise ValueError(
                f"weight {show_number(weight)} gives "
                f"{f'{count:.3g}' if math.isfinite(count) else 'over 1.8e+308'} points to one node with vnodes="
                f"{self._vnodes}; the limit is {MAX_POINTS_PER_NODE:,}")
        return max(1, <Py_ssize_t>count)

    cdef _node_points(self, str name, Py_ssize_t count):
        """The points of one node, unsorted (count is points, 4 per ketama digest)."""
        cdef Py_ssize_t name_len
        cdef const char *name_bytes = PyUnicode_AsUTF8AndSize(name, &name_len)
        out = np.empty(count, dtype=np.uint64)
        cdef uint64_t[::1] ov = out
        if count == 0:
            return out
        cdef int rc
        with nogil:
            rc = _node_points_into(self._kind, self._seed, name_bytes, name_len, count, &ov[0])
        if rc < 0:
            raise MemoryError()
        return out

    cdef list _build_order(self, dict weights):
        """The order in which nodes' points enter the (stable) sort: on equal
        points the first one entered owns it.  xxh64: name order.  ketama:
        the server list (insertion order), as libketama's stable sort keeps
        it.  ketama-uhashring: the list reversed (uhashring keeps the last)."""
        if self._kind == KIND_XXH64:
            return sorted(weights)
        order = list(weights)
        if self._kind == KIND_UHASHRING:
            order.reverse()
        return order

    cdef dict _counts(self, dict weights):
        """{name: points} for every node."""
        if self._kind == KIND_XXH64:
            return {n: self._points_for(w) for n, w in weights.items()}
        digests = _ketama_digests(list(weights.values()), self._vnodes, HASHES[self._kind])
        counts = {}
        for (name, w), d in zip(weights.items(), digests):
            if 4 * d > MAX_POINTS_PER_NODE:
                raise ValueError(
                    f"weight {show_number(w)} gives {4 * d:,} points to node {name!r} with "
                    f"vnodes={self._vnodes} and {len(weights):,} nodes; the limit is "
                    f"{MAX_POINTS_PER_NODE:,}")
            counts[name] = 4 * d
        if weights and not any(counts.values()):
            raise ValueError(
                f"vnodes={self._vnodes} gives none of the {len(weights):,} nodes a point with "
                f"hash={HASHES[self._kind]!r}; use a larger vnodes")
        return counts

    cdef _check_total(self, Py_ssize_t total, Py_ssize_t nodes):
        if total > MAX_POINTS:
            raise ValueError(
                f"vnodes={self._vnodes} with these {nodes:,} nodes gives the ring {total:,} "
                f"points; the limit is {MAX_POINTS:,}")

    cdef _install_built(self, dict weights):
        """Build the whole ring for `weights` from scratch and swap it in."""
        cdef list names = sorted(weights)
        raw = np.array([weights[name] for name in names], dtype=np.float64)
        raw.flags.writeable = False
        cdef dict counts = None
        cdef const int64_t[::1] count_v
        if self._kind == KIND_XXH64:
            # _points_for of every weight, in name order (the same double arithmetic)
            with np.errstate(over="ignore"):  # a huge weight gives inf, refused below
                count_arr = np.floor(<double>self._vnodes * raw + 0.5)
            if count_arr.shape[0] and not count_arr.max() <= MAX_POINTS_PER_NODE:
                self._counts(weights)  # raises the error naming the weight
            count_arr = np.maximum(count_arr, 1.0).astype(np.int64)
            count_v = count_arr
            total = int(count_arr.sum())
        else:
            counts = self._counts(weights)
            total = sum(counts.values())
        self._check_total(total, len(weights))
        index = {name: i for i, name in enumerate(names)} if self._kind != KIND_XXH64 else None
        # (xxh64's build order is name order: the names, and owner k is node k)
        cdef list order = names if self._kind == KIND_XXH64 else self._build_order(weights)
        cdef Py_ssize_t nnodes = len(order), k, name_len
        cdef size_t n = <size_t>total
        bits, shift = self._radix_layout(total)
        points = _new_array(total, np.uint64)
        owners = _new_array(total, np.int32)
        table = _new_array((1 << bits) + 1, np.uint32)
        cdef uint64_t[::1] pv = points
        cdef int32_t[::1] ov = owners
        cdef uint32_t[::1] tv = table
        # Per node, in build order: its UTF-8 name (kept alive by `order`),
        # point count and owner index, so the hashing runs without the GIL.
        cdef const char **name_ptr = <const char **>malloc((nnodes + 1) * sizeof(char *))
        cdef Py_ssize_t *name_size = <Py_ssize_t *>malloc((nnodes + 1) * sizeof(Py_ssize_t))
        cdef Py_ssize_t *node_count = <Py_ssize_t *>malloc((nnodes + 1) * sizeof(Py_ssize_t))
        cdef int32_t *node_owner = <int32_t *>malloc((nnodes + 1) * sizeof(int32_t))
        cdef int kind = self._kind, rc = 0
        cdef uint64_t seed = self._seed
        cdef int hash_bits = 64 if kind == KIND_XXH64 else 32
        cdef int bits_ = bits
        try:
            if name_ptr == NULL or name_size == NULL or node_count == NULL or node_owner == NULL:
                raise MemoryError()
            for k in range(nnodes):
                name = order[k]
                name_ptr[k] = PyUnicode_AsUTF8AndSize(name, &name_len)
                name_size[k] = name_len
                if counts is None:  # xxh64: name order
                    node_count[k] = count_v[k]
                    node_owner[k] = k
                else:
                    node_count[k] = counts[name]
                    node_owner[k] = index[name]
            if n:
                with nogil:
                    rc = _build_sorted(kind, seed, nnodes, name_ptr, name_size, node_count,
                                       node_owner, &pv[0], &ov[0], n, hash_bits, bits_, &tv[0])
                if rc:
                    raise MemoryError()
            else:
                table[:] = 0
        finally:
            free(name_ptr)
            free(name_size)
            free(node_count)
            free(node_owner)
        self._install(points, owners, tuple(names), weights, table, raw)

    cdef _install(self, points, owners, tuple names, dict weights, table=None, raw_weights=None):
        """Swap in a new ring state.  Runs no Python code between the
        assignments, so no other thread can observe a half-installed ring.
        `raw_weights`, if given, is the weights in name order (a float64 array)."""
        points.flags.writeable = False
        owners.flags.writeable = False
        cdef const uint64_t[::1] pv = points
        cdef const int32_t[::1] ov = owners
        cdef dict index = dict(zip(names, range(len(names))))
        if table is None:
            table = self._radix_table(points)
        table.flags.writeable = False
        cdef const uint32_t[::1] tv = table
        cdef int shift = self._radix_layout(pv.shape[0])[1]
        if self._kind == KIND_XXH64:  # every node has a point
            unreached = np.empty(0, dtype=np.int32)
        else:
            has_point = np.bincount(owners, minlength=len(names)) > 0
            unreached = np.flatnonzero(~has_point).astype(np.int32)
        unreached.flags.writeable = False
        cdef const int32_t[::1] uv = unreached
        cdef Py_ssize_t nreach = len(names) - unreached.shape[0]
        if raw_weights is None:
            raw_weights = np.array([weights[name] for name in names], dtype=np.float64)
        raw_weights.flags.writeable = False
        weight_arr, wsum_ = _scaled_weight_array(raw_weights)
        weight_arr.flags.writeable = False
        cdef const double[::1] wv = weight_arr
        cdef double wsum = wsum_
        # --- the swap: plain C assignments and reference moves only
        self.points = points
        self.owners = owners
        self._pv = pv
        self._ov = ov
        self._npts = pv.shape[0]
        self._pts = &pv[0] if pv.shape[0] else NULL
        self._own = &ov[0] if ov.shape[0] else NULL
        self._tv = tv
        self._table_arr = table
        self._table = &tv[0]
        self._shift = shift
        self._unreached_arr = unreached
        self._unreached = uv
        self._nreach = nreach
        self._weight_arr = weight_arr
        self._wv = wv
        self._wsum = wsum
        self._raw_arr = raw_weights
        self._names = names
        self._index = index
        self._weights = weights

    cdef tuple _radix_layout(self, Py_ssize_t npts):
        """(bits, shift) of the radix table for `npts` points: about one bucket
        per point, never more, so the table costs at most 4 bytes a point."""
        cdef int hash_bits = 64 if self._kind == KIND_XXH64 else 32
        cdef int bits = max(1, min(hash_bits - 1, npts.bit_length() - 1))
        return bits, hash_bits - bits

    cdef _radix_table(self, points):
        """table[b] = index of the first point whose top bits are >= b."""
        bits, shift = self._radix_layout(points.shape[0])
        counts = np.bincount((points >> np.uint64(shift)).astype(np.intp), minlength=1 << bits)
        table = np.zeros((1 << bits) + 1, dtype=np.uint32)
        np.cumsum(counts, out=table[1:])
        return table

    cdef _raw_weights(self):
        """The weights in name order, unscaled (a float64 array)."""
        return self._raw_arr

    # ---------------------------------------------------------- membership

    def add(self, name, weight=1.0):
        """Add node `name` with relative capacity `weight` (its share of points).

        Raises NodeExistsError if the name is taken; TypeError/ValueError for a
        bad name or weight.  Runtime complexity: O(points) (a merge, no re-hash).
        """
        _check_name(name)
        w = _check_weight(weight)
        with self._write_lock:
            if name in self._index:
                raise NodeExistsError(f"node {name!r} is already in the ring")
            weights = dict(self._weights)
            weights[name] = w
            if self._kind != KIND_XXH64:
                # ketama's shares depend on every weight and the node count.
                self._install_built(weights)
                return
            count = self._points_for(w)
            self._check_total(self._npts + count, len(weights))
            new_points = np.sort(self._node_points(name, count))
            rank = bisect.bisect_left(self._names, name)
            names = self._names[:rank] + (name,) + self._names[rank:]
            self._install_merged(new_points, rank, names, weights)

    cdef _install_merged(self, new_points, int32_t rank, tuple names, dict weights):
        """Merge one new node's sorted points (owner index `rank`) in and swap
        the new arrays in at once (see csrc/cvs_merge.h)."""
        cdef size_t na = self._npts, nb = new_points.shape[0]
        points = _new_array(na + nb, np.uint64)
        owners = _new_array(na + nb, np.int32)
        cdef const uint64_t[::1] ap = self._pv
        cdef const int32_t[::1] ao = self._ov
        cdef const uint64_t[::1] bp = new_points
        cdef uint64_t[::1] rp = points
        cdef int32_t[::1] ro = owners
        with nogil:
            cvs_merge_node(&ap[0] if na else NULL, &ao[0] if na else NULL, na,
                           &bp[0], nb, rank, &rp[0], &ro[0])
        table = self._changed_table(points, new_points, 1)
        self._install(points, owners, names, weights, table,
                      np.insert(self._raw_weights(), rank, weights[names[rank]]))

    cdef _changed_table(self, points, changed, int sign):
        """The radix table of `points`, the current ring's points plus (sign 1)
        or minus (sign -1) the sorted points `changed`: adjusted from the
        current table when its size stays, else filled afresh."""
        cdef size_t n = points.shape[0], nc = changed.shape[0]
        bits, shift_ = self._radix_layout(n)
        cdef int shift = shift_
        cdef size_t buckets = <size_t>1 << <int>bits
        table = _new_array(buckets + 1, np.uint32)
        cdef uint32_t[::1] tn = table
        cdef const uint32_t[::1] to = self._tv
        cdef const uint64_t[::1] cp = changed
        cdef const uint64_t[::1] pv = points
        cdef uint64_t dummy = 0
        if <size_t>to.shape[0] == buckets + 1:
            with nogil:
                cvs_table_adjust(&to[0], buckets, &cp[0] if nc else &dummy, nc, shift, sign,
                                 &tn[0])
        else:
            with nogil:
                cvs_table_fill(&pv[0] if n else &dummy, n, shift, buckets, &tn[0])
        return table

    def remove(self, name):
        """Remove node `name`; its keys go to the next points clockwise.

        Raises NodeNotFoundError if it is not a member.  Runtime complexity:
        O(points) (one filtering pass, no re-hash).
        """
        with self._write_lock:
            if not isinstance(name, str) or name not in self._index:
                raise NodeNotFoundError(f"node {name!r} is not in the ring")
            weights = dict(self._weights)
            del weights[name]
            if self._kind != KIND_XXH64:
                self._install_built(weights)
                return
            self._install_filtered(name, weights)

    cdef _install_filtered(self, str name, dict weights):
        """Drop node `name`'s points (recomputed: a node's points are a
        function of its name and weight) and swap the new arrays in at once
        (see csrc/cvs_merge.h)."""
        cdef int32_t rank = self._index[name]
        gone = np.sort(self._node_points(name, self._points_for(self._weights[name])))
        cdef size_t na = self._npts, nc = gone.shape[0], nr = na - nc
        points = _new_array(nr, np.uint64)
        owners = _new_array(nr, np.int32)
        cdef const uint64_t[::1] ap = self._pv
        cdef const int32_t[::1] ao = self._ov
        cdef const uint64_t[::1] cp = gone
        cdef uint64_t[::1] rp = points
        cdef int32_t[::1] ro = owners
        cdef uint64_t dummy_p = 0
        cdef int32_t dummy_o = 0
        cdef int rc
        with nogil:
            rc = cvs_drop_node(&ap[0], &ao[0], na, &cp[0], nc, rank,
                               &rp[0] if nr else &dummy_p, &ro[0] if nr else &dummy_o)
        if rc:  # the arrays and the weights disagree: never happens
            raise AssertionError(f"remove did not find every point of {name!r}")
        table = self._changed_table(points, gone, -1)
        names = self._names[:rank] + self._names[rank + 1:]
        self._install(points, owners, names, weights, table, np.delete(self._raw_weights(), rank))

    # -------------------------------------------------------------- lookup

    cdef inline uint64_t _hash_key(self, key) except? 0:
        cdef const char *data
        cdef Py_ssize_t size
        _key_bytes(key, &data, &size)
        return _hash_bytes(self._kind, self._seed, data, <size_t>size)

    cdef _empty_error(self):
        return EmptyRingError("the ring has no nodes; add one with ring.add(name)")

    def hash_key(self, key):
        """The key's position on the ring (XXH64, or ketama's 32-bit MD5 point).

        Runtime complexity: O(len(key)).
        """
        return self._hash_key(key)

    def get_node(self, key):
        """The name of the node that owns `key`.

        Runtime complexity: O(log(points)).
        """
        cdef uint64_t h = self._hash_key(key)
        if self._npts == 0:
            raise self._empty_error()
        return self._names[self._own[_owner_index(self._pts, self._npts, self._table, self._shift,
                                                  h, self._strict)]]

    def get_node_bounded(self, key, loads, c):
        """The node that serves `key` under bounded loads (consistent hashing
        with bounded loads, Mirrokni-Thorup-Zadimoghaddam).

        `loads` holds each node's current load (requests in flight), one int
        per node in ``ring.nodes`` order: an int64 numpy array is read in
        place, a list or tuple of ints item by item, another integer array
        is converted.  `c` > 1 is the
        balance factor.  With T = sum(loads) and W the sum of the weights
        (``math.fsum``), node i's bound is ``ceil(c * (T + 1) * w_i / W)``
        (in doubles, left to right; the + 1 counts the request being placed),
        and it has room while ``loads[i] < bound``.  The key goes to its ring
        owner if that node has room, else to the owner of the next point
        clockwise whose node has room; if none has (only through float
        rounding with c a few ulps above 1, or ketama nodes without points
        holding weight), to the ring owner.  `loads` is not changed.

        Runtime complexity: O(log(points) + nodes + walk).
        """
        cdef double cc = _check_balance(c)
        cdef uint64_t h = self._hash_key(key)
        cdef Py_ssize_t n = 0
        cdef const int64_t *lv = _int64_data(loads, &n)
        cdef int64_t total
        cdef int64_t small[128]
        cdef int64_t *heap = NULL
        cdef int32_t chosen = -1
        arr = loads
        if self._npts == 0:
            raise self._empty_error()
        if lv == NULL and (type(loads) is list or type(loads) is tuple):
            lv = _sequence_loads(loads, small, 128, &heap, &n)
        if lv == NULL:
            arr = _loads_array(loads, len(self._names))  # may run Python code
            lv = _int64_data(arr, &n)
        # From here on no Python code runs (`arr` keeps the loads alive): the
        # ring state read below is one whole ring, and the checks hold for it.
        if self._npts == 0:
            free(heap)
            raise self._empty_error()
        total = _loads_total(lv, n) if n == <Py_ssize_t>len(self._names) else -1
        if total >= 0:
            chosen = cvs_bounded_owner(
                self._own, self._npts,
                _owner_index(self._pts, self._npts, self._table, self._shift, h, self._strict),
                lv, &self._wv[0], cc * <double>(total + 1), self._wsum)
        free(heap)
        if total < 0:
            _loads_array(loads, len(self._names))  # raises the message naming what is wrong
            raise AssertionError(f"loads accepted twice: {loads!r:.80}")
        return self._names[chosen]

    def get_nodes(self, key, n):
        """The preference list of `key`: the first `n` distinct nodes clockwise
        from it (fewer when the ring has fewer nodes), owner first.

        Runtime complexity: O(log(points) + walk).
        """
        return self._preference(key, n, self._names)

    def get_items(self, key, n, tuple items):
        """get_nodes(key, n) with each node given as ``items[i]``, where i is
        its index in ``ring.nodes``: a node's connection, say, without a dict
        lookup per name.  `items` is a tuple with one entry per node.
        """
        if len(items) != len(self._names):
            raise ValueError(
                f"items must have one entry per node ({len(self._names)}), got {len(items)}")
        return self._preference(key, n, items)

    cdef list _preference(self, key, n, tuple table):
        """The first `n` distinct nodes from `key`'s point, each as table[index]."""
        n = _check_count(n)
        cdef uint64_t h = self._hash_key(key)
        if self._npts == 0:
            raise self._empty_error()
        cdef Py_ssize_t wanted = min(n, len(table)), found, i
        cdef int32_t small[LINEAR_DISTINCT_MAX]
        cdef int32_t *out = small
        cdef uint32_t *stamp = NULL
        if wanted > LINEAR_DISTINCT_MAX:
            out = <int32_t *>malloc(wanted * sizeof(int32_t))
            stamp = <uint32_t *>calloc(len(table), sizeof(uint32_t))
            if out == NULL or stamp == NULL:
                free(out)
                free(stamp)
                raise MemoryError()
        found = _walk(self._pts, self._own, self._npts, self._table, self._shift, self._strict, h,
                      min(wanted, self._nreach), out, stamp, 1)
        for i in range(wanted - found):  # nodes without points close the list
            out[found + i] = self._unreached[i]
        cdef list result = PyList_New(wanted)
        for i in range(wanted):
            item = table[out[i]]
            Py_INCREF(item)
            PyList_SET_ITEM(result, i, item)
        if stamp != NULL:
            free(out)
            free(stamp)
        return result

    # -------------------------------------------------------- batch lookup

    def hash_many(self, keys):
        """hash_key for every key: a uint64 array."""
        return self._hash_keys(keys)

    cdef _hash_keys(self, keys):
        if isinstance(keys, np.ndarray):
            return self._hash_array(keys)
        if isinstance(keys, (str, bytes)):
            raise TypeError(
                f"keys must be a list, tuple or numpy array of keys, got {type(keys).__name__}; "
                "wrap a single key in a list")
        if not isinstance(keys, (list, tuple)):
            keys = list(keys)
        return self._hash_objects(keys)

    cdef _hash_objects(self, keys):
        cdef Py_ssize_t n = len(keys), i
        cdef const char *data
        cdef Py_ssize_t size
        out = np.empty(n, dtype=np.uint64)
        cdef uint64_t[::1] ov = out
        # A list is indexed directly; anything else is copied into one first.
        cdef list as_list = keys if type(keys) is list else list(keys)
        # Hashing needs each str's UTF-8 buffer, so this loop holds the GIL;
        # it does no Python-level work per key.
        for i in range(n):
            key = as_list[i]
            if not (PyUnicode_Check(key) or PyBytes_Check(key)):
                raise TypeError(f"keys[{i}] must be str or bytes, got {type(key).__name__}; "
                                "convert it first")
            _key_bytes(key, &data, &size)
            ov[i] = _hash_bytes(self._kind, self._seed, data, <size_t>size)
        return out

    cdef _hash_array(self, arr):
        if arr.ndim != 1:
            raise ValueError(f"keys array must be 1-dimensional, got shape {arr.shape}")
        kind = arr.dtype.kind
        if kind == "O":
            return self._hash_objects(arr.tolist())
        if kind not in "US":
            raise TypeError(
                f"keys array must have dtype str (U), bytes (S) or object, got {arr.dtype}")
        cdef Py_ssize_t n = arr.shape[0], i, width
        out = np.empty(n, dtype=np.uint64)
        cdef uint64_t[::1] ov = out
        cdef int kind_ = self._kind
        cdef uint64_t seed = self._seed
        cdef const uint8_t[:, ::1] sv
        cdef const uint32_t[:, ::1] uv
        cdef char *buf
        cdef size_t length
        cdef bint ok = True
        cdef uint64_t empty_hash = _hash_bytes(kind_, seed, b"", 0)
        if n == 0:
            return out
        if arr.dtype.itemsize == 0:  # dtype 'S0'/'U0': every key is empty
            out.fill(empty_hash)
            return out
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
        if kind == "S":
            width = arr.dtype.itemsize
            sv = arr.view(np.uint8).reshape(n, width)
            with nogil:
                for i in range(n):
                    length = <size_t>width
                    while length > 0 and sv[i, length - 1] == 0:  # numpy strips trailing NULs
                        length -= 1
                    ov[i] = _hash_bytes(kind_, seed, <const char *>&sv[i, 0], length)
            return out
        width = arr.dtype.itemsize // 4
        uv = arr.view(np.uint32).reshape(n, width)
        buf = <char *>malloc(4 * width)
        if buf == NULL:
            raise MemoryError()
        with nogil:
            for i in range(n):
                if not _utf32_row_to_utf8(&uv[i, 0], width, buf, &length):
                    ok = False
                    break
                ov[i] = _hash_bytes(kind_, seed, buf, length)
        free(buf)
        if not ok:
            return self._hash_objects(arr.tolist())
        return out

    def lookup_many(self, keys, *, out=None):
        """The owner of every key, as int32 indices into ``ring.nodes``.

        Equal to ``[ring.nodes.index(ring.get_node(k)) for k in keys]``.  The
        search runs with the GIL released.  `out`, if given, is a writable
        C-contiguous int32 array of len(keys) to fill and return.
        """
        hashes = self._hash_keys(keys)
        cdef Py_ssize_t n = hashes.shape[0], i
        if self._npts == 0:
            raise self._empty_error()
        if out is None:
            out = np.empty(n, dtype=np.int32)
        elif not (isinstance(out, np.ndarray) and out.dtype == np.int32 and out.ndim == 1
                  and out.shape[0] == n and out.flags.c_contiguous and out.flags.writeable):
            raise ValueError(
                f"out must be a writable C-contiguous int32 array of shape ({n},), got {out!r:.80}")
        # Local references keep this ring state alive while the GIL is released.
        cdef const uint64_t[::1] pv = self._pv
        cdef const int32_t[::1] own = self._ov
        cdef const uint32_t[::1] tv = self._tv
        cdef int shift = self._shift
        cdef bint strict = self._strict
        cdef const uint64_t[::1] hv = hashes
        cdef int32_t[::1] ov = out
        cdef size_t npts = pv.shape[0]
        if n == 0:
            return out
        with nogil:
            if npts >= PREFETCH_MIN_POINTS:
                cvs_find_many(&pv[0], &own[0], npts, &tv[0], shift, strict, &hv[0], <size_t>n,
                              &ov[0])
            else:  # the ring is cached: prefetching would only cost instructions
                for i in range(n):
                    ov[i] = own[_owner_index(&pv[0], npts, &tv[0], shift, hv[i], strict)]
        return out

    def lookup_many_bounded(self, keys, loads, c, *, out=None):
        """get_node_bounded for a batch of keys, placed one after another as a
        burst of requests: each placement adds 1 to its node's load (and to
        the total) before the next key is placed.  `loads` itself is not
        changed; ``np.bincount(result, minlength=len(ring))`` is what the
        batch added.  Returns int32 indices into ``ring.nodes``; `keys` and
        `out` as in lookup_many.  The placement runs with the GIL released.

        Runtime complexity: O(nodes + keys * (log(points) + walk)).
        """
        cdef double cc = _check_balance(c)
        hashes = self._hash_keys(keys)
        cdef Py_ssize_t n = hashes.shape[0], i
        if self._npts == 0:
            raise self._empty_error()
        work = np.array(_loads_array(loads, len(self._names)), dtype=np.int64, copy=True)
        if out is None:
            out = np.empty(n, dtype=np.int32)
        elif not (isinstance(out, np.ndarray) and out.dtype == np.int32 and out.ndim == 1
                  and out.shape[0] == n and out.flags.c_contiguous and out.flags.writeable):
            raise ValueError(
                f"out must be a writable C-contiguous int32 array of shape ({n},), got {out!r:.80}")
        # Local references keep this ring state alive while the GIL is released;
        # no Python code runs between reading them and checking the loads' length.
        cdef const uint64_t[::1] pv = self._pv
        cdef const int32_t[::1] own = self._ov
        cdef const uint32_t[::1] tv = self._tv
        cdef const double[::1] wv = self._wv
        cdef double wsum = self._wsum
        cdef int shift = self._shift
        cdef bint strict = self._strict
        cdef size_t npts = pv.shape[0]
        if npts == 0:
            raise self._empty_error()
        if work.shape[0] != wv.shape[0]:  # the ring changed while the loads were read
            _loads_array(loads, wv.shape[0])
            raise AssertionError("unreachable")
        cdef int64_t[::1] lv = work
        cdef const uint64_t[::1] hv = hashes
        cdef int32_t[::1] ov = out
        cdef int64_t total = _loads_total(&lv[0], lv.shape[0])
        if total < 0 or total + n > _MAX_TOTAL_LOAD:
            raise ValueError(f"loads plus the {n:,} keys must sum to at most 2**52, got "
                             f"{show_number(sum(work.tolist()) + n)}")
        cdef int32_t o
        if n == 0:
            return out
        with nogil:
            for i in range(n):
                o = cvs_bounded_owner(&own[0], npts,
                                      _owner_index(&pv[0], npts, &tv[0], shift, hv[i], strict),
                                      &lv[0], &wv[0], cc * <double>(total + 1), wsum)
                ov[i] = o
                lv[o] += 1
                total += 1
        return out

    def get_nodes_many(self, keys, n):
        """Preference lists for every key: int32 array of shape
        (len(keys), min(n, len(ring))) of indices into ``ring.nodes``."""
        n = _check_count(n)
        hashes = self._hash_keys(keys)
        if self._npts == 0:
            raise self._empty_error()
        cdef const uint64_t[::1] pv = self._pv
        cdef const int32_t[::1] own = self._ov
        cdef const uint32_t[::1] tv = self._tv
        cdef int shift = self._shift
        cdef bint strict = self._strict
        cdef const int32_t[::1] unreached = self._unreached
        cdef const uint64_t[::1] hv = hashes
        cdef Py_ssize_t rows = hashes.shape[0], nnodes = len(self._names), i, j, found
        cdef Py_ssize_t wanted = min(n, nnodes)
        cdef Py_ssize_t walked = min(wanted, self._nreach)
        cdef size_t npts = pv.shape[0]
        out = np.empty((rows, wanted), dtype=np.int32)
        if rows == 0:
            return out
        cdef int32_t[:, ::1] ov = out
        cdef uint32_t *stamp = NULL
        if wanted > LINEAR_DISTINCT_MAX:
            stamp = <uint32_t *>calloc(nnodes, sizeof(uint32_t))
            if stamp == NULL:
                raise MemoryError()
        with nogil:
            for i in range(rows):
                # Stamps are the row number + 1, so the array never needs clearing
                # (a batch would need 4 billion rows to wrap it).
                found = _walk(&pv[0], &own[0], npts, &tv[0], shift, strict, hv[i], walked,
                              &ov[i, 0], stamp, <uint32_t>(i + 1))
                for j in range(wanted - found):  # nodes without points close the list
                    ov[i, found + j] = unreached[j]
        free(stamp)
        return out

    # ------------------------------------------------------- introspection

    @property
    def nodes(self):
        """Node names in name order: the index order of the batch results."""
        return self._names

    @property
    def weights(self):
        """A copy of {name: weight}."""
        return dict(self._weights)

    @property
    def vnodes(self):
        return self._vnodes

    @property
    def hash(self):
        return HASHES[self._kind]

    @property
    def seed(self):
        return self._seed

    def ownership(self):
        """Each node's share of the hash space, {name: fraction}, summing to 1."""
        names = self._names
        if not names:
            return {}
        points = np.asarray(self.points)
        owners = np.asarray(self.owners)
        # Point i owns the arc (points[i-1], points[i]]; point 0 owns the wrap-around arc.
        arcs = points - np.roll(points, 1)  # uint64 arithmetic wraps modulo 2**64
        if self._kind != KIND_XXH64:
            arcs &= np.uint64(0xFFFFFFFF)
            space = 2.0 ** 32
        else:
            space = 2.0 ** 64
        if np.all(points == points[0]):  # a single position owns the whole circle
            shares = np.zeros(len(names))
            shares[owners[0]] = 1.0
        else:
            shares = np.bincount(owners, weights=arcs.astype(np.float64),
                                 minlength=len(names)) / space
        return {name: float(shares[i]) for i, name in enumerate(names)}

    def _check(self):
        """Assert every internal invariant; print the state and re-raise if one fails."""
        try:
            points = np.asarray(self.points)
            owners = np.asarray(self.owners)
            names = self._names
            assert list(names) == sorted(self._weights), "nodes are not the sorted weight keys"
            assert self._index == {n: i for i, n in enumerate(names)}, "index is stale"
            assert points.shape == owners.shape, "points and owners differ in length"
            assert self._npts == points.shape[0], "cached point count is stale"
            if points.shape[0]:
                assert owners.min() >= 0 and owners.max() < len(names), "owner out of range"
                last = points.shape[0] - 1  # (no negative indices: wraparound is off)
                assert np.all(points[1:] >= points[:last]), "points are not sorted"
                ties = np.flatnonzero(points[1:] == points[:last])
                order = self._build_order(self._weights)
                rank = np.empty(len(names), dtype=np.int64)
                rank[[self._index[name] for name in order]] = np.arange(len(order))
                assert np.all(rank[owners[ties]] <= rank[owners[ties + 1]]), (
                    "equal points not in the documented tie order")
            assert np.array_equal(self._table_arr, self._radix_table(points)), "radix table is stale"
            counts = np.bincount(owners, minlength=len(names)).tolist() if names else []
            by_name = self._counts(self._weights)
            expected = [by_name[name] for name in names]
            assert counts == expected, f"point counts {counts} != {expected}"
            assert self._unreached_arr.tolist() == [i for i, c in enumerate(counts) if c == 0], (
                "nodes without points are stale")
            assert self._nreach == sum(1 for c in counts if c), "reachable node count is stale"
            scaled = _scaled_weights([self._weights[n] for n in names]) if names else []
            assert np.asarray(self._wv).tolist() == scaled, "bounded-load weights are stale"
            assert self._wsum == math.fsum(scaled), "bounded-load weight sum is stale"
            assert self._raw_arr.tolist() == [self._weights[n] for n in names], (
                "weights in name order are stale")
        except AssertionError:
            print(f"HashRing._check failed for {self!r}: names={self._names!r} "
                  f"weights={self._weights!r} points={self.points!r} owners={self.owners!r}")
            raise

    def copy(self):
        """A ring with the same placement that changes independently of this one.

        O(nodes): the point arrays are immutable and shared.  Take a copy to map
        a batch call's indices back to names when other threads may change the
        ring: ``snap = ring.copy(); names = [snap.nodes[i] for i in snap.lookup_many(keys)]``.
        """
        cdef HashRing other = HashRing.__new__(HashRing)
        other._vnodes = self._vnodes
        other._seed = self._seed
        other._kind = self._kind
        other._strict = self._strict
        other._write_lock = threading.Lock()
        other._install(self.points, self.owners, self._names, dict(self._weights), self._table_arr,
                       self._raw_arr)
        return other

    __copy__ = copy

    def __len__(self):
        return len(self._names)

    def __contains__(self, name):
        return isinstance(name, str) and name in self._index

    def __iter__(self):
        return iter(self._names)

    def __repr__(self):
        return (f"HashRing(nodes={len(self._names)}, points={self._npts}, vnodes={self._vnodes}, "
                f"hash={self.hash!r}, seed={self._seed})")

    def __eq__(self, other):
        if not isinstance(other, HashRing):
            return NotImplemented
        cdef HashRing o = other
        return (self._kind == o._kind and self._seed == o._seed and self._names == o._names
                and np.array_equal(self.points, o.points) and np.array_equal(self.owners, o.owners))

    __hash__ = None

    def __reduce__(self):
        return (_restore_ring, (dict(self._weights), self._vnodes, self.hash, self._seed))
