/*
 * test_pacewrite.c - big synchronous uv_fs_write calls written a piece at a
 * time, with the result of one call; everything else through libuv
 * unchanged (storage/pacewrite.h). Real files, a real libuv loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "storage/pacewrite.h"

struct fx {
    char dir[64];
    char path[128];
    uint8_t *data;
    size_t len;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bo-test-pacewrite-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        fail_msg("mkdtemp: %s", strerror(errno));
    }
    snprintf(f->path, sizeof(f->path), "%s/snapshot", f->dir);
    /* Three and a half pieces and an odd tail, in three buffers. */
    f->len = 3 * BO_PACEWRITE_CHUNK + BO_PACEWRITE_CHUNK / 2 + 13;
    f->data = malloc(f->len);
    for (size_t i = 0; i < f->len; i++) {
        f->data[i] = (uint8_t)(i * 7 + i / 4099);
    }
    bo_pacewrite_init();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f->data);
    free(f);
    return 0;
}

static void assert_file(struct fx *f, size_t len)
{
    int fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, len);
    uint8_t *got = malloc(len + 1);
    size_t seen = 0;
    ssize_t r;
    while ((r = read(fd, got + seen, len + 1 - seen)) > 0) {
        seen += (size_t)r;
    }
    assert_int_equal(seen, len);
    assert_memory_equal(got, f->data, len);
    free(got);
    close(fd);
}

static void split(struct fx *f, uv_buf_t bufs[3])
{
    size_t a = 100, b = 2 * BO_PACEWRITE_CHUNK + 5;
    bufs[0] = uv_buf_init((char *)f->data, (unsigned)a);
    bufs[1] = uv_buf_init((char *)f->data + a, (unsigned)b);
    bufs[2] = uv_buf_init((char *)f->data + a + b, (unsigned)(f->len - a - b));
}

/* One synchronous uv_fs_write of all the data, in three buffers, at offset
 * 0 of the file opened with `flags`; its result, and the request's in
 * `*result`. */
static int write_all(struct fx *f, int flags, ssize_t *result)
{
    int fd = open(f->path, flags | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    uv_buf_t bufs[3];
    split(f, bufs);
    uv_fs_t req;
    int rv = uv_fs_write(NULL, &req, fd, bufs, 3, 0, NULL);
    *result = req.result;
    uv_fs_req_cleanup(&req);
    close(fd);
    return rv;
}

/* As raft writes a snapshot: one synchronous call at an explicit offset.
 * Paced, every byte in place, the total in the result and the request. */
static void test_paced_at_offset(void **state)
{
    struct fx *f = *state;
    uint64_t before = bo_pacewrite_paced();
    ssize_t result;
    assert_int_equal(write_all(f, O_WRONLY, &result), f->len);
    assert_int_equal(result, f->len);
    assert_int_equal(bo_pacewrite_paced(), before + 1);
    assert_file(f, f->len);
}

/* Offset -1 writes at the file position and moves it past the data, as
 * one write would. */
static void test_paced_at_position(void **state)
{
    struct fx *f = *state;
    int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, f->data, 10), 10);
    uv_buf_t buf = uv_buf_init((char *)f->data + 10, (unsigned)(f->len - 20));
    uv_fs_t req;
    assert_int_equal(uv_fs_write(NULL, &req, fd, &buf, 1, -1, NULL), f->len - 20);
    uv_fs_req_cleanup(&req);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), f->len - 10);
    assert_int_equal(write(fd, f->data + f->len - 10, 10), 10);
    close(fd);
    assert_file(f, f->len);
}

/* Small writes, and any with a callback, are libuv's own. */
static void write_cb(uv_fs_t *req)
{
    *(ssize_t *)req->data = req->result;
    uv_fs_req_cleanup(req);
}

static void test_passed_through(void **state)
{
    struct fx *f = *state;
    uint64_t before = bo_pacewrite_paced();
    int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    uv_buf_t small = uv_buf_init((char *)f->data, BO_PACEWRITE_CHUNK);
    uv_fs_t req;
    assert_int_equal(uv_fs_write(NULL, &req, fd, &small, 1, 0, NULL), BO_PACEWRITE_CHUNK);
    uv_fs_req_cleanup(&req);

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_buf_t rest =
        uv_buf_init((char *)f->data + BO_PACEWRITE_CHUNK, (unsigned)(f->len - BO_PACEWRITE_CHUNK));
    ssize_t got = 0;
    req.data = &got;
    assert_int_equal(uv_fs_write(&loop, &req, fd, &rest, 1, BO_PACEWRITE_CHUNK, write_cb), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(got, f->len - BO_PACEWRITE_CHUNK);
    close(fd);
    assert_int_equal(bo_pacewrite_paced(), before);
    assert_file(f, f->len);
}

/* A piece that fails returns its error, as a failed write does. */
static void test_error(void **state)
{
    struct fx *f = *state;
    ssize_t result;
    assert_int_equal(write_all(f, O_RDONLY, &result), UV_EBADF);
    assert_int_equal(result, UV_EBADF);
}

/* A piece written short (here by the file size limit, as a full disk
 * would) makes the whole a short write: what the file holds, never the
 * total asked for. */
static void test_short(void **state)
{
    struct fx *f = *state;
    size_t limit = 3 * BO_PACEWRITE_CHUNK + BO_PACEWRITE_CHUNK / 4;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim.rlim_cur = limit;
    lim.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ssize_t result;
    int rv = write_all(f, O_WRONLY, &result);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(rv, limit);
    assert_int_equal(result, limit);
    assert_file(f, limit);
}

/* BO_PACEWRITE=0: one write, as libuv does it. */
static void test_off(void **state)
{
    struct fx *f = *state;
    uint64_t before = bo_pacewrite_paced();
    ssize_t result;
    setenv("BO_PACEWRITE", "0", 1);
    int rv = write_all(f, O_WRONLY, &result);
    unsetenv("BO_PACEWRITE");
    assert_int_equal(rv, f->len);
    assert_int_equal(bo_pacewrite_paced(), before);
    assert_file(f, f->len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_paced_at_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paced_at_position, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passed_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
