/*
 * backup.c - backup files in a directory, with retention.
 *
 * Happy path: a backup is written under its final name through
 * bo_fs_write_atomic with the "temp_" prefix (temporary file, fsync, rename,
 * fsync of the directory), then older backups beyond the retention count are
 * unlinked. Names carry the UTC minute, so sorting names sorts time; two
 * backups in the same minute share a name and the later one replaces the
 * earlier, as in Aurora.
 *
 * Failure modes: a failed write leaves the previous backups untouched and no
 * temporary (bo_fs_write_atomic removes it). A crash between the temporary's
 * creation and the rename leaves a "temp_" file behind; prune removes those.
 * A backup whose header or payload checksum does not match is BO_ECORRUPT on
 * read. Directory errors are translated from errno with the path quoted.
 */
#include "storage/backup.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/mem.h"
#include "storage/snapshot.h"

void bo_backup_name(int64_t now_ms, char out[BO_BACKUP_NAME_MAX])
{
    time_t secs = (time_t)(now_ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        memset(&tm, 0, sizeof(tm));
    }
    snprintf(out, BO_BACKUP_NAME_MAX, "%s%04d-%02d-%02d-%02d-%02d", BO_BACKUP_PREFIX,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
}

int bo_backup_is_name(const char *name)
{
    size_t plen = strlen(BO_BACKUP_PREFIX);
    if (strncmp(name, BO_BACKUP_PREFIX, plen) != 0) {
        return 0;
    }
    /* YYYY-MM-DD-HH-MM: digits with dashes at fixed places. */
    const char *p = name + plen;
    static const char shape[] = "dddd-dd-dd-dd-dd";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd' ? (p[i] < '0' || p[i] > '9') : p[i] != shape[i]) {
            return 0;
        }
    }
    return p[sizeof(shape) - 1] == '\0';
}

static int is_temporary(const char *name)
{
    size_t tlen = strlen(BO_BACKUP_TMP_PREFIX);
    return strncmp(name, BO_BACKUP_TMP_PREFIX, tlen) == 0 && bo_backup_is_name(name + tlen);
}

int bo_backup_write(const char *dir, const char *name, const uint8_t *image, size_t len,
                    struct bo_err *err)
{
    if (!bo_backup_is_name(name)) {
        return bo_errf(err, BO_EINVAL, "write backup: bad name '%s'", name);
    }
    int rv = bo_fs_mkdirs(dir, err);
    if (rv != BO_OK) {
        return bo_err_wrapf(err, rv, "write backup '%s'", name);
    }
    struct iovec iov = {(void *)image, len};
    rv = bo_fs_write_atomic(dir, name, BO_BACKUP_TMP_PREFIX, &iov, 1, err);
    if (rv != BO_OK) {
        return bo_err_wrapf(err, rv, "write backup '%s'", name);
    }
    return BO_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in `dir` accepted by `want`, sorted. */
static int list_names(const char *dir, int (*want)(const char *), char ***names, size_t *n,
                      struct bo_err *err)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        if (e == ENOENT) {
            return BO_OK; /* no backups yet */
        }
        return bo_errf(err, bo_err_from_errno(e), "list backups: open directory '%s': %s", dir,
                       strerror(e));
    }
    char **v = NULL;
    size_t count = 0, cap = 0;
    int rv = BO_OK;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (!want(de->d_name)) {
            continue;
        }
        if (count == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            char **nv = bo_reallocarray(v, ncap, sizeof(*nv));
            if (nv == NULL) {
                rv = bo_errf(err, BO_ENOMEM, "list backups: out of memory");
                goto err_after_open;
            }
            v = nv;
            cap = ncap;
        }
        v[count] = bo_strdup(de->d_name);
        if (v[count] == NULL) {
            rv = bo_errf(err, BO_ENOMEM, "list backups: out of memory");
            goto err_after_open;
        }
        count++;
        errno = 0;
    }
    if (errno != 0) {
        int e = errno;
        rv = bo_errf(err, bo_err_from_errno(e), "list backups: read directory '%s': %s", dir,
                     strerror(e));
        goto err_after_open;
    }
    closedir(d);
    if (count > 1) {
        qsort(v, count, sizeof(*v), cmp_names);
    }
    *names = v;
    *n = count;
    return BO_OK;

err_after_open:
    closedir(d);
    bo_backup_list_free(v, count);
    return rv;
}

int bo_backup_list(const char *dir, char ***names, size_t *n, struct bo_err *err)
{
    return list_names(dir, bo_backup_is_name, names, n, err);
}

void bo_backup_list_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bo_free(names[i]);
    }
    bo_free(names);
}

static int remove_file(const char *dir, const char *name, struct bo_err *err)
{
    char path[PATH_MAX];
    if (bo_fs_join(path, sizeof(path), dir, name) != BO_OK) {
        return bo_errf(err, BO_ETOOBIG, "prune backups: path too long: '%s/%s'", dir, name);
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        int e = errno;
        return bo_errf(err, bo_err_from_errno(e), "prune backups: remove '%s': %s", path,
                       strerror(e));
    }
    return BO_OK;
}

int bo_backup_prune(const char *dir, unsigned keep, struct bo_err *err)
{
    char **names;
    size_t n;
    int rv = list_names(dir, is_temporary, &names, &n, err);
    if (rv != BO_OK) {
        return rv;
    }
    for (size_t i = 0; i < n && rv == BO_OK; i++) {
        rv = remove_file(dir, names[i], err);
    }
    bo_backup_list_free(names, n);
    if (rv != BO_OK) {
        return rv;
    }
    rv = bo_backup_list(dir, &names, &n, err);
    if (rv != BO_OK) {
        return rv;
    }
    /* Oldest first: everything before the newest `keep` goes. */
    for (size_t i = 0; n > keep && i < n - keep && rv == BO_OK; i++) {
        rv = remove_file(dir, names[i], err);
    }
    bo_backup_list_free(names, n);
    if (rv != BO_OK) {
        return rv;
    }
    rv = bo_fs_sync_dir(dir, err);
    return rv == BO_OK ? BO_OK : bo_err_wrapf(err, rv, "prune backups");
}

int bo_backup_read(const char *dir, const char *name, uint8_t **image, size_t *len,
                   struct bo_err *err)
{
    char path[PATH_MAX];
    const char *p = name;
    if (strchr(name, '/') == NULL && dir != NULL) {
        if (bo_fs_join(path, sizeof(path), dir, name) != BO_OK) {
            return bo_errf(err, BO_ETOOBIG, "read backup: path too long: '%s/%s'", dir, name);
        }
        p = path;
    }
    uint8_t *data;
    size_t n;
    int rv = bo_fs_read_file(p, &data, &n, err);
    if (rv != BO_OK) {
        return bo_err_wrapf(err, rv, "read backup");
    }
    const uint8_t *payload;
    size_t plen;
    rv = bo_snap_check_header(data, n, &payload, &plen, err);
    if (rv != BO_OK) {
        bo_free(data);
        return bo_err_wrapf(err, rv, "read backup '%s'", p);
    }
    *image = data;
    *len = n;
    return BO_OK;
}
