#!/usr/bin/env python3
"""strata transform against OpenCV in Python on the same images, in the same run.

The pipeline: decode (JPEG, RGB), resize to 224x224 (bilinear), normalise with the ImageNet
mean and std, float32 CHW. N synthetic JPEGs (smooth gradients and noise, 320x240 by default)
are written to a directory, ingested into a fresh repository (`strata ingest DIR bench@main`),
and then:

  strata, 1 thread     `strata --threads 1 transform ...`: reads each file from the repository
                       (decrypt, decompress, verify), decodes, resizes, normalises, writes shards,
                       and stores the shards in the repository as a commit
  strata, 2 threads    the same with --threads 2 (another output branch, so no cache hit)
  strata image ops     `image_ops_bench` (built with the benchmarks): strata's own decode,
                       resize and normalise code on one thread, over the same files read from
                       the page cache, the tensor written into a reused buffer and nothing
                       stored: the Python loops' work exactly, like with like
  OpenCV (Python)      one process: for each file, read it (page cache), cv2.imdecode,
                       cvtColor, cv2.resize, numpy normalise, transpose to CHW; the result is
                       dropped (nothing is written)
  PIL (Python)         one process: Image.open, convert RGB, resize bilinear, then
                       torchvision's ToTensor + Normalize written with numpy (CHW, /255,
                       - mean, / std); the result is dropped

images/s per core = images / wall seconds / cores used; on a machine loaded by other work the
CPU seconds (user + system, of the strata process or the Python loop) are the steadier measure.
strata's whole run includes work the Python loop does not do (storing the shards in the
repository: chunking, keyed hashing, compression, encryption; the commit). The "pipeline"
columns compare like with like: strata's transform phase (read each file from the repository,
decode, resize, normalise, write the shards with their checksums) against the Python loop, in
images per CPU-second of every thread of the process (write_cpu_seconds of the report), which
is the per-core measure that does not depend on how many threads ran. The output is one shard,
stored after that phase (with several, each is stored while the workers go on, and their CPU
meanwhile would count as the store's). Needs numpy and cv2 (a venv with numpy and opencv-python-headless, or
Debian's python3-opencv) and, for the PIL row, pillow. Prints a markdown summary and writes it to bench/results/transform-DATE.md.

  .venv-bench-transform/bin/python bench/transform.py [--build build-transform] [--images 2000]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import timed_json  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "strata-bench-passphrase"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

PIPELINE = """\
version: 1
name: bench-224
select: {extensions: [.jpg]}
label: none
ops:
  - decode: {mode: rgb}
  - resize: {size: 224, interpolation: linear}
  - normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
  - tensor: {dtype: float32, layout: chw}
output: {keep_path: false, shard_size: SHARD_MIBMiB}
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_images(dest, n, width, height):
    import cv2
    import numpy as np
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(n):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        base = np.stack([(xx * a + yy * b) % 256, (xx * b + i) % 256, (yy * c + 3 * i) % 256], axis=2)
        noise = rng.normal(0, 12, (height, width, 3))
        img = np.clip(base + noise, 0, 255).astype(np.uint8)
        cv2.imwrite(os.path.join(dest, f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def python_opencv(src):
    import cv2
    import numpy as np
    cv2.setNumThreads(1)  # one core, as strata --threads 1
    mean = np.array(MEAN, dtype=np.float32) * 255
    inv_std = 1.0 / (np.array(STD, dtype=np.float32) * 255)
    files = sorted(os.listdir(src))
    start = time.perf_counter()
    cpu0 = time.process_time()
    for name in files:
        with open(os.path.join(src, name), "rb") as f:
            data = np.frombuffer(f.read(), dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (224, 224), interpolation=cv2.INTER_LINEAR)
        x = (img.astype(np.float32) - mean) * inv_std
        x = np.ascontiguousarray(x.transpose(2, 0, 1))
    return len(files), time.perf_counter() - start, time.process_time() - cpu0


def python_pil(src):
    """PIL + torchvision-style transforms (Resize, ToTensor, Normalize) written with numpy, as
    torchvision does them on PIL images: convert to RGB, resize with bilinear filtering, scale
    to [0, 1], subtract the mean and divide by the std per channel, CHW."""
    import numpy as np
    from PIL import Image
    mean = np.array(MEAN, dtype=np.float32).reshape(3, 1, 1)
    std = np.array(STD, dtype=np.float32).reshape(3, 1, 1)
    files = sorted(os.listdir(src))
    start = time.perf_counter()
    cpu0 = time.process_time()
    for name in files:
        with Image.open(os.path.join(src, name)) as im:
            img = im.convert("RGB").resize((224, 224), Image.BILINEAR)
        x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        x = np.ascontiguousarray((x - mean) / std)
    return len(files), time.perf_counter() - start, time.process_time() - cpu0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-transform")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--dir", default=None, help="work directory (default: a new one under $TMPDIR)")
    args = ap.parse_args()
    strata = os.path.join(ROOT, args.build, "strata")
    work = args.dir or tempfile.mkdtemp(prefix="strata-transform-bench-")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, STRATA_PASSWORD=PASSWORD, STRATA_NO_PROGRESS="1")
    try:
        src = os.path.join(work, "images")
        os.makedirs(src, exist_ok=True)
        log(f"writing {args.images} JPEGs {args.width}x{args.height} to {src}")
        make_images(src, args.images, args.width, args.height)
        src_bytes = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src))
        repo = os.path.join(work, "repo")
        pipe = os.path.join(work, "pipeline.yaml")
        # One shard for the whole output, so that it is stored after the transform phase and not
        # in the middle of it: the workers keep running while a finished shard is stored, and
        # their CPU would then count as the store's.
        shard_mib = max(256, args.images * 3 * 224 * 224 * 4 * 11 // 10 // (1 << 20) + 1)
        with open(pipe, "w") as f:
            f.write(PIPELINE.replace("SHARD_MIB", str(shard_mib)))
        subprocess.run([strata, "-q", "init", repo, "--kdf-mem", "8", "--kdf-ops", "1"], env=env, check=True)
        subprocess.run([strata, "-q", "-r", repo, "dataset", "create", "bench"], env=env, check=False)
        subprocess.run([strata, "-q", "-r", repo, "ingest", src, "bench@main"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        rows = []
        for threads in (1, 2):
            wall, cpu, r = timed_json([strata, "--json", "--threads", str(threads), "-r", repo, "transform",
                                       "bench@main", "--pipeline", pipe, "--out", f"bench@t{threads}"], env)
            assert r["records"] == args.images, r
            phases = (f"transform+write {r['write_seconds']:.2f} s ({r['write_cpu_seconds']:.2f} CPU s), "
                      f"store {r['store_seconds']:.2f} s ({r['store_cpu_seconds']:.2f} CPU s)")
            rows.append((f"strata transform, {threads} thread(s)", threads, wall, cpu, r["write_cpu_seconds"], phases))
        ops_bench = os.path.join(ROOT, args.build, "bench", "image_ops_bench")
        if os.path.exists(ops_bench):
            out = subprocess.run([ops_bench, pipe, src], check=True, capture_output=True, text=True).stdout
            r = json.loads(out.splitlines()[-1])
            rows.append(("strata image ops (C++), 1 thread", 1, r["seconds"], r["cpu_seconds"], r["cpu_seconds"],
                         "decode+resize+normalise only"))
        else:
            log(f"{ops_bench} is not built: no row for strata's image ops alone")
        n, secs, cpu = python_opencv(src)
        rows.append(("OpenCV in Python, 1 process", 1, secs, cpu, cpu, "decode+resize+normalise only"))
        py_rate = n / secs
        py_cpu_rate = n / cpu
        try:
            n, secs, cpu = python_pil(src)
            rows.append(("PIL + torchvision-style in Python, 1 process", 1, secs, cpu, cpu,
                         "decode+resize+normalise only"))
        except ImportError:
            log("PIL is not installed: no PIL row (pip install pillow)")
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        load = os.getloadavg()
        lines = [
            f"Command: `{' '.join(sys.argv)}`; {date}; {platform.node()}, {os.cpu_count()} cores, "
            f"load average {load[0]:.1f} at the end.",
            f"{args.images} JPEGs {args.width}x{args.height} ({src_bytes / 1e6:.1f} MB) -> float32 3x224x224, "
            f"{args.images * 3 * 224 * 224 * 4 / 1e9:.2f} GB of tensors.",
            "",
            "| run | wall s | images/s | images/s per core (wall) | vs OpenCV | CPU s | images per CPU-second | vs OpenCV "
            "| pipeline images per CPU-second | vs OpenCV | phases |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        # "pipeline": strata's transform+write phase (read from the repository, decode, resize,
        # normalise, write the shards; not the storing of the output), per CPU-second; Python's loop.
        for name, cores, wall, cpu, pipe_cpu, phases in rows:
            rate = args.images / wall
            cpu_rate = args.images / cpu
            pipe_rate = args.images / pipe_cpu
            lines.append(f"| {name} | {wall:.2f} | {rate:.0f} | {rate / cores:.0f} | {rate / cores / py_rate:.2f}x "
                         f"| {cpu:.2f} | {cpu_rate:.0f} | {cpu_rate / py_cpu_rate:.2f}x | {pipe_rate:.0f} "
                         f"| {pipe_rate / py_cpu_rate:.2f}x | {phases} |")
        text = "\n".join(lines) + "\n"
        print(text)
        os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M")
        with open(os.path.join(ROOT, "bench", "results", f"transform-{stamp}.md"), "w") as f:
            f.write(text)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
