/*
 * segfill.h - raft's log segments allocated with written zeros.
 *
 * libraft (raft_uv, 0.15) prepares each log segment ahead of use with
 * posix_fallocate(3). On ext4 and XFS that leaves the file's blocks
 * "unwritten": reading them returns zeros, and the first write into each
 * block must convert it, a metadata change the journal commits. raft writes
 * its log with direct, data-synchronous kernel AIO and asks for it not to
 * block (RWF_NOWAIT); a write needing that conversion is refused (EAGAIN),
 * and raft submits it again from a thread of libuv's pool, where it waits
 * for a journal commit. Every append of every batch paid both: a hop
 * through the pool and a journal commit behind whatever else the journal
 * carries (a snapshot file being written, say). docs/benchmarks.md
 * ("Fourth pass") has the traces and the numbers.
 *
 * segfill.c defines posix_fallocate() in the executable, which the dynamic
 * linker binds libraft to. For a new, empty file named `open-*` (raft's
 * name for a segment being prepared) it writes the zeros instead, with
 * direct I/O so they leave no page cache behind (a cached page in the range
 * of a direct write makes RWF_NOWAIT refuse it too), then syncs the file's
 * data, so that raft's writes are plain overwrites: no metadata to commit,
 * nothing to wait for. Anything else, and a file system without direct I/O
 * (tmpfs), gets libc's posix_fallocate unchanged.
 *
 * The zeros cost one sequential write of each segment, on raft's preparing
 * thread, before the segment is needed.
 *
 * BO_SEGFILL=0 in the environment turns it off (for comparisons).
 */
#ifndef BO_STORAGE_SEGFILL_H
#define BO_STORAGE_SEGFILL_H

#include <stdint.h>

/* Links the shim into any program that opens a storage (storage.c calls
 * it). Idempotent, thread-safe. */
void bo_segfill_init(void);

/* Segments filled with zeros so far. */
uint64_t bo_segfill_filled(void);

#endif
