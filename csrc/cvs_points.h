/* cvs_points.h: one node's xxh64 points, XXH64(f"{name}-{i}", seed) for
 * i in [0, count), as a build hashes them (16 million for 100,000 nodes).
 *
 * Header-only so the loop is compiled as one piece: XXH64 (cvs_xxh64.c, the
 * same specification) inlined for inputs under 32 bytes, where it is a
 * serial chain of multiplies over 8-byte words, one 4-byte word and single
 * bytes.  Two things are shared between a node's points instead of redone:
 * the decimal suffix is counted up in place (no division per point), and
 * the chain over the 8-byte words that lie wholly in "{name}-" is computed
 * once per suffix length (it depends only on the length and those bytes).
 * Inputs of 32 bytes or more (long names) go to cvs_xxh64.
 */
#ifndef CVS_POINTS_H
#define CVS_POINTS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cvs_hash.h"
#include "cvs_xxh64_words.h"

/* One 8-byte word of XXH64's tail (inputs under 32 bytes start at seed + P5 + len). */
static inline uint64_t cvs_pt_word(uint64_t h, uint64_t w)
{
    uint64_t k = w * CVS_P2;
    k = cvs_rotl64(k, 31) * CVS_P1;
    h ^= k;
    return cvs_rotl64(h, 27) * CVS_P1 + CVS_P4;
}

/* XXH64's tail from `h` over p[0..end) (under 32 bytes), then its avalanche. */
static inline uint64_t cvs_pt_finish(uint64_t h, const uint8_t *p, const uint8_t *end)
{
    while (p + 8 <= end) {
        h = cvs_pt_word(h, cvs_read64(p));
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)cvs_read32(p) * CVS_P1;
        h = cvs_rotl64(h, 23) * CVS_P2 + CVS_P3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p) * CVS_P5;
        h = cvs_rotl64(h, 11) * CVS_P1;
        p++;
    }
    h ^= h >> 33;
    h *= CVS_P2;
    h ^= h >> 29;
    h *= CVS_P3;
    h ^= h >> 32;
    return h;
}

/* out[i] = XXH64(f"{name}-{i}", seed) for i in [0, count).  `buf` has room
 * for name_len + 21 bytes (the name, '-', and up to 20 digits). */
static inline void cvs_xxh64_node_points(const char *name, size_t name_len, size_t count,
                                         uint64_t seed, char *buf, uint64_t *out)
{
    size_t m = name_len + 1;        /* "{name}-" */
    size_t len = m + 1, q = m / 8, w, i, d;
    const uint8_t *u = (const uint8_t *)buf;
    uint64_t hp = 0;
    int fresh = 1;                  /* the prefix state is for another length */
    memcpy(buf, name, name_len);
    buf[name_len] = '-';
    buf[m] = '0';
    for (i = 0; i < count; i++) {
        if (len >= 32) {
            out[i] = cvs_xxh64(buf, len, seed);
        } else {
            if (fresh) {
                hp = seed + CVS_P5 + (uint64_t)len;
                for (w = 0; w < q; w++)
                    hp = cvs_pt_word(hp, cvs_read64(u + 8 * w));
                fresh = 0;
            }
            out[i] = cvs_pt_finish(hp, u + 8 * q, u + len);
        }
        /* count the decimal suffix up by one */
        d = len;
        while (d > m && buf[d - 1] == '9') {
            buf[d - 1] = '0';
            d--;
        }
        if (d > m) {
            buf[d - 1]++;
        } else {            /* 9...9 became 0...0: one more digit, "10...0" */
            buf[m] = '1';
            buf[len] = '0';
            len++;
            fresh = 1;
        }
    }
}

#endif /* CVS_POINTS_H */
