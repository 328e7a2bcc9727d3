/*
 * test_segfill.c - raft's new segments get written zeros, everything else
 * libc's posix_fallocate (storage/segfill.h). Real files in a directory
 * under the working directory (the build tree, on a disk), not /tmp, which
 * may be a tmpfs without direct I/O; where the file system has no direct
 * I/O or no extent map, the checks that need them are skipped, saying so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "storage/segfill.h"

#define SEG (4u << 20)

/* The plain symbol, as libraft binds it (the header would map the name to
 * posix_fallocate64, which is libc's alone). */
int raft_posix_fallocate(int fd, off_t offset, off_t len) __asm__("posix_fallocate");

struct fx {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "segfill-test-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        fail_msg("mkdtemp: %s", strerror(errno));
    }
    bo_segfill_init();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* A new file as raft's preparer makes one. */
static int create(struct fx *f, const char *name)
{
    snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name);
    int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_DSYNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    return fd;
}

static bool direct_io(struct fx *f)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/probe", f->dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_DIRECT, 0600);
    if (fd >= 0) {
        close(fd);
        unlink(p);
    }
    return fd >= 0;
}

/* Extents marked unwritten in the file's map, or -1 without FIEMAP. */
static int unwritten_extents(const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size_t size = sizeof(struct fiemap) + 64 * sizeof(struct fiemap_extent);
    struct fiemap *fm = calloc(1, size);
    fm->fm_length = FIEMAP_MAX_OFFSET;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = 64;
    int n = -1;
    if (ioctl(fd, FS_IOC_FIEMAP, fm) == 0) {
        n = 0;
        for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
            n += (fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN) != 0;
        }
    }
    free(fm);
    close(fd);
    return n;
}

/* What raft's writer does: a direct write that must not block. */
static int nowait_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_DIRECT | O_DSYNC);
    assert_true(fd >= 0);
    void *buf = aligned_alloc(4096, 4096);
    memset(buf, 7, 4096);
    struct iovec iov = {.iov_base = buf, .iov_len = 4096};
    ssize_t w = pwritev2(fd, &iov, 1, 8192, RWF_NOWAIT);
    int e = w < 0 ? errno : 0;
    free(buf);
    close(fd);
    return e;
}

/* The file is SEG bytes long, all zeros but for the 4,096 bytes
 * nowait_write may have put at 8192. */
static void assert_zeros(const char *path, size_t len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, SEG);
    static char buf[1 << 16];
    size_t seen = 0;
    ssize_t r;
    while (seen < len &&
           (r = read(fd, buf, len - seen < sizeof(buf) ? len - seen : sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            assert_int_equal(buf[i], 0);
        }
        seen += (size_t)r;
    }
    assert_int_equal(seen, len);
    close(fd);
}

/* A new open-N is written with zeros: where libc's allocation leaves
 * unwritten extents (ext4, XFS: a file of another name shows them), the
 * filled segment has none, and a direct write that must not block goes
 * through. */
static void test_segment_filled(void **state)
{
    struct fx *f = *state;
    if (!direct_io(f)) {
        skip(); /* no direct I/O here: nothing to fill */
    }
    uint64_t before = bo_segfill_filled();
    int fd = create(f, "segment-1");
    assert_int_equal(raft_posix_fallocate(fd, 0, SEG), 0);
    close(fd);
    assert_int_equal(bo_segfill_filled(), before);
    int libc_unwritten = unwritten_extents(f->path);
    assert_zeros(f->path, SEG);

    fd = create(f, "open-1");
    assert_int_equal(raft_posix_fallocate(fd, 0, SEG), 0);
    close(fd);
    assert_int_equal(bo_segfill_filled(), before + 1);
    /* Before any read: a cached page in the range would refuse it. */
    assert_int_equal(nowait_write(f->path), 0);
    if (libc_unwritten > 0) {
        assert_int_equal(unwritten_extents(f->path), 0);
    } else {
        print_message("no unwritten extents on this file system: extent check skipped\n");
    }
    assert_zeros(f->path, 8192);
}

/* An open-N that already holds data is never overwritten. */
static void test_nonempty_kept(void **state)
{
    struct fx *f = *state;
    uint64_t before = bo_segfill_filled();
    int fd = create(f, "open-2");
    assert_int_equal(write(fd, "raft entries", 12), 12);
    assert_int_equal(raft_posix_fallocate(fd, 0, SEG), 0);
    close(fd);
    assert_int_equal(bo_segfill_filled(), before);
    char buf[12];
    fd = open(f->path, O_RDONLY);
    assert_int_equal(read(fd, buf, sizeof(buf)), 12);
    assert_memory_equal(buf, "raft entries", 12);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, SEG);
    close(fd);
}

/* BO_SEGFILL=0: libc allocates, nothing is written. */
static void test_off(void **state)
{
    struct fx *f = *state;
    uint64_t before = bo_segfill_filled();
    setenv("BO_SEGFILL", "0", 1);
    int fd = create(f, "open-3");
    int rv = raft_posix_fallocate(fd, 0, SEG);
    unsetenv("BO_SEGFILL");
    close(fd);
    assert_int_equal(rv, 0);
    assert_int_equal(bo_segfill_filled(), before);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_size, SEG);
}

/* A write the file system refuses (here the file size limit, as a full
 * disk would) comes back as posix_fallocate's error number. */
static void test_refused(void **state)
{
    struct fx *f = *state;
    if (!direct_io(f)) {
        skip();
    }
    uint64_t before = bo_segfill_filled();
    int fd = create(f, "open-4");
    struct rlimit old, lim = {.rlim_cur = 1u << 20, .rlim_max = RLIM_INFINITY};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rv = raft_posix_fallocate(fd, 0, SEG);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    close(fd);
    assert_int_equal(rv, EFBIG);
    assert_int_equal(bo_segfill_filled(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_segment_filled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonempty_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
