#!/usr/bin/env python3
"""borealis-scheduler end to end: the real daemon over real HTTP on loopback,
with scripted agents speaking the agent protocol (schedlib.Agent)."""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import check, main  # noqa: E402
from schedlib import Agent, Scheduler, http, job, replicas, wait_for  # noqa: E402

FAST = ["--agent-timeout", "2s", "--agent-poll-hold", "500ms", "--initial-flapping-delay",
        "1s", "--max-flapping-delay", "4s", "--flapping-threshold", "1s", "--kill-retry", "1s"]


def start(c, *extra, **kw):
    return Scheduler(c, args=FAST + list(extra), **kw).start()


def test_health_and_bad_requests(c):
    s = start(c)
    st, text, _ = s.get("/health")
    check(st == 200 and text == "OK\n", f"/health: {st} {text!r}")
    check(s.get("/leaderhealth")[0] == 200, "leaderhealth on the single voter")
    # bad JSON, wrong types, unknown fields, bad keys: 400 and nothing created
    cases = [
        (b"{not json", "not JSON"),
        (json.dumps({"key": {"role": "www"}, "bogus": 1}).encode(), "unknown field 'bogus'"),
        (json.dumps(dict(job(), instance_count="3")).encode(), "instance_count"),
        (json.dumps(job(role="bad role")).encode(), "key.role"),
        (json.dumps(job(env="qa")).encode(), "not an allowed environment"),
        (json.dumps(job(instances=0)).encode(), "instance_count"),
        (json.dumps(job(cpus=0)).encode(), "must all be > 0"),
        (json.dumps(job(cron="* * * * *", service=False)).encode(), "cron"),
        (json.dumps(job(constraints=[{"name": "dedicated",
                                      "value": {"values": ["other/x"]}}])).encode(),
         "dedicated"),
        (b"[1, 2]", "expected a JSON object"),
        (json.dumps(dict(job(), task_config=dict(job()["task_config"], executor_config={
            "name": "borealis", "data": "{oops"}))).encode(), "executor_config.data"),
    ]
    for raw, want in cases:
        st, j, _ = http("POST", s.url + "/api/v1/jobs", raw=raw)
        check(st == 400, f"{raw[:60]!r}: status {st} {j}")
        check(j["code"] == "INVALID_REQUEST" and want in j["message"],
              f"{raw[:60]!r}: message {j}")
    # an oversized body is refused before it is read
    with socket.create_connection(("127.0.0.1", s.http_port), timeout=10) as sk:
        sk.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                   b"\r\nContent-Length: 2097152\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sk.recv(4096)
            if not chunk:
                break
            reply += chunk
    check(reply.startswith(b"HTTP/1.1 413") and b"TOO_BIG" in reply, f"oversized: {reply[:200]}")
    check(s.ok("GET", "/api/v1/roles")["roles"] == [], "nothing was created")
    # populate: the job as it would be stored, its config naming its job
    p = s.ok("POST", "/api/v1/jobs/populate", job())
    check(p["task_config"]["job"] == {"role": "www", "environment": "prod", "name": "hello"},
          f"populate: {p}")
    st, j, _ = s.post("/api/v1/jobs/populate", job(cpus=-1))
    check(st == 400, f"populate refuses what create would: {st} {j}")
    st, j, _ = s.get("/api/v1/nope")
    check(st == 404 and j["code"] == "NOT_FOUND", f"unknown route: {st} {j}")
    st, j, _ = s.put("/api/v1/jobs", {})
    check(st == 405, f"wrong method: {st}")
    # metrics in both formats
    st, text, _ = s.get("/metrics")
    check(st == 200 and "# TYPE http_requests counter" in text and
          'http_requests{route="/api/v1/jobs",code="400"}' in text, f"/metrics:\n{text[:800]}")
    check(s.metric("framework_registered") == 1, "framework_registered on the leader")
    st, j, _ = s.get("/vars.json")
    check(st == 200 and j.get("framework_registered") == 1, f"/vars.json: {j}")
    s.stop()  # a clean exit: sanitizer builds check for leaks here


def test_create_place_run_kill(c):
    s = start(c)
    s.ok("POST", "/api/v1/jobs", job(instances=3, ports=["http"]))
    st, j, _ = s.post("/api/v1/jobs", job(instances=3))
    check(st == 409 and "already exists" in j["message"], f"duplicate create: {st} {j}")
    s.wait_statuses("www", "prod", "hello", {0: "PENDING", 1: "PENDING", 2: "PENDING"})
    reasons = wait_for("a pending reason",
                       lambda: [r for r in s.ok("GET", "/api/v1/pending?role=www")["reasons"]
                                if r["reason"] == "No hosts"], 10)
    check(len(reasons) == 3, f"pending reasons: {reasons}")
    a = Agent(s, "host-a").start()
    s.wait_statuses("www", "prod", "hello", {0: "RUNNING", 1: "RUNNING", 2: "RUNNING"})
    tasks = s.tasks(role="www", statuses="RUNNING")
    ports = {t["assigned_task"]["assigned_ports"]["http"] for t in tasks}
    check(len(ports) == 3 and all(31000 <= p <= 31999 for p in ports), f"ports {ports}")
    check(all(t["assigned_task"]["slave_host"] == "host-a" for t in tasks), "all on host-a")
    check([e["status"] for e in tasks[0]["task_events"]] ==
          ["PENDING", "ASSIGNED", "STARTING", "RUNNING"], f"events {tasks[0]['task_events']}")
    summ = s.ok("GET", "/api/v1/roles/www/jobs")["jobs"]
    check(summ[0]["stats"]["active"] == 3, f"job summary {summ}")
    # tasks without configs come from the texts the store keeps: read twice
    # (rendered, then kept), and a read after a change shows the change
    def lean():
        ts = s.ok("GET", "/api/v1/tasks?role=www&job_name=hello&configs=false")["tasks"]
        return {t["assigned_task"]["instance_id"]: t["status"] for t in ts}
    check(lean() == lean() == {0: "RUNNING", 1: "RUNNING", 2: "RUNNING"}, f"lean {lean()}")
    # kill one instance with a message, then the rest
    s.ok("POST", "/api/v1/jobs/www/prod/hello/kill", {"instances": [1], "message": "bye"})
    s.wait_statuses("www", "prod", "hello", {0: "RUNNING", 1: "KILLED", 2: "RUNNING"})
    check(lean() == {0: "RUNNING", 1: "KILLED", 2: "RUNNING"}, f"lean after kill {lean()}")
    _, text, _ = s.get("/metrics")
    kept = {l.split()[0]: float(l.split()[1]) for l in text.splitlines()
            if l.startswith("task_text_cache_")}
    check(kept.get("task_text_cache_hits", 0) >= 3 and kept.get("task_text_cache_misses", 0) >= 4,
          f"task text metrics {kept}")
    killed = [t for t in s.tasks(role="www", statuses="KILLED")][0]
    check(any("bye" in e.get("message", "") for e in killed["task_events"]),
          f"kill message in events: {killed['task_events']}")
    s.ok("POST", "/api/v1/jobs/www/prod/hello/kill", {})
    s.wait_statuses("www", "prod", "hello", {0: "KILLED", 1: "KILLED", 2: "KILLED"})
    check(s.count("www", "prod", "hello", "KILLED") == 3, "exactly three tasks, no reschedule")
    # killing a PENDING task deletes it
    s.ok("POST", "/api/v1/jobs", job(name="big", cpus=64))
    s.wait_statuses("www", "prod", "big", {0: "PENDING"})
    reason = wait_for("insufficient cpu", lambda: [
        r["reason"] for r in s.ok("GET", "/api/v1/pending?job_name=big")["reasons"]
        if "cpu" in r["reason"]], 10)
    check("Insufficient" in reason[0], f"reason {reason}")
    s.ok("POST", "/api/v1/jobs/www/prod/big/kill", {})
    wait_for("pending task deleted", lambda: s.tasks(job_name="big") == [], 10)
    a.stop()
    s.stop()  # a clean exit: sanitizer builds check for leaks here


def test_failures_reschedule_and_flapping(c):
    s = start(c)
    a = Agent(s, "host-a").start()

    # ad-hoc job that fails: retried up to max_task_failures, then stays FAILED
    a.script = lambda t: ([("STARTING", 0), ("RUNNING", 0), ("FAILED", 0)]
                          if t["assigned_task"]["task"]["job"]["name"] == "flaky" else
                          [("STARTING", 0), ("RUNNING", 0), ("FINISHED", 0)])
    s.ok("POST", "/api/v1/jobs", job(name="flaky", service=False, max_task_failures=2))
    wait_for("two failed runs", lambda: s.count("www", "prod", "flaky", "FAILED") == 2, 30)
    time.sleep(1.5)
    tasks = s.tasks(job_name="flaky")
    check(len(tasks) == 2 and all(t["status"] == "FAILED" for t in tasks),
          f"no third run: {[t['status'] for t in tasks]}")
    newest = max(tasks, key=lambda t: t["failure_count"])
    check(newest["failure_count"] == 2 and newest["ancestor_id"] != "",
          f"failure count carried, ancestor set: {newest['failure_count']} "
          f"{newest['ancestor_id']!r}")
    # a flapping failure is penalized: THROTTLED with the penalty message
    events = [e for t in tasks for e in t["task_events"] if e["status"] == "THROTTLED"]
    check(events and "penalized for" in events[0]["message"], f"throttled: {events}")

    # ad-hoc job that succeeds: FINISHED, not rescheduled
    s.ok("POST", "/api/v1/jobs", job(name="batch", service=False))
    s.wait_statuses("www", "prod", "batch", {0: "FINISHED"})
    time.sleep(1)
    check(len(s.tasks(job_name="batch")) == 1, "a finished ad-hoc task is not rescheduled")

    # a service that exits is always rescheduled
    a.script = lambda t: ([("STARTING", 0), ("RUNNING", 0), ("FINISHED", 1.5)]
                          if len([x for x in a.launched if x["assigned_task"]["task"]["job"]
                                  ["name"] == "svc"]) < 3 else [("STARTING", 0), ("RUNNING", 0)])
    s.ok("POST", "/api/v1/jobs", job(name="svc"))
    wait_for("service restarted twice and running",
             lambda: s.count("www", "prod", "svc", "FINISHED") == 2 and
             s.count("www", "prod", "svc", "RUNNING") == 1, 30)
    a.stop()
    s.stop()  # a clean exit: sanitizer builds check for leaks here


def test_agent_loss_partition_and_reschedule(c):
    s = start(c)
    a = Agent(s, "host-a").start()
    s.ok("POST", "/api/v1/jobs", job(name="web", instances=2))
    s.ok("POST", "/api/v1/jobs", job(name="keep", partition={"reschedule": False}))
    s.wait_statuses("www", "prod", "web", {0: "RUNNING", 1: "RUNNING"})
    s.wait_statuses("www", "prod", "keep", {0: "RUNNING"})
    a.paused.set()  # stops polling: the scheduler sees it vanish
    wait_for("tasks partitioned then lost", lambda: s.count("www", "prod", "web", "LOST") == 2, 20)
    check(s.count("www", "prod", "keep", "PARTITIONED") == 1,
          "reschedule=False keeps the task PARTITIONED")
    s.wait_statuses("www", "prod", "web", {0: "PENDING", 1: "PENDING"})
    b = Agent(s, "host-b").start()
    s.wait_statuses("www", "prod", "web", {0: "RUNNING", 1: "RUNNING"})
    on_b = [t for t in s.tasks(job_name="web", statuses="RUNNING")]
    check(all(t["assigned_task"]["slave_host"] == "host-b" for t in on_b), "rescheduled to b")
    check(s.metric("agents_partitioned") == 1, "one agent partitioned")
    # the lost agent comes back: its partitioned task runs again, its lost
    # tasks are killed (reconciliation)
    a.paused.clear()
    s.wait_statuses("www", "prod", "keep", {0: "RUNNING"}, 20)
    lost_ids = {t["assigned_task"]["task_id"] for t in s.tasks(job_name="web", statuses="LOST")}
    wait_for("lost tasks killed on the returning agent", lambda: lost_ids <= set(a.killed), 20)
    a.stop()
    b.stop()
    s.stop()  # a clean exit: sanitizer builds check for leaks here


def test_status_updates_idempotent_and_unknown_killed(c):
    s = start(c)
    a = Agent(s, "host-a").start()
    s.ok("POST", "/api/v1/jobs", job(name="one"))
    s.wait_statuses("www", "prod", "one", {0: "RUNNING"})
    t = s.tasks(job_name="one")[0]
    tid = t["assigned_task"]["task_id"]
    n_events = len(t["task_events"])
    for _ in range(3):
        s.ok("POST", "/agent/v1/status", {"agent_id": a.agent_id, "updates": [
            {"task_id": tid, "status": "RUNNING", "message": "again"}]})
    t2 = s.tasks(job_name="one")[0]
    check(len(t2["task_events"]) == n_events, "the same update twice changes nothing")
    # an update for a task the scheduler does not know is answered with a kill
    s.ok("POST", "/agent/v1/status", {"agent_id": a.agent_id, "updates": [
        {"task_id": "ghost-1", "status": "RUNNING"}]})
    a.tasks["ghost-1"] = "RUNNING"
    wait_for("ghost killed", lambda: "ghost-1" in a.killed, 10)
    # bad updates: 400, nothing changes
    st, j, _ = s.post("/agent/v1/status", {"agent_id": a.agent_id, "updates": [
        {"task_id": tid, "status": "SLEEPING"}]})
    check(st == 400 and "SLEEPING" in j["message"], f"bad status: {st} {j}")
    st, j, _ = s.post("/agent/v1/poll", {"agent_id": "nobody"})
    check(st == 404, f"unknown agent poll: {st} {j}")
    a.stop()
    s.stop()  # a clean exit: sanitizer builds check for leaks here


def test_restart_and_force_state_and_add_instances(c):
    s = start(c)
    a = Agent(s, "host-a").start()
    s.ok("POST", "/api/v1/jobs", job(name="svc", instances=2))
    s.wait_statuses("www", "prod", "svc", {0: "RUNNING", 1: "RUNNING"})
    old = {t["assigned_task"]["task_id"] for t in s.tasks(job_name="svc")}
    s.ok("POST", "/api/v1/jobs/www/prod/svc/restart", {"instances": [0]})
    wait_for("instance 0 restarted", lambda: s.count("www", "prod", "svc", "RUNNING") == 2 and
             len(s.tasks(job_name="svc")) == 3, 20)
    st, j, _ = s.post("/api/v1/jobs/www/prod/svc/restart", {"instances": [7]})
    check(st == 400 and "not active" in j["message"], f"restart inactive: {st} {j}")
    r = s.ok("POST", "/api/v1/jobs/www/prod/svc/instances", {"instance_id": 0, "count": 2})
    check(r["first_instance"] == 2, f"add instances: {r}")
    s.wait_statuses("www", "prod", "svc",
                    {0: "RUNNING", 1: "RUNNING", 2: "RUNNING", 3: "RUNNING"})
    tid = next(t["assigned_task"]["task_id"] for t in s.tasks(job_name="svc", instance_ids="3")
               if t["status"] == "RUNNING")
    s.ok("POST", f"/api/v1/tasks/{tid}/state", {"status": "LOST"})
    wait_for("forced LOST then rescheduled",
             lambda: s.count("www", "prod", "svc", "LOST") == 1 and
             s.statuses("www", "prod", "svc")[3] == "RUNNING", 20)
    check(old & {t["assigned_task"]["task_id"] for t in s.tasks(job_name="svc")} == old,
          "old tasks kept in history")
    # prune terminal history
    r = s.ok("POST", "/api/v1/admin/prune", {"job_name": "svc"})
    check(r["pruned"] == 2, f"pruned {r}")
    check(all(t["status"] == "RUNNING" for t in s.tasks(job_name="svc")), "only active left")
    a.stop()
    s.stop()  # a clean exit: sanitizer builds check for leaks here


def test_history_pruning_and_transient_timeout(c):
    s = start(c, "--history-prune-threshold", "3s", "--history-min-retention", "1s",
              "--history-max-per-job", "1", "--transient-timeout", "2s")
    a = Agent(s, "host-a").start()
    a.script = lambda t: [("STARTING", 0), ("RUNNING", 0), ("FINISHED", 0)]
    s.ok("POST", "/api/v1/jobs", job(name="batch", instances=3, service=False))
    wait_for("three finished", lambda: s.count("www", "prod", "batch", "FINISHED") == 3, 20)
    # at most one terminal task is kept per job once they are a second old
    wait_for("count pruning", lambda: len(s.tasks(job_name="batch")) == 1, 20)
    # and none once older than the prune threshold
    wait_for("age pruning", lambda: s.tasks(job_name="batch") == [], 20)
    check(s.metric("tasks_pruned") == 3, "three pruned")
    # a task the agent never confirms stays ASSIGNED until the transient
    # timeout makes it LOST (and it is rescheduled)
    a.script = lambda t: []
    s.ok("POST", "/api/v1/jobs", job(name="stuck"))
    wait_for("assigned", lambda: s.count("www", "prod", "stuck", "ASSIGNED") == 1, 10)
    wait_for("timed out to LOST", lambda: s.count("www", "prod", "stuck", "LOST") == 1, 20)
    lost = s.tasks(job_name="stuck", statuses="LOST")[0]
    check("timed out in state ASSIGNED" in lost["task_events"][-1]["message"],
          f"timeout message: {lost['task_events'][-1]}")
    check(s.metric("timed_out_tasks") >= 1, "timed_out_tasks counted")
    a.stop()
    s.stop()


def test_cron_collision_policies(c):
    s = start(c)
    a = Agent(s, "host-a").start()
    st, j, _ = s.put("/api/v1/cron/www/prod/nightly", job(name="nightly", service=False,
                                                          cron="0 3 * * *",
                                                          policy="CANCEL_NEW"))
    check(st == 200, f"schedule: {st} {j}")
    summ = s.ok("GET", "/api/v1/roles/www/jobs")["jobs"]
    check(summ[0]["is_cron"] and summ[0]["next_cron_run_ms"] > time.time() * 1000,
          f"next run in the summary: {summ}")
    st, j, _ = s.post("/api/v1/jobs", job(name="nightly"))
    check(st == 409, f"create over a cron job: {st} {j}")
    s.ok("POST", "/api/v1/cron/www/prod/nightly/start")
    s.wait_statuses("www", "prod", "nightly", {0: "RUNNING"})
    first = s.tasks(job_name="nightly")[0]["assigned_task"]["task_id"]
    # CANCEL_NEW: the run is skipped while the previous one is active
    s.ok("POST", "/api/v1/cron/www/prod/nightly/start")
    time.sleep(1)
    check(len(s.tasks(job_name="nightly")) == 1, "CANCEL_NEW launched nothing")
    # KILL_EXISTING: the previous run is killed, then the new one starts
    s.ok("PUT", "/api/v1/cron/www/prod/nightly", job(name="nightly", service=False,
                                                     cron="0 3 * * *", policy="KILL_EXISTING"))
    s.ok("POST", "/api/v1/cron/www/prod/nightly/start")
    wait_for("old run killed, new one running",
             lambda: s.count("www", "prod", "nightly", "KILLED") == 1 and
             s.count("www", "prod", "nightly", "RUNNING") == 1, 30)
    check(first in a.killed, "the previous run was killed on the agent")
    check(s.metric("cron_job_collisions") == 2, "two collisions")
    # a real trigger from the clock: every minute
    s.ok("PUT", "/api/v1/cron/www/prod/minutely", job(name="minutely", service=False,
                                                      cron="* * * * *"))
    wait_for("minutely cron fired", lambda: len(s.tasks(job_name="minutely")) >= 1, 75, 0.5)
    check(s.metric("cron_job_triggers") >= 4, "triggers counted")
    s.ok("DELETE", "/api/v1/cron/www/prod/minutely")
    check(s.delete("/api/v1/cron/www/prod/minutely")[0] == 404, "deschedule twice: 404")
    a.stop()
    s.stop()  # a clean exit: sanitizer builds check for leaks here


def test_quota(c):
    s = start(c)
    Agent(s, "host-a").start()
    s.ok("PUT", "/api/v1/quotas/www", {"cpu": 1.0, "ram_mb": 1024, "disk_mb": 1024})
    q = s.ok("GET", "/api/v1/quotas/www")
    check(q["quota"]["cpu"] == 1.0, f"quota {q}")
    s.ok("POST", "/api/v1/jobs", job(name="a", instances=2, tier="preferred"))
    st, j, _ = s.post("/api/v1/jobs", job(name="b", instances=1, tier="preferred"))
    check(st == 400 and "Insufficient resource quota" in j["message"], f"over quota: {st} {j}")
    check(s.tasks(job_name="b") == [], "refused job created nothing")
    # preemptible (the default tier) does not count
    s.ok("POST", "/api/v1/jobs", job(name="c", instances=2))
    s.ok("POST", "/api/v1/quotas/www/increase", {"cpu": 0.5, "ram_mb": 64, "disk_mb": 64})
    s.ok("POST", "/api/v1/jobs", job(name="b", instances=1, tier="preferred"))
    q = s.ok("GET", "/api/v1/quotas/www")
    check(q["prod_shared_consumption"]["cpu"] == 1.5, f"consumption {q}")
    st, j, _ = s.put("/api/v1/quotas/www", {"cpu": -1, "ram_mb": 1, "disk_mb": 1})
    check(st == 400, f"negative quota: {st}")
    # a cron job counts once, by its template, whether or not a run is active
    s.ok("POST", "/api/v1/quotas/www/increase", {"cpu": 1.0, "ram_mb": 64, "disk_mb": 64})
    s.ok("PUT", "/api/v1/cron/www/prod/cr", job(name="cr", service=False, cron="0 0 * * *",
                                                tier="preferred", cpus=1.0))
    check(s.ok("GET", "/api/v1/quotas/www")["prod_shared_consumption"]["cpu"] == 2.5,
          "template counted")
    s.ok("POST", "/api/v1/cron/www/prod/cr/start")
    s.wait_statuses("www", "prod", "cr", {0: "RUNNING"})
    check(s.ok("GET", "/api/v1/quotas/www")["prod_shared_consumption"]["cpu"] == 2.5,
          "an active cron run is not counted twice")
    # replacing the template needs quota only for the difference
    s.ok("PUT", "/api/v1/cron/www/prod/cr", job(name="cr", service=False, cron="0 1 * * *",
                                                tier="preferred", cpus=1.0))
    s.stop()  # a clean exit: sanitizer builds check for leaks here


def test_drain_and_activate(c):
    s = start(c)
    a = Agent(s, "host-a", attributes={"rack": "r1"}).start()
    b = Agent(s, "host-b", attributes={"rack": "r2"}).start()
    s.ok("POST", "/api/v1/jobs", job(name="web", instances=2,
                                     constraints=[{"name": "host", "limit": {"limit": 1}}]))
    s.wait_statuses("www", "prod", "web", {0: "RUNNING", 1: "RUNNING"})
    hosts = {t["assigned_task"]["slave_host"] for t in s.tasks(job_name="web")}
    check(hosts == {"host-a", "host-b"}, f"limit:1 per host spreads: {hosts}")
    r = s.ok("POST", "/api/v1/maintenance/drain", {"hosts": ["host-a"]})
    check(r["hosts"][0]["mode"] == "DRAINING", f"drain: {r}")
    wait_for("host-a drained", lambda: s.ok("GET", "/api/v1/maintenance?hosts=host-a")
             ["hosts"][0]["mode"] == "DRAINED", 20)
    # the drained task cannot go back to host-a, and limit:1 keeps it off host-b
    s.wait_statuses("www", "prod", "web", {0: "PENDING", 1: "RUNNING"} if
                    s.statuses("www", "prod", "web").get(0) != "RUNNING" else
                    {0: "RUNNING", 1: "PENDING"})
    reason = wait_for("pending reason", lambda: [
        r["reason"] for r in s.ok("GET", "/api/v1/pending?job_name=web")["reasons"]
        if r["reason"] not in ("Waiting to be scheduled",)], 10)
    check("maintenance" in reason[0] or "Limit" in reason[0], f"reason {reason}")
    s.ok("POST", "/api/v1/maintenance/end", {"hosts": ["host-a"]})
    s.wait_statuses("www", "prod", "web", {0: "RUNNING", 1: "RUNNING"})
    check(s.ok("GET", "/api/v1/maintenance?hosts=host-a")["hosts"][0]["mode"] == "NONE",
          "activated")
    s.ok("POST", "/api/v1/maintenance/start", {"hosts": ["host-b"]})
    check(s.ok("GET", "/api/v1/maintenance?hosts=host-b")["hosts"][0]["mode"] == "SCHEDULED",
          "scheduled")
    a.stop()
    b.stop()
    s.stop()  # a clean exit: sanitizer builds check for leaks here


def test_scheduler_restart_loses_nothing(c):
    s = start(c)
    a = Agent(s, "host-a").start()
    s.ok("POST", "/api/v1/jobs", job(name="web", instances=3))
    s.ok("PUT", "/api/v1/quotas/www", {"cpu": 10, "ram_mb": 10000, "disk_mb": 10000})
    s.ok("POST", "/api/v1/maintenance/start", {"hosts": ["host-z"]})
    s.wait_statuses("www", "prod", "web", {0: "RUNNING", 1: "RUNNING", 2: "RUNNING"})
    before = sorted(t["assigned_task"]["task_id"] for t in s.tasks(job_name="web"))
    s.stop()
    s.start()
    after = sorted(t["assigned_task"]["task_id"] for t in s.tasks(job_name="web"))
    check(before == after, "the same tasks after the restart")
    check(s.ok("GET", "/api/v1/quotas/www")["quota"]["cpu"] == 10, "quota kept")
    check(s.ok("GET", "/api/v1/maintenance?hosts=host-z")["hosts"][0]["mode"] == "SCHEDULED",
          "maintenance kept")
    # the agent re-registers and its tasks stay RUNNING (nothing rescheduled)
    wait_for("agent back", lambda: s.metric("agents_registered") == 1, 20)
    time.sleep(3)
    check(sorted(t["assigned_task"]["task_id"] for t in s.tasks(job_name="web")) == before and
          s.count("www", "prod", "web", "RUNNING") == 3, "still running, nothing rescheduled")
    # and the restarted scheduler still schedules
    s.ok("POST", "/api/v1/jobs", job(name="more"))
    s.wait_statuses("www", "prod", "more", {0: "RUNNING"})
    a.stop()
    s.stop()  # a clean exit: sanitizer builds check for leaks here


def test_admin_backup_recovery_snapshot_reconcile(c):
    backups = c.mkdir("backups")
    s = start(c, "--backup-dir", backups)
    a = Agent(s, "host-a").start()
    s.ok("POST", "/api/v1/jobs", job(name="keep", instances=2))
    s.wait_statuses("www", "prod", "keep", {0: "RUNNING", 1: "RUNNING"})
    snap = s.ok("POST", "/api/v1/admin/snapshot")
    check("name" in snap, f"snapshot: {snap}")
    name = s.ok("POST", "/api/v1/admin/backup")["name"]
    check(name in s.ok("GET", "/api/v1/admin/backups")["backups"], "backup listed")
    # online recovery: stage, look, delete one task, unload (nothing changes)
    s.ok("POST", "/api/v1/admin/recovery/stage", {"backup": name})
    staged = s.ok("GET", "/api/v1/admin/recovery/tasks?job_name=keep")["tasks"]
    check(len(staged) == 2, f"staged tasks: {staged}")
    one = staged[0]["assigned_task"]["task_id"]
    r = s.ok("POST", "/api/v1/admin/recovery/delete", {"task_ids": [one]})
    check(r["deleted"] == 1, f"deleted: {r}")
    check(len(s.ok("GET", "/api/v1/admin/recovery/tasks?job_name=keep")["tasks"]) == 1,
          "one left in the staged copy")
    st, j, _ = s.post("/api/v1/admin/recovery/stage", {"backup": name})
    check(st == 409, f"a second stage is refused while one is staged: {st} {j}")
    s.ok("POST", "/api/v1/admin/recovery/unload")
    check(len(s.tasks(job_name="keep")) == 2, "the live state is untouched")
    st, j, _ = s.post("/api/v1/admin/recovery/stage", {"backup": "no-such-backup"})
    check(st in (400, 404), f"unknown backup: {st} {j}")
    # explicit reconciliation: the agent is asked to register again (with its
    # tasks), and nothing it runs changes
    before = a.registrations
    s.ok("POST", "/api/v1/admin/reconcile")
    wait_for("the agent registered again", lambda: a.registrations > before, 10)
    wait_for("tasks still running after reconciling",
             lambda: s.count("www", "prod", "keep", "RUNNING") == 2, 10)
    a.stop()
    s.stop()


def test_follower_redirects_to_leader(c):
    ss, leader = replicas(c, FAST)
    follower = next(s for s in ss if s is not leader)
    wait_for("follower knows the leader", lambda: follower.get("/leaderhealth")[0] == 503, 10)
    st, j, hdrs = follower.post("/api/v1/jobs", job())
    check(st == 307 and hdrs.get("Location") == leader.url + "/api/v1/jobs",
          f"follower: {st} {j} {hdrs.get('Location')}")
    st, j, hdrs = follower.get("/api/v1/admin/recovery/tasks?role=www&statuses=RUNNING,KILLED")
    check(st == 307 and hdrs.get("Location") ==
          leader.url + "/api/v1/admin/recovery/tasks?role=www&statuses=RUNNING,KILLED",
          f"redirect keeps the query: {st} {hdrs.get('Location')}")
    leader.ok("POST", "/api/v1/jobs", job(instances=2))
    # reads are served by the follower from its replica
    wait_for("follower sees the job", lambda: len(follower.tasks(job_name="hello")) == 2, 10)
    # the leader goes away: another replica takes over with the same state and
    # schedules (its agents would follow the redirect; here one registers)
    leader.stop()
    rest = [s for s in ss if s is not leader]
    new = wait_for("a new leader", lambda: [s for s in rest if s.get("/leaderhealth")[0] == 200],
                   30)[0]
    check(len(new.tasks(job_name="hello")) == 2, "the new leader has the tasks")
    a = Agent(new, "host-a").start()
    new.wait_statuses("www", "prod", "hello", {0: "RUNNING", 1: "RUNNING"})
    other = next(s for s in rest if s is not new)
    st, j, hdrs = other.post("/api/v1/jobs", job(name="two"))
    check(st == 307 and hdrs.get("Location") == new.url + "/api/v1/jobs",
          f"redirect to the new leader: {st} {hdrs.get('Location')}")
    a.stop()
    for s in rest:
        s.stop()


if __name__ == "__main__":
    main()
