/*
 * segfill.c - raft's log segments allocated with written zeros (segfill.h
 * says why).
 *
 * Happy path. raft's preparing thread creates `open-N` and calls
 * posix_fallocate(fd, 0, size), which binds to the function below. The file
 * is new and empty, so nothing in it can be lost: the function opens it a
 * second time through /proc/self/fd with O_DIRECT (raft's descriptor is
 * O_DSYNC, which would sync every chunk, and F_SETFL cannot clear that),
 * writes `size` bytes of zeros in chunks from one shared zeroed buffer,
 * syncs the data once and returns 0, as posix_fallocate would.
 *
 * Failure modes.
 * - The file is not a new `open-*` file (another name, not empty, not at
 *   offset 0), BO_SEGFILL=0, or the second open fails (no O_DIRECT on this
 *   file system, no /proc): libc's posix_fallocate does the work.
 * - A write or the sync fails (disk full, I/O error): its error number is
 *   returned, as posix_fallocate returns one, and raft fails the segment as
 *   it would have. The file may hold some zeros; raft removes it.
 * - libc's posix_fallocate cannot be found: the process aborts at the first
 *   call, as no allocation could ever succeed.
 */
#include "storage/segfill.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/flags.h"

#define SEGFILL_CHUNK (1u << 20)
#define SEGFILL_ALIGN 4096

typedef int (*fallocate_fn)(int fd, off_t offset, off_t len);

static pthread_once_t real_once = PTHREAD_ONCE_INIT;
static fallocate_fn real_fallocate;
static pthread_once_t zeros_once = PTHREAD_ONCE_INIT;
static void *zeros;
static atomic_uint_least64_t filled;

static void find_real(void)
{
    real_fallocate = (fallocate_fn)dlsym(RTLD_NEXT, "posix_fallocate");
}

static void make_zeros(void)
{
    zeros = aligned_alloc(SEGFILL_ALIGN, SEGFILL_CHUNK);
    if (zeros != NULL) {
        memset(zeros, 0, SEGFILL_CHUNK);
    }
}

static bool enabled(void)
{
    return bo_flags_env_on("BO_SEGFILL");
}

/* A new, empty segment of raft's: named open-*, nothing in it yet. */
static bool is_new_segment(int fd, off_t offset)
{
    char link[64], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0) {
        return false;
    }
    path[n] = '\0';
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    struct stat st;
    return offset == 0 && strncmp(base, "open-", 5) == 0 && fstat(fd, &st) == 0 &&
           S_ISREG(st.st_mode) && st.st_size == 0;
}

/* -1: the file cannot be filled this way (the caller falls back), else 0 or
 * an error number. */
static int fill(int fd, off_t len)
{
    pthread_once(&zeros_once, make_zeros);
    if (zeros == NULL) {
        return -1;
    }
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    int dfd = open(link, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (dfd < 0) {
        return -1;
    }
    int rv = 0;
    off_t done = 0;
    while (done < len) {
        size_t want = len - done < (off_t)SEGFILL_CHUNK ? (size_t)(len - done) : SEGFILL_CHUNK;
        ssize_t w = pwrite(dfd, zeros, want, done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && errno == EINVAL && done == 0) {
            rv = -1; /* direct I/O refused after all: let libc allocate */
            break;
        }
        if (w <= 0) {
            rv = w < 0 ? errno : ENOSPC;
            break;
        }
        done += w;
    }
    if (rv == 0 && fdatasync(dfd) != 0) {
        rv = errno;
    }
    close(dfd);
    if (rv == 0) {
        atomic_fetch_add(&filled, 1);
    }
    return rv;
}

/* Interposes libc's posix_fallocate for the whole program (segfill.h).
 * Declared under another C name: with 64-bit file offsets the header maps
 * the name posix_fallocate to posix_fallocate64, and raft binds to the
 * plain symbol. */
int bo_segfill_posix_fallocate(int fd, off_t offset, off_t len) __asm__("posix_fallocate");

int bo_segfill_posix_fallocate(int fd, off_t offset, off_t len)
{
    if (len > 0 && len % SEGFILL_ALIGN == 0 && enabled() && is_new_segment(fd, offset)) {
        int rv = fill(fd, len);
        if (rv >= 0) {
            return rv;
        }
    }
    pthread_once(&real_once, find_real);
    if (real_fallocate == NULL) {
        abort();
    }
    return real_fallocate(fd, offset, len);
}

void bo_segfill_init(void)
{
    /* Nothing to start: the call links this file into the program. */
}

uint64_t bo_segfill_filled(void)
{
    return atomic_load(&filled);
}
