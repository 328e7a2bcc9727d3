/*
 * test_codec.c - compression round trips and corruption detection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/mem.h"
#include "storage/codec.h"

static const enum bo_codec all_codecs[] = {BO_CODEC_NONE, BO_CODEC_ZLIB, BO_CODEC_ZSTD};

/* Compressible but not trivial: text-like records with a counter. */
static void make_input(struct bo_buf *b, size_t n)
{
    uint32_t x = 12345;
    while (b->len < n) {
        char line[64];
        x = x * 1103515245u + 12345u;
        int k = snprintf(line, sizeof(line), "task-%u role/env/job host%u RUNNING\n", x % 1000,
                         (x >> 10) % 50);
        size_t take = (size_t)k < n - b->len ? (size_t)k : n - b->len;
        assert_int_equal(bo_buf_append(b, line, take), BO_OK);
    }
}

static void roundtrip_one(enum bo_codec c, size_t n)
{
    struct bo_buf in = BO_BUF_INIT, z = BO_BUF_INIT, out = BO_BUF_INIT;
    struct bo_err err = BO_ERR_INIT;
    make_input(&in, n);
    assert_int_equal(bo_codec_compress(c, 0, in.data, in.len, &z, &err), BO_OK);
    if (c != BO_CODEC_NONE && n > 1000) {
        assert_true(z.len < in.len / 2);
    }
    assert_int_equal(bo_codec_decompress(c, z.data, z.len, in.len, &out, &err), BO_OK);
    assert_int_equal(out.len, in.len);
    if (n > 0) {
        assert_memory_equal(out.data, in.data, in.len);
    }
    bo_buf_release(&in);
    bo_buf_release(&z);
    bo_buf_release(&out);
}

static void test_roundtrip(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 100, 65536, 1 << 20, (9u << 20) + 17};
    for (size_t i = 0; i < sizeof(all_codecs) / sizeof(all_codecs[0]); i++) {
        for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
            roundtrip_one(all_codecs[i], sizes[j]);
        }
    }
}

static void test_iov_equals_concat(void **state)
{
    (void)state;
    struct bo_buf in = BO_BUF_INIT;
    make_input(&in, 300000);
    for (size_t i = 0; i < 3; i++) {
        struct bo_buf z = BO_BUF_INIT, out = BO_BUF_INIT;
        struct bo_err err = BO_ERR_INIT;
        struct iovec iov[4] = {
            {in.data, 10}, {in.data + 10, 0}, {in.data + 10, 200000}, {in.data + 200010, 99990}};
        assert_int_equal(bo_codec_compress_iov(all_codecs[i], 0, iov, 4, &z, &err), BO_OK);
        assert_int_equal(bo_codec_decompress(all_codecs[i], z.data, z.len, in.len, &out, &err),
                         BO_OK);
        assert_memory_equal(out.data, in.data, in.len);
        bo_buf_release(&z);
        bo_buf_release(&out);
    }
    bo_buf_release(&in);
}

static void test_appends(void **state)
{
    (void)state;
    struct bo_buf z = BO_BUF_INIT, out = BO_BUF_INIT;
    struct bo_err err = BO_ERR_INIT;
    const char *msg = "hello hello hello hello";
    assert_int_equal(bo_buf_append(&z, "XY", 2), BO_OK);
    assert_int_equal(
        bo_codec_compress(BO_CODEC_ZSTD, 0, (const uint8_t *)msg, strlen(msg), &z, &err), BO_OK);
    assert_memory_equal(z.data, "XY", 2);
    assert_int_equal(bo_buf_append(&out, "AB", 2), BO_OK);
    assert_int_equal(
        bo_codec_decompress(BO_CODEC_ZSTD, z.data + 2, z.len - 2, strlen(msg), &out, &err), BO_OK);
    assert_int_equal(out.len, 2 + strlen(msg));
    assert_memory_equal(out.data + 2, msg, strlen(msg));
    bo_buf_release(&z);
    bo_buf_release(&out);
}

static void test_size_mismatch(void **state)
{
    (void)state;
    struct bo_buf in = BO_BUF_INIT;
    make_input(&in, 50000);
    for (size_t i = 0; i < 3; i++) {
        struct bo_buf z = BO_BUF_INIT, out = BO_BUF_INIT;
        struct bo_err err = BO_ERR_INIT;
        assert_int_equal(bo_codec_compress(all_codecs[i], 0, in.data, in.len, &z, &err), BO_OK);
        const size_t wrong[] = {0, in.len - 1, in.len + 1, in.len * 2, (size_t)1 << 40};
        for (size_t j = 0; j < sizeof(wrong) / sizeof(wrong[0]); j++) {
            struct bo_err e2 = BO_ERR_INIT;
            assert_int_equal(bo_codec_decompress(all_codecs[i], z.data, z.len, wrong[j], &out, &e2),
                             BO_ECORRUPT);
            assert_int_equal(out.len, 0);
            assert_true(strlen(e2.msg) > 0);
        }
        bo_buf_release(&z);
        bo_buf_release(&out);
    }
    bo_buf_release(&in);
}

static void test_corruption(void **state)
{
    (void)state;
    struct bo_buf in = BO_BUF_INIT;
    make_input(&in, 200000);
    for (size_t i = 1; i < 3; i++) {
        enum bo_codec c = all_codecs[i];
        struct bo_buf z = BO_BUF_INIT;
        struct bo_err err = BO_ERR_INIT;
        assert_int_equal(bo_codec_compress(c, 0, in.data, in.len, &z, &err), BO_OK);
        /* Flip a bit at many places: always detected (zlib's Adler-32, zstd's
         * XXH64 content checksum), never a crash. */
        for (size_t off = 0; off < z.len; off += 1 + z.len / 97) {
            struct bo_buf out = BO_BUF_INIT;
            struct bo_err e2 = BO_ERR_INIT;
            z.data[off] ^= 0x10;
            int rv = bo_codec_decompress(c, z.data, z.len, in.len, &out, &e2);
            z.data[off] ^= 0x10;
            assert_int_equal(rv, BO_ECORRUPT);
            bo_buf_release(&out);
        }
        /* Truncation at many lengths. */
        for (size_t n = 0; n < z.len; n += 1 + z.len / 50) {
            struct bo_buf out = BO_BUF_INIT;
            struct bo_err e2 = BO_ERR_INIT;
            assert_int_equal(bo_codec_decompress(c, z.data, n, in.len, &out, &e2), BO_ECORRUPT);
            bo_buf_release(&out);
        }
        /* Trailing garbage. */
        assert_int_equal(bo_buf_append(&z, "garbage", 7), BO_OK);
        struct bo_buf out = BO_BUF_INIT;
        assert_int_equal(bo_codec_decompress(c, z.data, z.len, in.len, &out, &err), BO_ECORRUPT);
        bo_buf_release(&out);
        bo_buf_release(&z);
    }
    bo_buf_release(&in);
}

static void test_bad_args(void **state)
{
    (void)state;
    struct bo_buf z = BO_BUF_INIT;
    struct bo_err err = BO_ERR_INIT;
    enum bo_codec c;
    assert_int_equal(bo_codec_parse("zstd", &c), BO_OK);
    assert_int_equal(c, BO_CODEC_ZSTD);
    assert_int_equal(bo_codec_parse("zlib", &c), BO_OK);
    assert_int_equal(c, BO_CODEC_ZLIB);
    assert_int_equal(bo_codec_parse("none", &c), BO_OK);
    assert_int_equal(c, BO_CODEC_NONE);
    assert_int_equal(bo_codec_parse("lz4", &c), BO_EINVAL);
    assert_string_equal(bo_codec_name(BO_CODEC_ZLIB), "zlib");
    assert_int_equal(bo_codec_compress(BO_CODEC_ZLIB, 12, (const uint8_t *)"x", 1, &z, &err),
                     BO_EINVAL);
    assert_int_equal(bo_codec_compress((enum bo_codec)9, 0, (const uint8_t *)"x", 1, &z, &err),
                     BO_EINVAL);
    assert_int_equal(bo_codec_decompress((enum bo_codec)9, (const uint8_t *)"x", 1, 1, &z, &err),
                     BO_ECORRUPT);
    assert_int_equal(
        bo_codec_decompress(BO_CODEC_ZSTD, (const uint8_t *)"junkjunkjunk", 12, 5, &z, &err),
        BO_ECORRUPT);
    assert_int_equal(
        bo_codec_decompress(BO_CODEC_ZLIB, (const uint8_t *)"junkjunkjunk", 12, 5, &z, &err),
        BO_ECORRUPT);
    assert_int_equal(z.len, 0);
    bo_buf_release(&z);
}

static void test_zlib_is_a_zlib_stream(void **state)
{
    (void)state;
    struct bo_buf z = BO_BUF_INIT;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_codec_compress(BO_CODEC_ZLIB, 0, (const uint8_t *)"aaaa", 4, &z, &err),
                     BO_OK);
    /* RFC 1950: CM=8 (deflate) in the low nibble, header a multiple of 31. */
    assert_int_equal(z.data[0] & 0x0f, 8);
    assert_int_equal(((z.data[0] << 8) | z.data[1]) % 31, 0);
    bo_buf_release(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_iov_equals_concat),
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_size_mismatch),
        cmocka_unit_test(test_corruption),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_zlib_is_a_zlib_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
