/*
 * test_cgroup.c - real cgroups: detection, a task group whose 32 MiB limit
 * gets a 256 MiB child OOM-killed, kill-all of a group with a fork, removal,
 * stale cleanup after an agent restart. When cgroups are not writable here
 * (unprivileged, read-only /sys) the tests print the reason and skip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/mem.h"
#include "host/cgroup.h"
#include "host/hostinfo.h"

/* snprintf into an array, failing the test on truncation. */
#define PATHF(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

static int setup(void **state)
{
    struct bo_cg *cg = calloc(1, sizeof(*cg));
    assert_non_null(cg);
    char tag[64];
    PATHF(tag, "test-%ld", (long)getpid());
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_cg_init(cg, tag, &err);
    assert_int_equal(rv, BO_OK);
    *state = cg;
    return 0;
}

static int teardown(void **state)
{
    struct bo_cg *cg = *state;
    if (bo_cg_available(cg)) {
        struct bo_err err = BO_ERR_INIT;
        size_t removed = 0;
        assert_int_equal(bo_cg_remove_stale(cg, NULL, 0, &removed, &err), BO_OK);
        int rv = bo_cg_remove_root(cg, &err);
        if (rv != BO_OK) {
            print_message("remove root: %s\n", bo_err_msg(&err, rv));
        }
        assert_int_equal(rv, BO_OK);
        assert_int_equal(access(cg->mem_root, F_OK), -1);
    }
    free(cg);
    return 0;
}

static void skip_unless_available(const struct bo_cg *cg)
{
    if (!bo_cg_available(cg)) {
        print_message("skipping: %s\n", bo_cg_describe(cg));
        skip();
    }
}

static void read_ctl(const char *dir, const char *name, char *out, size_t size)
{
    char p[PATH_MAX];
    PATHF(p, "%s/%s", dir, name);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    if (fgets(out, (int)size, f) == NULL) {
        out[0] = '\0';
    }
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

static void test_detect(void **state)
{
    struct bo_cg *cg = *state;
    print_message("%s\n", bo_cg_describe(cg));
    assert_true(strlen(bo_cg_describe(cg)) > 0);
    struct bo_err err = BO_ERR_INIT;
    struct bo_cg other;
    assert_int_equal(bo_cg_init(&other, "../evil", &err), BO_EINVAL);
    assert_int_equal(bo_cg_init(&other, "", &err), BO_EINVAL);
    if (!bo_cg_available(cg)) {
        assert_non_null(strstr(bo_cg_describe(cg), "falling back"));
        return;
    }
    struct stat st;
    assert_int_equal(stat(cg->mem_root, &st), 0);
    assert_int_equal(stat(cg->cpu_root, &st), 0);
    assert_non_null(strstr(cg->mem_root, "/borealis/test-"));
    if (cg->mode == BO_CG_V1) {
        assert_non_null(strstr(bo_cg_describe(cg), "cgroups v1 (memory at "));
    } else {
        assert_non_null(strstr(bo_cg_describe(cg), "cgroups v2 (unified at "));
    }
    /* a second init with the same tag reuses the root */
    assert_int_equal(bo_cg_init(&other, strrchr(cg->mem_root, '/') + 1, &err), BO_OK);
    assert_int_equal(other.mode, cg->mode);
    assert_string_equal(other.mem_root, cg->mem_root);
}

static void test_create_errors(void **state)
{
    struct bo_cg *cg = *state;
    skip_unless_available(cg);
    struct bo_err err = BO_ERR_INIT;
    struct bo_cg_task t;
    const char *bad[] = {"", ".", "..", "../x", "a/b", ".hidden", "sp ace"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bo_cg_task_create(cg, bad[i], 0, 0, &t, &err), BO_EINVAL);
    }
    assert_int_equal(bo_cg_task_create(cg, "t1", 0, -1, &t, &err), BO_EINVAL);
    assert_int_equal(bo_cg_task_create(cg, "t1", 0, NAN, &t, &err), BO_EINVAL);
    assert_int_equal(bo_cg_task_create(cg, "t1", 0, 1e9, &t, &err), BO_EINVAL);
    assert_int_equal(bo_cg_task_create(cg, "t1", 64 << 20, 0.0001, &t, &err), BO_OK);
    char v[64];
    if (cg->mode == BO_CG_V1) {
        read_ctl(t.cpu_dir, "cpu.cfs_quota_us", v, sizeof(v));
        assert_string_equal(v, "1000"); /* the 1 ms minimum */
    } else {
        read_ctl(t.cpu_dir, "cpu.max", v, sizeof(v));
        assert_string_equal(v, "1000 100000");
    }
    assert_int_equal(bo_cg_task_create(cg, "t1", 0, 0, &t, &err), BO_EEXIST);
    assert_int_equal(bo_cg_task_remove(cg, "t1", &err), BO_OK);
    assert_int_equal(access(t.mem_dir, F_OK), -1);
    /* removing twice is fine; listing a missing group is not */
    assert_int_equal(bo_cg_task_remove(cg, "t1", &err), BO_OK);
    pid_t *pids = NULL;
    size_t n = 0;
    assert_int_equal(bo_cg_task_pids(cg, "t1", &pids, &n, &err), BO_ENOTFOUND);
    assert_int_equal(bo_cg_task_kill_all(cg, "t1", &err), BO_OK);
}

/* Child: join, then allocate and touch 256 MiB. Exit 0 if it survived. */
static void oom_child(const struct bo_cg *cg)
{
    struct bo_err err = BO_ERR_INIT;
    if (bo_cg_task_join(cg, "oom", getpid(), &err) != BO_OK) {
        _exit(3);
    }
    size_t len = (size_t)256 << 20;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        _exit(4);
    }
    for (size_t i = 0; i < len; i += 4096) {
        p[i] = (char)i;
    }
    _exit(0);
}

static void test_oom(void **state)
{
    struct bo_cg *cg = *state;
    skip_unless_available(cg);
    struct bo_err err = BO_ERR_INIT;
    struct bo_cg_task t;
    int rv = bo_cg_task_create(cg, "oom", 32 << 20, 0.5, &t, &err);
    if (rv != BO_OK) {
        print_message("%s\n", bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    char v[64];
    if (cg->mode == BO_CG_V1) {
        read_ctl(t.mem_dir, "memory.limit_in_bytes", v, sizeof(v));
        assert_string_equal(v, "33554432");
        read_ctl(t.cpu_dir, "cpu.cfs_quota_us", v, sizeof(v));
        assert_string_equal(v, "50000");
        read_ctl(t.cpu_dir, "cpu.cfs_period_us", v, sizeof(v));
        assert_string_equal(v, "100000");
    } else {
        assert_string_equal(t.mem_dir, t.cpu_dir);
        read_ctl(t.mem_dir, "memory.max", v, sizeof(v));
        assert_string_equal(v, "33554432");
        read_ctl(t.cpu_dir, "cpu.max", v, sizeof(v));
        assert_string_equal(v, "50000 100000");
    }
    uint64_t before = 99;
    assert_int_equal(bo_cg_task_oom_kills(cg, "oom", &before, &err), BO_OK);
    assert_int_equal(before, 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        oom_child(cg);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status)) {
        print_message("child exited with %d\n", WEXITSTATUS(status));
    }
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    uint64_t after = 0;
    assert_int_equal(bo_cg_task_oom_kills(cg, "oom", &after, &err), BO_OK);
    assert_true(after > before);

    assert_int_equal(bo_cg_task_kill_all(cg, "oom", &err), BO_OK);
    rv = bo_cg_task_remove(cg, "oom", &err);
    if (rv != BO_OK) {
        print_message("%s\n", bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    assert_int_equal(access(t.mem_dir, F_OK), -1);
    assert_int_equal(access(t.cpu_dir, F_OK), -1);
}

/* Fork a child that joins `task`, optionally forks a grandchild, reports
 * through the pipe and sleeps. Returns the child's pid. */
static pid_t sleeper(const struct bo_cg *cg, const char *task, bool grandchild)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct bo_err err = BO_ERR_INIT;
        if (bo_cg_task_join(cg, task, getpid(), &err) != BO_OK) {
            _exit(3);
        }
        if (grandchild && fork() == 0) {
            for (;;) {
                pause();
            }
        }
        if (write(fds[1], "x", 1) != 1) {
            _exit(4);
        }
        for (;;) {
            pause();
        }
    }
    close(fds[1]);
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    return pid;
}

static void expect_killed(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void test_kill_all(void **state)
{
    struct bo_cg *cg = *state;
    skip_unless_available(cg);
    struct bo_err err = BO_ERR_INIT;
    struct bo_cg_task t;
    assert_int_equal(bo_cg_task_create(cg, "sleepers", 0, 2, &t, &err), BO_OK);
    pid_t kids[3];
    for (int i = 0; i < 3; i++) {
        kids[i] = sleeper(cg, "sleepers", i == 0);
    }
    pid_t *pids = NULL;
    size_t n = 0;
    assert_int_equal(bo_cg_task_pids(cg, "sleepers", &pids, &n, &err), BO_OK);
    assert_int_equal(n, 4); /* three children and a grandchild */
    for (size_t i = 1; i < n; i++) {
        assert_true(pids[i - 1] < pids[i]);
    }
    for (int i = 0; i < 3; i++) {
        bool found = false;
        for (size_t j = 0; j < n; j++) {
            found = found || pids[j] == kids[i];
        }
        assert_true(found);
    }
    bo_free(pids);

    /* Removing a busy group fails after its retries, leaving it intact. */
    int rv = bo_cg_task_remove(cg, "sleepers", &err);
    assert_int_equal(rv, BO_EBUSY);
    print_message("busy: %s\n", bo_err_msg(&err, rv));

    rv = bo_cg_task_kill_all(cg, "sleepers", &err);
    if (rv != BO_OK) {
        print_message("%s\n", bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    for (int i = 0; i < 3; i++) {
        expect_killed(kids[i]);
    }
    assert_int_equal(bo_cg_task_pids(cg, "sleepers", &pids, &n, &err), BO_OK);
    assert_int_equal(n, 0);
    assert_null(pids);
    assert_int_equal(bo_cg_task_remove(cg, "sleepers", &err), BO_OK);
}

static void test_remove_stale(void **state)
{
    struct bo_cg *cg = *state;
    skip_unless_available(cg);
    struct bo_err err = BO_ERR_INIT;
    struct bo_cg_task keep, s1, s2;
    assert_int_equal(bo_cg_task_create(cg, "keep", 0, 0, &keep, &err), BO_OK);
    assert_int_equal(bo_cg_task_create(cg, "stale1", 16 << 20, 0, &s1, &err), BO_OK);
    assert_int_equal(bo_cg_task_create(cg, "stale2", 0, 1, &s2, &err), BO_OK);
    /* a group the task made inside its own */
    char nested[PATH_MAX];
    PATHF(nested, "%s/inner", s2.mem_dir);
    assert_int_equal(mkdir(nested, 0755), 0);
    pid_t kid = sleeper(cg, "stale1", false);

    const char *running[] = {"keep", "not-there"};
    size_t removed = 0;
    int rv = bo_cg_remove_stale(cg, running, 2, &removed, &err);
    if (rv != BO_OK) {
        print_message("%s\n", bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    assert_int_equal(removed, 2);
    expect_killed(kid);
    assert_int_equal(access(keep.mem_dir, F_OK), 0);
    assert_int_equal(access(s1.mem_dir, F_OK), -1);
    assert_int_equal(access(s1.cpu_dir, F_OK), -1);
    assert_int_equal(access(s2.mem_dir, F_OK), -1);
    assert_int_equal(bo_cg_task_remove(cg, "keep", &err), BO_OK);
}

static void test_self_limits(void **state)
{
    (void)state;
    uint64_t mem = 0;
    double cpus = -1;
    bo_cg_self_limits(&mem, &cpus);
    print_message("own cgroup: memory %llu bytes, cpus %g\n", (unsigned long long)mem, cpus);
    assert_true(mem > 0);
    assert_true(cpus >= 0);
}

/* A process inside a limited group sees the limits, and so does hostinfo. */
static void test_self_limits_in_group(void **state)
{
    struct bo_cg *cg = *state;
    skip_unless_available(cg);
    struct bo_err err = BO_ERR_INIT;
    struct bo_cg_task t;
    assert_int_equal(bo_cg_task_create(cg, "limited", 64 << 20, 0.5, &t, &err), BO_OK);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct bo_err cerr = BO_ERR_INIT;
        if (bo_cg_task_join(cg, "limited", getpid(), &cerr) != BO_OK) {
            _exit(3);
        }
        uint64_t mem;
        double cpus;
        bo_cg_self_limits(&mem, &cpus);
        if (mem != (uint64_t)64 << 20 || cpus != 0.5) {
            _exit(4);
        }
        struct bo_host_resources r;
        if (bo_host_detect("/tmp", &r, &cerr) != BO_OK || r.ram_mib != 64 || r.cpus != 0.5) {
            _exit(5);
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(bo_cg_task_remove(cg, "limited", &err), BO_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_detect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_stale, setup, teardown),
        cmocka_unit_test(test_self_limits),
        cmocka_unit_test_setup_teardown(test_self_limits_in_group, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
