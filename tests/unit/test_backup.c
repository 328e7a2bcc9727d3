/*
 * test_backup.c - backup names, atomic writes, retention, listing, reading.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/mem.h"
#include "storage/backup.h"
#include "storage/snapshot.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/bo-test-backup-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char p[512];
            if (de->d_name[0] != '.') {
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(dir);
    return 0;
}

static size_t count_entries(const char *prefix)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void make_image(struct bo_buf *image)
{
    struct bo_snap_writer *w;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_snap_writer_new(true, BO_CODEC_ZSTD, 0, &w), BO_OK);
    Bo__Snapshot rest = BO__SNAPSHOT__INIT;
    rest.timestamp_ms = 42;
    assert_int_equal(bo_snap_writer_set_rest(w, &rest), BO_OK);
    assert_int_equal(bo_snap_writer_finish(w, image, NULL, &err), BO_OK);
    bo_snap_writer_free(w);
}

static void test_names(void **state)
{
    (void)state;
    char name[BO_BACKUP_NAME_MAX];
    /* 2026-11-22 05:30:59.999 UTC */
    bo_backup_name(1795325459999LL, name);
    assert_string_equal(name, "scheduler-backup-2026-11-22-05-30");
    bo_backup_name(0, name);
    assert_string_equal(name, "scheduler-backup-1970-01-01-00-00");
    assert_true(bo_backup_is_name("scheduler-backup-2026-11-22-05-30"));
    assert_false(bo_backup_is_name("temp_scheduler-backup-2026-11-22-05-30"));
    assert_false(bo_backup_is_name("scheduler-backup-2026-11-22-05-3"));
    assert_false(bo_backup_is_name("scheduler-backup-2026-11-22-05-300"));
    assert_false(bo_backup_is_name("scheduler-backup-2026-11-22_05-30"));
    assert_false(bo_backup_is_name("scheduler-backup-"));
    assert_false(bo_backup_is_name("other"));
}

static void test_write_read(void **state)
{
    (void)state;
    struct bo_buf image = BO_BUF_INIT;
    struct bo_err err = BO_ERR_INIT;
    make_image(&image);
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/nested", dir);
    const char *name = "scheduler-backup-2026-01-01-00-00";
    assert_int_equal(bo_backup_write(sub, name, image.data, image.len, &err), BO_OK);
    assert_int_equal(bo_backup_write(dir, name, image.data, image.len, &err), BO_OK);
    assert_int_equal(count_entries("temp_"), 0);
    uint8_t *got;
    size_t len;
    assert_int_equal(bo_backup_read(dir, name, &got, &len, &err), BO_OK);
    assert_int_equal(len, image.len);
    assert_memory_equal(got, image.data, len);
    bo_free(got);
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", sub, name);
    assert_int_equal(bo_backup_read(NULL, path, &got, &len, &err), BO_OK);
    bo_free(got);
    unlink(path);
    rmdir(sub);
    assert_int_equal(bo_backup_write(dir, "../evil", image.data, image.len, &err), BO_EINVAL);
    assert_int_equal(bo_backup_read(dir, "scheduler-backup-2000-01-01-00-00", &got, &len, &err),
                     BO_ENOTFOUND);

    /* Corruption is detected on read, with the name in the message. */
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 40, SEEK_SET);
    fputc(0x5a ^ image.data[40], f);
    fclose(f);
    assert_int_equal(bo_backup_read(dir, name, &got, &len, &err), BO_ECORRUPT);
    assert_non_null(strstr(err.msg, name));
    /* Truncated file. */
    assert_int_equal(truncate(path, 10), 0);
    assert_int_equal(bo_backup_read(dir, name, &got, &len, &err), BO_ECORRUPT);
    bo_buf_release(&image);
}

static void test_prune_and_list(void **state)
{
    (void)state;
    struct bo_buf image = BO_BUF_INIT;
    struct bo_err err = BO_ERR_INIT;
    make_image(&image);
    /* Written out of order; names sort chronologically. */
    const int64_t minutes[] = {5, 1, 9, 3, 7, 2, 8};
    for (size_t i = 0; i < 7; i++) {
        char name[BO_BACKUP_NAME_MAX];
        bo_backup_name(1700000000000LL + minutes[i] * 60000, name);
        assert_int_equal(bo_backup_write(dir, name, image.data, image.len, &err), BO_OK);
    }
    /* A leftover temporary and an unrelated file. */
    char path[256];
    snprintf(path, sizeof(path), "%s/temp_scheduler-backup-2023-11-14-22-20", dir);
    FILE *f = fopen(path, "w");
    fclose(f);
    snprintf(path, sizeof(path), "%s/README", dir);
    f = fopen(path, "w");
    fclose(f);

    char **names;
    size_t n;
    assert_int_equal(bo_backup_list(dir, &names, &n, &err), BO_OK);
    assert_int_equal(n, 7);
    for (size_t i = 1; i < n; i++) {
        assert_true(strcmp(names[i - 1], names[i]) < 0);
    }
    char newest[BO_BACKUP_NAME_MAX];
    snprintf(newest, sizeof(newest), "%s", names[n - 1]);
    bo_backup_list_free(names, n);

    assert_int_equal(bo_backup_prune(dir, 3, &err), BO_OK);
    assert_int_equal(count_entries("temp_"), 0);
    assert_int_equal(count_entries("README"), 1);
    assert_int_equal(bo_backup_list(dir, &names, &n, &err), BO_OK);
    assert_int_equal(n, 3);
    char want[BO_BACKUP_NAME_MAX];
    const int64_t kept[] = {7, 8, 9};
    for (size_t i = 0; i < 3; i++) {
        bo_backup_name(1700000000000LL + kept[i] * 60000, want);
        assert_string_equal(names[i], want);
    }
    assert_string_equal(names[2], newest);
    bo_backup_list_free(names, n);

    /* Keeping more than there are removes nothing; keep 0 removes all. */
    assert_int_equal(bo_backup_prune(dir, 10, &err), BO_OK);
    assert_int_equal(count_entries("scheduler-backup-"), 3);
    assert_int_equal(bo_backup_prune(dir, 0, &err), BO_OK);
    assert_int_equal(count_entries("scheduler-backup-"), 0);

    /* A missing directory lists as empty. */
    assert_int_equal(bo_backup_list("/tmp/bo-no-such-dir-xyz", &names, &n, &err), BO_OK);
    assert_int_equal(n, 0);
    bo_backup_list_free(names, n);
    bo_buf_release(&image);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_and_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
