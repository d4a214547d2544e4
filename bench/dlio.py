#!/usr/bin/env python3
"""A DLIO-style run: simulated accelerators fed by strata's loader, judged by MLPerf Storage's rule.

Each simulated accelerator is a process, rank r of N, running the loop of a PyTorch training
job: `strata.torch.DataLoader` over a `ShardIterableDataset` (its rank's share of one global
shuffle), and for every batch a fixed computation time in which the accelerator would run the
step (`time.sleep`, as DLIO does). The default workload is DLIO's ResNet-50 on A100
(configs/workload/resnet50_a100.yaml): batches of 400 samples, 0.435 s of computation per batch,
samples of 114,660 bytes on average (standard deviation 136,076; drawn here from a log-normal
with those moments, clipped to 4 KiB..1 MiB). Accelerator utilisation (AU) = the rank's
computation time / its wall time from its first `next()` to the end of its last step, the first
batch included. MLPerf Storage counts a run as passing when every accelerator's AU is at least
90%. The report gives AU per N (the lowest rank's and the mean), the read rate the ranks sustained,
p50/p99 of the time a step waited for its batch, and fio's random-read limit at 128 KiB
(io_uring, O_DIRECT, QD 32) over the same shard files, for scale. The page cache is dropped
before every measurement; each rank reads `--steps` batches, so a run reads N x steps x batch
samples, each once.

  sudo .venv/bin/python bench/dlio.py                         # N = 1,2,4,8,12,16; 20 steps; ~6 min
  sudo .venv/bin/python bench/dlio.py --ranks 1,4 --steps 5 --records 4000 --keep   # quick check

Needs strata's Python package with torch (Debian's python3-torch in the project's venv). The
shards (--records, default 128,000 samples = 14.7 GB) are written to --dir and deleted at the end
unless --keep.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import ROOT, drop_caches, fio_randread, log, save_report

MEAN_BYTES, STD_BYTES = 114_660.07, 136_075.82
MIN_BYTES, MAX_BYTES = 4096, 1 << 20
LABELS = 1000


def sample_sizes(n, seed):
    import numpy as np

    sigma2 = np.log1p((STD_BYTES / MEAN_BYTES) ** 2)
    mu = np.log(MEAN_BYTES) - sigma2 / 2
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(mu, np.sqrt(sigma2), n), MIN_BYTES, MAX_BYTES).astype(np.int64)


def write_shards(d, n, seed):
    """n samples (uint8 tensors of log-normal sizes, a label each) into 256 MiB shards in d."""
    import numpy as np
    import strata

    sizes = sample_sizes(n, seed)
    pool = np.random.default_rng(seed + 1).integers(0, 256, 4 << 20, dtype=np.uint8)
    schema = [{"name": "image", "type": "tensor", "dtype": "uint8", "shape": [-1]},
              {"name": "label", "type": "label", "num_classes": LABELS}]
    w = strata.ShardWriter(d, schema)
    for i, size in enumerate(sizes.tolist()):
        off = (i * 7919 * 64) % (len(pool) - MAX_BYTES)
        w.add({"image": pool[off:off + size], "label": i % LABELS})
    w.finish()
    return int(sizes.sum())


def shard_files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".shard"))


# --- one simulated accelerator ------------------------------------------------------------------

def child(args):
    """Rank `args.rank` of `args.world`: waits for "go" on stdin, then runs `args.steps` steps and
    prints one JSON line."""
    import strata.torch as st

    ds = st.ShardIterableDataset(args.dir, batch_size=args.batch, seed=args.seed, rank=args.rank,
                                 world_size=args.world, drop_last=True, prefetch_bytes=args.prefetch_mib << 20)
    loader = st.DataLoader(ds, num_workers=args.workers)
    print("ready", flush=True)
    sys.stdin.readline()
    waits, samples, nbytes, steps = [], 0, 0, 0
    start = time.perf_counter()
    before = start
    it = iter(loader)
    while steps < args.steps:
        try:
            batch = next(it)
        except StopIteration:
            break
        got = time.perf_counter()
        waits.append(got - before)
        images = batch["image"]
        samples += len(images)
        nbytes += sum(int(t.numel()) for t in images)
        time.sleep(args.compute)  # the accelerator's step
        steps += 1
        before = time.perf_counter()
    wall = before - start
    del it
    print(json.dumps({"rank": args.rank, "steps": steps, "samples": samples, "bytes": nbytes, "wall_s": wall,
                      "compute_s": steps * args.compute, "waits_s": waits}), flush=True)


def run_ranks(args, world):
    """N rank processes started together after their imports; their JSON results."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--dir", args.dir, "--world", str(world),
           "--batch", str(args.batch), "--compute", str(args.compute), "--steps", str(args.steps),
           "--seed", str(args.seed), "--workers", str(args.workers), "--prefetch-mib", str(args.prefetch_mib)]
    procs = [subprocess.Popen(cmd + ["--rank", str(r)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for r in range(world)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"rank {procs.index(p)} failed to start")
    drop_caches()
    disk0 = disk_read_bytes()
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a rank exited with {p.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - t0
    return results, wall, disk_read_bytes() - disk0


def disk_read_bytes():
    """Bytes read from all whole disks since boot (/proc/diskstats, sectors of 512 bytes)."""
    total = 0
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            name = p[2]
            if os.path.exists(f"/sys/block/{name}"):  # whole devices only, not partitions
                total += int(p[5]) * 512
    return total


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/var/tmp/strata-dlio")
    ap.add_argument("--records", type=int, default=128_000, help="samples written (default 128,000, ~14.7 GB)")
    ap.add_argument("--ranks", default="1,2,4,8,12,16", help="numbers of simulated accelerators to run")
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--compute", type=float, default=0.435, help="seconds of computation per batch")
    ap.add_argument("--steps", type=int, default=20, help="batches per rank in each run")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers per rank")
    ap.add_argument("--prefetch-mib", type=int, default=256, help="each rank's prefetch budget")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="reuse shards in --dir and keep them")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    when = datetime.datetime.now(datetime.timezone.utc)
    ranks = [int(x) for x in args.ranks.split(",")]
    need = max(ranks) * args.steps * args.batch
    if need > args.records:
        raise SystemExit(f"--records {args.records} is less than the {need} samples the largest run reads")
    if not (args.keep and os.path.isdir(args.dir) and shard_files(args.dir)):
        shutil.rmtree(args.dir, ignore_errors=True)
        os.makedirs(args.dir)
        log(f"writing {args.records} samples to {args.dir}")
        t = time.perf_counter()
        total = write_shards(args.dir, args.records, args.seed)
        log(f"wrote {total / 1e9:.2f} GB in {time.perf_counter() - t:.1f} s")
    files = shard_files(args.dir)
    drop_caches()
    fio = fio_randread(files, 131072, 32, 15)
    demand = args.batch * MEAN_BYTES / args.compute

    rows, raw = [], []
    for n in ranks:
        results, wall, disk = run_ranks(args, n)
        aus = [r["compute_s"] / r["wall_s"] for r in results if r["wall_s"] > 0]
        waits = [w for r in results for w in r["waits_s"]]
        first = [r["waits_s"][0] for r in results if r["waits_s"]]
        later = [w for r in results for w in r["waits_s"][1:]]
        nbytes = sum(r["bytes"] for r in results)
        span = max(r["wall_s"] for r in results)
        # Without the first batch (start-up: opening the shards, the first reads of every rank
        # at once), which a run of many more steps than this one makes negligible.
        steady = [(r["compute_s"] - args.compute) / (r["wall_s"] - r["waits_s"][0] - args.compute)
                  for r in results if len(r["waits_s"]) > 1]
        row = {"ranks": n, "au_min": min(aus), "au_mean": statistics.mean(aus), "au_steady_min": min(steady or [0]),
               "passed": min(aus) >= 0.9 and all(r["steps"] == args.steps for r in results),
               "samples": sum(r["samples"] for r in results), "bytes": nbytes, "mb_s": nbytes / span / 1e6,
               "demand_mb_s": n * demand / 1e6, "disk_mb_s": disk / wall / 1e6,
               "first_wait_s": max(first), "p50_wait_ms": percentile(later, 0.5) * 1e3,
               "p99_wait_ms": percentile(later, 0.99) * 1e3, "max_wait_ms": max(later or [0]) * 1e3}
        log(f"{n} ranks: AU min {row['au_min']:.1%} mean {row['au_mean']:.1%}, {row['mb_s']:.0f} MB/s")
        rows.append(row)
        raw.append({"ranks": n, "results": results, "wall_s": wall})

    passing = [r["ranks"] for r in rows if r["passed"]]
    md = [f"DLIO-style run, {when:%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
          f"kernel {platform.release()}, load average before: {os.getloadavg()[0]:.2f}", "",
          f"Workload: batches of {args.batch}, {args.compute} s of computation per batch, samples of "
          f"{MEAN_BYTES / 1e3:.1f} kB on average ({args.records} in {len(files)} shards); {args.steps} steps per rank; "
          f"DataLoader num_workers={args.workers}; prefetch {args.prefetch_mib} MiB per rank. One accelerator "
          f"needs {demand / 1e6:.0f} MB/s. fio random read, 128 KiB, QD 32, same files: {fio['mb_s']:.0f} MB/s "
          f"({fio['iops']:.0f} IOPS).", "",
          "| accelerators | AU lowest rank | AU mean | passes (AU >= 90%) | AU lowest, after the first batch "
          "| read MB/s | demand MB/s | disk read MB/s | first batch s | wait p50 / p99 / max ms |",
          "|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r['ranks']} | {r['au_min']:.1%} | {r['au_mean']:.1%} | {'yes' if r['passed'] else 'no'} "
                  f"| {r['au_steady_min']:.1%} "
                  f"| {r['mb_s']:.0f} | {r['demand_mb_s']:.0f} | {r['disk_mb_s']:.0f} | {r['first_wait_s']:.2f} "
                  f"| {r['p50_wait_ms']:.1f} / {r['p99_wait_ms']:.1f} / {r['max_wait_ms']:.1f} |")
    md += ["", f"Largest number of accelerators kept at AU >= 90%: {max(passing) if passing else 'none'} "
           f"(fio's limit / one accelerator's demand = {fio['mb_s'] * 1e6 / demand:.1f})", "",
           "```json", json.dumps({"args": vars(args), "fio": fio, "rows": rows, "raw": raw}), "```", ""]
    save_report("dlio", "\n".join(md), when)
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
