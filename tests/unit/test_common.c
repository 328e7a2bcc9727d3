/* Unit tests for src/common: errors, allocator, buffers, wire helpers, files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"
#include "common/mem.h"
#include "common/pbwire.h"

static void err_names_and_messages(void **state)
{
    (void)state;
    assert_string_equal(bo_errname(BO_ECORRUPT), "BO_ECORRUPT");
    assert_string_equal(bo_strerror(BO_ENOSPC), "no space left on device");
    assert_string_equal(bo_errname(-999), "BO_EUNKNOWN");
    assert_int_equal(bo_err_from_errno(ENOSPC), BO_ENOSPC);
    assert_int_equal(bo_err_from_errno(ENOENT), BO_ENOTFOUND);

    struct bo_err err = BO_ERR_INIT;
    assert_string_equal(bo_err_msg(&err, BO_EIO), "input/output error");
    assert_int_equal(bo_errf(&err, BO_EIO, "read '%s': %s", "f", "boom"), BO_EIO);
    assert_string_equal(err.msg, "read 'f': boom");
    assert_int_equal(bo_err_wrapf(&err, BO_EIO, "load %d", 3), BO_EIO);
    assert_string_equal(err.msg, "load 3: read 'f': boom");
    /* NULL err is allowed and returns the code. */
    assert_int_equal(bo_errf(NULL, BO_EINVAL, "x"), BO_EINVAL);

    /* Long messages are truncated, never overflow. */
    char big[2 * BO_ERR_MSG_SIZE];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    bo_errf(&err, BO_EIO, "%s", big);
    assert_int_equal(strlen(err.msg), BO_ERR_MSG_SIZE - 1);
    bo_err_wrapf(&err, BO_EIO, "%s", big);
    assert_int_equal(strlen(err.msg), BO_ERR_MSG_SIZE - 1);
}

static void buf_grows_and_survives_oom(void **state)
{
    (void)state;
    struct bo_buf b = BO_BUF_INIT;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(bo_buf_append(&b, "abc", 3), BO_OK);
    }
    assert_int_equal(b.len, 3000);
    assert_memory_equal(b.data + 2997, "abc", 3);
    size_t cap = b.cap;
    /* An allocation failure leaves the contents intact. */
    bo_mem_fail_after(0);
    assert_int_equal(bo_buf_reserve(&b, cap * 4), BO_ENOMEM);
    bo_mem_fail_after(-1);
    assert_int_equal(b.len, 3000);
    assert_memory_equal(b.data, "abcabc", 6);
    size_t len;
    uint8_t *p = bo_buf_detach(&b, &len);
    assert_int_equal(len, 3000);
    assert_null(b.data);
    bo_free(p);
    /* Overflowing sizes are refused, not wrapped. */
    assert_null(bo_reallocarray(NULL, SIZE_MAX / 2, 3));
}

static void pbwire_roundtrip_and_corruption(void **state)
{
    (void)state;
    struct bo_buf b = BO_BUF_INIT;
    assert_int_equal(bo_pb_put_uint(&b, 2, 300), BO_OK);
    assert_int_equal(bo_pb_put_bytes(&b, 3, "hello", 5), BO_OK);
    assert_int_equal(bo_pb_put_uint(&b, 100000, UINT64_MAX), BO_OK);
    /* Field 2 varint 300 is 0x10 0xac 0x02 in the protobuf encoding. */
    assert_int_equal(b.data[0], 0x10);
    assert_int_equal(b.data[1], 0xac);
    assert_int_equal(b.data[2], 0x02);

    struct bo_pb_reader r;
    struct bo_pb_field f;
    bo_pb_reader_init(&r, b.data, b.len);
    assert_int_equal(bo_pb_next(&r, &f), 1);
    assert_int_equal(f.number, 2);
    assert_int_equal(f.varint, 300);
    assert_int_equal(bo_pb_next(&r, &f), 1);
    assert_int_equal(f.number, 3);
    assert_int_equal(f.wire_type, BO_PB_LEN);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.data, "hello", 5);
    assert_int_equal(bo_pb_next(&r, &f), 1);
    assert_int_equal(f.number, 100000);
    assert_true(f.varint == UINT64_MAX);
    assert_int_equal(bo_pb_next(&r, &f), 0);

    /* Every truncation of the last two fields is detected. */
    for (size_t cut = 4; cut < b.len; cut++) {
        bo_pb_reader_init(&r, b.data, cut);
        int rv;
        int fields = 0;
        while ((rv = bo_pb_next(&r, &f)) == 1) {
            fields++;
        }
        assert_true(rv == BO_ECORRUPT || (rv == 0 && fields < 3));
        if (cut > 3 && cut < 10) {
            assert_int_equal(rv, BO_ECORRUPT);
        }
    }
    /* A length that points past the end is corrupt. */
    uint8_t bad[] = {0x1a, 0x7f, 'x'};
    bo_pb_reader_init(&r, bad, sizeof(bad));
    assert_int_equal(bo_pb_next(&r, &f), BO_ECORRUPT);
    /* Wire types 3, 4 (groups), 6 and 7 do not exist for us. */
    uint8_t group[] = {0x0b};
    bo_pb_reader_init(&r, group, sizeof(group));
    assert_int_equal(bo_pb_next(&r, &f), BO_ECORRUPT);
    bo_buf_release(&b);
}

static void hashes_are_stable(void **state)
{
    (void)state;
    struct bo_hash128 a = bo_hash128("config", 6), b = bo_hash128("config", 6),
                      c = bo_hash128("confih", 6);
    assert_true(a.lo == b.lo && a.hi == b.hi);
    assert_false(a.lo == c.lo && a.hi == c.hi);
    /* CRC-32 of "123456789" is the standard check value. */
    assert_int_equal(bo_crc32(0, "123456789", 9), 0xcbf43926u);
    assert_int_equal(bo_crc32(bo_crc32(0, "1234", 4), "56789", 5), 0xcbf43926u);
}

static void fs_atomic_write_and_dirs(void **state)
{
    (void)state;
    char dir[] = "/tmp/bo-test-common-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct bo_err err = BO_ERR_INIT;
    char sub[256];
    snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
    assert_int_equal(bo_fs_mkdirs(sub, &err), BO_OK);
    assert_int_equal(bo_fs_dir_empty(sub, &err), BO_OK);

    struct iovec iov[2] = {{(void *)"hello ", 6}, {(void *)"world", 5}};
    assert_int_equal(bo_fs_write_atomic(sub, "f", "temp_", iov, 2, &err), BO_OK);
    char path[300];
    snprintf(path, sizeof(path), "%s/f", sub);
    uint8_t *data;
    size_t len;
    assert_int_equal(bo_fs_read_file(path, &data, &len, &err), BO_OK);
    assert_int_equal(len, 11);
    assert_memory_equal(data, "hello world", 11);
    bo_free(data);
    /* No temporary file is left behind, and the directory is not empty now. */
    snprintf(path, sizeof(path), "%s/temp_f", sub);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(bo_fs_dir_empty(sub, &err), BO_ENOTEMPTY);
    assert_non_null(strstr(err.msg, "'f'"));

    /* Overwrite replaces the content whole. */
    struct iovec iov2[1] = {{(void *)"x", 1}};
    assert_int_equal(bo_fs_write_atomic(sub, "f", "temp_", iov2, 1, &err), BO_OK);
    snprintf(path, sizeof(path), "%s/f", sub);
    assert_int_equal(bo_fs_read_file(path, &data, &len, &err), BO_OK);
    assert_int_equal(len, 1);
    bo_free(data);

    /* Writing into a missing directory fails with a message naming it, and
     * leaves nothing. */
    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(bo_fs_write_atomic(path, "f", "temp_", iov, 2, &err), BO_ENOTFOUND);
    assert_non_null(strstr(err.msg, "missing"));
    assert_int_equal(bo_fs_read_file(path, &data, &len, &err), BO_ENOTFOUND);

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(err_names_and_messages),
        cmocka_unit_test(buf_grows_and_survives_oom),
        cmocka_unit_test(pbwire_roundtrip_and_corruption),
        cmocka_unit_test(hashes_are_stable),
        cmocka_unit_test(fs_atomic_write_and_dirs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
