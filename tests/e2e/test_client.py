#!/usr/bin/env python3
"""borealis, the user CLI, end to end: a real scheduler, a real agent and
real executors on loopback, driven only through `borealis` (the quota is set
through the API). Follows Aurora's end-to-end test where it applies
(test_end_to_end.sh): config list, inspect, create --wait-until RUNNING,
status (text and --write-json), list, restart, kill K/1, killall, cron,
quota, the ephemeral daemon with a final process, and the exit codes for a
config error (3) and a scheduler that is down (7)."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from agentlib import RealAgent  # noqa: E402
from harness import BUILD, SOURCE, TestFailure, check, free_port, main  # noqa: E402
from schedlib import Scheduler, wait_for  # noqa: E402

FAST = ["--cluster", "devcluster", "--agent-timeout", "3s", "--agent-poll-hold", "500ms",
        "--initial-flapping-delay", "1s", "--max-flapping-delay", "2s",
        "--flapping-threshold", "1s", "--kill-retry", "2s"]
EXAMPLES = os.path.join(SOURCE, "examples")
TERMINAL = ("FINISHED", "FAILED", "KILLED", "LOST")


def borealis_binary():
    for cand in (os.path.join(BUILD, "src", "client", "borealis"), os.path.join(BUILD, "borealis")):
        if os.path.exists(cand):
            return cand
    raise TestFailure(f"binary 'borealis' not found under {BUILD}")


BOREALIS = borealis_binary()


class Cli:
    """Runs borealis with a clusters.json of the test's own."""

    def __init__(self, c, clusters):
        self.c = c
        path = c.path("clusters.json")
        with open(path, "w") as f:
            json.dump([{"name": n, "scheduler_uri": u} for n, u in clusters.items()], f)
        self.env = dict(os.environ, BOREALIS_CLUSTERS=path, HOME=c.root)

    def run(self, *args, expect=0, timeout=180):
        argv = [BOREALIS] + [str(a) for a in args]
        try:
            r = subprocess.run(argv, capture_output=True, timeout=timeout, env=self.env,
                               stdin=subprocess.DEVNULL, cwd=self.c.root)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"{' '.join(argv)}: still running after {timeout}s")
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if expect is not None and r.returncode != expect:
            raise TestFailure(f"{' '.join(argv[1:])}: exit {r.returncode}, expected {expect}\n"
                              f"stdout: {out[-3000:]}\nstderr: {err[-3000:]}")
        bad = ("Sanitizer", "runtime error:")
        check(not any(b in err for b in bad), f"{' '.join(argv[1:])}: stderr: {err[-3000:]}")
        return r.returncode, out, err

    def status(self, key):
        _, out, _ = self.run("job", "status", key, "--write-json")
        return json.loads(out)

    def active(self, key):
        """{instance: status} of the job's active tasks."""
        return {t["assigned_task"]["instance_id"]: t["status"]
                for t in self.status(key)[0]["active"]}


def cluster(c, agent=True):
    s = Scheduler(c, args=FAST).start()
    if agent:
        RealAgent(c, s.url, cpus=4, ram=4096, disk=20000).start()
    return s, Cli(c, {"devcluster": s.url})


def example(name):
    return os.path.join(EXAMPLES, name)


def write(c, name, text):
    path = c.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


# ------------------------------------------------------------------ tests ----

def test_offline_commands_and_exit_codes(c):
    """What needs no scheduler, and the exit codes for bad input."""
    dead = f"http://127.0.0.1:{free_port()}"
    cli = Cli(c, {"devcluster": dead, "deadcluster": dead})
    _, out, _ = cli.run("--version")
    check(re.fullmatch(r"\d+\.\d+\.\d+\n", out), f"--version: {out!r}")
    for args in (["--help"], ["job", "--help"], ["job", "restart", "--help"],
                 ["help", "cron", "show"]):
        _, out, _ = cli.run(*args)
        check("usage: borealis" in out, f"{args}: {out}")
    _, out, _ = cli.run("job", "restart", "--help")
    check("--watch-secs" in out and "--batch-size" in out, out)

    # config list and inspect, from the examples
    _, out, _ = cli.run("config", "list", example("http_service.aurora"))
    check(out.strip() == "jobs=[devcluster/www/prod/http_service]", f"config list: {out!r}")
    for name, key in (("hello_world.aurora", "devcluster/www/devel/hello_world"),
                      ("cron.aurora", "devcluster/www/prod/cron_hello"),
                      ("adhoc.aurora", "devcluster/www/devel/adhoc")):
        _, out, _ = cli.run("config", "list", example(name))
        check(out.strip() == f"jobs=[{key}]", f"config list {name}: {out!r}")
    _, out, _ = cli.run("config", "list", example("ephemeral.aurora"),
                        "--bind", "stop_file=/tmp/x")
    check("devcluster/www/devel/ephemeral" in out, out)
    _, out, _ = cli.run("job", "inspect", "devcluster/www/prod/http_service",
                        example("http_service.aurora"))
    check("Process 'server'" in out and "thermos.ports[http]" in out, f"inspect: {out}")
    _, out, _ = cli.run("job", "inspect", "devcluster/www/prod/http_service",
                        example("http_service.aurora"), "--raw")
    raw = json.loads(out)
    check(raw["instance_count"] == 2 and raw["task_config"]["is_service"], f"--raw: {raw}")
    ports = {r.get("named_port") for r in raw["task_config"]["resources"]}
    check({"http", "health"} <= ports, f"named ports: {ports}")
    _, out, _ = cli.run("job", "inspect", "devcluster/www/prod/http_service",
                        example("http_service.aurora"), "--write-json")
    check(json.loads(out), "inspect --write-json is JSON")

    # a config error: exit 3, with the file and the line
    bad = write(c, "broken.aurora", "p = Process(name = 'p', cmdline = 'true')\n"
                "\n"
                "jobs = [Job(cluster = 'devcluster', role = 'www', environment = 'prod',\n"
                "            name = 'broken', task = Task(processes = [p]))]\n")
    _, _, err = cli.run("config", "list", bad, expect=3)
    check(re.search(r"broken\.aurora:\d+", err), f"config error names file and line: {err!r}")
    _, _, err = cli.run("job", "create", "devcluster/www/prod/broken", bad, expect=3)
    check("broken.aurora" in err, err)
    # a job the config does not define
    cli.run("job", "inspect", "devcluster/www/prod/nope", example("hello_world.aurora"),
            expect=3)
    # a cron config given to job create is refused before any call
    _, _, err = cli.run("job", "create", "devcluster/www/prod/cron_hello",
                        example("cron.aurora"), expect=4)
    check("cron schedule" in err, f"hint to use cron schedule: {err!r}")

    # bad command lines: 5; bad parameters: 6
    cli.run("job", expect=5)
    cli.run("frobnicate", "x", expect=5)
    cli.run("job", "frobnicate", "x", expect=5)
    cli.run("job", "status", expect=5)
    cli.run("job", "status", "devcluster/www", "--no-such-option", expect=5)
    cli.run("job", "kill", "devcluster/www/prod/hello", expect=6)  # instances are mandatory
    cli.run("job", "status", "devcluster/bad role", expect=6)
    cli.run("job", "status", "nosuchcluster/www", expect=6)
    cli.run("job", "create", "devcluster/www/prod/x", example("hello_world.aurora"),
            "--wait-until", "SOON", expect=6)
    cli.run("job", "restart", "devcluster/www/prod/x", "--batch-size", "0", expect=6)

    # the scheduler is down: 7
    _, _, err = cli.run("job", "status", "deadcluster/www/prod/hello", expect=7)
    check(err.strip(), "a message for the network error")
    cli.run("job", "killall", "devcluster/www/prod/hello", expect=7)
    _, out, _ = cli.run("job", "open", "devcluster/www/prod/hello")
    check(out.strip() == f"{dead}/scheduler/www/prod/hello", f"open: {out!r}")


def test_service_create_status_restart_kill(c):
    s, cli = cluster(c)
    key = "devcluster/www/prod/http_service"
    cfg = example("http_service.aurora")
    _, out, _ = cli.run("job", "create", key, cfg, "--wait-until", "RUNNING")
    check(out.strip() == f"Job create succeeded: job url={s.url}/scheduler/www/prod/http_service",
          f"create output (no progress lines in a pipe): {out!r}")
    check(cli.active(key) == {0: "RUNNING", 1: "RUNNING"}, f"after create: {cli.active(key)}")
    # a second create is an API error
    _, _, err = cli.run("job", "create", key, cfg, expect=10)
    check("already exists" in err, err)

    # status: JSON in Aurora's shape, and text
    st = cli.status(key)
    check(len(st) == 1 and st[0]["job"] == key, f"status json: {st}")
    check([t["status"] for t in st[0]["active"]] == ["RUNNING", "RUNNING"], st)
    check(st[0]["inactive"] == [], st)
    first = {t["assigned_task"]["instance_id"]: t["assigned_task"]["task_id"]
             for t in st[0]["active"]}
    port = st[0]["active"][0]["assigned_task"]["assigned_ports"]["health"]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
    check(body == b"ok", f"the health endpoint: {body!r}")
    _, out, _ = cli.run("job", "status", key)
    check("Active tasks (2):" in out and "status: RUNNING" in out and
          "Inactive tasks (0):" in out, f"status text: {out}")
    _, out, _ = cli.run("job", "status", "devcluster/www/*/http_*", "--write-json")
    check([e["job"] for e in json.loads(out)] == [key], f"status with globs: {out}")

    # list, by cluster, role and environment
    for pattern in ("devcluster", "devcluster/www", "devcluster/www/prod"):
        _, out, _ = cli.run("job", "list", pattern)
        check(key in out.split(), f"list {pattern}: {out!r}")
    _, out, _ = cli.run("job", "list", "devcluster/www/devel")
    check(out.strip() == "", f"list of another environment: {out!r}")

    # diff: nothing against itself; the instance count when it changes
    _, out, _ = cli.run("job", "diff", key, cfg)
    check(out == "", f"diff of the running config: {out!r}")
    changed = write(c, "http_service_v2.aurora",
                    open(cfg).read().replace("instances = 2", "instances = 3"))
    _, out, _ = cli.run("job", "diff", key, changed)
    check(re.search(r'^-.*"last": 1', out, re.M) and re.search(r'^\+.*"last": 2', out, re.M),
          f"diff shows the instance change: {out!r}")

    # rolling restart: every instance gets a new task that stays RUNNING
    start = time.monotonic()
    _, out, _ = cli.run("job", "restart", key, "--batch-size", "1", "--watch-secs", "2")
    check("restart succeeded" in out, out)
    check(time.monotonic() - start >= 4, "two batches, each watched 2 s")
    st = cli.status(key)
    now = {t["assigned_task"]["instance_id"]: t["assigned_task"]["task_id"]
           for t in st[0]["active"]}
    check(sorted(now) == [0, 1] and all(now[i] != first[i] for i in now),
          f"new tasks after restart: {first} -> {now}")
    check(all(t["status"] == "RUNNING" for t in st[0]["active"]), st)
    check(len(st[0]["inactive"]) == 2, f"the restarted tasks are inactive: {st}")

    # kill one instance, then add one back, then kill them all
    _, out, _ = cli.run("job", "kill", f"{key}/1", "--message", "bye")
    check("kill succeeded" in out, out)
    check(cli.active(key) == {0: "RUNNING"}, f"after kill K/1: {cli.active(key)}")
    killed = [t for t in cli.status(key)[0]["inactive"]
              if t["assigned_task"]["instance_id"] == 1 and t["status"] == "KILLED"]
    check(any("bye" in e["message"] for t in killed for e in t["task_events"]),
          f"the kill message: {[t['task_events'] for t in killed]}")
    # every task, active or not, comes with its config (the CLI attaches the
    # active ones' from the job's config groups)
    st = cli.status(key)[0]
    for t in st["active"] + st["inactive"]:
        tc = t["assigned_task"].get("task") or {}
        check(tc.get("job", {}).get("name") == "http_service" and tc.get("resources"),
              f"task {t['assigned_task']['task_id']} has its config: {tc}")
    cli.run("job", "add", f"{key}/0", "1", "--wait-until", "RUNNING")
    check(cli.active(key) == {0: "RUNNING", 1: "RUNNING"}, f"after add: {cli.active(key)}")
    _, out, _ = cli.run("job", "killall", key)
    check("succeeded" in out, out)
    check(cli.active(key) == {}, f"after killall: {cli.active(key)}")
    _, out, _ = cli.run("job", "list", "devcluster/www")
    check(key not in out, f"a killed job is not listed: {out!r}")


def test_restart_fails_beyond_the_failure_limits(c):
    s, cli = cluster(c)
    key = "devcluster/www/prod/flaky"
    # RUNNING at once (no health check), and dead after 2 s
    cfg = write(c, "flaky.aurora", """
jobs = [Service(cluster = 'devcluster', role = 'www', environment = 'prod', name = 'flaky',
                task = Task(processes = [Process(name = 'p', cmdline = 'sleep 2; exit 1')],
                            resources = Resources(cpu = 0.1, ram = 16 * MB, disk = 16 * MB)))]
""")
    cli.run("job", "create", key, cfg, "--wait-until", "RUNNING")
    _, out, err = cli.run("job", "restart", key, "--watch-secs", "5", expect=4)
    check("failed" in err, f"restart failure message: {err!r}")
    cli.run("job", "killall", key, "--no-batching")
    check(cli.active(key) == {}, "killed")


def test_adhoc_and_ephemeral_daemon_with_final(c):
    s, cli = cluster(c)
    key = "devcluster/www/devel/adhoc"
    cli.run("job", "create", key, example("adhoc.aurora"), "--wait-until", "FINISHED")
    st = cli.status(key)[0]
    check(st["active"] == [] and sorted(t["status"] for t in st["inactive"]) ==
          ["FINISHED", "FINISHED"], f"ad-hoc job finished: {st}")

    # Aurora's test_ephemeral_daemon_with_final: the task finishes without
    # waiting for its ephemeral daemon, and the final process runs.
    key = "devcluster/www/devel/ephemeral"
    stop = c.path("stop_file")
    cli.run("job", "create", key, example("ephemeral.aurora"), "--bind", f"stop_file={stop}",
            "--wait-until", "RUNNING")
    check(cli.active(key) == {0: "RUNNING"}, f"running: {cli.active(key)}")
    open(stop, "w").close()
    wait_for("the final process to remove the stop file", lambda: not os.path.exists(stop), 10)
    wait_for("the task FINISHED",
             lambda: [t["status"] for t in cli.status(key)[0]["inactive"]] == ["FINISHED"], 20)


def test_cron_schedule_start_show_deschedule(c):
    s, cli = cluster(c)
    key = "devcluster/www/prod/cron_hello"
    cfg = example("cron.aurora")
    _, out, _ = cli.run("cron", "schedule", key, cfg)
    check("scheduled" in out, out)
    _, out, _ = cli.run("cron", "show", key)
    check(out == f"{key}\t*/5 * * * *\n", f"cron show: {out!r}")
    _, out, _ = cli.run("job", "list", "devcluster/www/prod")
    check(key in out.split(), f"a cron job is listed: {out!r}")
    _, out, _ = cli.run("cron", "start", key)
    check("started" in out, out)
    # (the clock may start a run of its own if a five-minute mark passes)
    runs = wait_for("the cron run to end", lambda: cli.status(key)[0]["inactive"], 60)
    check(all(t["status"] == "FINISHED" for t in runs), f"the cron run: {runs}")
    # scheduling again replaces the template
    _, out, _ = cli.run("cron", "schedule", key, cfg)
    check("replaced" in out, out)
    _, out, _ = cli.run("cron", "deschedule", key)
    check("succeeded" in out, out)
    cli.run("cron", "show", key, expect=6)
    cli.run("cron", "deschedule", key, expect=10)
    cli.run("cron", "start", key, expect=10)
    # a service config is not a cron job
    cli.run("cron", "schedule", "devcluster/www/devel/hello_world", example("hello_world.aurora"),
            expect=4)


def test_backup_and_offline_recovery_keep_the_job(c):
    # backup now, list backups, then offline recovery into a fresh data
    # directory: the job is still there after the scheduler starts on it
    from harness import binary, free_port
    backups = c.mkdir("backups")
    s = Scheduler(c, args=FAST + ["--backup-dir", backups]).start()
    RealAgent(c, s.url, cpus=4, ram=4096, disk=20000).start()
    cli = Cli(c, {"devcluster": s.url})
    key = "devcluster/www/devel/hello_world"
    cli.run("job", "create", key, example("hello_world.aurora"), "--wait-until", "RUNNING")
    admin = [binary("borealis-admin")]
    r = subprocess.run(admin + ["scheduler_backup_now", "devcluster"], env=cli.env,
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"backup now: {r.returncode} {r.stderr}")
    r = subprocess.run(admin + ["scheduler_list_backups", "devcluster"], env=cli.env,
                       capture_output=True, text=True, timeout=60)
    names = [line.strip() for line in r.stdout.splitlines() if line.strip()]
    check(r.returncode == 0 and names, f"list backups: {r.stdout} {r.stderr}")
    backup = os.path.join(backups, names[-1].split()[-1])
    check(os.path.exists(backup), f"the listed backup is a file: {backup} ({names})")
    s.stop()
    fresh = c.path("recovered")
    c.run([binary("borealis-log"), "recover", "--backup", backup, "--data-dir", fresh],
          expect=0)
    s2 = Scheduler(c, name="recovered-sched", data=fresh, args=FAST).start()
    cli2 = Cli(c, {"devcluster": s2.url})
    st = cli2.status(key)
    check(st and st[0]["active"] and
          st[0]["active"][0]["assigned_task"]["task"]["job"]["name"] == "hello_world",
          f"the job survived the recovery: {st}")
    s2.stop()


def test_quota(c):
    s, cli = cluster(c)
    s.ok("PUT", "/api/v1/quotas/www", {"cpu": 1.0, "ram_mb": 512, "disk_mb": 1024})

    def prod_job(name, cpu):
        return write(c, f"{name}.aurora", f"""
jobs = [Service(cluster = 'devcluster', role = 'www', environment = 'prod', name = '{name}',
                tier = 'preferred',
                task = Task(processes = [Process(name = 'p', cmdline = 'sleep 1000')],
                            resources = Resources(cpu = {cpu}, ram = 64 * MB, disk = 64 * MB)))]
""")
    cli.run("job", "create", "devcluster/www/prod/small", prod_job("small", 0.5),
            "--wait-until", "RUNNING")
    _, _, err = cli.run("job", "create", "devcluster/www/prod/big", prod_job("big", 2.0),
                        expect=10)
    check("quota" in err.lower(), f"the refusal names quota: {err!r}")
    _, out, _ = cli.run("quota", "get", "devcluster/www")
    check("Allocated:" in out and "CPU: 1" in out, f"quota get: {out}")
    _, out, _ = cli.run("quota", "get", "devcluster/www", "--write-json")
    q = json.loads(out)
    check(q["quota"]["cpu"] == 1.0 and q["quota"]["ram_mb"] == 512, f"quota: {q}")
    check(q["prod_shared_consumption"]["cpu"] == 0.5, f"consumption: {q}")
    cli.run("quota", "get", "devcluster", expect=6)
    cli.run("job", "killall", "devcluster/www/prod/small")

    # waits are bounded: a job no agent can hold (not quota-counted) times out
    huge = write(c, "huge.aurora", """
jobs = [Service(cluster = 'devcluster', role = 'www', environment = 'devel', name = 'huge',
                task = Task(processes = [Process(name = 'p', cmdline = 'sleep 1000')],
                            resources = Resources(cpu = 64, ram = 64 * MB, disk = 64 * MB)))]
""")
    start = time.monotonic()
    _, out, err = cli.run("job", "create", "devcluster/www/devel/huge", huge, "--wait-until",
                          "RUNNING", "--wait-timeout", "2s", expect=9)
    check(time.monotonic() - start < 30, "--wait-timeout bounds the wait")
    check("Job create succeeded" in out and err.strip(), f"{out!r} {err!r}")
    cli.run("job", "killall", "devcluster/www/devel/huge", "--no-batching")
    check(cli.active("devcluster/www/devel/huge") == {}, "the pending job is killed")


if __name__ == "__main__":
    main()
