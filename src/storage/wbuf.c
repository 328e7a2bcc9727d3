/*
 * wbuf.c - an SQLite VFS that gathers adjacent page writes into large ones
 * (contract in wbuf.h).
 *
 * Happy path. A restore writes a fresh database of hundreds of MB: pages
 * spilled from the cache as the tables grow, index pages as each index is
 * built, and the sorter's runs in temporary files, nearly all at increasing
 * offsets, and SQLite writes each 4 KB page with a pwrite of its own. Each
 * file opened here keeps a buffer of WBUF_SIZE: a write that continues the
 * buffered range (or falls inside it) is copied into it; any other write,
 * and every call that must see the file as written (read of a buffered byte,
 * size, truncate, sync, lock changes, file controls, close), first writes the
 * buffer out with one pwrite. Reads of bytes not in the buffer go straight
 * to the file. Everything else is the default VFS's.
 *
 * Failure modes. A write that fails when the buffer is written out is
 * reported by the call that wrote it out, not by the write that filled it:
 * later than SQLite would have seen it, which only a caller that throws the
 * file away on any error can accept (a restore builds a file it discards on
 * error, and flushes with BO_WBUF_FCNTL_FLUSH before trusting it, because
 * with synchronous=OFF SQLite never syncs and ignores what the commit's
 * SQLITE_FCNTL_SYNC_OMITTED returns). A buffer that cannot be allocated
 * leaves the file unbuffered.
 *
 * The WAL variant (bo_wbuf_wal_vfs) serves the store's writing connection.
 * SQLite appends each WAL frame with two writes, its 24-byte header and its
 * page: 2 pwrites per frame were a fifth of the loop thread at 64 writes in
 * flight (docs/benchmarks.md, "Fifth pass"). The WAL file is mapped, shared,
 * and a write is a copy into the map: no system call, and one copy of each
 * byte where a pwrite made two (into a buffer, then the kernel's into the
 * page cache), about a quarter of a group commit ("Sixth pass"). Other
 * connections read the file with pread, from the same page cache. The map
 * grows by whole steps, and the blocks of each step are allocated
 * (posix_fallocate) before any store into it: a store into a mapped page
 * without a block would kill the process with SIGBUS when the disk is full,
 * where a failed allocation fails the write (SQLITE_FULL) and its commit. A
 * truncate below the map's end unmaps it first, for the same reason; only
 * this connection may truncate the WAL (it is the store's only writer, and
 * checkpoints are PASSIVE). Reads of mapped bytes are copies from the map.
 * Where the file cannot be opened twice or mapped, its frames are buffered
 * (1 MiB, a group commit's frames) and written out with one pwrite per 64 KB.
 * The connection runs with synchronous=FULL, so SQLite calls xSync on the
 * WAL after a commit's frames and before it publishes them in the wal-index
 * header; xSync writes the buffer out, if any, and skips the fsync (the
 * store is a cache, rebuilt from the raft log at every start). Other
 * connections (the checkpointer, snapshot views) therefore never see a frame
 * that is not in the file, and a write that fails fails the commit before
 * anything is published. The database file and its shared memory pass
 * through untouched.
 *
 * Threads: a file is used by one thread at a time (SQLite's sorter threads
 * each own their temporary files); the VFS itself is registered once.
 */
#include "storage/wbuf.h"

#include "common/flags.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* SQLite's unix VFS writes at most 128 KB - 1 per call (it masks the size
 * with 0x1ffff), so a buffer is 64 KB: 16 pages a write. */
#define WBUF_SIZE ((size_t)64 << 10)

/* A WAL file's buffer holds a group commit's frames (each a 24-byte header
 * and a 4 KB page): at 64 writes in flight a commit is 100-250 of them. */
#define WBUF_WAL_SIZE ((size_t)1 << 20)

struct wb_file {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, allocated right after */
    unsigned char *buf; /* NULL: unbuffered */
    size_t cap;         /* of buf */
    sqlite3_int64 off;  /* file offset of buf[0] */
    size_t len;
    /* WAL variant, mapped: the file opened again and mapped whole */
    int map_fd; /* -1: not mapped */
    unsigned char *map;
    size_t map_len;
};

/* A mapped WAL grows by a quarter of its size, at least this much. */
#define WBUF_MAP_STEP ((size_t)1 << 20)

/* Where the real file starts, aligned for any struct. */
#define WB_REAL_OFFSET ((sizeof(struct wb_file) + 15) & ~(size_t)15)

static sqlite3_vfs *real_vfs(sqlite3_vfs *v)
{
    return v->pAppData;
}

static int wb_flush(struct wb_file *f)
{
    if (f->len == 0) {
        return SQLITE_OK;
    }
    int rc = SQLITE_OK;
    for (size_t at = 0; at < f->len && rc == SQLITE_OK; at += WBUF_SIZE) {
        size_t n = f->len - at < WBUF_SIZE ? f->len - at : WBUF_SIZE;
        rc = f->real->pMethods->xWrite(f->real, f->buf + at, (int)n, f->off + (sqlite3_int64)at);
    }
    f->len = 0;
    return rc;
}

static void wm_unmap(struct wb_file *f)
{
    if (f->map != NULL) {
        munmap(f->map, f->map_len);
        f->map = NULL;
        f->map_len = 0;
    }
}

/* Make the map cover [0, need), its blocks allocated first. */
static int wm_grow(struct wb_file *f, size_t need)
{
    size_t step = f->map_len / 4 > WBUF_MAP_STEP ? f->map_len / 4 : WBUF_MAP_STEP;
    size_t len = f->map_len + step > need ? f->map_len + step : need;
    len = (len + WBUF_MAP_STEP - 1) / WBUF_MAP_STEP * WBUF_MAP_STEP;
    int e = posix_fallocate(f->map_fd, (off_t)f->map_len, (off_t)(len - f->map_len));
    if (e != 0) {
        return e == ENOSPC || e == EFBIG ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    }
    void *m = f->map == NULL ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, f->map_fd, 0)
                             : mremap(f->map, f->map_len, len, MREMAP_MAYMOVE);
    if (m == MAP_FAILED) {
        return SQLITE_IOERR_WRITE; /* the old map, if any, stays */
    }
    f->map = m;
    f->map_len = len;
    return SQLITE_OK;
}

static int wb_close(sqlite3_file *file)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = wb_flush(f);
    wm_unmap(f);
    if (f->map_fd >= 0) {
        close(f->map_fd);
        f->map_fd = -1;
    }
    int crc = f->real->pMethods->xClose(f->real);
    sqlite3_free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : crc;
}

static int wb_read(sqlite3_file *file, void *p, int n, sqlite3_int64 off)
{
    struct wb_file *f = (struct wb_file *)file;
    if (off >= 0 && (size_t)off + (size_t)n <= f->map_len) {
        memcpy(p, f->map + off, (size_t)n);
        return SQLITE_OK;
    }
    /* Anything at or past the buffer's start: the file may end before it. */
    if (f->len > 0 && off + n > f->off) {
        int rc = wb_flush(f);
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    return f->real->pMethods->xRead(f->real, p, n, off);
}

static int wb_write(sqlite3_file *file, const void *p, int n, sqlite3_int64 off)
{
    struct wb_file *f = (struct wb_file *)file;
    if (f->map_fd >= 0) {
        size_t end = (size_t)off + (size_t)n;
        if (end > f->map_len) {
            int rc = wm_grow(f, end);
            if (rc != SQLITE_OK) {
                return rc;
            }
        }
        memcpy(f->map + off, p, (size_t)n);
        return SQLITE_OK;
    }
    if (f->buf == NULL) {
        return f->real->pMethods->xWrite(f->real, p, n, off);
    }
    sqlite3_int64 end = f->off + (sqlite3_int64)f->len;
    if (f->len > 0 && off >= f->off && off <= end && (size_t)(off - f->off) + (size_t)n <= f->cap) {
        /* Continues the buffered range, or rewrites part of it. */
        size_t at = (size_t)(off - f->off);
        memcpy(f->buf + at, p, (size_t)n);
        if (at + (size_t)n > f->len) {
            f->len = at + (size_t)n;
        }
        return SQLITE_OK;
    }
    int rc = wb_flush(f);
    if (rc != SQLITE_OK) {
        return rc;
    }
    if ((size_t)n >= f->cap || (size_t)n >= WBUF_SIZE) {
        return f->real->pMethods->xWrite(f->real, p, n, off);
    }
    memcpy(f->buf, p, (size_t)n);
    f->off = off;
    f->len = (size_t)n;
    return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = wb_flush(f);
    if (f->map != NULL && (size_t)size < f->map_len) {
        wm_unmap(f); /* no page of the map may lie past the end */
    }
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wb_sync(sqlite3_file *file, int flags)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

/* The WAL variant's files belong to a cache rebuilt at every start: a sync
 * writes the buffer out and stops there. */
static int wb_sync_cache(sqlite3_file *file, int flags)
{
    (void)flags;
    return wb_flush((struct wb_file *)file);
}

static int wb_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wb_lock(sqlite3_file *file, int level)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xLock(f->real, level);
}

static int wb_unlock(sqlite3_file *file, int level)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = wb_flush(f);
    int urc = f->real->pMethods->xUnlock(f->real, level);
    return rc != SQLITE_OK ? rc : urc;
}

static int wb_check_reserved(sqlite3_file *file, int *out)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int wb_file_control(sqlite3_file *file, int op, void *arg)
{
    struct wb_file *f = (struct wb_file *)file;
    int rc = wb_flush(f);
    if (op == BO_WBUF_FCNTL_FLUSH) {
        return rc;
    }
    int frc = f->real->pMethods->xFileControl(f->real, op, arg);
    return rc != SQLITE_OK ? rc : frc;
}

static int wb_sector_size(sqlite3_file *file)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xSectorSize(f->real);
}

static int wb_device_characteristics(sqlite3_file *file)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* What both tables share; `sync` differs. */
#define WB_FILE_METHODS(sync)                                                                      \
    .xClose = wb_close, .xRead = wb_read, .xWrite = wb_write, .xTruncate = wb_truncate,            \
    .xSync = (sync), .xFileSize = wb_file_size, .xLock = wb_lock, .xUnlock = wb_unlock,            \
    .xCheckReservedLock = wb_check_reserved, .xFileControl = wb_file_control,                      \
    .xSectorSize = wb_sector_size, .xDeviceCharacteristics = wb_device_characteristics

/* Version 1: no shared memory (so no WAL unless locking_mode=EXCLUSIVE) and
 * no memory-mapped reads, which would bypass the buffer. */
static const sqlite3_io_methods wb_io = {
    .iVersion = 1,
    WB_FILE_METHODS(wb_sync),
};

static int wb_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xShmMap(f->real, page, size, extend, out);
}

static int wb_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void wb_shm_barrier(sqlite3_file *file)
{
    struct wb_file *f = (struct wb_file *)file;
    f->real->pMethods->xShmBarrier(f->real);
}

static int wb_shm_unmap(sqlite3_file *file, int delete_flag)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

static int wb_fetch(sqlite3_file *file, sqlite3_int64 off, int n, void **out)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xFetch(f->real, off, n, out);
}

static int wb_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
    struct wb_file *f = (struct wb_file *)file;
    return f->real->pMethods->xUnfetch(f->real, off, p);
}

/* Version 3 for the WAL variant: the database file's shared memory and
 * mapped reads pass through (only WAL files are buffered, and nothing maps
 * those). */
static const sqlite3_io_methods wb_wal_io = {
    .iVersion = 3,
    WB_FILE_METHODS(wb_sync_cache),
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier,
    .xShmUnmap = wb_shm_unmap,
    .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch,
};

static sqlite3_vfs wb_vfs;

static int wb_open(sqlite3_vfs *v, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
    struct wb_file *f = (struct wb_file *)file;
    memset(f, 0, sizeof(*f));
    f->map_fd = -1;
    f->real = (sqlite3_file *)((unsigned char *)file + WB_REAL_OFFSET);
    int rc = real_vfs(v)->xOpen(real_vfs(v), name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods != NULL) {
            f->real->pMethods->xClose(f->real);
        }
        f->base.pMethods = NULL;
        return rc;
    }
    if (v != &wb_vfs) {
        /* The WAL variant: WAL files only. */
        if (flags & SQLITE_OPEN_WAL) {
            f->map_fd = bo_flags_env_on("BO_WALMAP") ? open(name, O_RDWR | O_CLOEXEC) : -1;
            if (f->map_fd < 0) {
                f->cap = WBUF_WAL_SIZE;
            }
        }
        f->base.pMethods = &wb_wal_io;
    } else {
        if (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TEMP_JOURNAL |
                     SQLITE_OPEN_TRANSIENT_DB)) {
            f->cap = WBUF_SIZE;
        }
        f->base.pMethods = &wb_io;
    }
    if (f->cap > 0) {
        f->buf = sqlite3_malloc64(f->cap);
        if (f->buf == NULL) {
            f->cap = 0;
        }
    }
    return SQLITE_OK;
}

static int wb_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    return real_vfs(v)->xDelete(real_vfs(v), name, sync_dir);
}

static int wb_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    return real_vfs(v)->xAccess(real_vfs(v), name, flags, out);
}

static int wb_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    return real_vfs(v)->xFullPathname(real_vfs(v), name, n, out);
}

static int wb_randomness(sqlite3_vfs *v, int n, char *out)
{
    return real_vfs(v)->xRandomness(real_vfs(v), n, out);
}

static int wb_sleep(sqlite3_vfs *v, int us)
{
    return real_vfs(v)->xSleep(real_vfs(v), us);
}

static int wb_current_time(sqlite3_vfs *v, double *out)
{
    return real_vfs(v)->xCurrentTime(real_vfs(v), out);
}

static int wb_last_error(sqlite3_vfs *v, int n, char *out)
{
    return real_vfs(v)->xGetLastError(real_vfs(v), n, out);
}

static int wb_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    return real_vfs(v)->xCurrentTimeInt64(real_vfs(v), out);
}

static void *wb_dl_open(sqlite3_vfs *v, const char *name)
{
    return real_vfs(v)->xDlOpen(real_vfs(v), name);
}

static void wb_dl_error(sqlite3_vfs *v, int n, char *out)
{
    real_vfs(v)->xDlError(real_vfs(v), n, out);
}

static void (*wb_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    return real_vfs(v)->xDlSym(real_vfs(v), h, sym);
}

static void wb_dl_close(sqlite3_vfs *v, void *h)
{
    real_vfs(v)->xDlClose(real_vfs(v), h);
}

static sqlite3_vfs wb_vfs = {
    .iVersion = 2,
    .zName = BO_WBUF_VFS,
    .xOpen = wb_open,
    .xDelete = wb_delete,
    .xAccess = wb_access,
    .xFullPathname = wb_full_pathname,
    .xDlOpen = wb_dl_open,
    .xDlError = wb_dl_error,
    .xDlSym = wb_dl_sym,
    .xDlClose = wb_dl_close,
    .xRandomness = wb_randomness,
    .xSleep = wb_sleep,
    .xCurrentTime = wb_current_time,
    .xGetLastError = wb_last_error,
    .xCurrentTimeInt64 = wb_current_time64,
};

static sqlite3_vfs wb_wal_vfs;

static pthread_once_t wb_once = PTHREAD_ONCE_INIT;
static int wb_registered = SQLITE_ERROR;
static int wb_wal_registered = SQLITE_ERROR;

static void wb_register(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (real == NULL || real->iVersion < 2) {
        return;
    }
    wb_vfs.szOsFile = (int)(WB_REAL_OFFSET + (size_t)real->szOsFile);
    wb_vfs.mxPathname = real->mxPathname;
    wb_vfs.pAppData = real;
    wb_registered = sqlite3_vfs_register(&wb_vfs, 0);
    wb_wal_vfs = wb_vfs;
    wb_wal_vfs.zName = BO_WBUF_WAL_VFS;
    wb_wal_registered = sqlite3_vfs_register(&wb_wal_vfs, 0);
}

const char *bo_wbuf_vfs(void)
{
    pthread_once(&wb_once, wb_register);
    return wb_registered == SQLITE_OK ? BO_WBUF_VFS : NULL;
}

const char *bo_wbuf_wal_vfs(void)
{
    pthread_once(&wb_once, wb_register);
    return wb_wal_registered == SQLITE_OK ? BO_WBUF_WAL_VFS : NULL;
}
