/* cvs_blocks.h: memory for a ring's large arrays, kept for the next change.
 *
 * Adding or removing a node writes new point, owner and radix-table arrays
 * (never the ones lookups may be reading) and drops the old ones.  Fresh
 * memory can cost more than the merge itself: the kernel clears every new
 * page, and on the VM we measure on an add to 100,000 nodes (224 MB of
 * arrays) took 510-559 ms in four rounds of seven, 78 % of a profile in the
 * kernel's clear_page, against 43-54 ms when the pages were at hand.  So a
 * block an array dropped is kept here, and the next change that needs that
 * much takes it back: only once the array that used it is gone, so no lookup
 * still reads it.  Kept blocks are marked MADV_FREE: the kernel may take
 * their pages back if it needs memory (they then come back cleared, as fresh
 * memory would), and does not otherwise.
 *
 * Not locked: the callers hold the GIL.
 */
#ifndef CVS_BLOCKS_H
#define CVS_BLOCKS_H

#include <stddef.h>
#include <stdlib.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif

#define CVS_BLOCK_HUGE ((size_t)2 << 20)    /* from here, 2 MiB aligned, huge pages asked for */
#define CVS_POOL_SLOTS 6                    /* two rings' worth of arrays, or two changes' */
#define CVS_POOL_BYTES ((size_t)1 << 30)    /* kept at most, in all */

/* Arrays smaller than this come from numpy as usual.  At 10,000 nodes (arrays
 * of 4-13 MB) a kept block measured slower than fresh memory (3.9 against 3.2
 * ms an add; likely the kernel's clearing leaves new pages in cache, and a kept
 * block is cold); at 100,000 nodes (32-128 MB) the kept block won, 25 against
 * 44 ms, and its pages are at hand unless the kernel took them back. */
static size_t cvs_block_min = (size_t)16 << 20;

static void *cvs_pool_ptr[CVS_POOL_SLOTS];
static size_t cvs_pool_cap[CVS_POOL_SLOTS];
static int cvs_pool_n = 0;
static size_t cvs_pool_bytes = 0;

/* A block's alignment: 2 MiB (a huge page) for large ones, a page otherwise. */
static inline size_t cvs_block_align(size_t nbytes)
{
    return nbytes >= CVS_BLOCK_HUGE ? CVS_BLOCK_HUGE : (size_t)4096;
}

/* How much a new block for `nbytes` holds: 1/32 more, so a ring a few
 * nodes larger still fits, rounded up to the alignment. */
static inline size_t cvs_block_capacity(size_t nbytes)
{
    size_t align = cvs_block_align(nbytes);
    size_t want = nbytes + nbytes / 32;
    return (want + align - 1) / align * align;
}

/* A block of at least `nbytes` (*cap: its size): the smallest kept one that
 * fits and is at most twice as large, else a new one.  NULL: no memory. */
static inline void *cvs_block_take(size_t nbytes, size_t *cap)
{
    int best = -1, i;
    for (i = 0; i < cvs_pool_n; i++) {
        size_t c = cvs_pool_cap[i];
        if (c >= nbytes && c / 2 <= nbytes && (best < 0 || c < cvs_pool_cap[best]))
            best = i;
    }
    if (best >= 0) {
        void *p = cvs_pool_ptr[best];
        *cap = cvs_pool_cap[best];
        cvs_pool_bytes -= *cap;
        cvs_pool_n--;
        cvs_pool_ptr[best] = cvs_pool_ptr[cvs_pool_n];
        cvs_pool_cap[best] = cvs_pool_cap[cvs_pool_n];
        return p;
    }
    size_t c = cvs_block_capacity(nbytes);
    void *p = NULL;
    if (posix_memalign(&p, cvs_block_align(c), c) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (c >= CVS_BLOCK_HUGE) (void)madvise(p, c, MADV_HUGEPAGE);
#endif
    *cap = c;
    return p;
}

/* A block no array uses any more: kept if there is room, else freed.  When
 * the pool is full the oldest kept block makes way (freed). */
static inline void cvs_block_give(void *p, size_t cap)
{
    if (p == NULL) return;
    if (cap > CVS_POOL_BYTES) {
        free(p);
        return;
    }
    while (cvs_pool_n > 0 &&
           (cvs_pool_n == CVS_POOL_SLOTS || cvs_pool_bytes + cap > CVS_POOL_BYTES)) {
        int i;
        free(cvs_pool_ptr[0]);
        cvs_pool_bytes -= cvs_pool_cap[0];
        for (i = 1; i < cvs_pool_n; i++) {
            cvs_pool_ptr[i - 1] = cvs_pool_ptr[i];
            cvs_pool_cap[i - 1] = cvs_pool_cap[i];
        }
        cvs_pool_n--;
    }
#ifdef MADV_FREE
    (void)madvise(p, cap, MADV_FREE);
#endif
    cvs_pool_ptr[cvs_pool_n] = p;
    cvs_pool_cap[cvs_pool_n] = cap;
    cvs_pool_n++;
    cvs_pool_bytes += cap;
}

/* Free every kept block. */
static inline void cvs_pool_clear(void)
{
    while (cvs_pool_n > 0) {
        cvs_pool_n--;
        free(cvs_pool_ptr[cvs_pool_n]);
    }
    cvs_pool_bytes = 0;
}

/* The size from which arrays are pooled; returns the one before (tests set a small one). */
static inline size_t cvs_block_min_set(size_t nbytes)
{
    size_t before = cvs_block_min;
    cvs_block_min = nbytes;
    return before;
}

/* (blocks kept, bytes kept): for tests and stats. */
static inline int cvs_pool_count(void) { return cvs_pool_n; }
static inline size_t cvs_pool_kept(void) { return cvs_pool_bytes; }

#endif /* CVS_BLOCKS_H */
