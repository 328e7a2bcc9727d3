#!/usr/bin/env python3
"""Smoke tests of borealis-executor: real processes, real files.

Each case makes a task directory with task.json, runs the executor on it
(as the agent would: own session, stderr to DIR/executor.log), optionally
acts on it (sends SIGTERM, serves HTTP), and checks DIR/updates,
DIR/checkpoint.json and the sandbox.

usage: executor_smoke.py [BINARY ...] [-k SUBSTRING]
Default binary: $BO_BUILD_DIR/src/executor/borealis-executor, else
build-exec/ under the source tree. Run as root for the cgroup case (it is
skipped, with the reason printed, when /sys/fs/cgroup/memory is not writable).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port  # noqa: E402 - ports outside the ephemeral range


class Task:
    def __init__(self, binary, data, ports=None, extra=None, files=None):
        self.binary = binary
        self.root = tempfile.mkdtemp(prefix="bo-exec-")
        self.dir = os.path.join(self.root, "task")
        self.sandbox = os.path.join(self.root, "sandbox")
        os.makedirs(self.dir)
        os.makedirs(self.sandbox)
        for name, text in (files or {}).items():
            with open(os.path.join(self.sandbox, name), "w") as f:
                f.write(text)
        doc = {
            "task": {"assigned_task": {
                "task_id": "www-prod-hello-0-1234", "slave_host": "node-1", "instance_id": 0,
                "assigned_ports": ports or {},
                "task": {"job": {"role": "www", "environment": "prod", "name": "hello"},
                         "executor_config": {"name": "borealis", "data": json.dumps(data)}}},
                "status": "ASSIGNED"},
            "sandbox": self.sandbox,
            "hostname": "node-1",
        }
        doc.update(extra or {})
        with open(os.path.join(self.dir, "task.json"), "w") as f:
            json.dump(doc, f)
        self.proc = None

    def start(self):
        log = open(os.path.join(self.dir, "executor.log"), "w")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        supp = os.path.join(SRC, "tests", "lsan.supp")
        if os.path.exists(supp):
            env.setdefault("LSAN_OPTIONS", "suppressions=" + supp)
        self.proc = subprocess.Popen([self.binary, "--task-dir", self.dir],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=log, start_new_session=True, env=env)
        log.close()
        return self

    def updates(self):
        try:
            with open(os.path.join(self.dir, "updates")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def statuses(self):
        return [u["status"] for u in self.updates()]

    def checkpoint(self):
        with open(os.path.join(self.dir, "checkpoint.json")) as f:
            return json.load(f)

    def wait_status(self, status, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            if status in self.statuses():
                return True
            time.sleep(0.05)
        return False

    def wait(self, timeout=30):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("executor did not exit within %ss; log:\n%s" % (timeout, self.log()))
        assert rc == 0, "executor exit code %d; log:\n%s" % (rc, self.log())
        for bad in ("runtime error:", "AddressSanitizer", "LeakSanitizer"):
            assert bad not in self.log(), "sanitizer report; log:\n%s" % self.log()
        return self.updates()[-1]

    def log(self):
        with open(os.path.join(self.dir, "executor.log")) as f:
            return f.read()

    def sandbox_file(self, *parts):
        with open(os.path.join(self.sandbox, *parts)) as f:
            return f.read()

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def check(cond, msg, task=None):
    if not cond:
        extra = ""
        if task is not None:
            extra = "\nupdates: %s\nlog:\n%s" % (task.updates(), task.log())
        raise AssertionError(msg + extra)


def seqs_ok(t):
    us = t.updates()
    check([u["seq"] for u in us] == list(range(1, len(us) + 1)), "seq numbers", t)
    check(us[0]["status"] == "STARTING", "first update is STARTING", t)


# ---- cases ----

def case_finished(binary):
    t = Task(binary, {"processes": [{"name": "hello", "cmdline":
        "echo hi {{thermos.ports[http]}} {{ thermos.ports[aurora] }} {{mesos.instance}} "
        "{{mesos.hostname}} {{thermos.task_id}} $HOME $USER $PATH; echo oops >&2"}],
        "announce": {"primary_port": "http"}},
        ports={"http": 31001}).start()
    try:
        last = t.wait()
        check(t.statuses() == ["STARTING", "RUNNING", "FINISHED"], "statuses", t)
        check(last["message"] == "all processes finished", "message", t)
        seqs_ok(t)
        out = t.sandbox_file(".logs", "hello", "0", "stdout")
        want = "hi 31001 31001 0 node-1 www-prod-hello-0-1234 %s" % t.sandbox
        check(out.startswith(want), "stdout %r" % out, t)
        check("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in out, "PATH", t)
        check(t.sandbox_file(".logs", "hello", "0", "stderr") == "oops\n", "stderr", t)
        cp = t.checkpoint()
        check(cp["processes"]["hello"]["state"] == "SUCCESS", "checkpoint", t)
        check(cp["stage"] == "DONE" and cp["status"] == "FINISHED", "checkpoint stage", t)
    finally:
        t.cleanup()


def case_ordering(binary):
    t = Task(binary, {"processes": [
        {"name": "second", "cmdline": "test -f first.done && touch second.done"},
        {"name": "first", "cmdline": "sleep 0.3; touch first.done"},
        {"name": "free", "cmdline": "test ! -f first.done && touch free.done"}],
        "constraints": [{"order": ["first", "second"]}]}).start()
    try:
        last = t.wait()
        check(last["status"] == "FINISHED", "finished", t)
        for f in ("first.done", "second.done", "free.done"):
            check(os.path.exists(os.path.join(t.sandbox, f)), f, t)
        cp = t.checkpoint()["processes"]
        check(cp["second"]["start_ms"] >= cp["first"]["stop_ms"], "order", t)
    finally:
        t.cleanup()


def case_retries_fail(binary):
    t = Task(binary, {"processes": [{"name": "web", "cmdline": "echo run; exit 3",
                                     "max_failures": 2, "min_duration": 0.5}]}).start()
    try:
        last = t.wait()
        check(last["status"] == "FAILED", "failed", t)
        check(last["message"] == "process 'web' failed: exit code 3 (run 2 of 2)", "message", t)
        for run in ("0", "1"):
            check(t.sandbox_file(".logs", "web", run, "stdout") == "run\n", "log run " + run, t)
        cp = t.checkpoint()["processes"]["web"]
        check(cp["state"] == "FAILED" and cp["failures"] == 2 and cp["exit_code"] == 3,
              "checkpoint %r" % cp, t)
    finally:
        t.cleanup()


def case_ephemeral_final(binary):
    t = Task(binary, {"processes": [
        {"name": "main", "cmdline": "sleep 1"},
        {"name": "ticker", "cmdline": "date +%s.%N >> ticks", "daemon": True,
         "ephemeral": True, "min_duration": 0.2},
        {"name": "side", "cmdline": "trap 'echo term > side.term; exit 0' TERM; "
         "while true; do sleep 0.05; done", "ephemeral": True},
        {"name": "fin1", "cmdline": "test ! -f fin2.done && touch fin1.done", "final": True},
        {"name": "fin2", "cmdline": "touch fin2.done", "final": True}],
        "constraints": [{"order": ["fin1", "fin2"]}]}).start()
    try:
        last = t.wait()
        check(last["status"] == "FINISHED", "finished", t)
        ticks = t.sandbox_file("ticks").split()
        check(len(ticks) >= 3, "daemon re-ran: %d ticks" % len(ticks), t)
        check(os.path.exists(os.path.join(t.sandbox, "fin1.done")), "fin1 ran first", t)
        check(os.path.exists(os.path.join(t.sandbox, "fin2.done")), "fin2 ran", t)
        check(t.sandbox_file("side.term") == "term\n", "ephemeral got SIGTERM", t)
        cp = t.checkpoint()["processes"]
        check(cp["side"]["state"] == "KILLED", "ephemeral KILLED", t)
        check(cp["fin2"]["start_ms"] >= cp["fin1"]["stop_ms"], "finals ordered", t)
    finally:
        t.cleanup()


def case_double_fork_kill(binary):
    daemon = ("trap 'echo term > $HOME/daemon.term; exit 0' TERM; echo $$ > $HOME/daemon.pid; "
              "while true; do sleep 0.05; done")
    t = Task(binary, {"processes": [{"name": "spawner", "cmdline":
        "(setsid bash -c \"%s\" </dev/null >/dev/null 2>&1 &); sleep 1000" % daemon.replace('"', '\\"')}]}
        ).start()
    try:
        check(t.wait_status("RUNNING"), "running", t)
        pidfile = os.path.join(t.sandbox, "daemon.pid")
        end = time.time() + 10
        while time.time() < end and not os.path.exists(pidfile):
            time.sleep(0.05)
        time.sleep(0.2)
        pid = int(t.sandbox_file("daemon.pid"))
        # the daemon was re-parented to the executor (child subreaper)
        with open("/proc/%d/stat" % pid) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        check(ppid == t.proc.pid, "daemon adopted by the executor (ppid %d)" % ppid, t)
        t.proc.send_signal(signal.SIGTERM)
        last = t.wait()
        check(last["status"] == "KILLED" and last["message"] == "killed by request", "killed", t)
        check(t.sandbox_file("daemon.term") == "term\n", "daemon got SIGTERM", t)
        check(not os.path.exists("/proc/%d" % pid), "daemon is gone", t)
        check(t.checkpoint()["processes"]["spawner"]["state"] == "KILLED", "KILLED", t)
    finally:
        t.cleanup()


def case_kill_escalates(binary):
    t = Task(binary, {"processes": [{"name": "stubborn", "cmdline":
        "trap '' TERM; while true; do sleep 0.05; done"}], "finalization_wait": 1}).start()
    try:
        check(t.wait_status("RUNNING"), "running", t)
        time.sleep(0.2)
        t.proc.send_signal(signal.SIGTERM)
        t0 = time.time()
        last = t.wait()
        took = time.time() - t0
        check(last["status"] == "KILLED", "killed", t)
        check(0.9 <= took < 3, "SIGKILL after finalization_wait (%.1fs)" % took, t)
        p = t.checkpoint()["processes"]["stubborn"]
        check(p["state"] == "KILLED" and p["signal"] == 9, "checkpoint %r" % p, t)
    finally:
        t.cleanup()


SERVER = r"""
import http.server, sys, time, os
delay = float(sys.argv[2]); code = int(sys.argv[3]); t0 = time.time()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        ready = time.time() - t0 >= delay
        body = b"OK\n" if ready and code == 200 else b"not ok"
        self.send_response(code if ready else 503)
        self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        with open("lifecycle.log", "a") as f: f.write(self.path + "\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"bye")
        if self.path == "/quitquitquit": os._exit(0)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def case_http_health(binary):
    port = free_port()
    t = Task(binary, {"processes": [{"name": "web", "cmdline":
        "exec python3 server.py {{thermos.ports[health]}} 1.5 200"}],
        "health_check_config": {"initial_interval_secs": 1, "interval_secs": 0.5,
                                "max_consecutive_failures": 3},
        "lifecycle": {"http": {"graceful_shutdown_wait_secs": 5, "shutdown_wait_secs": 1}}},
        ports={"health": port}, files={"server.py": SERVER}).start()
    try:
        t0 = time.time()
        check(t.wait_status("RUNNING", 15), "RUNNING", t)
        check(time.time() - t0 >= 1.4, "RUNNING only once healthy", t)
        check(t.statuses() == ["STARTING", "RUNNING"], "statuses", t)
        check(t.updates()[-1]["message"] == "healthy", "healthy message", t)
        t.proc.send_signal(signal.SIGTERM)
        t1 = time.time()
        last = t.wait()
        check(last["status"] == "KILLED", "killed", t)
        check(t.sandbox_file("lifecycle.log") == "/quitquitquit\n", "graceful POST", t)
        check(time.time() - t1 < 4, "graceful wait cut short when the process left", t)
        h = t.checkpoint()["health"]
        check(h["healthy"] and h["attempts"] >= 2, "health counters %r" % h, t)
    finally:
        t.cleanup()


def case_http_health_fails(binary):
    port = free_port()
    t = Task(binary, {"processes": [{"name": "web", "cmdline":
        "exec python3 server.py {{thermos.ports[health]}} 0 500"}],
        "health_check_config": {"initial_interval_secs": 0.5, "interval_secs": 0.5,
                                "max_consecutive_failures": 2},
        "lifecycle": {}},
        ports={"health": port}, files={"server.py": SERVER}).start()
    try:
        last = t.wait()
        check(last["status"] == "FAILED", "failed", t)
        check(last["message"] == "health check failed 3 times: expected 'ok', got HTTP 500",
              "message %r" % last["message"], t)
        check("RUNNING" not in t.statuses(), "never RUNNING", t)
    finally:
        t.cleanup()


def case_shell_health(binary):
    t = Task(binary, {"processes": [{"name": "w", "cmdline": "sleep 0.8; touch ready; sleep 1000"}],
        "health_check_config": {"health_checker": {"shell": {"shell_command":
            "test -f ready && test {{mesos.instance}} = 0"}},
            "initial_interval_secs": 2, "interval_secs": 0.3}}).start()
    try:
        check(t.wait_status("RUNNING", 10), "RUNNING", t)
        t.proc.send_signal(signal.SIGINT)
        last = t.wait()
        check(last["status"] == "KILLED", "killed", t)
    finally:
        t.cleanup()


def case_invalid(binary):
    for data, msg in [
        ({"processes": [{"name": "a", "cmdline": "x"}, {"name": "b", "cmdline": "y"}],
          "constraints": [{"order": ["a", "b"]}, {"order": ["b", "a"]}]},
         "order constraints have a cycle through 'a'"),
        ({"processes": []}, "task has no processes"),
        ({"processes": [{"name": "a", "cmdline": "echo {{thermos.ports[nope]}}"}]},
         "process 'a': unknown reference '{{thermos.ports[nope]}}'"),
    ]:
        t = Task(binary, data).start()
        try:
            last = t.wait()
            check(t.statuses() == ["STARTING", "FAILED"], "statuses", t)
            check(last["message"] == msg, "message %r" % last["message"], t)
        finally:
            t.cleanup()


def case_rotate(binary):
    t = Task(binary, {"processes": [{"name": "chatty", "cmdline":
        "for i in $(seq 1 400); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done",
        "logger": {"mode": "rotate", "rotate": {"log_size": 4096, "backups": 2}}}]}).start()
    try:
        last = t.wait()
        check(last["status"] == "FINISHED", "finished", t)
        d = os.path.join(t.sandbox, ".logs", "chatty", "0")
        names = sorted(os.listdir(d))
        check("stdout.1" in names and "stdout.2" in names and "stdout.3" not in names,
              "rotated files %r" % names, t)
        check(os.path.getsize(os.path.join(d, "stdout.1")) >= 4096, "rotated at size", t)
        check("line-400-" in t.sandbox_file(".logs", "chatty", "0", "stdout"), "last line", t)
    finally:
        t.cleanup()


def case_disk(binary):
    t = Task(binary, {"processes": [{"name": "filler", "cmdline":
        "dd if=/dev/zero of=big bs=1M count=8 2>/dev/null; sync; sleep 30"}]},
        extra={"limits": {"disk_bytes": 4 << 20}, "disk_check_interval_ms": 200}).start()
    try:
        last = t.wait()
        check(last["status"] == "FAILED", "failed", t)
        check(last["message"].startswith("disk limit exceeded: ") and
              last["message"].endswith(" used, limit 4 MiB"), "message %r" % last["message"], t)
    finally:
        t.cleanup()


HOG = "python3 -c 'import time; a = bytearray(200 << 20); time.sleep(30)'"


def case_memory_sampling(binary):
    t = Task(binary, {"processes": [{"name": "hog", "cmdline": HOG}]},
             extra={"limits": {"ram_bytes": 64 << 20}, "memory_enforcement": "sampling"}).start()
    try:
        last = t.wait()
        check(last["status"] == "FAILED", "failed", t)
        check(last["message"].startswith("memory limit exceeded: ") and
              last["message"].endswith("used, limit 64 MiB"), "message %r" % last["message"], t)
        check("sampling" in t.log(), "logged the sampling", t)
    finally:
        t.cleanup()


def case_memory_cgroup(binary):
    base = "/sys/fs/cgroup/memory"
    if not os.access(base, os.W_OK):
        print("    SKIP: %s is not writable" % base)
        return
    cg = os.path.join(base, "borealis-exec-smoke-%d" % os.getpid())
    try:
        os.mkdir(cg)
    except OSError as e:
        print("    SKIP: cannot create a memory cgroup: %s" % e)
        return
    try:
        with open(os.path.join(cg, "memory.limit_in_bytes"), "w") as f:
            f.write(str(64 << 20))
        sw = os.path.join(cg, "memory.memsw.limit_in_bytes")
        if os.path.exists(sw):
            try:
                with open(sw, "w") as f:
                    f.write(str(64 << 20))
            except OSError:
                pass
        t = Task(binary, {"processes": [{"name": "hog", "cmdline": HOG}]},
                 extra={"limits": {"ram_bytes": 64 << 20}, "cgroups": {"memory": cg},
                        "memory_enforcement": "cgroup"}).start()
        try:
            last = t.wait()
            check(last["status"] == "FAILED", "failed", t)
            check(last["message"] == "memory limit exceeded: process 'hog' killed by the OOM "
                  "killer (limit 64 MiB)", "message %r" % last["message"], t)
        finally:
            t.cleanup()
    finally:
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError:
                time.sleep(0.1)


CASES = [case_finished, case_ordering, case_retries_fail, case_ephemeral_final,
         case_double_fork_kill, case_kill_escalates, case_http_health, case_http_health_fails, case_shell_health,
         case_invalid, case_rotate, case_disk, case_memory_sampling, case_memory_cgroup]


def main():
    args = sys.argv[1:]
    only = None
    if "-k" in args:
        i = args.index("-k")
        only = args[i + 1]
        del args[i:i + 2]
    binaries = args
    if not binaries:
        bd = os.environ.get("BO_BUILD_DIR", os.path.join(SRC, "build-exec"))
        binaries = [os.path.join(bd, "src", "executor", "borealis-executor")]
    failed = 0
    for b in binaries:
        print("== %s" % b)
        for case in CASES:
            if only and only not in case.__name__:
                continue
            t0 = time.time()
            try:
                case(os.path.abspath(b))
                print("  ok   %-28s %.1fs" % (case.__name__[5:], time.time() - t0))
            except AssertionError as e:
                failed += 1
                print("  FAIL %-28s %s" % (case.__name__[5:], e))
    print("%d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
