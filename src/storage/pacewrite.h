/*
 * pacewrite.h - raft's snapshot files written back a megabyte at a time.
 *
 * libraft (raft_uv, 0.15) writes a snapshot file with one synchronous
 * uv_fs_write of the whole image (46 MB at a million tasks) into the page
 * cache, then fsyncs it: the fsync hands all of it to the disk at once, and
 * the log's appends, which must reach the disk too, queue behind it. Writes
 * due 5,000 times a second saw a commit p99 of 28 ms in the last 0.2 s of
 * every snapshot (docs/benchmarks.md, "Fourth pass").
 *
 * pacewrite.c defines uv_fs_write() in the executable, which the dynamic
 * linker binds libraft to. A synchronous write of more than a megabyte is
 * done a megabyte at a time, each megabyte written back and waited for
 * (sync_file_range(2)) before the next is written, so no more than one is
 * ever queued ahead of an append; the fsync that follows finds nothing left
 * to write. Everything else (asynchronous requests, small writes) goes to
 * libuv's uv_fs_write unchanged. Nothing else in the process calls
 * uv_fs_write; libuv's own requests do not pass through the symbol.
 *
 * BO_PACEWRITE=0 in the environment turns it off (for comparisons).
 */
#ifndef BO_STORAGE_PACEWRITE_H
#define BO_STORAGE_PACEWRITE_H

#include <stdint.h>

/* Bytes written at a time, and the size above which a write is paced. */
#define BO_PACEWRITE_CHUNK (1u << 20)

/* Links the shim into any program that opens a storage (storage.c calls
 * it). Idempotent, thread-safe. */
void bo_pacewrite_init(void);

/* Writes paced so far. */
uint64_t bo_pacewrite_paced(void);

#endif
