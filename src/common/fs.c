#include "common/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"

int bo_fs_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) {
        return BO_ETOOBIG;
    }
    return BO_OK;
}

static int write_all(int fd, const struct iovec *iov, int iovcnt)
{
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            ssize_t n = write(fd, p, left);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return -1;
            }
            p += n;
            left -= (size_t)n;
        }
    }
    return 0;
}

int bo_fs_sync_dir(const char *dir, struct bo_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "open directory '%s': %s", dir, strerror(e));
    }
    int rv = BO_OK;
    if (fsync(fd) != 0) {
        int e = errno;
        rv = bo_errf(err, bo_err_from_errno(e), "fsync directory '%s': %s", dir, strerror(e));
    }
    close(fd);
    return rv;
}

int bo_fs_write_atomic(const char *dir, const char *name, const char *tmp_prefix,
                       const struct iovec *iov, int iovcnt, struct bo_err *err)
{
    char tmp[PATH_MAX], dst[PATH_MAX], tmpname[NAME_MAX + 1];
    int n = snprintf(tmpname, sizeof(tmpname), "%s%s", tmp_prefix, name);
    if (n < 0 || (size_t)n >= sizeof(tmpname) || bo_fs_join(tmp, sizeof(tmp), dir, tmpname) ||
        bo_fs_join(dst, sizeof(dst), dir, name)) {
        return bo_errf(err, BO_ETOOBIG, "path too long: '%s/%s'", dir, name);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "create '%s': %s", tmp, strerror(e));
    }
    const char *what = "write";
    int e = 0;
    if (write_all(fd, iov, iovcnt) != 0) {
        goto err_after_open;
    }
    what = "fsync";
    if (fsync(fd) != 0) {
        goto err_after_open;
    }
    what = "close";
    int closed = close(fd);
    fd = -1;
    if (closed != 0) {
        goto err_after_open;
    }
    what = "rename";
    if (rename(tmp, dst) != 0) {
        goto err_after_open;
    }
    return bo_fs_sync_dir(dir, err);

err_after_open:
    e = errno;
    if (fd >= 0) {
        close(fd);
    }
    unlink(tmp);
    return bo_errf(err, bo_err_from_errno(e), "%s '%s': %s", what, tmp, strerror(e));
}

int bo_fs_read_file(const char *path, uint8_t **out, size_t *len, struct bo_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "open '%s': %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return bo_errf(err, bo_err_from_errno(e), "stat '%s': %s", path, strerror(e));
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = bo_malloc(size);
    if (buf == NULL) {
        close(fd);
        return bo_errf(err, BO_ENOMEM, "read '%s': out of memory (%zu bytes)", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            bo_free(buf);
            close(fd);
            return bo_errf(err, bo_err_from_errno(e), "read '%s': %s", path,
                           r < 0 ? strerror(e) : "file shrank while reading");
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = size;
    return BO_OK;
}

int bo_fs_mkdirs(const char *path, struct bo_err *err)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(buf)) {
        return bo_errf(err, BO_EINVAL, "bad directory path '%s'", path);
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') {
            continue;
        }
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            return bo_errf(err, bo_err_from_errno(e), "mkdir '%s': %s", buf, strerror(e));
        }
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return bo_errf(err, BO_EINVAL, "'%s' is not a directory", path);
    }
    return BO_OK;
}

int bo_fs_dir_empty(const char *dir, struct bo_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            return BO_OK;
        }
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "open directory '%s': %s", dir, strerror(e));
    }
    int rv = BO_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            rv = bo_errf(err, BO_ENOTEMPTY, "directory '%s' is not empty (has '%s')", dir,
                         de->d_name);
            break;
        }
    }
    closedir(d);
    return rv;
}
