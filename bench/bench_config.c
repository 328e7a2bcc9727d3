/*
 * bench-config - time of evaluating a generated .aurora file of J jobs.
 *
 *   bench-config [--jobs J] [--runs R] [--keep]
 *
 * Happy path. A file is written to a temporary directory: a shared
 * Profile struct, a health-checked web task template (three processes, one
 * of them a final, a sequential order, ports, runtime refs) and J jobs made
 * from it with job(...) copies and .bind(), each with its own name,
 * instances, constraints, metadata, announce and update config, in the
 * style of a real multi-cluster config. bo_config_load evaluates it R+1
 * times: the first run includes starting the interpreter and loading the
 * embedded schema (reported as first_ms), the other R are timed one by one
 * and reported as their median and maximum (median_ms, max_ms; J = 100 and
 * R = 11 by default). Output: one JSON object on stdout.
 *
 * Failure modes: a failed load prints the error on stderr and exits 1.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "config/config.h"

static const char HEAD[] =
    "import getpass\n"
    "class Profile(Struct):\n"
    "  package = Default(String, 'web')\n"
    "  version = Default(Integer, 7)\n"
    "  instances = Default(Integer, 2)\n"
    "install = Process(name='install',\n"
    "  cmdline='fetch {{profile.package}}-{{profile.version}}.tgz && tar xzf *.tgz')\n"
    "web = Process(name='web', max_failures=3,\n"
    "  cmdline='./{{profile.package}} --port={{thermos.ports[http]}} "
    "--admin={{thermos.ports[admin]}} --shard={{mesos.instance}} --env={{environment}}')\n"
    "flush = Process(name='flush', cmdline='./flush --job={{name}}', final=True)\n"
    "task = SequentialTask(name='{{profile.package}}', processes=[install, web, flush],\n"
    "  resources=Resources(cpu=0.5, ram=256*MB, disk=1*GB))\n"
    "base = Service(role='www', environment='prod', task=task,\n"
    "  instances='{{profile.instances}}',\n"
    "  health_check_config=HealthCheckConfig(initial_interval_secs=10, interval_secs=5),\n"
    "  announce=Announcer(portmap={'aurora': 'http', 'admin': 'http'}),\n"
    "  update_config=UpdateConfig(batch_size=2, watch_secs=30),\n"
    "  constraints={'host': 'limit:1'},\n"
    "  metadata=[Metadata(key='owner', value='{{role}}')])\n"
    "jobs = []\n";

static const char JOB[] = "jobs.append(base(cluster='cluster-%u', name='web-%05u',\n"
                          "  constraints={'host': 'limit:1', 'zone': 'z%u'})\n"
                          "  .bind(profile=Profile(version=%u, instances=%u)))\n";

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double load_once(const char *path, unsigned jobs)
{
    json_t *out = NULL;
    struct bo_err err = BO_ERR_INIT;
    double t0 = now_ms();
    int rv = bo_config_load(path, NULL, &out, &err);
    double t = now_ms() - t0;
    if (rv != BO_OK) {
        fprintf(stderr, "bench-config: %s\n", bo_err_msg(&err, rv));
        exit(1);
    }
    if (json_array_size(out) != jobs) {
        fprintf(stderr, "bench-config: %zu jobs, expected %u\n", json_array_size(out), jobs);
        exit(1);
    }
    json_decref(out);
    return t;
}

int main(int argc, char **argv)
{
    unsigned jobs = 100, runs = 11;
    int keep = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            jobs = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--keep") == 0) {
            keep = 1;
        } else {
            fprintf(stderr, "usage: bench-config [--jobs J] [--runs R] [--keep]\n");
            return 2;
        }
    }
    if (runs == 0 || runs > 1000 || jobs == 0) {
        fprintf(stderr, "bench-config: --runs must be 1..1000, --jobs > 0\n");
        return 2;
    }

    char dir[] = "/tmp/bench-config-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("bench-config: mkdtemp");
        return 1;
    }
    char path[64];
    snprintf(path, sizeof(path), "%s/jobs.aurora", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror("bench-config: open");
        return 1;
    }
    fputs(HEAD, f);
    for (unsigned j = 0; j < jobs; j++) {
        fprintf(f, JOB, j % 4, j, j % 3, 1 + j % 9, 1 + j % 5);
    }
    if (fclose(f) != 0) {
        perror("bench-config: write");
        return 1;
    }

    double first = load_once(path, jobs);
    double *t = calloc(runs, sizeof(*t));
    if (t == NULL) {
        return 1;
    }
    for (unsigned r = 0; r < runs; r++) {
        t[r] = load_once(path, jobs);
    }
    qsort(t, runs, sizeof(*t), cmp_double);
    printf("{\"jobs\": %u, \"runs\": %u, \"first_ms\": %.1f, \"median_ms\": %.1f, "
           "\"min_ms\": %.1f, \"max_ms\": %.1f}\n",
           jobs, runs, first, t[runs / 2], t[0], t[runs - 1]);
    free(t);
    bo_config_shutdown();
    if (!keep) {
        unlink(path);
        rmdir(dir);
    } else {
        fprintf(stderr, "bench-config: kept %s\n", path);
    }
    return 0;
}
