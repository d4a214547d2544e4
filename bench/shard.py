#!/usr/bin/env python3
"""strata shards against fio, the disk's own limit, in one run.

(a) Writes GIB of records (1-256 KiB, log-uniform) into 256 MiB shards with strata, then runs
    fio sequential writes of the same size in the same directory (O_DIRECT, 1 MiB and 8 MiB
    blocks, fsync at the end): ratio = strata's file bytes/s over fio's best.
(b) Reads single records by index, one thread, synchronous, O_DIRECT, uniformly over every
    shard, then runs fio --rw=randread --iodepth=1 --direct=1 over the same shard files with a
    block size equal to the mean extent strata read (rounded to 4 KiB): ratio of reads/s.
Caches are dropped (sync; echo 3 > /proc/sys/vm/drop_caches, as root) before every phase. The
data is deleted at the end. Prints a markdown summary (and writes it to bench/results/).

  bench/shard.py [--build build-shard] [--dir /work/shard-bench] [--gib 2] [--read-seconds 20]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys

from benchlib import ROOT, drop_caches, log, run


def fio(args):
    out = run(["fio", "--output-format=json", "--numjobs=1", "--group_reporting"] + args)
    job = json.loads(out)["jobs"][0]
    return job


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-shard"))
    ap.add_argument("--dir", default="/work/shard-bench")
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--read-seconds", type=float, default=20.0)
    ap.add_argument("--encrypt", action="store_true", help="also write an encrypted set")
    args = ap.parse_args()

    bench = os.path.join(args.build, "bench", "shard_bench")
    if not os.path.exists(bench):
        sys.exit(f"{bench} missing: cmake -S . -B {args.build} -G Ninja -DSTRATA_BENCH=ON && "
                 f"ninja -C {args.build} shard_bench")
    free = shutil.disk_usage(os.path.dirname(args.dir.rstrip("/")) or "/").free
    if free < 3 * args.gib * (1 << 30):
        sys.exit(f"not enough free space for {args.gib} GiB twice")
    shutil.rmtree(args.dir, ignore_errors=True)
    shards = os.path.join(args.dir, "shards")
    fio_dir = os.path.join(args.dir, "fio")
    os.makedirs(fio_dir)
    size = f"{int(args.gib * 1024)}m"
    results = {}
    try:
        # (a) sequential write
        drop_caches()
        w = json.loads(run([bench, "write", shards, str(args.gib)]))
        results["write"] = w
        if args.encrypt:
            drop_caches()
            results["write_encrypted"] = json.loads(run([bench, "write", shards + "-enc", str(args.gib), "--encrypt"]))
            shutil.rmtree(shards + "-enc")
        fio_write = {}
        for bs in ["1m", "8m"]:
            drop_caches()
            job = fio([f"--name=seqwrite{bs}", f"--directory={fio_dir}", "--rw=write", f"--bs={bs}",
                       f"--size={size}", "--direct=1", "--ioengine=psync", "--iodepth=1", "--end_fsync=1"])
            fio_write[bs] = job["write"]["bw_bytes"] / (1 << 20)
            for f in os.listdir(fio_dir):
                os.remove(os.path.join(fio_dir, f))
        results["fio_write_mib_s"] = fio_write

        # (b) random reads of single records
        drop_caches()
        r = json.loads(run([bench, "read", shards, str(args.read_seconds)]))
        results["read"] = r
        bs = max(4096, int(round(r["all_mean_extent_bytes"] / 4096.0)) * 4096)
        files = sorted(os.path.join(shards, f) for f in os.listdir(shards) if f.endswith(".shard"))
        drop_caches()
        job = fio(["--name=randread", "--filename=" + ":".join(f.replace(":", "\\:") for f in files),
                   "--rw=randread", f"--bs={bs}", "--direct=1", "--ioengine=psync", "--iodepth=1",
                   "--time_based", f"--runtime={int(args.read_seconds)}", "--file_service_type=random",
                   "--randrepeat=0"])
        results["fio_read"] = {"bs": bs, "iops": job["read"]["iops"], "mib_s": job["read"]["bw_bytes"] / (1 << 20),
                               "p50_us": job["read"]["clat_ns"]["percentile"]["50.000000"] / 1000.0,
                               "p99_us": job["read"]["clat_ns"]["percentile"]["99.000000"] / 1000.0}
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)

    w, fw, r, fr = results["write"], results["fio_write_mib_s"], results["read"], results["fio_read"]
    best = max(fw.values())
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"Date {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, commit {commit}, {platform.node()} "
        f"({os.cpu_count()} cores), `bench/shard.py --gib {args.gib} --read-seconds {args.read_seconds:g}`"
        + (" --encrypt" if args.encrypt else ""),
        "",
        "| write (sequential) | MiB/s | ratio |",
        "|---|---:|---:|",
        f"| strata shards: {w['records']} records, {w['shards']} shards, {w['file_bytes'] / (1 << 30):.2f} GiB "
        f"of files ({w['payload_bytes'] / (1 << 30):.2f} GiB payload) | {w['file_mib_s']:.0f} | "
        f"{w['file_mib_s'] / best:.2f} |",
    ]
    if "write_encrypted" in results:
        e = results["write_encrypted"]
        lines.append(f"| strata shards, AES-256-GCM | {e['file_mib_s']:.0f} | {e['file_mib_s'] / best:.2f} |")
    for bs, v in fw.items():
        lines.append(f"| fio write, bs={bs}, O_DIRECT, psync, end_fsync | {v:.0f} | {v / best:.2f} |")
    lines += [
        "",
        "| random read, 1 thread, QD1, O_DIRECT | reads/s | MiB/s | p50 µs | p99 µs | ratio (reads/s) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| strata `ShardReader::Read` (mean extent {r['mean_extent_bytes'] / 1024:.0f} KiB, "
        f"payload {r['payload_mib_s']:.0f} MiB/s) | {r['reads_s']:.0f} | {r['extent_mib_s']:.0f} | "
        f"{r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['reads_s'] / fr['iops']:.2f} |",
        f"| fio randread bs={fr['bs'] // 1024}k | {fr['iops']:.0f} | {fr['mib_s']:.0f} | {fr['p50_us']:.0f} | "
        f"{fr['p99_us']:.0f} | 1.00 |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    out = os.path.join(ROOT, "bench", "results", f"shard-{datetime.datetime.now().strftime('%Y%m%d-%H%M')}.md")
    with open(out, "w") as f:
        f.write(text + "\n```json\n" + json.dumps(results, indent=2) + "\n```\n")
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
