/* cvs_xxh64.c: XXH64, written from the xxHash specification (its words
 * read little-endian on every platform: cvs_xxh64_words.h).
 */
#include <string.h>

#include "cvs_hash.h"
#include "cvs_xxh64_words.h"

static inline uint64_t round64(uint64_t acc, uint64_t input)
{
    acc += input * CVS_P2;
    acc = cvs_rotl64(acc, 31);
    return acc * CVS_P1;
}

static inline uint64_t merge_round(uint64_t acc, uint64_t val)
{
    acc ^= round64(0, val);
    return acc * CVS_P1 + CVS_P4;
}

uint64_t cvs_xxh64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = (const uint8_t *)data;
    const uint8_t *end = p + len;
    uint64_t h;

    if (len >= 32) {
        /* Four lanes consume 32-byte stripes. */
        const uint8_t *limit = end - 32;
        uint64_t v1 = seed + CVS_P1 + CVS_P2;
        uint64_t v2 = seed + CVS_P2;
        uint64_t v3 = seed;
        uint64_t v4 = seed - CVS_P1;
        do {
            v1 = round64(v1, cvs_read64(p));
            v2 = round64(v2, cvs_read64(p + 8));
            v3 = round64(v3, cvs_read64(p + 16));
            v4 = round64(v4, cvs_read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = cvs_rotl64(v1, 1) + cvs_rotl64(v2, 7) + cvs_rotl64(v3, 12) + cvs_rotl64(v4, 18);
        h = merge_round(h, v1);
        h = merge_round(h, v2);
        h = merge_round(h, v3);
        h = merge_round(h, v4);
    } else {
        h = seed + CVS_P5;
    }
    h += (uint64_t)len;

    /* The tail: 8-byte words, then one 4-byte word, then single bytes. */
    while (p + 8 <= end) {
        h ^= round64(0, cvs_read64(p));
        h = cvs_rotl64(h, 27) * CVS_P1 + CVS_P4;
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

    /* Avalanche. */
    h ^= h >> 33;
    h *= CVS_P2;
    h ^= h >> 29;
    h *= CVS_P3;
    h ^= h >> 32;
    return h;
}
