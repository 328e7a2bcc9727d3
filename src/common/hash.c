#include "common/hash.h"

#include <xxhash.h>
#include <zlib.h>

struct bo_hash128 bo_hash128(const void *data, size_t len)
{
    XXH128_hash_t h = XXH3_128bits(data, len);
    return (struct bo_hash128){.lo = h.low64, .hi = h.high64};
}

uint64_t bo_hash64(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}

uint32_t bo_crc32(uint32_t crc, const void *data, size_t len)
{
    return (uint32_t)crc32_z(crc, data, len);
}
