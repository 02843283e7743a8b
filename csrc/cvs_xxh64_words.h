/* cvs_xxh64_words.h: what XXH64's two C implementations share (the
 * specification's primes, the rotate, little-endian word reads), for
 * cvs_xxh64.c (any input) and cvs_points.h (a node's short point inputs).
 *
 * Input words are read with memcpy and assembled little-endian, so the
 * result is the same on every platform and no unaligned access happens.
 */
#ifndef CVS_XXH64_WORDS_H
#define CVS_XXH64_WORDS_H

#include <stdint.h>
#include <string.h>

#define CVS_P1 0x9E3779B185EBCA87ULL
#define CVS_P2 0xC2B2AE3D27D4EB4FULL
#define CVS_P3 0x165667B19E3779F9ULL
#define CVS_P4 0x85EBCA77C2B2AE63ULL
#define CVS_P5 0x27D4EB2F165667C5ULL

static inline uint64_t cvs_rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t cvs_read64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) |
           ((uint64_t)p[3] << 24) | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
           ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
#endif
}

static inline uint32_t cvs_read32(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#else
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
#endif
}

#endif /* CVS_XXH64_WORDS_H */
