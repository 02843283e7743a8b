/* cvs_hash.h: the two hash functions cvstore places keys and nodes with.
 *
 * Plain C99, no Python headers: bytes in, integers out.  Written from the
 * public specifications (the xxHash spec "xxhash_spec.md" for XXH64 and
 * RFC 1321 for MD5) so that any other language can reproduce placement.
 */
#ifndef CVS_HASH_H
#define CVS_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* XXH64 of `len` bytes at `data` with `seed` (the default placement hash). */
uint64_t cvs_xxh64(const void *data, size_t len, uint64_t seed);

/* MD5 digest (16 bytes) of `len` bytes at `data`, written to `out`. */
void cvs_md5(const void *data, size_t len, uint8_t out[16]);

/* libketama's point for a digest: its bytes 4j..4j+3 read little-endian. */
static inline uint32_t cvs_ketama_point(const uint8_t digest[16], int j)
{
    const uint8_t *b = digest + 4 * j;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
           ((uint32_t)b[3] << 24);
}

#ifdef __cplusplus
}
#endif

#endif /* CVS_HASH_H */
