/* cvs_bounded.h: consistent hashing with bounded loads (Mirrokni, Thorup,
 * Zadimoghaddam), as a walk over a ring's owners array.
 *
 * Header-only, like cvs_search.h.  A node o "has room" when its load is
 * below its bound:
 *
 *     load[o] < ceil(s * w[o] / wsum),   s = c * (total + 1)
 *
 * where total is the sum of the loads before the request being placed (the
 * "+ 1" counts that request), w the node weights and wsum their sum, all in
 * IEEE double, evaluated left to right.  For an integer load below 2^53,
 * load < ceil(x) exactly when load < x, so the ceil is not computed.
 *
 * A key goes to the owner of the first point at or after its hash if that
 * node has room, else to the owner of the next point clockwise whose node
 * has room.  A node that is full stays full for the whole walk (the loads do
 * not change during it), so the walk needs no record of the nodes it passed.
 */
#ifndef CVS_BOUNDED_H
#define CVS_BOUNDED_H

#include <stddef.h>
#include <stdint.h>

static inline int cvs_has_room(int64_t load, double s, double w, double wsum)
{
    return (double)load < s * w / wsum;
}

/* The owner index chosen for a key whose ring owner is point `start`.
 *
 * Walks at most one full circle (npts points); if no point's node has room
 * (impossible in exact arithmetic when c > 1, as the bounds sum to more than
 * total + 1; possible through float rounding with c within a few ulps of 1,
 * or on a ketama ring whose nodes without points carry weight), returns the
 * ring owner own[start].
 */
static inline int32_t cvs_bounded_owner(const int32_t *own, size_t npts, size_t start,
                                        const int64_t *load, const double *w, double s,
                                        double wsum)
{
    size_t i = start, step;
    for (step = 0; step < npts; step++) {
        int32_t o = own[i];
        if (cvs_has_room(load[o], s, w[o], wsum))
            return o;
        if (++i == npts)
            i = 0;
    }
    return own[start];
}

#endif /* CVS_BOUNDED_H */
