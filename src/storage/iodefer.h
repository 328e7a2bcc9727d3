/*
 * iodefer.h - io_destroy(2) off the event loop.
 *
 * libraft's disk I/O (raft_uv, 0.15) writes each open log segment through
 * a kernel AIO context and, when the segment is finalized, destroys that
 * context with io_destroy(2) on the loop thread. io_destroy returns only
 * once the kernel has freed the context, after an RCU grace period: 30 to
 * 45 ms on this project's virtual machines, during which every write in
 * flight waits (docs/benchmarks.md, "Stall"). raft reaches the kernel through
 * libc's syscall(3); iodefer.c defines syscall() in the executable, which the
 * dynamic linker binds libraft to, passes every call but io_destroy to libc
 * unchanged, and hands io_destroy to a thread of its own.
 *
 * Deferring is safe because raft destroys a context only when nothing is in
 * flight on it (a segment is finalized after its last write completed, and
 * closing waits for writes) and never uses the id again; the kernel keeps
 * the context until the thread destroys it, or frees it at exit. A deferred
 * io_destroy returns 0: raft ignores its result.
 *
 * BO_IODEFER=0 in the environment turns deferral off (for comparisons).
 */
#ifndef BO_STORAGE_IODEFER_H
#define BO_STORAGE_IODEFER_H

#include <stdint.h>

/* Links the shim into any program that opens a storage (storage.c calls it)
 * and starts the thread. Idempotent, thread-safe; without a thread (it could
 * not start, or BO_IODEFER=0) io_destroy runs where it is called. */
void bo_iodefer_init(void);

/* Contexts destroyed by the thread so far. */
uint64_t bo_iodefer_destroyed(void);

/* Wait until every deferred io_destroy has run, at most `timeout_ms`.
 * True if none is left. For tests. */
int bo_iodefer_drain(unsigned timeout_ms);

#endif
