/*
 * iodefer.c - io_destroy(2) on a thread of its own (iodefer.h says why).
 *
 * Happy path. syscall() below is what libraft's io_destroy calls bind to.
 * With the thread running, an io_destroy puts its context id in a small
 * ring and returns 0; the thread takes ids off the ring and destroys them
 * through libc's syscall(), found once with dlsym(RTLD_NEXT). Every other
 * number goes straight to libc's syscall() with its six argument words
 * (what the ABI passes in registers, whatever the call's arity), so errno
 * and the result are libc's own.
 *
 * Failure modes.
 * - The ring is full (the thread fell behind by IODEFER_RING contexts):
 *   the caller destroys its context itself, as without this file.
 * - The thread cannot start, BO_IODEFER=0, or bo_iodefer_init() was never
 *   called: every io_destroy runs where it is called.
 * - libc's syscall() cannot be found: nothing can be forwarded; the process
 *   aborts at the first call, as it could do no system call at all.
 * - A deferred io_destroy that fails (a bad id) is not reported: its caller
 *   has already been told 0. It is not counted as destroyed.
 */
#include "storage/iodefer.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/flags.h"

#define IODEFER_RING 64

typedef long (*syscall_fn)(long number, ...);

static pthread_once_t real_once = PTHREAD_ONCE_INIT;
static syscall_fn real_syscall;

static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool running; /* the thread takes ids */
static unsigned long ring[IODEFER_RING];
static unsigned head, count; /* under mu */
static unsigned busy;        /* ids taken and not yet destroyed, under mu */
static atomic_uint_least64_t destroyed;

static void find_real(void)
{
    real_syscall = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
}

static long forward(long number, long a1, long a2, long a3, long a4, long a5, long a6)
{
    pthread_once(&real_once, find_real);
    if (real_syscall == NULL) {
        abort();
    }
    return real_syscall(number, a1, a2, a3, a4, a5, a6);
}

static void *reaper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (count == 0) {
            pthread_cond_wait(&cv, &mu);
        }
        unsigned long ctx = ring[head];
        head = (head + 1) % IODEFER_RING;
        count--;
        busy++;
        pthread_mutex_unlock(&mu);
        long rv = forward(SYS_io_destroy, (long)ctx, 0, 0, 0, 0, 0);
        if (rv == 0) {
            atomic_fetch_add(&destroyed, 1);
        }
        pthread_mutex_lock(&mu);
        busy--;
        pthread_cond_broadcast(&cv);
    }
    return NULL;
}

static void start(void)
{
    if (!bo_flags_env_on("BO_IODEFER")) {
        return;
    }
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        return;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    if (pthread_create(&t, &attr, reaper_main, NULL) == 0) {
        pthread_mutex_lock(&mu);
        running = true;
        pthread_mutex_unlock(&mu);
    }
    pthread_attr_destroy(&attr);
}

void bo_iodefer_init(void)
{
    pthread_once(&start_once, start);
}

uint64_t bo_iodefer_destroyed(void)
{
    return atomic_load(&destroyed);
}

int bo_iodefer_drain(unsigned timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mu);
    int rc = 0;
    while ((count > 0 || busy > 0) && rc == 0) {
        rc = pthread_cond_timedwait(&cv, &mu, &until);
    }
    bool empty = count == 0 && busy == 0;
    pthread_mutex_unlock(&mu);
    return empty;
}

/* Queue `ctx` for the thread; false if it is not running or the ring is
 * full. */
static bool defer(unsigned long ctx)
{
    pthread_mutex_lock(&mu);
    bool queued = running && count < IODEFER_RING;
    if (queued) {
        ring[(head + count) % IODEFER_RING] = ctx;
        count++;
        pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&mu);
    return queued;
}

/* Interposes libc's syscall(3) for the whole program (iodefer.h). It
 * reads six argument words whatever the call passed, as libc's own does:
 * the first five sit in registers, the sixth is read from the caller's
 * stack frame and passed on unused. AddressSanitizer would report that
 * read, so this one function is not instrumented. */
__attribute__((no_sanitize_address)) long syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_io_destroy && defer((unsigned long)a1)) {
        return 0;
    }
    return forward(number, a1, a2, a3, a4, a5, a6);
}
