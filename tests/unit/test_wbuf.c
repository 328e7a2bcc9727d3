/*
 * test_wbuf.c - the gathering VFS: what goes through it reads back the same,
 * through it and through the default VFS, and a write that fails is reported
 * by some later call, never lost. Its WAL variant: other connections see each
 * commit whole, and a write that fails fails its commit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "storage/wbuf.h"

static char dir[] = "/tmp/bo-test-wbuf-XXXXXX";

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("%s: %s", sql, msg);
    }
}

/* Rows i = from..from+n-1 with a blob of i % 700 + 100 bytes, each byte
 * i % 251, in an order that also rewrites pages already written. */
static int fill_from(sqlite3 *db, int from, int n)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(id, b) VALUES(?1, ?2)", -1, &s, NULL),
                     SQLITE_OK);
    static uint8_t blob[800];
    int rc = SQLITE_OK;
    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        int id = from + (i * 7919) % n;
        memset(blob, id % 251, sizeof(blob));
        sqlite3_bind_int(s, 1, id);
        sqlite3_bind_blob(s, 2, blob, id % 700 + 100, SQLITE_STATIC);
        rc = sqlite3_step(s);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    return rc;
}

static int fill(sqlite3 *db, int n)
{
    return fill_from(db, 0, n);
}

static void check(sqlite3 *db, int n)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT id, b FROM t ORDER BY id", -1, &s, NULL),
                     SQLITE_OK);
    int seen = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        int id = sqlite3_column_int(s, 0);
        const uint8_t *b = sqlite3_column_blob(s, 1);
        int len = sqlite3_column_bytes(s, 1);
        assert_int_equal(id, seen);
        assert_int_equal(len, id % 700 + 100);
        for (int k = 0; k < len; k++) {
            assert_int_equal(b[k], id % 251);
        }
        seen++;
    }
    sqlite3_finalize(s);
    assert_int_equal(seen, n);
    exec_ok(db, "PRAGMA integrity_check");
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *vfs = bo_wbuf_vfs();
    assert_non_null(vfs);
    char p[256];
    path_of(p, sizeof(p), "a.db");
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                     SQLITE_OK);
    /* As a restore runs it: no journal, a small cache that spills, an index
     * built by sorting in temporary files. */
    exec_ok(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA locking_mode=EXCLUSIVE;"
                " PRAGMA cache_size=-256; PRAGMA threads=2; BEGIN;"
                " CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB NOT NULL);");
    enum { N = 20000 };
    assert_int_equal(fill(db, N), SQLITE_OK);
    exec_ok(db, "CREATE INDEX t_b ON t(b); COMMIT;");
    check(db, N); /* read back through the buffer */
    assert_int_equal(sqlite3_file_control(db, "main", BO_WBUF_FCNTL_FLUSH, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    check(db, N);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    unlink(p);
}

/* Files may not grow past `bytes` until fsize_restore (writes past it fail
 * with EFBIG instead of killing the process). */
struct fsize_limit {
    struct rlimit old;
    void (*prev)(int);
};

static void fsize_limit(struct fsize_limit *l, rlim_t bytes)
{
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &l->old), 0);
    l->prev = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = l->old;
    lim.rlim_cur = bytes;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

static void fsize_restore(struct fsize_limit *l)
{
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &l->old), 0);
    signal(SIGXFSZ, l->prev);
}

/* Writes that fail (the file may not grow past 256 KB) come back as an
 * error from a statement or from the flush, whichever writes first. */
static void test_write_error_reported(void **state)
{
    (void)state;
    char p[256];
    path_of(p, sizeof(p), "b.db");
    struct fsize_limit lim;
    fsize_limit(&lim, 256 << 10);
    sqlite3 *db;
    assert_int_equal(
        sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, bo_wbuf_vfs()),
        SQLITE_OK);
    exec_ok(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA locking_mode=EXCLUSIVE;"
                " PRAGMA cache_size=-256; BEGIN;"
                " CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB NOT NULL);");
    int rc = fill(db, 4000);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_file_control(db, "main", BO_WBUF_FCNTL_FLUSH, NULL);
    }
    assert_int_not_equal(rc, SQLITE_OK);
    sqlite3_close(db);
    fsize_restore(&lim);
    unlink(p);
}

static int count_rows(sqlite3 *db)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return n;
}

static void unlink_db(const char *p)
{
    char q[300];
    unlink(p);
    snprintf(q, sizeof(q), "%s-wal", p);
    unlink(q);
    snprintf(q, sizeof(q), "%s-shm", p);
    unlink(q);
}

static sqlite3 *open_wal_writer(const char *p)
{
    const char *vfs = bo_wbuf_wal_vfs();
    assert_non_null(vfs);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                     SQLITE_OK);
    exec_ok(db, "PRAGMA synchronous=FULL; PRAGMA journal_mode=WAL; PRAGMA cache_size=-256;"
                " PRAGMA wal_autocheckpoint=0;"
                " CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB NOT NULL);");
    return db;
}

/* The store's writer: WAL frames gathered, each commit published to other
 * connections (the default VFS, as the store's checkpointer and snapshot
 * views open it) only once its frames are in the file. The reader checks
 * every row after each commit, including pages the writer's small cache
 * spilled into the WAL before the commit, and checkpoints from its side. */
static void test_wal_commits_visible_to_other_connections(void **state)
{
    (void)state;
    char p[256];
    path_of(p, sizeof(p), "w.db");
    sqlite3 *db = open_wal_writer(p);
    sqlite3 *rd;
    assert_int_equal(sqlite3_open_v2(p, &rd, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    enum { N = 12000, STEP = 3000 };
    sqlite3_stmt *ins;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(id, b) VALUES(?1, ?2)", -1, &ins, NULL),
                     SQLITE_OK);
    static uint8_t blob[800];
    for (int done = 0; done < N; done += STEP) {
        exec_ok(db, "BEGIN");
        for (int id = done; id < done + STEP; id++) {
            memset(blob, id % 251, sizeof(blob));
            sqlite3_bind_int(ins, 1, id);
            sqlite3_bind_blob(ins, 2, blob, id % 700 + 100, SQLITE_STATIC);
            assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
        }
        /* Not yet committed: the reader sees the last commit only. */
        assert_int_equal(count_rows(rd), done);
        exec_ok(db, "COMMIT");
        check(rd, done + STEP);
        if (done == STEP) {
            exec_ok(rd, "PRAGMA wal_checkpoint(PASSIVE)");
        }
    }
    sqlite3_finalize(ins);
    check(db, N);
    assert_int_equal(sqlite3_close(rd), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    check(db, N);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    unlink_db(p);
}

/* A WAL write that fails fails its commit, and other connections keep
 * seeing the last commit whole. */
static void test_wal_write_error_fails_the_commit(void **state)
{
    (void)state;
    char p[256];
    path_of(p, sizeof(p), "x.db");
    sqlite3 *db = open_wal_writer(p);
    exec_ok(db, "INSERT INTO t(id, b) VALUES(1, x'01')");
    sqlite3 *rd;
    assert_int_equal(sqlite3_open_v2(p, &rd, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(count_rows(rd), 1);

    struct fsize_limit lim;
    fsize_limit(&lim, 512 << 10);
    exec_ok(db, "BEGIN");
    int rc = fill(db, 4000);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    assert_int_not_equal(rc, SQLITE_OK);
    fsize_restore(&lim);
    assert_int_equal(count_rows(rd), 1);
    exec_ok(rd, "PRAGMA integrity_check");
    sqlite3_close(rd);
    sqlite3_close(db);
    unlink_db(p);
}

/* SQLite truncates the WAL (here: a TRUNCATE checkpoint, and a size limit
 * after each restart) under the writer's map; the writer keeps committing
 * past the old end and the new one, and every commit stays visible. A map
 * left over the truncated pages would end the process with SIGBUS. */
static void test_wal_truncated_under_the_map(void **state)
{
    (void)state;
    char p[256];
    path_of(p, sizeof(p), "t.db");
    sqlite3 *db = open_wal_writer(p);
    exec_ok(db, "PRAGMA journal_size_limit=0");
    sqlite3 *rd;
    assert_int_equal(sqlite3_open_v2(p, &rd, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char wal[300];
    snprintf(wal, sizeof(wal), "%s-wal", p);
    int rows = 0;
    for (int round = 0; round < 4; round++) {
        exec_ok(db, "BEGIN");
        assert_int_equal(fill_from(db, rows, 3000), SQLITE_OK);
        exec_ok(db, "COMMIT");
        rows += 3000;
        assert_int_equal(count_rows(rd), rows);
        struct stat st;
        assert_int_equal(stat(wal, &st), 0);
        assert_true(st.st_size > 1 << 20); /* past the first step of the map */
        exec_ok(db, round % 2 == 0 ? "PRAGMA wal_checkpoint(TRUNCATE)"
                                   : "PRAGMA wal_checkpoint(RESTART)");
        if (round % 2 == 0) {
            assert_int_equal(stat(wal, &st), 0);
            assert_int_equal(st.st_size, 0);
        }
    }
    check(db, rows);
    check(rd, rows);
    exec_ok(rd, "PRAGMA integrity_check");
    assert_int_equal(sqlite3_close(rd), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    unlink_db(p);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_write_error_reported),
        cmocka_unit_test(test_wal_commits_visible_to_other_connections),
        cmocka_unit_test(test_wal_write_error_fails_the_commit),
        cmocka_unit_test(test_wal_truncated_under_the_map),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
