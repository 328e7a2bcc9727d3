/*
 * test_iodefer.c - io_destroy(2) on the deferring thread, every other
 * system call through libc unchanged (storage/iodefer.h). Real kernel AIO
 * contexts; a context is gone when io_getevents(2) on it says EINVAL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <linux/aio_abi.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/iodefer.h"

static aio_context_t setup_ctx(void)
{
    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, 1, &ctx) != 0) {
        fail_msg("io_setup: %s", strerror(errno));
    }
    return ctx;
}

static bool ctx_exists(aio_context_t ctx)
{
    long rv = syscall(SYS_io_getevents, ctx, 0, 0, NULL, NULL);
    return !(rv == -1 && errno == EINVAL);
}

/* Turned off (BO_IODEFER=0), io_destroy runs where it is called: the
 * context is gone when the call returns. In a child, before this process
 * starts the thread. */
static void test_off(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("BO_IODEFER", "0", 1);
        bo_iodefer_init();
        aio_context_t ctx = setup_ctx();
        int ok =
            syscall(SYS_io_destroy, ctx) == 0 && !ctx_exists(ctx) && bo_iodefer_destroyed() == 0;
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Deferred: io_destroy returns 0 at once, and the thread destroys every
 * context it was given. */
static void test_deferred(void **state)
{
    (void)state;
    bo_iodefer_init();
    uint64_t before = bo_iodefer_destroyed();
    aio_context_t ctx[20];
    for (int i = 0; i < 20; i++) {
        ctx[i] = setup_ctx();
    }
    for (int i = 0; i < 20; i++) {
        assert_int_equal(syscall(SYS_io_destroy, ctx[i]), 0);
    }
    assert_true(bo_iodefer_drain(10000));
    assert_int_equal(bo_iodefer_destroyed() - before, 20);
    for (int i = 0; i < 20; i++) {
        assert_false(ctx_exists(ctx[i]));
    }
}

/* More contexts at once than the ring holds: the overflow is destroyed by
 * its caller, and none is left behind. */
static void test_ring_full(void **state)
{
    (void)state;
    bo_iodefer_init();
    enum { N = 100 };
    aio_context_t ctx[N];
    for (int i = 0; i < N; i++) {
        ctx[i] = setup_ctx();
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(syscall(SYS_io_destroy, ctx[i]), 0);
    }
    assert_true(bo_iodefer_drain(10000));
    for (int i = 0; i < N; i++) {
        assert_false(ctx_exists(ctx[i]));
    }
}

/* Every other number reaches the kernel with its arguments, its result and
 * errno as libc gives them. */
static void test_forwarded(void **state)
{
    (void)state;
    bo_iodefer_init();
    assert_int_equal(syscall(SYS_gettid), gettid());
    errno = 0;
    assert_int_equal(syscall(SYS_close, -1), -1);
    assert_int_equal(errno, EBADF);
    int fds[2];
    assert_int_equal(syscall(SYS_pipe2, fds, 0), 0);
    assert_int_equal(syscall(SYS_write, fds[1], "abc", 3), 3);
    char buf[4] = {0};
    assert_int_equal(syscall(SYS_read, fds[0], buf, sizeof(buf)), 3);
    assert_string_equal(buf, "abc");
    close(fds[0]);
    close(fds[1]);
    /* A bad context: deferred, so the caller hears 0; nothing is counted. */
    uint64_t before = bo_iodefer_destroyed();
    assert_int_equal(syscall(SYS_io_destroy, (aio_context_t)12345), 0);
    assert_true(bo_iodefer_drain(10000));
    assert_int_equal(bo_iodefer_destroyed(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_deferred),
        cmocka_unit_test(test_ring_full),
        cmocka_unit_test(test_forwarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
