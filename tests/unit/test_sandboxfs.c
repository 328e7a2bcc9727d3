/*
 * test_sandboxfs.c - confined sandbox access: escapes by `..`, absolute paths
 * and symlinks (to /etc, to a sibling named like the sandbox with a suffix),
 * symlinks that stay inside, listing, reads past the end, tails of large and
 * sparse files, FIFOs. Escape checks run against both the openat2 path and
 * the realpath() fallback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "host/sandboxfs.h"

/* snprintf into an array, failing the test on truncation. */
#define PATHF(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

struct fixture {
    char base[PATH_MAX];
    char sandbox[PATH_MAX];
    char sibling[PATH_MAX];
};

static void write_text(const char *dir, const char *name, const char *text)
{
    char p[PATH_MAX];
    PATHF(p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(p, 0644), 0);
}

static void symlink_in(const char *dir, const char *name, const char *target)
{
    char p[PATH_MAX];
    PATHF(p, "%s/%s", dir, name);
    assert_int_equal(symlink(target, p), 0);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    PATHF(fx->base, "/tmp/bo-sbx-XXXXXX");
    assert_non_null(mkdtemp(fx->base));
    PATHF(fx->sandbox, "%s/sandbox", fx->base);
    PATHF(fx->sibling, "%s/sandbox-other", fx->base);
    assert_int_equal(mkdir(fx->sandbox, 0755), 0);
    assert_int_equal(mkdir(fx->sibling, 0755), 0);
    write_text(fx->sibling, "secret", "top secret\n");

    char logs[PATH_MAX];
    PATHF(logs, "%s/logs", fx->sandbox);
    assert_int_equal(mkdir(logs, 0750), 0);
    write_text(fx->sandbox, "hello.txt", "hello world\n");
    write_text(logs, "stdout", "one\ntwo\nthree\n");
    write_text(logs, "noeol", "l1\nl2\nl3");

    char abs_secret[PATH_MAX];
    PATHF(abs_secret, "%s/secret", fx->sibling);
    symlink_in(fx->sandbox, "etc", "/etc");
    symlink_in(fx->sandbox, "sib", "../sandbox-other");
    symlink_in(fx->sandbox, "sib_abs", abs_secret);
    symlink_in(fx->sandbox, "inner", "logs/stdout");
    symlink_in(fx->sandbox, "inner_up", "logs/../hello.txt");
    symlink_in(logs, "root_link", "..");
    symlink_in(logs, "out_link", "../../sandbox-other/secret");
    symlink_in(fx->sandbox, "loop", "loop");
    symlink_in(fx->sandbox, "dangling", "does-not-exist");

    char fifo[PATH_MAX];
    PATHF(fifo, "%s/fifo", fx->sandbox);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[PATH_MAX + 32];
    PATHF(cmd, "rm -rf '%s'", fx->base);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

typedef int (*open_fn)(const char *, const char *, int, int *, struct bo_err *);

static void expect_escape_with(open_fn fn, const char *sandbox, const char *rel)
{
    struct bo_err err = BO_ERR_INIT;
    int fd = -1;
    int rv = fn(sandbox, rel, 0, &fd, &err);
    if (rv != BO_EINVAL) {
        print_message("'%s': rv %d (%s)\n", rel, rv, bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_EINVAL);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(err.msg, BO_SBX_ESCAPE_MSG));
}

static void expect_escape(const char *sandbox, const char *rel)
{
    expect_escape_with(bo_sbx_open, sandbox, rel);
    expect_escape_with(bo_sbx__open_fallback, sandbox, rel);
}

/* Opens `rel` both ways and checks the content starts with `want`. */
static void expect_inside(const char *sandbox, const char *rel, const char *want)
{
    open_fn fns[] = {bo_sbx_open, bo_sbx__open_fallback};
    for (size_t i = 0; i < 2; i++) {
        struct bo_err err = BO_ERR_INIT;
        int fd = -1;
        int rv = fns[i](sandbox, rel, 0, &fd, &err);
        if (rv != BO_OK) {
            print_message("'%s' (%zu): %s\n", rel, i, bo_err_msg(&err, rv));
        }
        assert_int_equal(rv, BO_OK);
        char buf[64] = {0};
        assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
        close(fd);
        assert_memory_equal(buf, want, strlen(want));
    }
}

static void test_escapes(void **state)
{
    struct fixture *fx = *state;
    const char *bad[] = {
        "..",
        "../sandbox-other/secret",
        "a/../../x",
        "logs/../../sandbox-other/secret",
        "./../sandbox",
        "/etc/passwd",
        "/",
        "etc",
        "etc/passwd",
        "sib",
        "sib/secret",
        "sib_abs",
        "logs/out_link",
        "logs/root_link/../sandbox-other/secret",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_escape(fx->sandbox, bad[i]);
    }
    /* The HTTP layer sees the same refusal through every entry point. */
    struct bo_err err = BO_ERR_INIT;
    json_t *list = NULL;
    assert_int_equal(bo_sbx_list(fx->sandbox, "sib", &list, &err), BO_EINVAL);
    assert_null(list);
    struct bo_buf b = BO_BUF_INIT;
    assert_int_equal(bo_sbx_read(fx->sandbox, "etc/passwd", 0, 100, &b, NULL, &err), BO_EINVAL);
    assert_int_equal(bo_sbx_tail(fx->sandbox, "sib_abs", 10, 100, &b, &err), BO_EINVAL);
    assert_int_equal(b.len, 0);
    bo_buf_release(&b);
}

static void test_inside(void **state)
{
    struct fixture *fx = *state;
    expect_inside(fx->sandbox, "hello.txt", "hello");
    expect_inside(fx->sandbox, "./hello.txt", "hello");
    expect_inside(fx->sandbox, "logs/../hello.txt", "hello");
    expect_inside(fx->sandbox, "logs//stdout", "one");
    expect_inside(fx->sandbox, "inner", "one");
    expect_inside(fx->sandbox, "inner_up", "hello");
    expect_inside(fx->sandbox, "logs/root_link/hello.txt", "hello");

    /* missing, dangling, loops */
    struct bo_err err = BO_ERR_INIT;
    int fd = -1;
    assert_int_equal(bo_sbx_open(fx->sandbox, "nope.txt", 0, &fd, &err), BO_ENOTFOUND);
    assert_int_equal(bo_sbx__open_fallback(fx->sandbox, "nope.txt", 0, &fd, &err), BO_ENOTFOUND);
    assert_int_equal(bo_sbx_open(fx->sandbox, "dangling", 0, &fd, &err), BO_ENOTFOUND);
    assert_int_equal(bo_sbx_open(fx->sandbox, "loop", 0, &fd, &err), BO_EINVAL);
    assert_int_equal(fd, -1);
    /* a missing sandbox is not found either */
    assert_int_equal(bo_sbx_open("/nonexistent-sandbox-dir", "x", 0, &fd, &err), BO_ENOTFOUND);
}

static json_t *find_entry(json_t *list, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0) {
            return e;
        }
    }
    return NULL;
}

static void test_list(void **state)
{
    struct fixture *fx = *state;
    struct bo_err err = BO_ERR_INIT;
    json_t *list = NULL;
    int rv = bo_sbx_list(fx->sandbox, "", &list, &err);
    assert_int_equal(rv, BO_OK);
    const char *want[] = {"dangling", "etc",  "fifo", "hello.txt", "inner",
                          "inner_up", "logs", "loop", "sib",       "sib_abs"};
    assert_int_equal(json_array_size(list), sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        json_t *e = json_array_get(list, i);
        assert_string_equal(json_string_value(json_object_get(e, "name")), want[i]);
    }
    json_t *hello = find_entry(list, "hello.txt");
    assert_string_equal(json_string_value(json_object_get(hello, "type")), "file");
    assert_int_equal(json_integer_value(json_object_get(hello, "size")), 12);
    assert_string_equal(json_string_value(json_object_get(hello, "mode")), "0644");
    assert_true(json_integer_value(json_object_get(hello, "mtime_ms")) > 1500000000000LL);
    json_t *logs = find_entry(list, "logs");
    assert_string_equal(json_string_value(json_object_get(logs, "type")), "dir");
    assert_string_equal(json_string_value(json_object_get(logs, "mode")), "0750");
    assert_string_equal(json_string_value(json_object_get(find_entry(list, "etc"), "type")),
                        "link");
    assert_string_equal(json_string_value(json_object_get(find_entry(list, "fifo"), "type")),
                        "other");
    json_decref(list);

    /* "." is the root too; subdirectories; symlinked directories inside */
    assert_int_equal(bo_sbx_list(fx->sandbox, ".", &list, &err), BO_OK);
    assert_int_equal(json_array_size(list), sizeof(want) / sizeof(want[0]));
    json_decref(list);
    assert_int_equal(bo_sbx_list(fx->sandbox, "logs", &list, &err), BO_OK);
    assert_int_equal(json_array_size(list), 4);
    json_decref(list);
    assert_int_equal(bo_sbx_list(fx->sandbox, "logs/root_link", &list, &err), BO_OK);
    assert_int_equal(json_array_size(list), sizeof(want) / sizeof(want[0]));
    json_decref(list);

    list = NULL;
    rv = bo_sbx_list(fx->sandbox, "hello.txt", &list, &err);
    assert_int_equal(rv, BO_EINVAL);
    assert_non_null(strstr(err.msg, "not a directory"));
    assert_int_equal(bo_sbx_list(fx->sandbox, "nothere", &list, &err), BO_ENOTFOUND);
    assert_null(list);

    char empty[PATH_MAX];
    PATHF(empty, "%s/empty", fx->sandbox);
    assert_int_equal(mkdir(empty, 0755), 0);
    assert_int_equal(bo_sbx_list(fx->sandbox, "empty", &list, &err), BO_OK);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

static void test_read(void **state)
{
    struct fixture *fx = *state;
    struct bo_err err = BO_ERR_INIT;
    struct bo_buf b = BO_BUF_INIT;
    uint64_t size = 0;
    assert_int_equal(bo_sbx_read(fx->sandbox, "hello.txt", 0, 5, &b, &size, &err), BO_OK);
    assert_int_equal(size, 12);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "hello", 5);

    /* appends; stops at the end */
    assert_int_equal(bo_sbx_read(fx->sandbox, "hello.txt", 6, 100, &b, &size, &err), BO_OK);
    assert_int_equal(b.len, 11);
    assert_memory_equal(b.data, "helloworld\n", 11);

    /* offset at and past the end: nothing, not an error */
    size = 0;
    assert_int_equal(bo_sbx_read(fx->sandbox, "hello.txt", 12, 100, &b, &size, &err), BO_OK);
    assert_int_equal(size, 12);
    assert_int_equal(bo_sbx_read(fx->sandbox, "hello.txt", 1000000, 100, &b, &size, &err), BO_OK);
    assert_int_equal(b.len, 11);
    assert_int_equal(bo_sbx_read(fx->sandbox, "hello.txt", 0, 0, &b, NULL, &err), BO_OK);
    assert_int_equal(b.len, 11);

    /* through an inside symlink; not a directory, not a FIFO (and no hang) */
    bo_buf_release(&b);
    assert_int_equal(bo_sbx_read(fx->sandbox, "inner", 4, 3, &b, NULL, &err), BO_OK);
    assert_memory_equal(b.data, "two", 3);
    assert_int_equal(bo_sbx_read(fx->sandbox, "logs", 0, 10, &b, NULL, &err), BO_EINVAL);
    assert_int_equal(bo_sbx_read(fx->sandbox, "fifo", 0, 10, &b, NULL, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(bo_sbx_read(fx->sandbox, "missing", 0, 10, &b, NULL, &err), BO_ENOTFOUND);
    assert_int_equal(b.len, 3);
    bo_buf_release(&b);
}

static void tail_is(const char *sandbox, const char *rel, size_t lines, size_t max,
                    const char *want)
{
    struct bo_err err = BO_ERR_INIT;
    struct bo_buf b = BO_BUF_INIT;
    int rv = bo_sbx_tail(sandbox, rel, lines, max, &b, &err);
    if (rv != BO_OK) {
        print_message("tail '%s': %s\n", rel, bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    assert_int_equal(b.len, strlen(want));
    if (b.len > 0) {
        assert_memory_equal(b.data, want, b.len);
    }
    bo_buf_release(&b);
}

static void test_tail_small(void **state)
{
    struct fixture *fx = *state;
    tail_is(fx->sandbox, "logs/stdout", 2, 1000, "two\nthree\n");
    tail_is(fx->sandbox, "logs/stdout", 1, 1000, "three\n");
    tail_is(fx->sandbox, "logs/stdout", 3, 1000, "one\ntwo\nthree\n");
    tail_is(fx->sandbox, "logs/stdout", 100, 1000, "one\ntwo\nthree\n");
    tail_is(fx->sandbox, "logs/stdout", 100, 8, "o\nthree\n");
    tail_is(fx->sandbox, "logs/stdout", 0, 1000, "");
    tail_is(fx->sandbox, "logs/stdout", 5, 0, "");
    tail_is(fx->sandbox, "logs/noeol", 2, 1000, "l2\nl3");
    tail_is(fx->sandbox, "logs/noeol", 1, 1000, "l3");
    tail_is(fx->sandbox, "inner", 1, 1000, "three\n");

    write_text(fx->sandbox, "empty", "");
    tail_is(fx->sandbox, "empty", 10, 1000, "");
    write_text(fx->sandbox, "newlines", "\n\n\n");
    tail_is(fx->sandbox, "newlines", 2, 1000, "\n\n");
}

/* A sparse 4 GiB file with three short lines at the end: reading it whole
 * would take far longer than the test's timeout allows. */
static void test_tail_large(void **state)
{
    struct fixture *fx = *state;
    char p[PATH_MAX];
    PATHF(p, "%s/big.log", fx->sandbox);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    const off_t hole = (off_t)4 << 30;
    assert_int_equal(ftruncate(fd, hole), 0);
    const char *tail = "first line\nsecond line\nthird line\n";
    assert_int_equal(pwrite(fd, tail, strlen(tail), hole), (ssize_t)strlen(tail));
    close(fd);
    tail_is(fx->sandbox, "big.log", 2, SIZE_MAX, "second line\nthird line\n");
    /* The third line from the end runs back through the hole: max_bytes cuts it. */
    struct bo_err err = BO_ERR_INIT;
    struct bo_buf b = BO_BUF_INIT;
    assert_int_equal(bo_sbx_tail(fx->sandbox, "big.log", 3, 4 << 20, &b, &err), BO_OK);
    assert_int_equal(b.len, 4 << 20);
    assert_memory_equal(b.data + b.len - strlen(tail), tail, strlen(tail));
    bo_buf_release(&b);

    /* A dense file bigger than one scan chunk, few newlines, max_bytes cut. */
    PATHF(p, "%s/dense.log", fx->sandbox);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (int i = 0; i < 300000; i++) {
        fputc('x', f);
    }
    fputs("\nalpha\n", f);
    for (int i = 0; i < 200000; i++) {
        fputc('y', f);
    }
    fputs("\nomega\n", f);
    assert_int_equal(fclose(f), 0);

    assert_int_equal(bo_sbx_tail(fx->sandbox, "dense.log", 2, SIZE_MAX, &b, &err), BO_OK);
    assert_int_equal(b.len, 200000 + 1 + 6);
    assert_memory_equal(b.data + b.len - 7, "\nomega\n", 7);
    assert_int_equal(b.data[0], 'y');
    bo_buf_release(&b);
    assert_int_equal(bo_sbx_tail(fx->sandbox, "dense.log", 3, SIZE_MAX, &b, &err), BO_OK);
    assert_memory_equal(b.data, "alpha\n", 6);
    bo_buf_release(&b);
    /* max_bytes wins over lines */
    assert_int_equal(bo_sbx_tail(fx->sandbox, "dense.log", 1000, 100000, &b, &err), BO_OK);
    assert_int_equal(b.len, 100000);
    bo_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_large, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
