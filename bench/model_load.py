#!/usr/bin/env python3
"""Cold load of a model to usable tensors: strata's serving file against safetensors and
torch.load, on the same weights, in one run.

  1. makes a float32 state_dict of --size-mib (default 1 GiB; seeded random): a token embedding
     and an output head (the few large matrices), many layers of attention and MLP matrices
     (the mid-size ones, Llama-like proportions) and bias/norm vectors (the small ones);
  2. writes it (a) into a fresh encrypted strata repository with strata.torch.save, then as a
     serving file with CheckpointReader.export_serving (what `strata model export --format
     strata` writes), (b) with safetensors.torch.save_file, (c) with torch.save;
  3. for each method, --repeat times, interleaved: a fresh Python process imports its
     libraries, drops the page cache, then times the load call plus a touch of every byte of
     every tensor (--touch copy: a copy into a buffer allocated and faulted in before the
     clock, the same work an upload to a GPU does; sum: a float sum of each tensor; pages: one
     byte per 4 KiB page), so mapped and read formats are compared on bytes actually in memory;
  4. measures the disk's own limit on the same bytes: a cold sequential read() of the
     safetensors file into a buffer allocated beforehand, and fio (O_DIRECT, 1 MiB, QD 16);
  5. checks the loaded tensors (names, shapes, dtypes of all; the bytes of a few, by SHA-256)
     against the originals, and prints a table (median seconds, GB/s of tensor bytes, speed-up
     against safetensors' load_file and torch.load) and one JSON line with every number; the
     table and the JSON also go to bench/results/model_load-<date>.md.

Needs torch, numpy, the strata Python package and safetensors (`pip install safetensors` in
the environment that has strata). Run it as root: dropping the page cache needs it (without
root it warns and the numbers are warm-cache numbers).

  python bench/model_load.py [--size-mib 1024] [--repeat 3] [--touch copy|sum|pages]
                             [--dir /tmp/strata-model-load] [--keep] [--methods a,b,...] [--skip-fio]
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

from benchlib import ROOT, check_names, drop_caches, fio_seq, log, tensor_nbytes, tensor_sha256

METHODS = [
    # name, file, label
    ("read", "safetensors", "sequential read() of the .safetensors file (disk + page cache limit)"),
    ("strata_on_demand", "strata", "strata.torch.load_weights(verify=\"on_demand\")"),
    ("strata_none", "strata", "strata.torch.load_weights(verify=\"none\")"),
    ("st_load_file", "safetensors", "safetensors.torch.load_file (mmap backend)"),
    ("st_load_file_pread", "safetensors", "safetensors.torch.load_file(backend=\"pread\")"),
    ("st_safe_open", "safetensors", "safetensors safe_open + get_tensor per tensor (mmap)"),
    ("torch_load", "pt", "torch.load"),
    ("torch_load_mmap", "pt", "torch.load(mmap=True)"),
]
FILES = {"strata": "model.strata", "safetensors": "model.safetensors", "pt": "model.pt"}
PAGE = 4096


# --- the model ---------------------------------------------------------------------------------

def layout(size_bytes):
    """Names and shapes of a decoder-only model of about size_bytes in float32: the width is the
    largest of 4096, 2048, 1024, ... that still leaves at least 12 layers."""
    vocab = 32000
    for hidden in (4096, 2048, 1024, 512, 256, 128, 64):
        ff = (hidden * 8 // 3 + 255) // 256 * 256  # 4096 -> 11008
        per_layer = (4 * hidden * hidden + 3 * hidden * ff + 3 * hidden + 2 * hidden) * 4
        head = 2 * vocab * hidden * 4 + hidden * 4
        layers = (size_bytes - head) // per_layer
        if layers >= 12 or hidden == 64:
            break
    layers = max(1, layers)
    shapes = [("embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"layers.{i}."
        shapes += [(p + "input_layernorm.weight", (hidden,)),
                   (p + "self_attn.q_proj.weight", (hidden, hidden)), (p + "self_attn.q_proj.bias", (hidden,)),
                   (p + "self_attn.k_proj.weight", (hidden, hidden)), (p + "self_attn.k_proj.bias", (hidden,)),
                   (p + "self_attn.v_proj.weight", (hidden, hidden)), (p + "self_attn.v_proj.bias", (hidden,)),
                   (p + "self_attn.o_proj.weight", (hidden, hidden)),
                   (p + "post_attention_layernorm.weight", (hidden,)),
                   (p + "mlp.gate_proj.weight", (ff, hidden)), (p + "mlp.up_proj.weight", (ff, hidden)),
                   (p + "mlp.down_proj.weight", (hidden, ff))]
    shapes += [("norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    return shapes


def make_model(size_bytes, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in layout(size_bytes):
        if len(shape) == 1:
            sd[name] = torch.ones(shape) + 0.02 * torch.randn(shape, generator=g)
        else:
            sd[name] = torch.randn(shape, generator=g) * (1.0 / shape[-1] ** 0.5)
    return sd


def write_files(d, size_bytes, seed):
    """Writes the three files (unless d/model.json says they are there for these settings) and
    returns the description of the model: names, shapes, dtypes, reference hashes."""
    meta_path = os.path.join(d, "model.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta["size_bytes"] == size_bytes and meta["seed"] == seed and all(
                os.path.exists(os.path.join(d, p)) for p in FILES.values()):
            log(f"reusing the files in {d}")
            return meta
    import safetensors.torch
    import strata
    import strata.torch
    import torch

    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    t0 = time.perf_counter()
    sd = make_model(size_bytes, seed)
    log(f"model: {len(sd)} tensors, {sum(map(tensor_nbytes, sd.values())) / 2**20:.0f} MiB, "
        f"made in {time.perf_counter() - t0:.1f} s")
    checks = check_names(sd)
    meta = {"size_bytes": size_bytes, "seed": seed,
            "tensors": {n: [list(t.shape), str(t.dtype)] for n, t in sd.items()},
            "bytes": sum(map(tensor_nbytes, sd.values())),
            "hashes": {n: tensor_sha256(sd[n]) for n in checks}, "write_s": {}}

    t0 = time.perf_counter()
    repo_dir = os.path.join(d, "repo")
    with strata.Repository.init(repo_dir, passphrase="model-load-bench") as repo:
        strata.torch.save(sd, step=1, run="model", repo=repo, rng=False)
        t1 = time.perf_counter()
        strata.CheckpointReader(repo, "model").export_serving(os.path.join(d, FILES["strata"]))
    meta["write_s"]["strata_save"] = t1 - t0
    meta["write_s"]["strata_export"] = time.perf_counter() - t1
    shutil.rmtree(repo_dir)  # only the serving file is measured

    t0 = time.perf_counter()
    safetensors.torch.save_file(sd, os.path.join(d, FILES["safetensors"]))
    meta["write_s"]["safetensors"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch.save(sd, os.path.join(d, FILES["pt"]))
    meta["write_s"]["torch_save"] = time.perf_counter() - t0
    log(f"written: {json.dumps(meta['write_s'])}")
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    return meta


# --- one measurement, in a process of its own ----------------------------------------------------

def measure(method, path, touch, total_bytes, checks):
    """Imports what the method needs, drops the page cache, and times load + touch. Returns a
    dict of the times, the process's faults and CPU time during them, and the loaded tensors'
    description (names, shapes, dtypes; hashes of `checks`)."""
    import torch

    if method.startswith("strata"):
        import strata.torch
    if method.startswith("st_"):
        import safetensors
        import safetensors.torch
    buf = torch.empty(total_bytes + PAGE, dtype=torch.uint8)
    buf.fill_(1)  # faulted in before the clock
    acc = 0.0

    def touch_all(tensors):
        nonlocal acc
        off = 0
        for t in tensors:
            flat = t.reshape(-1).view(torch.uint8) if t.dim() else t.reshape(1).view(torch.uint8)
            n = flat.numel()
            if touch == "copy":
                buf[off:off + n].copy_(flat)
            elif touch == "sum":
                acc += float(t.sum())
            else:
                acc += int(flat[::PAGE].sum()) + int(flat[-1])
            off += n

    drop_caches()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    keep = None  # what holds the file open (checked after the clock)
    if method == "read":
        view = memoryview(buf.numpy())
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            got = 0
            while got < min(size, len(view)):
                n = f.readinto(view[got:got + (16 << 20)])
                if not n:
                    break
                got += n
        t1 = time.perf_counter()
        sd = None
    else:
        if method == "strata_on_demand":
            sd = strata.torch.load_weights(path, verify="on_demand", prefix="model/")
        elif method == "strata_none":
            sd = strata.torch.load_weights(path, verify="none", prefix="model/")
        elif method == "st_load_file":
            sd = safetensors.torch.load_file(path)
        elif method == "st_load_file_pread":
            sd = safetensors.torch.load_file(path, backend="pread")
        elif method == "st_safe_open":
            keep = safetensors.safe_open(path, framework="pt")
            keep.__enter__()
            sd = {}
        elif method == "torch_load":
            sd = torch.load(path)
        elif method == "torch_load_mmap":
            sd = torch.load(path, mmap=True)
        else:
            raise SystemExit(f"unknown method {method}")
        t1 = time.perf_counter()
        if method == "st_safe_open":  # streaming: each tensor fetched, then touched
            for name in keep.keys():
                sd[name] = keep.get_tensor(name)
                touch_all([sd[name]])
        else:
            touch_all(sd.values())
    t2 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out = {"load_s": t1 - t0, "touch_s": t2 - t1, "total_s": t2 - t0,
           "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
           "major_faults": r1.ru_majflt - r0.ru_majflt, "minor_faults": r1.ru_minflt - r0.ru_minflt}
    if sd is not None:
        out["tensors"] = {n: [list(t.shape), str(t.dtype)] for n, t in sd.items()}
        out["hashes"] = {n: tensor_sha256(sd[n]) for n in checks if n in sd}
    if keep is not None:
        keep.__exit__(None, None, None)
    return out


def child(method, path, touch, total_bytes, checks):
    """Runs measure() in a fresh interpreter (its own heap, nothing mapped from an earlier run)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", method, path, "--touch", touch,
           "--child-bytes", str(total_bytes), "--child-checks", ",".join(checks)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def supports_torch_mmap():
    import inspect

    import torch

    return "mmap" in inspect.signature(torch.load).parameters


# --- the driver ----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--touch", choices=["copy", "sum", "pages"], default="copy")
    ap.add_argument("--dir", default="/tmp/strata-model-load")
    ap.add_argument("--keep", action="store_true", help="keep the files (and reuse them when they match)")
    ap.add_argument("--methods", default=",".join(m[0] for m in METHODS))
    ap.add_argument("--skip-fio", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--child-bytes", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-checks", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        checks = [c for c in args.child_checks.split(",") if c]
        print(json.dumps(measure(args.child[0], args.child[1], args.touch, args.child_bytes, checks)))
        return

    load_before = os.getloadavg()
    started = time.time()
    meta = write_files(args.dir, args.size_mib << 20, args.seed)
    total = meta["bytes"]
    checks = list(meta["hashes"])
    methods = [m for m in METHODS if m[0] in args.methods.split(",")]
    if not supports_torch_mmap():
        import torch

        log(f"torch {torch.__version__}: torch.load has no mmap argument; skipping torch_load_mmap")
        methods = [m for m in methods if m[0] != "torch_load_mmap"]

    runs = {m[0]: [] for m in methods}
    errors = {}
    fio_bw = []
    for i in range(args.repeat):
        for name, kind, _ in methods:
            if name in errors:
                continue
            r = child(name, os.path.join(args.dir, FILES[kind]), args.touch, total, checks)
            if "error" in r:
                errors[name] = r["error"]
                log(f"{name}: failed: {r['error']}")
                continue
            log(f"[{i + 1}/{args.repeat}] {name}: load {r['load_s']:.2f} s + touch {r['touch_s']:.2f} s = "
                f"{r['total_s']:.2f} s ({total / r['total_s'] / 1e9:.2f} GB/s), major faults {r['major_faults']}, "
                f"cpu {r['user_s'] + r['sys_s']:.2f} s")
            runs[name].append(r)
        if not args.skip_fio and shutil.which("fio"):
            drop_caches()
            fio_bw.append(fio_seq(os.path.join(args.dir, FILES["safetensors"]), "read"))

    # correctness: every name, shape and dtype; the bytes of the checked tensors
    problems = []
    for name, rs in runs.items():
        for r in rs:
            if name == "read":
                continue
            if r["tensors"] != meta["tensors"]:
                missing = set(meta["tensors"]) ^ set(r["tensors"])
                problems.append(f"{name}: tensors differ ({len(missing)} names differ)")
            bad = [n for n in checks if r["hashes"].get(n) != meta["hashes"][n]]
            if bad:
                problems.append(f"{name}: bytes differ in {bad}")
            r.pop("tensors")
            r.pop("hashes")

    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items() if rs}
    base_st = med.get("st_load_file", {}).get("total_s")
    base_pt = med.get("torch_load", {}).get("total_s")
    sizes = {k: os.path.getsize(os.path.join(args.dir, f)) for k, f in FILES.items()}

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"model cold load, {date}, {platform.node()}, {os.cpu_count()} cores, kernel {platform.release()}, "
             f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after",
             f"model: {len(meta['tensors'])} float32 tensors, {total / 2**20:.0f} MiB of tensor bytes; files: "
             + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in sizes.items())
             + f"; touch: {args.touch}; median of {args.repeat}; page cache dropped before each", "",
             "| method | load s | touch s | total s | GB/s | vs load_file | vs torch.load | CPU s | major faults |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, kind, label in methods:
        if name not in med:
            lines.append(f"| {label} | failed: {errors.get(name, '?')} | | | | | | | |")
            continue
        m = med[name]
        vs_st = f"{base_st / m['total_s']:.2f}x" if base_st else "-"
        vs_pt = f"{base_pt / m['total_s']:.2f}x" if base_pt else "-"
        lines.append(f"| {label} | {m['load_s']:.2f} | {m['touch_s']:.2f} | {m['total_s']:.2f} "
                     f"| {total / m['total_s'] / 1e9:.2f} | {vs_st} | {vs_pt} | {m['user_s'] + m['sys_s']:.2f} "
                     f"| {m['major_faults']:.0f} |")
    if fio_bw:
        bw = statistics.median(fio_bw)
        lines.append(f"| fio sequential read of the .safetensors file, O_DIRECT, 1 MiB, QD 16 | | | "
                     f"{sizes['safetensors'] / bw:.2f} | {bw / 1e9:.2f} | | | | |")
    lines.append("")
    lines.append("correctness: " + ("all names, shapes and dtypes equal; bytes equal in " + ", ".join(checks)
                                   if not problems else "; ".join(problems)))
    print("\n".join(lines))
    result = {"date": date, "node": platform.node(), "cores": os.cpu_count(), "load_before": load_before,
              "load_after": os.getloadavg(), "size_mib": args.size_mib, "tensor_bytes": total,
              "tensors": len(meta["tensors"]), "file_bytes": sizes, "touch": args.touch, "repeat": args.repeat,
              "write_s": meta["write_s"], "median": med, "runs": runs, "errors": errors,
              "fio_read_bytes_s": fio_bw, "problems": problems, "wall_s": time.time() - started}
    print(json.dumps(result))
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    with open(os.path.join(ROOT, "bench", "results", f"model_load-{stamp}.md"), "w") as out:
        out.write("\n".join(lines) + "\n\n```json\n" + json.dumps(result, indent=1) + "\n```\n")
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
