/*
 * test_pbjson.c - protobuf <-> JSON: round trips, enums, oneofs, maps, and
 * every kind of bad input refused with a message naming the path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/err.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_round_trip),
        cmocka_unit_test(test_enum_names),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_null_is_absent_and_zero_fields_present),
        cmocka_unit_test(test_compact_and_bytes_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
