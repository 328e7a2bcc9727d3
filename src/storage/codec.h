/*
 * codec.h - compression of snapshot and backup payloads (zlib, zstd).
 *
 * zstd is the default: faster and smaller. zlib at level 3 is what Aurora
 * wrote (a zlib stream, RFC 1950, not raw deflate or gzip), kept for parity
 * and for comparison in benchmarks. Pure functions; any thread.
 */
#ifndef BO_CODEC_H
#define BO_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/buf.h"
#include "common/err.h"

/* Same values as proto `bo.Codec`. */
enum bo_codec { BO_CODEC_NONE = 0, BO_CODEC_ZLIB = 1, BO_CODEC_ZSTD = 2 };

#define BO_ZLIB_LEVEL_DEFAULT 3
#define BO_ZSTD_LEVEL_DEFAULT 3

/* "none", "zlib", "zstd" -> codec; BO_EINVAL otherwise. */
int bo_codec_parse(const char *name, enum bo_codec *out);
const char *bo_codec_name(enum bo_codec codec);

/* Append the compressed form of `in` to `out`. level 0 = the codec default.
 * CODEC_NONE copies. */
int bo_codec_compress(enum bo_codec codec, int level, const uint8_t *in, size_t len,
                      struct bo_buf *out, struct bo_err *err);

/* The same for the concatenation of `n` pieces, without concatenating them
 * first (the snapshot writer's config, task and rest buffers). */
int bo_codec_compress_iov(enum bo_codec codec, int level, const struct iovec *iov, int n,
                          struct bo_buf *out, struct bo_err *err);

/* Append the decompressed form of `in` to `out`. `expected` is the size the
 * writer recorded; a different size, or any decoder error, is BO_ECORRUPT
 * with the offset where decoding failed when the library tells it. */
int bo_codec_decompress(enum bo_codec codec, const uint8_t *in, size_t len, size_t expected,
                        struct bo_buf *out, struct bo_err *err);

#endif
