/*
 * fs.h - file helpers with the durability rules of the project.
 *
 * bo_fs_write_atomic() is the only way Borealis writes a file that must survive
 * a crash: write a temporary file beside the target, fsync it, rename it over
 * the target, fsync the directory (git's lockfile.h, raft's UvFsSyncDir). A
 * crash at any point leaves either the old file or the new one, never a mix;
 * on error the temporary file is removed and the target is untouched.
 *
 * All functions are blocking: call them from a worker thread when on a loop.
 */
#ifndef BO_FS_H
#define BO_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/err.h"

/* Write the concatenation of `iov` to `dir`/`name` atomically. The temporary
 * file is `dir`/`tmp_prefix``name` (Aurora's backups use "temp_"). */
int bo_fs_write_atomic(const char *dir, const char *name, const char *tmp_prefix,
                       const struct iovec *iov, int iovcnt, struct bo_err *err);

/* Read a whole file into a fresh bo_malloc'd buffer (*out, *len). */
int bo_fs_read_file(const char *path, uint8_t **out, size_t *len, struct bo_err *err);

/* mkdir -p with mode 0755. */
int bo_fs_mkdirs(const char *path, struct bo_err *err);

/* fsync a directory so a rename or unlink inside it is durable. */
int bo_fs_sync_dir(const char *dir, struct bo_err *err);

/* BO_OK if `dir` does not exist or has no entries other than "." and "..";
 * BO_ENOTEMPTY otherwise. */
int bo_fs_dir_empty(const char *dir, struct bo_err *err);

/* snprintf into a fixed buffer; BO_ETOOBIG if the result would not fit. */
int bo_fs_join(char *out, size_t size, const char *dir, const char *name);

#endif
