/*
 * backup.h - backup files: snapshot images in a directory, with retention.
 *
 * A backup is a snapshot image (snapshot.h) in a file named
 * `scheduler-backup-YYYY-MM-DD-HH-MM` (UTC), written atomically through
 * `temp_scheduler-backup-...` (temporary file, fsync, rename, fsync of the
 * directory). Aurora's backups were plain uncompressed Snapshots; ours are the
 * same deduplicated, compressed images the log uses, since nothing holds a lock
 * while they are written and smaller files keep more history on the same disk
 * (`borealis-log convert` writes the plain form when one is wanted).
 *
 * All functions block on the file system: call them off the loop thread.
 */
#ifndef BO_BACKUP_H
#define BO_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define BO_BACKUP_PREFIX     "scheduler-backup-"
#define BO_BACKUP_TMP_PREFIX "temp_"
#define BO_BACKUP_NAME_MAX   64

/* "scheduler-backup-2026-11-22-05-30" for `now_ms` (UTC). */
void bo_backup_name(int64_t now_ms, char out[BO_BACKUP_NAME_MAX]);

/* True if `name` is a backup file name (not a temporary). */
int bo_backup_is_name(const char *name);

/* Write `image` as backup `name` into `dir` (created if missing). */
int bo_backup_write(const char *dir, const char *name, const uint8_t *image, size_t len,
                    struct bo_err *err);

/* Delete the oldest backups until at most `keep` remain (by name order, which
 * is chronological); leftover temporaries are removed too. */
int bo_backup_prune(const char *dir, unsigned keep, struct bo_err *err);

/* Backup names in `dir`, oldest first; free with bo_backup_list_free. */
int bo_backup_list(const char *dir, char ***names, size_t *n, struct bo_err *err);
void bo_backup_list_free(char **names, size_t n);

/* Read a backup and check its image header and checksum. `name` may be a
 * bare name (looked up in `dir`) or a path. */
int bo_backup_read(const char *dir, const char *name, uint8_t **image, size_t *len,
                   struct bo_err *err);

#endif
