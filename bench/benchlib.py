"""What the benchmark drivers share: logging, running commands, dropping the page cache, fio's
sequential and random-read rates, and the bytes of torch tensors (imported only by the drivers that use torch)."""
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd):
    """Runs cmd (logged), fails on a non-zero exit, returns its stdout."""
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def cpu_model_and_memory():
    """(the CPU's model name from lscpu, or "?"; total RAM in bytes)."""
    model = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    return model, mem


def save_report(name, md, when):
    """Writes `md` to bench/results/<name>-<when as YYYYMMDD-HHMM>.md, prints it, returns the path."""
    outdir = os.path.join(ROOT, "bench", "results")
    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, f"{name}-{when:%Y%m%d-%H%M}.md")
    with open(out, "w") as f:
        f.write(md)
    print(md)
    log(f"report: {out}")
    return out


def drop_caches():
    """Writes dirty pages back and drops the page cache (needs root; warns otherwise)."""
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        log(f"cannot drop caches ({e}); numbers include warm caches")


def fio_seq(path, rw, size=0):
    """fio's sequential `rw` ("read" or "write") rate on `path` in bytes/s: O_DIRECT, 1 MiB
    requests, queue depth 16; `size` bytes (0: the whole file); a write ends with an fsync."""
    cmd = ["fio", "--output-format=json", "--name=seq", f"--rw={rw}", "--ioengine=libaio", "--direct=1",
           "--bs=1m", "--iodepth=16", "--filename=" + path]
    if size:
        cmd.append(f"--size={size // (1 << 20)}m")
    cmd.append("--end_fsync=1" if rw == "write" else "--readonly")
    return json.loads(run(cmd))["jobs"][0][rw]["bw_bytes"]


def fio_randread(files, bs, qd, seconds):
    """fio's random reads over `files` for `seconds`: io_uring, O_DIRECT, registered files and
    buffers, block size `bs`, queue depth `qd`. {"iops", "mib_s", "mb_s", "p50_us", "p99_us"}."""
    out = run(["fio", "--output-format=json", "--name=randread", "--rw=randread", "--ioengine=io_uring",
               "--direct=1", "--registerfiles=1", "--fixedbufs=1", f"--bs={bs}", f"--iodepth={qd}",
               "--norandommap", "--randrepeat=0", "--time_based", f"--runtime={seconds}",
               "--filename=" + ":".join(files)])
    job = json.loads(out)["jobs"][0]["read"]
    return {"iops": job["iops"], "mib_s": job["bw_bytes"] / (1 << 20), "mb_s": job["bw_bytes"] / 1e6,
            "p50_us": job["clat_ns"]["percentile"]["50.000000"] / 1000,
            "p99_us": job["clat_ns"]["percentile"]["99.000000"] / 1000}


def tensor_nbytes(t):
    return t.numel() * t.element_size()


def tensor_as_bytes(t):
    """A tensor's bytes as a flat uint8 tensor (a view when it is contiguous)."""
    import torch

    return t.contiguous().reshape(-1).view(torch.uint8)


def tensor_sha256(t):
    return hashlib.sha256(tensor_as_bytes(t).numpy().data).hexdigest()


def check_names(sd):
    """The tensors of a state_dict whose bytes a benchmark compares after loading: the largest,
    the smallest, the first, the last, and three from the middle."""
    names = list(sd)
    by_size = sorted(names, key=lambda n: tensor_nbytes(sd[n]))
    n = len(names)
    return list(dict.fromkeys([by_size[-1], by_size[0], names[0], names[-1], names[n // 3], names[n // 2],
                               names[2 * n // 3]]))


def timed_json(cmd, env):
    """Runs cmd (a strata command with --json), returns (wall seconds, CPU seconds of the child,
    its JSON output parsed)."""
    import resource
    import time
    start = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime), json.loads(out)
