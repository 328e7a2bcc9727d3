/*
 * jemalloc_conf.c - the scheduler's allocator settings, read by jemalloc at
 * its start (the `malloc_conf` symbol; docs/architecture.md, "Memory
 * allocator"). Linked only into binaries that link jemalloc.
 *
 * Freed pages go back to the kernel after a second instead of ten: a
 * scheduler batch frees tens of megabytes at once, and with the default
 * delay the peak resident size of a million-task run was 900 MB instead of
 * 790 MB, at the same throughput.
 */
const char *malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0";
