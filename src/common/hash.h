/*
 * hash.h - content hashing (xxHash's XXH3, from libxxhash) and checksums
 * (CRC-32 from zlib). Neither is hand-written.
 *
 * bo_hash128 names content: task configs are identified by the hash of their
 * canonical encoding, always confirmed by a full byte comparison, so a
 * collision costs a comparison, never correctness. bo_crc32 guards bytes at
 * rest (image headers and payloads).
 */
#ifndef BO_HASH_H
#define BO_HASH_H

#include <stddef.h>
#include <stdint.h>

struct bo_hash128 {
    uint64_t lo;
    uint64_t hi;
};

struct bo_hash128 bo_hash128(const void *data, size_t len);
uint64_t bo_hash64(const void *data, size_t len);

/* Incremental CRC-32: start with crc = 0. */
uint32_t bo_crc32(uint32_t crc, const void *data, size_t len);

#endif
