/*
 * test_hostinfo.c - resource detection, --attributes and port range parsing
 * (with their errors), the persistent agent id, the --user-map parser and the
 * role -> user rule. A user is created (and deleted again) only when the test
 * runs as root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "host/hostinfo.h"

/* snprintf into an array, failing the test on truncation. */
#define PATHF(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

static void test_detect(void **state)
{
    (void)state;
    struct bo_host_resources r;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_host_detect("/tmp", &r, &err), BO_OK);
    print_message("cpus %g, ram %llu MiB, disk %llu MiB, host '%s'\n", r.cpus,
                  (unsigned long long)r.ram_mib, (unsigned long long)r.disk_mib, r.hostname);
    assert_true(r.cpus > 0);
    assert_true(r.cpus <= (double)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(r.ram_mib > 0);
    assert_true(r.disk_mib > 0);
    assert_true(strlen(r.hostname) > 0);
    assert_int_equal(bo_host_detect("/nonexistent/dir", &r, &err), BO_ENOTFOUND);
}

static char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    assert_non_null(s);
    return s;
}

static void attrs_are(const char *spec, const char *host, const char *want)
{
    json_t *o = NULL;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_host_parse_attributes(spec, host, &o, &err);
    if (rv != BO_OK) {
        print_message("'%s': %s\n", spec, bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    char *s = dump(o);
    assert_string_equal(s, want);
    free(s);
    json_decref(o);
}

static void attrs_bad(const char *spec, const char *msg_part)
{
    json_t *o = NULL;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_host_parse_attributes(spec, "h0", &o, &err);
    if (rv != BO_EINVAL) {
        print_message("'%s' was accepted\n", spec);
    }
    assert_int_equal(rv, BO_EINVAL);
    assert_null(o);
    if (strstr(err.msg, msg_part) == NULL) {
        print_message("'%s': message '%s' lacks '%s'\n", spec, err.msg, msg_part);
    }
    assert_non_null(strstr(err.msg, msg_part));
}

static void test_attributes(void **state)
{
    (void)state;
    attrs_are(
        "host=h1,rack=r4,zone=z1,dedicated=www/web", "ignored",
        "{\"host\":[\"h1\"],\"rack\":[\"r4\"],\"zone\":[\"z1\"],\"dedicated\":[\"www/web\"]}");
    attrs_are("rack=r4;r5,zone=z1", "myhost",
              "{\"rack\":[\"r4\",\"r5\"],\"zone\":[\"z1\"],\"host\":[\"myhost\"]}");
    attrs_are("", "myhost", "{\"host\":[\"myhost\"]}");
    attrs_are(NULL, "myhost", "{\"host\":[\"myhost\"]}");
    attrs_are(NULL, NULL, "{}");
    attrs_are("my.attr-1_x=v:1", NULL, "{\"my.attr-1_x\":[\"v:1\"]}");

    attrs_bad("rack=r4,rack=r5", "duplicate attribute 'rack'");
    attrs_bad("rack", "bad item 'rack'");
    attrs_bad("=x", "bad item ''");
    attrs_bad("ra ck=x", "bad item 'ra ck'");
    attrs_bad("rack=", "bad value ''");
    attrs_bad("rack=a;;b", "bad value ''");
    attrs_bad("rack=a;", "bad value ''");
    attrs_bad("rack=a b", "bad value 'a b'");
    attrs_bad("rack=a=b", "bad value 'a=b'");
    attrs_bad("rack=a;a", "duplicate value 'a'");
    attrs_bad("host=h,", "bad item ''");
    attrs_bad("a=1,,b=2", "bad item ''");
}

static void ports_are(const char *spec, const char *want)
{
    json_t *a = NULL;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_host_parse_ports(spec, &a, &err);
    if (rv != BO_OK) {
        print_message("'%s': %s\n", spec, bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    char *s = dump(a);
    assert_string_equal(s, want);
    free(s);
    json_decref(a);
}

static void test_ports(void **state)
{
    (void)state;
    ports_are("31000-32000,40000-40100", "[[31000,32000],[40000,40100]]");
    ports_are("40000-40100,31000-32000", "[[31000,32000],[40000,40100]]");
    ports_are("8080", "[[8080,8080]]");
    ports_are("1-65535", "[[1,65535]]");
    ports_are("10-20,21-30", "[[10,20],[21,30]]");
    ports_are("", "[]");
    ports_are(NULL, "[]");

    const char *bad[] = {"0-10", "10-5",    "65536",    "1-65536", "abc",   "1-",
                         "-5",   ",",       "1,,2",     "1,",      "1-2-3", " 1-2",
                         "+1-2", "1-2,2-3", "10-20,15", "100000",  "5,5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *a = NULL;
        struct bo_err err = BO_ERR_INIT;
        int rv = bo_host_parse_ports(bad[i], &a, &err);
        if (rv != BO_EINVAL) {
            print_message("'%s' was accepted\n", bad[i]);
        }
        assert_int_equal(rv, BO_EINVAL);
        assert_null(a);
        assert_non_null(strstr(err.msg, "parse ports: "));
    }
    struct bo_err err = BO_ERR_INIT;
    json_t *a = NULL;
    assert_int_equal(bo_host_parse_ports("1-10,5-6", &a, &err), BO_EINVAL);
    assert_string_equal(err.msg, "parse ports: ranges 1-10 and 5-6 overlap");
}

static void test_agent_id(void **state)
{
    (void)state;
    char dir[] = "/tmp/bo-host-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char id1[BO_HOST_AGENT_ID_MAX + 1], id2[BO_HOST_AGENT_ID_MAX + 1];
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_host_agent_id(dir, id1, &err), BO_OK);
    assert_int_equal(strlen(id1), 6 + 16);
    assert_memory_equal(id1, "agent-", 6);
    for (size_t i = 6; i < 22; i++) {
        assert_non_null(strchr("0123456789abcdef", id1[i]));
    }
    assert_int_equal(bo_host_agent_id(dir, id2, &err), BO_OK);
    assert_string_equal(id1, id2);

    char path[PATH_MAX];
    PATHF(path, "%s/agent_id", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[128] = {0};
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_memory_equal(line, id1, 22);
    assert_int_equal(line[22], '\n');

    /* an operator-chosen id is kept; a corrupt file is not replaced */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("agent-rack4-07\n", f);
    fclose(f);
    assert_int_equal(bo_host_agent_id(dir, id2, &err), BO_OK);
    assert_string_equal(id2, "agent-rack4-07");
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("not an id\n", f);
    fclose(f);
    assert_int_equal(bo_host_agent_id(dir, id2, &err), BO_ECORRUPT);
    assert_string_equal(id2, "agent-rack4-07");

    unlink(path);
    rmdir(dir);
    /* a missing work dir cannot hold an id */
    assert_int_not_equal(bo_host_agent_id("/nonexistent/dir", id2, &err), BO_OK);
}

static void test_user_map(void **state)
{
    (void)state;
    json_t *m = NULL;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_host_parse_user_map("www=nginx,batch=nobody,_x=y-1", &m, &err), BO_OK);
    char *s = dump(m);
    assert_string_equal(s, "{\"www\":\"nginx\",\"batch\":\"nobody\",\"_x\":\"y-1\"}");
    free(s);
    json_decref(m);
    assert_int_equal(bo_host_parse_user_map("", &m, &err), BO_OK);
    assert_int_equal(json_object_size(m), 0);
    json_decref(m);

    const char *bad[] = {
        "www",         "www=",   "=nginx", "Www=nginx", "www=Nginx",
        "www=a,www=b", "1www=x", "www=x,", "www=a b",   "www=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m = NULL;
        int rv = bo_host_parse_user_map(bad[i], &m, &err);
        if (rv != BO_EINVAL) {
            print_message("'%s' was accepted\n", bad[i]);
        }
        assert_int_equal(rv, BO_EINVAL);
        assert_null(m);
    }
    assert_true(bo_host_safe_user_name("a"));
    assert_true(bo_host_safe_user_name("_a-1"));
    assert_true(bo_host_safe_user_name("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 32 */
    assert_false(bo_host_safe_user_name("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_false(bo_host_safe_user_name(""));
    assert_false(bo_host_safe_user_name("-a"));
    assert_false(bo_host_safe_user_name("a.b"));
}

static void test_resolve_user(void **state)
{
    (void)state;
    json_t *m = NULL;
    struct bo_err err = BO_ERR_INIT;
    assert_int_equal(bo_host_parse_user_map("www=nobody,ops=root", &m, &err), BO_OK);
    struct passwd *nobody = getpwnam("nobody");
    assert_non_null(nobody);
    uid_t nobody_uid = nobody->pw_uid;

    struct bo_host_user u;
    assert_int_equal(bo_host_resolve_user("www", m, false, &u, &err), BO_OK);
    assert_string_equal(u.name, "nobody");
    assert_int_equal(u.uid, nobody_uid);
    assert_int_equal(bo_host_resolve_user("ops", m, false, &u, &err), BO_OK);
    assert_string_equal(u.name, "root");
    assert_int_equal(u.uid, 0);
    assert_int_equal(u.gid, 0);
    /* not in the map: the user named like the role */
    assert_int_equal(bo_host_resolve_user("root", m, false, &u, &err), BO_OK);
    assert_int_equal(u.uid, 0);
    assert_int_equal(bo_host_resolve_user("nobody", NULL, false, &u, &err), BO_OK);
    assert_int_equal(u.uid, nobody_uid);

    int rv = bo_host_resolve_user("no-such-role-zz", m, false, &u, &err);
    assert_int_equal(rv, BO_ENOTFOUND);
    assert_string_equal(err.msg, "no local user 'no-such-role-zz' for role 'no-such-role-zz'");
    json_t *m2 = NULL;
    assert_int_equal(bo_host_parse_user_map("web=no-such-user-zz", &m2, &err), BO_OK);
    rv = bo_host_resolve_user("web", m2, false, &u, &err);
    assert_int_equal(rv, BO_ENOTFOUND);
    assert_string_equal(err.msg, "no local user 'no-such-user-zz' for role 'web'");
    json_decref(m2);

    assert_int_equal(bo_host_resolve_user("WWW", m, false, &u, &err), BO_EINVAL);
    assert_int_equal(bo_host_resolve_user("a/b", m, false, &u, &err), BO_EINVAL);
    assert_int_equal(bo_host_resolve_user("", m, false, &u, &err), BO_EINVAL);
    json_decref(m);
}

static void test_create_user(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("skipping: not root, will not create users\n");
        skip();
    }
    char name[32];
    PATHF(name, "botest%ld", (long)getpid() % 1000000);
    assert_null(getpwnam(name));
    struct bo_host_user u;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_host_resolve_user(name, NULL, true, &u, &err);
    if (rv != BO_OK) {
        print_message("%s\n", bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    struct passwd *pw = getpwnam(name);
    assert_non_null(pw);
    assert_int_equal(u.uid, pw->pw_uid);
    assert_int_equal(u.gid, pw->pw_gid);
    assert_string_equal(pw->pw_shell, "/usr/sbin/nologin");
    struct stat st;
    assert_int_not_equal(stat(pw->pw_dir, &st) == 0 && st.st_uid == u.uid, 1);
    /* already there: no second useradd, same answer */
    struct bo_host_user again;
    assert_int_equal(bo_host_resolve_user(name, NULL, true, &again, &err), BO_OK);
    assert_int_equal(again.uid, u.uid);

    char cmd[128];
    PATHF(cmd, "userdel %s", name);
    assert_int_equal(system(cmd), 0);
    PATHF(cmd, "getent group %s >/dev/null && groupdel %s; true", name, name);
    assert_int_equal(system(cmd), 0);
    assert_null(getpwnam(name));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),      cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_ports),       cmocka_unit_test(test_agent_id),
        cmocka_unit_test(test_user_map),    cmocka_unit_test(test_resolve_user),
        cmocka_unit_test(test_create_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
