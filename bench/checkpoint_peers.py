#!/usr/bin/env python3
"""Training checkpoints from Python: strata's asynchronous checkpointer against torch.save /
torch.load and safetensors (and torchsnapshot and torch.distributed.checkpoint where they
import), on the same state_dicts, in one run.

For each model (--sizes in MiB of tensor bytes, --dtypes float32 and/or bfloat16; the shapes of
bench/model_load.py: embedding and head, attention and MLP matrices, bias and norm vectors):

  1. memcpy: a copy of every tensor into a buffer faulted in beforehand (the floor of a save's
     stall);
  2. saves, --repeat rounds, methods interleaved; every tensor is changed (one element in every
     1024, outside the clock) before each strata save, so nothing deduplicates:
       strata: strata.torch.AsyncCheckpointer with a staging buffer as large as the model (one
         untimed save first, as in a training loop); "stall" is the time save() blocks the
         caller, "durable" is save() + wait() (packs fsynced, checkpoint tag written);
       torch.save / safetensors save_file: "stall" is the call (they block until written to
         the page cache), "durable" adds an fsync of the file;
  3. cold loads, --repeat rounds, each in a fresh Python process that imports its libraries,
     drops the page cache, and times the load plus a copy of every tensor into a buffer faulted
     in beforehand (so lazily mapped formats are charged for reading their bytes, as in
     bench/model_load.py);
  4. fio on a file of the model's size in the same directory: sequential write (O_DIRECT, 1 MiB,
     QD 16, end_fsync) and read (page cache dropped), the disk's limits;
  5. checks the loaded tensors (all names, shapes, dtypes; the bytes of a few by SHA-256).

Then the fine-tuning case (--frozen-mib, float32): ten checkpoints of a model whose parameters
are 90% frozen (the last layers, 10% of the bytes, change between saves), with and without an
Adam-like optimizer state for the trainable 10%; the repository's stored_bytes after the first
and after the tenth checkpoint.

Prints tables and one JSON line; both also go to bench/results/checkpoint_peers-<date>.md. Run as
root so the page cache can be dropped (otherwise loads are warm and it says so).

  python bench/checkpoint_peers.py [--sizes 100,1024] [--dtypes f32,bf16] [--repeat 2]
                                   [--frozen-mib 1024] [--dir /tmp/strata-ckpt-peers] [--skip-fio]
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import (ROOT, check_names, drop_caches, fio_seq, log, tensor_as_bytes, tensor_nbytes,
                      tensor_sha256)

PASS = "checkpoint-bench"
RUN = "bench"
PAGE = 4096
LOADS = [
    # name, label
    ("strata", "strata.torch.load (default: latest_valid=True, whole checkpoint verified first)"),
    ("strata_nocheck", "strata.torch.load(latest_valid=False) (each tensor authenticated as read)"),
    ("torch", "torch.load"),
    ("safetensors", "safetensors.torch.load_file"),
]


def torch_dtype(name):
    import torch

    return {"f32": torch.float32, "bf16": torch.bfloat16}[name]


def shapes(size_bytes, elem):
    """model_load.py's decoder shapes, scaled so the tensors hold about size_bytes at `elem`
    bytes per element."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from model_load import layout

    return layout(size_bytes * 4 // elem)


def make_model(size_bytes, dtype, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    elem = torch.empty(0, dtype=dtype).element_size()
    sd = {}
    for name, shape in shapes(size_bytes, elem):
        if len(shape) == 1:
            t = torch.ones(shape) + 0.02 * torch.randn(shape, generator=g)
        else:
            t = torch.randn(shape, generator=g) * (1.0 / shape[-1] ** 0.5)
        sd[name] = t.to(dtype)
    return sd


def perturb(sd, k):
    """Changes one element in every 1024 of every tensor (its lowest bits), so every 4 KiB of
    every tensor differs from the previous save."""
    import torch

    for t in sd.values():
        iv = t.view(torch.int16 if t.element_size() == 2 else torch.int32).reshape(-1)
        iv[k % 1024::1024] += 1


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def optional_peers():
    """(name -> reason) for the peers that cannot run here."""
    skipped = {}
    try:
        import torchsnapshot  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure is a reason to skip
        skipped["torchsnapshot"] = f"import failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
    try:
        import torch.distributed.checkpoint  # noqa: F401
    except Exception as e:  # noqa: BLE001
        import torch

        skipped["torch.distributed.checkpoint"] = f"torch {torch.__version__}: {type(e).__name__}: {e}"
    return skipped


# --- saves, in this process --------------------------------------------------------------------

def memcpy_s(sd, total):
    import torch

    buf = torch.empty(total, dtype=torch.uint8)
    buf.fill_(1)
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        off = 0
        for t in sd.values():
            b = tensor_as_bytes(t)
            buf[off:off + b.numel()].copy_(b)
            off += b.numel()
        best = min(best, time.perf_counter() - t0)
    return best


def time_saves(sd, d, repeat, methods, tag):
    """{method: [{"stall_s", "durable_s"}, ...]} and the step strata's last save has."""
    import safetensors.torch
    import strata
    import strata.torch
    import torch

    total = sum(map(tensor_nbytes, sd.values()))
    repo = strata.Repository.init(os.path.join(d, "repo"), passphrase=PASS)
    ck = strata.torch.AsyncCheckpointer(repo, RUN, staging_bytes=total + (64 << 20))
    ck.save(0, sd, rng=False)  # the staging buffer's first touch
    ck.wait()
    step = 0
    out = {m: [] for m in methods}
    for r in range(repeat):
        for m in methods:
            if m == "strata":
                step += 1
                perturb(sd, step)
                os.sync()
                t0 = time.perf_counter()
                ck.save(step, sd, rng=False)
                t1 = time.perf_counter()
                ck.wait()
                t2 = time.perf_counter()
            else:
                path = os.path.join(d, "model.pt" if m == "torch" else "model.safetensors")
                if os.path.exists(path):
                    os.remove(path)
                os.sync()
                t0 = time.perf_counter()
                if m == "torch":
                    torch.save(sd, path)
                else:
                    safetensors.torch.save_file(sd, path)
                t1 = time.perf_counter()
                fsync_path(path)
                t2 = time.perf_counter()
            out[m].append({"stall_s": t1 - t0, "durable_s": t2 - t0})
            log(f"[{tag} {r + 1}/{repeat}] save {m}: stall {t1 - t0:.3f} s, durable {t2 - t0:.3f} s "
                f"({total / (t2 - t0) / 1e9:.2f} GB/s)")
    ck.close()
    stats = repo.stats()
    repo.close()
    return out, step, stats


# --- one cold load, in a process of its own -----------------------------------------------------

def measure_load(method, spec, total, checks):
    import torch

    if method.startswith("strata"):
        import strata
        import strata.torch
    else:
        import safetensors.torch
    buf = torch.empty(total + PAGE, dtype=torch.uint8)
    buf.fill_(1)
    drop_caches()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if method.startswith("strata"):
        repo = strata.Repository.open(spec["repo"], passphrase=PASS)
        t_open = time.perf_counter() - t0
        sd = strata.torch.load(None, repo=repo, run=RUN, step=spec["step"],
                               latest_valid=(method == "strata"))["model"]
    elif method == "torch":
        t_open = 0.0
        sd = torch.load(spec["pt"])
    else:
        t_open = 0.0
        sd = safetensors.torch.load_file(spec["safetensors"])
    t1 = time.perf_counter()
    off = 0
    for t in sd.values():
        b = tensor_as_bytes(t)
        buf[off:off + b.numel()].copy_(b)
        off += b.numel()
    t2 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"open_s": t_open, "load_s": t1 - t0, "copy_s": t2 - t1, "total_s": t2 - t0,
            "cpu_s": r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime,
            "tensors": {n: [list(t.shape), str(t.dtype)] for n, t in sd.items()},
            "hashes": {n: tensor_sha256(sd[n]) for n in checks if n in sd}}


def child_load(method, spec, total, checks):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", method, json.dumps(spec),
           "--child-bytes", str(total), "--child-checks", ",".join(checks)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


# --- the fine-tuning case ------------------------------------------------------------------------

class _AdamState:
    """An optimizer's state_dict shaped like Adam's for the trainable tensors only."""

    def __init__(self, sd, names):
        import torch

        self.state = {i: {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(sd[n]),
                          "exp_avg_sq": torch.zeros_like(sd[n])} for i, n in enumerate(names)}
        self.step(torch.Generator().manual_seed(0))  # as after the first training step (not zeros)

    def step(self, g):
        for s in self.state.values():
            s["step"] += 1
            s["exp_avg"].normal_(generator=g)
            s["exp_avg_sq"].uniform_(generator=g)

    def state_dict(self):
        return {"state": self.state, "param_groups": [{"lr": 1e-4, "params": sorted(self.state)}]}


def frozen_case(size_bytes, d, with_optimizer, seed, saves=10):
    """Ten checkpoints, 10% of the parameter bytes (the last layers) changed between them.
    Returns stored bytes after each checkpoint and the names and share of the trainable tensors."""
    import strata
    import strata.torch
    import torch

    sd = make_model(size_bytes, torch.float32, seed)
    total = sum(map(tensor_nbytes, sd.values()))
    layers = sorted({n.split(".")[1] for n in sd if n.startswith("layers.")}, key=int)
    trainable, got = [], 0
    for layer in reversed(layers):  # fine-tune the top layers, as many as make 10% of the bytes
        names = [n for n in sd if n.startswith(f"layers.{layer}.")]
        if got + sum(tensor_nbytes(sd[n]) for n in names) > total // 10 and trainable:
            break
        trainable += names
        got += sum(tensor_nbytes(sd[n]) for n in names)
    opt = _AdamState(sd, trainable) if with_optimizer else None
    g = torch.Generator().manual_seed(seed + 1)
    repo_dir = os.path.join(d, "frozen-repo")
    shutil.rmtree(repo_dir, ignore_errors=True)
    stored, durable = [], []
    with strata.Repository.init(repo_dir, passphrase=PASS) as repo:
        ck = strata.torch.AsyncCheckpointer(repo, "finetune", staging_bytes=2 * total + (64 << 20))
        for step in range(saves):
            if step:
                for n in trainable:
                    sd[n].add_(torch.randn(sd[n].shape, generator=g), alpha=1e-4)
                if opt:
                    opt.step(g)
            t0 = time.perf_counter()
            ck.save(step, sd, opt, rng=False)
            ck.wait()
            durable.append(time.perf_counter() - t0)
            stored.append(repo.stats()["stored_bytes"])
        ck.close()
    disk = sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(repo_dir) for f in fs)
    shutil.rmtree(repo_dir)
    ckpt_bytes = total + (2 * got if opt else 0)
    return {"model_bytes": total, "trainable_bytes": got, "trainable_share": got / total,
            "trainable_tensors": len(trainable), "optimizer": with_optimizer, "checkpoint_tensor_bytes": ckpt_bytes,
            "stored_bytes": stored, "repo_dir_bytes": disk, "durable_s": durable,
            "growth": stored[-1] / stored[0]}


# --- the driver ----------------------------------------------------------------------------------

def median(rs, key):
    return statistics.median(r[key] for r in rs)


def one_model(mib, dtname, args, skipped):
    dtype = torch_dtype(dtname)
    d = os.path.join(args.dir, f"{dtname}-{mib}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    tag = f"{mib} MiB {dtname}"
    t0 = time.perf_counter()
    sd = make_model(mib << 20, dtype, args.seed)
    total = sum(map(tensor_nbytes, sd.values()))
    log(f"{tag}: {len(sd)} tensors, {total / 2**20:.0f} MiB, made in {time.perf_counter() - t0:.1f} s")
    res = {"size_mib": mib, "dtype": dtname, "tensors": len(sd), "bytes": total, "load_avg_start": os.getloadavg()}
    res["memcpy_s"] = memcpy_s(sd, total)
    saves, step, stats = time_saves(sd, d, args.repeat, ["strata", "torch", "safetensors"], tag)
    res["saves"] = saves
    res["strata_stats"] = stats
    checks = check_names(sd)
    ref = {"tensors": {n: [list(t.shape), str(t.dtype)] for n, t in sd.items()},
           "hashes": {n: tensor_sha256(sd[n]) for n in checks}}
    del sd
    spec = {"repo": os.path.join(d, "repo"), "step": step, "pt": os.path.join(d, "model.pt"),
            "safetensors": os.path.join(d, "model.safetensors")}
    res["file_bytes"] = {"pt": os.path.getsize(spec["pt"]), "safetensors": os.path.getsize(spec["safetensors"])}
    loads = {m: [] for m, _ in LOADS}
    problems = []
    for r in range(args.repeat):
        for m, _ in LOADS:
            x = child_load(m, spec, total, checks)
            if "error" in x:
                problems.append(f"{tag} load {m}: {x['error']}")
                log(problems[-1])
                continue
            if x.pop("tensors") != ref["tensors"]:
                problems.append(f"{tag} load {m}: names, shapes or dtypes differ")
            got = x.pop("hashes")
            bad = [n for n in ref["hashes"] if got.get(n) != ref["hashes"][n]]
            if bad:
                problems.append(f"{tag} load {m}: bytes differ in {bad}")
            loads[m].append(x)
            log(f"[{tag} {r + 1}/{args.repeat}] load {m}: {x['load_s']:.2f} s + copy {x['copy_s']:.2f} s "
                f"({total / x['total_s'] / 1e9:.2f} GB/s)")
    res["loads"] = loads
    if not args.skip_fio and shutil.which("fio"):
        f = os.path.join(d, "fio.tmp")
        size = max(total, 256 << 20)
        os.sync()
        res["fio_write_Bps"] = fio_seq(f, "write", size)
        drop_caches()
        res["fio_read_Bps"] = fio_seq(f, "read", size)
        os.remove(f)
    res["problems"] = problems
    res["load_avg_end"] = os.getloadavg()
    shutil.rmtree(d, ignore_errors=True)
    return res


def report(models, frozen, skipped, args, started):
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    gb = 1e9
    lines = [f"checkpoints from Python, {date}, {platform.node()}, {os.cpu_count()} cores, kernel {platform.release()}; "
             f"median of {args.repeat}; page cache dropped before each load", ""]
    for name, why in skipped.items():
        lines.append(f"- skipped {name}: {why}")
    lines += ["", "Saves (stall: the caller blocked; durable: until fsynced; strata's stall against the memcpy, "
              "each method's against torch.save):", "",
              "| model | method | stall s | durable s | durable GB/s | stall / memcpy | durable % of fio write "
              "| torch.save stall / this stall | torch.save durable / this durable |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m in models:
        tag = f"{m['size_mib']} MiB {m['dtype']}, {m['tensors']} tensors (load {m['load_avg_start'][0]:.1f})"
        mc = m["memcpy_s"]
        lines.append(f"| {tag} | memcpy of the same bytes | {mc:.3f} | | | 1.00x | | | |")
        ts, td = median(m["saves"]["torch"], "stall_s"), median(m["saves"]["torch"], "durable_s")
        for meth, label in (("strata", "strata AsyncCheckpointer"), ("torch", "torch.save"),
                            ("safetensors", "safetensors save_file")):
            s, dd = median(m["saves"][meth], "stall_s"), median(m["saves"][meth], "durable_s")
            fw = f"{100 * m['bytes'] / dd / m['fio_write_Bps']:.0f}%" if "fio_write_Bps" in m else "-"
            lines.append(f"| | {label} | {s:.3f} | {dd:.3f} | {m['bytes'] / dd / gb:.2f} | {s / mc:.2f}x | {fw} "
                         f"| {ts / s:.2f}x | {td / dd:.2f}x |")
        if "fio_write_Bps" in m:
            lines.append(f"| | fio sequential write, O_DIRECT, 1 MiB, QD 16 | | {m['bytes'] / m['fio_write_Bps']:.3f} "
                         f"| {m['fio_write_Bps'] / gb:.2f} | | 100% | | |")
    lines += ["", "Cold loads (load call + a copy of every tensor; strata's includes opening the repository):", "",
              "| model | method | open s | load s | copy s | total s | GB/s | % of fio read | torch.load / this |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m in models:
        tag = f"{m['size_mib']} MiB {m['dtype']}"
        base = median(m["loads"]["torch"], "total_s") if m["loads"]["torch"] else None
        for meth, label in LOADS:
            rs = m["loads"][meth]
            if not rs:
                lines.append(f"| {tag} | {label} | failed | | | | | | |")
                continue
            t = median(rs, "total_s")
            fr = f"{100 * m['bytes'] / t / m['fio_read_Bps']:.0f}%" if "fio_read_Bps" in m else "-"
            vs = f"{base / t:.2f}x" if base else "-"
            lines.append(f"| {tag} | {label} | {median(rs, 'open_s'):.2f} | {median(rs, 'load_s'):.2f} "
                         f"| {median(rs, 'copy_s'):.2f} | {t:.2f} | {m['bytes'] / t / gb:.2f} | {fr} | {vs} |")
            tag = ""
        if "fio_read_Bps" in m:
            lines.append(f"| | fio sequential read, O_DIRECT, 1 MiB, QD 16 | | | | {m['bytes'] / m['fio_read_Bps']:.2f} "
                         f"| {m['fio_read_Bps'] / gb:.2f} | 100% | |")
    if frozen:
        lines += ["", "Fine-tuning, 90% of the parameters frozen: ten checkpoints into one repository "
                  "(stored_bytes from repo.stats(); torch.save and safetensors write a whole file each time):", "",
                  "| case | trainable | stored after 1 | stored after 10 | 10 / 1 | torch.save, 10 files / 1 |",
                  "|---|---:|---:|---:|---:|---:|"]
        for f in frozen:
            label = "model" + (" + Adam state of the trainable tensors" if f["optimizer"] else "")
            lines.append(f"| {label} ({f['model_bytes'] / 2**20:.0f} MiB f32) | {100 * f['trainable_share']:.1f}% "
                         f"({f['trainable_tensors']} tensors) | {f['stored_bytes'][0] / 2**20:.0f} MiB "
                         f"| {f['stored_bytes'][-1] / 2**20:.0f} MiB | {f['growth']:.2f}x | 10.00x |")
    problems = [p for m in models for p in m["problems"]]
    lines += ["", "correctness: " + ("every load returned all names, shapes and dtypes, and the checked tensors "
                                     "byte for byte" if not problems else "; ".join(problems))]
    text = "\n".join(lines)
    result = {"date": date, "node": platform.node(), "cores": os.cpu_count(), "args": vars(args), "skipped": skipped,
              "models": models, "frozen": frozen, "wall_s": time.time() - started, "load_avg_end": os.getloadavg()}
    return text, result, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1024", help="model sizes, MiB of tensor bytes")
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--frozen-mib", type=int, default=1024, help="0: skip the fine-tuning case")
    ap.add_argument("--dir", default="/tmp/strata-ckpt-peers")
    ap.add_argument("--skip-fio", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "SPEC"), help=argparse.SUPPRESS)
    ap.add_argument("--child-bytes", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-checks", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        checks = [c for c in args.child_checks.split(",") if c]
        print(json.dumps(measure_load(args.child[0], json.loads(args.child[1]), args.child_bytes, checks)))
        return

    started = time.time()
    skipped = optional_peers()
    for name, why in skipped.items():
        log(f"skipping {name}: {why}")
    os.makedirs(args.dir, exist_ok=True)
    models = []
    for mib in [int(s) for s in args.sizes.split(",") if s]:
        for dt in [s for s in args.dtypes.split(",") if s]:
            models.append(one_model(mib, dt, args, skipped))
    frozen = []
    if args.frozen_mib:
        for with_opt in (False, True):
            f = frozen_case(args.frozen_mib << 20, args.dir, with_opt, args.seed)
            log(f"fine-tuning{' + optimizer' if with_opt else ''}: stored {f['stored_bytes'][0] / 2**20:.0f} MiB after 1, "
                f"{f['stored_bytes'][-1] / 2**20:.0f} MiB after 10 ({f['growth']:.2f}x)")
            frozen.append(f)
    text, result, problems = report(models, frozen, skipped, args, started)
    print(text)
    print(json.dumps(result))
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    with open(os.path.join(ROOT, "bench", "results", f"checkpoint_peers-{stamp}.md"), "w") as out:
        out.write(text + "\n\n```json\n" + json.dumps(result, indent=1) + "\n```\n")
    shutil.rmtree(args.dir, ignore_errors=True)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
