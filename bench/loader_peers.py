#!/usr/bin/env python3
"""Shuffled training reads from Python through torch's DataLoader: strata against the usual
ways of storing samples, on the same records, in one run.

For each data set (--sets; default 200,000 records of 4 KiB and 8,000 of 128 KiB: each record a
uint8 array of SIZE bytes and an int label; the first 8 bytes of the array hold the record's
number, the rest is a deterministic function of it, so every reader's output can be checked):

  1. writes the records in every format under --dir (timed, informational):
       strata:   strata.ShardWriter, 256 MiB shards (tensor "data" + label "label");
       files:    one file per sample (<dir>/files/<i // 1000>/<i>.bin), labels in memory, as an
                 ImageFolder-style dataset keeps them;
       lmdb:     one LMDB environment, key = record number (8 bytes big-endian), value = label
                 (8 bytes) + data;
       hdf5:     one HDF5 file, a contiguous uint8 dataset of N x SIZE rows and an int64 labels
                 dataset;
       mds:      MosaicML Streaming's MDS shards (MDSWriter, ndarray:uint8 + int columns, no
                 compression, 64 MiB shards);
       lance:    one Lance dataset (fixed_size_binary data + int64 label);
       wds:      WebDataset tar shards (wds.ShardWriter, 16 of them, or more to keep each under
                 100 MB);
  2. drops the page cache and runs fio: random reads over the strata shard files (io_uring,
     O_DIRECT, registered files and buffers, the record size as block size, QD 32): the disk's
     limit for this access pattern, as bench/loader.py measures it;
  3. for each reader, in a fresh Python process that imports its libraries and then drops the
     page cache: a torch DataLoader with --workers workers (default 2), batches of 256 (4 KiB)
     or 32 (128 KiB), random order over all records, for --seconds after the first batch or
     one epoch, whichever ends first:
       strata_iter: strata.torch.ShardIterableDataset (the C++ loader in each worker: global
                  shuffle, io_uring, O_DIRECT, whole batches) + strata.torch.DataLoader;
       strata_map: strata.torch.ShardDataset + ShuffleSampler(batch_size) (one read_batch call
                  per batch) + strata.torch.DataLoader(batch_size=None);
       files, lmdb, hdf5: a map-style Dataset read record by record (the file / environment
                  opened lazily in each worker), DataLoader(shuffle=True) and default collation;
                  lmdb with readahead=False (py-lmdb's advice for random reads), lmdb_readahead
                  with the default (the kernel reads ahead around each page fault);
       lance:     a map-style Dataset whose item is a whole batch: dataset.take(indices) (Lance's
                  random-access call), sampled by BatchSampler(RandomSampler);
       mds:       streaming.StreamingDataset(local=..., shuffle=True, batch_size) (its own
                  shuffle, py1e: shards in random order, samples shuffled within a window of
                  shards);
       wds:       wds.WebDataset(shardshuffle=True).shuffle(1000).batched(B) (shard order
                  shuffled, a 1000-sample shuffle buffer per worker; reads each tar
                  sequentially, so it is not random access);
     and reports samples/s and MB/s of record bytes (from the first batch on; the time to the
     first batch is given apart), p50/p99 of the time each batch blocked the training loop, the
     peak PSS of the process tree (the main process and its workers, from smaps_rollup), and
     the whole disk's read rate from /proc/diskstats over the run (it includes any other I/O on
     the device, and shows read amplification: readahead, page-granular mmap faults);
  4. checks what came out: the record number and label of every sample, every byte of every
     sample of every 8th batch against the regenerated record, and, when an epoch ran to its
     end, that every record came exactly once.

Peers that cannot be installed or imported here are skipped, with the reason in the report.
Ratios: each reader against fio (IOPS at 4 KiB, MB/s at 128 KiB: the same number there), and
strata_iter against every other reader. The table and the raw JSON go to
bench/results/loader_peers-<date>.md; the table is printed. Run it as root so the page cache can
be dropped (otherwise it warns and the reads are partly warm).

  python bench/loader_peers.py [--sets 4096:200000:256,131072:8000:32] [--seconds 15]
                               [--workers 2] [--dir /work/loader-peers-bench] [--keep]
                               [--systems strata_iter,strata_map,files,lmdb,lmdb_readahead,hdf5,
                                          mds,lance,wds]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

from benchlib import ROOT, drop_caches, fio_randread, log

SYSTEMS = ["strata_iter", "strata_map", "files", "lmdb", "lmdb_readahead", "hdf5", "mds", "lance", "wds"]
FORMAT = {"strata_iter": "strata", "strata_map": "strata", "files": "files", "lmdb": "lmdb",
          "lmdb_readahead": "lmdb", "hdf5": "hdf5", "mds": "mds", "lance": "lance", "wds": "wds"}
IMPORTS = {"strata": ["strata", "strata.torch"], "files": [], "lmdb": ["lmdb"], "hdf5": ["h5py"],
           "mds": ["streaming"], "lance": ["lance", "pyarrow"], "wds": ["webdataset"]}
LABELS = 1000
CHUNK = 4096  # records generated at a time while writing
BASE_BYTES = 64 << 20
SEED = 17


# --- the records -------------------------------------------------------------------------------

class Records:
    """Record i: SIZE bytes taken from a fixed random block at an offset that depends on i, its
    first 8 bytes replaced by i (little-endian); label i % 1000."""

    def __init__(self, size):
        self.size = size
        self.base = np.random.default_rng(SEED).integers(0, 256, BASE_BYTES + size, dtype=np.uint8)

    def data(self, idx):
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), self.size), dtype=np.uint8)
        for j, off in enumerate(((idx * 7919 * 64) % BASE_BYTES).tolist()):
            out[j] = self.base[off:off + self.size]
        out[:, :8] = idx.astype("<u8").view(np.uint8).reshape(-1, 8)
        return out

    def chunks(self, n):
        for lo in range(0, n, CHUNK):
            idx = np.arange(lo, min(n, lo + CHUNK), dtype=np.int64)
            yield idx, self.data(idx), idx % LABELS


# --- writers -----------------------------------------------------------------------------------

def write_strata(d, rec, n):
    import strata

    schema = [{"name": "data", "type": "tensor", "dtype": "uint8", "shape": [rec.size]},
              {"name": "label", "type": "label", "num_classes": LABELS}]
    w = strata.ShardWriter(d, schema)
    for idx, data, labels in rec.chunks(n):
        for j in range(len(idx)):
            w.add({"data": data[j], "label": int(labels[j])})
    w.finish()


def file_path(d, i):
    return os.path.join(d, f"{i // 1000:05d}", f"{i:08d}.bin")


def write_files(d, rec, n):
    for idx, data, _ in rec.chunks(n):
        for j, i in enumerate(idx.tolist()):
            if i % 1000 == 0:
                os.makedirs(os.path.dirname(file_path(d, i)), exist_ok=True)
            with open(file_path(d, i), "wb") as f:
                f.write(data[j].data)


def write_lmdb(d, rec, n):
    import lmdb

    env = lmdb.open(d, map_size=int(n * (rec.size + 4096) * 1.5) + (64 << 20), subdir=True, sync=False,
                    writemap=False, meminit=False)
    for idx, data, labels in rec.chunks(n):
        with env.begin(write=True) as txn:
            for j, i in enumerate(idx.tolist()):
                txn.put(i.to_bytes(8, "big"), int(labels[j]).to_bytes(8, "little") + data[j].tobytes(), append=True)
    env.sync(True)
    env.close()


def write_hdf5(d, rec, n):
    import h5py

    os.makedirs(d)
    with h5py.File(os.path.join(d, "data.h5"), "w") as f:
        ds = f.create_dataset("data", (n, rec.size), dtype=np.uint8)  # contiguous: no chunking
        lab = f.create_dataset("label", (n,), dtype=np.int64)
        for idx, data, labels in rec.chunks(n):
            ds[idx[0]:idx[-1] + 1] = data
            lab[idx[0]:idx[-1] + 1] = labels


def write_mds(d, rec, n):
    from streaming import MDSWriter

    with MDSWriter(out=d, columns={"data": f"ndarray:uint8:{rec.size}", "label": "int"}, compression=None,
                   size_limit=64 << 20) as w:
        for idx, data, labels in rec.chunks(n):
            for j in range(len(idx)):
                w.write({"data": data[j], "label": int(labels[j])})


def write_lance(d, rec, n):
    import lance
    import pyarrow as pa

    schema = pa.schema([("data", pa.binary(rec.size)), ("label", pa.int64())])

    def batches():
        for idx, data, labels in rec.chunks(n):
            arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(rec.size), len(idx),
                                                       [None, pa.py_buffer(np.ascontiguousarray(data))])
            yield pa.RecordBatch.from_arrays([arr, pa.array(labels, pa.int64())], schema=schema)

    lance.write_dataset(pa.RecordBatchReader.from_batches(schema, batches()), d, schema=schema)


def write_wds(d, rec, n):
    import webdataset as wds

    os.makedirs(d)
    # About 16 shards (at most 100 MB each), so that both workers get several to shuffle.
    with wds.ShardWriter(os.path.join(d, "shard-%05d.tar"), maxcount=max(1, -(-n // 16)), maxsize=100_000_000,
                         verbose=0) as w:
        for idx, data, labels in rec.chunks(n):
            for j, i in enumerate(idx.tolist()):
                w.write({"__key__": f"{i:08d}", "bin": data[j].tobytes(), "cls": str(int(labels[j])).encode()})


WRITERS = {"strata": write_strata, "files": write_files, "lmdb": write_lmdb, "hdf5": write_hdf5, "mds": write_mds,
           "lance": write_lance, "wds": write_wds}


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


# --- readers (each builds a DataLoader that yields (data[B, SIZE] uint8, label[B])) -------------

class FileDataset:
    """One file per sample; labels kept in memory (as an ImageFolder keeps its targets)."""

    def __init__(self, d, n):
        self.d, self.n = d, n
        self.labels = np.arange(n, dtype=np.int64) % LABELS

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        with open(file_path(self.d, i), "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8), self.labels[i]


class LmdbDataset:
    """LMDB opened lazily in each worker, read-only, no lock, readahead off (py-lmdb's advice for
    random reads of a database larger than RAM) unless readahead=True."""

    def __init__(self, d, n, readahead=False):
        self.d, self.n, self.env, self.readahead = d, n, None, readahead

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.env is None:
            import lmdb

            self.env = lmdb.open(self.d, readonly=True, lock=False, readahead=self.readahead, meminit=False)
        with self.env.begin(buffers=False) as txn:
            v = txn.get(int(i).to_bytes(8, "big"))
        return np.frombuffer(v, dtype=np.uint8, offset=8), int.from_bytes(v[:8], "little")


class Hdf5Dataset:
    """h5py file opened lazily in each worker (h5py handles do not survive fork); labels read
    once at open."""

    def __init__(self, d, n):
        self.path, self.n, self.f = os.path.join(d, "data.h5"), n, None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.f is None:
            import h5py

            self.f = h5py.File(self.path, "r")
            self.data, self.labels = self.f["data"], self.f["label"][:]
        return self.data[i], self.labels[i]


class LanceDataset:
    """A whole batch per item: dataset.take(indices), Lance's random access."""

    def __init__(self, d, n):
        self.d, self.n, self.ds = d, n, None

    def __len__(self):
        return self.n

    def __getitem__(self, indices):
        if self.ds is None:
            import lance

            self.ds = lance.dataset(self.d)
        t = self.ds.take(list(indices), columns=["data", "label"])
        col = t.column("data").combine_chunks()
        size = col.type.byte_width
        data = np.frombuffer(col.buffers()[1], dtype=np.uint8, count=len(col) * size,
                             offset=col.offset * size).reshape(len(col), size)
        return data, t.column("label").to_numpy()


def wds_sample(s):
    return np.frombuffer(s["bin"], dtype=np.uint8), int(s["cls"])


def make_loader(system, d, n, batch, workers):
    """(DataLoader, function batch -> (data, labels) as numpy)."""
    import torch
    import torch.utils.data as tud

    gen = torch.Generator()
    gen.manual_seed(SEED)

    def pair(b):
        return b[0].numpy(), b[1].numpy()

    if system == "strata_iter":
        import strata.torch as st

        ds = st.ShardIterableDataset(d, batch_size=batch, seed=SEED)
        return st.DataLoader(ds, num_workers=workers), lambda b: (b["data"].numpy(), b["label"].numpy())
    if system == "strata_map":
        import strata.torch as st

        ds = st.ShardDataset(d)
        sampler = st.ShuffleSampler(ds, seed=SEED, batch_size=batch)
        loader = st.DataLoader(ds, sampler=sampler, batch_size=None, num_workers=workers)
        return loader, lambda b: (b["data"].numpy(), b["label"].numpy())
    if system in ("files", "lmdb", "lmdb_readahead", "hdf5"):
        ds = ({"files": FileDataset, "lmdb": LmdbDataset, "hdf5": Hdf5Dataset}[system](d, n)
              if system != "lmdb_readahead" else LmdbDataset(d, n, readahead=True))
        return tud.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, generator=gen), pair
    if system == "lance":
        sampler = tud.BatchSampler(tud.RandomSampler(range(n), generator=gen), batch, drop_last=False)
        loader = tud.DataLoader(LanceDataset(d, n), sampler=sampler, batch_size=None, num_workers=workers)
        return loader, lambda b: (b[0].numpy(), b[1].numpy())
    if system == "mds":
        from streaming import StreamingDataset
        from streaming.base.util import clean_stale_shared_memory

        clean_stale_shared_memory()
        ds = StreamingDataset(local=d, remote=None, shuffle=True, shuffle_seed=SEED, batch_size=batch)
        return tud.DataLoader(ds, batch_size=batch, num_workers=workers), \
            lambda b: (b["data"].numpy(), b["label"].numpy())
    if system == "wds":
        import webdataset as wds

        urls = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".tar"))
        ds = (wds.WebDataset(urls, shardshuffle=True, seed=SEED).shuffle(1000).map(wds_sample)
              .batched(batch, collation_fn=tud.default_collate))
        return tud.DataLoader(ds, batch_size=None, num_workers=workers), pair
    raise ValueError(system)


# --- measuring one reader (in a child process) -------------------------------------------------

def tree_pss(pid):
    """PSS in bytes of pid and its descendants (smaps_rollup; shared pages counted once)."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return total


def disk_read_bytes(dev):
    with open("/proc/diskstats") as f:
        for line in f:
            parts = line.split()
            if parts[2] == dev:
                return int(parts[5]) * 512
    return 0


def device_of(path):
    st = os.stat(path)
    name = os.path.basename(os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"))
    return name


def measure(system, d, n, size, batch, workers, seconds):
    for m in IMPORTS[FORMAT[system]]:
        __import__(m)
    import torch  # noqa: F401

    rec = Records(size)
    dev = device_of(d)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_pss(os.getpid()))
            stop.wait(0.1)

    drop_caches()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    disk0 = disk_read_bytes(dev)
    cpu0 = os.times()
    t_start = time.perf_counter()
    loader, unpack = make_loader(system, d, n, batch, workers)
    it = iter(loader)
    lat, samples, batches, t_first, complete = [], 0, 0, None, False
    seen = np.zeros(n, dtype=np.uint8)
    checked, bad = 0, []
    first_samples = 0
    while True:
        t0 = time.perf_counter()
        try:
            b = next(it)
        except StopIteration:
            complete = True
            break
        t1 = time.perf_counter()
        data, labels = unpack(b)
        if t_first is None:
            t_first, first_samples = t1, len(labels)
        else:
            lat.append(t1 - t0)
        idx = data[:, :8].copy().view("<u8").reshape(-1).astype(np.int64)
        if data.shape[1] != size or (idx >= n).any() or not np.array_equal(labels.astype(np.int64), idx % LABELS):
            bad.append(f"batch {batches}: wrong shape, record number or label")
            break
        np.add.at(seen, idx, 1)
        if batches % 8 == 0:
            if not np.array_equal(data, rec.data(idx)):
                bad.append(f"batch {batches}: bytes differ from the records written")
                break
            checked += len(idx)
        samples += len(labels)
        batches += 1
        if t1 - t_first >= seconds:
            break
    t_end = time.perf_counter()
    disk1 = disk_read_bytes(dev)
    peak[0] = max(peak[0], tree_pss(os.getpid()))
    stop.set()
    del it, loader  # the workers exit and are reaped here, so their CPU time is counted
    cpu1 = os.times()
    if complete:
        dup, missing = int((seen > 1).sum()), int((seen == 0).sum())
        if dup or missing or samples != n:
            bad.append(f"epoch: {samples} samples for {n} records, {dup} repeated, {missing} missing")
    steady = samples - first_samples
    el = max(t_end - t_first, 1e-9) if t_first is not None else 1e-9
    lat_ms = np.array(lat) * 1000 if lat else np.array([0.0])
    return {"system": system, "samples": samples, "epoch_complete": complete, "first_batch_s": (t_first or t_end) - t_start,
            "seconds": el, "samples_s": steady / el, "mb_s": steady * size / el / 1e6,
            "p50_ms": float(np.percentile(lat_ms, 50)), "p99_ms": float(np.percentile(lat_ms, 99)),
            "peak_pss_mib": peak[0] / (1 << 20), "disk_read_mb_s": (disk1 - disk0) / (t_end - t_start) / 1e6,
            "cpu_s_main": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
            "cpu_s_children": (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system),
            "bytes_checked_records": checked, "problems": bad}


# --- the driver --------------------------------------------------------------------------------

def skipped_peers(systems):
    """(format -> reason) for the formats whose library does not import here."""
    out = {}
    for fmt in dict.fromkeys(FORMAT[s] for s in systems):
        for m in IMPORTS[fmt]:
            r = subprocess.run([sys.executable, "-c", f"import torch, {m}"], capture_output=True, text=True)
            if r.returncode:
                last = [l for l in r.stderr.strip().splitlines() if l.strip()][-1:] or ["(no message)"]
                out[fmt] = f"`import {m}` failed: {last[0][:200]}"
                break
    return out


def one_set(size, n, batch, args, systems, skipped):
    root = os.path.join(args.dir, f"{size // 1024}k-{n}")
    os.makedirs(root, exist_ok=True)
    writes = {}
    for fmt in dict.fromkeys(FORMAT[s] for s in systems):
        if fmt in skipped:
            continue
        d = os.path.join(root, fmt)
        stamp = os.path.join(root, f".{fmt}.done")
        if not (args.keep and os.path.exists(stamp)):
            shutil.rmtree(d, ignore_errors=True)
            if os.path.exists(stamp):
                os.remove(stamp)
            t = time.perf_counter()
            r = subprocess.run([sys.executable, __file__, "--write", fmt, d, str(size), str(n)],
                               capture_output=True, text=True)
            if r.returncode:
                skipped[fmt] = f"writing failed: {(r.stderr.strip().splitlines() or ['?'])[-1][:200]}"
                log(f"{fmt}: {skipped[fmt]}\n{r.stderr[-2000:]}")
                continue
            subprocess.run(["sync"], check=True)
            writes[fmt] = {"seconds": time.perf_counter() - t}
            open(stamp, "w").close()
        writes.setdefault(fmt, {"seconds": None})
        writes[fmt]["bytes"] = du(d)
        log(f"{size // 1024} KiB x {n}: {fmt} written, {writes[fmt]}")
    shard_dir = os.path.join(root, "strata")
    shards = sorted(os.path.join(shard_dir, f) for f in os.listdir(shard_dir) if f.endswith(".shard"))
    drop_caches()
    f = fio_randread(shards, size, args.qd, int(args.seconds))
    log(f"fio {f}")
    reads = []
    for s in systems:
        if FORMAT[s] in skipped:
            continue
        cmd = [sys.executable, __file__, "--measure", s, os.path.join(root, FORMAT[s]), str(size), str(n), str(batch),
               str(args.workers), str(args.seconds)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            reads.append({"system": s, "problems": [f"exit {r.returncode}: "
                                                    f"{(r.stderr.strip().splitlines() or ['?'])[-1][:200]}"]})
            log(f"{s} failed:\n{r.stderr[-3000:]}")
            continue
        m = json.loads(r.stdout.strip().splitlines()[-1])
        log(f"{s} {m}")
        reads.append(m)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return {"size": size, "records": n, "batch": batch, "qd": args.qd, "fio": f, "writes": writes, "reads": reads}


def report(sets, skipped, args, load_before, load_after):
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"loader peers, {date}, {platform.node()}, {os.cpu_count()} cores, kernel {platform.release()}, "
             f"load average before {load_before:.2f}, after {load_after:.2f}; {args.workers} DataLoader workers, "
             f"--seconds {args.seconds}", ""]
    for name, why in skipped.items():
        lines.append(f"- skipped {name}: {why}")
    if skipped:
        lines.append("")
    lines += ["| records | reader | samples/s | MB/s | vs fio | strata_iter vs it | p50 / p99 batch ms | first batch s "
              "| epoch | peak PSS MiB | disk read MB/s | CPU s (main + workers) | written MB (s) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    problems = []
    for st in sets:
        size, f = st["size"], st["fio"]
        limit = f["iops"] if size <= 4096 else f["mb_s"] * 1e6 / size
        ref = next((r for r in st["reads"] if r["system"] == "strata_iter" and not r["problems"]), None)
        lines.append(f"| {st['records']} x {size // 1024} KiB | fio randread QD {st['qd']} | {limit:.0f} "
                     f"| {f['mb_s']:.0f} | 1.00 | | | | | | | | |")
        for r in st["reads"]:
            if r["problems"]:
                problems += [f"{st['records']} x {size // 1024} KiB {r['system']}: {p}" for p in r["problems"]]
            if "samples_s" not in r:
                lines.append(f"| {st['records']} x {size // 1024} KiB | {r['system']} | failed | | | | | | | | | | |")
                continue
            w = st["writes"].get(FORMAT[r["system"]], {})
            ws = f"{w['seconds']:.0f}" if w.get("seconds") is not None else "kept"
            vs = f"{ref['samples_s'] / r['samples_s']:.2f}" if ref and r["samples_s"] else ""
            lines.append(
                f"| {st['records']} x {size // 1024} KiB | {r['system']} | {r['samples_s']:.0f} | {r['mb_s']:.0f} "
                f"| {r['samples_s'] / limit:.2f} | {vs} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} "
                f"| {r['first_batch_s']:.2f} | {'all ' + str(r['samples']) if r['epoch_complete'] else 'no'} "
                f"| {r['peak_pss_mib']:.0f} | {r['disk_read_mb_s']:.0f} "
                f"| {r['cpu_s_main']:.1f} + {r['cpu_s_children']:.1f} | {w.get('bytes', 0) / 1e6:.0f} ({ws}) |")
    lines.append("")
    lines.append("checks: " + ("; ".join(problems) if problems else
                               "every sample's record number and label, all bytes of every 8th batch, "
                               "and each complete epoch (every record exactly once): all passed"))
    return "\n".join(lines), problems


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--write":
        fmt, d, size, n = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        WRITERS[fmt](d, Records(size), n)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        s, d, size, n, batch, workers, seconds = sys.argv[2:9]
        print(json.dumps(measure(s, d, int(n), int(size), int(batch), int(workers), float(seconds))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="4096:200000:256,131072:8000:32",
                    help="SIZE:RECORDS:BATCH,... record size in bytes, number of records, batch size")
    ap.add_argument("--seconds", type=float, default=15.0,
                    help="how long each reader runs after its first batch (less if its epoch ends first); "
                         "also fio's run time")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader num_workers for every reader")
    ap.add_argument("--qd", type=int, default=32, help="fio's queue depth")
    ap.add_argument("--dir", default="/work/loader-peers-bench", help="where the data sets are written")
    ap.add_argument("--keep", action="store_true", help="reuse data sets already written, keep them afterwards")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="readers to run, of: " + ",".join(SYSTEMS))
    args = ap.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown reader {s}")
    if "strata_iter" not in systems or not shutil.which("fio"):
        ap.error("strata_iter and fio are needed (the reference and the limit)")
    load_before = os.getloadavg()[0]
    skipped = skipped_peers(systems)
    for name, why in skipped.items():
        log(f"skipping {name}: {why}")
    sets = []
    for spec in args.sets.split(","):
        size, n, batch = (int(x) for x in spec.split(":"))
        sets.append(one_set(size, n, batch, args, systems, skipped))
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    text, problems = report(sets, skipped, args, load_before, os.getloadavg()[0])
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    result = {"args": vars(args), "skipped": skipped, "sets": sets}
    with open(os.path.join(ROOT, "bench", "results", f"loader_peers-{stamp}.md"), "w") as out:
        out.write(text + "\n\n```json\n" + json.dumps(result, indent=1) + "\n```\n")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
