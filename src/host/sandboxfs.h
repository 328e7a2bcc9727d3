/*
 * sandboxfs.h - read-only access to a task sandbox, for the agent's observer.
 *
 * The HTTP observer (Aurora's thermos observer) lets an operator browse a
 * task's sandbox, read a file page by page and tail a log. Every path given
 * here is relative to the sandbox root and must stay inside it:
 *
 *   - an absolute path is refused;
 *   - a `..` component that would climb above the root is refused;
 *   - a symlink, at any component including the last, that resolves outside
 *     the root is refused; one that stays inside is followed.
 *
 * A refused path is BO_EINVAL with the message "path escapes the sandbox"
 * (the HTTP layer maps it to 403); a path that does not exist is BO_ENOTFOUND
 * (404). Other failures are BO_EIO or the translated errno.
 *
 * The check is done by the kernel where it can be: openat2() with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, relative to a descriptor of the
 * sandbox root. Kernels without openat2 (ENOSYS, before 5.6) fall back to
 * realpath() of both paths and a component-wise prefix check, after which the
 * descriptor's own path (/proc/self/fd) is checked again so a symlink swapped
 * in between the check and the open is still caught.
 *
 * `sandbox` is trusted (it comes from the agent, not the request) and may
 * itself be or contain symlinks. Nothing is written, created or followed
 * outside the sandbox. All functions block on file I/O: call them from a worker
 * thread. They keep no state and may be called concurrently from any threads.
 * On failure the output arguments are untouched, except that `out` buffers may
 * have grown capacity (never length).
 */
#ifndef BO_HOST_SANDBOXFS_H
#define BO_HOST_SANDBOXFS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"

/* The message of every refusal, for callers that want to compare. */
#define BO_SBX_ESCAPE_MSG "path escapes the sandbox"

/* Open `rel` inside `sandbox` read-only (O_RDONLY | O_CLOEXEC | O_NOCTTY |
 * O_NONBLOCK, plus `flags`, which may only be 0 or O_DIRECTORY). "" and "."
 * name the root. O_NONBLOCK keeps a FIFO in the sandbox from blocking the
 * open; callers check the file type with fstat. On success stores a new
 * descriptor in *fd, which the caller closes. */
int bo_sbx_open(const char *sandbox, const char *rel, int flags, int *fd, struct bo_err *err);

/* The entries of directory `rel` as a new JSON array (*out, caller decrefs),
 * sorted by name (bytewise), without "." and "..":
 *     {"name": "stdout", "type": "file", "size": 1234, "mtime_ms": 1700000000123,
 *      "mode": "0644"}
 * `type` is "file", "dir", "link" or "other"; symlinks are described, not
 * followed (size is the link's length). `mode` is the permission bits in four
 * octal digits. An entry that vanishes while listing is left out. `rel` naming
 * a non-directory is BO_EINVAL "not a directory". */
int bo_sbx_list(const char *sandbox, const char *rel, json_t **out, struct bo_err *err);

/* Append up to `max_len` bytes of regular file `rel`, starting at `offset`, to
 * `out` and store the file's size (at open time) in *file_size (may be NULL).
 * Fewer bytes are appended at the end of the file; an offset at or past the end
 * appends nothing and is not an error. The caller bounds `max_len` (the
 * observer uses 4 MiB). A non-regular file is BO_EINVAL "not a regular file". */
int bo_sbx_read(const char *sandbox, const char *rel, uint64_t offset, size_t max_len,
                struct bo_buf *out, uint64_t *file_size, struct bo_err *err);

/* Append the last `lines` lines of regular file `rel` to `out`, but at most
 * the last `max_bytes` bytes of the file (then the output may begin mid-line).
 * A final line without a newline counts as a line; a newline that ends the file
 * does not start another one. The file is read backwards from the end in
 * chunks until enough newlines are seen, never whole. `lines` == 0 or
 * `max_bytes` == 0 appends nothing. */
int bo_sbx_tail(const char *sandbox, const char *rel, size_t lines, size_t max_bytes,
                struct bo_buf *out, struct bo_err *err);

/* Internal, for tests: bo_sbx_open forced onto the realpath() fallback used
 * when the kernel has no openat2. */
int bo_sbx__open_fallback(const char *sandbox, const char *rel, int flags, int *fd,
                          struct bo_err *err);

#endif
