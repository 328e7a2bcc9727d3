/*
 * pacewrite.c - raft's big synchronous writes, a megabyte at a time
 * (pacewrite.h says why).
 *
 * Happy path. raft's snapshot thread calls uv_fs_write(NULL, req, fd, bufs,
 * n, offset, NULL) with the whole image, which binds to the function below.
 * The buffers are cut into pieces of at most BO_PACEWRITE_CHUNK bytes; each
 * piece goes through libuv's uv_fs_write with the caller's request (its
 * synchronous form leaves nothing allocated in the request once it
 * returns), then sync_file_range(2) starts its write-back and waits for it.
 * The result is the total written, in the return value and req->result, as
 * one call would have it. An offset of -1 (the file position) stays -1 for
 * every piece, so the position moves as one write would move it.
 *
 * Failure modes.
 * - A piece fails (disk full, I/O error): its error is returned at once, in
 *   the return value and req->result, as a failed write returns it; the
 *   pieces before it are in the file, as a short write would leave them.
 *   raft fails the snapshot and removes the file.
 * - A piece is written short: the bytes written so far are returned, as a
 *   short write of the whole; raft sees fewer bytes than it asked for and
 *   fails the snapshot.
 * - sync_file_range fails (a file system without it, a pipe): the rest is
 *   written without waiting; write-back then happens at the fsync, as
 *   without this file.
 * - libuv's uv_fs_write cannot be found: the process aborts at the first
 *   call, as no write could ever be done.
 */
#include "storage/pacewrite.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/flags.h"

typedef int (*write_fn)(uv_loop_t *loop, uv_fs_t *req, uv_file file, const uv_buf_t bufs[],
                        unsigned int nbufs, int64_t offset, uv_fs_cb cb);

static pthread_once_t real_once = PTHREAD_ONCE_INIT;
static write_fn real_write;
static atomic_uint_least64_t paced;

static void find_real(void)
{
    real_write = (write_fn)dlsym(RTLD_NEXT, "uv_fs_write");
}

static bool enabled(void)
{
    return bo_flags_env_on("BO_PACEWRITE");
}

static int paced_write(uv_loop_t *loop, uv_fs_t *req, uv_file file, const uv_buf_t bufs[],
                       unsigned int nbufs, int64_t offset)
{
    bool syncing = true;
    int64_t total = 0;
    for (unsigned int i = 0; i < nbufs; i++) {
        for (size_t at = 0; at < bufs[i].len;) {
            size_t len = bufs[i].len - at;
            len = len < BO_PACEWRITE_CHUNK ? len : BO_PACEWRITE_CHUNK;
            uv_buf_t piece = uv_buf_init(bufs[i].base + at, (unsigned int)len);
            int64_t where = offset >= 0 ? offset + total : lseek(file, 0, SEEK_CUR);
            int rv = real_write(loop, req, file, &piece, 1, offset >= 0 ? where : -1, NULL);
            if (rv < 0) {
                return rv;
            }
            uv_fs_req_cleanup(req);
            if ((size_t)rv < len) {
                /* A short write (the file size limit, a full disk): report
                 * what is in the file, as one write would. */
                req->result = total + rv;
                return (int)req->result;
            }
            if (syncing && where >= 0 &&
                sync_file_range(file, where, (off_t)len,
                                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                    SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
                syncing = false;
            }
            at += len;
            total += (int64_t)len;
        }
    }
    req->result = total;
    atomic_fetch_add(&paced, 1);
    return (int)total;
}

/* Interposes libuv's uv_fs_write for the whole program (pacewrite.h). */
int uv_fs_write(uv_loop_t *loop, uv_fs_t *req, uv_file file, const uv_buf_t bufs[],
                unsigned int nbufs, int64_t offset, uv_fs_cb cb)
{
    pthread_once(&real_once, find_real);
    if (real_write == NULL) {
        abort();
    }
    size_t total = 0;
    for (unsigned int i = 0; i < nbufs; i++) {
        total += bufs[i].len;
    }
    if (cb != NULL || total <= BO_PACEWRITE_CHUNK || total > INT32_MAX || !enabled()) {
        return real_write(loop, req, file, bufs, nbufs, offset, cb);
    }
    return paced_write(loop, req, file, bufs, nbufs, offset);
}

void bo_pacewrite_init(void)
{
    /* Nothing to start: the call links this file into the program. */
}

uint64_t bo_pacewrite_paced(void)
{
    return atomic_load(&paced);
}
