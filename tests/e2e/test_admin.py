#!/usr/bin/env python3
"""borealis-admin end to end: the real CLI against a real scheduler (and a
real agent for host maintenance), through a clusters.json written into the
test's directory and named by $BOREALIS_CLUSTERS. Checks what an operator
sees: output lines, exit codes, and the state read back through the API."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import agentlib  # noqa: E402
from agentlib import RealAgent, proc  # noqa: E402
from harness import BUILD, TestFailure, binary, check, free_port, main  # noqa: E402
from schedlib import Agent, Scheduler, job, replicas, wait_for  # noqa: E402

FAST = ["--agent-timeout", "3s", "--agent-poll-hold", "500ms", "--initial-flapping-delay", "1s",
        "--max-flapping-delay", "2s", "--flapping-threshold", "1s", "--kill-retry", "2s"]
TERMINAL = ("FINISHED", "FAILED", "KILLED", "LOST")


def admin_binary():
    p = os.path.join(BUILD, "src", "client", "borealis-admin")
    return p if os.path.exists(p) else binary("borealis-admin")


ADMIN = admin_binary()


class Admin:
    """Runs borealis-admin with its own clusters.json and an empty HOME."""

    def __init__(self, c, clusters):
        self.c = c
        self.path = c.path("clusters.json")
        self.write(clusters)
        self.env = dict(os.environ)
        self.env["BOREALIS_CLUSTERS"] = self.path
        self.env["HOME"] = c.mkdir("home")

    def write(self, clusters):
        with open(self.path, "w") as f:
            f.write(clusters if isinstance(clusters, str) else json.dumps(clusters))

    def run(self, *args, expect=0, timeout=120):
        try:
            r = subprocess.run([ADMIN] + [str(a) for a in args], env=self.env,
                               capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"borealis-admin {' '.join(map(str, args))}: timed out")
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if expect is not None and r.returncode != expect:
            raise TestFailure(f"borealis-admin {' '.join(map(str, args))}: exit {r.returncode}, "
                              f"expected {expect}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}")
        bad = ("Sanitizer", "runtime error:")
        check(not any(b in err for b in bad), f"borealis-admin stderr: {err[-3000:]}")
        return out, err


def dev(url):
    return [{"name": "devcluster", "scheduler_uri": url}]


def host_mode(a, host):
    """Aurora's e2e check: the 6th field of the last line of host_status."""
    out, _ = a.run("host_status", f"--hosts={host}", "devcluster")
    return out.strip().splitlines()[-1].split()[5]


# ------------------------------------------------------------------ tests ----

def test_quota_set_and_increase(c):
    s = Scheduler(c, args=FAST).start()
    a = Admin(c, dev(s.url))
    out, _ = a.run("set_quota", "devcluster", "www", "2.5", "2g", "4096m")
    check("cpu 2.5, ram 2048 MB, disk 4096 MB" in out, f"set_quota output: {out}")
    q = s.ok("GET", "/api/v1/quotas/www")["quota"]
    check(q == {"cpu": 2.5, "ram_mb": 2048, "disk_mb": 4096}, f"quota after set: {q}")
    out, _ = a.run("increase_quota", "devcluster", "www", "0.5", "1024m", "1t")
    q = s.ok("GET", "/api/v1/quotas/www")["quota"]
    check(q == {"cpu": 3.0, "ram_mb": 3072, "disk_mb": 4096 + 1024 * 1024},
          f"quota after increase: {q}")
    check("increased quota of role 'www': cpu 3" in out, f"increase_quota output: {out}")
    # Aurora's teardown shape: zero quota with sizes in m
    a.run("set_quota", "devcluster", "www", "0", "0m", "0m")
    check(s.ok("GET", "/api/v1/quotas/www")["quota"] == {"cpu": 0, "ram_mb": 0, "disk_mb": 0},
          "quota zeroed")
    # bad values are exit 6, a bad shape exit 5
    a.run("set_quota", "devcluster", "www", "lots", "1g", "1g", expect=6)
    a.run("set_quota", "devcluster", "www", "1", "1x", "1g", expect=6)
    a.run("set_quota", "devcluster", "bad/role", "1", "1g", "1g", expect=6)
    a.run("set_quota", "devcluster", "www", "1", expect=5)
    s.stop()


def test_host_maintenance_with_real_agent(c):
    s = Scheduler(c, args=FAST).start()
    ag = RealAgent(c, s.url, name="agent1").start()
    a = Admin(c, dev(s.url))
    s.ok("POST", "/api/v1/jobs",
         agentlib.job("svc", [proc("sleep", "sleep 1000")], service=True))
    wait_for("svc running", lambda: s.count("www", "prod", "svc", "RUNNING") == 1, 30)
    first = s.tasks(job_name="svc")[0]["assigned_task"]["task_id"]

    check(host_mode(a, "agent1") == "NONE", "agent1 starts in NONE")
    out, _ = a.run("host_deactivate", "--hosts=agent1", "devcluster")
    check("agent1 is in state: SCHEDULED" in out, f"host_deactivate: {out}")
    check(host_mode(a, "agent1") == "SCHEDULED", "SCHEDULED after host_deactivate")

    # drain from a hosts file, with a post-drain script that records the host
    hosts = c.path("hosts.txt")
    with open(hosts, "w") as f:
        f.write("agent1\n\n")
    marker = c.path("drained.txt")
    script = c.path("post_drain.sh")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\necho \"$1\" >> {marker}\n")
    os.chmod(script, 0o755)
    out, _ = a.run("host_drain", f"--filename={hosts}", f"--post_drain_script={script}",
                   "--drain_timeout=60s", "devcluster", timeout=90)
    check(out.strip().splitlines()[-1].split()[5] == "DRAINED", f"host_drain: {out}")
    with open(marker) as f:
        check(f.read() == "agent1\n", "the post-drain script ran once with the host")
    check(host_mode(a, "agent1") == "DRAINED", "DRAINED after host_drain")
    # the task moved off the host: the old one is over, its replacement waits
    ts = {t["assigned_task"]["task_id"]: t for t in s.tasks(job_name="svc")}
    check(ts[first]["status"] in TERMINAL, f"the drained task ended: {ts[first]['status']}")
    pending = [t for t in ts.values() if t["status"] == "PENDING"]
    check(len(pending) == 1, f"a replacement waits for a host: {list(ts.values())}")

    out, _ = a.run("host_activate", "--hosts=agent1", "devcluster")
    check("agent1 is in state: NONE" in out, f"host_activate: {out}")
    check(host_mode(a, "agent1") == "NONE", "NONE after host_activate")
    seen = []

    def running_again():
        ts = s.tasks(job_name="svc")
        seen[:] = [(t["status"], t["assigned_task"]["slave_host"], agentlib.latest_message(t))
                   for t in ts] + [s.ok("GET", "/api/v1/pending?role=www")]
        return sum(t["status"] == "RUNNING" for t in ts) == 1
    try:
        wait_for("svc running again", running_again, 60)
    except TestFailure as e:
        raise TestFailure(f"{e}: {seen}; agent: {ag.proc.stderr()[-2000:]}")

    # usage: hosts are required, and from one source only
    a.run("host_status", "devcluster", expect=6)
    a.run("host_status", "--hosts=a", f"--filename={hosts}", "devcluster", expect=6)
    a.run("host_drain", "--hosts=a", "--override_percentage=50", "devcluster", expect=6)
    a.run("host_drain", "--hosts=a", "--grouping=by_rack", "devcluster", expect=6)

    s.ok("POST", "/api/v1/jobs/www/prod/svc/kill", {})
    wait_for("svc killed", lambda: all(t["status"] in TERMINAL for t in s.tasks(job_name="svc")),
             30)
    ag.stop_clean()
    s.stop()


def test_backup_recovery_snapshot_reconcile_prune(c):
    s = Scheduler(c, args=FAST + ["--backup-dir", c.mkdir("backups")]).start()
    ag = Agent(s, "host-a").start()
    a = Admin(c, dev(s.url))
    s.ok("POST", "/api/v1/jobs", job(name="keep", instances=2))
    s.wait_statuses("www", "prod", "keep", {0: "RUNNING", 1: "RUNNING"})

    out, _ = a.run("scheduler_snapshot", "devcluster")
    check(out.strip() == "snapshot taken", f"snapshot: {out}")
    out, _ = a.run("scheduler_backup_now", "devcluster")
    name = out.strip()
    check(name.startswith("scheduler-backup-"), f"backup name: {out}")
    out, _ = a.run("scheduler_list_backups", "devcluster")
    lines = out.strip().splitlines()
    check(lines[0] == f"{len(lines) - 1} available backups:" and name in lines[1:],
          f"list backups: {out}")

    out, _ = a.run("scheduler_stage_recovery", "devcluster", name)
    check(out.strip() == f"staged {name}", f"stage: {out}")
    out, _ = a.run("scheduler_print_recovery_tasks", "devcluster")
    lines = out.strip().splitlines()
    check(len(lines) == 2 and all(l.startswith("role: www, env: prod, name: keep, shard: ")
                                  and "status: RUNNING on host-a" in l for l in lines),
          f"recovery tasks: {out}")
    victim = lines[0].split("task: ")[1]
    out, _ = a.run("scheduler_delete_recovery_tasks", "devcluster", victim)
    check("deleted 1 tasks" in out, f"delete: {out}")
    out, _ = a.run("scheduler_print_recovery_tasks", "devcluster")
    check(len(out.strip().splitlines()) == 1 and victim not in out, f"after delete: {out}")
    a.run("scheduler_unload_recovery", "devcluster")
    check(len(s.tasks(job_name="keep")) == 2, "the live state is untouched")
    # nothing staged now, and no such backup: the scheduler refuses (API error)
    _, err = a.run("scheduler_unload_recovery", "devcluster", expect=10)
    check("404" in err, f"unload with nothing staged: {err}")
    a.run("scheduler_print_recovery_tasks", "devcluster", expect=10)
    a.run("scheduler_stage_recovery", "devcluster", "no-such-backup", expect=10)

    before = ag.registrations
    out, _ = a.run("reconcile_tasks", "devcluster")
    wait_for("the agent registered again", lambda: ag.registrations > before, 10)
    a.run("reconcile_tasks", "--type=implicit", "devcluster", expect=6)
    before = ag.registrations
    a.run("reconcile_tasks", "-t", "explicit", "-b", "10", "devcluster")
    wait_for("the agent registered again", lambda: ag.registrations > before, 10)

    s.ok("POST", "/api/v1/jobs/www/prod/keep/kill", {})
    wait_for("keep killed", lambda: all(t["status"] in TERMINAL
                                        for t in s.tasks(job_name="keep")), 20)
    a.run("prune_tasks", "--states=RUNNING", "devcluster", expect=6)
    out, _ = a.run("prune_tasks", "--states=KILLED,LOST,FINISHED", "--role=www", "--job=keep",
                   "devcluster")
    check(out.strip() == "pruned 2 tasks", f"prune: {out}")
    check(s.tasks(job_name="keep") == [], "pruned from the store")
    ag.stop()
    s.stop()


def test_query_and_cluster_commands(c):
    s = Scheduler(c, args=FAST).start()
    ag = Agent(s, "host-a").start()
    a = Admin(c, dev(s.url))
    s.ok("POST", "/api/v1/jobs", job(name="hello", instances=2))
    s.wait_statuses("www", "prod", "hello", {0: "RUNNING", 1: "RUNNING"})
    ids = {t["assigned_task"]["instance_id"]: t["assigned_task"]["task_id"]
           for t in s.tasks(job_name="hello")}

    # Aurora's e2e: the task id of instance 0 via -l '%taskId%'
    out, _ = a.run("query", "-l", "%taskId%", "--shards=0", "--states=RUNNING", "devcluster",
                   "www", "hello")
    check(out == ids[0] + "\n", f"query -l %taskId%: {out!r}")
    out, _ = a.run("query", "devcluster", "www", "hello")
    check(out == "www/hello/0 RUNNING\nwww/hello/1 RUNNING\n", f"default format: {out!r}")
    out, _ = a.run("query", "--listformat=%host% %slave_host% %environment% %instanceId% "
                   "%failureCount% 100%", "--shards=1", "devcluster", "www", "hello")
    check(out == "host-a host-a prod 1 0 100%\n", f"fields: {out!r}")
    out, _ = a.run("query", "-l", "%jobKey% %numCpus% %ram_mb% %diskMb% %isService% %nope%",
                   "--shards=0", "devcluster", "www", "hello")
    check(out == "www/prod/hello 0.5 64 64 true \n", f"config fields: {out!r}")
    # the guards against expensive queries, and bad states
    a.run("query", "devcluster", "www", expect=6)
    a.run("query", "devcluster", expect=6)
    a.run("query", "--states=FINISHED", "devcluster", "www", "hello", expect=6)
    a.run("query", "--states=BOGUS", "devcluster", "www", "hello", expect=6)
    a.run("query", "--shards=x", "devcluster", "www", "hello", expect=6)
    out, _ = a.run("query", "--force", "devcluster", "www")
    check(len(out.splitlines()) == 2, f"query --force by role: {out}")
    out, _ = a.run("query", "--force", "--states=FINISHED,KILLED", "devcluster", "www", "hello")
    check(out == "", f"no terminal tasks yet: {out!r}")

    out, _ = a.run("get_scheduler", "devcluster")
    check(out.strip() == s.url, f"get_scheduler: {out}")
    out, _ = a.run("get_cluster_config", "devcluster")
    check(json.loads(out) == dev(s.url)[0], f"get_cluster_config: {out}")
    out, _ = a.run("get_cluster_config", "--sh", "--export", "devcluster")
    check(out == f"export NAME='devcluster'\nexport SCHEDULER_URI='{s.url}'\n",
          f"get_cluster_config --sh --export: {out!r}")
    ag.stop()
    s.stop()


def test_follower_redirect_and_url_rotation(c):
    ss, leader = replicas(c, FAST)
    follower = next(s for s in ss if s is not leader)
    wait_for("follower knows the leader", lambda: follower.get("/leaderhealth")[0] == 503, 10)
    dead = f"http://127.0.0.1:{free_port()}"
    a = Admin(c, [{"name": "devcluster", "scheduler_urls": [dead, follower.url]}])
    # a write through the follower: the first URL refuses, the follower
    # redirects to the leader, and the write lands
    a.run("set_quota", "devcluster", "www", "1", "1g", "1g")
    check(leader.ok("GET", "/api/v1/quotas/www")["quota"]["ram_mb"] == 1024, "quota on leader")
    out, _ = a.run("get_scheduler", "devcluster")
    check(out.strip() == leader.url, f"get_scheduler through a follower: {out}")
    out, _ = a.run("host_deactivate", "--hosts=node-9", "devcluster")
    check("node-9 is in state: SCHEDULED" in out, f"host_deactivate via follower: {out}")
    for s in ss:
        s.stop()


def test_network_errors_and_usage(c):
    a = Admin(c, dev(f"http://127.0.0.1:{free_port()}"))
    # nothing listens: network error 7
    for args in (["host_status", "--hosts=a", "devcluster"], ["get_scheduler", "devcluster"],
                 ["scheduler_list_backups", "devcluster"],
                 ["set_quota", "devcluster", "www", "1", "1g", "1g"]):
        _, err = a.run(*args, expect=7)
        check("cannot reach a scheduler of cluster 'devcluster'" in err, f"{args}: {err}")
    # a scheduler that went away
    s = Scheduler(c, args=FAST).start()
    a.write(dev(s.url))
    a.run("host_status", "--hosts=a", "devcluster")
    s.stop()
    a.run("host_status", "--hosts=a", "devcluster", expect=7)

    # bad usage: 5 for the shape of the command line, 6 for values
    a.run(expect=5)
    a.run("no_such_command", expect=5)
    a.run("query", "--no-such-option", "devcluster", "www", "j", expect=5)
    a.run("scheduler_snapshot", expect=5)
    a.run("scheduler_snapshot", "devcluster", "extra", expect=5)
    a.run("host_status", "--shards=1", "--hosts=a", "devcluster", expect=5)
    a.run("host_status", "--hosts=a", "unknown-cluster", expect=6)
    a.run("help", "no_such_command", expect=5)
    out, _ = a.run("help")
    check("host_status" in out and "set_quota" in out, f"help: {out}")
    names = [l.split()[0] for l in out.splitlines()
             if l.startswith("  ") and l[2:3].isalpha()]
    check(len(names) >= 20, f"commands listed: {names}")
    for n in names:
        out, _ = a.run(n, "--help")
        check(out.startswith(f"usage: {n}"), f"{n} --help: {out}")
    # a clusters.json that does not parse: invalid configuration, 3
    a.write("[{\"name\": ")
    _, err = a.run("get_scheduler", "devcluster", expect=3)
    check(a.path in err, f"names the file: {err}")


if __name__ == "__main__":
    main()
