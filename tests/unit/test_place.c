/*
 * test_place.c - task placement: constraints, resources, ports, maintenance,
 * group spreading, accounting round trips, placeholders, pending reasons,
 * allocation failures, and a modest scale run checked constraint by
 * constraint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"
#include "scheduler/place.h"

#define MAX_ATTRS 8

static struct bo_place *new_place(void)
{
    struct bo_place *p;
    assert_int_equal(bo_place_new(&p), BO_OK);
    return p;
}

/* Register `name`; `attrs` is "rack=r1;zone=z1" (one value each) or NULL;
 * lo = 0 means no port range. */
static int up_rv(struct bo_place *p, const char *name, double cpus, int64_t ram, int64_t disk,
                 int32_t lo, int32_t hi, const char *attrs, struct bo_err *err)
{
    char buf[256];
    const char *vals[MAX_ATTRS];
    struct bo_place_attr a[MAX_ATTRS];
    size_t n = 0;
    snprintf(buf, sizeof(buf), "%s", attrs != NULL ? attrs : "");
    char *s = buf;
    while (*s != '\0') {
        assert_true(n < MAX_ATTRS);
        char *end = strchr(s, ';');
        if (end != NULL) {
            *end = '\0';
        }
        char *eq = strchr(s, '=');
        assert_non_null(eq);
        *eq = '\0';
        vals[n] = eq + 1;
        a[n].name = s;
        a[n].values = &vals[n];
        a[n].n_values = 1;
        n++;
        if (end == NULL) {
            break;
        }
        s = end + 1;
    }
    char agent[64];
    snprintf(agent, sizeof(agent), "agent-%s", name);
    struct bo_place_range r = {lo, hi};
    struct bo_place_host_spec spec = {name, agent, cpus, ram, disk, &r, lo != 0 ? 1 : 0, a, n};
    return bo_place_upsert_host(p, &spec, err);
}

static void up(struct bo_place *p, const char *name, double cpus, int64_t ram, int64_t disk,
               int32_t lo, int32_t hi, const char *attrs)
{
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(up_rv(p, name, cpus, ram, disk, lo, hi, attrs, &err), BO_OK);
}

/* A big host with ports 31000-31099. */
static void big(struct bo_place *p, const char *name, const char *attrs)
{
    up(p, name, 64, 65536, 65536, 31000, 31099, attrs);
}

static struct bo_place_request rq(const char *role, const char *name, double cpus, int64_t ram,
                                  int64_t disk)
{
    struct bo_place_request r = {role, "prod", name, cpus, ram, disk, NULL, 0, NULL, 0};
    return r;
}

static size_t place(struct bo_place *p, const struct bo_place_request *r, size_t n,
                    struct bo_place_result *res)
{
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_place_tasks(p, r, n, res, &err), BO_OK);
    if (res->n_placed == n) {
        assert_string_equal(res->reason, "");
    } else {
        assert_true(res->reason[0] != '\0');
    }
    return res->n_placed;
}

static void key_of(const struct bo_place_request *r, char *out, size_t size)
{
    snprintf(out, size, "%s/%s/%s", r->role, r->environment, r->name);
}

/* Account every placed task. */
static void commit(struct bo_place *p, const struct bo_place_request *r,
                   const struct bo_place_result *res)
{
    char key[128];
    key_of(r, key, sizeof(key));
    struct bo_err err = BO_ERR_INIT;
    for (size_t i = 0; i < res->n_placed; i++) {
        assert_int_equal(bo_place_add_task(p, res->slots[i].host, key, r->cpus, r->ram_mb,
                                           r->disk_mb, res->slots[i].ports, r->n_ports, &err),
                         BO_OK);
    }
}

static size_t count_on(const struct bo_place_result *res, const char *host)
{
    size_t n = 0;
    for (size_t i = 0; i < res->n_placed; i++) {
        n += strcmp(res->slots[i].host, host) == 0;
    }
    return n;
}

static struct bo_place_host_info info_of(const struct bo_place *p, const char *host)
{
    struct bo_place_host_info info;
    assert_true(bo_place_host_get(p, host, &info));
    return info;
}

static void test_no_hosts(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    assert_int_equal(place(p, &r, 2, &res), 0);
    assert_string_equal(res.reason, "No hosts");
    /* a placeholder is not a host to place on */
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_place_add_task(p, "ghost", "www/prod/other", 1, 1, 1, NULL, 0, &err),
                     BO_OK);
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "No hosts");
    /* n = 0 is a no-op */
    big(p, "a", NULL);
    assert_int_equal(place(p, &r, 0, &res), 0);
    assert_string_equal(res.reason, "");
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_value_constraint(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    big(p, "a", "rack=r1;zone=z1");
    big(p, "b", "rack=r2;zone=z1");
    big(p, "c", "zone=z2");
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    const char *r1[] = {"r1"};
    struct bo_place_constraint c = {"rack", BO_PLACE_VALUE, false, r1, 1, 0};
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    r.constraints = &c;
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 3, &res), 3);
    assert_int_equal(count_on(&res, "a"), 3);

    /* one of several values */
    const char *r2r3[] = {"r3", "r2"};
    c.values = r2r3;
    c.n_values = 2;
    assert_int_equal(place(p, &r, 2, &res), 2);
    assert_int_equal(count_on(&res, "b"), 2);

    /* a value no host has; c has no rack at all */
    const char *r9[] = {"r9"};
    c.values = r9;
    c.n_values = 1;
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "Constraint not satisfied: rack");

    /* an attribute no host has */
    c.attr = "gpu";
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "Constraint not satisfied: gpu");

    /* two constraints: both must hold */
    const char *z1[] = {"z1"};
    struct bo_place_constraint two[] = {{"zone", BO_PLACE_VALUE, false, z1, 1, 0},
                                        {"rack", BO_PLACE_VALUE, false, r2r3, 2, 0}};
    r.constraints = two;
    r.n_constraints = 2;
    assert_int_equal(place(p, &r, 4, &res), 4);
    assert_int_equal(count_on(&res, "b"), 4);
    bo_place_result_release(&res);
    bo_place_free(p);
}

/* A value carried by few hosts: only those are candidates, in the same order
 * as the index (classes, then most free first). */
static void test_rare_candidates(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct bo_err err = BO_ERR_INIT;
    char name[16];
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "h%02d", i);
        big(p, name, NULL);
    }
    up(p, "r1-a", 10, 65536, 65536, 31000, 31099, "rack=r1");
    up(p, "r1-b", 10, 65536, 65536, 31000, 31099, "rack=r1");
    up(p, "r1-c", 10, 65536, 65536, 31000, 31099, "rack=r1");
    up(p, "r1-d", 10, 65536, 65536, 31000, 31099, "rack=r1");
    for (int k = 0; k < 4; k++) {
        assert_int_equal(bo_place_add_task(p, "r1-a", "www/prod/x", 1, 1, 1, NULL, 0, &err), BO_OK);
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(bo_place_add_task(p, "r1-c", "www/prod/x", 1, 1, 1, NULL, 0, &err), BO_OK);
    }
    assert_int_equal(
        bo_place_set_mode(p, "r1-b", BO__MAINTENANCE_MODE__MAINTENANCE_SCHEDULED, &err), BO_OK);
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    const char *r1[] = {"r1"};
    struct bo_place_constraint c[] = {{"rack", BO_PLACE_VALUE, false, r1, 1, 0},
                                      {"host", BO_PLACE_LIMIT, false, NULL, 0, 1}};
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    r.constraints = c;
    r.n_constraints = 2;
    assert_int_equal(place(p, &r, 5, &res), 4);
    assert_string_equal(res.slots[0].host, "r1-d");
    assert_string_equal(res.slots[1].host, "r1-c");
    assert_string_equal(res.slots[2].host, "r1-a");
    assert_string_equal(res.slots[3].host, "r1-b");
    assert_string_equal(res.reason,
                        "Constraint not satisfied: rack (12 hosts), Limit not satisfied: host (4 "
                        "hosts)");
    /* without the limit: NONE hosts fill before the SCHEDULED one */
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 24, &res), 24);
    assert_int_equal(count_on(&res, "r1-b"), 0);
    assert_int_equal(count_on(&res, "r1-a") + count_on(&res, "r1-c") + count_on(&res, "r1-d"), 24);
    assert_int_equal(place(p, &r, 25, &res), 25);
    assert_int_equal(count_on(&res, "r1-b"), 1);
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_negated_and_missing(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    big(p, "a", "rack=r1");
    big(p, "b", "rack=r2");
    big(p, "c", NULL);
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    const char *r1[] = {"r1"};
    struct bo_place_constraint c = {"rack", BO_PLACE_VALUE, true, r1, 1, 0};
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    r.constraints = &c;
    r.n_constraints = 1;
    /* !r1: b, and c that has no rack */
    assert_int_equal(place(p, &r, 2, &res), 2);
    assert_int_equal(count_on(&res, "b"), 1);
    assert_int_equal(count_on(&res, "c"), 1);
    assert_int_equal(place(p, &r, 6, &res), 6);
    assert_int_equal(count_on(&res, "a"), 0);

    /* !r1,r2: only c */
    const char *both[] = {"r1", "r2"};
    c.values = both;
    c.n_values = 2;
    assert_int_equal(place(p, &r, 3, &res), 3);
    assert_int_equal(count_on(&res, "c"), 3);

    /* a negated constraint on an attribute no host has holds everywhere */
    c.attr = "gpu";
    assert_int_equal(place(p, &r, 3, &res), 3);
    assert_int_equal(count_on(&res, "a") + count_on(&res, "b") + count_on(&res, "c"), 3);
    assert_int_equal(count_on(&res, "a"), 1);

    /* a limit on an attribute the host lacks is a constraint veto */
    bo_place_free(p);
    p = new_place();
    big(p, "c", NULL);
    struct bo_place_constraint lim = {"rack", BO_PLACE_LIMIT, false, NULL, 0, 5};
    r.constraints = &lim;
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "Constraint not satisfied: rack");
    c.attr = "rack";
    c.negated = false;
    r.constraints = &c;
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "Constraint not satisfied: rack");
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_limit_host(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    big(p, "a", NULL);
    big(p, "b", NULL);
    big(p, "c", NULL);
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    struct bo_place_constraint c = {"host", BO_PLACE_LIMIT, false, NULL, 0, 1};
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    r.constraints = &c;
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 5, &res), 3);
    assert_string_equal(res.reason, "Limit not satisfied: host");
    assert_int_equal(count_on(&res, "a"), 1);
    assert_int_equal(count_on(&res, "b"), 1);
    assert_int_equal(count_on(&res, "c"), 1);
    commit(p, &r, &res);
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "Limit not satisfied: host");

    /* another job is not limited by these tasks */
    struct bo_place_request other = rq("www", "other", 1, 1, 1);
    other.constraints = &c;
    other.n_constraints = 1;
    assert_int_equal(place(p, &other, 3, &res), 3);

    /* freeing a task of the job frees its slot */
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_place_remove_task(p, "b", "www/prod/web", 1, 1, 1, NULL, 0, &err), BO_OK);
    assert_int_equal(place(p, &r, 2, &res), 1);
    assert_string_equal(res.slots[0].host, "b");
    assert_string_equal(res.slots[0].agent_id, "agent-b");

    /* limit:2 - two per host */
    c.limit = 2;
    r.name = "web2";
    assert_int_equal(place(p, &r, 10, &res), 6);
    assert_int_equal(count_on(&res, "a"), 2);
    assert_int_equal(count_on(&res, "b"), 2);
    assert_int_equal(count_on(&res, "c"), 2);

    /* limit:0 never holds */
    c.limit = 0;
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "Limit not satisfied: host");
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_limit_rack(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    big(p, "a", "rack=r1");
    big(p, "b", "rack=r1");
    big(p, "c", "rack=r2");
    big(p, "d", "rack=r2");
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    struct bo_place_constraint c = {"rack", BO_PLACE_LIMIT, false, NULL, 0, 1};
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    r.constraints = &c;
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 4, &res), 2);
    assert_string_equal(res.reason, "Limit not satisfied: rack");
    assert_int_equal(count_on(&res, "a") + count_on(&res, "b"), 1);
    assert_int_equal(count_on(&res, "c") + count_on(&res, "d"), 1);

    /* an accounted task in r1 leaves only r2 */
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_place_add_task(p, "a", "www/prod/web", 1, 1, 1, NULL, 0, &err), BO_OK);
    assert_int_equal(place(p, &r, 2, &res), 1);
    assert_int_equal(count_on(&res, "c") + count_on(&res, "d"), 1);

    /* limit rack:3: with a's task, r1 takes 2 more, r2 takes 3 */
    c.limit = 3;
    assert_int_equal(place(p, &r, 10, &res), 5);
    assert_int_equal(count_on(&res, "a") + count_on(&res, "b"), 2);
    assert_int_equal(count_on(&res, "c") + count_on(&res, "d"), 3);

    /* rack and host limits together */
    struct bo_place_constraint two[] = {{"rack", BO_PLACE_LIMIT, false, NULL, 0, 3},
                                        {"host", BO_PLACE_LIMIT, false, NULL, 0, 1}};
    r.constraints = two;
    r.n_constraints = 2;
    assert_int_equal(place(p, &r, 10, &res), 3);
    assert_int_equal(count_on(&res, "a"), 0);
    assert_int_equal(count_on(&res, "b"), 1);
    assert_int_equal(count_on(&res, "c"), 1);
    assert_int_equal(count_on(&res, "d"), 1);
    assert_string_equal(res.reason, "Limit not satisfied: host");
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_dedicated(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    big(p, "d1", "dedicated=www/db");
    big(p, "d2", "dedicated=*/shared");
    up(p, "s", 4, 4096, 4096, 31000, 31099, NULL);
    struct bo_place_result res = BO_PLACE_RESULT_INIT;

    /* an ordinary job only goes to the shared host */
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    assert_int_equal(place(p, &r, 3, &res), 3);
    assert_int_equal(count_on(&res, "s"), 3);
    r.cpus = 8;
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason,
                        "Dedicated host mismatch (2 hosts), Insufficient: cpu (1 host)");

    /* a dedicated job goes only to its hosts */
    const char *db[] = {"www/db"};
    struct bo_place_constraint c = {"dedicated", BO_PLACE_VALUE, false, db, 1, 0};
    r = rq("www", "db", 1, 1, 1);
    r.constraints = &c;
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 3, &res), 3);
    assert_int_equal(count_on(&res, "d1"), 3);

    /* role/x needs that role */
    r.role = "other";
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "Constraint not satisfied: dedicated (2 hosts), Dedicated host "
                                    "mismatch (1 host)");

    /* *\/x takes any role */
    const char *shared[] = {"*/shared"};
    c.values = shared;
    assert_int_equal(place(p, &r, 2, &res), 2);
    assert_int_equal(count_on(&res, "d2"), 2);

    /* a dedicated job whose pool is full stays pending */
    r.cpus = 100;
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(
        res.reason, "Constraint not satisfied: dedicated (2 hosts), Insufficient: cpu (1 host)");
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_insufficient(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    up(p, "a", 4, 1024, 2048, 31000, 31001, NULL);
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    const char *two[] = {"http", "admin"};
    const char *three[] = {"http", "admin", "debug"};
    static const struct {
        double cpus;
        int64_t ram, disk;
        size_t n_ports;
        const char *reason;
    } cases[] = {
        {4.001, 1, 1, 0, "Insufficient: cpu"},
        {1, 1025, 1, 0, "Insufficient: ram"},
        {1, 1, 2049, 0, "Insufficient: disk"},
        {1, 1, 1, 3, "Insufficient: ports"},
        {5, 2000, 1, 0, "Insufficient: cpu, ram"},
        {1, 2000, 4096, 3, "Insufficient: ram, disk, ports"},
        {5, 2000, 4096, 3, "Insufficient: cpu, ram, disk, ports"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bo_place_request r = rq("www", "web", cases[i].cpus, cases[i].ram, cases[i].disk);
        r.ports = three;
        r.n_ports = cases[i].n_ports;
        assert_int_equal(place(p, &r, 1, &res), 0);
        assert_string_equal(res.reason, cases[i].reason);
    }
    /* an exact fit fits */
    struct bo_place_request r = rq("www", "web", 4, 1024, 2048);
    r.ports = two;
    r.n_ports = 2;
    assert_int_equal(place(p, &r, 1, &res), 1);
    /* counted within the call */
    r = rq("www", "web", 1.5, 100, 100);
    assert_int_equal(place(p, &r, 3, &res), 2);
    assert_string_equal(res.reason, "Insufficient: cpu");
    commit(p, &r, &res);
    r = rq("www", "web", 1, 100, 100);
    assert_int_equal(place(p, &r, 3, &res), 1);
    assert_string_equal(res.reason, "Insufficient: cpu");
    bo_place_result_release(&res);
    bo_place_free(p);
}

static bool in_ranges(int32_t port)
{
    return (port >= 31000 && port <= 31002) || (port >= 40000 && port <= 40001);
}

static void test_ports(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct bo_place_range ranges[] = {{40000, 40001}, {31000, 31001}, {31001, 31002}};
    struct bo_place_host_spec spec = {"a", "agent-a", 8, 8192, 8192, ranges, 3, NULL, 0};
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_place_upsert_host(p, &spec, &err), BO_OK);
    assert_int_equal(info_of(p, "a").total_ports, 5);
    assert_int_equal(info_of(p, "a").free_ports, 5);

    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    const char *names[] = {"http", "admin"};
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    r.ports = names;
    r.n_ports = 2;
    assert_int_equal(place(p, &r, 3, &res), 2);
    assert_string_equal(res.reason, "Insufficient: ports");
    int32_t seen[4];
    for (size_t i = 0; i < 2; i++) {
        for (size_t k = 0; k < 2; k++) {
            int32_t port = res.slots[i].ports[k];
            assert_true(in_ranges(port));
            for (size_t j = 0; j < i * 2 + k; j++) {
                assert_int_not_equal(seen[j], port);
            }
            seen[i * 2 + k] = port;
        }
    }
    /* placement changed nothing */
    assert_int_equal(info_of(p, "a").free_ports, 5);
    commit(p, &r, &res);
    assert_int_equal(info_of(p, "a").free_ports, 1);

    /* the one port left */
    r.n_ports = 1;
    assert_int_equal(place(p, &r, 2, &res), 1);
    int32_t last = res.slots[0].ports[0];
    assert_true(in_ranges(last));
    for (size_t j = 0; j < 4; j++) {
        assert_int_not_equal(seen[j], last);
    }

    /* removing a task frees exactly its ports */
    assert_int_equal(bo_place_remove_task(p, "a", "www/prod/web", 1, 1, 1, seen, 2, &err), BO_OK);
    assert_int_equal(info_of(p, "a").free_ports, 3);
    r.n_ports = 2;
    assert_int_equal(place(p, &r, 2, &res), 1);
    for (size_t k = 0; k < 2; k++) {
        int32_t port = res.slots[0].ports[k];
        assert_true(port == seen[0] || port == seen[1] || port == last);
        assert_true(port != seen[2] && port != seen[3]);
    }
    assert_int_not_equal(res.slots[0].ports[0], res.slots[0].ports[1]);

    /* a port outside the ranges is kept and released, not counted free */
    int32_t odd = 5000;
    assert_int_equal(bo_place_add_task(p, "a", "www/prod/x", 0, 0, 0, &odd, 1, &err), BO_OK);
    assert_int_equal(info_of(p, "a").free_ports, 3);
    assert_int_equal(bo_place_remove_task(p, "a", "www/prod/x", 0, 0, 0, &odd, 1, &err), BO_OK);
    assert_int_equal(info_of(p, "a").free_ports, 3);

    /* a port held twice needs two removes */
    int32_t dup = seen[2];
    assert_int_equal(bo_place_add_task(p, "a", "www/prod/x", 0, 0, 0, &dup, 1, &err), BO_OK);
    assert_int_equal(bo_place_remove_task(p, "a", "www/prod/x", 0, 0, 0, &dup, 1, &err), BO_OK);
    assert_int_equal(info_of(p, "a").free_ports, 3);
    assert_int_equal(bo_place_remove_task(p, "a", "www/prod/web", 1, 1, 1, seen + 2, 2, &err),
                     BO_OK);
    assert_int_equal(info_of(p, "a").free_ports, 5);

    /* no ranges: no ports */
    up(p, "b", 8, 8192, 8192, 0, 0, NULL);
    assert_int_equal(info_of(p, "b").total_ports, 0);
    const char *six[] = {"p1", "p2", "p3", "p4", "p5", "p6"};
    r.ports = six;
    r.n_ports = 6;
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "Insufficient: ports");
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_maintenance(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct bo_err err = BO_ERR_INIT;
    /* names sort against the mode order */
    up(p, "a-sched", 4, 4096, 4096, 31000, 31099, NULL);
    up(p, "b-none", 4, 4096, 4096, 31000, 31099, NULL);
    big(p, "c-drain", NULL);
    big(p, "d-drained", NULL);
    assert_int_equal(
        bo_place_set_mode(p, "a-sched", BO__MAINTENANCE_MODE__MAINTENANCE_SCHEDULED, &err), BO_OK);
    assert_int_equal(
        bo_place_set_mode(p, "c-drain", BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING, &err), BO_OK);
    assert_int_equal(
        bo_place_set_mode(p, "d-drained", BO__MAINTENANCE_MODE__MAINTENANCE_DRAINED, &err), BO_OK);
    assert_int_equal(info_of(p, "c-drain").mode, BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING);

    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    /* NONE takes all it can before SCHEDULED gets one */
    assert_int_equal(place(p, &r, 4, &res), 4);
    assert_int_equal(count_on(&res, "b-none"), 4);
    assert_int_equal(place(p, &r, 6, &res), 6);
    assert_int_equal(count_on(&res, "b-none"), 4);
    assert_int_equal(count_on(&res, "a-sched"), 2);
    assert_int_equal(place(p, &r, 9, &res), 8);
    assert_string_equal(res.reason, "Insufficient: cpu (2 hosts), Host is in maintenance "
                                    "(DRAINING) (1 host), Host is in maintenance (DRAINED) (1 "
                                    "host)");

    struct bo_place_constraint c = {"host", BO_PLACE_LIMIT, false, NULL, 0, 1};
    r.constraints = &c;
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 2, &res), 2);
    assert_string_equal(res.slots[0].host, "b-none");
    assert_string_equal(res.slots[1].host, "a-sched");

    /* only draining hosts */
    assert_int_equal(
        bo_place_set_mode(p, "a-sched", BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING, &err), BO_OK);
    assert_int_equal(
        bo_place_set_mode(p, "b-none", BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING, &err), BO_OK);
    assert_int_equal(
        bo_place_set_mode(p, "d-drained", BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING, &err), BO_OK);
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "Host is in maintenance (DRAINING)");

    /* back to NONE */
    assert_int_equal(bo_place_set_mode(p, "c-drain", BO__MAINTENANCE_MODE__MAINTENANCE_NONE, &err),
                     BO_OK);
    assert_int_equal(place(p, &r, 1, &res), 1);
    assert_string_equal(res.slots[0].host, "c-drain");

    assert_int_equal(bo_place_set_mode(p, "zz", BO__MAINTENANCE_MODE__MAINTENANCE_NONE, &err),
                     BO_ENOTFOUND);
    assert_int_equal(bo_place_set_mode(p, "c-drain", (Bo__MaintenanceMode)9, &err), BO_EINVAL);
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_unusable(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct bo_err err = BO_ERR_INIT;
    big(p, "a", NULL);
    big(p, "b", NULL);
    assert_int_equal(bo_place_set_usable(p, "a", false, &err), BO_OK);
    assert_false(info_of(p, "a").usable);
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    assert_int_equal(place(p, &r, 2, &res), 2);
    assert_int_equal(count_on(&res, "b"), 2);
    assert_int_equal(bo_place_set_usable(p, "b", false, &err), BO_OK);
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "Host is unavailable");
    assert_int_equal(bo_place_set_usable(p, "a", true, &err), BO_OK);
    assert_int_equal(place(p, &r, 1, &res), 1);
    assert_string_equal(res.slots[0].host, "a");
    /* re-registering keeps the flag */
    big(p, "b", NULL);
    assert_false(info_of(p, "b").usable);
    assert_int_equal(bo_place_set_usable(p, "nope", true, &err), BO_ENOTFOUND);

    struct bo_place_stats st;
    bo_place_get_stats(p, &st);
    assert_int_equal(st.n_hosts, 2);
    assert_int_equal(st.n_schedulable, 1);
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_group_spread(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    char name[16];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        big(p, name, NULL);
    }
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    assert_int_equal(place(p, &r, 25, &res), 25);
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        size_t n = count_on(&res, name);
        assert_true(n == 2 || n == 3);
    }
    /* one per host first, in name order on equal hosts */
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        assert_string_equal(res.slots[i].host, name);
    }
    /* deterministic */
    char first[25][16];
    for (size_t i = 0; i < 25; i++) {
        snprintf(first[i], sizeof(first[i]), "%s", res.slots[i].host);
    }
    assert_int_equal(place(p, &r, 25, &res), 25);
    for (size_t i = 0; i < 25; i++) {
        assert_string_equal(res.slots[i].host, first[i]);
    }
    /* loaded hosts go last */
    commit(p, &r, &res);
    struct bo_err err = BO_ERR_INIT;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(bo_place_remove_task(p, "h7", "www/prod/web", 1, 1, 1, NULL, 0, &err),
                         BO_OK);
    }
    assert_int_equal(info_of(p, "h7").n_tasks, 0);
    assert_int_equal(place(p, &r, 1, &res), 1);
    assert_string_equal(res.slots[0].host, "h7");
    /* limit host:1 */
    struct bo_place_constraint c = {"host", BO_PLACE_LIMIT, false, NULL, 0, 1};
    r.name = "one";
    r.constraints = &c;
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 25, &res), 10);
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        assert_int_equal(count_on(&res, name), 1);
    }
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void assert_free_equals_total(const struct bo_place *p, const char *host)
{
    struct bo_place_host_info i = info_of(p, host);
    assert_true(i.free_cpus == i.total_cpus);
    assert_int_equal(i.free_ram_mb, i.total_ram_mb);
    assert_int_equal(i.free_disk_mb, i.total_disk_mb);
    assert_int_equal(i.free_ports, i.total_ports);
    assert_int_equal(i.n_tasks, 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    up(p, "a", 8, 8192, 8192, 31000, 31999, "rack=r1");
    struct bo_err err = BO_ERR_INIT;
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    const char *ports[] = {"http"};
    struct bo_place_request r = rq("www", "web", 0.1, 33, 7);
    r.ports = ports;
    r.n_ports = 1;
    assert_int_equal(place(p, &r, 70, &res), 70);
    commit(p, &r, &res);
    struct bo_place_host_info i = info_of(p, "a");
    assert_int_equal(i.n_tasks, 70);
    assert_true(i.free_cpus < 1.0 + 1e-9 && i.free_cpus > 1.0 - 1e-9);
    assert_int_equal(i.free_ram_mb, 8192 - 70 * 33);
    assert_int_equal(i.free_disk_mb, 8192 - 70 * 7);
    assert_int_equal(i.free_ports, 1000 - 70);
    struct bo_place_stats st;
    bo_place_get_stats(p, &st);
    assert_int_equal(st.n_tasks, 70);
    assert_int_equal(st.free_ram_mb, 8192 - 70 * 33);
    for (size_t k = 0; k < res.n_placed; k++) {
        assert_int_equal(
            bo_place_remove_task(p, "a", "www/prod/web", 0.1, 33, 7, res.slots[k].ports, 1, &err),
            BO_OK);
    }
    assert_free_equals_total(p, "a");
    bo_place_get_stats(p, &st);
    assert_true(st.free_cpus == 8.0);
    assert_int_equal(st.n_tasks, 0);
    /* the job is gone: a limit starts from zero */
    struct bo_place_constraint c = {"rack", BO_PLACE_LIMIT, false, NULL, 0, 1};
    r.constraints = &c;
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 2, &res), 1);
    /* removing what was never added */
    assert_int_equal(bo_place_remove_task(p, "a", "www/prod/web", 0.1, 33, 7, NULL, 0, &err),
                     BO_ENOTFOUND);
    assert_int_equal(bo_place_remove_task(p, "zz", "www/prod/web", 0.1, 33, 7, NULL, 0, &err),
                     BO_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'zz'"));
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_unknown_host(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct bo_err err = BO_ERR_INIT;
    int32_t port = 31005;
    assert_int_equal(bo_place_add_task(p, "ghost", "www/prod/web", 1, 100, 10, &port, 1, &err),
                     BO_OK);
    struct bo_place_host_info i = info_of(p, "ghost");
    assert_false(i.registered);
    assert_int_equal(i.n_tasks, 1);
    assert_true(i.free_cpus == -1.0);
    assert_int_equal(i.free_ram_mb, -100);
    struct bo_place_stats st;
    bo_place_get_stats(p, &st);
    assert_int_equal(st.n_hosts, 0);
    assert_int_equal(st.n_tasks, 1);
    assert_int_equal(bo_place_remove_host(p, "ghost", &err), BO_ENOTFOUND);

    /* the agent registers: free = total - used, the port stays used, and it
     * is usable whatever the placeholder was */
    assert_int_equal(bo_place_set_usable(p, "ghost", false, &err), BO_OK);
    up(p, "ghost", 4, 1000, 1000, 31000, 31009, "rack=r1");
    big(p, "other", "rack=r2");
    i = info_of(p, "ghost");
    assert_true(i.registered);
    assert_true(i.usable);
    assert_true(i.free_cpus == 3.0);
    assert_int_equal(i.free_ram_mb, 900);
    assert_int_equal(i.free_ports, 9);

    /* the task counts for the limits of its job, by host and by rack */
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    struct bo_place_constraint c = {"rack", BO_PLACE_LIMIT, false, NULL, 0, 1};
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    r.constraints = &c;
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 2, &res), 1);
    assert_string_equal(res.slots[0].host, "other");
    c.attr = "host";
    assert_int_equal(place(p, &r, 2, &res), 1);
    assert_string_equal(res.slots[0].host, "other");
    /* the held port is not handed out again */
    const char *ports[] = {"http"};
    struct bo_place_constraint pin_c;
    const char *ghost[] = {"ghost"};
    pin_c = (struct bo_place_constraint){"host", BO_PLACE_VALUE, false, ghost, 1, 0};
    r = rq("www", "x", 0.1, 1, 1);
    r.ports = ports;
    r.n_ports = 1;
    r.constraints = &pin_c;
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 9, &res), 9);
    for (size_t k = 0; k < 9; k++) {
        assert_int_not_equal(res.slots[k].ports[0], 31005);
    }
    assert_int_equal(place(p, &r, 10, &res), 9);
    assert_string_equal(res.reason, "Insufficient: ports (1 host), Constraint not satisfied: host "
                                    "(1 host)");

    /* the agent goes away with a task left: a placeholder until the task goes */
    assert_int_equal(bo_place_remove_host(p, "ghost", &err), BO_OK);
    i = info_of(p, "ghost");
    assert_false(i.registered);
    assert_int_equal(i.total_ram_mb, 0);
    r = rq("www", "y", 0.1, 1, 1);
    assert_int_equal(place(p, &r, 3, &res), 3);
    assert_int_equal(count_on(&res, "other"), 3);
    assert_int_equal(bo_place_remove_task(p, "ghost", "www/prod/web", 1, 100, 10, &port, 1, &err),
                     BO_OK);
    assert_false(bo_place_host_get(p, "ghost", &i));
    /* a host without tasks goes at once */
    assert_int_equal(bo_place_remove_host(p, "other", &err), BO_OK);
    assert_false(bo_place_host_get(p, "other", &i));
    assert_int_equal(place(p, &r, 1, &res), 0);
    assert_string_equal(res.reason, "No hosts");
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_reregister_attributes(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct bo_err err = BO_ERR_INIT;
    big(p, "a", "rack=r1");
    big(p, "b", "rack=r1");
    big(p, "c", "rack=r3");
    assert_int_equal(bo_place_add_task(p, "a", "www/prod/web", 1, 1, 1, NULL, 0, &err), BO_OK);
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    struct bo_place_constraint c = {"rack", BO_PLACE_LIMIT, false, NULL, 0, 1};
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    r.constraints = &c;
    r.n_constraints = 1;
    assert_int_equal(place(p, &r, 3, &res), 1);
    assert_string_equal(res.slots[0].host, "c");
    /* a moves to r2: its task counts there now */
    big(p, "a", "rack=r2");
    assert_int_equal(info_of(p, "a").n_tasks, 1);
    assert_int_equal(place(p, &r, 3, &res), 2);
    assert_int_equal(count_on(&res, "a"), 0);
    assert_int_equal(count_on(&res, "b"), 1);
    assert_int_equal(count_on(&res, "c"), 1);
    /* and a becomes dedicated */
    big(p, "a", "rack=r2;dedicated=www/x");
    r = rq("www", "other", 1, 1, 1);
    assert_int_equal(place(p, &r, 4, &res), 4);
    assert_int_equal(count_on(&res, "a"), 0);
    assert_int_equal(bo_place_remove_task(p, "a", "www/prod/web", 1, 1, 1, NULL, 0, &err), BO_OK);
    assert_free_equals_total(p, "a");
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_epoch(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct bo_err err = BO_ERR_INIT;
    uint64_t e = bo_place_epoch(p);
    big(p, "a", NULL);
    assert_true(bo_place_epoch(p) != e);
    e = bo_place_epoch(p);
    assert_int_equal(bo_place_add_task(p, "a", "www/prod/web", 1, 1, 1, NULL, 0, &err), BO_OK);
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    place(p, &r, 1, &res);
    assert_true(bo_place_epoch(p) == e);
    assert_int_equal(bo_place_remove_task(p, "a", "www/prod/web", 1, 1, 1, NULL, 0, &err), BO_OK);
    assert_true(bo_place_epoch(p) != e);
    e = bo_place_epoch(p);
    assert_int_equal(bo_place_set_mode(p, "a", BO__MAINTENANCE_MODE__MAINTENANCE_NONE, &err),
                     BO_OK);
    assert_true(bo_place_epoch(p) != e);
    e = bo_place_epoch(p);
    assert_int_equal(bo_place_set_usable(p, "a", true, &err), BO_OK);
    assert_true(bo_place_epoch(p) != e);
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_bad_args(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(up_rv(p, "a", 1, 1, 1, 32000, 31000, NULL, &err), BO_EINVAL);
    assert_string_equal(err.msg, "upsert host 'a': bad port range [32000, 31000]");
    assert_int_equal(up_rv(p, "a", 1, 1, 1, 0x7fffffff, 0x7fffffff, NULL, &err), BO_EINVAL);
    assert_int_equal(up_rv(p, "a", -1, 1, 1, 0, 0, NULL, &err), BO_EINVAL);
    assert_int_equal(up_rv(p, "", 1, 1, 1, 0, 0, NULL, &err), BO_EINVAL);
    assert_false(bo_place_host_get(p, "a", &(struct bo_place_host_info){0}));
    assert_int_equal(bo_place_add_task(p, "a", "www/prod/web", 1, 1, 1, NULL, 1, &err), BO_EINVAL);
    int32_t bad = 70000;
    assert_int_equal(bo_place_add_task(p, "a", "www/prod/web", 1, 1, 1, &bad, 1, &err), BO_EINVAL);
    assert_int_equal(bo_place_add_task(p, "a", "www/prod/web", NAN, 1, 1, NULL, 0, &err),
                     BO_EINVAL);
    assert_false(bo_place_host_get(p, "a", &(struct bo_place_host_info){0}));
    big(p, "a", NULL);
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    struct bo_place_request r = rq("www", "web", 1, 1, 1);
    struct bo_place_constraint c = {NULL, BO_PLACE_LIMIT, false, NULL, 0, 1};
    r.constraints = &c;
    r.n_constraints = 1;
    assert_int_equal(bo_place_tasks(p, &r, 1, &res, &err), BO_EINVAL);
    c.attr = "rack";
    c.kind = (enum bo_place_constraint_kind)7;
    assert_int_equal(bo_place_tasks(p, &r, 1, &res, &err), BO_EINVAL);
    assert_int_equal(res.n_placed, 0);
    r = rq("", "web", 1, 1, 1);
    assert_int_equal(bo_place_tasks(p, &r, 1, &res, &err), BO_EINVAL);
    assert_string_equal(err.msg, "place tasks: no job key");
    r = rq("www", "web", 1, -1, 1);
    assert_int_equal(bo_place_tasks(p, &r, 1, &res, &err), BO_EINVAL);
    bo_place_result_release(&res);
    bo_place_free(p);
}

static void test_from_config(void **state)
{
    (void)state;
    Bo__JobKey key = BO__JOB_KEY__INIT;
    key.role = "www";
    key.environment = "prod";
    key.name = "web";
    Bo__Resource cpu = BO__RESOURCE__INIT, cpu2 = BO__RESOURCE__INIT, ram = BO__RESOURCE__INIT,
                 disk = BO__RESOURCE__INIT, http = BO__RESOURCE__INIT, admin = BO__RESOURCE__INIT;
    cpu.kind_case = BO__RESOURCE__KIND_NUM_CPUS;
    cpu.num_cpus = 0.5;
    cpu2.kind_case = BO__RESOURCE__KIND_NUM_CPUS;
    cpu2.num_cpus = 0.25;
    ram.kind_case = BO__RESOURCE__KIND_RAM_MB;
    ram.ram_mb = 128;
    disk.kind_case = BO__RESOURCE__KIND_DISK_MB;
    disk.disk_mb = 256;
    http.kind_case = BO__RESOURCE__KIND_NAMED_PORT;
    http.named_port = "http";
    admin.kind_case = BO__RESOURCE__KIND_NAMED_PORT;
    admin.named_port = "admin";
    Bo__Resource *resources[] = {&cpu, &http, &ram, &disk, &admin, &cpu2};
    char *vals[] = {"r1", "r2"};
    Bo__ValueConstraint vc = BO__VALUE_CONSTRAINT__INIT;
    vc.negated = 1;
    vc.n_values = 2;
    vc.values = vals;
    Bo__LimitConstraint lc = BO__LIMIT_CONSTRAINT__INIT;
    lc.limit = 2;
    Bo__Constraint c1 = BO__CONSTRAINT__INIT, c2 = BO__CONSTRAINT__INIT;
    c1.name = "rack";
    c1.kind_case = BO__CONSTRAINT__KIND_VALUE;
    c1.value = &vc;
    c2.name = "host";
    c2.kind_case = BO__CONSTRAINT__KIND_LIMIT;
    c2.limit = &lc;
    Bo__Constraint *constraints[] = {&c1, &c2};
    Bo__TaskConfig tc = BO__TASK_CONFIG__INIT;
    tc.job = &key;
    tc.n_resources = 6;
    tc.resources = resources;
    tc.n_constraints = 2;
    tc.constraints = constraints;

    struct bo_place_request r;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_place_request_from_config(&r, &tc, &err), BO_OK);
    assert_string_equal(r.role, "www");
    assert_string_equal(r.environment, "prod");
    assert_string_equal(r.name, "web");
    assert_true(r.cpus == 0.75);
    assert_int_equal(r.ram_mb, 128);
    assert_int_equal(r.disk_mb, 256);
    assert_int_equal(r.n_ports, 2);
    assert_string_equal(r.ports[0], "http");
    assert_string_equal(r.ports[1], "admin");
    assert_int_equal(r.n_constraints, 2);
    assert_string_equal(r.constraints[0].attr, "rack");
    assert_int_equal(r.constraints[0].kind, BO_PLACE_VALUE);
    assert_true(r.constraints[0].negated);
    assert_int_equal(r.constraints[0].n_values, 2);
    assert_string_equal(r.constraints[0].values[1], "r2");
    assert_string_equal(r.constraints[1].attr, "host");
    assert_int_equal(r.constraints[1].kind, BO_PLACE_LIMIT);
    assert_int_equal(r.constraints[1].limit, 2);

    /* and it places */
    struct bo_place *p = new_place();
    big(p, "a", "rack=r1");
    big(p, "b", "rack=r3");
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    assert_int_equal(place(p, &r, 3, &res), 2);
    assert_int_equal(count_on(&res, "b"), 2);
    assert_string_equal(res.reason, "Limit not satisfied: host (1 host), Constraint not "
                                    "satisfied: rack (1 host)");
    bo_place_request_release(&r);
    assert_null(r.ports);

    c2.kind_case = BO__CONSTRAINT__KIND__NOT_SET;
    assert_int_equal(bo_place_request_from_config(&r, &tc, &err), BO_EINVAL);
    assert_string_equal(err.msg,
                        "convert task config: job 'www/prod/web': constraint 'host' has no kind");
    assert_null(r.constraints);
    c2.kind_case = BO__CONSTRAINT__KIND_LIMIT;
    Bo__Resource gpu = BO__RESOURCE__INIT;
    gpu.kind_case = BO__RESOURCE__KIND_NUM_GPUS;
    gpu.num_gpus = 1;
    resources[5] = &gpu;
    assert_int_equal(bo_place_request_from_config(&r, &tc, &err), BO_EINVAL);
    tc.job = NULL;
    assert_int_equal(bo_place_request_from_config(&r, &tc, &err), BO_EINVAL);
    bo_place_result_release(&res);
    bo_place_free(p);
}

static int foreach_count(const struct bo_place_host_info *info, void *ctx)
{
    size_t *n = ctx;
    (*n)++;
    return strcmp(info->name, "b") == 0 ? 42 : 0;
}

static void test_views(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    up(p, "a", 2.5, 100, 200, 31000, 31009, NULL);
    up(p, "b", 1.5, 300, 400, 0, 0, NULL);
    up(p, "c", 1, 1, 1, 0, 0, NULL);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_place_add_task(p, "a", "www/prod/web", 0.5, 10, 20, NULL, 0, &err), BO_OK);
    struct bo_place_stats st;
    bo_place_get_stats(p, &st);
    assert_int_equal(st.n_hosts, 3);
    assert_true(st.total_cpus == 5.0);
    assert_true(st.free_cpus == 4.5);
    assert_int_equal(st.total_ram_mb, 401);
    assert_int_equal(st.free_ram_mb, 391);
    assert_int_equal(st.total_disk_mb, 601);
    assert_int_equal(st.free_disk_mb, 581);
    struct bo_place_host_info i = info_of(p, "a");
    assert_string_equal(i.agent_id, "agent-a");
    assert_int_equal(i.total_ports, 10);
    size_t n = 0;
    assert_int_equal(bo_place_foreach_host(p, foreach_count, &n), 42);
    assert_int_equal(n, 2);
    bo_place_free(p);
}

/* ---- allocation failures leave the index as it was ---- */

struct fp {
    char buf[4096];
    size_t len;
};

static int fp_host(const struct bo_place_host_info *i, void *ctx)
{
    struct fp *f = ctx;
    if (f->len < sizeof(f->buf)) {
        f->len += (size_t)snprintf(
            f->buf + f->len, sizeof(f->buf) - f->len, "%s %s %d %d %d %zu %.3f %lld %lld %u;",
            i->name, i->agent_id, i->mode, i->registered, i->usable, i->n_tasks, i->free_cpus,
            (long long)i->free_ram_mb, (long long)i->free_disk_mb, i->free_ports);
    }
    return 0;
}

static void fingerprint(struct bo_place *p, struct fp *f)
{
    f->len = 0;
    f->buf[0] = '\0';
    bo_place_foreach_host(p, fp_host, f);
    /* the limits as placement sees them */
    static const char *attrs[] = {"host", "rack"};
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    for (size_t a = 0; a < 2; a++) {
        struct bo_place_constraint c = {attrs[a], BO_PLACE_LIMIT, false, NULL, 0, 2};
        struct bo_place_request r = rq("www", "web", 0.1, 1, 1);
        r.constraints = &c;
        r.n_constraints = 1;
        struct bo_err err = BO_ERR_INIT;
        assert_int_equal(bo_place_tasks(p, &r, 50, &res, &err), BO_OK);
        f->len += (size_t)snprintf(f->buf + f->len, sizeof(f->buf) - f->len, "|%zu %s",
                                   res.n_placed, res.reason);
        for (size_t i = 0; i < res.n_placed; i++) {
            f->len += (size_t)snprintf(f->buf + f->len, sizeof(f->buf) - f->len, " %s",
                                       res.slots[i].host);
        }
    }
    bo_place_result_release(&res);
}

static void test_oom(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct fp before, after;
    const char *vals[] = {"r2"};
    const char *ports[] = {"http", "admin"};
    struct bo_place_constraint c = {"rack", BO_PLACE_VALUE, false, vals, 1, 0};
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    int32_t held[2] = {31001, 5000};
    size_t failures = 0;
    for (int step = 0; step < 9; step++) {
        for (long k = 0;; k++) {
            fingerprint(p, &before);
            struct bo_err err = BO_ERR_INIT;
            struct bo_place_request r = rq("www", "web", 1, 1, 1);
            int rv = BO_OK;
            bo_mem_fail_after(k);
            switch (step) {
            case 0:
                rv = up_rv(p, "a", 8, 1024, 1024, 31000, 31010, "rack=r1;zone=z1", &err);
                break;
            case 1:
                rv = bo_place_add_task(p, "ghost", "www/prod/web", 1, 1, 1, held, 2, &err);
                break;
            case 2:
                rv = bo_place_add_task(p, "a", "www/prod/web", 1, 1, 1, held, 2, &err);
                break;
            case 3:
                rv = up_rv(p, "ghost", 8, 1024, 1024, 31000, 31000, "rack=r1;zone=z2", &err);
                break;
            case 4:
                rv = up_rv(p, "a", 8, 1024, 1024, 31005, 31010, "rack=r2;zone=z1;x=y", &err);
                break;
            case 5:
                r.constraints = &c;
                r.n_constraints = 1;
                r.ports = ports;
                r.n_ports = 2;
                rv = bo_place_tasks(p, &r, 5, &res, &err);
                break;
            case 6:
                rv = bo_place_add_task(p, "b", "www/prod/new", 1, 1, 1, NULL, 0, &err);
                break;
            case 7:
                rv = up_rv(p, "b", 8, 1024, 1024, 31000, 31010, "rack=r1;zone=z1", &err);
                break;
            case 8:
                rv = up_rv(p, "c", 8, 1024, 1024, 31000, 31010, "dedicated=www/x", &err);
                break;
            }
            bo_mem_fail_after(-1);
            if (rv == BO_OK) {
                break;
            }
            failures++;
            assert_int_equal(rv, BO_ENOMEM);
            assert_non_null(strstr(err.msg, "out of memory"));
            fingerprint(p, &after);
            assert_string_equal(before.buf, after.buf);
        }
    }
    assert_true(failures > 20);
    /* adds that fail and are not retried leave nothing behind (else the
     * job's last remove below trips an assertion) */
    for (long k = 0; k < 2; k++) {
        struct bo_err err = BO_ERR_INIT;
        bo_mem_fail_after(k);
        int rv = bo_place_add_task(p, "c", "www/prod/web", 1, 1, 1, NULL, 0, &err);
        bo_mem_fail_after(-1);
        assert_int_equal(rv, BO_ENOMEM);
    }
    assert_int_equal(info_of(p, "c").n_tasks, 0);
    /* the state is the one without failures */
    struct bo_place_host_info i = info_of(p, "a");
    assert_int_equal(i.n_tasks, 1);
    assert_int_equal(i.free_ports, 6); /* 31005-31010: the held ports are outside */
    i = info_of(p, "ghost");
    assert_true(i.registered);
    assert_int_equal(i.free_ports, 1);
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_place_remove_task(p, "a", "www/prod/web", 1, 1, 1, held, 2, &err), BO_OK);
    assert_int_equal(bo_place_remove_task(p, "ghost", "www/prod/web", 1, 1, 1, held, 2, &err),
                     BO_OK);
    assert_free_equals_total(p, "a");
    assert_free_equals_total(p, "ghost");
    bo_place_result_release(&res);
    bo_place_free(p);
}

/* ---- scale ---- */

#define S_HOSTS 500
#define S_RACKS 25
#define S_JOBS  20
#define S_INST  200
#define S_PORTS 2

struct scale_host {
    int rack, zone;
    int32_t ports[40];
    size_t n_ports;
};

static int host_index(const char *name)
{
    assert_true(name[0] == 'h');
    return atoi(name + 1);
}

static void test_scale(void **state)
{
    (void)state;
    struct bo_place *p = new_place();
    struct scale_host *hosts = calloc(S_HOSTS, sizeof(*hosts));
    assert_non_null(hosts);
    for (int i = 0; i < S_HOSTS; i++) {
        char name[16], attrs[64];
        snprintf(name, sizeof(name), "h%03d", i);
        hosts[i].rack = i % S_RACKS;
        hosts[i].zone = i % 3;
        snprintf(attrs, sizeof(attrs), "rack=r%d;zone=z%d", hosts[i].rack, hosts[i].zone);
        up(p, name, 8 + 8 * (i % 3), 16384, 65536, 31000, 31039, attrs);
    }
    const char *ports[] = {"http", "admin"};
    const char *z0[] = {"z0"};
    const char *z2[] = {"z2"};
    struct bo_place_result res = BO_PLACE_RESULT_INIT;
    /* per job: tasks per host and per rack, as this test counts them */
    int per_host[S_JOBS][S_HOSTS];
    int per_rack[S_JOBS][S_RACKS];
    memset(per_host, 0, sizeof(per_host));
    memset(per_rack, 0, sizeof(per_rack));
    struct bo_place_constraint cons[S_JOBS][2];
    struct bo_place_request reqs[S_JOBS];
    char names[S_JOBS][16];
    for (int j = 0; j < S_JOBS; j++) {
        snprintf(names[j], sizeof(names[j]), "job%02d", j);
        reqs[j] = rq("www", names[j], 0.25, 128, 256);
        reqs[j].ports = ports;
        reqs[j].n_ports = S_PORTS;
        reqs[j].constraints = cons[j];
        switch (j % 4) {
        case 0:
            cons[j][0] = (struct bo_place_constraint){"host", BO_PLACE_LIMIT, false, NULL, 0, 1};
            reqs[j].n_constraints = 1;
            break;
        case 1:
            cons[j][0] = (struct bo_place_constraint){"rack", BO_PLACE_LIMIT, false, NULL, 0, 10};
            reqs[j].n_constraints = 1;
            break;
        case 2:
            cons[j][0] = (struct bo_place_constraint){"zone", BO_PLACE_VALUE, false, z0, 1, 0};
            cons[j][1] = (struct bo_place_constraint){"host", BO_PLACE_LIMIT, false, NULL, 0, 2};
            reqs[j].n_constraints = 2;
            break;
        default:
            cons[j][0] = (struct bo_place_constraint){"zone", BO_PLACE_VALUE, true, z2, 1, 0};
            cons[j][1] = (struct bo_place_constraint){"rack", BO_PLACE_LIMIT, false, NULL, 0, 12};
            reqs[j].n_constraints = 2;
            break;
        }
        /* in batches, as a scheduler would */
        for (int done = 0; done < S_INST; done += 50) {
            assert_int_equal(place(p, &reqs[j], 50, &res), 50);
            commit(p, &reqs[j], &res);
            for (size_t i = 0; i < res.n_placed; i++) {
                int h = host_index(res.slots[i].host);
                per_host[j][h]++;
                per_rack[j][hosts[h].rack]++;
                for (size_t k = 0; k < S_PORTS; k++) {
                    int32_t port = res.slots[i].ports[k];
                    assert_true(port >= 31000 && port <= 31039);
                    assert_true(hosts[h].n_ports < 40);
                    for (size_t q = 0; q < hosts[h].n_ports; q++) {
                        assert_int_not_equal(hosts[h].ports[q], port);
                    }
                    hosts[h].ports[hosts[h].n_ports++] = port;
                }
            }
        }
    }
    /* every constraint holds */
    for (int j = 0; j < S_JOBS; j++) {
        int total = 0;
        for (int h = 0; h < S_HOSTS; h++) {
            total += per_host[j][h];
            switch (j % 4) {
            case 0:
                assert_true(per_host[j][h] <= 1);
                break;
            case 2:
                assert_true(per_host[j][h] <= 2);
                assert_true(per_host[j][h] == 0 || hosts[h].zone == 0);
                break;
            case 3:
                assert_true(per_host[j][h] == 0 || hosts[h].zone != 2);
                break;
            }
        }
        assert_int_equal(total, S_INST);
        for (int r = 0; r < S_RACKS; r++) {
            if (j % 4 == 1) {
                assert_true(per_rack[j][r] <= 10);
            } else if (j % 4 == 3) {
                assert_true(per_rack[j][r] <= 12);
            }
        }
    }
    /* resources: nothing overcommitted, accounting matches */
    for (int h = 0; h < S_HOSTS; h++) {
        char name[16];
        snprintf(name, sizeof(name), "h%03d", h);
        struct bo_place_host_info i = info_of(p, name);
        int tasks = 0;
        for (int j = 0; j < S_JOBS; j++) {
            tasks += per_host[j][h];
        }
        assert_int_equal(i.n_tasks, tasks);
        assert_true(i.free_cpus >= 0);
        assert_true(i.free_ram_mb >= 0);
        assert_int_equal(i.free_ports, 40 - S_PORTS * tasks);
        assert_int_equal(i.free_ram_mb, 16384 - 128 * tasks);
    }
    /* one more host:1 job than fits: every host has a task of it or no room */
    struct bo_place_constraint one = {"host", BO_PLACE_LIMIT, false, NULL, 0, 1};
    struct bo_place_request r = rq("www", "job00", 0.25, 128, 256);
    r.ports = ports;
    r.n_ports = S_PORTS;
    r.constraints = &one;
    r.n_constraints = 1;
    size_t more = place(p, &r, S_HOSTS, &res);
    assert_true(more < S_HOSTS - S_INST + 1);
    assert_non_null(strstr(res.reason, "Limit not satisfied: host"));
    bo_place_result_release(&res);
    bo_place_free(p);
    free(hosts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_hosts),
        cmocka_unit_test(test_value_constraint),
        cmocka_unit_test(test_rare_candidates),
        cmocka_unit_test(test_negated_and_missing),
        cmocka_unit_test(test_limit_host),
        cmocka_unit_test(test_limit_rack),
        cmocka_unit_test(test_dedicated),
        cmocka_unit_test(test_insufficient),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_maintenance),
        cmocka_unit_test(test_unusable),
        cmocka_unit_test(test_group_spread),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_unknown_host),
        cmocka_unit_test(test_reregister_attributes),
        cmocka_unit_test(test_epoch),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_from_config),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
