/*
 * place.c - task placement over an index of hosts ordered by free resources.
 *
 * Data. Hosts live in a uthash table by name. Attribute values are interned:
 * an attribute name (struct aname) holds a table of its values (struct av),
 * and each value keeps the list of hosts carrying it. A constraint resolves
 * its values to pointers once per call, so checking a host is a few pointer
 * compares over its values. "host" is an ordinary interned attribute whose
 * value is the host name (always a host's first value). A job (uthash by
 * "role/env/name") keeps, for every attribute value of every host it has tasks
 * on, the number of its tasks there (struct count, uthash keyed by the value's
 * pointer). Limit constraints read these counts for any attribute without the
 * index knowing the constraints in advance; bo_place_add_task bumps one count
 * per value of the host (host, rack, zone, ...: a handful).
 *
 * Index. Schedulable hosts (registered, usable, mode NONE or SCHEDULED) sit in
 * one of two treaps, shared and dedicated (hosts carrying "dedicated"), so
 * ordinary jobs never walk over dedicated hosts and dedicated jobs never over
 * shared ones. The order is (class: NONE before SCHEDULED; headroom,
 * descending; name), where headroom is the smallest free fraction over cpu,
 * ram, disk and ports, in millionths: the emptiest hosts come first, in every
 * dimension, and SCHEDULED hosts last. Treap priorities are a hash of the
 * host name, so the shape is deterministic. Each node also keeps the maxima of
 * free cpu, ram, disk and ports over its subtree, and a walk skips every
 * subtree where one maximum is below the task's need (a free-resources tree).
 * A host is re-keyed (erase + insert, O(log H) expected) whenever its free
 * resources, mode, usability or attributes change.
 *
 * Placing a group of n identical tasks, for each class (NONE, then
 * SCHEDULED):
 *  1. walk the candidates in order, checking each host once: the static rules
 *     (usable, maintenance, dedicated, value constraints, attribute present
 *     for limits), then limits and resources. A host that fits takes one task
 *     and joins a ring. The walk stops as soon as n tasks are placed;
 *  2. while tasks remain, go round the ring giving each host one more task
 *     and dropping the hosts that no longer fit.
 * Every veto is final within a call (free resources only shrink and counts
 * only grow while tasks are placed), so no host is checked twice outside the
 * ring. The candidates are the treap, or, when the job has a non-negated value
 * constraint whose values are carried by at most a quarter as many hosts as
 * the treap holds (a dedicated pool, a pinned host), only those hosts, sorted
 * in treap order. Tasks placed earlier in the call are counted through
 * scratch fields stamped with the call's id (per host: tasks placed; per
 * attribute value: tasks placed on hosts carrying it), and their ports stay
 * marked in the host bitmaps until the call ends. So the index is unchanged
 * afterwards, and a call allocates (result and scratch arrays) only before it
 * starts placing.
 *
 * Cost of one call: O(V (c + a) + n (c a + p)), V the hosts visited, c the
 * constraints, a the attribute values per host, p the ports per task, plus
 * O(S log S) on the sorted-candidates path (S hosts). Subtree pruning makes V
 * small when few hosts have room; otherwise V is about n divided by the
 * fraction of visited hosts that fit. A group that does not fit entirely
 * visits every candidate not pruned: O(H) per call, which is why callers
 * should retry a pending group only when bo_place_epoch moves. Accounting
 * (add/remove) is O(a + p + log H). Ports are a bitmap per host over its
 * merged ranges, searched a word at a time from a rotating cursor; ports held
 * outside the ranges (or twice) go to a small uthash multiset, so a remove
 * undoes its add exactly.
 *
 * Pending reasons are computed only when tasks are left over: every
 * registered host is evaluated again, with this call's tasks counted (O(H (c
 * + a)); exact, no sampling). Each host gets one veto, the first of:
 * unavailable, maintenance, a dedicated host and a non-dedicated job, the
 * constraints in request order (value mismatch, or the attribute of a limit
 * missing), a dedicated role mismatch, the limits in request order,
 * insufficient resources (all short dimensions in one veto). Equal vetoes are
 * tallied. The reason is the veto text when all hosts agree, otherwise the
 * three most common with their host counts; ties go in the fixed order
 * insufficient, limit, constraint, dedicated, maintenance, unavailable, then
 * request order.
 *
 * Failure modes: every mutating call checks its arguments and allocates
 * before it changes anything, so BO_EINVAL, BO_ETOOBIG and BO_ENOMEM leave
 * the index as it was. Owner mistakes that can be seen (removing a task of a
 * job that has none on the host) are BO_ENOTFOUND; the amounts passed to a
 * remove are trusted to match the add.
 */
#include "scheduler/place.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/mem.h"

#define uthash_malloc(sz)    bo_malloc(sz)
#define uthash_free(ptr, sz) bo_free(ptr)
#define HASH_NONFATAL_OOM    1
#include <uthash.h>

enum { R_CPU, R_RAM, R_DISK, R_N };
enum { TREE_NONE, TREE_SHARED, TREE_DEDICATED };

#define ATTR_HOST      "host"
#define ATTR_DEDICATED "dedicated"
#define MCPU_PER_CPU   1000.0
#define MAX_CPUS       1e9
#define MAX_MB         (INT64_C(1) << 50)
#define MAX_PORT       65535
#define SCORE_SCALE    1000000.0
#define LIST_RATIO     4
#define REASON_TOP     3
#define MASK_PORTS     (1u << R_N)

/* ---- data ---- */

struct aname {
    UT_hash_handle hh; /* bo_place.anames, by name */
    char *name;
    struct av *values;
};

struct av {
    UT_hash_handle hh; /* aname.values, by value */
    char *value;
    struct aname *name;
    struct host **hosts; /* hosts carrying this value (registered or not) */
    size_t n_hosts, cap_hosts;
    uint64_t call_id; /* call_n is valid when this is the current call */
    uint32_t call_n;  /* tasks placed by the call on hosts with this value */
};

struct prange {
    int32_t lo, hi;
    uint32_t off; /* bit of lo */
};

struct xport {
    UT_hash_handle hh;
    int port;
    uint32_t n;
};

struct ports {
    struct prange *ranges; /* sorted, merged */
    size_t n_ranges;
    uint64_t *bits;
    uint32_t n_bits, n_set, cursor;
    struct xport *extra; /* held outside the ranges, or more than once */
};

struct host {
    UT_hash_handle hh; /* bo_place.hosts, by name */
    char *name;
    char *agent_id;
    bool registered, usable, dedicated;
    Bo__MaintenanceMode mode;
    int64_t total[R_N]; /* cpu in thousandths */
    int64_t used[R_N];
    size_t n_tasks;
    struct av **avs; /* avs[0] is ("host", name); no duplicates */
    size_t n_avs;
    struct ports ports;
    /* treap */
    int tree;
    struct host *left, *right;
    uint64_t prio;
    int cls;       /* key: 0 NONE, 1 SCHEDULED */
    int64_t score; /* key: headroom in millionths, at insertion */
    int64_t max[R_N];
    uint32_t max_ports;
    /* per-call scratch */
    uint64_t call_id, seen_id;
    uint32_t call_k;
};

struct count {
    UT_hash_handle hh; /* job.counts, by av pointer */
    struct av *av;
    int64_t n; /* > 0 */
};

struct job {
    UT_hash_handle hh; /* bo_place.jobs, by key */
    char *key;
    size_t n_tasks;
    struct count *counts;
};

struct bo_place {
    struct host *hosts;
    struct aname *anames;
    struct job *jobs;
    struct host *root[2];
    size_t tree_n[2];
    uint64_t epoch;
    uint64_t call_id;
    size_t n_tasks;
    struct host **scratch; /* per-call arrays, reused */
    size_t cap_scratch;
};

static bool added(const UT_hash_handle *hh)
{
    return hh->tbl != NULL;
}

static int64_t host_free(const struct host *h, int d)
{
    return h->total[d] - h->used[d];
}

static uint32_t host_free_ports(const struct host *h)
{
    return h->ports.n_bits - h->ports.n_set;
}

static int64_t to_mcpu(double cpus)
{
    return llround(cpus * MCPU_PER_CPU);
}

/* ---- interned attribute values ---- */

static struct aname *aname_find(const struct bo_place *p, const char *name)
{
    struct aname *an;
    HASH_FIND_STR(p->anames, name, an);
    return an;
}

static void aname_release_if_unused(struct bo_place *p, struct aname *an)
{
    if (an->values == NULL) {
        HASH_DEL(p->anames, an);
        bo_free(an->name);
        bo_free(an);
    }
}

/* Find or create; a new value has no hosts and goes away with
 * av_release_if_unused unless a host takes it. */
static int av_intern(struct bo_place *p, const char *name, const char *value, struct av **out)
{
    struct aname *an = aname_find(p, name);
    if (an == NULL) {
        an = bo_calloc(1, sizeof(*an));
        if (an == NULL) {
            return BO_ENOMEM;
        }
        an->name = bo_strdup(name);
        if (an->name == NULL) {
            bo_free(an);
            return BO_ENOMEM;
        }
        HASH_ADD_KEYPTR(hh, p->anames, an->name, strlen(an->name), an);
        if (!added(&an->hh)) {
            bo_free(an->name);
            bo_free(an);
            return BO_ENOMEM;
        }
    }
    struct av *av;
    HASH_FIND_STR(an->values, value, av);
    if (av != NULL) {
        *out = av;
        return BO_OK;
    }
    av = bo_calloc(1, sizeof(*av));
    if (av == NULL) {
        goto err_after_aname;
    }
    av->value = bo_strdup(value);
    if (av->value == NULL) {
        goto err_after_av;
    }
    av->name = an;
    HASH_ADD_KEYPTR(hh, an->values, av->value, strlen(av->value), av);
    if (!added(&av->hh)) {
        bo_free(av->value);
        goto err_after_av;
    }
    *out = av;
    return BO_OK;

err_after_av:
    bo_free(av);
err_after_aname:
    aname_release_if_unused(p, an);
    return BO_ENOMEM;
}

static void av_release_if_unused(struct bo_place *p, struct av *av)
{
    if (av->n_hosts > 0) {
        return;
    }
    struct aname *an = av->name;
    HASH_DEL(an->values, av);
    bo_free(av->value);
    bo_free(av->hosts);
    bo_free(av);
    aname_release_if_unused(p, an);
}

static int av_reserve(struct av *av)
{
    if (av->n_hosts < av->cap_hosts) {
        return BO_OK;
    }
    size_t cap = av->cap_hosts == 0 ? 4 : av->cap_hosts * 2;
    struct host **v = bo_reallocarray(av->hosts, cap, sizeof(*v));
    if (v == NULL) {
        return BO_ENOMEM;
    }
    av->hosts = v;
    av->cap_hosts = cap;
    return BO_OK;
}

static void av_add_host(struct av *av, struct host *h)
{
    assert(av->n_hosts < av->cap_hosts);
    av->hosts[av->n_hosts++] = h;
}

static void av_remove_host(struct av *av, const struct host *h)
{
    for (size_t i = 0; i < av->n_hosts; i++) {
        if (av->hosts[i] == h) {
            av->hosts[i] = av->hosts[--av->n_hosts];
            return;
        }
    }
    assert(!"host missing from its attribute value");
}

static bool av_in(struct av *const *v, size_t n, const struct av *av)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] == av) {
            return true;
        }
    }
    return false;
}

/* ---- ports ---- */

static int cmp_range(const void *a, const void *b)
{
    const struct prange *x = a, *y = b;
    if (x->lo != y->lo) {
        return x->lo < y->lo ? -1 : 1;
    }
    return (x->hi > y->hi) - (x->hi < y->hi);
}

static int ports_build(struct ports *pt, const struct bo_place_range *r, size_t n)
{
    memset(pt, 0, sizeof(*pt));
    if (n == 0) {
        return BO_OK;
    }
    struct prange *v = bo_reallocarray(NULL, n, sizeof(*v));
    if (v == NULL) {
        return BO_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        v[i].lo = r[i].lo;
        v[i].hi = r[i].hi;
    }
    if (n > 1) {
        qsort(v, n, sizeof(*v), cmp_range);
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && v[i].lo <= v[m - 1].hi + 1) {
            if (v[i].hi > v[m - 1].hi) {
                v[m - 1].hi = v[i].hi;
            }
        } else {
            v[m++] = v[i];
        }
    }
    uint32_t off = 0;
    for (size_t i = 0; i < m; i++) {
        v[i].off = off;
        off += (uint32_t)(v[i].hi - v[i].lo + 1);
    }
    pt->bits = bo_calloc((off + 63) / 64, sizeof(*pt->bits));
    if (pt->bits == NULL) {
        bo_free(v);
        return BO_ENOMEM;
    }
    pt->ranges = v;
    pt->n_ranges = m;
    pt->n_bits = off;
    return BO_OK;
}

static void ports_release(struct ports *pt)
{
    struct xport *x, *tmp;
    HASH_ITER(hh, pt->extra, x, tmp)
    {
        HASH_DEL(pt->extra, x);
        bo_free(x);
    }
    bo_free(pt->ranges);
    bo_free(pt->bits);
    memset(pt, 0, sizeof(*pt));
}

static bool port_to_off(const struct ports *pt, int32_t port, uint32_t *off)
{
    size_t lo = 0, hi = pt->n_ranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pt->ranges[mid].hi < port) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == pt->n_ranges || port < pt->ranges[lo].lo) {
        return false;
    }
    *off = pt->ranges[lo].off + (uint32_t)(port - pt->ranges[lo].lo);
    return true;
}

static int32_t off_to_port(const struct ports *pt, uint32_t off)
{
    size_t lo = 0, hi = pt->n_ranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pt->ranges[mid].off <= off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    assert(lo > 0);
    const struct prange *r = &pt->ranges[lo - 1];
    return r->lo + (int32_t)(off - r->off);
}

static bool bit_test(const struct ports *pt, uint32_t off)
{
    return (pt->bits[off / 64] >> (off % 64)) & 1u;
}

static void bit_set(struct ports *pt, uint32_t off)
{
    pt->bits[off / 64] |= UINT64_C(1) << (off % 64);
}

static void bit_clear(struct ports *pt, uint32_t off)
{
    pt->bits[off / 64] &= ~(UINT64_C(1) << (off % 64));
}

/* First clear bit in [from, to). */
static bool scan_free(const struct ports *pt, uint32_t from, uint32_t to, uint32_t *out)
{
    while (from < to) {
        uint32_t w = from / 64;
        uint64_t clear = ~pt->bits[w] & (~UINT64_C(0) << (from % 64));
        if (clear != 0) {
            uint32_t off = w * 64 + (uint32_t)__builtin_ctzll(clear);
            if (off >= to) {
                return false;
            }
            *out = off;
            return true;
        }
        from = (w + 1) * 64;
    }
    return false;
}

static bool find_free_bit(const struct ports *pt, uint32_t *out)
{
    uint32_t start = pt->cursor < pt->n_bits ? pt->cursor : 0;
    return scan_free(pt, start, pt->n_bits, out) || scan_free(pt, 0, start, out);
}

/* Hold `port` `n` more times: the bitmap first, the multiset for the rest. */
static int port_hold(struct ports *pt, int32_t port, uint32_t n)
{
    uint32_t off = 0;
    bool took_bit = false;
    if (n > 0 && port_to_off(pt, port, &off) && !bit_test(pt, off)) {
        bit_set(pt, off);
        pt->n_set++;
        took_bit = true;
        n--;
    }
    if (n == 0) {
        return BO_OK;
    }
    struct xport *x;
    int key = port;
    HASH_FIND_INT(pt->extra, &key, x);
    if (x == NULL) {
        x = bo_calloc(1, sizeof(*x));
        if (x == NULL) {
            goto err_after_bit;
        }
        x->port = key;
        HASH_ADD_INT(pt->extra, port, x);
        if (!added(&x->hh)) {
            bo_free(x);
            goto err_after_bit;
        }
    }
    x->n += n;
    return BO_OK;

err_after_bit:
    if (took_bit) {
        bit_clear(pt, off);
        pt->n_set--;
    }
    return BO_ENOMEM;
}

/* The inverse of port_hold(pt, port, 1); a port not held is ignored. */
static void port_release(struct ports *pt, int32_t port)
{
    struct xport *x;
    int key = port;
    HASH_FIND_INT(pt->extra, &key, x);
    if (x != NULL) {
        if (--x->n == 0) {
            HASH_DEL(pt->extra, x);
            bo_free(x);
        }
        return;
    }
    uint32_t off = 0;
    if (port_to_off(pt, port, &off) && bit_test(pt, off)) {
        bit_clear(pt, off);
        pt->n_set--;
    }
}

/* Hold in `dst` every port `src` holds. */
static int ports_rehome(struct ports *dst, const struct ports *src)
{
    uint32_t words = (src->n_bits + 63) / 64;
    for (uint32_t w = 0; w < words; w++) {
        uint64_t bits = src->bits[w];
        while (bits != 0) {
            uint32_t off = w * 64 + (uint32_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            if (port_hold(dst, off_to_port(src, off), 1) != BO_OK) {
                return BO_ENOMEM;
            }
        }
    }
    struct xport *x, *tmp;
    HASH_ITER(hh, src->extra, x, tmp)
    {
        if (port_hold(dst, x->port, x->n) != BO_OK) {
            return BO_ENOMEM;
        }
    }
    return BO_OK;
}

/* ---- the treaps ---- */

static int key_cmp(const struct host *a, const struct host *b)
{
    if (a->cls != b->cls) {
        return a->cls < b->cls ? -1 : 1;
    }
    if (a->score != b->score) {
        return a->score > b->score ? -1 : 1;
    }
    return strcmp(a->name, b->name);
}

static void pull(struct host *n)
{
    for (int d = 0; d < R_N; d++) {
        int64_t m = host_free(n, d);
        if (n->left != NULL && n->left->max[d] > m) {
            m = n->left->max[d];
        }
        if (n->right != NULL && n->right->max[d] > m) {
            m = n->right->max[d];
        }
        n->max[d] = m;
    }
    uint32_t m = host_free_ports(n);
    if (n->left != NULL && n->left->max_ports > m) {
        m = n->left->max_ports;
    }
    if (n->right != NULL && n->right->max_ports > m) {
        m = n->right->max_ports;
    }
    n->max_ports = m;
}

static struct host *rotate_right(struct host *n)
{
    struct host *l = n->left;
    n->left = l->right;
    l->right = n;
    pull(n);
    pull(l);
    return l;
}

static struct host *rotate_left(struct host *n)
{
    struct host *r = n->right;
    n->right = r->left;
    r->left = n;
    pull(n);
    pull(r);
    return r;
}

static struct host *treap_insert(struct host *root, struct host *x)
{
    if (root == NULL) {
        x->left = x->right = NULL;
        pull(x);
        return x;
    }
    if (key_cmp(x, root) < 0) {
        root->left = treap_insert(root->left, x);
        if (root->left->prio > root->prio) {
            return rotate_right(root);
        }
    } else {
        root->right = treap_insert(root->right, x);
        if (root->right->prio > root->prio) {
            return rotate_left(root);
        }
    }
    pull(root);
    return root;
}

/* Every key in `a` is below every key in `b`. */
static struct host *treap_merge(struct host *a, struct host *b)
{
    if (a == NULL) {
        return b;
    }
    if (b == NULL) {
        return a;
    }
    if (a->prio > b->prio) {
        a->right = treap_merge(a->right, b);
        pull(a);
        return a;
    }
    b->left = treap_merge(a, b->left);
    pull(b);
    return b;
}

static struct host *treap_erase(struct host *root, struct host *x)
{
    assert(root != NULL);
    if (root == x) {
        return treap_merge(x->left, x->right);
    }
    if (key_cmp(x, root) < 0) {
        root->left = treap_erase(root->left, x);
    } else {
        root->right = treap_erase(root->right, x);
    }
    pull(root);
    return root;
}

/* Smallest free fraction over the dimensions the host has, in millionths. */
static int64_t headroom(const struct host *h)
{
    double best = 1.0;
    for (int d = 0; d < R_N; d++) {
        if (h->total[d] > 0) {
            double f = (double)host_free(h, d) / (double)h->total[d];
            best = f < best ? f : best;
        }
    }
    if (h->ports.n_bits > 0) {
        double f = (double)host_free_ports(h) / (double)h->ports.n_bits;
        best = f < best ? f : best;
    }
    return best <= 0 ? 0 : (int64_t)(best * SCORE_SCALE);
}

static void unindex(struct bo_place *p, struct host *h)
{
    if (h->tree == TREE_NONE) {
        return;
    }
    int t = h->tree - 1;
    p->root[t] = treap_erase(p->root[t], h);
    p->tree_n[t]--;
    h->tree = TREE_NONE;
}

static bool schedulable_mode(Bo__MaintenanceMode m)
{
    return m == BO__MAINTENANCE_MODE__MAINTENANCE_NONE ||
           m == BO__MAINTENANCE_MODE__MAINTENANCE_SCHEDULED;
}

/* Put `h` where its current state says (or nowhere). */
static void reindex(struct bo_place *p, struct host *h)
{
    unindex(p, h);
    if (!h->registered || !h->usable || !schedulable_mode(h->mode)) {
        return;
    }
    h->tree = h->dedicated ? TREE_DEDICATED : TREE_SHARED;
    h->cls = h->mode == BO__MAINTENANCE_MODE__MAINTENANCE_SCHEDULED;
    h->score = headroom(h);
    int t = h->tree - 1;
    p->root[t] = treap_insert(p->root[t], h);
    p->tree_n[t]++;
}

/* ---- jobs and counts ---- */

static struct count *count_find(const struct job *j, const struct av *av)
{
    struct count *c;
    HASH_FIND(hh, j->counts, &av, sizeof(av), c);
    return c;
}

/* Find or create (with n = 0). */
static struct count *count_ensure(struct job *j, struct av *av)
{
    struct count *c = count_find(j, av);
    if (c != NULL) {
        return c;
    }
    c = bo_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->av = av;
    HASH_ADD(hh, j->counts, av, sizeof(c->av), c);
    if (!added(&c->hh)) {
        bo_free(c);
        return NULL;
    }
    return c;
}

static void count_del(struct job *j, struct count *c)
{
    HASH_DEL(j->counts, c);
    bo_free(c);
}

static void count_sub(struct job *j, const struct av *av, int64_t n)
{
    struct count *c = count_find(j, av);
    assert(c != NULL && c->n >= n);
    c->n -= n;
    if (c->n == 0) {
        count_del(j, c);
    }
}

static struct job *job_find(const struct bo_place *p, const char *key)
{
    struct job *j;
    HASH_FIND_STR(p->jobs, key, j);
    return j;
}

static void job_destroy(struct bo_place *p, struct job *j)
{
    struct count *c, *tmp;
    HASH_ITER(hh, j->counts, c, tmp)
    {
        count_del(j, c);
    }
    HASH_DEL(p->jobs, j);
    bo_free(j->key);
    bo_free(j);
}

/* Tasks of `j` on `h`. */
static int64_t job_on_host(const struct job *j, const struct host *h)
{
    const struct count *c = count_find(j, h->avs[0]);
    return c == NULL ? 0 : c->n;
}

/* ---- hosts ---- */

static struct host *host_alloc(const char *name)
{
    struct host *h = bo_calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->name = bo_strdup(name);
    h->agent_id = bo_strdup("");
    if (h->name == NULL || h->agent_id == NULL) {
        bo_free(h->name);
        bo_free(h->agent_id);
        bo_free(h);
        return NULL;
    }
    h->prio = bo_hash64(name, strlen(name));
    h->mode = BO__MAINTENANCE_MODE__MAINTENANCE_NONE;
    h->usable = true;
    return h;
}

/* Free a host that is in no table and owns no values. */
static void host_free_struct(struct host *h)
{
    ports_release(&h->ports);
    bo_free(h->avs);
    bo_free(h->name);
    bo_free(h->agent_id);
    bo_free(h);
}

static void host_destroy(struct bo_place *p, struct host *h)
{
    unindex(p, h);
    HASH_DEL(p->hosts, h);
    for (size_t i = 0; i < h->n_avs; i++) {
        av_remove_host(h->avs[i], h);
        av_release_if_unused(p, h->avs[i]);
    }
    host_free_struct(h);
}

/* An unregistered host known only from its tasks. */
static int placeholder_new(struct bo_place *p, const char *name, struct host **out)
{
    struct host *h = host_alloc(name);
    if (h == NULL) {
        return BO_ENOMEM;
    }
    struct av *hav;
    if (av_intern(p, ATTR_HOST, name, &hav) != BO_OK) {
        goto err_after_host;
    }
    if (av_reserve(hav) != BO_OK) {
        goto err_after_av;
    }
    h->avs = bo_malloc(sizeof(*h->avs));
    if (h->avs == NULL) {
        goto err_after_av;
    }
    HASH_ADD_KEYPTR(hh, p->hosts, h->name, strlen(h->name), h);
    if (!added(&h->hh)) {
        goto err_after_av;
    }
    h->avs[0] = hav;
    h->n_avs = 1;
    av_add_host(hav, h);
    *out = h;
    return BO_OK;

err_after_av:
    av_release_if_unused(p, hav);
err_after_host:
    host_free_struct(h);
    return BO_ENOMEM;
}

static int check_spec(const struct bo_place_host_spec *s, struct bo_err *err)
{
    if (s->name == NULL || s->name[0] == '\0') {
        return bo_errf(err, BO_EINVAL, "upsert host: no name");
    }
    if (s->agent_id == NULL) {
        return bo_errf(err, BO_EINVAL, "upsert host '%s': no agent id", s->name);
    }
    if (!(s->cpus >= 0 && s->cpus <= MAX_CPUS) || s->ram_mb < 0 || s->ram_mb > MAX_MB ||
        s->disk_mb < 0 || s->disk_mb > MAX_MB) {
        return bo_errf(err, BO_EINVAL, "upsert host '%s': bad resources", s->name);
    }
    if (s->n_ranges > 0 && s->ranges == NULL) {
        return bo_errf(err, BO_EINVAL, "upsert host '%s': no ranges", s->name);
    }
    for (size_t i = 0; i < s->n_ranges; i++) {
        const struct bo_place_range *r = &s->ranges[i];
        if (r->lo < 1 || r->lo > r->hi || r->hi > MAX_PORT) {
            return bo_errf(err, BO_EINVAL, "upsert host '%s': bad port range [%d, %d]", s->name,
                           (int)r->lo, (int)r->hi);
        }
    }
    if (s->n_attrs > 0 && s->attrs == NULL) {
        return bo_errf(err, BO_EINVAL, "upsert host '%s': no attributes", s->name);
    }
    for (size_t i = 0; i < s->n_attrs; i++) {
        const struct bo_place_attr *a = &s->attrs[i];
        if (a->name == NULL || a->name[0] == '\0' || (a->n_values > 0 && a->values == NULL)) {
            return bo_errf(err, BO_EINVAL, "upsert host '%s': bad attribute", s->name);
        }
        for (size_t k = 0; k < a->n_values; k++) {
            if (a->values[k] == NULL) {
                return bo_errf(err, BO_EINVAL, "upsert host '%s': attribute '%s': no value",
                               s->name, a->name);
            }
        }
    }
    return BO_OK;
}

static bool same_values(struct av *const *a, size_t na, struct av *const *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (!av_in(b, nb, a[i])) {
            return false;
        }
    }
    return true;
}

/* For every job with tasks on `h`, a count for each value in `navs` that `h`
 * does not carry yet. */
static int counts_prepare(struct bo_place *p, const struct host *h, struct av *const *navs,
                          size_t n_navs)
{
    struct job *j, *tmp;
    HASH_ITER(hh, p->jobs, j, tmp)
    {
        if (job_on_host(j, h) == 0) {
            continue;
        }
        for (size_t i = 0; i < n_navs; i++) {
            if (!av_in(h->avs, h->n_avs, navs[i]) && count_ensure(j, navs[i]) == NULL) {
                return BO_ENOMEM;
            }
        }
    }
    return BO_OK;
}

static void counts_unprepare(struct bo_place *p, const struct host *h, struct av *const *navs,
                             size_t n_navs)
{
    struct job *j, *tmp;
    HASH_ITER(hh, p->jobs, j, tmp)
    {
        for (size_t i = 0; i < n_navs; i++) {
            struct count *c = av_in(h->avs, h->n_avs, navs[i]) ? NULL : count_find(j, navs[i]);
            if (c != NULL && c->n == 0) {
                count_del(j, c);
            }
        }
    }
}

/* Move the counts of the tasks on `h` from its values to `navs` (prepared). */
static void counts_move(struct bo_place *p, const struct host *h, struct av *const *navs,
                        size_t n_navs)
{
    struct job *j, *tmp;
    HASH_ITER(hh, p->jobs, j, tmp)
    {
        int64_t n = job_on_host(j, h);
        if (n == 0) {
            continue;
        }
        for (size_t i = 0; i < n_navs; i++) {
            if (!av_in(h->avs, h->n_avs, navs[i])) {
                struct count *c = count_find(j, navs[i]);
                assert(c != NULL);
                c->n += n;
            }
        }
        for (size_t i = 0; i < h->n_avs; i++) {
            if (!av_in(navs, n_navs, h->avs[i])) {
                count_sub(j, h->avs[i], n);
            }
        }
    }
}

int bo_place_upsert_host(struct bo_place *p, const struct bo_place_host_spec *spec,
                         struct bo_err *err)
{
    int rv = check_spec(spec, err);
    if (rv != BO_OK) {
        return rv;
    }
    struct host *h;
    HASH_FIND_STR(p->hosts, spec->name, h);
    struct host *fresh = NULL;
    struct av **navs = NULL;
    size_t n_navs = 0;
    struct ports np;
    memset(&np, 0, sizeof(np));
    char *agent = NULL;
    bool moving = false;

    if (h == NULL) {
        fresh = h = host_alloc(spec->name);
        if (h == NULL) {
            goto err_oom;
        }
    }
    agent = bo_strdup(spec->agent_id);
    if (agent == NULL) {
        goto err_oom;
    }
    size_t max_avs = 1;
    for (size_t i = 0; i < spec->n_attrs; i++) {
        if (__builtin_add_overflow(max_avs, spec->attrs[i].n_values, &max_avs)) {
            goto err_oom;
        }
    }
    navs = bo_reallocarray(NULL, max_avs, sizeof(*navs));
    if (navs == NULL) {
        goto err_oom;
    }
    if (fresh != NULL) {
        if (av_intern(p, ATTR_HOST, spec->name, &navs[0]) != BO_OK) {
            goto err_oom;
        }
    } else {
        navs[0] = h->avs[0];
    }
    n_navs = 1;
    for (size_t i = 0; i < spec->n_attrs; i++) {
        const struct bo_place_attr *a = &spec->attrs[i];
        if (strcmp(a->name, ATTR_HOST) == 0) {
            continue;
        }
        for (size_t k = 0; k < a->n_values; k++) {
            struct av *av;
            if (av_intern(p, a->name, a->values[k], &av) != BO_OK) {
                goto err_oom;
            }
            if (!av_in(navs, n_navs, av)) {
                navs[n_navs++] = av;
            }
        }
    }
    for (size_t i = 0; i < n_navs; i++) {
        if (!av_in(h->avs, h->n_avs, navs[i]) && av_reserve(navs[i]) != BO_OK) {
            goto err_oom;
        }
    }
    if (ports_build(&np, spec->ranges, spec->n_ranges) != BO_OK) {
        goto err_oom;
    }
    if (fresh == NULL && ports_rehome(&np, &h->ports) != BO_OK) {
        goto err_oom;
    }
    if (fresh == NULL && h->n_tasks > 0 && !same_values(h->avs, h->n_avs, navs, n_navs)) {
        moving = true;
        if (counts_prepare(p, h, navs, n_navs) != BO_OK) {
            goto err_oom;
        }
    }
    if (fresh != NULL) {
        HASH_ADD_KEYPTR(hh, p->hosts, h->name, strlen(h->name), h);
        if (!added(&h->hh)) {
            goto err_oom;
        }
    }

    /* Nothing fails from here on. */
    if (moving) {
        counts_move(p, h, navs, n_navs);
    }
    for (size_t i = 0; i < n_navs; i++) {
        if (!av_in(h->avs, h->n_avs, navs[i])) {
            av_add_host(navs[i], h);
        }
    }
    for (size_t i = 0; i < h->n_avs; i++) {
        if (!av_in(navs, n_navs, h->avs[i])) {
            av_remove_host(h->avs[i], h);
            av_release_if_unused(p, h->avs[i]);
        }
    }
    bo_free(h->avs);
    h->avs = navs;
    h->n_avs = n_navs;
    h->dedicated = false;
    for (size_t i = 0; i < n_navs; i++) {
        h->dedicated = h->dedicated || strcmp(navs[i]->name->name, ATTR_DEDICATED) == 0;
    }
    unindex(p, h); /* the key reads the ports about to be replaced */
    ports_release(&h->ports);
    h->ports = np;
    bo_free(h->agent_id);
    h->agent_id = agent;
    h->total[R_CPU] = to_mcpu(spec->cpus);
    h->total[R_RAM] = spec->ram_mb;
    h->total[R_DISK] = spec->disk_mb;
    if (!h->registered) {
        h->registered = true;
        h->usable = true;
    }
    reindex(p, h);
    p->epoch++;
    return BO_OK;

err_oom:
    if (moving) {
        counts_unprepare(p, h, navs, n_navs);
    }
    ports_release(&np);
    for (size_t i = 0; i < n_navs; i++) {
        av_release_if_unused(p, navs[i]);
    }
    bo_free(navs);
    bo_free(agent);
    if (fresh != NULL) {
        host_free_struct(fresh);
    }
    return bo_errf(err, BO_ENOMEM, "upsert host '%s': out of memory", spec->name);
}

static struct host *host_find(const struct bo_place *p, const char *name)
{
    struct host *h;
    HASH_FIND_STR(p->hosts, name, h);
    return h;
}

int bo_place_remove_host(struct bo_place *p, const char *name, struct bo_err *err)
{
    struct host *h = host_find(p, name);
    if (h == NULL || !h->registered) {
        return bo_errf(err, BO_ENOTFOUND, "remove host '%s': not registered", name);
    }
    if (h->n_tasks == 0) {
        host_destroy(p, h);
    } else {
        unindex(p, h);
        h->registered = false;
        memset(h->total, 0, sizeof(h->total));
    }
    p->epoch++;
    return BO_OK;
}

int bo_place_set_mode(struct bo_place *p, const char *name, Bo__MaintenanceMode mode,
                      struct bo_err *err)
{
    if (mode < BO__MAINTENANCE_MODE__MAINTENANCE_NONE ||
        mode > BO__MAINTENANCE_MODE__MAINTENANCE_DRAINED) {
        return bo_errf(err, BO_EINVAL, "set mode of host '%s': bad mode %d", name, (int)mode);
    }
    struct host *h = host_find(p, name);
    if (h == NULL) {
        return bo_errf(err, BO_ENOTFOUND, "set mode of host '%s': unknown host", name);
    }
    h->mode = mode;
    reindex(p, h);
    p->epoch++;
    return BO_OK;
}

int bo_place_set_usable(struct bo_place *p, const char *name, bool usable, struct bo_err *err)
{
    struct host *h = host_find(p, name);
    if (h == NULL) {
        return bo_errf(err, BO_ENOTFOUND, "set usable host '%s': unknown host", name);
    }
    h->usable = usable;
    reindex(p, h);
    p->epoch++;
    return BO_OK;
}

/* ---- task accounting ---- */

static int task_args(const char *op, const char *host, const char *job_key, double cpus,
                     int64_t ram_mb, int64_t disk_mb, const int32_t *ports, size_t n_ports,
                     int64_t need[R_N], struct bo_err *err)
{
    if (host == NULL || host[0] == '\0' || job_key == NULL || job_key[0] == '\0') {
        return bo_errf(err, BO_EINVAL, "%s: no host or job key", op);
    }
    if (!(cpus >= 0 && cpus <= MAX_CPUS) || ram_mb < 0 || ram_mb > MAX_MB || disk_mb < 0 ||
        disk_mb > MAX_MB) {
        return bo_errf(err, BO_EINVAL, "%s: job '%s' on host '%s': bad resources", op, job_key,
                       host);
    }
    if (n_ports > 0 && ports == NULL) {
        return bo_errf(err, BO_EINVAL, "%s: job '%s' on host '%s': no ports", op, job_key, host);
    }
    for (size_t i = 0; i < n_ports; i++) {
        if (ports[i] < 1 || ports[i] > MAX_PORT) {
            return bo_errf(err, BO_EINVAL, "%s: job '%s' on host '%s': bad port %d", op, job_key,
                           host, (int)ports[i]);
        }
    }
    need[R_CPU] = to_mcpu(cpus);
    need[R_RAM] = ram_mb;
    need[R_DISK] = disk_mb;
    return BO_OK;
}

int bo_place_add_task(struct bo_place *p, const char *host, const char *job_key, double cpus,
                      int64_t ram_mb, int64_t disk_mb, const int32_t *ports, size_t n_ports,
                      struct bo_err *err)
{
    int64_t need[R_N];
    int rv = task_args("add task", host, job_key, cpus, ram_mb, disk_mb, ports, n_ports, need, err);
    if (rv != BO_OK) {
        return rv;
    }
    struct host *h = host_find(p, host);
    bool new_host = false, new_job = false;
    size_t held = 0;
    if (h != NULL) {
        for (int d = 0; d < R_N; d++) {
            int64_t sum;
            if (__builtin_add_overflow(h->used[d], need[d], &sum)) {
                return bo_errf(err, BO_ETOOBIG, "add task: job '%s' on host '%s': too much used",
                               job_key, host);
            }
        }
    } else {
        if (placeholder_new(p, host, &h) != BO_OK) {
            goto err_oom;
        }
        new_host = true;
    }
    struct job *j = job_find(p, job_key);
    if (j == NULL) {
        j = bo_calloc(1, sizeof(*j));
        if (j == NULL) {
            goto err_after_host;
        }
        j->key = bo_strdup(job_key);
        if (j->key == NULL) {
            bo_free(j);
            goto err_after_host;
        }
        HASH_ADD_KEYPTR(hh, p->jobs, j->key, strlen(j->key), j);
        if (!added(&j->hh)) {
            bo_free(j->key);
            bo_free(j);
            goto err_after_host;
        }
        new_job = true;
    }
    for (size_t i = 0; i < h->n_avs; i++) {
        if (count_ensure(j, h->avs[i]) == NULL) {
            goto err_after_job;
        }
    }
    for (; held < n_ports; held++) {
        if (port_hold(&h->ports, ports[held], 1) != BO_OK) {
            goto err_after_job;
        }
    }

    for (int d = 0; d < R_N; d++) {
        h->used[d] += need[d];
    }
    for (size_t i = 0; i < h->n_avs; i++) {
        count_find(j, h->avs[i])->n++;
    }
    j->n_tasks++;
    h->n_tasks++;
    p->n_tasks++;
    reindex(p, h);
    return BO_OK;

err_after_job:
    while (held > 0) {
        port_release(&h->ports, ports[--held]);
    }
    for (size_t i = 0; i < h->n_avs; i++) {
        struct count *c = count_find(j, h->avs[i]);
        if (c != NULL && c->n == 0) {
            count_del(j, c);
        }
    }
    if (new_job) {
        job_destroy(p, j);
    }
err_after_host:
    if (new_host) {
        host_destroy(p, h);
    }
err_oom:
    return bo_errf(err, BO_ENOMEM, "add task: job '%s' on host '%s': out of memory", job_key, host);
}

int bo_place_remove_task(struct bo_place *p, const char *host, const char *job_key, double cpus,
                         int64_t ram_mb, int64_t disk_mb, const int32_t *ports, size_t n_ports,
                         struct bo_err *err)
{
    int64_t need[R_N];
    int rv =
        task_args("remove task", host, job_key, cpus, ram_mb, disk_mb, ports, n_ports, need, err);
    if (rv != BO_OK) {
        return rv;
    }
    struct host *h = host_find(p, host);
    if (h == NULL) {
        return bo_errf(err, BO_ENOTFOUND, "remove task: unknown host '%s'", host);
    }
    struct job *j = job_find(p, job_key);
    if (j == NULL || job_on_host(j, h) == 0) {
        return bo_errf(err, BO_ENOTFOUND, "remove task: no task of job '%s' on host '%s'", job_key,
                       host);
    }
    for (int d = 0; d < R_N; d++) {
        h->used[d] -= need[d];
    }
    for (size_t i = 0; i < n_ports; i++) {
        port_release(&h->ports, ports[i]);
    }
    for (size_t i = 0; i < h->n_avs; i++) {
        count_sub(j, h->avs[i], 1);
    }
    h->n_tasks--;
    p->n_tasks--;
    if (--j->n_tasks == 0) {
        assert(j->counts == NULL);
        job_destroy(p, j);
    }
    if (!h->registered && h->n_tasks == 0) {
        host_destroy(p, h);
    } else {
        reindex(p, h);
    }
    p->epoch++;
    return BO_OK;
}

/* ---- placement ---- */

enum veto {
    V_OK,
    V_INSUFFICIENT,
    V_LIMIT,
    V_CONSTRAINT,
    V_DEDICATED,
    V_MAINTENANCE,
    V_UNAVAILABLE,
};

struct verdict {
    enum veto kind;
    size_t con;    /* V_CONSTRAINT, V_LIMIT */
    unsigned mask; /* V_INSUFFICIENT: 1 << R_x, MASK_PORTS */
    bool drained;  /* V_MAINTENANCE */
};

/* A constraint with its attribute and values resolved. */
struct ccon {
    const struct bo_place_constraint *c;
    struct aname *name; /* NULL: no host has the attribute */
    struct av **avs;    /* the values some host has */
    size_t n_avs;
};

struct call {
    struct bo_place *p;
    const struct bo_place_request *req;
    struct bo_place_result *res;
    struct job *job; /* NULL: no task of the job accounted */
    uint64_t id;
    size_t n;
    int64_t need[R_N];
    uint32_t n_ports;
    struct ccon *cons;
    size_t n_cons;
    const struct ccon *ded; /* the job's dedicated constraint */
    struct host **slot_host;
    struct host **ring;
    size_t n_ring;
};

static bool veto(struct verdict *v, enum veto kind, size_t con)
{
    v->kind = kind;
    v->con = con;
    return false;
}

static bool host_has_attr(const struct host *h, const struct aname *an)
{
    for (size_t i = 0; i < h->n_avs; i++) {
        if (h->avs[i]->name == an) {
            return true;
        }
    }
    return false;
}

static bool host_has_value(const struct host *h, const struct ccon *cc)
{
    for (size_t i = 0; i < h->n_avs; i++) {
        if (h->avs[i]->name == cc->name && av_in(cc->avs, cc->n_avs, h->avs[i])) {
            return true;
        }
    }
    return false;
}

/* "role/x" for `role`, or "*\/x". */
static bool dedicated_role_ok(const char *value, const char *role)
{
    const char *slash = strchr(value, '/');
    if (slash == NULL) {
        return false;
    }
    size_t len = (size_t)(slash - value);
    if (len == 1 && value[0] == '*') {
        return true;
    }
    return strlen(role) == len && memcmp(value, role, len) == 0;
}

/* The rules that tasks placed in this call cannot change. */
static bool check_static(const struct call *c, const struct host *h, struct verdict *v)
{
    if (!h->usable) {
        return veto(v, V_UNAVAILABLE, 0);
    }
    if (!schedulable_mode(h->mode)) {
        v->drained = h->mode == BO__MAINTENANCE_MODE__MAINTENANCE_DRAINED;
        return veto(v, V_MAINTENANCE, 0);
    }
    if (h->dedicated && c->ded == NULL) {
        return veto(v, V_DEDICATED, 0);
    }
    for (size_t i = 0; i < c->n_cons; i++) {
        const struct ccon *cc = &c->cons[i];
        if (cc->c->kind == BO_PLACE_VALUE) {
            bool has = cc->name != NULL && host_has_value(h, cc);
            if (has == cc->c->negated) {
                return veto(v, V_CONSTRAINT, i);
            }
        } else if (cc->name == NULL || !host_has_attr(h, cc->name)) {
            return veto(v, V_CONSTRAINT, i);
        }
    }
    if (h->dedicated) {
        bool ok = false;
        for (size_t i = 0; i < h->n_avs && !ok; i++) {
            const struct av *av = h->avs[i];
            ok = av->name == c->ded->name && av_in(c->ded->avs, c->ded->n_avs, av) &&
                 dedicated_role_ok(av->value, c->req->role);
        }
        if (!ok) {
            return veto(v, V_DEDICATED, 0);
        }
    }
    return true;
}

/* Tasks of the job on hosts with value `av`, this call's included. */
static int64_t av_tasks(const struct call *c, const struct av *av)
{
    int64_t n = av->call_id == c->id ? av->call_n : 0;
    if (c->job != NULL) {
        const struct count *cnt = count_find(c->job, av);
        n += cnt == NULL ? 0 : cnt->n;
    }
    return n;
}

/* Limits and resources, with this call's tasks counted. */
static bool check_dynamic(const struct call *c, const struct host *h, struct verdict *v)
{
    for (size_t i = 0; i < c->n_cons; i++) {
        const struct ccon *cc = &c->cons[i];
        if (cc->c->kind != BO_PLACE_LIMIT) {
            continue;
        }
        for (size_t k = 0; k < h->n_avs; k++) {
            if (h->avs[k]->name == cc->name && av_tasks(c, h->avs[k]) >= cc->c->limit) {
                return veto(v, V_LIMIT, i);
            }
        }
    }
    int64_t k = h->call_id == c->id ? h->call_k : 0;
    unsigned mask = 0;
    for (int d = 0; d < R_N; d++) {
        if (host_free(h, d) - k * c->need[d] < c->need[d]) {
            mask |= 1u << d;
        }
    }
    if ((int64_t)host_free_ports(h) - k * c->n_ports < (int64_t)c->n_ports) {
        mask |= MASK_PORTS;
    }
    if (mask != 0) {
        v->mask = mask;
        return veto(v, V_INSUFFICIENT, 0);
    }
    return true;
}

static void assign(struct call *c, struct host *h)
{
    if (h->call_id != c->id) {
        h->call_id = c->id;
        h->call_k = 0;
    }
    h->call_k++;
    for (size_t i = 0; i < h->n_avs; i++) {
        struct av *av = h->avs[i];
        if (av->call_id != c->id) {
            av->call_id = c->id;
            av->call_n = 0;
        }
        av->call_n++;
    }
    struct bo_place_result *res = c->res;
    size_t i = res->n_placed++;
    struct bo_place_slot *slot = &res->slots[i];
    slot->host = h->name;
    slot->agent_id = h->agent_id;
    slot->ports = NULL;
    if (c->n_ports > 0) {
        int32_t *ports = res->port_buf + i * c->n_ports;
        for (uint32_t k = 0; k < c->n_ports; k++) {
            uint32_t off = 0;
            bool found = find_free_bit(&h->ports, &off);
            assert(found);
            (void)found;
            bit_set(&h->ports, off);
            h->ports.cursor = off + 1;
            ports[k] = off_to_port(&h->ports, off);
        }
        slot->ports = ports;
    }
    c->slot_host[i] = h;
}

/* Check a host once; true when the group is complete. */
static bool visit(struct call *c, struct host *h)
{
    struct verdict v;
    if (!check_static(c, h, &v) || !check_dynamic(c, h, &v)) {
        return false;
    }
    assign(c, h);
    c->ring[c->n_ring++] = h;
    return c->res->n_placed == c->n;
}

static bool may_fit(const struct call *c, const struct host *n)
{
    for (int d = 0; d < R_N; d++) {
        if (n->max[d] < c->need[d]) {
            return false;
        }
    }
    return n->max_ports >= c->n_ports;
}

/* In-order over the hosts of class `cls`, skipping subtrees without room. */
static bool walk(struct call *c, struct host *n, int cls)
{
    while (n != NULL && may_fit(c, n)) {
        if (n->cls < cls) {
            n = n->right;
        } else if (n->cls > cls) {
            n = n->left;
        } else {
            if (walk(c, n->left, cls) || visit(c, n)) {
                return true;
            }
            n = n->right;
        }
    }
    return false;
}

static void round_robin(struct call *c)
{
    struct verdict v;
    while (c->res->n_placed < c->n && c->n_ring > 0) {
        size_t w = 0;
        for (size_t i = 0; i < c->n_ring; i++) {
            if (c->res->n_placed == c->n) {
                return;
            }
            struct host *h = c->ring[i];
            if (check_dynamic(c, h, &v)) {
                assign(c, h);
                c->ring[w++] = h;
            }
        }
        c->n_ring = w;
    }
}

static int cmp_host_ptr(const void *a, const void *b)
{
    return key_cmp(*(struct host *const *)a, *(struct host *const *)b);
}

/* ---- pending reasons ---- */

/* Tally slots: unavailable, DRAINING, DRAINED, dedicated, insufficient masks
 * 1..15, then per constraint: constraint, then limit. */
#define TALLY_FIXED   (4 + 15)
#define TALLY_CON(i)  (TALLY_FIXED + (i))
#define TALLY_LIM(i)  (TALLY_FIXED + c->n_cons + (i))
#define TALLY_SIZE(n) (TALLY_FIXED + 2 * (n))

static size_t tally_slot(const struct call *c, const struct verdict *v)
{
    switch (v->kind) {
    case V_UNAVAILABLE:
        return 0;
    case V_MAINTENANCE:
        return v->drained ? 2 : 1;
    case V_DEDICATED:
        return 3;
    case V_INSUFFICIENT:
        return 3 + v->mask;
    case V_CONSTRAINT:
        return TALLY_CON(v->con);
    case V_LIMIT:
        return TALLY_LIM(v->con);
    case V_OK:
        break;
    }
    assert(!"no veto");
    return 0;
}

static enum veto tally_kind(const struct call *c, size_t slot)
{
    if (slot == 0) {
        return V_UNAVAILABLE;
    }
    if (slot <= 2) {
        return V_MAINTENANCE;
    }
    if (slot == 3) {
        return V_DEDICATED;
    }
    if (slot < TALLY_FIXED) {
        return V_INSUFFICIENT;
    }
    return slot < TALLY_LIM(0) ? V_CONSTRAINT : V_LIMIT;
}

static void tally_text(const struct call *c, size_t slot, char *out, size_t size)
{
    static const char *const dims[] = {"cpu", "ram", "disk", "ports"};
    switch (tally_kind(c, slot)) {
    case V_UNAVAILABLE:
        snprintf(out, size, "Host is unavailable");
        break;
    case V_MAINTENANCE:
        snprintf(out, size, "Host is in maintenance (%s)", slot == 2 ? "DRAINED" : "DRAINING");
        break;
    case V_DEDICATED:
        snprintf(out, size, "Dedicated host mismatch");
        break;
    case V_CONSTRAINT:
        snprintf(out, size, "Constraint not satisfied: %s", c->cons[slot - TALLY_CON(0)].c->attr);
        break;
    case V_LIMIT:
        snprintf(out, size, "Limit not satisfied: %s", c->cons[slot - TALLY_LIM(0)].c->attr);
        break;
    case V_INSUFFICIENT: {
        unsigned mask = (unsigned)(slot - 3);
        size_t len = (size_t)snprintf(out, size, "Insufficient:");
        const char *sep = " ";
        for (unsigned d = 0; d < 4; d++) {
            if ((mask & (1u << d)) != 0 && len < size) {
                len += (size_t)snprintf(out + len, size - len, "%s%s", sep, dims[d]);
                sep = ", ";
            }
        }
        break;
    }
    case V_OK:
        assert(!"no veto");
        break;
    }
}

/* Does slot a go before slot b? */
static bool tally_before(const struct call *c, const size_t *tally, size_t a, size_t b)
{
    if (tally[a] != tally[b]) {
        return tally[a] > tally[b];
    }
    enum veto ka = tally_kind(c, a), kb = tally_kind(c, b);
    if (ka != kb) {
        return ka < kb;
    }
    return a < b;
}

static void pending_reason(struct call *c, size_t *tally)
{
    struct bo_place_result *res = c->res;
    size_t n_tally = TALLY_SIZE(c->n_cons), registered = 0;
    struct host *h, *tmp;
    HASH_ITER(hh, c->p->hosts, h, tmp)
    {
        if (!h->registered) {
            continue;
        }
        registered++;
        struct verdict v = {V_OK, 0, 0, false};
        if (check_static(c, h, &v) && check_dynamic(c, h, &v)) {
            assert(!"a host that fits was left out");
            continue;
        }
        tally[tally_slot(c, &v)]++;
    }
    if (registered == 0) {
        snprintf(res->reason, sizeof(res->reason), "No hosts");
        return;
    }
    size_t distinct = 0;
    for (size_t i = 0; i < n_tally; i++) {
        distinct += tally[i] > 0;
    }
    size_t len = 0;
    for (size_t k = 0; k < REASON_TOP && k < distinct; k++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < n_tally; i++) {
            if (tally[i] > 0 && (best == SIZE_MAX || tally_before(c, tally, i, best))) {
                best = i;
            }
        }
        char text[BO_PLACE_REASON_MAX];
        tally_text(c, best, text, sizeof(text));
        if (len < sizeof(res->reason)) {
            if (distinct == 1) {
                len += (size_t)snprintf(res->reason + len, sizeof(res->reason) - len, "%s", text);
            } else {
                len += (size_t)snprintf(res->reason + len, sizeof(res->reason) - len,
                                        "%s%s (%zu host%s)", k == 0 ? "" : ", ", text, tally[best],
                                        tally[best] == 1 ? "" : "s");
            }
        }
        tally[best] = 0;
    }
    if (distinct > REASON_TOP && len < sizeof(res->reason)) {
        snprintf(res->reason + len, sizeof(res->reason) - len, ", ...");
    }
}

/* ---- the call ---- */

static int check_request(const struct bo_place_request *r, size_t n, struct bo_err *err)
{
    if (r->role == NULL || r->role[0] == '\0' || r->environment == NULL ||
        r->environment[0] == '\0' || r->name == NULL || r->name[0] == '\0') {
        return bo_errf(err, BO_EINVAL, "place tasks: no job key");
    }
    if (!(r->cpus >= 0 && r->cpus <= MAX_CPUS) || r->ram_mb < 0 || r->ram_mb > MAX_MB ||
        r->disk_mb < 0 || r->disk_mb > MAX_MB) {
        return bo_errf(err, BO_EINVAL, "place tasks: job '%s/%s/%s': bad resources", r->role,
                       r->environment, r->name);
    }
    size_t total;
    if (r->n_ports > MAX_PORT || (r->n_ports > 0 && r->ports == NULL) ||
        bo_mul_overflows(n, r->n_ports, &total)) {
        return bo_errf(err, BO_EINVAL, "place tasks: job '%s/%s/%s': bad ports", r->role,
                       r->environment, r->name);
    }
    for (size_t i = 0; i < r->n_ports; i++) {
        if (r->ports[i] == NULL) {
            return bo_errf(err, BO_EINVAL, "place tasks: job '%s/%s/%s': bad ports", r->role,
                           r->environment, r->name);
        }
    }
    if (r->n_constraints > 0 && r->constraints == NULL) {
        return bo_errf(err, BO_EINVAL, "place tasks: job '%s/%s/%s': no constraints", r->role,
                       r->environment, r->name);
    }
    for (size_t i = 0; i < r->n_constraints; i++) {
        const struct bo_place_constraint *k = &r->constraints[i];
        bool ok = k->attr != NULL && k->attr[0] != '\0' &&
                  (k->kind == BO_PLACE_LIMIT ||
                   (k->kind == BO_PLACE_VALUE && (k->n_values == 0 || k->values != NULL)));
        for (size_t v = 0; ok && k->kind == BO_PLACE_VALUE && v < k->n_values; v++) {
            ok = k->values[v] != NULL;
        }
        if (!ok) {
            return bo_errf(err, BO_EINVAL, "place tasks: job '%s/%s/%s': bad constraint %zu",
                           r->role, r->environment, r->name, i);
        }
    }
    return BO_OK;
}

/* Grow `*v` (of `*cap` elements of `size`) to at least `want`. */
static int grow(void **v, size_t *cap, size_t want, size_t size)
{
    if (*cap >= want) {
        return BO_OK;
    }
    void *nv = bo_reallocarray(*v, want, size);
    if (nv == NULL) {
        return BO_ENOMEM;
    }
    *v = nv;
    *cap = want;
    return BO_OK;
}

/* Resolve constraints and find the job: allocations that need freeing. */
static int call_resolve(struct call *c, struct av ***av_block)
{
    const struct bo_place_request *r = c->req;
    size_t n_values = 0;
    for (size_t i = 0; i < r->n_constraints; i++) {
        if (r->constraints[i].kind == BO_PLACE_VALUE &&
            __builtin_add_overflow(n_values, r->constraints[i].n_values, &n_values)) {
            return BO_ENOMEM;
        }
    }
    c->cons = bo_calloc(r->n_constraints, sizeof(*c->cons));
    *av_block = bo_reallocarray(NULL, n_values == 0 ? 1 : n_values, sizeof(**av_block));
    size_t klen = strlen(r->role) + strlen(r->environment) + strlen(r->name) + 3;
    char *key = bo_malloc(klen);
    if (c->cons == NULL || *av_block == NULL || key == NULL) {
        bo_free(key);
        return BO_ENOMEM;
    }
    snprintf(key, klen, "%s/%s/%s", r->role, r->environment, r->name);
    c->job = job_find(c->p, key);
    bo_free(key);

    struct av **next = *av_block;
    c->n_cons = r->n_constraints;
    for (size_t i = 0; i < r->n_constraints; i++) {
        const struct bo_place_constraint *k = &r->constraints[i];
        struct ccon *cc = &c->cons[i];
        cc->c = k;
        cc->name = aname_find(c->p, k->attr);
        cc->avs = next;
        if (k->kind != BO_PLACE_VALUE) {
            continue;
        }
        for (size_t v = 0; cc->name != NULL && v < k->n_values; v++) {
            struct av *av;
            HASH_FIND_STR(cc->name->values, k->values[v], av);
            if (av != NULL && !av_in(cc->avs, cc->n_avs, av)) {
                cc->avs[cc->n_avs++] = av;
            }
        }
        next += cc->n_avs;
        if (!k->negated && c->ded == NULL && strcmp(k->attr, ATTR_DEDICATED) == 0) {
            c->ded = cc;
        }
    }
    return BO_OK;
}

int bo_place_tasks(struct bo_place *p, const struct bo_place_request *req, size_t n,
                   struct bo_place_result *res, struct bo_err *err)
{
    res->n_placed = 0;
    res->reason[0] = '\0';
    int rv = check_request(req, n, err);
    if (rv != BO_OK || n == 0) {
        return rv;
    }
    struct call c = {
        .p = p,
        .req = req,
        .res = res,
        .n = n,
        .n_ports = (uint32_t)req->n_ports,
        .need = {to_mcpu(req->cpus), req->ram_mb, req->disk_mb},
    };
    struct av **av_block = NULL;
    size_t *tally = NULL;
    rv = call_resolve(&c, &av_block);
    if (rv != BO_OK) {
        goto err_oom;
    }

    /* Candidates: a treap, or the hosts of the rarest required values. */
    int t = c.ded != NULL ? TREE_DEDICATED - 1 : TREE_SHARED - 1;
    const struct ccon *rare = NULL;
    size_t n_rare = SIZE_MAX;
    for (size_t i = 0; i < c.n_cons; i++) {
        const struct ccon *cc = &c.cons[i];
        if (cc->c->kind != BO_PLACE_VALUE || cc->c->negated) {
            continue;
        }
        size_t s = 0;
        for (size_t k = 0; k < cc->n_avs; k++) {
            s += cc->avs[k]->n_hosts;
        }
        if (s < n_rare) {
            rare = cc;
            n_rare = s;
        }
    }
    if (rare != NULL && n_rare > p->tree_n[t] / LIST_RATIO) {
        rare = NULL;
        n_rare = 0;
    }
    if (rare == NULL) {
        n_rare = 0;
    }

    size_t n_ring = n < HASH_COUNT(p->hosts) ? n : HASH_COUNT(p->hosts);
    size_t scratch;
    size_t n_port_buf = n * req->n_ports; /* checked by check_request */
    tally = bo_calloc(TALLY_SIZE(c.n_cons), sizeof(*tally));
    if (tally == NULL || __builtin_add_overflow(n, n_ring, &scratch) ||
        __builtin_add_overflow(scratch, n_rare, &scratch) ||
        grow((void **)&p->scratch, &p->cap_scratch, scratch, sizeof(*p->scratch)) != BO_OK ||
        grow((void **)&res->slots, &res->cap_slots, n, sizeof(*res->slots)) != BO_OK ||
        grow((void **)&res->port_buf, &res->cap_ports, n_port_buf, sizeof(*res->port_buf)) !=
            BO_OK) {
        goto err_oom;
    }
    c.slot_host = p->scratch;
    c.ring = p->scratch + n;
    c.id = ++p->call_id;

    struct host **list = p->scratch + n + n_ring;
    size_t n_list = 0;
    if (rare != NULL) {
        for (size_t k = 0; k < rare->n_avs; k++) {
            const struct av *av = rare->avs[k];
            for (size_t i = 0; i < av->n_hosts; i++) {
                struct host *h = av->hosts[i];
                if (h->tree != TREE_NONE && h->seen_id != c.id) {
                    h->seen_id = c.id;
                    list[n_list++] = h;
                }
            }
        }
        if (n_list > 1) {
            qsort(list, n_list, sizeof(*list), cmp_host_ptr);
        }
    }
    for (int cls = 0; cls < 2 && res->n_placed < n; cls++) {
        c.n_ring = 0;
        if (rare != NULL) {
            for (size_t i = 0; i < n_list; i++) {
                if (list[i]->cls == cls && visit(&c, list[i])) {
                    break;
                }
            }
        } else {
            walk(&c, p->root[t], cls);
        }
        round_robin(&c);
    }
    if (res->n_placed < n) {
        pending_reason(&c, tally);
    }

    /* Unmark the ports: the index is as it was. */
    for (size_t i = 0; i < res->n_placed; i++) {
        struct ports *pt = &c.slot_host[i]->ports;
        for (uint32_t k = 0; k < c.n_ports; k++) {
            uint32_t off = 0;
            bool in = port_to_off(pt, res->slots[i].ports[k], &off);
            assert(in);
            (void)in;
            bit_clear(pt, off);
        }
    }
    bo_free(tally);
    bo_free(av_block);
    bo_free(c.cons);
    return BO_OK;

err_oom:
    bo_free(tally);
    bo_free(av_block);
    bo_free(c.cons);
    return bo_errf(err, BO_ENOMEM, "place tasks: job '%s/%s/%s': out of memory", req->role,
                   req->environment, req->name);
}

void bo_place_result_release(struct bo_place_result *res)
{
    bo_free(res->slots);
    bo_free(res->port_buf);
    memset(res, 0, sizeof(*res));
}

uint64_t bo_place_epoch(const struct bo_place *p)
{
    return p->epoch;
}

/* ---- TaskConfig ---- */

int bo_place_request_from_config(struct bo_place_request *req, const Bo__TaskConfig *tc,
                                 struct bo_err *err)
{
    memset(req, 0, sizeof(*req));
    const Bo__JobKey *k = tc->job;
    if (k == NULL || k->role == NULL || k->environment == NULL || k->name == NULL) {
        return bo_errf(err, BO_EINVAL, "convert task config: no job key");
    }
    req->role = k->role;
    req->environment = k->environment;
    req->name = k->name;
    size_t n_ports = 0;
    for (size_t i = 0; i < tc->n_resources; i++) {
        n_ports += tc->resources[i]->kind_case == BO__RESOURCE__KIND_NAMED_PORT;
    }
    if (n_ports > 0) {
        req->ports = bo_reallocarray(NULL, n_ports, sizeof(*req->ports));
        if (req->ports == NULL) {
            goto err_oom;
        }
    }
    for (size_t i = 0; i < tc->n_resources; i++) {
        const Bo__Resource *r = tc->resources[i];
        bool ok = true;
        switch (r->kind_case) {
        case BO__RESOURCE__KIND_NUM_CPUS:
            req->cpus += r->num_cpus;
            break;
        case BO__RESOURCE__KIND_RAM_MB:
            ok = !__builtin_add_overflow(req->ram_mb, r->ram_mb, &req->ram_mb);
            break;
        case BO__RESOURCE__KIND_DISK_MB:
            ok = !__builtin_add_overflow(req->disk_mb, r->disk_mb, &req->disk_mb);
            break;
        case BO__RESOURCE__KIND_NAMED_PORT:
            req->ports[req->n_ports++] = r->named_port;
            break;
        case BO__RESOURCE__KIND_NUM_GPUS:
            ok = r->num_gpus == 0;
            break;
        default:
            ok = false;
            break;
        }
        if (!ok) {
            bo_place_request_release(req);
            return bo_errf(err, BO_EINVAL, "convert task config: job '%s/%s/%s': bad resource %zu",
                           k->role, k->environment, k->name, i);
        }
    }
    if (tc->n_constraints > 0) {
        req->constraints = bo_calloc(tc->n_constraints, sizeof(*req->constraints));
        if (req->constraints == NULL) {
            goto err_oom;
        }
    }
    for (size_t i = 0; i < tc->n_constraints; i++) {
        const Bo__Constraint *c = tc->constraints[i];
        struct bo_place_constraint *o = &req->constraints[i];
        o->attr = c->name;
        if (c->kind_case == BO__CONSTRAINT__KIND_VALUE && c->value != NULL) {
            o->kind = BO_PLACE_VALUE;
            o->negated = c->value->negated;
            o->values = (const char *const *)c->value->values;
            o->n_values = c->value->n_values;
        } else if (c->kind_case == BO__CONSTRAINT__KIND_LIMIT && c->limit != NULL) {
            o->kind = BO_PLACE_LIMIT;
            o->limit = c->limit->limit;
        } else {
            bo_place_request_release(req);
            return bo_errf(err, BO_EINVAL,
                           "convert task config: job '%s/%s/%s': constraint '%s' has no kind",
                           k->role, k->environment, k->name, c->name);
        }
        req->n_constraints++;
    }
    return BO_OK;

err_oom:
    bo_place_request_release(req);
    return bo_errf(err, BO_ENOMEM, "convert task config: job '%s/%s/%s': out of memory", k->role,
                   k->environment, k->name);
}

void bo_place_request_release(struct bo_place_request *req)
{
    bo_free(req->ports);
    bo_free(req->constraints);
    memset(req, 0, sizeof(*req));
}

/* ---- lifecycle and views ---- */

int bo_place_new(struct bo_place **out)
{
    *out = bo_calloc(1, sizeof(**out));
    return *out == NULL ? BO_ENOMEM : BO_OK;
}

void bo_place_free(struct bo_place *p)
{
    if (p == NULL) {
        return;
    }
    struct job *j, *jtmp;
    HASH_ITER(hh, p->jobs, j, jtmp)
    {
        job_destroy(p, j);
    }
    struct host *h, *htmp;
    HASH_ITER(hh, p->hosts, h, htmp)
    {
        HASH_DEL(p->hosts, h);
        host_free_struct(h);
    }
    struct aname *an, *antmp;
    HASH_ITER(hh, p->anames, an, antmp)
    {
        struct av *av, *avtmp;
        HASH_ITER(hh, an->values, av, avtmp)
        {
            HASH_DEL(an->values, av);
            bo_free(av->value);
            bo_free(av->hosts);
            bo_free(av);
        }
        HASH_DEL(p->anames, an);
        bo_free(an->name);
        bo_free(an);
    }
    bo_free(p->scratch);
    bo_free(p);
}

static void fill_info(const struct host *h, struct bo_place_host_info *o)
{
    o->name = h->name;
    o->agent_id = h->agent_id;
    o->mode = h->mode;
    o->registered = h->registered;
    o->usable = h->usable;
    o->n_tasks = h->n_tasks;
    o->total_cpus = (double)h->total[R_CPU] / MCPU_PER_CPU;
    o->free_cpus = (double)host_free(h, R_CPU) / MCPU_PER_CPU;
    o->total_ram_mb = h->total[R_RAM];
    o->free_ram_mb = host_free(h, R_RAM);
    o->total_disk_mb = h->total[R_DISK];
    o->free_disk_mb = host_free(h, R_DISK);
    o->total_ports = h->registered ? h->ports.n_bits : 0;
    o->free_ports = h->registered ? host_free_ports(h) : 0;
}

bool bo_place_host_get(const struct bo_place *p, const char *name, struct bo_place_host_info *out)
{
    const struct host *h = host_find(p, name);
    if (h == NULL) {
        return false;
    }
    fill_info(h, out);
    return true;
}

int bo_place_foreach_host(const struct bo_place *p, bo_place_host_cb cb, void *ctx)
{
    struct host *h, *tmp;
    HASH_ITER(hh, p->hosts, h, tmp)
    {
        struct bo_place_host_info info;
        fill_info(h, &info);
        int rv = cb(&info, ctx);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

void bo_place_get_stats(const struct bo_place *p, struct bo_place_stats *out)
{
    memset(out, 0, sizeof(*out));
    int64_t total_mcpu = 0, free_mcpu = 0;
    struct host *h, *tmp;
    HASH_ITER(hh, p->hosts, h, tmp)
    {
        if (!h->registered) {
            continue;
        }
        out->n_hosts++;
        out->n_schedulable += h->tree != TREE_NONE;
        total_mcpu += h->total[R_CPU];
        free_mcpu += host_free(h, R_CPU);
        out->total_ram_mb += h->total[R_RAM];
        out->free_ram_mb += host_free(h, R_RAM);
        out->total_disk_mb += h->total[R_DISK];
        out->free_disk_mb += host_free(h, R_DISK);
    }
    out->total_cpus = (double)total_mcpu / MCPU_PER_CPU;
    out->free_cpus = (double)free_mcpu / MCPU_PER_CPU;
    out->n_tasks = p->n_tasks;
}
