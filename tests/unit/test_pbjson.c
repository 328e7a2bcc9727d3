/*
 * test_pbjson.c - protobuf <-> JSON: round trips, enums, oneofs, maps, and
 * every kind of bad input refused with a message naming the path; the text
 * writer (bo_pbjson_write) byte for byte against json_dumps of the encoder's
 * tree, for every message here and every flag combination.
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

#include "common/buf.h"
#include "common/err.h"
#include "common/mem.h"
#include "common/pbjson.h"
#include "storage.pb-c.h"

static const char *JOB =
    "{\"key\": {\"role\": \"www\", \"environment\": \"prod\", \"name\": \"hello\"},"
    " \"instance_count\": 3, \"cron_collision_policy\": \"CANCEL_NEW\","
    " \"task_config\": {\"is_service\": true, \"max_task_failures\": -1,"
    "   \"resources\": [{\"num_cpus\": 0.5}, {\"ram_mb\": 128}, {\"disk_mb\": 64},"
    "                   {\"named_port\": \"http\"}],"
    "   \"constraints\": [{\"name\": \"host\", \"limit\": {\"limit\": 1}},"
    "                     {\"name\": \"zone\", \"value\": {\"negated\": true, \"values\": "
    "[\"a\"]}}],"
    "   \"task_links\": {\"docs\": \"http://x\"},"
    "   \"executor_config\": {\"name\": \"borealis\", \"data\": \"{}\"}}}";

static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *d, const char *text, int *rc,
                                struct bo_err *err)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    ProtobufCMessage *m = NULL;
    *rc = bo_pbjson_decode(d, j, &m, err);
    json_decref(j);
    return m;
}

static void test_job_round_trip(void **state)
{
    (void)state;
    struct bo_err err = BO_ERR_INIT;
    int rc;
    Bo__JobConfiguration *jc =
        (Bo__JobConfiguration *)decode(&bo__job_configuration__descriptor, JOB, &rc, &err);
    assert_int_equal(rc, BO_OK);
    assert_string_equal(jc->key->role, "www");
    assert_int_equal(jc->instance_count, 3);
    assert_int_equal(jc->cron_collision_policy, BO__CRON_COLLISION_POLICY__CRON_CANCEL_NEW);
    Bo__TaskConfig *c = jc->task_config;
    assert_true(c->is_service);
    assert_int_equal(c->max_task_failures, -1);
    assert_int_equal(c->n_resources, 4);
    assert_int_equal(c->resources[0]->kind_case, BO__RESOURCE__KIND_NUM_CPUS);
    assert_true(c->resources[0]->num_cpus == 0.5);
    assert_string_equal(c->resources[3]->named_port, "http");
    assert_int_equal(c->constraints[0]->kind_case, BO__CONSTRAINT__KIND_LIMIT);
    assert_int_equal(c->constraints[0]->limit->limit, 1);
    assert_true(c->constraints[1]->value->negated);
    assert_int_equal(c->n_task_links, 1);
    assert_string_equal(c->task_links[0]->key, "docs");

    /* encode, decode again, and compare the packed bytes */
    json_t *j = bo_pbjson_encode(&jc->base, 0);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "cron_collision_policy")),
                        "CANCEL_NEW");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(j, "task_config"), "task_links"), "docs")),
        "http://x");
    ProtobufCMessage *m2 = NULL;
    assert_int_equal(bo_pbjson_decode(&bo__job_configuration__descriptor, j, &m2, &err), BO_OK);
    json_decref(j);
    size_t l1 = protobuf_c_message_get_packed_size(&jc->base);
    size_t l2 = protobuf_c_message_get_packed_size(m2);
    assert_int_equal(l1, l2);
    uint8_t b1[1024], b2[1024];
    assert_true(l1 < sizeof(b1));
    protobuf_c_message_pack(&jc->base, b1);
    protobuf_c_message_pack(m2, b2);
    assert_memory_equal(b1, b2, l1);
    protobuf_c_message_free_unpacked(m2, NULL);
    bo__job_configuration__free_unpacked(jc, NULL);
}

static void test_enum_names(void **state)
{
    (void)state;
    assert_string_equal(bo_pbjson_enum_name(&bo__maintenance_mode__descriptor,
                                            BO__MAINTENANCE_MODE__MAINTENANCE_DRAINING),
                        "DRAINING");
    assert_string_equal(
        bo_pbjson_enum_name(&bo__schedule_status__descriptor, BO__SCHEDULE_STATUS__RUNNING),
        "RUNNING");
    int v = -1;
    assert_int_equal(
        bo_pbjson_enum_parse(&bo__maintenance_mode__descriptor, "MAINTENANCE_NONE", &v), BO_OK);
    assert_int_equal(v, BO__MAINTENANCE_MODE__MAINTENANCE_NONE);
    assert_int_equal(bo_pbjson_enum_parse(&bo__maintenance_mode__descriptor, "SCHEDULED", &v),
                     BO_OK);
    assert_int_equal(v, BO__MAINTENANCE_MODE__MAINTENANCE_SCHEDULED);
    assert_int_equal(bo_pbjson_enum_parse(&bo__maintenance_mode__descriptor, "BOGUS", &v),
                     BO_EINVAL);
}

struct bad {
    const char *json;
    const char *want; /* substring of the message */
};

static void test_bad_input(void **state)
{
    (void)state;
    static const struct bad cases[] = {
        {"{\"key\": {\"role\": 5}}", "key.role: expected a string"},
        {"{\"instance_count\": \"3\"}", "instance_count: expected a 32-bit integer"},
        {"{\"instance_count\": 3000000000}", "instance_count: expected a 32-bit integer"},
        {"{\"instance_count\": 1.5}", "instance_count: expected a 32-bit integer"},
        {"{\"bogus\": 1}", "unknown field 'bogus'"},
        {"{\"task_config\": {\"resources\": [{\"cpu\": 1}]}}",
         "task_config.resources[0]: unknown field 'cpu'"},
        {"{\"task_config\": {\"resources\": [{\"num_cpus\": 1, \"ram_mb\": 2}]}}",
         "task_config.resources[0].ram_mb: only one member of a oneof may be set"},
        {"{\"cron_collision_policy\": \"SOMETIMES\"}", "unknown value 'SOMETIMES'"},
        {"{\"task_config\": {\"is_service\": 1}}",
         "task_config.is_service: expected true or false"},
        {"{\"task_config\": {\"resources\": {}}}", "task_config.resources: expected an array"},
        {"{\"task_config\": {\"task_links\": []}}", "task_config.task_links: expected an object"},
        {"{\"task_config\": {\"task_links\": {\"a\": 1}}}",
         "task_config.task_links.a: expected a string"},
        {"{\"key\": []}", "key: expected an object"},
        {"[]", "expected an object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct bo_err err = BO_ERR_INIT;
        int rc;
        ProtobufCMessage *m = decode(&bo__job_configuration__descriptor, cases[i].json, &rc, &err);
        assert_null(m);
        assert_int_equal(rc, BO_EINVAL);
        if (strstr(err.msg, cases[i].want) == NULL) {
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg, cases[i].want);
        }
    }
}

static void test_compact_and_bytes_length(void **state)
{
    (void)state;
    Bo__LogEntry e = BO__LOG_ENTRY__INIT;
    Bo__Compressed c = BO__COMPRESSED__INIT;
    uint8_t data[5] = {1, 2, 3, 4, 5};
    c.codec = BO__CODEC__CODEC_ZSTD;
    c.data.data = data;
    c.data.len = sizeof(data);
    e.entry_case = BO__LOG_ENTRY__ENTRY_COMPRESSED;
    e.compressed = &c;
    json_t *full = bo_pbjson_encode(&e.base, 0);
    json_t *cj = json_object_get(full, "compressed");
    assert_string_equal(json_string_value(json_object_get(cj, "data")), "0102030405");
    assert_int_equal(json_integer_value(json_object_get(cj, "uncompressed_size")), 0);
    assert_string_equal(json_string_value(json_object_get(full, "padding")), "");
    json_t *small = bo_pbjson_encode(&e.base, BO_PBJSON_COMPACT | BO_PBJSON_BYTES_LENGTH);
    cj = json_object_get(small, "compressed");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(cj, "data"), "bytes")), 5);
    assert_null(json_object_get(cj, "uncompressed_size")); /* zero: left out */
    assert_null(json_object_get(small, "padding"));
    assert_string_equal(json_string_value(json_object_get(cj, "codec")), "ZSTD");
    json_decref(full);
    json_decref(small);
}

static void test_null_is_absent_and_zero_fields_present(void **state)
{
    (void)state;
    struct bo_err err = BO_ERR_INIT;
    int rc;
    Bo__ScheduledTask *t = (Bo__ScheduledTask *)decode(
        &bo__scheduled_task__descriptor, "{\"assigned_task\": null, \"status\": \"PENDING\"}", &rc,
        &err);
    assert_int_equal(rc, BO_OK);
    assert_null(t->assigned_task);
    json_t *j = bo_pbjson_encode(&t->base, 0);
    /* PENDING is the zero value, and still present */
    assert_string_equal(json_string_value(json_object_get(j, "status")), "PENDING");
    assert_null(json_object_get(j, "assigned_task"));
    assert_true(json_is_array(json_object_get(j, "task_events")));
    json_decref(j);
    bo__scheduled_task__free_unpacked(t, NULL);
}

/* ------------------------------------------------------------ writer --- */

static const unsigned ALL_FLAGS[] = {
    0,
    BO_PBJSON_COMPACT,
    BO_PBJSON_BYTES_LENGTH,
    BO_PBJSON_COMPACT | BO_PBJSON_BYTES_LENGTH,
};

/* bo_pbjson_write(m) against the encoder, for every flag combination: the
 * same bytes as json_dumps(JSON_COMPACT) of the tree, text that loads back
 * equal to the tree, appended after what the buffer held. */
static void check_write(const ProtobufCMessage *m)
{
    for (size_t k = 0; k < sizeof(ALL_FLAGS) / sizeof(*ALL_FLAGS); k++) {
        unsigned flags = ALL_FLAGS[k];
        json_t *tree = bo_pbjson_encode(m, flags);
        assert_non_null(tree);
        char *want = json_dumps(tree, JSON_COMPACT);
        assert_non_null(want);
        struct bo_buf b = BO_BUF_INIT;
        assert_int_equal(bo_buf_append(&b, "[1,", 3), BO_OK);
        assert_int_equal(bo_pbjson_write(m, flags, &b), BO_OK);
        size_t n = b.len - 3;
        if (n != strlen(want) || memcmp(b.data + 3, want, n) != 0) {
            fail_msg("flags %u: wrote\n%.*s\nwant\n%s", flags, (int)n, (const char *)b.data + 3,
                     want);
        }
        assert_int_equal(bo_buf_append(&b, "]", 1), BO_OK);
        json_error_t je;
        json_t *back = json_loadb((const char *)b.data, b.len, 0, &je);
        if (back == NULL) {
            fail_msg("flags %u: the text does not load: %s", flags, je.text);
        }
        assert_int_equal(json_array_size(back), 2);
        assert_true(json_equal(json_array_get(back, 1), tree));
        json_decref(back);
        bo_buf_release(&b);
        free(want);
        json_decref(tree);
    }
}

/* Strings that need every kind of care, reals and integers at the edges. */
static const char *const NASTY[] = {
    "",
    "plain",
    "quote \" inside",
    "back\\slash \\\\ and \\\"",
    "new\nline\r\n",
    "\t\b\f",
    "\x01\x02\x1f control \x7f del",
    "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf",
    "</script> a/b //",
    "{\"processes\": [{\"cmd\": \"echo \\\"hi\\\" > /tmp/x\\n\"}], \"tab\": \"\\t\"}",
    "0",
    "null",
};
#define N_NASTY (sizeof(NASTY) / sizeof(*NASTY))

static const double REALS[] = {
    0.1,
    1e20,
    3.0,
    1e-7,
    0.0,
    -0.0,
    -2.5,
    1.5e300,
    5e-324,
    2.2250738585072014e-308,
    123456.789,
    0.30000000000000004,
    1e16,
    1e17,
    9007199254740993.0,
    100.0,
    1e-5,
    0.5,
};
#define N_REALS (sizeof(REALS) / sizeof(*REALS))

static const json_int_t INTS[] = {
    0, 1, -1, INT64_MAX, INT64_MIN, INT64_MIN + 1, 9007199254740993LL, -123456789012LL, 42,
};
#define N_INTS (sizeof(INTS) / sizeof(*INTS))

static const char *nasty(unsigned i)
{
    return NASTY[i % N_NASTY];
}

/* A task config: every kind of field the API shows, contents from the
 * tables above picked by `i`. */
static json_t *gen_config(unsigned i)
{
    json_t *res = json_pack("[{s:f}, {s:I}, {s:I}, {s:s}, {s:I}]", "num_cpus", REALS[i % N_REALS],
                            "ram_mb", INTS[i % N_INTS], "disk_mb", INTS[(i + 3) % N_INTS],
                            "named_port", nasty(i), "num_gpus", (json_int_t)(i % 2));
    json_t *cons =
        json_pack("[{s:s, s:{s:b, s:[s, s, s]}}, {s:s, s:{s:i}}, {s:s}]", "name", nasty(i + 1),
                  "value", "negated", i % 2, "values", nasty(i + 2), nasty(i + 3), "", "name",
                  "host", "limit", "limit", (int)(i % 3), "name", nasty(i + 4));
    json_t *meta = json_pack("[{s:s, s:s}, {s:s, s:s}]", "key", nasty(i + 5), "value", nasty(i + 6),
                             "key", "", "value", "");
    json_t *links = json_pack("{s:s, s:s}", "http", nasty(i + 7), nasty(i + 8), "x");
    json_t *c = json_pack(
        "{s:{s:s, s:s, s:s}, s:s, s:b, s:i, s:i, s:b, s:s, s:o, s:o, s:o, s:o, s:s,"
        " s:{s:s, s:s}, s:[{s:s, s:b}], s:{s:b, s:I}, s:{s:{s:f, s:I}}}",
        "job", "role", "bench", "environment", "prod", "name", nasty(i + 9), "owner_user",
        nasty(i + 10), "is_service", i % 2, "priority", (int)i - 5, "max_task_failures", -1,
        "production", (i + 1) % 2, "tier", i % 3 == 0 ? "" : "preferred", "resources", res,
        "constraints", cons, "metadata", meta, "task_links", links, "contact_email", nasty(i + 11),
        "executor_config", "name", "borealis", "data", nasty(i + 9), "fetcher_uris", "value",
        nasty(i), "extract", i % 2, "partition_policy", "reschedule", i % 2, "delay_secs",
        INTS[(i + 5) % N_INTS], "sla_policy", "percentage", "percentage", REALS[(i + 1) % N_REALS],
        "duration_secs", INTS[(i + 7) % N_INTS]);
    assert_non_null(c);
    if (i % 3 == 0) {
        json_object_set_new(c, "container",
                            json_pack("{s:{s:s, s:[{s:s, s:s}]}}", "docker", "image", nasty(i),
                                      "parameters", "name", nasty(i + 1), "value", nasty(i + 2)));
    } else if (i % 3 == 1) {
        json_object_set_new(c, "container",
                            json_pack("{s:{s:{s:{s:s, s:s}}, s:[{s:s, s:s, s:s}]}}", "mesos",
                                      "image", "docker", "name", nasty(i), "tag", "latest",
                                      "volumes", "container_path", nasty(i + 1), "host_path", "/h",
                                      "mode", "RO"));
    }
    return c;
}

/* A ScheduledTask as the store returns it, with or without its config. */
static Bo__ScheduledTask *gen_task(unsigned i, bool config)
{
    char id[64];
    snprintf(id, sizeof(id), "bench-prod-big-%u-%08x", i, i * 2654435761u);
    json_t *events = json_array();
    for (unsigned e = 0; e < i % 4; e++) {
        json_array_append_new(events,
                              json_pack("{s:I, s:s, s:s, s:s}", "timestamp_ms",
                                        (json_int_t)1700000000000LL + e * 1000 + i, "status",
                                        e == 0   ? "PENDING"
                                        : e == 1 ? "ASSIGNED"
                                                 : "RUNNING",
                                        "message", nasty(i + e), "scheduler", e % 2 ? "" : "s1"));
    }
    json_t *ports = json_object();
    for (unsigned p = 0; p < i % 3; p++) {
        json_object_set_new(ports, p == 0 ? "http" : nasty(i + p), json_integer(31000 + p + i));
    }
    json_t *at = json_pack("{s:s, s:s, s:s, s:o, s:i}", "task_id", id, "slave_id",
                           i % 5 == 0 ? "" : "agent-1", "slave_host", nasty(i + 2),
                           "assigned_ports", ports, "instance_id", (int)i);
    if (config) {
        json_object_set_new(at, "task", gen_config(i));
    }
    json_t *j =
        json_pack("{s:o, s:s, s:i, s:o, s:s, s:i}", "assigned_task", at, "status",
                  i % 7 == 0 ? "PENDING" : "RUNNING", "failure_count", (int)(i % 3), "task_events",
                  events, "ancestor_id", i % 2 ? "" : nasty(i), "times_partitioned", (int)(i % 2));
    assert_non_null(j);
    struct bo_err err = BO_ERR_INIT;
    ProtobufCMessage *m = NULL;
    int rc = bo_pbjson_decode(&bo__scheduled_task__descriptor, j, &m, &err);
    if (rc != BO_OK) {
        fail_msg("task %u: %s", i, err.msg);
    }
    json_decref(j);
    return (Bo__ScheduledTask *)m;
}

static void test_write_generated_tasks(void **state)
{
    (void)state;
    for (unsigned i = 0; i < 200; i++) {
        Bo__ScheduledTask *t = gen_task(i, i % 2 == 0);
        check_write(&t->base);
        if (i % 2 == 0) {
            check_write(&t->assigned_task->task->base);
        }
        bo__scheduled_task__free_unpacked(t, NULL);
    }
}

static void test_write_corpus(void **state)
{
    (void)state;
    struct bo_err err = BO_ERR_INIT;
    int rc;
    ProtobufCMessage *jc = decode(&bo__job_configuration__descriptor, JOB, &rc, &err);
    assert_int_equal(rc, BO_OK);
    check_write(jc);
    protobuf_c_message_free_unpacked(jc, NULL);

    ProtobufCMessage *t = decode(&bo__scheduled_task__descriptor,
                                 "{\"assigned_task\": null, \"status\": \"PENDING\"}", &rc, &err);
    assert_int_equal(rc, BO_OK);
    check_write(t);
    protobuf_c_message_free_unpacked(t, NULL);

    /* bytes: hex, or their length; uint64 past INT64_MAX as jansson has it */
    Bo__LogEntry e = BO__LOG_ENTRY__INIT;
    Bo__Compressed c = BO__COMPRESSED__INIT;
    uint8_t data[256];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)i;
    }
    c.codec = BO__CODEC__CODEC_ZSTD;
    c.data.data = data;
    c.data.len = sizeof(data);
    e.entry_case = BO__LOG_ENTRY__ENTRY_COMPRESSED;
    e.compressed = &c;
    check_write(&e.base);
    c.uncompressed_size = UINT64_MAX;
    check_write(&e.base);
    c.uncompressed_size = (uint64_t)INT64_MAX + 1;
    check_write(&e.base);
    c.data.len = 0;
    check_write(&e.base);
    e.padding.data = data;
    e.padding.len = 3;
    check_write(&e.base);

    /* empty messages of several types */
    Bo__JobKey k = BO__JOB_KEY__INIT;
    check_write(&k.base);
    Bo__TaskConfig tc = BO__TASK_CONFIG__INIT;
    check_write(&tc.base);
    Bo__AssignedTask at = BO__ASSIGNED_TASK__INIT;
    check_write(&at.base);
    Bo__HostAttributes ha = BO__HOST_ATTRIBUTES__INIT;
    check_write(&ha.base);
    Bo__JobConfiguration jc2 = BO__JOB_CONFIGURATION__INIT;
    check_write(&jc2.base);
    check_write(&e.base);
}

/* What decoding never makes but a message built in code may hold. */
static void test_write_edges(void **state)
{
    (void)state;
    /* NULL strings are "" */
    Bo__JobKey k = BO__JOB_KEY__INIT;
    k.role = NULL;
    k.environment = "prod";
    k.name = NULL;
    check_write(&k.base);

    /* a repeated map key: the first position, the last value */
    Bo__AssignedTask at = BO__ASSIGNED_TASK__INIT;
    Bo__AssignedTask__AssignedPortsEntry p[4] = {BO__ASSIGNED_TASK__ASSIGNED_PORTS_ENTRY__INIT,
                                                 BO__ASSIGNED_TASK__ASSIGNED_PORTS_ENTRY__INIT,
                                                 BO__ASSIGNED_TASK__ASSIGNED_PORTS_ENTRY__INIT,
                                                 BO__ASSIGNED_TASK__ASSIGNED_PORTS_ENTRY__INIT};
    Bo__AssignedTask__AssignedPortsEntry *pp[4] = {&p[0], &p[1], &p[2], &p[3]};
    p[0].key = "a";
    p[0].value = 1;
    p[1].key = "b";
    p[1].value = 2;
    p[2].key = "a";
    p[2].value = 3;
    p[3].key = NULL; /* "" */
    p[3].value = 4;
    at.assigned_ports = pp;
    at.n_assigned_ports = 4;
    check_write(&at.base);
    struct bo_buf b = BO_BUF_INIT;
    assert_int_equal(bo_pbjson_write(&at.base, BO_PBJSON_COMPACT, &b), BO_OK);
    assert_int_equal(b.len, strlen("{\"assigned_ports\":{\"a\":3,\"b\":2,\"\":4}}"));
    assert_memory_equal(b.data, "{\"assigned_ports\":{\"a\":3,\"b\":2,\"\":4}}", b.len);
    bo_buf_release(&b);

    /* an enum value without a name is its number */
    Bo__ScheduledTask t = BO__SCHEDULED_TASK__INIT;
    t.status = (Bo__ScheduleStatus)99;
    check_write(&t.base);

    /* a NULL submessage in an array, a oneof naming a NULL submessage */
    Bo__TaskConfig tc = BO__TASK_CONFIG__INIT;
    Bo__Resource r = BO__RESOURCE__INIT;
    r.kind_case = BO__RESOURCE__KIND_NUM_CPUS;
    r.num_cpus = 0.25;
    Bo__Resource *rs[2] = {&r, NULL};
    tc.resources = rs;
    tc.n_resources = 2;
    Bo__Constraint con = BO__CONSTRAINT__INIT;
    con.kind_case = BO__CONSTRAINT__KIND_LIMIT;
    con.limit = NULL;
    Bo__Constraint *cs[1] = {&con};
    tc.constraints = cs;
    tc.n_constraints = 1;
    check_write(&tc.base);

    /* every real in the table, and more, through a oneof double */
    for (size_t i = 0; i < N_REALS; i++) {
        r.num_cpus = REALS[i];
        check_write(&r.base);
        r.num_cpus = -REALS[i];
        check_write(&r.base);
    }
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        double d;
        uint64_t bits = seed;
        memcpy(&d, &bits, sizeof(d));
        if (!isfinite(d)) {
            continue;
        }
        r.num_cpus = d;
        check_write(&r.base);
        r.num_cpus = (double)(int64_t)(seed >> 20) / 1000.0;
        check_write(&r.base);
    }
    r.kind_case = BO__RESOURCE__KIND_RAM_MB;
    for (size_t i = 0; i < N_INTS; i++) {
        r.ram_mb = INTS[i];
        check_write(&r.base);
    }
}

/* The string writer copies plain runs eight bytes at a time: every byte
 * that needs attention (escapes, control characters, multi-byte UTF-8, and
 * invalid UTF-8) at every offset around those words, in strings of every
 * length up to three words, comes out as jansson writes it. */
static void test_write_strings_at_every_offset(void **state)
{
    (void)state;
    static const char *const special[] = {
        "\"", "\\",   "\n", "\x01", "\x1f", "\t", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "/",  "\x7f", " "};
    char str[64];
    for (size_t len = 0; len <= 24; len++) {
        for (size_t at = 0; at <= len; at++) {
            for (size_t k = 0; k < sizeof(special) / sizeof(*special); k++) {
                memset(str, 'a', len);
                size_t sl = strlen(special[k]);
                memcpy(str + at, special[k], sl);
                str[at + sl + (len - at)] = '\0';
                memset(str + at + sl, 'z', len - at);
                Bo__JobKey key = BO__JOB_KEY__INIT;
                key.role = str;
                check_write(&key.base);
                /* the plain helper, against jansson's dump of the string alone */
                json_t *j = json_string(str);
                assert_non_null(j);
                char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
                struct bo_buf b = BO_BUF_INIT;
                assert_int_equal(bo_pbjson_write_str(str, &b), BO_OK);
                assert_int_equal(b.len, strlen(want));
                assert_memory_equal(b.data, want, b.len);
                free(want);
                json_decref(j);
                bo_buf_release(&b);
            }
            /* invalid UTF-8 at this offset is refused wherever it falls */
            memset(str, 'a', len + 1);
            str[at] = '\xff';
            str[len + 1] = '\0';
            struct bo_buf b = BO_BUF_INIT;
            assert_int_equal(bo_pbjson_write_str(str, &b), BO_EINVAL);
            bo_buf_release(&b);
        }
    }
    static const int64_t ints[] = {0,   1,         -1,        9,     10,           99,
                                   100, INT64_MAX, INT64_MIN, -4000, 1795350494116};
    for (size_t i = 0; i < sizeof(ints) / sizeof(*ints); i++) {
        json_t *j = json_integer(ints[i]);
        char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        struct bo_buf b = BO_BUF_INIT;
        assert_int_equal(bo_pbjson_write_int(ints[i], &b), BO_OK);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(b.data, want, b.len);
        free(want);
        json_decref(j);
        bo_buf_release(&b);
    }
}

/* What jansson refuses, the writer refuses too, leaving the buffer as it
 * was. */
static void test_write_refuses_what_jansson_refuses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\x80",         "ab\xc3",           "\xc0\x80",         "\xc1\xbf",         "\xe0\x80\x80",
        "\xed\xa0\x80", "\xf5\x80\x80\x80", "\xf4\x90\x80\x80", "\xf0\x80\x80\x80", "\xe6\x97",
        "ok\xff",       "\xc3\x28",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        Bo__JobKey k = BO__JOB_KEY__INIT;
        k.role = (char *)bad[i];
        assert_null(bo_pbjson_encode(&k.base, 0));
        struct bo_buf b = BO_BUF_INIT;
        assert_int_equal(bo_buf_append(&b, "prefix", 6), BO_OK);
        assert_int_equal(bo_pbjson_write(&k.base, 0, &b), BO_EINVAL);
        assert_int_equal(b.len, 6);
        assert_memory_equal(b.data, "prefix", 6);

        /* as a map key */
        Bo__AssignedTask at = BO__ASSIGNED_TASK__INIT;
        Bo__AssignedTask__AssignedPortsEntry p = BO__ASSIGNED_TASK__ASSIGNED_PORTS_ENTRY__INIT;
        Bo__AssignedTask__AssignedPortsEntry *pp = &p;
        p.key = (char *)bad[i];
        at.assigned_ports = &pp;
        at.n_assigned_ports = 1;
        assert_null(bo_pbjson_encode(&at.base, 0));
        assert_int_equal(bo_pbjson_write(&at.base, 0, &b), BO_EINVAL);
        assert_int_equal(b.len, 6);
        bo_buf_release(&b);
    }
    static const double nonfinite[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        Bo__Resource r = BO__RESOURCE__INIT;
        r.kind_case = BO__RESOURCE__KIND_NUM_CPUS;
        r.num_cpus = nonfinite[i];
        assert_null(bo_pbjson_encode(&r.base, 0));
        struct bo_buf b = BO_BUF_INIT;
        assert_int_equal(bo_pbjson_write(&r.base, 0, &b), BO_EINVAL);
        assert_int_equal(b.len, 0);
        bo_buf_release(&b);
    }
}

/* The buffer's growth is the writer's only allocation: failing it at every
 * step is BO_ENOMEM with the buffer as it was, and nothing leaks. */
static void test_write_out_of_memory(void **state)
{
    (void)state;
    Bo__ScheduledTask *t = gen_task(8, true);
    json_t *tree = bo_pbjson_encode(&t->base, 0);
    char *want = json_dumps(tree, JSON_COMPACT);
    assert_non_null(want);
    bool done = false;
    for (long n = 0; !done; n++) {
        assert_true(n < 100);
        struct bo_buf b = BO_BUF_INIT;
        assert_int_equal(bo_buf_append(&b, "x", 1), BO_OK);
        size_t cap = b.cap;
        bo_mem_fail_after(n);
        int rc = bo_pbjson_write(&t->base, 0, &b);
        bo_mem_fail_after(-1);
        if (rc == BO_OK) {
            assert_int_equal(b.len, 1 + strlen(want));
            assert_memory_equal(b.data + 1, want, strlen(want));
            done = true;
        } else {
            assert_int_equal(rc, BO_ENOMEM);
            assert_int_equal(b.len, 1);
            assert_int_equal(b.data[0], 'x');
            assert_true(b.cap >= cap);
        }
        bo_buf_release(&b);
    }
    free(want);
    json_decref(tree);
    bo__scheduled_task__free_unpacked(t, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_round_trip),
        cmocka_unit_test(test_enum_names),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_null_is_absent_and_zero_fields_present),
        cmocka_unit_test(test_compact_and_bytes_length),
        cmocka_unit_test(test_write_corpus),
        cmocka_unit_test(test_write_generated_tasks),
        cmocka_unit_test(test_write_edges),
        cmocka_unit_test(test_write_strings_at_every_offset),
        cmocka_unit_test(test_write_refuses_what_jansson_refuses),
        cmocka_unit_test(test_write_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
