#!/usr/bin/env python3
"""borealis-log end to end: the real tool on real data directories, snapshot
files and backups written by the real storage (through bo-storage-writer)."""

import glob
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import check, binary, free_port, main  # noqa: E402

LOG = binary("borealis-log")
WRITER = binary("bo-storage-writer")


def writer(data_dir, *args):
    return [WRITER, "--data-dir", data_dir, "--address", f"127.0.0.1:{free_port()}"] + \
        [str(a) for a in args]


def make_state(c, with_snapshot=True):
    """A data directory with a snapshot and entries after it, and a backup."""
    d, b = c.mkdir("data"), c.mkdir("backups")
    c.run(writer(d, "--snapshot-threshold", 200, "write", 500), expect=0)
    _, out, _ = c.run(writer(d, "--backup-dir", b, "backup"), expect=0)
    backup = os.path.join(b, out.strip().splitlines()[-1])
    c.run(writer(d, "--snapshot-threshold", 1000000, "--start", 1000, "write", 50), expect=0)
    return d, backup


def state_of(c, d):
    _, out, _ = c.run(writer(d, "count"), expect=0)
    m = re.search(r"TASKS (\d+) INDEX \d+ DIGEST ([0-9a-f]+)", out)
    return int(m.group(1)), m.group(2)


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def tree_digest(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = hash(fh.read())
    return out


def test_stats_dump_verify_data_dir(c):
    d, _ = make_state(c)
    before = tree_digest(d)
    _, out, _ = c.run([LOG, "stats", d], expect=0)
    check("transaction" in out and "snapshot:" in out, f"stats shows kinds and the snapshot: {out}")
    m = re.search(r"tasks:\s+(\d+)", out)
    check(m and int(m.group(1)) > 0, "the snapshot's task count is shown")
    _, out, _ = c.run([LOG, "verify", d], expect=0)
    check(out.startswith("ok:") and "550 tasks" in out, f"verify replays to the live state: {out}")
    _, out, _ = c.run([LOG, "dump", d], expect=0)
    lines = [json.loads(l) for l in out.splitlines() if l.strip()]
    kinds = {l.get("kind") for l in lines}
    check("transaction" in kinds, f"dump has transaction entries: {kinds}")
    txn = next(l for l in lines if l.get("kind") == "transaction")
    check("index" in txn and "ops" in txn, f"an entry names its index and ops: {txn}")
    check(tree_digest(d) == before, "the tool never modifies its input directory")


def test_verify_reports_file_and_position(c):
    d, backup = make_state(c)
    segs = [p for p in glob.glob(os.path.join(d, "*-*"))
            if re.fullmatch(r"\d{16}-\d{16}", os.path.basename(p))]
    if not segs:  # the open segment is closed on the next start
        state_of(c, d)
        segs = [p for p in glob.glob(os.path.join(d, "*-*"))
                if re.fullmatch(r"\d{16}-\d{16}", os.path.basename(p))]
    seg = max(segs, key=os.path.getsize)
    flip_byte(seg, os.path.getsize(seg) - 64)
    rc, out, err = c.run([LOG, "verify", d])
    check(rc == 1, f"verify fails on a flipped bit (rc {rc})")
    check(os.path.basename(seg) in err and "byte" in err,
          f"the message names the segment and the position: {err!r}")
    # A corrupt backup: the offset is named too.
    bad = c.path("bad-backup")
    shutil.copy(backup, bad)
    flip_byte(bad, os.path.getsize(bad) // 2)
    rc, out, err = c.run([LOG, "verify", bad])
    check(rc == 1 and "bad-backup" in err and re.search(r"offset|byte", err),
          f"a corrupt backup is reported with its offset: {err!r}")
    # Truncation of a backup is detected as well.
    shutil.copy(backup, bad)
    with open(bad, "r+b") as f:
        f.truncate(os.path.getsize(bad) - 10)
    rc, _, err = c.run([LOG, "verify", bad])
    check(rc == 1, f"a truncated backup fails verify: {err!r}")


def test_convert_between_codecs_and_forms(c):
    d, backup = make_state(c)
    _, base, _ = c.run([LOG, "stats", backup], expect=0)
    tasks = re.search(r"tasks:\s+(\d+)", base).group(1)
    sizes = {}
    for codec in ("none", "zlib", "zstd"):
        for dedup in ("on", "off"):
            out_file = c.path(f"conv-{codec}-{dedup}")
            c.run([LOG, "convert", backup, out_file, "--codec", codec, "--dedup", dedup],
                  expect=0)
            _, st, _ = c.run([LOG, "stats", out_file], expect=0)
            check(re.search(r"tasks:\s+(\d+)", st).group(1) == tasks,
                  f"{codec}/{dedup}: same tasks")
            check(f"codec:         {codec}" in st, f"{codec}/{dedup}: codec recorded: {st}")
            c.run([LOG, "verify", out_file], expect=0)
            sizes[(codec, dedup)] = os.path.getsize(out_file)
    check(sizes[("zstd", "on")] < sizes[("none", "on")] < sizes[("none", "off")],
          f"dedup and compression each shrink the image: {sizes}")
    # A raft snapshot file converts into a backup-shaped image too.
    snap = max((p for p in glob.glob(os.path.join(d, "snapshot-*")) if not p.endswith(".meta")),
               key=os.path.getmtime)
    out_file = c.path("from-snapshot")
    c.run([LOG, "convert", snap, out_file], expect=0)
    c.run([LOG, "verify", out_file], expect=0)
    # Bad usage is exit 2, a missing input exit 1.
    rc, _, _ = c.run([LOG, "convert", backup, out_file, "--codec", "lz77"])
    check(rc == 2, "an unknown codec is a usage error")
    rc, _, err = c.run([LOG, "convert", c.path("missing"), out_file])
    check(rc == 1 and "missing" in err, f"a missing input is named: {err!r}")


def test_offline_recover_into_empty_dir(c):
    d, backup = make_state(c)
    fresh = c.path("fresh")
    _, out, _ = c.run([LOG, "recover", "--backup", backup, "--data-dir", fresh,
                       "--raft-address", f"127.0.0.1:{free_port()}"], expect=0)
    n, digest = state_of(c, fresh)
    check(n == 500, f"the recovered log holds the backup's 500 tasks, got {n}")
    # The backup as seen by verify equals the recovered state.
    _, out, _ = c.run([LOG, "verify", fresh], expect=0)
    check("500 tasks" in out, f"verify of the recovered log: {out}")
    # A non-empty directory is refused and left alone.
    before = tree_digest(d)
    rc, _, err = c.run([LOG, "recover", "--backup", backup, "--data-dir", d])
    check(rc == 1 and "not empty" in err, f"recover refuses a non-empty directory: {err!r}")
    check(tree_digest(d) == before, "the refused directory is untouched")
    # A corrupt backup is refused before anything is written.
    bad = c.path("bad")
    shutil.copy(backup, bad)
    flip_byte(bad, 40)
    empty = c.path("empty2")
    rc, _, err = c.run([LOG, "recover", "--backup", bad, "--data-dir", empty])
    check(rc == 1, f"a corrupt backup is refused: {err!r}")
    check(not os.path.exists(empty) or not os.listdir(empty), "nothing was written")


if __name__ == "__main__":
    main()
