#!/usr/bin/env python3
"""borealis-agent and borealis-executor end to end: a real scheduler, a real
agent, real executors running real processes, everything on loopback. The
user's view: a job goes in through the scheduler's API, processes run on
the host, statuses and files come back out."""

import json
import os
import signal
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from agentlib import RealAgent, job, latest_message, proc  # noqa: E402
from harness import Skip, check, main  # noqa: E402
from schedlib import Scheduler, replicas, wait_for  # noqa: E402

FAST = ["--agent-timeout", "3s", "--agent-poll-hold", "500ms", "--initial-flapping-delay", "1s",
        "--max-flapping-delay", "2s", "--flapping-threshold", "1s", "--kill-retry", "2s"]
TERMINAL = ("FINISHED", "FAILED", "KILLED", "LOST")


def cluster(c, agent_args=(), **agent_kw):
    s = Scheduler(c, args=FAST).start()
    a = RealAgent(c, s.url, args=agent_args, **agent_kw).start()
    return s, a


def create(s, j):
    s.ok("POST", "/api/v1/jobs", j)


def tasks_of(s, name, role="www", env="prod"):
    return s.tasks(role=role, environment=env, job_name=name)


def wait_status(s, name, status, timeout=30, count=1):
    return wait_for(f"{count} task(s) of '{name}' {status}",
                    lambda: [t for t in tasks_of(s, name) if t["status"] == status]
                    if sum(t["status"] == status for t in tasks_of(s, name)) >= count else None,
                    timeout)


def task_id(t):
    return t["assigned_task"]["task_id"]


def kill_job(s, name, role="www", env="prod"):
    s.ok("POST", f"/api/v1/jobs/{role}/{env}/{name}/kill", {})


def sandbox_text(a, t, path):
    st, text = a.tail(task_id(t), path, lines=1000)
    check(st == 200, f"tail {path}: {st} {text}")
    return text


# ------------------------------------------------------------------ tests ----

def test_adhoc_success_and_failure_limit(c):
    s, a = cluster(c)
    create(s, job("ok", [proc("hello", "echo hello from $USER; echo to-stderr >&2")]))
    t = wait_status(s, "ok", "FINISHED")[0]
    statuses = [e["status"] for e in t["task_events"]]
    check(statuses[-1] == "FINISHED" and "RUNNING" in statuses, f"events {statuses}")
    out = sandbox_text(a, t, ".logs/hello/0/stdout")
    check("hello from" in out, f"stdout: {out!r}")
    check("to-stderr" in sandbox_text(a, t, ".logs/hello/0/stderr"), "stderr log")
    # a failing ad-hoc job is retried up to max_task_failures, then left FAILED
    create(s, job("bad", [proc("fail", "echo trying; exit 3", max_failures=1)],
                  max_task_failures=2))
    failed = wait_status(s, "bad", "FAILED", count=2, timeout=40)
    time.sleep(2)
    ts = tasks_of(s, "bad")
    check(len(ts) == 2 and all(x["status"] == "FAILED" for x in ts), f"tasks {ts}")
    msg = latest_message(failed[0])
    check("exit code 3" in msg or "exit status 3" in msg, f"failure message: {msg!r}")
    a.stop_clean()


def test_service_that_exits_is_restarted(c):
    s, a = cluster(c)
    create(s, job("svc", [proc("short", "echo up; sleep 0.5")], service=True))
    wait_for("the service to be rescheduled after finishing",
             lambda: len(tasks_of(s, "svc")) >= 3, 40)
    ts = tasks_of(s, "svc")
    check(any(t["status"] == "FINISHED" for t in ts), f"a finished run: {ts}")
    kill_job(s, "svc")
    wait_for("the service killed",
             lambda: all(t["status"] in TERMINAL for t in tasks_of(s, "svc")), 30)


def test_ordering_parallel_and_final(c):
    s, a = cluster(c)
    # a then b in order; p1 and p2 in parallel (both sleep 1 s)
    procs = [proc("a", "echo a >> order.txt"), proc("b", "echo b >> order.txt"),
             proc("p1", "date +%s.%N > p1.start; sleep 1"),
             proc("p2", "date +%s.%N > p2.start; sleep 1")]
    create(s, job("graph", procs, order=[["a", "b"]]))
    t = wait_status(s, "graph", "FINISHED", timeout=30)[0]
    check(sandbox_text(a, t, "order.txt") == "a\nb\n", "a ran before b")
    p1 = float(sandbox_text(a, t, "p1.start"))
    p2 = float(sandbox_text(a, t, "p2.start"))
    check(abs(p1 - p2) < 0.9, f"p1 and p2 ran in parallel ({p1} vs {p2})")
    a.stop_clean()


def test_ephemeral_daemon_with_final_process(c):
    s, a = cluster(c)
    procs = [proc("daemon", "sleep 1000", ephemeral=True, daemon=True),
             proc("work", "echo work done > work.txt"),
             proc("cleanup", "echo final ran > final.txt", final=True)]
    create(s, job("eph", procs))
    start = time.monotonic()
    t = wait_status(s, "eph", "FINISHED", timeout=30)[0]
    check(time.monotonic() - start < 20, "did not wait for the ephemeral daemon")
    check(sandbox_text(a, t, "final.txt") == "final ran\n", "the final process ran")


def test_double_forked_daemon_gets_sigterm(c):
    s, a = cluster(c)
    daemon = ("(setsid bash -c 'trap \"echo got TERM > $PWD/term.txt; exit 0\" TERM; "
              "echo $$ > $PWD/daemon.pid; while true; do sleep 0.1; done' &); sleep 1000")
    create(s, job("fork", [proc("forker", daemon)], service=True))
    t = wait_status(s, "fork", "RUNNING")[0]
    wait_for("the daemon pid", lambda: a.tail(task_id(t), "daemon.pid")[1].strip().isdigit(), 10)
    pid = int(sandbox_text(a, t, "daemon.pid"))
    kill_job(s, "fork")
    wait_status(s, "fork", "KILLED", timeout=40)
    check("got TERM" in sandbox_text(a, t, "term.txt"), "the double-forked daemon got SIGTERM")
    wait_for("the daemon gone", lambda: not os.path.exists(f"/proc/{pid}"), 10)



def test_double_forked_daemon_gets_the_finalization_wait(c):
    # Its TERM handler takes half a second: the executor must not SIGKILL it
    # as soon as the task's own processes are gone.
    s, a = cluster(c)
    daemon = ("(setsid bash -c 'trap \"sleep 0.5; echo got TERM > $PWD/term.txt; exit 0\" TERM; "
              "echo $$ > $PWD/daemon.pid; while true; do sleep 0.1; done' &); sleep 1000")
    create(s, job("slowfork", [proc("forker", daemon)], service=True))
    t = wait_status(s, "slowfork", "RUNNING")[0]
    wait_for("the daemon pid", lambda: a.tail(task_id(t), "daemon.pid")[1].strip().isdigit(), 10)
    kill_job(s, "slowfork")
    wait_status(s, "slowfork", "KILLED", timeout=40)
    check("got TERM" in sandbox_text(a, t, "term.txt"),
          "the daemon's slow TERM handler ran to its end before the task was KILLED")

HEALTH_SERVER = r"""
python3 - {{thermos.ports[health]}} "$MODE" <<'PY'
import http.server, sys, time, os
port, mode = int(sys.argv[1]), sys.argv[2]
time.sleep(float(os.environ.get("DELAY", "0")))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = (200, b"ok") if mode == "good" else (500, b"sick")
        self.send_response(code); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        if self.path == "/quitquitquit":
            open("quit.txt", "w").write("asked to quit\n")
        self.send_response(200); self.end_headers()
        if self.path in ("/quitquitquit", "/abortabortabort"):
            os._exit(0)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
"""


def health(initial=1, interval=0.5, fails=2, successes=2):
    return {"health_checker": {"http": {"endpoint": "/health", "expected_response": "ok"}},
            "initial_interval_secs": initial, "interval_secs": interval,
            "max_consecutive_failures": fails, "min_consecutive_successes": successes,
            "timeout_secs": 1}


def test_health_check_gates_running_and_ports_are_real(c):
    s, a = cluster(c)
    cmd = "export MODE=good DELAY=2; " + HEALTH_SERVER.strip()
    create(s, job("web", [proc("web", cmd)], service=True, ports=("health",),
                  health=health(initial=5)))
    t = wait_status(s, "web", "STARTING", timeout=20)[0]
    # not RUNNING while the server sleeps its 2 s
    time.sleep(1)
    check(tasks_of(s, "web")[0]["status"] == "STARTING", "STARTING until healthy")
    t = wait_status(s, "web", "RUNNING", timeout=20)[0]
    port = t["assigned_task"]["assigned_ports"]["health"]
    check(31000 <= port <= 31999, f"port {port} from the agent's range")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
    check(body == b"ok", "the named port was substituted and is reachable")
    # graceful kill: /quitquitquit on the health port first
    kill_job(s, "web")
    wait_status(s, "web", "KILLED", timeout=30)
    check("asked to quit" in sandbox_text(a, t, "quit.txt"), "/quitquitquit was called")


def test_failing_health_check_fails_the_task(c):
    s, a = cluster(c)
    cmd = "export MODE=bad; " + HEALTH_SERVER.strip()
    create(s, job("sick", [proc("web", cmd)], ports=("health",),
                  health=health(initial=0.5, interval=0.3, fails=2, successes=1)))
    t = wait_status(s, "sick", "FAILED", timeout=30)[0]
    check("health" in latest_message(t).lower(), f"message: {latest_message(t)!r}")


def test_agent_killed_under_load_and_restarted(c):
    s, a = cluster(c)
    n = 20
    create(s, job("load", [proc("sleep", "echo $$ > pid.txt; sleep 1000")], service=True,
                  instances=n))
    running = wait_status(s, "load", "RUNNING", count=n, timeout=60)
    # RUNNING comes as the process starts; its pid file a moment later
    for t in running:
        wait_for("pid.txt", lambda: a.tail(task_id(t), "pid.txt")[1].strip().isdigit(), 10)
    pids = {task_id(t): int(sandbox_text(a, t, "pid.txt")) for t in running}
    a.kill9()
    time.sleep(1)
    # the tasks' processes live on without the agent
    for tid, pid in pids.items():
        check(os.path.exists(f"/proc/{pid}"), f"task {tid} survived the agent")
    a.start()
    time.sleep(4)  # past the scheduler's agent timeout of 3 s
    ts = [t for t in tasks_of(s, "load") if t["status"] not in TERMINAL]
    check(len(ts) == n and all(t["status"] == "RUNNING" for t in ts),
          f"all {n} still RUNNING after the agent restart: {[t['status'] for t in ts]}")
    check({task_id(t) for t in ts} == set(pids), "the same tasks, not replacements")
    # and the re-attached executors still obey
    kill_job(s, "load")
    wait_for("all killed", lambda: sum(t["status"] == "KILLED"
                                       for t in tasks_of(s, "load")) == n, 60)
    for pid in pids.values():
        wait_for(f"pid {pid} gone", lambda: not os.path.exists(f"/proc/{pid}"), 10)
    a.stop_clean()


def test_killed_executor_is_lost_and_rescheduled(c):
    s, a = cluster(c)
    create(s, job("victim", [proc("sleep", "sleep 1000")], service=True))
    t = wait_status(s, "victim", "RUNNING")[0]
    pid = a.task(task_id(t))["pid"]
    check(pid > 0, "executor pid known")
    os.kill(pid, signal.SIGKILL)
    lost = wait_status(s, "victim", "LOST", timeout=20)[0]
    check("executor" in latest_message(lost), f"message {latest_message(lost)!r}")
    wait_for("a replacement RUNNING",
             lambda: any(x["status"] == "RUNNING" and task_id(x) != task_id(t)
                         for x in tasks_of(s, "victim")), 30)
    a.stop_clean()


def test_memory_hog_is_stopped_by_its_limit(c):
    s, a = cluster(c)
    iso = a.isolation()
    if "not writable" in iso or "turned off" in iso or "no cgroup" in iso.lower():
        print(f"  note: no cgroups here ({iso}); the executor samples RSS instead")
    hog = "python3 -c 'x = bytearray(400 * 1024 * 1024); import time; time.sleep(60)'"
    create(s, job("hog", [proc("hog", hog)], ram=64))
    t = wait_status(s, "hog", "FAILED", timeout=40)[0]
    msg = latest_message(t)
    check("memory" in msg.lower(), f"failure names the memory limit: {msg!r}")


def test_sandbox_escapes_are_refused(c):
    s, a = cluster(c)
    create(s, job("files", [proc("mk", "mkdir -p sub && echo inside > sub/in.txt && "
                                 "ln -s /etc etc-link && ln -s sub/in.txt ok-link && sleep 1000")],
                  service=True))
    t = wait_status(s, "files", "RUNNING")[0]
    tid = task_id(t)
    wait_for("files made", lambda: a.get(f"/api/v1/tasks/{tid}/file?path=ok-link")[0] == 200, 10)
    st, listing, _ = a.get(f"/api/v1/tasks/{tid}/browse?path=")
    check(st == 200 and "sub" in [e["name"] for e in listing], f"browse: {st} {listing}")
    st, text, _ = a.get(f"/api/v1/tasks/{tid}/file?path=sub/in.txt")
    check(st == 200 and text == "inside\n", f"read inside: {st} {text!r}")
    for bad in ["../../../etc/passwd", "/etc/passwd", "etc-link/passwd", "sub/../../x",
                "etc-link"]:
        for op in ("file", "browse", "tail"):
            st, j, _ = a.get(f"/api/v1/tasks/{tid}/{op}?path={bad}")
            check(st in (403, 404) and "root:" not in json.dumps(j),
                  f"{op} {bad!r} refused: {st} {j}")
            if op == "file" and bad in ("/etc/passwd", "etc-link/passwd"):
                check(st == 403, f"{op} {bad!r} is 403: {st}")
    st, _, _ = a.get("/api/v1/tasks/no-such-task/browse?path=")
    check(st == 404, "unknown task is 404")
    st, _, _ = a.get("/health")
    check(st == 200, "agent health")
    st, text, _ = a.get("/metrics")
    check(st == 200 and "agent_launches_total" in text, "agent metrics")
    a.stop_clean()



def test_scheduler_restart_and_new_commands(c):
    s, a = cluster(c)
    create(s, job("before", [proc("sleep", "sleep 1000")], service=True))
    t = wait_status(s, "before", "RUNNING")[0]
    s.stop()
    s.start()
    # the agent comes back to the restarted scheduler; its task is still there
    wait_for("the agent registered again",
             lambda: a.get("/api/v1/agent")[1].get("registered") and
             s.metric("agents_registered") == 1, 30)
    check(tasks_of(s, "before")[0]["status"] == "RUNNING", "the task survived the restart")
    # commands of the new session reach the agent (sequence numbers restart)
    create(s, job("after", [proc("sleep", "sleep 1000")], service=True))
    wait_status(s, "after", "RUNNING", timeout=20)
    kill_job(s, "before")
    wait_status(s, "before", "KILLED", timeout=20)
    check(a.task(task_id(t))["status"] == "KILLED", "the agent saw the kill")
    a.stop_clean()


def test_thermos_profile_is_sourced(c):
    # Aurora's end-to-end check: a first process writes .thermos_profile, a
    # later one sees what it exports (BASH_ENV), in a clean environment.
    s, a = cluster(c)
    procs = [proc("setup_env", "echo 'export GREETING=hello' > .thermos_profile"),
             proc("read_env", "echo \"$GREETING\"; env | sort > env.txt")]
    create(s, job("profile", procs, order=[["setup_env", "read_env"]]))
    t = wait_status(s, "profile", "FINISHED")[0]
    check(sandbox_text(a, t, ".logs/read_env/0/stdout") == "hello\n", "profile sourced")
    env = dict(line.split("=", 1) for line in sandbox_text(a, t, "env.txt").splitlines()
               if "=" in line)
    check(env.get("HOME", "").endswith(task_id(t)), f"HOME is the sandbox: {env.get('HOME')}")
    leaked = [k for k in env if k.startswith(("BO_", "ASAN", "PYTHON"))]
    check(not leaked, f"the agent's environment does not leak into tasks: {leaked}")


def test_snoozed_health_checks_do_not_fail_the_task(c):
    s, a = cluster(c)
    # unhealthy server, but .healthchecksnooze exists before checks start
    cmd = "touch .healthchecksnooze; export MODE=bad; " + HEALTH_SERVER.strip()
    create(s, job("snooze", [proc("web", cmd)], service=True, ports=("health",),
                  health=health(initial=0.5, interval=0.3, fails=1, successes=1)))
    wait_status(s, "snooze", "STARTING", timeout=20)
    time.sleep(3)
    ts = tasks_of(s, "snooze")
    check(len(ts) == 1 and ts[0]["status"] == "STARTING",
          f"snoozed checks neither pass nor fail the task: {[t['status'] for t in ts]}")


def test_agent_follows_a_failover(c):
    # three replicas; the agent knows all three URLs and ends up at the leader
    ss, leader = replicas(c, FAST)
    a = RealAgent(c, [x.url for x in ss]).start()
    check(a.get("/api/v1/agent")[1]["scheduler"] == leader.url, "the agent found the leader")
    create(leader, job("ha", [proc("sleep", "sleep 1000")], service=True))
    t = wait_status(leader, "ha", "RUNNING")[0]
    leader.proc.kill9()
    rest = [x for x in ss if x is not leader]
    new = wait_for("a new leader", lambda: [x for x in rest
                                             if x.get("/leaderhealth")[0] == 200], 30)[0]
    wait_for("the agent at the new leader",
             lambda: a.get("/api/v1/agent")[1]["scheduler"] == new.url and
             a.get("/api/v1/agent")[1]["registered"], 30)
    # the task ran on through the failover (the agent was back well within
    # the agent timeout: never PARTITIONED), and the new leader's commands arrive
    wait_status(new, "ha", "RUNNING", timeout=10)
    statuses = [e["status"] for e in tasks_of(new, "ha")[0]["task_events"]]
    check("PARTITIONED" not in statuses, f"the agent came back in time: {statuses}")
    kill_job(new, "ha")
    wait_status(new, "ha", "KILLED", timeout=30)
    check(a.task(task_id(t))["status"] == "KILLED", "the agent killed it")
    a.stop_clean()


def test_tasks_run_as_the_role_user(c):
    if os.geteuid() != 0:
        raise Skip("needs root to switch users")
    import pwd
    import subprocess
    role = "boe2erole"
    created = False
    try:
        pwd.getpwnam(role)
    except KeyError:
        created = True
    c.on_cleanup(lambda: created and subprocess.run(["userdel", role], capture_output=True))
    s = Scheduler(c, args=FAST).start()
    a = RealAgent(c, s.url)
    a.argv.remove("--no-setuid")
    a.start()
    create(s, job("who", [proc("who", "id -un; echo $HOME $USER $LOGNAME; touch mine")],
                  role=role))
    t = wait_for("the task FINISHED", lambda: [x for x in s.tasks(role=role)
                                                 if x["status"] == "FINISHED"], 30)[0]
    out = sandbox_text(a, t, ".logs/who/0/stdout").split("\n")
    check(out[0] == role, f"ran as {out[0]!r}, not the role's user")
    check(out[1].endswith(f" {role} {role}"), f"HOME USER LOGNAME: {out[1]!r}")
    st = os.stat(os.path.join(a.work, "sandboxes", task_id(t), "mine"))
    check(st.st_uid == pwd.getpwnam(role).pw_uid, "the sandbox file belongs to the role user")
    a.stop_clean()


def test_full_disk_fails_the_launch_cleanly(c):
    small = c.mount_tmpfs("64k")
    if small is None:
        raise Skip("cannot mount a small tmpfs here")
    s = Scheduler(c, args=FAST).start()
    a = RealAgent(c, s.url, work=small).start()
    # fill the agent's disk
    with open(os.path.join(small, "filler"), "wb") as f:
        try:
            f.write(b"x" * (128 << 10))
        except OSError:
            pass
    create(s, job("nospace", [proc("p", "echo hi")]))
    t = wait_status(s, "nospace", "FAILED", timeout=30)[0]
    msg = latest_message(t)
    check("launch failed" in msg and "space" in msg, f"message names the full disk: {msg!r}")
    # room again: the next run goes through
    os.unlink(os.path.join(small, "filler"))
    st, j, _ = a.get("/api/v1/agent")
    check(st == 200 and j["registered"], "the agent carried on")


if __name__ == "__main__":
    main()
