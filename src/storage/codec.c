/*
 * codec.c - zstd and zlib compression of snapshot payloads.
 *
 * Happy path: compression streams the input, possibly given as several pieces
 * (bo_codec_compress_iov: the snapshot writer hands over its config, task and
 * rest buffers without concatenating hundreds of MB first), into an output
 * buffer reserved at the codec's worst-case bound, so the compressor never
 * waits for output space. zstd writes a frame with the content size and an
 * XXH64 content checksum; on large inputs it uses two worker threads (the
 * machines we target have two cores and snapshots are hundreds of MB). zlib
 * writes an RFC 1950 stream at level 3, what Aurora wrote.
 *
 * Decompression streams into an output buffer that grows up to the size the
 * writer recorded and never beyond it, so a corrupt size cannot make us
 * allocate terabytes, and a stream that ends early or goes on too long is
 * BO_ECORRUPT.
 *
 * Failure modes: every decoder complaint (bad frame, checksum mismatch,
 * truncated stream, trailing garbage, size mismatch) is BO_ECORRUPT with the
 * input offset the decoder had reached; allocation failures are BO_ENOMEM;
 * a bad level is BO_EINVAL.
 */
#include "storage/codec.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "common/mem.h"

/* Inputs below this are compressed by the calling thread alone: starting
 * workers costs more than it saves on small payloads. */
#define ZSTD_MT_MIN_INPUT (8u << 20)
#define ZSTD_WORKERS      2

/* zlib counts in uInt; feed it at most this much per call. */
#define ZLIB_CHUNK ((size_t)1 << 30)

/* Output buffers are big and fresh, but no huge-page advice: on the VMs we
 * run on a first touch of a transparent huge page costs 2-3 ms per MB (the
 * host backs it afresh) against about 0.5 ms per MB for 4 KB pages, so
 * MADV_HUGEPAGE made decompressing a million tasks slower, not faster. */
static int reserve(struct bo_buf *b, size_t extra)
{
    return bo_buf_reserve(b, extra);
}

int bo_codec_parse(const char *name, enum bo_codec *out)
{
    if (strcmp(name, "none") == 0) {
        *out = BO_CODEC_NONE;
    } else if (strcmp(name, "zlib") == 0) {
        *out = BO_CODEC_ZLIB;
    } else if (strcmp(name, "zstd") == 0) {
        *out = BO_CODEC_ZSTD;
    } else {
        return BO_EINVAL;
    }
    return BO_OK;
}

const char *bo_codec_name(enum bo_codec codec)
{
    switch (codec) {
    case BO_CODEC_NONE:
        return "none";
    case BO_CODEC_ZLIB:
        return "zlib";
    case BO_CODEC_ZSTD:
        return "zstd";
    }
    return "unknown";
}

static size_t iov_total(const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        total += iov[i].iov_len;
    }
    return total;
}

/* ---------------------------------------------------------------- zstd ---- */

static int zstd_set(ZSTD_CCtx *cctx, ZSTD_cParameter p, int value, struct bo_err *err)
{
    size_t r = ZSTD_CCtx_setParameter(cctx, p, value);
    if (ZSTD_isError(r)) {
        return bo_errf(err, BO_EINVAL, "zstd compress: set parameter %d to %d: %s", (int)p, value,
                       ZSTD_getErrorName(r));
    }
    return BO_OK;
}

static int zstd_compress(int level, const struct iovec *iov, int n, struct bo_buf *out,
                         struct bo_err *err)
{
    size_t total = iov_total(iov, n);
    size_t bound = ZSTD_compressBound(total);
    if (ZSTD_isError(bound)) {
        return bo_errf(err, BO_ETOOBIG, "zstd compress: input of %zu bytes is too big", total);
    }
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
        return bo_errf(err, BO_EINVAL, "zstd compress: level %d out of range %d..%d", level,
                       ZSTD_minCLevel(), ZSTD_maxCLevel());
    }
    if (reserve(out, bound) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "zstd compress: out of memory (%zu bytes)", bound);
    }
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (cctx == NULL) {
        return bo_errf(err, BO_ENOMEM, "zstd compress: out of memory for the context");
    }
    int rv = zstd_set(cctx, ZSTD_c_compressionLevel, level, err);
    if (rv == BO_OK) {
        rv = zstd_set(cctx, ZSTD_c_checksumFlag, 1, err);
    }
    if (rv == BO_OK && total >= ZSTD_MT_MIN_INPUT) {
        /* Only if the library was built with threads; otherwise the bound
         * is 0 and one thread does the work. */
        ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers);
        if (!ZSTD_isError(b.error) && b.upperBound >= ZSTD_WORKERS) {
            rv = zstd_set(cctx, ZSTD_c_nbWorkers, ZSTD_WORKERS, err);
        }
    }
    if (rv == BO_OK && ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cctx, total))) {
        rv = bo_errf(err, BO_EINTERNAL, "zstd compress: cannot pledge %zu bytes", total);
    }
    if (rv != BO_OK) {
        goto err_after_cctx;
    }

    ZSTD_outBuffer ob = {out->data + out->len, out->cap - out->len, 0};
    for (int i = 0; i < n; i++) {
        ZSTD_inBuffer ib = {iov[i].iov_base, iov[i].iov_len, 0};
        bool last = i == n - 1;
        for (;;) {
            size_t r = ZSTD_compressStream2(cctx, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(r)) {
                rv = bo_errf(err, BO_EINTERNAL, "zstd compress: %s", ZSTD_getErrorName(r));
                goto err_after_cctx;
            }
            if (last ? r == 0 : ib.pos == ib.size) {
                break;
            }
            if (ob.pos == ob.size) {
                /* Cannot happen with the output reserved at the bound. */
                rv = bo_errf(err, BO_EINTERNAL, "zstd compress: output bound exceeded");
                goto err_after_cctx;
            }
        }
    }
    if (n == 0) {
        ZSTD_inBuffer ib = {NULL, 0, 0};
        size_t r = ZSTD_compressStream2(cctx, &ob, &ib, ZSTD_e_end);
        if (ZSTD_isError(r) || r != 0) {
            rv = bo_errf(err, BO_EINTERNAL, "zstd compress: empty input failed");
            goto err_after_cctx;
        }
    }
    out->len += ob.pos;

err_after_cctx:
    ZSTD_freeCCtx(cctx);
    return rv;
}

/* Room for more output: at least `want` bytes, never more than `limit` in
 * total (plus one byte, so going past the limit is observable). */
static int grow_output(struct bo_buf *out, size_t base, size_t limit, size_t want)
{
    size_t used = out->len - base;
    size_t room = out->cap - out->len;
    if (room >= want || used > limit || used + room > limit) {
        return BO_OK;
    }
    size_t extra = want - room;
    if (extra < used) {
        extra = used; /* geometric growth */
    }
    if (used + room + extra > limit + 1) {
        extra = limit + 1 - used - room;
    }
    return reserve(out, room + extra);
}

/* First guess for the output size: the recorded size when it is plausible for
 * this much input, otherwise something proportional that grows as needed. */
static size_t initial_output(size_t in_len, size_t expected)
{
    size_t plausible;
    if (bo_mul_overflows(in_len, 64, &plausible)) {
        plausible = SIZE_MAX;
    }
    plausible = plausible < ((size_t)64 << 20) ? ((size_t)64 << 20) : plausible;
    return expected <= plausible ? expected : plausible;
}

static int zstd_decompress(const uint8_t *in, size_t len, size_t expected, struct bo_buf *out,
                           struct bo_err *err)
{
    unsigned long long fcs = ZSTD_getFrameContentSize(in, len);
    if (fcs == ZSTD_CONTENTSIZE_ERROR) {
        return bo_errf(err, BO_ECORRUPT, "zstd decompress: not a zstd frame at offset 0");
    }
    if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != expected) {
        /* The frame may be followed by more frames; only trust a single one. */
        size_t fsize = ZSTD_findFrameCompressedSize(in, len);
        if (!ZSTD_isError(fsize) && fsize == len) {
            return bo_errf(err, BO_ECORRUPT,
                           "zstd decompress: frame holds %llu bytes, %zu were recorded", fcs,
                           expected);
        }
    }
    size_t base = out->len;
    if (reserve(out, initial_output(len, expected) + 1) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "zstd decompress: out of memory (%zu bytes)", expected);
    }
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (dctx == NULL) {
        return bo_errf(err, BO_ENOMEM, "zstd decompress: out of memory for the context");
    }
    int rv = BO_OK;
    ZSTD_inBuffer ib = {in, len, 0};
    size_t r = 1;
    while (ib.pos < ib.size || r != 0) {
        if (grow_output(out, base, expected, ZSTD_DStreamOutSize()) != BO_OK) {
            rv = bo_errf(err, BO_ENOMEM, "zstd decompress: out of memory (%zu bytes)", expected);
            goto err_after_dctx;
        }
        ZSTD_outBuffer ob = {out->data + out->len, out->cap - out->len, 0};
        size_t before_in = ib.pos;
        r = ZSTD_decompressStream(dctx, &ob, &ib);
        out->len += ob.pos;
        if (ZSTD_isError(r)) {
            rv = bo_errf(err, BO_ECORRUPT, "zstd decompress: %s near offset %zu",
                         ZSTD_getErrorName(r), ib.pos);
            goto err_after_dctx;
        }
        if (out->len - base > expected) {
            rv = bo_errf(err, BO_ECORRUPT,
                         "zstd decompress: more than the %zu bytes recorded (at offset %zu)",
                         expected, ib.pos);
            goto err_after_dctx;
        }
        if (ib.pos == ib.size && ob.pos == 0 && before_in == ib.pos && r != 0) {
            rv =
                bo_errf(err, BO_ECORRUPT, "zstd decompress: input truncated at offset %zu", ib.pos);
            goto err_after_dctx;
        }
    }
    if (out->len - base != expected) {
        rv = bo_errf(err, BO_ECORRUPT, "zstd decompress: got %zu bytes, %zu were recorded",
                     out->len - base, expected);
    }

err_after_dctx:
    ZSTD_freeDCtx(dctx);
    if (rv != BO_OK) {
        out->len = base;
    }
    return rv;
}

/* ---------------------------------------------------------------- zlib ---- */

static int zlib_compress(int level, const struct iovec *iov, int n, struct bo_buf *out,
                         struct bo_err *err)
{
    if (level < 1 || level > 9) {
        return bo_errf(err, BO_EINVAL, "zlib compress: level %d out of range 1..9", level);
    }
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    int zr = deflateInit(&zs, level);
    if (zr != Z_OK) {
        return bo_errf(err, zr == Z_MEM_ERROR ? BO_ENOMEM : BO_EINTERNAL, "zlib compress: init: %s",
                       zs.msg != NULL ? zs.msg : zError(zr));
    }
    size_t total = iov_total(iov, n);
    size_t bound = deflateBound(&zs, total);
    int rv = BO_OK;
    if (bound < total || reserve(out, bound) != BO_OK) {
        rv = bo_errf(err, BO_ENOMEM, "zlib compress: out of memory (%zu bytes)", bound);
        goto err_after_init;
    }
    uint8_t *dst = out->data + out->len;
    size_t dst_left = out->cap - out->len;
    size_t produced = 0;
    for (int i = 0; i <= n; i++) {
        const uint8_t *src = i < n ? iov[i].iov_base : NULL;
        size_t left = i < n ? iov[i].iov_len : 0;
        do {
            size_t chunk = left < ZLIB_CHUNK ? left : ZLIB_CHUNK;
            bool finish = i == n;
            zs.next_in = (Bytef *)src;
            zs.avail_in = (uInt)chunk;
            do {
                size_t ochunk = dst_left < ZLIB_CHUNK ? dst_left : ZLIB_CHUNK;
                zs.next_out = dst + produced;
                zs.avail_out = (uInt)ochunk;
                zr = deflate(&zs, finish ? Z_FINISH : Z_NO_FLUSH);
                size_t got = ochunk - zs.avail_out;
                produced += got;
                dst_left -= got;
                if (zr == Z_STREAM_ERROR || (zr == Z_BUF_ERROR && dst_left == 0)) {
                    rv = bo_errf(err, BO_EINTERNAL, "zlib compress: %s",
                                 zs.msg != NULL ? zs.msg : zError(zr));
                    goto err_after_init;
                }
            } while (finish ? zr != Z_STREAM_END : zs.avail_in > 0);
            src += chunk;
            left -= chunk;
        } while (left > 0);
    }
    out->len += produced;

err_after_init:
    deflateEnd(&zs);
    return rv;
}

static int zlib_decompress(const uint8_t *in, size_t len, size_t expected, struct bo_buf *out,
                           struct bo_err *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    int zr = inflateInit(&zs);
    if (zr != Z_OK) {
        return bo_errf(err, zr == Z_MEM_ERROR ? BO_ENOMEM : BO_EINTERNAL,
                       "zlib decompress: init: %s", zs.msg != NULL ? zs.msg : zError(zr));
    }
    size_t base = out->len;
    int rv = BO_OK;
    if (reserve(out, initial_output(len, expected) + 1) != BO_OK) {
        rv = bo_errf(err, BO_ENOMEM, "zlib decompress: out of memory (%zu bytes)", expected);
        goto err_after_init;
    }
    size_t consumed = 0;
    zr = Z_OK;
    while (zr != Z_STREAM_END) {
        if (grow_output(out, base, expected, 1 << 16) != BO_OK) {
            rv = bo_errf(err, BO_ENOMEM, "zlib decompress: out of memory (%zu bytes)", expected);
            goto err_after_init;
        }
        size_t ichunk = len - consumed < ZLIB_CHUNK ? len - consumed : ZLIB_CHUNK;
        size_t room = out->cap - out->len;
        size_t ochunk = room < ZLIB_CHUNK ? room : ZLIB_CHUNK;
        zs.next_in = (Bytef *)(in + consumed);
        zs.avail_in = (uInt)ichunk;
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)ochunk;
        zr = inflate(&zs, Z_NO_FLUSH);
        size_t used_in = ichunk - zs.avail_in;
        size_t got = ochunk - zs.avail_out;
        consumed += used_in;
        out->len += got;
        if (zr == Z_NEED_DICT || zr == Z_DATA_ERROR || zr == Z_MEM_ERROR || zr == Z_STREAM_ERROR) {
            rv = bo_errf(err, zr == Z_MEM_ERROR ? BO_ENOMEM : BO_ECORRUPT,
                         "zlib decompress: %s at offset %zu", zs.msg != NULL ? zs.msg : zError(zr),
                         consumed);
            goto err_after_init;
        }
        if (out->len - base > expected) {
            rv = bo_errf(err, BO_ECORRUPT,
                         "zlib decompress: more than the %zu bytes recorded (at offset %zu)",
                         expected, consumed);
            goto err_after_init;
        }
        if (zr != Z_STREAM_END && used_in == 0 && got == 0) {
            rv = bo_errf(err, BO_ECORRUPT, "zlib decompress: stream truncated at offset %zu",
                         consumed);
            goto err_after_init;
        }
    }
    if (consumed != len) {
        rv = bo_errf(err, BO_ECORRUPT,
                     "zlib decompress: %zu bytes of garbage after the stream at "
                     "offset %zu",
                     len - consumed, consumed);
    } else if (out->len - base != expected) {
        rv = bo_errf(err, BO_ECORRUPT, "zlib decompress: got %zu bytes, %zu were recorded",
                     out->len - base, expected);
    }

err_after_init:
    inflateEnd(&zs);
    if (rv != BO_OK) {
        out->len = base;
    }
    return rv;
}

/* ---------------------------------------------------------------- api ---- */

int bo_codec_compress_iov(enum bo_codec codec, int level, const struct iovec *iov, int n,
                          struct bo_buf *out, struct bo_err *err)
{
    switch (codec) {
    case BO_CODEC_NONE: {
        size_t total = iov_total(iov, n);
        if (reserve(out, total) != BO_OK) {
            return bo_errf(err, BO_ENOMEM, "copy: out of memory (%zu bytes)", total);
        }
        for (int i = 0; i < n; i++) {
            bo_buf_append(out, iov[i].iov_base, iov[i].iov_len);
        }
        return BO_OK;
    }
    case BO_CODEC_ZLIB:
        return zlib_compress(level == 0 ? BO_ZLIB_LEVEL_DEFAULT : level, iov, n, out, err);
    case BO_CODEC_ZSTD:
        return zstd_compress(level == 0 ? BO_ZSTD_LEVEL_DEFAULT : level, iov, n, out, err);
    }
    return bo_errf(err, BO_EINVAL, "compress: unknown codec %d", (int)codec);
}

int bo_codec_compress(enum bo_codec codec, int level, const uint8_t *in, size_t len,
                      struct bo_buf *out, struct bo_err *err)
{
    struct iovec iov = {(void *)in, len};
    return bo_codec_compress_iov(codec, level, &iov, 1, out, err);
}

int bo_codec_decompress(enum bo_codec codec, const uint8_t *in, size_t len, size_t expected,
                        struct bo_buf *out, struct bo_err *err)
{
    switch (codec) {
    case BO_CODEC_NONE:
        if (len != expected) {
            return bo_errf(err, BO_ECORRUPT, "copy: %zu bytes, %zu were recorded", len, expected);
        }
        if (bo_buf_append(out, in, len) != BO_OK) {
            return bo_errf(err, BO_ENOMEM, "copy: out of memory (%zu bytes)", len);
        }
        return BO_OK;
    case BO_CODEC_ZLIB:
        return zlib_decompress(in, len, expected, out, err);
    case BO_CODEC_ZSTD:
        return zstd_decompress(in, len, expected, out, err);
    }
    return bo_errf(err, BO_ECORRUPT, "decompress: unknown codec %d", (int)codec);
}
