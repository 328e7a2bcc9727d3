"""Helpers for scheduler end-to-end tests: a started borealis-scheduler with a
small HTTP/JSON client, and a scripted agent that speaks the agent protocol
(docs/agent-protocol.md) from a thread. The scripted agent stands in for the
real borealis-agent, which is another issue; it runs no processes: each
launched task follows a script (by default STARTING then RUNNING at once)."""

import json
import threading
import time
import urllib.error
import urllib.request

from harness import TestFailure, binary, check, free_port

SCHED = binary("borealis-scheduler")


def http(method, url, body=None, timeout=10, raw=None, headers=None, raw_text=False):
    """(status, parsed JSON or text, headers); never raises for HTTP errors.
    With raw_text the body is always returned as text."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as r:
            status, text, hdrs = r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, text, hdrs = e.code, e.read().decode(), dict(e.headers)
    if raw_text:
        return status, text, hdrs
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


def wait_for(what, fn, timeout=30, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TestFailure(f"timed out after {timeout}s waiting for {what}; last: {last}")


class Scheduler:
    def __init__(self, c, name="sched", data=None, http_port=None, raft_port=None, args=(),
                 id=1, peers=None):
        self.c = c
        self.name = name
        self.data = data or c.mkdir(name)
        self.http_port = http_port or free_port()
        self.raft_port = raft_port or free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.args = list(args)
        self.id = id
        self.peers = peers or []
        self.proc = None

    def start(self, wait_leader=True):
        argv = [SCHED, "--data-dir", self.data, "--http", f"127.0.0.1:{self.http_port}",
                "--raft", f"127.0.0.1:{self.raft_port}", "--id", self.id,
                "--hostname", self.name] + self.args
        for p in self.peers:
            argv += ["--peer", p]
        self.proc = self.c.start(argv, name=self.name)
        self.proc.wait_line(lambda l: "API on" in l, 30)
        if wait_leader:
            wait_for("leadership", lambda: self.get("/leaderhealth")[0] == 200, 30)
        return self

    def stop(self, timeout=30):
        import signal
        self.proc.signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        check(rc == 0, f"{self.name} exited {rc}: {self.proc.stderr()[-1500:]}")

    def get(self, path, **kw):
        return http("GET", self.url + path, **kw)

    def post(self, path, body=None, **kw):
        return http("POST", self.url + path, body if body is not None else {}, **kw)

    def put(self, path, body=None, **kw):
        return http("PUT", self.url + path, body, **kw)

    def delete(self, path, **kw):
        return http("DELETE", self.url + path, **kw)

    def ok(self, method, path, body=None):
        st, j, _ = http(method, self.url + path, body)
        check(st == 200, f"{method} {path}: {st} {j}")
        return j

    def tasks(self, **q):
        qs = "&".join(f"{k}={v}" for k, v in q.items())
        return self.ok("GET", "/api/v1/tasks?" + qs)["tasks"]

    def statuses(self, role, env, name):
        """{instance: status} of the newest task of each instance: the one
        created last, and of tasks created in the same millisecond (a
        reschedule) the one still active."""
        terminal = ("FINISHED", "FAILED", "KILLED", "LOST")
        out = {}
        for t in self.tasks(role=role, environment=env, job_name=name):
            i = t["assigned_task"]["instance_id"]
            born = t["task_events"][0]["timestamp_ms"] if t["task_events"] else 0
            key = (born, t["status"] not in terminal)
            if i not in out or key >= out[i][1]:
                out[i] = (t["status"], key)
        return {i: s for i, (s, _) in out.items()}

    def wait_statuses(self, role, env, name, want, timeout=30):
        """Wait until the instances' newest statuses equal `want` ({i: status})."""
        return wait_for(f"{role}/{env}/{name} to be {want}",
                        lambda: self.statuses(role, env, name) == want and want, timeout)

    def count(self, role, env, name, status):
        return sum(1 for t in self.tasks(role=role, environment=env, job_name=name)
                   if t["status"] == status)

    def metric(self, name):
        st, text, _ = self.get("/vars")
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k == name:
                return float(v)
        return None


def replicas(c, args=(), n=3):
    """n scheduler replicas forming one raft group, started; returns
    (schedulers, the leader) once one leads."""
    ports = [(free_port(), free_port()) for _ in range(n)]
    peers = [f"{i + 1},127.0.0.1:{r},http://127.0.0.1:{h}" for i, (h, r) in enumerate(ports)]
    ss = [Scheduler(c, name=f"s{i + 1}", http_port=h, raft_port=r, id=i + 1, peers=peers,
                    args=list(args)) for i, (h, r) in enumerate(ports)]
    for x in ss:
        x.start(wait_leader=False)
    leader = wait_for("a leader", lambda: [x for x in ss if x.get("/leaderhealth")[0] == 200],
                      30)[0]
    return ss, leader


def job(role="www", env="prod", name="hello", instances=1, service=True, cpus=0.5, ram=64,
        disk=64, ports=(), constraints=(), max_task_failures=1, tier=None, cron=None,
        policy=None, partition=None):
    res = [{"num_cpus": cpus}, {"ram_mb": ram}, {"disk_mb": disk}] + \
        [{"named_port": p} for p in ports]
    tc = {"is_service": service, "max_task_failures": max_task_failures, "resources": res,
          "constraints": list(constraints),
          "executor_config": {"name": "borealis", "data": "{}"}}
    if tier:
        tc["tier"] = tier
    if partition is not None:
        tc["partition_policy"] = partition
    j = {"key": {"role": role, "environment": env, "name": name}, "instance_count": instances,
         "task_config": tc}
    if cron:
        j["cron_schedule"] = cron
    if policy:
        j["cron_collision_policy"] = policy
    return j


class Agent:
    """A scripted agent. `script(task)` returns the statuses a launched task
    reports, each as (status, delay_s); the default runs it for ever."""

    def __init__(self, sched, host, cpus=4.0, ram=8192, disk=65536, ports=(31000, 31999),
                 attributes=None, agent_id=None):
        self.sched = sched
        self.host = host
        self.cpus, self.ram, self.disk, self.ports = cpus, ram, disk, ports
        self.attributes = attributes or {}
        self.agent_id = agent_id
        self.tasks = {}  # task_id -> status
        self.launched = []
        self.killed = []
        self.script = lambda t: [("STARTING", 0), ("RUNNING", 0)]
        self.on_kill = "KILLED"
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.paused = threading.Event()
        self.thread = None
        self.errors = []
        self.ack = 0
        self.session = ""
        self.registrations = 0

    def url(self):
        return self.sched.url if not callable(self.sched) else self.sched().url

    def register(self):
        body = {"host": self.host,
                "resources": {"cpus": self.cpus, "ram_mb": self.ram, "disk_mb": self.disk,
                              "ports": [list(self.ports)]},
                "attributes": self.attributes,
                "tasks": [{"task_id": k, "status": v} for k, v in self.tasks.items()
                          if v not in ("FINISHED", "FAILED", "KILLED", "LOST")]}
        if self.agent_id:
            body["agent_id"] = self.agent_id
        # what we last heard: the scheduler drops what we handled in the same
        # session and tells us where to resume (docs/agent-protocol.md)
        body["session"] = self.session
        body["ack"] = self.ack
        st, j, _ = http("POST", self.url() + "/agent/v1/register", body)
        if st != 200:
            return False
        self.agent_id = j["agent_id"]
        self.session = j.get("session", "")
        self.ack = j.get("ack", 0)
        self.registrations += 1
        return True

    def report(self, task_id, status, message=""):
        with self.lock:
            self.tasks[task_id] = status
        for _ in range(50):
            if self.stop_ev.is_set():
                return
            try:
                st, j, _ = http("POST", self.url() + "/agent/v1/status",
                                {"agent_id": self.agent_id,
                                 "updates": [{"task_id": task_id, "status": status,
                                              "message": message}]})
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)

    def _run_script(self, task_id, steps):
        for status, delay in steps:
            if delay:
                time.sleep(delay)
            with self.lock:
                if self.tasks.get(task_id) in ("KILLED", "FINISHED", "FAILED", "LOST"):
                    return
            self.report(task_id, status, "scripted")

    def _loop(self):
        registered = False
        while not self.stop_ev.is_set():
            if self.paused.is_set():
                time.sleep(0.1)
                registered = False
                continue
            try:
                if not registered:
                    registered = self.register()
                    if not registered:
                        time.sleep(0.2)
                        continue
                st, j, _ = http("POST", self.url() + "/agent/v1/poll",
                                {"agent_id": self.agent_id, "ack": self.ack}, timeout=15)
            except OSError:
                time.sleep(0.2)
                registered = False
                continue
            if st == 404 or st == 503 or st == 307:
                registered = False
                time.sleep(0.1)
                continue
            if st != 200:
                self.errors.append((st, j))
                time.sleep(0.2)
                continue
            for cmd in j.get("commands", []):
                self.ack = max(self.ack, cmd["seq"])
                if cmd["type"] == "launch":
                    t = cmd["task"]
                    tid = t["assigned_task"]["task_id"]
                    if tid in self.tasks:
                        continue
                    with self.lock:
                        self.tasks[tid] = "ASSIGNED"
                        self.launched.append(t)
                    steps = self.script(t)
                    threading.Thread(target=self._run_script, args=(tid, steps),
                                     daemon=True).start()
                elif cmd["type"] == "kill":
                    tid = cmd["task_id"]
                    with self.lock:
                        self.killed.append(tid)
                        known = tid in self.tasks
                    if known:
                        threading.Thread(target=self.report, args=(tid, self.on_kill, "killed"),
                                         daemon=True).start()
                elif cmd["type"] == "reconcile":
                    registered = False

    def start(self):
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        if self.thread:
            self.thread.join(timeout=20)
