#!/usr/bin/env python3
"""The durable store end to end: real raft on real disk, real processes.

bo-storage-writer drives the storage library as the scheduler does; these
tests kill it, corrupt its files, fill its disk and run three replicas of it.
"""

import fcntl
import glob
import os
import random
import re
import shutil
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Skip, check, binary, free_port, main  # noqa: E402

WRITER = binary("bo-storage-writer")


def writer(c, data_dir, *args, address=None):
    address = address or f"127.0.0.1:{free_port()}"
    return [WRITER, "--data-dir", data_dir, "--address", address] + [str(a) for a in args]


def count(c, data_dir, *opts):
    _, out, _ = c.run(writer(c, data_dir, *opts, "count"), expect=0)
    m = re.search(r"TASKS (\d+) INDEX (\d+) DIGEST ([0-9a-f]+)", out)
    check(m, f"count printed {out!r}")
    return int(m.group(1)), int(m.group(2)), m.group(3)


def acks(lines):
    return [int(l.split()[1]) for l in lines if l.startswith("ACK ")]


def write_ids(path, seqs):
    with open(path, "w") as f:
        for s in seqs:
            f.write(f"t-{s}\n")


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def wait_converged(procs, timeout=60):
    """The last "STATE <index> <digest>" line of each replica, once all report
    one digest, or when time runs out. (Applied indexes may differ by raft's
    own entries, which only the leader notes.)"""
    states = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, p in enumerate(procs):
            st = [l for l in p.output() if l.startswith("STATE ")]
            if st:
                states[i] = st[-1]
        if len(states) == len(procs) and len({s.split()[2] for s in states.values()}) == 1:
            break
        time.sleep(0.2)
    return states


def test_write_restart_replay(c):
    d = c.mkdir("data")
    _, out, _ = c.run(writer(c, d, "write", 300), expect=0)
    check(len(acks(out.splitlines())) == 300, "300 writes acknowledged")
    n, index, digest = count(c, d)
    check(n == 300, f"300 tasks after replay, got {n}")
    n2, index2, digest2 = count(c, d)
    check((n2, digest2) == (n, digest), "the same state after another restart")
    check(index2 >= index, "applied index does not go back")


def test_snapshot_then_restore(c):
    d = c.mkdir("data")
    c.run(writer(c, d, "--snapshot-threshold", 100, "write", 1000), expect=0)
    snaps = [p for p in glob.glob(os.path.join(d, "snapshot-*")) if not p.endswith(".meta")]
    check(snaps, "threshold snapshots were written")
    n, _, digest = count(c, d, "--snapshot-threshold", 100)
    check(n == 1000, f"1000 tasks restored from snapshot + log, got {n}")
    # On demand, and with each codec: the state read back is the same.
    for codec in ("zlib", "none", "zstd"):
        _, out, _ = c.run(writer(c, d, "--codec", codec, "snapshot"), expect=0)
        check("snapshot taken" in out, f"snapshot on demand ({codec}): {out!r}")
        n2, _, digest2 = count(c, d)
        check((n2, digest2) == (n, digest), f"state after a {codec} snapshot is unchanged")


FS_IOC_FIEMAP = 0xC020660B
FIEMAP_EXTENT_UNWRITTEN = 0x800


def unwritten_extents(path):
    """Extents of `path` the file system marks unwritten, or None without
    FIEMAP."""
    n = 64
    req = bytearray(struct.pack("QQIIII", 0, 2**64 - 1, 1, 0, n, 0) + bytes(56 * n))
    with open(path, "rb") as f:
        try:
            fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, req)
        except OSError:
            return None
    mapped = struct.unpack_from("I", req, 20)[0]
    return sum(1 for i in range(mapped)
               if struct.unpack_from("I", req, 32 + 56 * i + 40)[0] & FIEMAP_EXTENT_UNWRITTEN)


def direct_io(d):
    probe = os.path.join(d, "probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600))
    except OSError:
        return False
    os.unlink(probe)
    return True


def test_segments_zero_filled_and_snapshot_written_back(c):
    """raft's log segments are written with zeros before use (segfill.h) and a
    snapshot file over 1 MiB is written a piece at a time (pacewrite.h), in
    the real process: it says so, no segment keeps an unwritten extent where
    the file system has them, and the state reads back the same."""
    d = c.mkdir("data")
    c.run(writer(c, d, "--snapshot-threshold", 1_000_000, "--inflight", 64, "write", 30_000),
          expect=0)
    n, _, digest = count(c, d)
    # Without compression or dedup 30,000 tasks make a file of about 2 MiB.
    _, out, _ = c.run(writer(c, d, "--codec", "none", "--no-dedup", "snapshot"), expect=0)
    m = re.search(r"SHIMS FILLED (\d+) PACED (\d+)", out)
    check(m, f"the writer reports its shims: {out!r}")
    check(int(m.group(2)) >= 1, f"the snapshot file was written in pieces: {out!r}")
    snaps = [p for p in glob.glob(os.path.join(d, "snapshot-*")) if not p.endswith(".meta")]
    check(snaps and os.path.getsize(max(snaps, key=os.path.getmtime)) > 1 << 20,
          "the snapshot file is over 1 MiB")
    n2, _, digest2 = count(c, d)
    check((n2, digest2) == (n, digest), "the state read back from the paced snapshot is the same")
    if not direct_io(d):
        raise Skip("no direct I/O where the test's files are: segments are not filled")
    check(int(m.group(1)) >= 1, f"raft's segments were written with zeros: {out!r}")
    control = os.path.join(d, "control")
    with open(control, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, 1 << 20)
    if not unwritten_extents(control):
        raise Skip("this file system leaves no unwritten extents to compare with")
    os.unlink(control)
    segs = [p for p in glob.glob(os.path.join(d, "*"))
            if re.fullmatch(r"open-\d+|\d{16}-\d{16}", os.path.basename(p))]
    check(segs, "raft left segment files")
    for p in segs:
        check(unwritten_extents(p) == 0, f"{os.path.basename(p)} has no unwritten extent")


def test_kill9_loses_no_acknowledged_write(c):
    d = c.mkdir("data")
    rng = random.Random(7)
    acked = []
    rounds = 8
    for r in range(rounds):
        # Odd rounds hand every committed entry to the applier thread
        # (BO_APPLIER=all); even ones let a light load be applied on the loop.
        env = dict(os.environ, BO_APPLIER="all") if r % 2 else None
        p = c.start(writer(c, d, "--snapshot-threshold", 3000, "--start", r * 1_000_000,
                           "write", 1_000_000), env=env)
        p.wait_line(lambda l: l.startswith("ACK "), timeout=60)
        time.sleep(rng.uniform(0.2, 1.2))
        p.kill9()
        got = acks(p.output())
        check(got, f"round {r}: some writes were acknowledged before the kill")
        acked.extend(got)
    ids = c.path("acked.txt")
    write_ids(ids, acked)
    rc, out, err = c.run(writer(c, d, "check", ids), timeout=300)
    check(rc == 0 and out.startswith("OK"),
          f"every acknowledged write survives {rounds} kills ({len(acked)} writes): "
          f"{out[-500:]} {err[-500:]}")
    n, _, _ = count(c, d)
    check(n >= len(acked), f"{n} tasks stored, {len(acked)} acknowledged")


def closed_segments(d):
    return sorted(p for p in glob.glob(os.path.join(d, "*-*"))
                  if re.fullmatch(r"\d{16}-\d{16}", os.path.basename(p)))


def test_corrupt_segment_refused(c):
    d = c.mkdir("data")
    c.run(writer(c, d, "write", 500), expect=0)
    count(c, d)  # a restart closes the open segment
    segs = closed_segments(d)
    check(segs, f"closed segments exist: {os.listdir(d)}")
    seg = max(segs, key=os.path.getsize)  # the one holding the 500 writes
    check(os.path.getsize(seg) > 4096, f"a segment with entries: {seg}")
    good = c.path("good")
    shutil.copytree(d, good)
    flip_byte(seg, os.path.getsize(seg) // 2)
    rc, out, err = c.run(writer(c, d, "count"))
    check(rc == 1, f"a bit flip in a segment makes open fail (rc {rc}, out {out!r})")
    check("checksum" in err.lower() or "corrupt" in err.lower(),
          f"the error says what is wrong: {err!r}")
    # Truncation in the middle of an entry is refused as well.
    d2 = c.path("trunc")
    shutil.copytree(good, d2)
    seg2 = max(closed_segments(d2), key=os.path.getsize)
    with open(seg2, "r+b") as f:
        f.truncate(os.path.getsize(seg2) - 100)
    rc, out, err = c.run(writer(c, d2, "count"))
    check(rc == 1, f"a truncated segment makes open fail (rc {rc}): {err!r}")


def test_corrupt_snapshot_refused(c):
    d = c.mkdir("data")
    c.run(writer(c, d, "--snapshot-threshold", 100, "write", 300), expect=0)
    snaps = sorted(p for p in glob.glob(os.path.join(d, "snapshot-*"))
                   if not p.endswith(".meta"))
    check(snaps, "a snapshot was written")
    flip_byte(snaps[-1], os.path.getsize(snaps[-1]) - 20)
    rc, out, err = c.run(writer(c, d, "count"))
    check(rc == 1, f"a corrupt snapshot makes open fail (rc {rc}, out {out!r})")
    check("snapshot" in err.lower(), f"the error names the snapshot: {err!r}")


def test_disk_full_fails_writes_and_loses_nothing(c):
    mnt = c.mount_tmpfs("12m")
    if mnt is None:
        raise Skip("cannot mount a tmpfs here (not root?)")
    d = os.path.join(mnt, "data")
    # Small segments: raft must allocate new ones while the disk fills.
    p = c.start(writer(c, d, "--snapshot-threshold", 1_000_000, "--segment-mb", 1,
                       "write", 10_000_000))
    rc = p.wait(timeout=300)
    err = p.stderr()
    check(rc == 1, f"the writer stops with an error when the disk fills (rc {rc})")
    check(rc > 0, "no crash")
    check("space" in err.lower() or "full" in err.lower() or "ioerr" in err.lower()
          or "i/o" in err.lower() or "input/output" in err.lower(),
          f"the error says the disk is full: {err[-600:]!r}")
    acked = acks(p.output())
    check(acked, "writes were acknowledged before the disk filled")
    # Move the data to a roomy disk and check every acknowledged write.
    roomy = c.path("roomy")
    shutil.copytree(d, roomy)
    ids = c.path("acked.txt")
    write_ids(ids, acked)
    rc, out, err = c.run(writer(c, roomy, "check", ids), timeout=300)
    check(rc == 0, f"every acknowledged write is there after a full disk: {out[-300:]} {err[-300:]}")


def test_backup_and_recover_into_new_log(c):
    d = c.mkdir("data")
    b = c.mkdir("backups")
    c.run(writer(c, d, "write", 400), expect=0)
    _, out, _ = c.run(writer(c, d, "--backup-dir", b, "backup"), expect=0)
    name = out.strip().splitlines()[-1]
    check(name.startswith("scheduler-backup-"), f"backup name printed: {out!r}")
    check(os.path.exists(os.path.join(b, name)), "backup file exists")
    check(not [f for f in os.listdir(b) if f.startswith("temp_")], "no temporary file is left")
    n, _, digest = count(c, d)
    fresh = c.mkdir("fresh")
    _, out, _ = c.run(writer(c, fresh, "recover", os.path.join(b, name)), expect=0)
    check("RECOVERED" in out, "recovery committed")
    n2, _, digest2 = count(c, fresh)
    check((n2, digest2) == (n, digest), f"recovered state equals the backed-up one ({n2} vs {n})")


def test_three_replicas_failover(c):
    ports = [free_port() for _ in range(3)]
    peers = []
    for i, port in enumerate(ports):
        peers += ["--peer", f"{i + 1}=127.0.0.1:{port}"]
    dirs = [c.mkdir(f"r{i + 1}") for i in range(3)]

    def start(i, extra=()):
        return c.start(writer(c, dirs[i], "--id", i + 1, *peers, "--snapshot-threshold", 500,
                              "--rate", 300, *extra, "serve",
                              address=f"127.0.0.1:{ports[i]}"), name=f"replica{i + 1}")

    procs = [start(i) for i in range(3)]
    leader = None
    deadline = time.monotonic() + 30
    while leader is None and time.monotonic() < deadline:
        for i, p in enumerate(procs):
            if "ROLE leader" in p.output():
                leader = i
        time.sleep(0.1)
    check(leader is not None, "one replica becomes leader")
    procs[leader].wait_line(lambda l: l.startswith("ACK "), timeout=30)
    # Followers refuse writes and name the leader.
    for i, p in enumerate(procs):
        if i != leader:
            line = p.wait_line(lambda l: l.startswith("FOLLOWER "), timeout=30)
            check("BO_ENOTLEADER" in line and str(ports[leader]) in line,
                  f"a follower's write is refused naming the leader: {line!r}")
    time.sleep(1.5)
    procs[leader].kill9()
    acked = acks(procs[leader].output())
    survivors = [i for i in range(3) if i != leader]
    new_leader = None
    deadline = time.monotonic() + 30
    while new_leader is None and time.monotonic() < deadline:
        for i in survivors:
            if procs[i].output().count("ROLE leader") > 0:
                new_leader = i
        time.sleep(0.1)
    check(new_leader is not None, "a survivor takes over as leader: " + "; ".join(
        f"replica{i + 1}: {[l for l in procs[i].output() if not l.startswith('ACK')][-6:]} "
        f"stderr {procs[i].stderr()[-300:]!r}" for i in survivors))
    procs[new_leader].wait_line(lambda l: l.startswith("ACK "), timeout=30)
    time.sleep(1.0)
    for i in survivors:
        procs[i].signal(signal.SIGTERM)
        procs[i].wait(timeout=30)
    for i in survivors:
        acked += acks(procs[i].output())
    ids = c.path("acked.txt")
    write_ids(ids, acked)
    # All three again, no new writes: the leader checks every acknowledged
    # write, and all replicas converge on the same state.
    procs = [c.start(writer(c, dirs[i], "--id", i + 1, *peers, "--check", ids, "serve",
                            address=f"127.0.0.1:{ports[i]}"), name=f"replica{i + 1}b")
             for i in range(3)]
    line = None
    deadline = time.monotonic() + 60
    while line is None and time.monotonic() < deadline:
        for p in procs:
            found = [l for l in p.output() if l.startswith("CHECK ")]
            if found:
                line = found[0]
        time.sleep(0.1)
    check(line is not None and line.startswith("CHECK OK"),
          f"every acknowledged write ({len(acked)}) survives the leader's death: {line!r}")
    states = wait_converged(procs)
    check(len(states) == 3 and len({s.split()[2] for s in states.values()}) == 1,
          f"the three replicas converge on one state: {states}")


def test_lagging_replica_installs_snapshot(c):
    """A replica that was down while the log moved past a snapshot and its
    trailing entries can only catch up through the leader's snapshot."""
    ports = [free_port() for _ in range(3)]
    peers = []
    for i, port in enumerate(ports):
        peers += ["--peer", f"{i + 1}=127.0.0.1:{port}"]
    dirs = [c.mkdir(f"r{i + 1}") for i in range(3)]

    def start(i, *extra):
        # Threshold 200, trailing 51 entries: a few hundred writes while a
        # replica is down leave it behind the leader's oldest entry. Replicas
        # 2 and 3 hand every entry to their applier thread (BO_APPLIER=all):
        # replica 3 installs the snapshot with it running.
        env = dict(os.environ, BO_APPLIER="all") if i > 0 else None
        return c.start(writer(c, dirs[i], "--id", i + 1, *peers, "--snapshot-threshold", 200,
                              *extra, "serve", address=f"127.0.0.1:{ports[i]}"),
                       name=f"replica{i + 1}", env=env)

    procs = [start(0, "--rate", 400), start(1, "--rate", 400)]
    leader = procs[0] if any("ROLE leader" in l for l in procs[0].output()) else None
    deadline = time.monotonic() + 30
    while leader is None and time.monotonic() < deadline:
        for p in procs:
            if "ROLE leader" in p.output():
                leader = p
        time.sleep(0.1)
    check(leader is not None, "two of three replicas elect a leader")
    # Wait for enough writes: several snapshots past what replica 3 has (nothing).
    deadline = time.monotonic() + 60
    while len(acks(leader.output())) < 1200 and time.monotonic() < deadline:
        time.sleep(0.2)
    check(len(acks(leader.output())) >= 1200, "the leader committed 1200 writes")
    snaps = [p for d in dirs[:2] for p in glob.glob(os.path.join(d, "snapshot-*"))]
    check(snaps, "the running replicas took snapshots")
    for p in procs:
        p.signal(signal.SIGTERM)
        p.wait(timeout=30)
    # All three again, without writes: replica 3 must install a snapshot.
    procs = [start(i) for i in range(3)]
    states = wait_converged(procs)
    check(len(states) == 3 and len({s.split()[2] for s in states.values()}) == 1,
          f"the lagging replica converges on the others' state: {states}")
    check(glob.glob(os.path.join(dirs[2], "snapshot-*")),
          "the lagging replica holds the installed snapshot")


if __name__ == "__main__":
    main()
