/*
 * wbuf.h - an SQLite VFS that writes adjacent pages with one write.
 *
 * For a connection that builds a file it throws away on any error (a
 * restore): SQLite writes a fresh database 4 KB at a time, and on the VMs we
 * run on a 64 KB write costs a quarter per byte of 16 separate ones. Write
 * errors may surface at a later call than the write that caused them, so the
 * owner flushes with sqlite3_file_control(db, "main", BO_WBUF_FCNTL_FLUSH,
 * NULL) and checks the result before trusting the file. No shared memory and
 * no memory-mapped I/O: use with journal_mode=OFF (or a rollback journal),
 * not WAL; for WAL, the variant below. Design and failure modes in wbuf.c.
 */
#ifndef BO_WBUF_H
#define BO_WBUF_H

#include <sqlite3.h>

#define BO_WBUF_VFS "bo-wbuf"

/* A file control opcode of ours (SQLite leaves opcodes from 100 up to
 * applications): write out what is buffered; returns the write's result. */
#define BO_WBUF_FCNTL_FLUSH 0x626f01

/* The VFS's name for sqlite3_open_v2, registered on first use (any thread);
 * NULL if it cannot be (then open with the default VFS). */
const char *bo_wbuf_vfs(void);

/* The WAL variant, for the store's writing connection: WAL files are
 * written through a shared map of the file (or, where it cannot be mapped,
 * a buffer), the database file's shared memory and mapped reads pass
 * through, and a sync writes the buffer out without syncing the file (the
 * store is a cache rebuilt at every start). Open with synchronous=FULL: SQLite
 * then syncs the WAL at every commit before it publishes the new frames to
 * other connections (the wal-index header), so they never read a frame still
 * in the buffer, and a failed write fails the commit. Only the connection
 * opened here may truncate the WAL (no TRUNCATE checkpoints or size limits
 * on other connections): a page cut from under its map would be SIGBUS.
 * BO_WALMAP=0 in the environment buffers instead of mapping. NULL if it
 * cannot be registered (then open with the default VFS and
 * synchronous=OFF). */
#define BO_WBUF_WAL_VFS "bo-wbuf-wal"
const char *bo_wbuf_wal_vfs(void);

#endif
