"""End-to-end test harness: real binaries, loopback ports, temporary directories.

Every process started through a Cluster is put in its own session and is
killed (the whole process group) when the test ends, passes or fails; every
temporary directory is removed unless BO_KEEP_TMP=1. Waits are bounded: each
helper takes a timeout and fails the test when it runs out.

A test file defines functions named test_* taking a Cluster, and calls main().
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BUILD = os.environ.get("BO_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
SOURCE = os.environ.get("BO_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def binary(name):
    for cand in (os.path.join(BUILD, name), os.path.join(BUILD, "tests", name),
                 os.path.join(BUILD, "bench", name), os.path.join(BUILD, "src", "agent", name),
                 os.path.join(BUILD, "src", "executor", name),
                 os.path.join(BUILD, "src", "client", name)):
        if os.path.exists(cand):
            return cand
    raise TestFailure(f"binary '{name}' not found under {BUILD}")


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_given = set()


def free_port():
    """A TCP port free on 127.0.0.1 right now, for a daemon to listen on.

    Not one the kernel would pick: a port from bind(0) lies in the ephemeral
    range, where any outgoing connection of any test may take it before the
    daemon binds (CI lost a run that way). The ports here come from below that
    range and outside 31000-31999, the task ports the tests' agents offer; a
    port is handed out once per process."""
    lo_eph, hi_eph = _ephemeral_range()
    ranges = [r for r in ((20000, 30999), (32000, lo_eph - 1), (hi_eph + 1, 65535))
              if r[1] - r[0] >= 1000 and (r[1] < lo_eph or r[0] > hi_eph)]
    rng = random.Random()
    for _ in range(200):
        lo, hi = rng.choice(ranges) if ranges else (1024, 65535)
        port = rng.randint(lo, hi)
        if port in _given or 31000 <= port <= 31999:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise TestFailure("no free port found on 127.0.0.1")


class Proc:
    """A running binary whose stdout lines are collected by a thread."""

    def __init__(self, args, cwd=None, env=None, name=None):
        self.args = [str(a) for a in args]
        self.name = name or os.path.basename(self.args[0])
        self.lines = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stderr_path = tempfile.mktemp(prefix="bo-stderr-")
        self.stderr_file = open(self.stderr_path, "wb")
        self.p = subprocess.Popen(self.args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                  stderr=self.stderr_file, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.p.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def output(self):
        with self.lock:
            return list(self.lines)

    def stderr(self):
        self.stderr_file.flush()
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_line(self, pred, timeout):
        """Wait until a stdout line satisfies pred; return it."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(f"{self.name}: no matching line within {timeout}s; "
                                      f"last lines {self.lines[-5:]}; stderr: {self.stderr()[-800:]}")
                if self.p.poll() is not None and not self.reader.is_alive():
                    raise TestFailure(f"{self.name}: exited {self.p.returncode} before a "
                                      f"matching line; stderr: {self.stderr()[-800:]}")
                self.cond.wait(min(left, 0.2))

    def wait(self, timeout):
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"{self.name}: still running after {timeout}s")
        self.reader.join(timeout=5)
        return rc

    def signal(self, sig):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.p.wait(timeout=10)
        self.reader.join(timeout=5)

    SANITIZER_MARKS = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer")

    def cleanup(self):
        """Kill, reap, remove the stderr file; return a sanitizer report the
        process printed (a daemon that crashed under ASan shows up here even
        when the test only saw a refused connection), or None."""
        self.signal(signal.SIGKILL)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        err = self.stderr()
        report = None
        if any(m in err for m in self.SANITIZER_MARKS):
            report = f"{self.name}: sanitizer report:\n{err[-4000:]}"
        self.stderr_file.close()
        try:
            os.unlink(self.stderr_path)
        except OSError:
            pass
        return report


class Cluster:
    """Resources of one test: processes, temporary directories, mounts."""

    def __init__(self, name):
        self.name = name
        self.procs = []
        self.mounts = []
        self.cleanups = []  # callables run first at cleanup
        self.reports = []  # sanitizer reports found in the processes' stderr
        self.root = tempfile.mkdtemp(prefix=f"bo-e2e-{name}-")

    def path(self, *parts):
        p = os.path.join(self.root, *parts)
        return p

    def mkdir(self, *parts):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        return p

    def start(self, args, **kw):
        proc = Proc(args, **kw)
        self.procs.append(proc)
        return proc

    def run(self, args, timeout=120, expect=None):
        """Run to completion; return (rc, stdout, stderr)."""
        try:
            r = subprocess.run([str(a) for a in args], capture_output=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"{args[0]}: timed out after {timeout}s")
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if expect is not None and r.returncode != expect:
            raise TestFailure(f"{' '.join(map(str, args))}: exit {r.returncode}, expected "
                              f"{expect}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}")
        return r.returncode, out, err

    def mount_tmpfs(self, size):
        """A small file system of our own, for disk-full tests; None if the
        machine does not let us mount one."""
        p = self.mkdir(f"tmpfs{len(self.mounts)}")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", p],
                           capture_output=True)
        if r.returncode != 0:
            return None
        self.mounts.append(p)
        return p

    def on_cleanup(self, fn):
        self.cleanups.append(fn)

    def cleanup(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                print(f"  cleanup: {e}")
        for p in self.procs:
            report = p.cleanup()
            if report:
                self.reports.append(report)
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        if os.environ.get("BO_KEEP_TMP") != "1":
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print(f"  kept {self.root}")


class Skip(Exception):
    pass


def main(tests=None):
    """Run the test_* functions of the calling module (or `tests`)."""
    if tests is None:
        mod = sys.modules["__main__"]
        tests = [getattr(mod, n) for n in sorted(dir(mod)) if n.startswith("test_")]
        tests.sort(key=lambda f: f.__code__.co_firstlineno)
    only = os.environ.get("BO_TEST")
    passed = failed = skipped = 0
    for t in tests:
        if only and only not in t.__name__:
            continue
        c = Cluster(t.__name__)
        start = time.monotonic()
        try:
            t(c)
            passed += 1
            print(f"PASS {t.__name__} ({time.monotonic() - start:.1f}s)", flush=True)
        except Skip as e:
            skipped += 1
            print(f"SKIP {t.__name__}: {e}", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print(f"FAIL {t.__name__} ({time.monotonic() - start:.1f}s): {e}", flush=True)
            traceback.print_exc()
        finally:
            c.cleanup()
            if c.reports:
                failed += 1
                print(f"FAIL {t.__name__}: a process printed a sanitizer report", flush=True)
                for r in c.reports:
                    print(r, flush=True)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)
