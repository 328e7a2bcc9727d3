"""Helpers for end-to-end tests with the real borealis-agent and
borealis-executor: start an agent against a scheduler, build jobs whose
executor data runs real processes, read the agent's observer, and clean up
every process and cgroup a test left behind (executors outlive agents on
purpose, so killing the agent is not enough)."""

import json
import os
import signal
import time

from harness import TestFailure, binary, check, free_port
from schedlib import http, wait_for

AGENT = binary("borealis-agent")
EXECUTOR = binary("borealis-executor")
CGROUP_ROOTS = ("/sys/fs/cgroup/memory/borealis", "/sys/fs/cgroup/cpu/borealis",
                "/sys/fs/cgroup/borealis", "/sys/fs/cgroup/cpu,cpuacct/borealis")


def kill_under(root):
    """SIGKILL every process whose working directory or command line is
    under `root` (executors and the processes of their tasks)."""
    for _ in range(5):
        found = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = ""
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().decode(errors="replace")
            except OSError:
                cmd = ""
            if cwd.startswith(root) or root in cmd:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    found += 1
                except OSError:
                    pass
        if not found:
            return
        time.sleep(0.1)


def remove_cgroups(tag_dirs):
    for d in tag_dirs:
        if not os.path.isdir(d):
            continue
        for dirpath, _, _ in os.walk(d, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


class RealAgent:
    def __init__(self, c, sched_urls, name="agent1", host=None, cpus=4, ram=4096, disk=20000,
                 ports="31000-31999", attributes=None, args=(), work=None):
        self.c = c
        self.name = name
        self.host = host or name
        self.work = work or c.mkdir(name)
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.sched_urls = sched_urls if isinstance(sched_urls, list) else [sched_urls]
        self.argv = [AGENT, "--work-dir", self.work, "--http", f"127.0.0.1:{self.http_port}",
                     "--hostname", self.host, "--cpus", cpus, "--ram-mb", ram, "--disk-mb", disk,
                     "--ports", ports, "--no-setuid", "--stop-timeout", "10s",
                     "--executor", EXECUTOR] + list(args)
        for u in self.sched_urls:
            self.argv += ["--scheduler", u]
        if attributes:
            self.argv += ["--attributes", attributes]
        self.proc = None
        if not getattr(c, "_agent_cleanup", False):
            c._agent_cleanup = True
            c.on_cleanup(lambda: self._cleanup_all())

    def _cleanup_all(self):
        kill_under(self.c.root)
        # Empty task groups and agent roots only (rmdir refuses the others):
        # a live agent elsewhere keeps its busy groups.
        remove_cgroups([os.path.join(r, t) for r in CGROUP_ROOTS if os.path.isdir(r)
                        for t in os.listdir(r)])

    def start(self, wait_registered=True):
        self.proc = self.c.start(self.argv, name=self.name)
        self.proc.wait_line(lambda l: "borealis-agent: id" in l, 30)
        if wait_registered:
            wait_for(f"{self.name} to register",
                     lambda: self.get("/api/v1/agent")[1].get("registered"), 30)
        return self

    def stop(self):
        self.proc.signal(signal.SIGTERM)
        return self.proc.wait(30)

    def kill9(self):
        self.proc.kill9()

    def stop_clean(self):
        """Stop with SIGTERM: exit 0, and no sanitizer report from the agent
        or from any executor it ran."""
        rc = self.stop()
        err = self.proc.stderr()
        check(rc == 0, f"{self.name} exited {rc}: {err[-1500:]}")
        bad = ("Sanitizer", "runtime error:")
        check(not any(b in err for b in bad), f"{self.name} stderr: {err[-3000:]}")
        tasks = os.path.join(self.work, "tasks")
        for tid in os.listdir(tasks) if os.path.isdir(tasks) else []:
            path = os.path.join(tasks, tid, "executor.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    log = f.read()
                check(not any(b in log for b in bad), f"executor of {tid}: {log[-3000:]}")

    def get(self, path, **kw):
        return http("GET", self.url + path, **kw)

    def task(self, task_id):
        st, j, _ = self.get(f"/api/v1/tasks/{task_id}")
        check(st == 200, f"agent task {task_id}: {st} {j}")
        return j

    def tail(self, task_id, path, lines=100):
        """(status, text): the file's last lines as text, never parsed."""
        st, body, _ = http("GET", f"{self.url}/api/v1/tasks/{task_id}/tail?path={path}"
                           f"&lines={lines}", raw_text=True)
        return st, body

    def isolation(self):
        return self.get("/api/v1/agent")[1].get("isolation", "")


def thermos(processes, order=None, health=None, lifecycle=None, finalization_wait=None,
            max_failures=None, max_concurrency=None, announce=None):
    """Executor data in Aurora's shape: the job with its task."""
    task = {"name": processes[0]["name"], "processes": processes}
    if order:
        task["constraints"] = [{"order": list(o)} for o in order]
    if finalization_wait is not None:
        task["finalization_wait"] = finalization_wait
    if max_failures is not None:
        task["max_failures"] = max_failures
    if max_concurrency is not None:
        task["max_concurrency"] = max_concurrency
    data = {"task": task}
    if health:
        data["health_check_config"] = health
    if lifecycle:
        data["lifecycle"] = lifecycle
    if announce:
        data["announce"] = announce
    return json.dumps(data)


def proc(name, cmdline, **kw):
    p = {"name": name, "cmdline": cmdline}
    p.update(kw)
    return p


def job(name, processes, role="www", env="prod", instances=1, service=False, cpus=0.1, ram=64,
        disk=64, ports=(), max_task_failures=1, **thermos_kw):
    res = [{"num_cpus": cpus}, {"ram_mb": ram}, {"disk_mb": disk}] + \
        [{"named_port": p} for p in ports]
    tc = {"is_service": service, "max_task_failures": max_task_failures, "resources": res,
          "executor_config": {"name": "borealis", "data": thermos(processes, **thermos_kw)}}
    return {"key": {"role": role, "environment": env, "name": name}, "instance_count": instances,
            "task_config": tc}


def latest_message(task):
    ev = task.get("task_events") or []
    return ev[-1].get("message", "") if ev else ""
