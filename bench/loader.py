#!/usr/bin/env python3
"""strata's training loader against fio, the disk's own limit, in one run.

For each data set (default: 1M records of 4 KiB = 4 GiB, and 40k records of 128 KiB = 5 GiB, in
256 MiB shards; both kept to a few GiB because disk space is limited):
  1. writes the shards (loader_bench write), unless they are already there (--keep);
  2. drops the page cache, runs fio random reads over the same shard files (io_uring, O_DIRECT,
     registered files and buffers, the record size as block size, the same queue depth);
  3. drops the page cache, runs the loader over one shuffled epoch (or --seconds), batches
     assembled, CRC32C verified;
and reports the ratio loader / fio (IOPS at 4 KiB, bandwidth at 128 KiB), samples/s, MB/s,
p50/p99 batch latency, CPU seconds and RSS. Writes a markdown table and the raw JSON to
bench/results/ and prints the table.

  bench/loader.py [--build build-loader] [--dir /work/loader-bench] [--seconds 20] [--keep] [--sealed]

With --sealed, each data set is also written with every record sealed (AES-256-GCM, the same
stored sizes) and read again: the loader's cost of encrypted shards, against the same fio run.

With --python W[,W...], the same shards are also read through Python: strata.torch's
ShardIterableDataset in a torch DataLoader with W workers (0: the loader's own threads in the
training process), batches handed to the loop as tensors, one byte of each batch touched as the
C++ reader does; --python-exe names an interpreter that has strata and torch (default .venv).
"""
import argparse
import datetime
import json
import os
import platform
import shutil

from benchlib import ROOT, drop_caches, fio_randread, log, run


def shard_files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".shard"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-loader"))
    ap.add_argument("--dir", default="/work/loader-bench")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--keep", action="store_true", help="reuse existing shards and keep them afterwards")
    ap.add_argument("--sealed", action="store_true",
                    help="also read the same records sealed with AES-256-GCM (the cost of encrypted shards)")
    ap.add_argument("--sets", default="4096:1000000:256:64,131072:40000:32:32",
                    help="SIZE:RECORDS:BATCH:QD,...")
    ap.add_argument("--python", default="", help="also read through strata.torch + DataLoader with these "
                    "numbers of workers, e.g. 0,2")
    ap.add_argument("--python-exe", default=os.path.join(ROOT, ".venv", "bin", "python"))
    args = ap.parse_args()
    bench = os.path.join(args.build, "bench", "loader_bench")
    results, python_rows = [], []
    for spec in args.sets.split(","):
        size, records, batch, qd = (int(x) for x in spec.split(":"))
        d = os.path.join(args.dir, f"{size // 1024}k")
        if not (args.keep and os.path.isdir(d) and shard_files(d)):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            w = json.loads(run([bench, "write", d, str(records), str(size)]))
            log(f"wrote {w}")
        files = shard_files(d)
        drop_caches()
        f = fio_randread(files, size, qd, int(args.seconds))
        log(f"fio {f}")
        drop_caches()
        l = json.loads(run([bench, "read", d, "--batch", str(batch), "--queue-depth", str(qd),
                            "--seconds", str(args.seconds)]))
        log(f"loader {l}")
        runs = [("plain", l)]
        if args.sealed:
            # The same records sealed with AES-256-GCM (the same stored sizes, so the same reads):
            # what opening them costs the loader.
            ds = d + "-sealed"
            if not (args.keep and os.path.isdir(ds) and shard_files(ds)):
                shutil.rmtree(ds, ignore_errors=True)
                os.makedirs(ds)
                log(f"wrote {json.loads(run([bench, 'write', ds, str(records), str(size), '--sealed']))}")
            drop_caches()
            runs.append(("sealed", json.loads(run([bench, "read", ds, "--batch", str(batch), "--queue-depth", str(qd),
                                                   "--seconds", str(args.seconds), "--sealed"]))))
            log(f"loader sealed {runs[-1][1]}")
            if not args.keep:
                shutil.rmtree(ds, ignore_errors=True)
        for w in [int(x) for x in args.python.split(",") if x != ""]:
            drop_caches()
            p = json.loads(run([args.python_exe, os.path.join(ROOT, "bench", "loader_python.py"), d, str(batch),
                                str(qd), str(w), str(args.seconds)]))
            log(f"python {w} workers {p}")
            python_rows.append({"size": size, "records": records, "workers": w, "fio": f, "python": p,
                                "ratio": p["samples_s"] / f["iops"], "loader": l["samples_s"]})
        for mode, l in runs:
            results.append({"size": size, "records": records, "batch": batch, "qd": qd, "fio": f, "loader": l,
                            "mode": mode, "ratio_iops": l["samples_s"] / f["iops"],
                            "ratio_bw": l["read_mib_s"] / f["mib_s"], "loader_reads_s": l["reads"] / l["seconds"]})
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)

    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"loader vs fio, {date}, {platform.node()}, {os.cpu_count()} cores, kernel {platform.release()}, "
             f"load average before: {os.getloadavg()[0]:.2f}", "",
             "| records | records stored | batch | QD | fio IOPS | fio MiB/s | loader samples/s | loader MiB/s | ratio IOPS "
             "| ratio MiB/s | p50 / p99 batch ms | loader CPU s / s | peak RSS MiB (budget) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        f, l = r["fio"], r["loader"]
        lines.append(
            f"| {r['records']} x {r['size'] // 1024} KiB | {r['mode']} | {r['batch']} | {r['qd']} | {f['iops']:.0f} "
            f"| {f['mib_s']:.0f} "
            f"| {l['samples_s']:.0f} | {l['read_mib_s']:.0f} | {r['ratio_iops']:.2f} | {r['ratio_bw']:.2f} "
            f"| {l['p50_batch_us'] / 1000:.2f} / {l['p99_batch_us'] / 1000:.2f} "
            f"| {l['cpu_seconds'] / l['seconds']:.2f} | {l['peak_rss_mib']:.0f} ({l['prefetch_mib']}) |")
    if python_rows:
        lines += ["", "| records | reader | samples/s | vs fio | vs C++ loader | CPU s / s |", "|---|---|---|---|---|---|"]
        for r in python_rows:
            p = r["python"]
            lines.append(f"| {r['records']} x {r['size'] // 1024} KiB | strata.torch, DataLoader num_workers={r['workers']} "
                         f"| {p['samples_s']:.0f} | {r['ratio']:.2f} | {p['samples_s'] / r['loader']:.2f} "
                         f"| {p['cpu_s'] / p['seconds']:.2f} |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    with open(os.path.join(ROOT, "bench", "results", f"loader-{stamp}.md"), "w") as out:
        out.write(table + "\n\n```json\n" + json.dumps({"loader": results, "python": python_rows}, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()
