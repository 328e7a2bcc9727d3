/*
 * sandboxfs.c - read-only, confined access to a task sandbox.
 *
 * Happy path: every entry point goes through bo_sbx_open. It first checks the
 * path lexically (not absolute, no `..` that climbs above the root, not longer
 * than PATH_MAX), then opens the sandbox root as an O_PATH descriptor and asks
 * the kernel to resolve the relative path beneath it with openat2() and
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS. The kernel then refuses, with EXDEV,
 * any resolution that leaves the root: `..` above it, absolute symlinks, and
 * relative symlinks that climb out, at any component. Symlinks that stay
 * inside are followed. bo_sbx_list reads the directory through the descriptor
 * (fdopendir, fstatat without following), bo_sbx_read preads a range, and
 * bo_sbx_tail scans backwards from the end in fixed chunks counting newlines,
 * then preads just the tail it found.
 *
 * Failure modes: openat2 missing (ENOSYS, kernels before 5.6, or seccomp
 * filters that hide it) switches to the fallback: realpath() of the root and
 * of root/rel, a prefix check on whole components (so "/sandbox-other" is not
 * inside "/sandbox"), an open of the resolved path with O_NOFOLLOW, and a
 * second check of the opened descriptor's path from /proc/self/fd so a symlink
 * swapped in after the first check is still caught (skipped if /proc is not
 * mounted). openat2 may return EAGAIN when a rename races a `..` lookup; that
 * is retried a few times. A dangling symlink is BO_ENOTFOUND whether or not
 * it points outside. FIFOs and devices are never read: opens are O_NONBLOCK and
 * the read functions require a regular file. A file that shrinks while being
 * read is BO_EIO; one that grows is read up to its size at open time.
 */
#include "host/sandboxfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/mem.h"

/* Backwards scan chunk of bo_sbx_tail. */
#define TAIL_CHUNK (64 * 1024)

/* openat2 EAGAIN retries (rename races during `..` resolution). */
#define OPENAT2_RETRIES 8

static int escape_err(struct bo_err *err, const char *rel)
{
    return bo_errf(err, BO_EINVAL, "open '%s': " BO_SBX_ESCAPE_MSG, rel);
}

/* Lexical check: relative, and no `..` that climbs above the root. */
static int check_lexical(const char *rel, struct bo_err *err)
{
    if (strnlen(rel, PATH_MAX) >= PATH_MAX) {
        return bo_errf(err, BO_EINVAL, "open: path too long");
    }
    if (rel[0] == '/') {
        return escape_err(err, rel);
    }
    long depth = 0;
    const char *p = rel;
    while (*p != '\0') {
        const char *slash = strchr(p, '/');
        size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0) {
                return escape_err(err, rel);
            }
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            depth++;
        }
        p += n;
        if (*p == '/') {
            p++;
        }
    }
    return BO_OK;
}

static int open_errno(struct bo_err *err, int e, const char *rel)
{
    switch (e) {
    case EXDEV:
        return escape_err(err, rel);
    case ENOENT:
        return bo_errf(err, BO_ENOTFOUND, "open '%s': no such file or directory", rel);
    case ENOTDIR:
        return bo_errf(err, BO_EINVAL, "open '%s': not a directory", rel);
    case ELOOP:
        return bo_errf(err, BO_EINVAL, "open '%s': too many levels of symbolic links", rel);
    default:
        return bo_errf(err, bo_err_from_errno(e), "open '%s': %s", rel, strerror(e));
    }
}

/* True if `path` is `root` or below it, comparing whole components. */
static bool path_beneath(const char *root, const char *path)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') {
        return path[0] == '/';
    }
    return strncmp(root, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int bo_sbx__open_fallback(const char *sandbox, const char *rel, int flags, int *fd,
                          struct bo_err *err)
{
    int rv = check_lexical(rel, err);
    if (rv != BO_OK) {
        return rv;
    }
    char root[PATH_MAX], joined[PATH_MAX], resolved[PATH_MAX];
    if (realpath(sandbox, root) == NULL) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "sandbox '%s': %s", sandbox, strerror(e));
    }
    const char *r = rel[0] == '\0' ? "." : rel;
    int n = snprintf(joined, sizeof(joined), "%s/%s", root, r);
    if (n < 0 || (size_t)n >= sizeof(joined)) {
        return bo_errf(err, BO_EINVAL, "open '%s': path too long", rel);
    }
    if (realpath(joined, resolved) == NULL) {
        return open_errno(err, errno, rel);
    }
    if (!path_beneath(root, resolved)) {
        return escape_err(err, rel);
    }
    int f = open(resolved, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW | flags);
    if (f < 0) {
        /* ELOOP: the last component became a symlink since realpath. */
        int e = errno;
        return e == ELOOP ? escape_err(err, rel) : open_errno(err, e, rel);
    }
    /* Re-check what was actually opened, in case a component was swapped. */
    char link[64], actual[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", f);
    ssize_t len = readlink(link, actual, sizeof(actual) - 1);
    if (len >= 0) {
        actual[len] = '\0';
        if (!path_beneath(root, actual)) {
            close(f);
            return escape_err(err, rel);
        }
    }
    *fd = f;
    return BO_OK;
}

int bo_sbx_open(const char *sandbox, const char *rel, int flags, int *fd, struct bo_err *err)
{
    if (sandbox == NULL || rel == NULL || (flags & ~O_DIRECTORY) != 0) {
        return bo_errf(err, BO_EINVAL, "open: invalid arguments");
    }
    int rv = check_lexical(rel, err);
    if (rv != BO_OK) {
        return rv;
    }
    int dirfd = open(sandbox, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "sandbox '%s': %s", sandbox, strerror(e));
    }
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | flags);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    const char *r = rel[0] == '\0' ? "." : rel;
    long f = -1;
    int e = 0;
    for (int attempt = 0; attempt < OPENAT2_RETRIES; attempt++) {
        f = syscall(SYS_openat2, dirfd, r, &how, sizeof(how));
        e = f < 0 ? errno : 0;
        if (!(f < 0 && (e == EAGAIN || e == EINTR))) {
            break;
        }
    }
    close(dirfd);
    if (f < 0) {
        if (e == ENOSYS || e == EPERM) {
            /* EPERM: some seccomp profiles deny unknown syscalls that way. */
            return bo_sbx__open_fallback(sandbox, rel, flags, fd, err);
        }
        return open_errno(err, e, rel);
    }
    *fd = (int)f;
    return BO_OK;
}

/* Open `rel` and require a regular file; *st gets its status. */
static int open_regular(const char *sandbox, const char *rel, int *fd, struct stat *st,
                        struct bo_err *err)
{
    int f;
    int rv = bo_sbx_open(sandbox, rel, 0, &f, err);
    if (rv != BO_OK) {
        return rv;
    }
    if (fstat(f, st) != 0) {
        int e = errno;
        close(f);
        return bo_errf(err, bo_err_from_errno(e), "stat '%s': %s", rel, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(f);
        return bo_errf(err, BO_EINVAL, "open '%s': not a regular file", rel);
    }
    *fd = f;
    return BO_OK;
}

/* pread exactly `len` bytes at `off` into `dst`. */
static int pread_full(int fd, uint8_t *dst, size_t len, uint64_t off, const char *rel,
                      struct bo_err *err)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, dst + done, len - done, (off_t)(off + done));
        if (n < 0) {
            int e = errno;
            if (e == EINTR) {
                continue;
            }
            return bo_errf(err, bo_err_from_errno(e), "read '%s': %s", rel, strerror(e));
        }
        if (n == 0) {
            return bo_errf(err, BO_EIO, "read '%s': file shrank while reading", rel);
        }
        done += (size_t)n;
    }
    return BO_OK;
}

/* Append [off, off + len) of the file to `out`; out->len changes only on success. */
static int append_range(int fd, uint64_t off, size_t len, struct bo_buf *out, const char *rel,
                        struct bo_err *err)
{
    if (len == 0) {
        return BO_OK;
    }
    if (bo_buf_reserve(out, len) != BO_OK) {
        return bo_errf(err, BO_ENOMEM, "read '%s': out of memory", rel);
    }
    int rv = pread_full(fd, out->data + out->len, len, off, rel, err);
    if (rv == BO_OK) {
        out->len += len;
    }
    return rv;
}

int bo_sbx_read(const char *sandbox, const char *rel, uint64_t offset, size_t max_len,
                struct bo_buf *out, uint64_t *file_size, struct bo_err *err)
{
    int fd = -1;
    struct stat st;
    int rv = open_regular(sandbox, rel, &fd, &st, err);
    if (rv != BO_OK) {
        return rv;
    }
    uint64_t size = (uint64_t)st.st_size;
    size_t len = 0;
    if (offset < size) {
        uint64_t left = size - offset;
        len = left < (uint64_t)max_len ? (size_t)left : max_len;
    }
    rv = append_range(fd, offset, len, out, rel, err);
    close(fd);
    if (rv == BO_OK && file_size != NULL) {
        *file_size = size;
    }
    return rv;
}

/* The offset where the last `lines` lines begin, not below `limit`. */
static int find_tail_start(int fd, uint64_t size, uint64_t limit, size_t lines, uint64_t *start,
                           const char *rel, struct bo_err *err)
{
    uint8_t *chunk = bo_malloc(TAIL_CHUNK);
    if (chunk == NULL) {
        return bo_errf(err, BO_ENOMEM, "tail '%s': out of memory", rel);
    }
    int rv = BO_OK;
    size_t found = 0;
    uint64_t pos = size;
    *start = limit;
    while (pos > limit) {
        size_t n = pos - limit < TAIL_CHUNK ? (size_t)(pos - limit) : TAIL_CHUNK;
        rv = pread_full(fd, chunk, n, pos - n, rel, err);
        if (rv != BO_OK) {
            break;
        }
        for (size_t i = n; i-- > 0;) {
            uint64_t at = pos - n + i;
            /* The newline that ends the file does not start another line. */
            if (chunk[i] != '\n' || at == size - 1) {
                continue;
            }
            if (++found == lines) {
                *start = at + 1;
                goto out;
            }
        }
        pos -= n;
    }
out:
    bo_free(chunk);
    return rv;
}

int bo_sbx_tail(const char *sandbox, const char *rel, size_t lines, size_t max_bytes,
                struct bo_buf *out, struct bo_err *err)
{
    int fd = -1;
    struct stat st;
    int rv = open_regular(sandbox, rel, &fd, &st, err);
    if (rv != BO_OK) {
        return rv;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (lines == 0 || max_bytes == 0 || size == 0) {
        goto out;
    }
    uint64_t limit = size > (uint64_t)max_bytes ? size - max_bytes : 0;
    uint64_t start = limit;
    rv = find_tail_start(fd, size, limit, lines, &start, rel, err);
    if (rv == BO_OK) {
        rv = append_range(fd, start, (size_t)(size - start), out, rel, err);
    }
out:
    close(fd);
    return rv;
}

/* Strict UTF-8 check: JSON strings cannot carry other bytes. */
static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != 0) {
        unsigned c = *p;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) {
                return false;
            }
            c = (c << 6) | (p[i] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
            return false;
        }
        p += n + 1;
    }
    return true;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *type_name(mode_t mode)
{
    if (S_ISREG(mode)) {
        return "file";
    }
    if (S_ISDIR(mode)) {
        return "dir";
    }
    if (S_ISLNK(mode)) {
        return "link";
    }
    return "other";
}

static json_t *describe(const char *name, const struct stat *st)
{
    char mode[8];
    snprintf(mode, sizeof(mode), "%04o", (unsigned)(st->st_mode & 07777));
    json_int_t mtime_ms = (json_int_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
    return json_pack("{s:s, s:s, s:I, s:I, s:s}", "name", name, "type", type_name(st->st_mode),
                     "size", (json_int_t)st->st_size, "mtime_ms", mtime_ms, "mode", mode);
}

/* Read every name of `d` except "." and "..", unsorted. */
static int read_names(DIR *d, char ***names, size_t *count, const char *rel, struct bo_err *err)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    int rv;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                int e = errno;
                rv = bo_errf(err, bo_err_from_errno(e), "list '%s': %s", rel, strerror(e));
                goto err_after_alloc;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            !valid_utf8(de->d_name)) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap == 0 ? 32 : cap * 2;
            char **nv = bo_reallocarray(v, ncap, sizeof(*v));
            if (nv == NULL) {
                goto err_oom;
            }
            v = nv;
            cap = ncap;
        }
        v[n] = bo_strdup(de->d_name);
        if (v[n] == NULL) {
            goto err_oom;
        }
        n++;
    }
    *names = v;
    *count = n;
    return BO_OK;

err_oom:
    rv = bo_errf(err, BO_ENOMEM, "list '%s': out of memory", rel);
err_after_alloc:
    for (size_t i = 0; i < n; i++) {
        bo_free(v[i]);
    }
    bo_free(v);
    return rv;
}

static void free_names(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        bo_free(names[i]);
    }
    bo_free(names);
}

/* Describe each of `names` (sorted) in directory `d` into a new array. */
static int describe_all(DIR *d, char **names, size_t count, json_t **out, const char *rel,
                        struct bo_err *err)
{
    json_t *arr = json_array();
    if (arr == NULL) {
        return bo_errf(err, BO_ENOMEM, "list '%s': out of memory", rel);
    }
    for (size_t i = 0; i < count; i++) {
        struct stat st;
        if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
            int e = errno;
            if (e == ENOENT) {
                continue; /* removed while listing */
            }
            json_decref(arr);
            return bo_errf(err, bo_err_from_errno(e), "stat '%s' in '%s': %s", names[i], rel,
                           strerror(e));
        }
        if (json_array_append_new(arr, describe(names[i], &st)) != 0) {
            json_decref(arr);
            return bo_errf(err, BO_ENOMEM, "list '%s': out of memory", rel);
        }
    }
    *out = arr;
    return BO_OK;
}

int bo_sbx_list(const char *sandbox, const char *rel, json_t **out, struct bo_err *err)
{
    int fd = -1;
    int rv = bo_sbx_open(sandbox, rel, O_DIRECTORY, &fd, err);
    if (rv != BO_OK) {
        return rv;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return bo_errf(err, bo_err_from_errno(e), "list '%s': %s", rel, strerror(e));
    }
    char **names = NULL;
    size_t count = 0;
    rv = read_names(d, &names, &count, rel, err);
    if (rv != BO_OK) {
        goto err_after_dir;
    }
    if (count > 0) {
        qsort(names, count, sizeof(*names), cmp_names);
    }
    rv = describe_all(d, names, count, out, rel, err);
    free_names(names, count);
err_after_dir:
    closedir(d);
    return rv;
}
