/* cvs_merge.h: one node's points merged into / dropped from a sorted ring.
 *
 * Header-only, like cvs_search.h.  A ring is parallel arrays: points
 * (sorted; equal points ordered by owner) and owners (indices into the
 * name-sorted node list).  Adding the node whose name takes index `bo`
 * moves every owner >= bo up by one; removing node `gone` moves every owner
 * above it down by one.  Both walk the small sorted list of the node's
 * points, binary-search each one's place in the old arrays and copy the runs
 * between them in bulk (memcpy for the points, a branch-free loop the
 * compiler vectorizes for the owners), so the per-point cost is a copy's.
 * The radix table (see cvs_search.h) is updated from the old one when its
 * size does not change: entry b counts the points in buckets below b.
 */
#ifndef CVS_MERGE_H
#define CVS_MERGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cvs_search.h"

static inline void cvs_copy_shift_owners(const int32_t *src, size_t n, int32_t *dst,
                                         int32_t from, int32_t delta)
{
    size_t t;
    for (t = 0; t < n; t++)
        dst[t] = src[t] + (src[t] >= from ? delta : 0);
}

/* Merge the sorted points bp[0..nb) of the new node `bo` into ap/ao[0..na),
 * writing na + nb entries to rp/ro. */
static inline void cvs_merge_node(const uint64_t *ap, const int32_t *ao, size_t na,
                                  const uint64_t *bp, size_t nb, int32_t bo,
                                  uint64_t *rp, int32_t *ro)
{
    size_t i = 0, k = 0, j, end;
    for (j = 0; j < nb; j++) {
        uint64_t p = bp[j];
        /* old entries before p: point < p, or point == p with a smaller name */
        end = i + cvs_lower_bound(ap + i, na - i, p);
        while (end < na && ap[end] == p && ao[end] < bo) end++;
        if (end > i) {
            memcpy(rp + k, ap + i, (end - i) * sizeof(uint64_t));
            cvs_copy_shift_owners(ao + i, end - i, ro + k, bo, 1);
            k += end - i;
            i = end;
        }
        rp[k] = p;
        ro[k] = bo;
        k++;
    }
    if (na > i) {
        memcpy(rp + k, ap + i, (na - i) * sizeof(uint64_t));
        cvs_copy_shift_owners(ao + i, na - i, ro + k, bo, 1);
    }
}

/* Drop node `gone`, whose sorted points are cp[0..nc) (each present in ap
 * with owner `gone`), writing na - nc entries to rp/ro.  Returns 0, or -1 if
 * a point of cp is not found (the caller's arrays disagree: a bug). */
static inline int cvs_drop_node(const uint64_t *ap, const int32_t *ao, size_t na,
                                const uint64_t *cp, size_t nc, int32_t gone,
                                uint64_t *rp, int32_t *ro)
{
    size_t i = 0, k = 0, j, at;
    for (j = 0; j < nc; j++) {
        uint64_t p = cp[j];
        at = i + cvs_lower_bound(ap + i, na - i, p);
        while (at < na && ap[at] == p && ao[at] != gone) at++;
        if (at >= na || ap[at] != p) return -1;
        if (at > i) {
            memcpy(rp + k, ap + i, (at - i) * sizeof(uint64_t));
            cvs_copy_shift_owners(ao + i, at - i, ro + k, gone + 1, -1);
            k += at - i;
        }
        i = at + 1;
    }
    if (na > i) {
        memcpy(rp + k, ap + i, (na - i) * sizeof(uint64_t));
        cvs_copy_shift_owners(ao + i, na - i, ro + k, gone + 1, -1);
    }
    return 0;
}

/* tn[b] = to[b] + sign * (number of the sorted points cp[0..nc) whose
 * bucket, cp >> shift, is below b), for b in [0, buckets]: the radix table
 * after adding (sign 1) or dropping (sign -1) those points. */
static inline void cvs_table_adjust(const uint32_t *to, size_t buckets, const uint64_t *cp,
                                    size_t nc, int shift, int sign, uint32_t *tn)
{
    size_t b = 0, j, bj, t;
    for (j = 0; j < nc; j++) {
        bj = (size_t)(cp[j] >> shift);
        uint32_t d = (uint32_t)(sign > 0 ? j : (size_t)0 - j);
        for (t = b; t <= bj; t++) tn[t] = to[t] + d;
        if (bj + 1 > b) b = bj + 1;
    }
    {
        uint32_t d = (uint32_t)(sign > 0 ? nc : (size_t)0 - nc);
        for (t = b; t <= buckets; t++) tn[t] = to[t] + d;
    }
}

/* The radix table of sorted points pts[0..n) from scratch (one pass). */
static inline void cvs_table_fill(const uint64_t *pts, size_t n, int shift, size_t buckets,
                                  uint32_t *table)
{
    size_t cur = 0, k, b;
    for (k = 0; k < n; k++) {
        b = (size_t)(pts[k] >> shift);
        while (cur <= b) table[cur++] = (uint32_t)k;
    }
    while (cur <= buckets) table[cur++] = (uint32_t)n;
}

#endif /* CVS_MERGE_H */
