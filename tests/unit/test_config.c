/*
 * test_config.c - .aurora files through the real embedded interpreter: a
 * minimal service, a job using every converted feature, templating (self
 * refs, nested refs, binds, --bind, indexing, include), runtime refs and
 * the ports derived from them, --read-json, and the errors (file:line and
 * field) for the usual mistakes. Config files are written to a temporary
 * directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "config/config.h"

static char g_dir[64];
static char g_files[32][256];
static size_t g_n_files;

/* Write `text` to g_dir/name and return the path (static storage). */
static const char *write_file(const char *name, const char *text)
{
    assert_true(g_n_files < 32);
    char *path = g_files[g_n_files++];
    snprintf(path, 256, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

static json_t *load_opts(const char *name, const char *text, const struct bo_config_opts *opts)
{
    const char *path = write_file(name, text);
    json_t *jobs = NULL;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_config_load(path, opts, &jobs, &err);
    if (rv != BO_OK) {
        print_message("load: %s\n", bo_err_msg(&err, rv));
    }
    assert_int_equal(rv, BO_OK);
    assert_true(json_is_array(jobs));
    return jobs;
}

static json_t *load(const char *name, const char *text)
{
    return load_opts(name, text, NULL);
}

/* The load fails with `code` and exactly "<g_dir>/<msg>". */
static void load_fails(const char *name, const char *text, int code, const char *msg)
{
    const char *path = write_file(name, text);
    json_t *jobs = NULL;
    struct bo_err err = BO_ERR_INIT;
    int rv = bo_config_load(path, NULL, &jobs, &err);
    assert_int_equal(rv, code);
    assert_null(jobs);
    char want[1024];
    snprintf(want, sizeof(want), "%s/%s", g_dir, msg);
    if (strcmp(bo_err_msg(&err, rv), want) != 0) {
        print_message("got:  %s\nwant: %s\n", bo_err_msg(&err, rv), want);
    }
    assert_string_equal(bo_err_msg(&err, rv), want);
}

/* Follow a path of object keys and array indexes: "job.task_config.resources.0". */
static json_t *at(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *p = strtok_r(buf, ".", &save); p != NULL; p = strtok_r(NULL, ".", &save)) {
        if (json_is_array(j)) {
            j = json_array_get(j, strtoul(p, NULL, 10));
        } else {
            j = json_object_get(j, p);
        }
        if (j == NULL) {
            print_message("no '%s' in '%s'\n", p, path);
            return NULL;
        }
    }
    return j;
}

static const char *str_at(json_t *j, const char *path)
{
    json_t *v = at(j, path);
    if (!json_is_string(v)) {
        print_message("'%s' is not a string\n", path);
    }
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static json_int_t int_at(json_t *j, const char *path)
{
    json_t *v = at(j, path);
    if (!json_is_integer(v)) {
        print_message("'%s' is not a integer\n", path);
    }
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static bool bool_at(json_t *j, const char *path)
{
    json_t *v = at(j, path);
    if (!json_is_boolean(v)) {
        print_message("'%s' is not a boolean\n", path);
    }
    assert_true(json_is_boolean(v));
    return json_is_true(v);
}

/* executor_config.data of job `i`, parsed. */
static json_t *exec_data(json_t *jobs, size_t i)
{
    json_t *job = json_array_get(jobs, i);
    const char *s = str_at(job, "job.task_config.executor_config.data");
    json_error_t je;
    json_t *d = json_loads(s, 0, &je);
    assert_non_null(d);
    return d;
}

/* The named ports of job `i`, comma-joined. */
static void ports_of(json_t *jobs, size_t i, char *out, size_t n)
{
    json_t *res = at(json_array_get(jobs, i), "job.task_config.resources");
    size_t k;
    json_t *r;
    out[0] = '\0';
    json_array_foreach(res, k, r)
    {
        json_t *p = json_object_get(r, "named_port");
        if (p != NULL) {
            size_t len = strlen(out);
            snprintf(out + len, n - len, "%s%s", len ? "," : "", json_string_value(p));
        }
    }
}

#define HELLO_TASK                                                                                 \
    "hello = Process(name='hello', cmdline='echo hello')\n"                                        \
    "task = Task(processes=[hello], resources=Resources(cpu=0.5, ram=64*MB, disk=128*MB))\n"

static void test_minimal_service(void **state)
{
    (void)state;
    json_t *jobs = load("min.aurora", HELLO_TASK "jobs = [Service(cluster='devcluster', "
                                                 "role='www', environment='prod', task=task)]\n");
    assert_int_equal(json_array_size(jobs), 1);
    json_t *j = json_array_get(jobs, 0);
    assert_string_equal(str_at(j, "cluster"), "devcluster");
    assert_string_equal(str_at(j, "key"), "devcluster/www/prod/hello");
    assert_string_equal(str_at(j, "job.key.role"), "www");
    assert_string_equal(str_at(j, "job.key.environment"), "prod");
    assert_string_equal(str_at(j, "job.key.name"), "hello");
    assert_int_equal(int_at(j, "job.instance_count"), 1);
    assert_true(bool_at(j, "job.task_config.is_service"));
    assert_int_equal(int_at(j, "job.task_config.max_task_failures"), 1);
    assert_true(json_real_value(at(j, "job.task_config.resources.0.num_cpus")) == 0.5);
    assert_int_equal(int_at(j, "job.task_config.resources.1.ram_mb"), 64);
    assert_int_equal(int_at(j, "job.task_config.resources.2.disk_mb"), 128);
    assert_int_equal(json_array_size(at(j, "job.task_config.resources")), 3);
    assert_int_equal(json_array_size(at(j, "job.task_config.constraints")), 0);
    assert_null(json_object_get(at(j, "job"), "cron_schedule"));
    assert_string_equal(str_at(j, "job.task_config.executor_config.name"), "AuroraExecutor");
    assert_int_equal(int_at(j, "update_config.batch_size"), 1);
    assert_int_equal(int_at(j, "update_config.watch_secs"), 45);
    assert_true(bool_at(j, "update_config.rollback_on_failure"));
    assert_int_equal(int_at(j, "source.line"), 3);
    assert_non_null(strstr(str_at(j, "source.file"), "min.aurora"));

    json_t *d = exec_data(jobs, 0);
    assert_string_equal(str_at(d, "role"), "www");
    assert_string_equal(str_at(d, "name"), "hello");
    assert_string_equal(str_at(d, "task.name"), "hello");
    assert_string_equal(str_at(d, "task.processes.0.cmdline"), "echo hello");
    assert_int_equal(int_at(d, "task.processes.0.max_failures"), 1);
    assert_int_equal(int_at(d, "task.processes.0.min_duration"), 5);
    assert_string_equal(str_at(d, "task.processes.0.logger.destination"), "file");
    assert_int_equal(int_at(d, "task.processes.0.logger.rotate.log_size"), 100 << 20);
    assert_int_equal(int_at(d, "task.finalization_wait"), 30);
    assert_string_equal(str_at(d, "health_check_config.health_checker.http.endpoint"), "/health");
    assert_string_equal(str_at(d, "lifecycle.http.port"), "health");
    assert_null(json_object_get(d, "update_config"));
    assert_null(json_object_get(d, "instances"));
    json_decref(d);
    json_decref(jobs);
}

static const char FULL[] =
    "import getpass\n"
    "web = Process(name='web', cmdline='./web --port={{thermos.ports[http]}} "
    "--admin={{thermos.ports[admin]}} --alias={{thermos.ports[aurora]}}')\n"
    "setup = Process(name='setup', cmdline='echo setup', ephemeral=True, max_failures=3)\n"
    "cleanup = Process(name='cleanup', cmdline='echo bye', final=True)\n"
    "task = SequentialTask(name='server', processes=[setup, web, cleanup],\n"
    "    resources=Resources(cpu=1, ram=1*GB, disk=2*GB), finalization_wait=10)\n"
    "job = Service(\n"
    "  cluster='west', role='www', environment='prod', name='full', instances=10,\n"
    "  task=task, contact='ops@example.com', tier='preferred', priority=5,\n"
    "  max_task_failures=4,\n"
    "  constraints={'host': 'limit:1', 'rack': 'r1,r2', 'zone': '!z9', 'dedicated': 'www/web'},\n"
    "  metadata=[Metadata(key='team', value='web')],\n"
    "  task_links={'logs': 'http://logs/{{role}}'},\n"
    "  health_check_config=HealthCheckConfig(\n"
    "    health_checker=HealthCheckerConfig(http=HttpHealthChecker(endpoint='/ok',\n"
    "      expected_response_code=200)),\n"
    "    initial_interval_secs=5, interval_secs=2, max_consecutive_failures=3),\n"
    "  lifecycle=LifecycleConfig(http=HttpLifecycleConfig(port='http',\n"
    "    graceful_shutdown_wait_secs=2)),\n"
    "  announce=Announcer(primary_port='http', portmap={'aurora': 'http', 'admin': 8081}),\n"
    "  update_config=UpdateConfig(watch_secs=10, max_total_failures=1,\n"
    "    update_strategy=BatchUpdateStrategy(batch_size=3, autopause_after_batch=True)),\n"
    "  partition_policy=PartitionPolicy(reschedule=False, delay_secs=30),\n"
    "  sla_policy=CountSlaPolicy(count=2, duration_secs=60),\n"
    "  container=Mesos(volumes=[Volume(container_path='/data', host_path='/srv', mode='RO')]),\n"
    ")\n"
    "nightly = Job(cluster='west', role='www', environment='prod', name='nightly',\n"
    "  task=SimpleTask('report', 'echo report'), cron_schedule='0 3 * * *',\n"
    "  cron_collision_policy='CANCEL_NEW', max_task_failures=-1,\n"
    "  sla_policy=CoordinatorSlaPolicy(coordinator_url='http://c'),\n"
    "  container=Docker(image='busybox', parameters=[Parameter(name='net', value='host')]))\n"
    "jobs = [job, nightly]\n";

static void test_full_featured(void **state)
{
    (void)state;
    json_t *jobs = load("full.aurora", FULL);
    assert_int_equal(json_array_size(jobs), 2);
    json_t *j = json_array_get(jobs, 0);
    assert_string_equal(str_at(j, "key"), "west/www/prod/full");
    assert_int_equal(int_at(j, "job.instance_count"), 10);
    json_t *tc = at(j, "job.task_config");
    assert_string_equal(str_at(tc, "tier"), "preferred");
    assert_int_equal(int_at(tc, "priority"), 5);
    assert_int_equal(int_at(tc, "max_task_failures"), 4);
    assert_string_equal(str_at(tc, "contact_email"), "ops@example.com");
    assert_string_equal(str_at(tc, "task_links.logs"), "http://logs/www");
    assert_string_equal(str_at(tc, "metadata.0.key"), "team");
    assert_string_equal(str_at(tc, "metadata.0.value"), "web");
    assert_int_equal(json_real_value(at(tc, "resources.0.num_cpus")), 1);
    assert_int_equal(int_at(tc, "resources.1.ram_mb"), 1024);
    assert_int_equal(int_at(tc, "resources.2.disk_mb"), 2048);
    /* http and the alias aurora -> http; admin is a static port */
    char ports[128];
    ports_of(jobs, 0, ports, sizeof(ports));
    assert_string_equal(ports, "http");

    assert_string_equal(str_at(tc, "constraints.0.name"), "host");
    assert_int_equal(int_at(tc, "constraints.0.limit.limit"), 1);
    assert_string_equal(str_at(tc, "constraints.1.name"), "rack");
    assert_false(bool_at(tc, "constraints.1.value.negated"));
    assert_string_equal(str_at(tc, "constraints.1.value.values.0"), "r1");
    assert_string_equal(str_at(tc, "constraints.1.value.values.1"), "r2");
    assert_true(bool_at(tc, "constraints.2.value.negated"));
    assert_string_equal(str_at(tc, "constraints.2.value.values.0"), "z9");
    assert_string_equal(str_at(tc, "constraints.3.value.values.0"), "www/web");

    assert_false(bool_at(tc, "partition_policy.reschedule"));
    assert_int_equal(int_at(tc, "partition_policy.delay_secs"), 30);
    assert_int_equal(int_at(tc, "sla_policy.count.count"), 2);
    assert_int_equal(int_at(tc, "sla_policy.count.duration_secs"), 60);
    assert_string_equal(str_at(tc, "container.mesos.volumes.0.mode"), "RO");
    assert_string_equal(str_at(tc, "container.mesos.volumes.0.host_path"), "/srv");

    assert_int_equal(int_at(j, "update_config.watch_secs"), 10);
    assert_int_equal(int_at(j, "update_config.max_total_failures"), 1);
    assert_int_equal(int_at(j, "update_config.update_strategy.batch.batch_size"), 3);
    assert_true(bool_at(j, "update_config.update_strategy.batch.autopause_after_batch"));

    json_t *d = exec_data(jobs, 0);
    assert_string_equal(str_at(d, "task.name"), "server");
    assert_int_equal(int_at(d, "task.finalization_wait"), 10);
    assert_string_equal(str_at(d, "task.processes.1.cmdline"),
                        "./web --port={{thermos.ports[http]}} --admin={{thermos.ports[admin]}} "
                        "--alias={{thermos.ports[aurora]}}");
    assert_true(bool_at(d, "task.processes.0.ephemeral"));
    assert_int_equal(int_at(d, "task.processes.0.max_failures"), 3);
    assert_true(bool_at(d, "task.processes.2.final"));
    /* SequentialTask orders the non-final processes */
    assert_string_equal(str_at(d, "task.constraints.0.order.0"), "setup");
    assert_string_equal(str_at(d, "task.constraints.0.order.1"), "web");
    assert_int_equal(json_array_size(at(d, "task.constraints.0.order")), 2);
    assert_string_equal(str_at(d, "health_check_config.health_checker.http.endpoint"), "/ok");
    assert_int_equal(int_at(d, "health_check_config.health_checker.http.expected_response_code"),
                     200);
    assert_int_equal(int_at(d, "health_check_config.max_consecutive_failures"), 3);
    assert_true(json_real_value(at(d, "health_check_config.interval_secs")) == 2.0);
    assert_string_equal(str_at(d, "lifecycle.http.port"), "http");
    assert_int_equal(int_at(d, "lifecycle.http.graceful_shutdown_wait_secs"), 2);
    assert_string_equal(str_at(d, "announce.portmap.aurora"), "http");
    assert_int_equal(int_at(d, "announce.portmap.admin"), 8081);
    json_decref(d);

    json_t *n = json_array_get(jobs, 1);
    assert_string_equal(str_at(n, "key"), "west/www/prod/nightly");
    assert_string_equal(str_at(n, "job.cron_schedule"), "0 3 * * *");
    assert_string_equal(str_at(n, "job.cron_collision_policy"), "CANCEL_NEW");
    assert_false(bool_at(n, "job.task_config.is_service"));
    assert_int_equal(int_at(n, "job.task_config.max_task_failures"), -1);
    assert_int_equal(int_at(n, "job.task_config.resources.1.ram_mb"), 1024);
    assert_string_equal(str_at(n, "job.task_config.sla_policy.coordinator.status_key"), "drain");
    assert_string_equal(str_at(n, "job.task_config.container.docker.image"), "busybox");
    assert_string_equal(str_at(n, "job.task_config.container.docker.parameters.0.value"), "host");
    assert_int_equal(int_at(n, "source.line"), 27);
    json_decref(jobs);
}

static const char PROFILE[] =
    "class Profile(Struct):\n"
    "  instances = Default(Integer, 1)\n"
    "  greeting = Default(String, 'hi')\n"
    "  who = Required(String)\n"
    "Daemon = Process(daemon=True, max_failures=0)\n"
    "p = Daemon(name='greet', cmdline='echo {{profile.greeting}} {{profile.who}} from {{name}} "
    "in {{task.name}} of {{role}}/{{environment}} in {{cluster}}; {{fib[4]}} {{first[Kent]}} "
    "{{colors[{{pick}}]}}')\n"
    "res = Resources(cpu=0.25, ram=32*MB, disk=32*MB)\n"
    "include('sub/common.aurora')\n"
    "t = Task(name='t-{{profile.who}}', processes=[p, other], resources=res)\n"
    "jobs = [Job(cluster='c1', role='r1', environment='devel', task=t,\n"
    "            name='{{task.name}}-{{ env_suffix }}', instances='{{profile.instances}}')\n"
    "        .bind(profile=Profile(who='world'), fib=[0, 1, 1, 2, 3],\n"
    "              first={'Kent': 'Clark'}, colors={'red': 'FF0000'}, pick='red',\n"
    "              env_suffix='{{environment}}')]\n";

static void test_templating(void **state)
{
    (void)state;
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/sub", g_dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_file("sub/common.aurora", "include('more.aurora')\n"
                                    "other = Process(name='other', cmdline=OTHER_CMD)\n");
    write_file("sub/more.aurora", "OTHER_CMD = 'echo {{name}} {{task.processes[0].name}}'\n");
    json_t *jobs = load("tmpl.aurora", PROFILE);
    json_t *j = json_array_get(jobs, 0);
    assert_string_equal(str_at(j, "key"), "c1/r1/devel/t-world-devel");
    assert_int_equal(int_at(j, "job.instance_count"), 1);
    json_t *d = exec_data(jobs, 0);
    assert_string_equal(str_at(d, "task.processes.0.cmdline"),
                        "echo hi world from greet in t-world of r1/devel in c1; 3 Clark FF0000");
    assert_true(bool_at(d, "task.processes.0.daemon"));
    assert_int_equal(int_at(d, "task.processes.0.max_failures"), 0);
    assert_string_equal(str_at(d, "task.processes.1.cmdline"), "echo other greet");
    json_decref(d);
    json_decref(jobs);

    /* --bind: a dotted name overrides one field of a bound struct, and the
     * string is coerced to the field's type; plain names work too */
    struct bo_config_bind binds[] = {{"profile.instances", "3"}, {"profile.who", "you"}};
    struct bo_config_opts opts = {.binds = binds, .n_binds = 2};
    jobs = load_opts("tmpl2.aurora", PROFILE, &opts);
    j = json_array_get(jobs, 0);
    assert_int_equal(int_at(j, "job.instance_count"), 3);
    assert_string_equal(str_at(j, "key"), "c1/r1/devel/t-you-devel");
    json_decref(jobs);

    struct bo_config_bind bad[] = {{"profile.instances", "three"}};
    struct bo_config_opts bad_opts = {.binds = bad, .n_binds = 1};
    const char *path = write_file("tmpl3.aurora", PROFILE);
    struct bo_err err = BO_ERR_INIT;
    jobs = NULL;
    assert_int_equal(bo_config_load(path, &bad_opts, &jobs, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "tmpl3.aurora:12: job 't-world-devel': instances: expected "
                                    "an integer, got 'three'"));
}

static void test_struct_api(void **state)
{
    (void)state;
    /* Python-side use of structs: accessors, .get(), has_, copies, loops */
    json_t *jobs = load("api.aurora", HELLO_TASK
                        "base = Job(cluster='c', role='r', environment='test', task=task)\n"
                        "assert base.role() == 'r' and base.role().get() == 'r'\n"
                        "assert base.has_role() and not base.has_contact()\n"
                        "assert base.instances() == 1\n"
                        "names = [p.name() for p in task.processes()]\n"
                        "jobs = [base(name='%s-%d' % (names[0], i), instances=i + 1)\n"
                        "        for i in range(3)]\n");
    assert_int_equal(json_array_size(jobs), 3);
    assert_string_equal(str_at(jobs, "2.key"), "c/r/test/hello-2");
    assert_int_equal(int_at(jobs, "2.job.instance_count"), 3);
    json_decref(jobs);
}

static void test_runtime_refs(void **state)
{
    (void)state;
    json_t *jobs = load(
        "rt.aurora",
        "p = Process(name='p', cmdline='run --id={{thermos.task_id}} --user={{thermos.user}} "
        "--i={{mesos.instance}} --h={{ mesos.hostname }} --p={{thermos.ports[{{portname}}]}} "
        "--q={{thermos.ports[ \"grpc\" ]}}')\n"
        "hc = HealthCheckConfig(health_checker=HealthCheckerConfig(\n"
        "  shell=ShellHealthChecker(shell_command='curl localhost:{{thermos.ports[health]}}')))\n"
        "t = Task(processes=[p], resources=Resources(cpu=1, ram=MB, disk=MB))\n"
        "jobs = [Job(cluster='c', role='r', environment='prod', task=t, health_check_config=hc)\n"
        "        .bind(portname='http')]\n");
    char ports[128];
    ports_of(jobs, 0, ports, sizeof(ports));
    assert_string_equal(ports, "grpc,health,http");
    json_t *d = exec_data(jobs, 0);
    assert_string_equal(str_at(d, "task.processes.0.cmdline"),
                        "run --id={{thermos.task_id}} --user={{thermos.user}} "
                        "--i={{mesos.instance}} --h={{ mesos.hostname }} "
                        "--p={{thermos.ports[http]}} --q={{thermos.ports[ \"grpc\" ]}}");
    assert_string_equal(str_at(d, "health_check_config.health_checker.shell.shell_command"),
                        "curl localhost:{{thermos.ports[health]}}");
    json_decref(d);
    json_decref(jobs);
}

static void test_read_json(void **state)
{
    (void)state;
    static const char job[] =
        "{\"name\": \"j\", \"role\": \"r\", \"environment\": \"prod\", \"cluster\": \"c\","
        " \"instances\": 2, \"service\": true,"
        " \"task\": {\"processes\": [{\"name\": \"p\", \"cmdline\": \"echo {{role}}\"}],"
        "  \"resources\": {\"cpu\": 0.5, \"ram\": 33554432, \"disk\": 33554432}},"
        " \"sla_policy\": {\"percentage\": 50, \"duration_secs\": 10},"
        " \"container\": {\"image\": \"busybox\"}}";
    char text[1024];
    snprintf(text, sizeof(text), "{\"jobs\": [%s, %s]}", job, job);
    struct bo_config_opts opts = {.read_json = true};
    json_t *jobs = load_opts("jobs.json", text, &opts);
    assert_int_equal(json_array_size(jobs), 2);
    assert_string_equal(str_at(jobs, "1.key"), "c/r/prod/j");
    assert_int_equal(int_at(jobs, "0.job.instance_count"), 2);
    assert_int_equal(int_at(jobs, "0.job.task_config.resources.1.ram_mb"), 32);
    assert_true(json_real_value(at(jobs, "0.job.task_config.sla_policy.percentage.percentage")) ==
                50.0);
    assert_string_equal(str_at(jobs, "0.job.task_config.container.docker.image"), "busybox");
    json_t *d = exec_data(jobs, 0);
    assert_string_equal(str_at(d, "task.processes.0.cmdline"), "echo r");
    json_decref(d);
    json_decref(jobs);

    jobs = load_opts("one.json", job, &opts);
    assert_int_equal(json_array_size(jobs), 1);
    json_decref(jobs);

    const char *path = write_file("bad.json", "{\"jobs\": [{\"name\": \"j\", \"task\": 3}]}");
    struct bo_err err = BO_ERR_INIT;
    jobs = NULL;
    assert_int_equal(bo_config_load(path, &opts, &jobs, &err), BO_EINVAL);
    assert_non_null(strstr(err.msg, "bad.json:1: jobs[0]: Job.task: expected Task, got 3"));
}

static void test_errors(void **state)
{
    (void)state;
    load_fails("syntax.aurora", "x = 1\nthis is not: python\n", BO_EINVAL,
               "syntax.aurora:2: syntax error: invalid syntax");
    load_fails("unbound.aurora",
               "task = Task(resources=Resources(cpu=1, ram=MB, disk=MB),\n"
               "  processes=[Process(name='p',\n"
               "             cmdline='echo {{nope.x}}')])\n"
               "jobs = [Job(cluster='c', role='r', environment='e', task=task)]\n",
               BO_EINVAL,
               "unbound.aurora:2: job 'p': task.processes[0].cmdline: unbound reference "
               "'{{nope.x}}'");
    load_fails("required.aurora",
               "task = Task(processes=[Process(name='p', cmdline='x')],\n"
               "  resources=Resources(cpu=1,\n"
               "                      disk=MB))\n"
               "jobs = [Job(name='hello', cluster='c', role='r', environment='e', task=task)]\n",
               BO_EINVAL,
               "required.aurora:2: job 'hello': task.resources.ram: required field not set");
    load_fails("notask.aurora",
               "jobs = [Job(name='hello', cluster='c', role='r', environment='e')]\n", BO_EINVAL,
               "notask.aurora:1: job 'hello': task: required field not set");
    load_fails("type.aurora", "p = Process(name='p', cmdline='x',\n  max_failures='lots')\n",
               BO_EINVAL, "type.aurora:1: Process.max_failures: expected an integer, got 'lots'");
    load_fails("field.aurora", "p = Process(name='p', cmd='x')\n", BO_EINVAL,
               "field.aurora:1: Process: unknown field 'cmd'");
    load_fails("ram.aurora",
               "task = Task(processes=[Process(name='p', cmdline='x')],\n"
               "  resources=Resources(cpu=1, ram=0, disk=MB))\n"
               "jobs = [Job(name='hello', cluster='c', role='r', environment='e', task=task)]\n",
               BO_EINVAL,
               "ram.aurora:2: job 'hello': task.resources.ram: must be at least 1 MB, got 0 bytes");
    load_fails("exc.aurora", "def f(x):\n    return 1 / x\n\nv = f(0)\n", BO_EINVAL,
               "exc.aurora:2: ZeroDivisionError: division by zero");
    load_fails("inc.aurora", "x = 1\ninclude('missing.aurora')\n", BO_EINVAL,
               "inc.aurora:2: include 'missing.aurora': No such file or directory");
    write_file("broken.aurora", "y = 2\nz = undefined_name\n");
    load_fails("incbad.aurora", "include('broken.aurora')\n", BO_EINVAL,
               "broken.aurora:2: NameError: name 'undefined_name' is not defined");
    load_fails("nojobs.aurora", "x = 1\ny = 2\n", BO_EINVAL,
               "nojobs.aurora:2: 'jobs' is not defined: the file must set jobs = [Job(...), ...]");
    load_fails("notjob.aurora", HELLO_TASK "jobs = [task]\n", BO_EINVAL,
               "notjob.aurora:1: jobs[0]: expected a Job, got Task(...)");
    load_fails("cron.aurora",
               HELLO_TASK "jobs = [Service(cluster='c', role='r', environment='e', task=task,\n"
                          "  cron_schedule='* * * * *')]\n",
               BO_EINVAL, "cron.aurora:3: job 'hello': service: a cron job cannot be a service");
    load_fails("update.aurora",
               HELLO_TASK "jobs = [Service(cluster='c', role='r', environment='e', task=task,\n"
                          "  instances=2, update_config=UpdateConfig(max_total_failures=2))]\n",
               BO_EINVAL,
               "update.aurora:4: job 'hello': update_config.max_total_failures: must be less than "
               "the number of instances (2): use at most 1");
    load_fails("health.aurora",
               HELLO_TASK "jobs = [Service(cluster='c', role='r', environment='e', task=task,\n"
                          "  health_check_config=HealthCheckConfig(interval_secs=-1))]\n",
               BO_EINVAL,
               "health.aurora:4: job 'hello': health_check_config.interval_secs: must not be "
               "negative, got -1.0");
    load_fails("cycle.aurora",
               HELLO_TASK "jobs = [Service(cluster='c', role='r', environment='e', task=task,\n"
                          "  name='{{a}}').bind(a='{{b}}', b='{{a}}')]\n",
               BO_EINVAL, "cycle.aurora:4: job '{{a}}': name: reference cycle through '{{a}}'");
    load_fails("exit.aurora", "import sys\nsys.exit(4)\n", BO_EINVAL,
               "exit.aurora:2: the file called exit(4)");

    json_t *jobs = NULL;
    struct bo_err err = BO_ERR_INIT;
    char path[128];
    snprintf(path, sizeof(path), "%s/nope.aurora", g_dir);
    assert_int_equal(bo_config_load(path, NULL, &jobs, &err), BO_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nope.aurora': No such file or directory"));
}

/* The interpreter stops and starts again. */
static void test_restart(void **state)
{
    (void)state;
    bo_config_shutdown();
    bo_config_shutdown();
    json_t *jobs = load("again.aurora", HELLO_TASK "jobs = [Service(cluster='devcluster', "
                                                   "role='www', environment='prod', task=task)]\n");
    assert_int_equal(json_array_size(jobs), 1);
    json_decref(jobs);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/bo-config-XXXXXX");
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    bo_config_shutdown();
    while (g_n_files > 0) {
        unlink(g_files[--g_n_files]);
    }
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/sub", g_dir);
    rmdir(sub);
    return rmdir(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_service), cmocka_unit_test(test_full_featured),
        cmocka_unit_test(test_templating),      cmocka_unit_test(test_struct_api),
        cmocka_unit_test(test_runtime_refs),    cmocka_unit_test(test_read_json),
        cmocka_unit_test(test_errors),          cmocka_unit_test(test_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
