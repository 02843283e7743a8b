/* cvs_search.h: lower-bound search over a sorted uint64_t array.
 *
 * Header-only so the compiler inlines it into the lookup loops.  The loop
 * is branchless (the comparison selects the next base, compiled to a
 * conditional move): a ring lookup's comparisons are unpredictable by
 * nature, and a branchy binary search measured 4-7x slower here.
 */
#ifndef CVS_SEARCH_H
#define CVS_SEARCH_H

#include <stddef.h>
#include <stdint.h>

/* Index of the first element >= h in pts[0..n), or n if every element is < h. */
static inline size_t cvs_lower_bound(const uint64_t *pts, size_t n, uint64_t h)
{
    if (n == 0) return 0;
    const uint64_t *base = pts;
    size_t len = n;
    while (len > 1) {
        size_t half = len >> 1;
        /* The answer stays in [base, base + len]. */
        base = (base[half - 1] < h) ? base + half : base;
        len -= half;
    }
    return (size_t)(base - pts) + (size_t)(*base < h);
}

/* Index of the first point >= h, narrowed first by a radix table.
 *
 * table[b] is the index of the first point whose top bits (h >> shift) are
 * >= b, for b in [0, 2^bits], so the answer lies in [table[b], table[b+1]]
 * for b = h >> shift.  With about one bucket per point that range holds one
 * or two points: a lookup is one table read and a tiny search instead of
 * log2(n) dependent reads.  Measured here (random keys, C loop): 61 -> 10 ns
 * a lookup at 16,000 points, 93 -> 11 ns at 160,000 points.
 */
static inline size_t cvs_find(const uint64_t *pts, const uint32_t *table, int shift, uint64_t h)
{
    uint64_t b = h >> shift;
    size_t lo = table[b];
    size_t hi = table[b + 1];
    return lo + cvs_lower_bound(pts + lo, hi - lo, h);
}

#endif /* CVS_SEARCH_H */
