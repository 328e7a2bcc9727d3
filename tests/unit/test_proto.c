/*
 * test_proto.c - forward compatibility of the log schema: a reader skips the
 * fields a newer writer added, and an Op it does not know decodes as an Op
 * with nothing set (so the store can refuse it instead of misreading it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/buf.h"
#include "common/pbwire.h"
#include "storage.pb-c.h"

/* A fixed-width field, as a newer writer might add (wire types 1 and 5). */
static void put_fixed(struct bo_buf *b, uint32_t field, int wire, uint64_t v)
{
    assert_int_equal(bo_pb_put_varint(b, ((uint64_t)field << 3) | (uint64_t)wire), 0);
    int n = wire == BO_PB_I64 ? 8 : 4;
    for (int i = 0; i < n; i++) {
        assert_int_equal(bo_buf_append_byte(b, (uint8_t)(v >> (8 * i))), 0);
    }
}

/* Unknown fields of every wire type, numbered `base`.. */
static void put_unknowns(struct bo_buf *b, uint32_t base)
{
    assert_int_equal(bo_pb_put_uint(b, base, 123456789), 0);
    assert_int_equal(bo_pb_put_bytes(b, base + 1, "\x0a\x03new", 5), 0);
    put_fixed(b, base + 2, BO_PB_I64, 0x1122334455667788ULL);
    put_fixed(b, base + 3, BO_PB_I32, 0xdeadbeef);
}

static void encode_config(struct bo_buf *c)
{
    struct bo_buf job = BO_BUF_INIT;
    assert_int_equal(bo_pb_put_bytes(&job, 1, "www", 3), 0);
    put_unknowns(&job, 50);
    assert_int_equal(bo_pb_put_bytes(&job, 3, "hello", 5), 0);
    put_unknowns(c, 100);
    assert_int_equal(bo_pb_put_bytes(c, 1, job.data, job.len), 0);
    put_unknowns(c, 200);
    assert_int_equal(bo_pb_put_uint(c, 4, 7), 0); /* priority */
    put_unknowns(c, 18);                          /* just past the last known field */
    assert_int_equal(bo_pb_put_bytes(c, 7, "preferred", 9), 0);
    bo_buf_release(&job);
}

static void check_config(const Bo__TaskConfig *c)
{
    assert_non_null(c->job);
    assert_string_equal(c->job->role, "www");
    assert_string_equal(c->job->name, "hello");
    assert_int_equal(c->priority, 7);
    assert_string_equal(c->tier, "preferred");
}

static void test_task_config_skips_unknown(void **state)
{
    (void)state;
    struct bo_buf c = BO_BUF_INIT;
    encode_config(&c);
    Bo__TaskConfig *tc = bo__task_config__unpack(NULL, c.len, c.data);
    assert_non_null(tc);
    check_config(tc);
    /* Unknown fields are kept and written back (protobuf-c does so). */
    assert_true(tc->base.n_unknown_fields > 0);
    bo__task_config__free_unpacked(tc, NULL);
    bo_buf_release(&c);
}

static void test_scheduled_task_skips_unknown(void **state)
{
    (void)state;
    struct bo_buf c = BO_BUF_INIT, at = BO_BUF_INIT, t = BO_BUF_INIT, ev = BO_BUF_INIT;
    encode_config(&c);
    assert_int_equal(bo_pb_put_bytes(&at, 1, "task-1", 6), 0);
    put_unknowns(&at, 30);
    assert_int_equal(bo_pb_put_bytes(&at, 4, c.data, c.len), 0);
    assert_int_equal(bo_pb_put_uint(&at, 6, 3), 0);
    assert_int_equal(bo_pb_put_uint(&ev, 1, 1700000000000ULL), 0);
    put_unknowns(&ev, 9);
    assert_int_equal(bo_pb_put_uint(&ev, 2, BO__SCHEDULE_STATUS__RUNNING), 0);
    put_unknowns(&t, 40);
    assert_int_equal(bo_pb_put_bytes(&t, 1, at.data, at.len), 0);
    assert_int_equal(bo_pb_put_uint(&t, 2, BO__SCHEDULE_STATUS__RUNNING), 0);
    put_unknowns(&t, 7);
    assert_int_equal(bo_pb_put_bytes(&t, 4, ev.data, ev.len), 0);
    assert_int_equal(bo_pb_put_uint(&t, 3, 2), 0); /* failure_count, out of order */

    Bo__ScheduledTask *st = bo__scheduled_task__unpack(NULL, t.len, t.data);
    assert_non_null(st);
    assert_int_equal(st->status, BO__SCHEDULE_STATUS__RUNNING);
    assert_int_equal(st->failure_count, 2);
    assert_string_equal(st->assigned_task->task_id, "task-1");
    assert_int_equal(st->assigned_task->instance_id, 3);
    check_config(st->assigned_task->task);
    assert_int_equal(st->n_task_events, 1);
    assert_int_equal(st->task_events[0]->timestamp_ms, 1700000000000LL);
    assert_int_equal(st->task_events[0]->status, BO__SCHEDULE_STATUS__RUNNING);
    bo__scheduled_task__free_unpacked(st, NULL);
    bo_buf_release(&c);
    bo_buf_release(&at);
    bo_buf_release(&t);
    bo_buf_release(&ev);
}

static void test_log_entry_skips_unknown(void **state)
{
    (void)state;
    struct bo_buf op = BO_BUF_INIT, rq = BO_BUF_INIT, txn = BO_BUF_INIT, e = BO_BUF_INIT;
    assert_int_equal(bo_pb_put_bytes(&rq, 1, "q", 1), 0); /* RemoveQuota.role */
    put_unknowns(&rq, 2);
    assert_int_equal(bo_pb_put_bytes(&op, 6, rq.data, rq.len), 0);
    put_unknowns(&op, 100);
    put_unknowns(&txn, 3);
    assert_int_equal(bo_pb_put_bytes(&txn, 1, op.data, op.len), 0);
    assert_int_equal(bo_pb_put_uint(&txn, 2, 1), 0);
    put_unknowns(&e, 7);
    assert_int_equal(bo_pb_put_bytes(&e, 2, txn.data, txn.len), 0);
    put_unknowns(&e, 1000);

    Bo__LogEntry *le = bo__log_entry__unpack(NULL, e.len, e.data);
    assert_non_null(le);
    assert_int_equal(le->entry_case, BO__LOG_ENTRY__ENTRY_TRANSACTION);
    assert_int_equal(le->transaction->schema_version, 1);
    assert_int_equal(le->transaction->n_ops, 1);
    assert_int_equal(le->transaction->ops[0]->op_case, BO__OP__OP_REMOVE_QUOTA);
    assert_string_equal(le->transaction->ops[0]->remove_quota->role, "q");
    bo__log_entry__free_unpacked(le, NULL);

    /* A LogEntry holding only a kind of entry this reader does not know. */
    struct bo_buf e2 = BO_BUF_INIT;
    assert_int_equal(bo_pb_put_bytes(&e2, 7, "\x08\x01", 2), 0);
    le = bo__log_entry__unpack(NULL, e2.len, e2.data);
    assert_non_null(le);
    assert_int_equal(le->entry_case, BO__LOG_ENTRY__ENTRY__NOT_SET);
    bo__log_entry__free_unpacked(le, NULL);
    bo_buf_release(&e2);
    bo_buf_release(&op);
    bo_buf_release(&rq);
    bo_buf_release(&txn);
    bo_buf_release(&e);
}

static void test_unknown_op_is_not_set(void **state)
{
    (void)state;
    /* Op field 99 would be a newer writer's op kind (no op has it yet). */
    assert_null(protobuf_c_message_descriptor_get_field(&bo__op__descriptor, 99));
    struct bo_buf op = BO_BUF_INIT, txn = BO_BUF_INIT;
    assert_int_equal(bo_pb_put_bytes(&op, 99, "\x0a\x02hi", 4), 0);
    assert_int_equal(bo_pb_put_bytes(&txn, 1, op.data, op.len), 0);
    assert_int_equal(bo_pb_put_uint(&txn, 2, 1), 0);
    Bo__Transaction *t = bo__transaction__unpack(NULL, txn.len, txn.data);
    assert_non_null(t);
    assert_int_equal(t->n_ops, 1);
    assert_int_equal(t->ops[0]->op_case, BO__OP__OP__NOT_SET);
    bo__transaction__free_unpacked(t, NULL);
    bo_buf_release(&op);
    bo_buf_release(&txn);
}

/* Malformed bytes are refused, not half-read. */
static void test_malformed_refused(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"\x0a\x05"
         "ab",
         4},                     /* length past the end */
        {"\x08", 1},             /* varint cut short */
        {"\x0b\x00", 2},         /* start group: unsupported wire type */
        {"\x0a\x02\x08\xff", 4}, /* inner varint cut short */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        Bo__ScheduledTask *st =
            bo__scheduled_task__unpack(NULL, bad[i].len, (const uint8_t *)bad[i].bytes);
        assert_null(st);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_config_skips_unknown),
        cmocka_unit_test(test_scheduled_task_skips_unknown),
        cmocka_unit_test(test_log_entry_skips_unknown),
        cmocka_unit_test(test_unknown_op_is_not_set),
        cmocka_unit_test(test_malformed_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
