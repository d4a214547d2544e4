#!/usr/bin/env python3
"""Ingest and curation: strata against the tools people use instead, on the same data, in one run.

Parts (--parts, default all four; sizes times --scale):

  fmnist  Fashion-MNIST, 70,000 images in Debian's IDX files (dataset-fashion-mnist, installed
          with apt-get when missing and running as root):
            strata:  `strata ingest` of the train and t10k images files (labels joined from
                     their sibling files) into one dataset: 70,000 PGM files with a label record
                     each;
            convert: a Python script (standard library: gzip + struct) that writes the same
                     PGM files plus labels.csv to disk, the usual way to get files out of IDX;
            restic:  `restic backup` of the converted folder, directly after the conversion
                     (the page cache is not dropped in between: it is one pipeline).
  jpeg    a folder of 100,000 JPEG images (--jpegs) of about 100 KiB each, 640x480, made with
          OpenCV (python3-opencv) in ten class folders; some of them are exact copies, near
          copies (re-encoded at another quality, brightened, or scaled to 88-95%), too small
          (24x24), or corrupt (truncated to 40%, random bytes, or a JPEG header followed by
          zeros); the report lists how many of each:
            strata:  `strata ingest DIR NAME@main --image-folder`;
            restic:  `restic backup DIR`.
  tar     a 4 GiB (--tar-bytes) tar.gz of mixed files, built deterministically by this script:
          regular files of /usr/share and /usr/lib (in a seeded shuffled order, at most
          64 MiB each), generated text (log lines and prose from seeded pools, which gzip
          shrinks about 3x and 2x), seeded random bytes (incompressible), and exact copies
          of earlier members under other names (so deduplication has work); 35/25/25/15% of
          the uncompressed bytes, members interleaved, written with Python's tarfile + gzip
          level 6 until the compressed size reaches the target (the real files make it
          depend on the machine's packages; the report gives its SHA-256):
            strata:       `strata ingest mixed.tar.gz NAME@main` (streamed, deduplicated,
                          compressed and encrypted; never extracted to disk);
            tar -xzf:     GNU tar extracting it to disk (tar runs gzip -d in a second process);
            tar + restic: tar -xzf, then `restic backup` of the extracted tree (the pipeline a
                          restic user runs; restic directly after tar, page cache kept).
  curate  curation of the JPEG folder (ingested untimed first if the jpeg part did not run):
            strata:      `strata curate NAME@main NAME@curated --rules rules.yaml`, rules:
                         images (decode check, at least 32x32), exact duplicates, near
                         duplicates (near_image: --near-threshold);
            PIL:         bench/curate_pil.py in the bench venv: every image read, SHA-256,
                         decoded with PIL (open + load), size-checked, imagehash.phash; exact
                         duplicates by SHA-256, near ones by Hamming distance <= the same
                         threshold; one process (and more for each count in --pil-procs);
            PIL draft:   the same with Image.draft("L", (64, 64)) before load: JPEGs decoded at
                         1/8 scale by libjpeg (every block still decoded), one process;
            PIL headers: bench/curate_pil.py --header-only: header parsed, whole file hashed,
                         no decode, no phash: the floor of any Python script doing this.
          Every side's counts of corrupt, too small, duplicate and near-duplicate images are
          reported next to what the generator made. The target (5x) is against the first PIL
          row, the plain script.

Fairness: the same input files for every tool; the page cache is dropped (sync + drop_caches,
when running as root) before each cold step; every step that writes ends with `sync`, inside its
time; strata with STRATA_PASSWORD and `strata init`'s defaults (FastCDC 1 MiB average, zstd-3,
AES-256-GCM); restic 0.14 with RESTIC_PASSWORD and a local repository (format v2, compression
auto). MB/s = logical bytes (extracted / file bytes) / wall seconds, 1 MB = 10^6 B; cores = CPU
seconds of the command and its children / wall seconds. Stored sizes are the apparent sizes of
the files in each repository or directory. --no-drop keeps the page cache (for a trial run
while another benchmark shares the machine; the report says so).

Python: this script needs only the standard library. The JPEG generator runs in a child process
under --gen-python (default /usr/bin/python3, which has Debian's python3-opencv and numpy; it is
installed with apt-get when missing and running as root). The PIL peer runs under the bench venv
(--venv, default .venv-bench in the repository root), created when missing with
  /usr/bin/python3 -m venv --system-site-packages .venv-bench
  .venv-bench/bin/pip install --upgrade pillow imagehash
(pip brings numpy 2, scipy and PyWavelets for imagehash into the venv, which is why the OpenCV
generator runs under the system interpreter and not in the venv).

The report (markdown) goes to bench/results/ingest-<date>.md and is printed. Generated data is
kept under --workdir/data between runs with --keep (and reused when its parameters match);
repositories and extracted trees are removed as soon as they are measured.

  sudo python3 bench/ingest.py --pil-procs 1,2    # full size: about an hour on 2 cores, ~21 GB disk
  sudo python3 bench/ingest.py --scale 0.01       # 1,000 JPEGs, a 43 MB tar.gz: about 2 minutes
  sudo python3 bench/ingest.py --parts jpeg,curate --jpegs 20000 --keep
"""
import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, cpu_model_and_memory, drop_caches, log, save_report  # noqa: E402

PASSWORD = "strata-bench-passphrase"
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
PARTS = ["fmnist", "jpeg", "tar", "curate"]
FMNIST_DIRS = ["/usr/share/datasets/fashion-mnist"]
FMNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"]
JPEG_GEN_VERSION = 1
TAR_GEN_VERSION = 1
JPEG_W, JPEG_H = 640, 480
MTIME = 1767225600  # 2026-01-01 00:00 UTC: every generated tar member
# Shares of the JPEG folder (at least two of each special kind).
JPEG_ROLES = [("truncated", 0.002), ("garbage", 0.0015), ("badheader", 0.0015), ("small", 0.002),
              ("exact", 0.02), ("near", 0.02)]
# Shares of the tar.gz's uncompressed bytes.
TAR_SHARES = {"real": 0.35, "text": 0.25, "random": 0.25, "copies": 0.15}


# --- helpers -----------------------------------------------------------------------------------

def run(cmd, env=None, cwd=None, check=True):
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {p.returncode}):\n{p.stderr.strip()[-3000:]}")
    return p


def tree_stats(path):
    """(regular files, their bytes) below path."""
    n = b = 0
    for dp, _, fns in os.walk(path):
        for fn in fns:
            try:
                st = os.lstat(os.path.join(dp, fn))
            except OSError:
                continue
            n += 1
            b += st.st_size
    return n, b


def du(path):
    return tree_stats(path)[1] if os.path.isdir(path) else (os.path.getsize(path) if os.path.exists(path) else 0)


def rm(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def last_json(text):
    """The JSON document a command printed (strata --json prints one, pretty-printed; the PIL
    script prints one line)."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.splitlines()[-1])


def machine(work):
    model, mem = cpu_model_and_memory()
    src = run(["findmnt", "-no", "SOURCE,FSTYPE", "-T", work], check=False).stdout.strip()
    dev = run(["lsblk", "-dno", "NAME,SIZE,ROTA,MODEL"], check=False).stdout.strip().replace("\n", "; ")
    st = os.statvfs(work)
    free = st.f_bavail * st.f_frsize
    return (f"{model}; {os.cpu_count()} cores; {mem / GiB:.1f} GiB RAM; work dir {work} on {src} "
            f"({free / 1e9:.0f} GB free at start; devices: {dev})")


# --- Fashion-MNIST: IDX -> PGM files (the peer of strata's IDX ingest), run as a child -----------

def idx_to_files(src_dir, dest):
    """Writes train/NNNNN.pgm and test/NNNN.pgm (the names and bytes strata's ingest gives them)
    and labels.csv (file,label)."""
    rows = ["file,label"]
    for split, stem in (("train", "train"), ("test", "t10k")):
        with gzip.open(os.path.join(src_dir, f"{stem}-images-idx3-ubyte.gz"), "rb") as f:
            magic, count, h, w = struct.unpack(">IIII", f.read(16))
            if magic != 0x803:
                raise SystemExit(f"{stem}: not an IDX images file")
            pixels = f.read(count * h * w)
        with gzip.open(os.path.join(src_dir, f"{stem}-labels-idx1-ubyte.gz"), "rb") as f:
            magic, n = struct.unpack(">II", f.read(8))
            labels = f.read(n)
        os.makedirs(os.path.join(dest, split), exist_ok=True)
        width = len(str(count - 1))
        header = f"P5\n{w} {h}\n255\n".encode()
        size = h * w
        for i in range(count):
            name = f"{split}/{i:0{width}d}.pgm"
            with open(os.path.join(dest, name), "wb") as out:
                out.write(header)
                out.write(pixels[i * size:(i + 1) * size])
            rows.append(f"{name},{FMNIST_CLASSES[labels[i]]}")
    with open(os.path.join(dest, "labels.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")


# --- the JPEG folder (a child under --gen-python: needs cv2 and numpy) ---------------------------

def jpeg_plan(count, seed):
    """[(role, source index)] for images 0..count-1; the source of an exact or near copy is an
    earlier unique image."""
    rng = random.Random(seed)
    roles = ["unique"] * count
    first = min(20, count // 2)  # the first images are unique, so copies have sources
    free = list(range(first, count))
    rng.shuffle(free)
    for role, share in JPEG_ROLES:
        want = max(2, round(count * share))
        for _ in range(min(want, len(free))):
            roles[free.pop()] = role
    plan = []
    uniques = []
    for i, role in enumerate(roles):
        if role in ("exact", "near"):
            if not uniques:
                role = "unique"
            else:
                plan.append((role, rng.choice(uniques)))
                continue
        if role == "unique":
            uniques.append(i)
        plan.append((role, i))
    return plan


def jpeg_path(i):
    return f"c{i % 10}/{i:07d}.jpg"


_JPEG_STATE = {}


def _jpeg_worker_init(seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    _JPEG_STATE["bank"] = [rng.normal(0, 1, (JPEG_H * 2, JPEG_W * 2, 3)).astype(np.float32) for _ in range(2)]
    _JPEG_STATE["seed"] = seed


def _render(i):
    """Image i (640x480 BGR): a smooth field from an upscaled 6x8 random grid (what the
    perceptual hash sees), six random shapes, and noise (sigma 9-11, from a bank at a random
    offset) that makes the JPEG about 100 KiB."""
    import cv2
    import numpy as np

    rng = np.random.default_rng([_JPEG_STATE["seed"], i])
    small = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
    img = cv2.resize(small, (JPEG_W, JPEG_H), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    for _ in range(6):
        color = tuple(int(x) for x in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        x, y = int(rng.integers(0, JPEG_W)), int(rng.integers(0, JPEG_H))
        if kind == 0:
            cv2.circle(img, (x, y), int(rng.integers(10, 120)), color, -1)
        elif kind == 1:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(10, 200)), y + int(rng.integers(10, 200))), color, -1)
        else:
            cv2.line(img, (x, y), (int(rng.integers(0, JPEG_W)), int(rng.integers(0, JPEG_H))), color,
                     int(rng.integers(1, 8)))
    bank = _JPEG_STATE["bank"][i % 2]
    oy, ox = int(rng.integers(0, JPEG_H)), int(rng.integers(0, JPEG_W))
    img += bank[oy:oy + JPEG_H, ox:ox + JPEG_W] * float(rng.uniform(9, 11))
    return np.clip(img, 0, 255).astype(np.uint8)


def _encode(img, quality=90):
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    return buf.tobytes()


def _jpeg_bytes(i, role, src):
    import cv2
    import numpy as np

    if role in ("unique", "exact"):
        return _encode(_render(src))
    if role == "near":
        # Parameters vary with i, so two near copies of one image never have the same bytes.
        img = _render(src)
        v, k = i % 3, (i // 3) % 8
        if v == 0:
            return _encode(img, 62 + 2 * k)
        if v == 1:
            return _encode(np.clip(img.astype(np.int16) + 8 + k, 0, 255).astype(np.uint8))
        return _encode(cv2.resize(img, (JPEG_W * (88 + k) // 100, JPEG_H * (88 + k) // 100),
                                  interpolation=cv2.INTER_AREA))
    if role == "small":
        return _encode(cv2.resize(_render(i), (24, 24), interpolation=cv2.INTER_AREA))
    if role == "truncated":
        data = _encode(_render(i))
        return data[:len(data) * 2 // 5]
    if role == "garbage":
        return random.Random(_JPEG_STATE["seed"] * 1_000_003 + i).randbytes(100 * KiB)
    if role == "badheader":  # SOI and the JFIF segment, then zeros where the frame header should be
        data = _encode(_render(i))
        return data[:20] + bytes(len(data) - 20)
    raise ValueError(role)


def _jpeg_write_range(args):
    out, lo, hi, plan = args
    n = 0
    for i in range(lo, hi):
        role, src = plan[i - lo]
        data = _jpeg_bytes(i, role, src)
        with open(os.path.join(out, jpeg_path(i)), "wb") as f:
            f.write(data)
        n += len(data)
    return n


def gen_jpegs(out, count, seed, procs):
    import multiprocessing

    plan = jpeg_plan(count, seed)
    for c in range(10):
        os.makedirs(os.path.join(out, f"c{c}"), exist_ok=True)
    step = 500
    tasks = [(out, lo, min(count, lo + step), plan[lo:lo + step]) for lo in range(0, count, step)]
    total = 0
    with multiprocessing.Pool(procs, initializer=_jpeg_worker_init, initargs=(seed,)) as pool:
        for k, n in enumerate(pool.imap_unordered(_jpeg_write_range, tasks)):
            total += n
            if (k + 1) % 20 == 0:
                print(f"jpegs: {min(count, (k + 1) * step)} of {count}", file=sys.stderr, flush=True)
    roles = {}
    for role, _ in plan:
        roles[role] = roles.get(role, 0) + 1
    import cv2

    return {"count": count, "seed": seed, "version": JPEG_GEN_VERSION, "bytes": total, "roles": roles,
            "opencv": cv2.__version__}


# --- the mixed tar.gz (standard library) -------------------------------------------------------

class TextGen:
    """Text from fixed pools: log lines with varying fields and prose from a word list."""

    def __init__(self, seed):
        r = random.Random(seed)
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        words = ["".join(r.choices(letters, weights=range(26, 0, -1), k=r.randint(2, 11))) for _ in range(6000)]
        services = ["api", "auth", "ingest", "loader", "shard-writer", "scheduler", "gc", "billing"]
        levels = ["INFO"] * 8 + ["DEBUG"] * 4 + ["WARN", "ERROR"]
        paths = ["/" + "/".join(r.choices(words[:300], k=r.randint(1, 4))) for _ in range(400)]
        lines = []
        for _ in range(20000):
            lines.append(
                f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:"
                f"{r.randint(0, 59):02d}.{r.randint(0, 999):03d}Z {r.choice(levels)} {r.choice(services)}"
                f"[{r.randint(100, 40000)}]: {r.choice(['GET', 'PUT', 'POST', 'DELETE'])} {r.choice(paths)} "
                f"status={r.choice([200, 200, 200, 201, 204, 304, 404, 500])} bytes={r.randint(0, 10 ** 6)} "
                f"ms={r.random() * 300:.1f} req={r.getrandbits(64):016x}")
        for _ in range(20000):
            s = " ".join(r.choices(words, k=r.randint(6, 20)))
            lines.append(s[0].upper() + s[1:] + ".")
        self.logs = [x.encode() for x in lines[:20000]]
        self.prose = [x.encode() for x in lines[20000:]]

    def make(self, seed, size):
        r = random.Random(seed)
        pool = self.logs if seed % 2 else self.prose
        out = []
        n = 0
        while n < size:
            chunk = b"\n".join(r.choices(pool, k=512)) + b"\n"
            out.append(chunk)
            n += len(chunk)
        return b"".join(out)[:size]


def real_files(max_size, seed):
    """Regular files of /usr/share and /usr/lib (readable, UTF-8 names, 1 B .. max_size), sorted,
    then shuffled with `seed`."""
    out = []
    for top in ("/usr/share", "/usr/lib"):
        for dp, dns, fns in os.walk(top):
            dns.sort()
            for fn in sorted(fns):
                p = os.path.join(dp, fn)
                try:
                    p.encode("utf-8")
                    st = os.lstat(p)
                except (OSError, UnicodeEncodeError):
                    continue
                if not (st.st_mode & 0o170000 == 0o100000) or not (0 < st.st_size <= max_size):
                    continue
                if not os.access(p, os.R_OK):
                    continue
                out.append(p)
    random.Random(seed).shuffle(out)
    return out


def log_uniform(r, lo, hi):
    return int(lo * (hi / lo) ** r.random())


def build_tar(path, target, seed):
    """Writes the mixed tar.gz at `path` (see the docstring); returns its composition."""
    max_size = min(64 * MiB, max(256 * KiB, target // 16))
    r = random.Random(seed)
    text = TextGen(seed + 1)
    reals = real_files(max_size, seed + 2)
    real_pos = 0
    comp = {c: {"files": 0, "bytes": 0} for c in TAR_SHARES}
    sources = []  # (kind, arg, name) of the members a copy can come from
    seq = 0
    tmp = path + ".tmp"
    t0 = time.perf_counter()

    def content(kind, arg):
        if kind == "real":
            with open(arg, "rb") as f:
                return f.read()
        if kind == "text":
            return text.make(arg[0], arg[1])
        return random.Random(arg[0]).randbytes(arg[1])

    with open(tmp, "wb") as raw:
        gz = gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0)
        tf = tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT)
        while raw.tell() < target:
            total = sum(c["bytes"] for c in comp.values()) + 1
            order = sorted(TAR_SHARES, key=lambda c: comp[c]["bytes"] - TAR_SHARES[c] * total)
            kind = next(k for k in order if (k != "real" or real_pos < len(reals)) and (k != "copies" or sources))
            seq += 1
            mode = 0o644
            if kind == "real":
                src = reals[real_pos]
                real_pos += 1
                try:
                    data = content("real", src)
                    mode = os.stat(src).st_mode & 0o755
                except OSError:
                    continue
                name = "mixed/real" + src
                sources.append(("real", src, name))
            elif kind == "text":
                arg = (seed * 1_000_003 + seq, log_uniform(r, 1 * KiB, min(8 * MiB, max_size)))
                data = content("text", arg)
                name = f"mixed/text/{seq:06d}.{'log' if arg[0] % 2 else 'txt'}"
                sources.append(("text", arg, name))
            elif kind == "random":
                arg = (seed * 1_000_003 + seq, log_uniform(r, 4 * KiB, max_size))
                data = content("random", arg)
                name = f"mixed/random/{seq:06d}.bin"
                sources.append(("random", arg, name))
            else:
                skind, sarg, sname = r.choice(sources)
                try:
                    data = content(skind, sarg)
                except OSError:
                    continue
                name = f"mixed/copies/{seq:06d}-{os.path.basename(sname)}"
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = mode
            ti.mtime = MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            tf.addfile(ti, io.BytesIO(data))
            comp[kind]["files"] += 1
            comp[kind]["bytes"] += len(data)
            if seq % 2000 == 0:
                log(f"tar.gz: {raw.tell() / 1e6:.0f} of {target / 1e6:.0f} MB compressed, {seq} members")
        tf.close()
        gz.close()
    os.replace(tmp, path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(8 * MiB)
            if not b:
                break
            h.update(b)
    return {"version": TAR_GEN_VERSION, "target": target, "seed": seed, "compressed": os.path.getsize(path),
            "members": sum(c["files"] for c in comp.values()), "bytes": sum(c["bytes"] for c in comp.values()),
            "composition": comp, "real_files_available": len(reals), "max_member": max_size,
            "sha256": h.hexdigest(), "build_s": time.perf_counter() - t0}


# --- the benchmark ----------------------------------------------------------------------------

class Bench:
    def __init__(self, a):
        self.a = a
        self.work = os.path.abspath(a.workdir)
        self.data = os.path.join(self.work, "data")
        self.strata = os.path.abspath(a.strata)
        self.env = dict(os.environ)
        self.env.update({"STRATA_PASSWORD": PASSWORD, "RESTIC_PASSWORD": PASSWORD,
                         "RESTIC_CACHE_DIR": os.path.join(self.work, "cache", "restic")})
        self.can_drop = os.geteuid() == 0 and not a.no_drop
        self.steps = {}     # key -> {"tool", "what", "files", "bytes", "wall", "cpu"}
        self.sizes = {}     # part -> [(what, bytes)]
        self.counts = {}    # curation counts per tool
        self.datasets = {}  # part -> description facts
        self.notes = []
        self.setup = []     # (what, seconds)
        self.venv_python = "?"

    # ---- running things ------------------------------------------------------------------
    def s(self, repo, *args):
        return [self.strata, "-q", "-r", repo, *args]

    def drop(self):
        if self.can_drop:
            drop_caches()
        else:
            os.sync()

    def timed(self, key, tool, what, cmds, files, nbytes, cold=True):
        """Runs cmds one after the other (dropping the page cache first when `cold`), then `sync`;
        records wall and CPU seconds under `key`; returns the stdout of each command."""
        if cold:
            self.drop()
        log(f"[{key}] " + " && ".join(" ".join(c) for c in cmds))
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        outs = [run(c, env=self.env).stdout for c in cmds]
        os.sync()
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
        self.steps[key] = {"tool": tool, "what": what, "files": files, "bytes": nbytes, "wall": wall, "cpu": cpu,
                           "cold": cold}
        log(f"[{key}] {wall:.2f} s, {cpu / wall if wall else 0:.2f} cores")
        return outs

    def new_repo(self, name, dataset=None):
        repo = os.path.join(self.work, "repos", name)
        rm(repo)
        os.makedirs(os.path.dirname(repo), exist_ok=True)
        if name.startswith("restic"):
            run(["restic", "-q", "-r", repo, "init"], env=self.env)
        else:
            run([self.strata, "-q", "init", repo], env=self.env)
            if dataset:
                run(self.s(repo, "dataset", "create", dataset), env=self.env)
        return repo

    # ---- inputs --------------------------------------------------------------------------
    def fmnist_dir(self):
        for d in FMNIST_DIRS:
            if all(os.path.exists(os.path.join(d, f)) for f in FMNIST_FILES):
                return d
        if shutil.which("dpkg"):
            p = run(["dpkg", "-L", "dataset-fashion-mnist"], check=False)
            for line in p.stdout.splitlines():
                if line.endswith(FMNIST_FILES[0]):
                    return os.path.dirname(line)
        if os.geteuid() == 0 and shutil.which("apt-get"):
            log("installing dataset-fashion-mnist with apt-get")
            run(["apt-get", "install", "-y", "dataset-fashion-mnist"], check=False)
            p = run(["dpkg", "-L", "dataset-fashion-mnist"], check=False)
            for line in p.stdout.splitlines():
                if line.endswith(FMNIST_FILES[0]):
                    return os.path.dirname(line)
        raise SystemExit("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist")

    def ensure_gen_python(self):
        py = self.a.gen_python
        if run([py, "-c", "import cv2, numpy"], check=False).returncode == 0:
            return py
        if os.geteuid() == 0 and shutil.which("apt-get"):
            log("installing python3-opencv with apt-get")
            run(["apt-get", "install", "-y", "python3-opencv"], check=False)
            if run([py, "-c", "import cv2, numpy"], check=False).returncode == 0:
                return py
        raise SystemExit(f"{py} cannot import cv2 and numpy: apt-get install python3-opencv (or pass --gen-python)")

    def ensure_venv(self):
        venv = os.path.abspath(self.a.venv)
        py = os.path.join(venv, "bin", "python")
        probe = [py, "-c", "import PIL, imagehash"]
        if os.path.exists(py) and run(probe, check=False).returncode == 0:
            self.venv_python = run([py, "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip()
            return py
        if not os.path.exists(py):
            log(f"creating the bench venv {venv}")
            run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
        log("pip install --upgrade pillow imagehash")
        run([os.path.join(venv, "bin", "pip"), "install", "-q", "--upgrade", "pillow", "imagehash"])
        run(probe)
        self.venv_python = run([py, "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip()
        return py

    def jpeg_dir(self):
        count = self.a.jpegs
        out = os.path.join(self.data, "jpegs")
        meta_path = os.path.join(self.data, "jpegs.json")
        want = {"count": count, "seed": self.a.seed, "version": JPEG_GEN_VERSION}
        if os.path.isdir(out) and os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            if all(meta.get(k) == v for k, v in want.items()):
                self.datasets["jpeg"] = meta
                return out
        rm(out)
        rm(meta_path)
        py = self.ensure_gen_python()
        log(f"generating {count} JPEG images under {out} ({py}, {os.cpu_count()} processes)")
        t0 = time.perf_counter()
        p = subprocess.run([py, os.path.abspath(__file__), "--child", "gen-jpegs", out, str(count),
                            str(self.a.seed)], stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise SystemExit("the JPEG generator failed")
        meta = last_json(p.stdout)
        os.sync()
        self.setup.append((f"generate {count:,} JPEGs ({meta['bytes'] / 1e6:.0f} MB), OpenCV, "
                           f"{os.cpu_count()} processes", time.perf_counter() - t0))
        with open(meta_path, "w") as f:
            json.dump(meta, f)
        self.datasets["jpeg"] = meta
        return out

    def tar_file(self):
        path = os.path.join(self.data, "mixed.tar.gz")
        meta_path = os.path.join(self.data, "mixed.json")
        want = {"target": self.a.tar_bytes, "seed": self.a.seed, "version": TAR_GEN_VERSION}
        if os.path.exists(path) and os.path.exists(meta_path):
            with open(meta_path) as f:
                meta = json.load(f)
            if all(meta.get(k) == v for k, v in want.items()) and meta.get("compressed") == os.path.getsize(path):
                self.datasets["tar"] = meta
                return path
        rm(path)
        rm(meta_path)
        log(f"building {path}: {self.a.tar_bytes / 1e6:.0f} MB compressed")
        os.makedirs(self.data, exist_ok=True)
        meta = build_tar(path, self.a.tar_bytes, self.a.seed)
        os.sync()
        self.setup.append((f"build mixed.tar.gz ({meta['compressed'] / 1e6:.0f} MB, {meta['members']:,} members), "
                           "Python tarfile + gzip -6, one core", meta["build_s"]))
        with open(meta_path, "w") as f:
            json.dump(meta, f)
        self.datasets["tar"] = meta
        return path

    # ---- parts ---------------------------------------------------------------------------
    def part_fmnist(self):
        src = self.fmnist_dir()
        src_bytes = sum(os.path.getsize(os.path.join(src, f)) for f in FMNIST_FILES)
        repo = self.new_repo("strata-fmnist", "fm")
        outs = self.timed("fmnist/strata", "strata", "strata ingest (train + t10k IDX)", [
            self.s(repo, "--json", "ingest", os.path.join(src, "train-images-idx3-ubyte.gz"), "fm@main",
                   "--prefix", "train"),
            self.s(repo, "--json", "ingest", os.path.join(src, "t10k-images-idx3-ubyte.gz"), "fm@main",
                   "--prefix", "test")], 0, 0)
        reps = [last_json(o) for o in outs]
        files = sum(r["files"] for r in reps)
        nbytes = sum(r["bytes"] for r in reps)
        self.steps["fmnist/strata"].update(files=files, bytes=nbytes)
        rejected = sum(r.get("rejected", 0) for r in reps)
        if files != 70000 or rejected:
            self.notes.append(f"fmnist: strata ingested {files} files with {rejected} rejects (expected 70,000, 0)")
        dest = os.path.join(self.work, "fmnist-files")
        rm(dest)
        self.timed("fmnist/convert", "python", "IDX -> PGM files + labels.csv (Python stdlib) + sync",
                   [[sys.executable, os.path.abspath(__file__), "--child", "idx-to-files", src, dest]], 0, 0)
        n, b = tree_stats(dest)
        self.steps["fmnist/convert"].update(files=n, bytes=b)
        # The same bytes as strata's files?
        same = subprocess.run(self.s(repo, "cat", "fm@main:train/00017.pgm"), env=self.env,
                              capture_output=True).stdout
        with open(os.path.join(dest, "train", "00017.pgm"), "rb") as f:
            if f.read() != same:
                self.notes.append("fmnist: strata's train/00017.pgm differs from the converted file")
        rrepo = self.new_repo("restic-fmnist")
        self.timed("fmnist/restic", "restic", "restic backup of the converted folder, right after it",
                   [["restic", "-q", "-r", rrepo, "backup", dest]], n, b, cold=False)
        self.sizes["fmnist"] = [("IDX source files (.gz)", src_bytes), ("PGM files + labels.csv on disk", b),
                                ("strata repository", du(repo)), ("restic repository", du(rrepo))]
        self.datasets["fmnist"] = {"dir": src, "source_bytes": src_bytes, "files": files, "bytes": nbytes}
        for p in (repo, rrepo, dest):
            rm(p)

    def part_jpeg(self, keep_repo):
        d = self.jpeg_dir()
        n, b = tree_stats(d)
        rrepo = self.new_repo("restic-jpeg")
        self.timed("jpeg/restic", "restic", "restic backup DIR", [["restic", "-q", "-r", rrepo, "backup", d]], n, b)
        rsize = du(rrepo)
        rm(rrepo)
        repo = self.new_repo("strata-jpeg", "img")
        out = self.timed("jpeg/strata", "strata", "strata ingest DIR --image-folder",
                         [self.s(repo, "--json", "ingest", d, "img@main", "--image-folder")], n, b)[0]
        rep = last_json(out)
        if rep["files"] != n or rep.get("rejected", 0):
            self.notes.append(f"jpeg: strata ingested {rep['files']} of {n} files, {rep.get('rejected', 0)} rejected")
        self.sizes["jpeg"] = [("JPEG folder", b), ("strata repository", du(repo)), ("restic repository", rsize)]
        if not keep_repo:
            rm(repo)
        return repo

    def part_tar(self):
        path = self.tar_file()
        meta = self.datasets["tar"]
        n, b = meta["members"], meta["bytes"]
        repo = self.new_repo("strata-tar", "mixed")
        out = self.timed("tar/strata", "strata", "strata ingest mixed.tar.gz",
                         [self.s(repo, "--json", "ingest", path, "mixed@main")], n, b)[0]
        rep = last_json(out)
        if rep["files"] != n or rep["bytes"] != b or rep.get("rejected", 0):
            self.notes.append(f"tar: strata ingested {rep['files']} files / {rep['bytes']} bytes with "
                              f"{rep.get('rejected', 0)} rejects; the archive has {n} / {b}")
        ssize = du(repo)
        rm(repo)
        dest = os.path.join(self.work, "extract")
        rm(dest)
        os.makedirs(dest)
        self.timed("tar/tar", "tar", "tar -xzf to disk", [["tar", "-xzf", path, "-C", dest]], n, b)
        en, eb = tree_stats(dest)
        if (en, eb) != (n, b):
            self.notes.append(f"tar: tar -xzf gave {en} files / {eb} bytes, expected {n} / {b}")
        rrepo = self.new_repo("restic-tar")
        self.timed("tar/restic", "restic", "restic backup of the extracted tree, right after tar",
                   [["restic", "-q", "-r", rrepo, "backup", dest]], n, b, cold=False)
        self.sizes["tar"] = [("tar.gz", meta["compressed"]), ("extracted tree", eb), ("strata repository", ssize),
                             ("restic repository", du(rrepo)),
                             ("extracted tree + restic repository", eb + du(rrepo))]
        rm(rrepo)
        rm(dest)

    def part_curate(self, repo):
        d = self.jpeg_dir()
        n, b = tree_stats(d)
        if not repo or not os.path.isdir(repo):
            repo = self.new_repo("strata-jpeg", "img")
            t0 = time.perf_counter()
            run(self.s(repo, "ingest", d, "img@main", "--image-folder"), env=self.env)
            self.setup.append(("strata ingest of the JPEG folder for curation (not timed as a result)",
                               time.perf_counter() - t0))
        th = self.a.near_threshold
        rules = os.path.join(self.work, "curate-jpeg.yaml")
        with open(rules, "w") as f:
            f.write("# bench/ingest.py: decode checks, exact and near duplicates of the JPEG folder\n"
                    "images:\n  files: [\"*.jpg\", \"*.jpeg\"]\n  min_width: 32\n  min_height: 32\n"
                    f"duplicates:\n  exact: true\n  keep: first\n  near_image: {th}\n")
        with open(rules) as f:
            self.datasets["rules"] = f.read()
        out = self.timed("curate/strata", "strata", "strata curate --rules (images, exact, near_image)",
                         [self.s(repo, "--json", "curate", "img@main", "img@curated", "--rules", rules)], n, b)[0]
        rep = last_json(out)
        pr = rep.get("per_rule", {})
        self.counts["strata"] = {"images": rep["records_before"], "decode_failed": pr.get("decode", 0),
                                 "size_failed": pr.get("image-size", 0), "exact_duplicates": pr.get("duplicate", 0),
                                 "near_duplicates": pr.get("near-duplicate", 0), "passed": rep["records_after"],
                                 "other": {k: v for k, v in pr.items()
                                           if k not in ("decode", "image-size", "duplicate", "near-duplicate")}}
        rm(repo)
        py = self.ensure_venv()
        script = os.path.join(ROOT, "bench", "curate_pil.py")
        base = [py, script, d, "--threshold", str(th), "--min-width", "32", "--min-height", "32"]
        variants = [("curate/pil", "curate_pil.py: decode + phash + sha256, 1 process", ["--procs", "1"])]
        for procs in self.a.pil_procs:
            if procs > 1:
                variants.append((f"curate/pil-{procs}p", f"curate_pil.py: decode + phash + sha256, {procs} processes",
                                 ["--procs", str(procs)]))
        variants += [("curate/pil-draft", "curate_pil.py --draft: 1/8-scale JPEG decode + phash + sha256, 1 process",
                      ["--draft"]),
                     ("curate/pil-header", "curate_pil.py --header-only: header + sha256, no decode, 1 process",
                      ["--header-only"])]
        for key, what, extra in variants:
            out = self.timed(key, "PIL", what, [base + extra], n, b)[0]
            self.counts[key] = last_json(out)

    # ---- report --------------------------------------------------------------------------
    def versions(self):
        rev = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False).stdout.strip() or "?"
        dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], check=False).stdout.strip()
        v = [f"strata {self.strata} (tree at git {rev}{', with local changes' if dirty else ''})",
             run(["restic", "version"], check=False).stdout.split(" compiled")[0].strip(),
             run(["tar", "--version"], check=False).stdout.splitlines()[0],
             run(["gzip", "--version"], check=False).stdout.splitlines()[0],
             f"Python {sys.version.split()[0]}"]
        if "jpeg" in self.datasets:
            v.append(f"OpenCV {self.datasets['jpeg'].get('opencv', '?')} (generator)")
        c = self.counts.get("curate/pil")
        if c:
            v.append(f"Pillow {c['pil']}, imagehash {c['imagehash']} (bench venv, Python {self.venv_python})")
        return ", ".join(v)

    def rate_cells(self, st):
        w = st["wall"]
        return (f"{st['files']:,} | {st['bytes'] / 1e6:.1f} | {w:.2f} | {st['bytes'] / w / 1e6:.1f} | "
                f"{st['files'] / w:,.0f} | {st['cpu'] / w:.2f}")

    def ratio(self, a, b):
        """How many times faster a is than b (by wall time on the same bytes)."""
        return b / a if a and b else float("nan")

    def report(self):
        L = []
        w = L.append
        st = self.steps
        w(f"# strata ingest and curation against tar, restic and PIL, {self.started:%Y-%m-%d %H:%M}\n")
        w(f"- command: `{' '.join(sys.argv)}`")
        w(f"- sizes: scale {self.a.scale}: {self.a.jpegs:,} JPEGs, tar.gz of {self.a.tar_bytes / 1e6:,.0f} MB; "
          f"parts {','.join(self.a.parts)}")
        w(f"- machine: {self.machine}")
        w(f"- versions: {self.versions()}")
        w(f"- load average at start / end: {' '.join(f'{x:.2f}' for x in self.load0)} / "
          f"{' '.join(f'{x:.2f}' for x in self.load1)} (other jobs on these cores make every number lower and "
          "noisier; the ratios come from the same run)")
        why = "--no-drop" if self.a.no_drop else "not root"
        dropped = "yes" if self.can_drop else f"NO ({why}): inputs may be read from the cache"
        w(f"- page cache dropped before each cold step: {dropped}; every timed step ends with `sync`")
        w("- defaults: strata `init` (FastCDC 1 MiB average, zstd-3, AES-256-GCM, 32 MiB packs), restic "
          "repository v2 with compression auto, tar with gzip -d")
        w(f"- total wall time: {self.wall / 60:.1f} min\n")

        w("## Throughput\n")
        w("MB/s = logical bytes (the files as they are on disk after extraction) / wall seconds; "
          "x = how many times faster strata is than that row (same bytes, wall time).\n")
        w("| part | tool | step | files | MB | s | MB/s | files/s | cores | strata is |")
        w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")

        def row(part, key, ref):
            if key not in st:
                return
            s = st[key]
            x = "" if key == ref or ref not in st else f"{self.ratio(st[ref]['wall'], s['wall']):.2f}x"
            warm = "" if s["cold"] else " (page cache warm)"
            w(f"| {part} | {s['tool']} | {s['what']}{warm} | {self.rate_cells(s)} | {x} |")

        def combined(part, keys, ref, label):
            if not all(k in st for k in keys) or ref not in st:
                return
            wall = sum(st[k]["wall"] for k in keys)
            cpu = sum(st[k]["cpu"] for k in keys)
            s = dict(st[keys[-1]], wall=wall, cpu=cpu)
            s["files"], s["bytes"] = st[keys[-1]]["files"], st[keys[-1]]["bytes"]
            w(f"| {part} | {' + '.join(st[k]['tool'] for k in keys)} | {label} | {self.rate_cells(s)} | "
              f"{self.ratio(st[ref]['wall'], wall):.2f}x |")
            return wall

        row("fmnist", "fmnist/strata", "fmnist/strata")
        row("fmnist", "fmnist/convert", "fmnist/strata")
        row("fmnist", "fmnist/restic", "fmnist/strata")
        combined("fmnist", ["fmnist/convert", "fmnist/restic"], "fmnist/strata", "convert + restic backup")
        row("jpeg", "jpeg/strata", "jpeg/strata")
        row("jpeg", "jpeg/restic", "jpeg/strata")
        row("tar", "tar/strata", "tar/strata")
        row("tar", "tar/tar", "tar/strata")
        row("tar", "tar/restic", "tar/strata")
        tar_pipe = combined("tar", ["tar/tar", "tar/restic"], "tar/strata", "tar -xzf + restic backup")
        for k in st:
            if k.startswith("curate/"):
                row("curate", k, "curate/strata")
        if "fmnist" in self.datasets:
            f = self.datasets["fmnist"]
            w(f"\nfmnist: the source is {f['source_bytes'] / 1e6:.1f} MB of gzipped IDX files; MB is the PGM bytes "
              "the images become (labels.csv not counted for strata, counted for the converted folder).")
        if "tar/strata" in st:
            c = self.datasets["tar"]["compressed"]
            w(f"tar: {c / 1e6:.0f} MB compressed in; strata ingests {c / st['tar/strata']['wall'] / 1e6:.1f} MB/s of "
              f"the .tar.gz, tar -xzf {c / st['tar/tar']['wall'] / 1e6:.1f} MB/s." if "tar/tar" in st else "")
        if "curate/strata" in st:
            w("curate: files/s is images/s.")

        w("\n## Stored sizes\n")
        w("| part | what | MB | / logical |")
        w("|---|---|---:|---:|")
        for part, rows in self.sizes.items():
            logical = {"fmnist": rows[1][1], "jpeg": rows[0][1], "tar": rows[1][1]}[part]
            for what, nb in rows:
                w(f"| {part} | {what} | {nb / 1e6:.1f} | {nb / logical:.3f} |")
        if "tar" in self.sizes:
            sz = dict(self.sizes["tar"])
            w(f"\ntar: strata repository / restic repository = "
              f"{sz['strata repository'] / sz['restic repository']:.3f}; a restic user keeps the extracted tree "
              "too, strata keeps only its repository (files are read back with `strata checkout` / `cat`).")

        if self.counts:
            w("\n## Curation: what each side found\n")
            jm = self.datasets.get("jpeg", {})
            roles = jm.get("roles", {})
            w("| | images | decode failed | too small | exact duplicates | near duplicates | passed |")
            w("|---|---:|---:|---:|---:|---:|---:|")
            if roles:
                corrupt = roles.get("truncated", 0) + roles.get("garbage", 0) + roles.get("badheader", 0)
                w(f"| generated | {jm['count']:,} | {corrupt} ({roles.get('truncated', 0)} truncated, "
                  f"{roles.get('garbage', 0)} random bytes, {roles.get('badheader', 0)} header + zeros) | "
                  f"{roles.get('small', 0)} | {roles.get('exact', 0)} | {roles.get('near', 0)} | "
                  f"{roles.get('unique', 0)} |")
            for k, c in self.counts.items():
                label = {"strata": "strata curate"}.get(k, k.replace("curate/", ""))
                w(f"| {label} | {c['images']:,} | {c['decode_failed']} | {c['size_failed']} | "
                  f"{c['exact_duplicates']} | {c['near_duplicates']} | {c['passed']:,} |")
            s = self.counts.get("strata")
            p = self.counts.get("curate/pil")
            if s and p:
                diffs = [k for k in ("decode_failed", "size_failed", "exact_duplicates", "near_duplicates")
                         if s[k] != p[k]]
                w("\nstrata and PIL agree on every count." if not diffs else
                  f"\nstrata and PIL differ in: {', '.join(diffs)}.")
            w(f"\nrules.yaml given to strata (near-duplicate threshold {self.a.near_threshold} bits for both):\n")
            w("```yaml\n" + self.datasets.get("rules", "").rstrip() + "\n```")

        w("\n## Targets\n")
        w("| target | result | met? |")
        w("|---|---|---|")
        if "tar/strata" in st and "tar/tar" in st:
            x = self.ratio(st["tar/strata"]["wall"], st["tar/tar"]["wall"])
            extra = ""
            if tar_pipe:
                extra = f"; {self.ratio(st['tar/strata']['wall'], tar_pipe):.2f}x tar -xzf + restic backup"
            w(f"| archive ingest at least as fast as `tar -xzf` alone (while deduplicating and encrypting) | "
              f"{x:.2f}x ({st['tar/strata']['wall']:.1f} s vs {st['tar/tar']['wall']:.1f} s){extra} | "
              f"{'yes' if x >= 1 else '**no**'} |")
        if "curate/strata" in st and "curate/pil" in st:
            x = self.ratio(st["curate/strata"]["wall"], st["curate/pil"]["wall"])
            sc, pc = self.counts.get("strata", {}), self.counts.get("curate/pil", {})
            keys = ("decode_failed", "size_failed", "exact_duplicates", "near_duplicates")
            less = [k.replace("_", " ") for k in keys if sc.get(k, 0) < pc.get(k, 0)]
            more = [k.replace("_", " ") for k in keys if sc.get(k, 0) > pc.get(k, 0)]
            caveat = (f" (strata found fewer {', '.join(less)}: it did less work)" if less else
                      f" (strata found more {', '.join(more)}: see the counts)" if more else "")
            w(f"| curation at least 5x the Python script's images/s | {x:.2f}x "
              f"({st['curate/strata']['files'] / st['curate/strata']['wall']:,.0f} vs "
              f"{st['curate/pil']['files'] / st['curate/pil']['wall']:,.0f} images/s) | "
              f"{'yes' if x >= 5 else '**no**'}{caveat} |")
            for key, label in (("curate/pil-draft", "PIL with 1/8-scale JPEG decode (draft)"),
                               ("curate/pil-header", "PIL header-only + sha256, no decode (Python's floor)")):
                if key in st:
                    x = self.ratio(st["curate/strata"]["wall"], st[key]["wall"])
                    w(f"| (for reference: strata against {label}) | {x:.2f}x | |")

        w("\n## Data\n")
        if "fmnist" in self.datasets:
            f = self.datasets["fmnist"]
            w(f"- fmnist: {f['dir']}: {', '.join(FMNIST_FILES)} ({f['source_bytes'] / 1e6:.1f} MB), "
              f"{f['files']:,} images of 28x28 as {f['bytes'] / 1e6:.1f} MB of PGM files.")
        if "jpeg" in self.datasets:
            j = self.datasets["jpeg"]
            per = j["bytes"] / max(1, j["count"]) / KiB
            w(f"- jpeg: {j['count']:,} files, {j['bytes'] / 1e6:.1f} MB ({per:.0f} KiB per file) in ten class "
              f"folders, generated with OpenCV (seed {j['seed']}): {JPEG_W}x{JPEG_H} at quality 90, a smooth "
              "field from an upscaled 6x8 random grid, six random shapes and noise; "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(j["roles"].items()))
              + " (exact: byte copies of a unique image; near: a unique image re-encoded at quality 62-76, "
              "brightened by 8-15 levels or scaled to 88-95%; small: 24x24; truncated: the first 40% of a JPEG; "
              "garbage: 100 KiB of random bytes; badheader: the JPEG's first 20 bytes (SOI, JFIF) then zeros).")
        if "tar" in self.datasets:
            t = self.datasets["tar"]
            comp = ", ".join(f"{k} {v['files']:,} files / {v['bytes'] / 1e6:.0f} MB"
                             for k, v in t["composition"].items())
            w(f"- tar: mixed.tar.gz, {t['compressed'] / 1e6:.1f} MB compressed, {t['bytes'] / 1e6:.1f} MB in "
              f"{t['members']:,} members ({comp}), sha256 {t['sha256'][:16]}. Built by this script "
              f"(seed {t['seed']}): "
              "members interleaved so that each kind keeps its share of the uncompressed bytes (real 35%, text 25%, "
              "random 25%, copies 15%): real = regular files of /usr/share and /usr/lib in a seeded shuffled order "
              f"({t['real_files_available']:,} eligible here, so the archive depends on this machine's packages); "
              "text = log lines and prose drawn from seeded pools; random = seeded random bytes; copies = exact "
              "copies of earlier members under other names. Sizes log-uniform (text 1 KiB-8 MiB, random "
              f"4 KiB-64 MiB), every member at most {t['max_member'] / MiB:.1f} MiB; Python tarfile (PAX) + gzip "
              "level 6, mtime 2026-01-01, stopped once the compressed size reached the target.")
        if self.setup:
            w("\n| setup (not timed as a result) | s |")
            w("|---|---:|")
            for what, sec in self.setup:
                w(f"| {what} | {sec:.1f} |")
        if self.notes:
            w("\n## Notes\n")
            for n in self.notes:
                w(f"- {n}")
        w("\n## Raw\n")
        w("```json\n" + json.dumps({"steps": self.steps, "sizes": self.sizes, "counts": self.counts,
                                    "datasets": {k: v for k, v in self.datasets.items() if k != "rules"}},
                                   default=str) + "\n```")
        return "\n".join(L) + "\n"

    def main(self):
        a = self.a
        if not os.access(self.strata, os.X_OK):
            raise SystemExit(f"no strata binary at {self.strata} (build it, or pass --strata)")
        if shutil.which("restic") is None:
            raise SystemExit("restic is not installed")
        os.makedirs(self.data, exist_ok=True)
        if os.geteuid() != 0 and not a.no_drop:
            log("warning: not root, cannot drop the page cache: cold steps may read from the cache")
        # Peak disk use: the JPEG folder with one repository of it; or the tar.gz, its extracted
        # tree and restic's repository (plus the JPEG folder when kept).
        jpeg_bytes = a.jpegs * 105_000 if {"jpeg", "curate"} & set(a.parts) else 0
        tar_need = 3.8 * a.tar_bytes if "tar" in a.parts else 0
        need = max(2.1 * jpeg_bytes, tar_need + (jpeg_bytes if a.keep else 0))
        st = os.statvfs(self.work)
        if st.f_bavail * st.f_frsize < 1.1 * need:
            log(f"warning: {self.work} has {st.f_bavail * st.f_frsize / 1e9:.0f} GB free; this run needs about "
                f"{need / 1e9:.0f} GB")
        self.started = datetime.datetime.now()
        self.machine = machine(self.work)
        self.load0 = os.getloadavg()
        wall0 = time.perf_counter()
        if "curate" in a.parts:
            self.ensure_venv()
        jpeg_repo = None
        if "fmnist" in a.parts:
            self.part_fmnist()
        if "jpeg" in a.parts:
            jpeg_repo = self.part_jpeg(keep_repo="curate" in a.parts)
        if "curate" in a.parts:
            self.part_curate(jpeg_repo)
        if not a.keep:
            rm(os.path.join(self.data, "jpegs"))
            rm(os.path.join(self.data, "jpegs.json"))
        if "tar" in a.parts:
            self.part_tar()
        self.load1 = os.getloadavg()
        self.wall = time.perf_counter() - wall0
        save_report("ingest", self.report(), self.started)
        if not a.keep:
            rm(self.work)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies the JPEG count (100,000) and the tar.gz size (4 GiB)")
    ap.add_argument("--jpegs", type=int, default=0, help="JPEG images (default 100,000 x scale)")
    ap.add_argument("--tar-bytes", type=int, default=0, help="compressed size of the tar.gz (default 4 GiB x scale)")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    ap.add_argument("--workdir", default="/var/tmp/strata-ingest-bench",
                    help="generated data, repositories, extracted trees (removed at the end unless --keep)")
    ap.add_argument("--strata", default=os.path.join(ROOT, "build", "strata"), help="the strata binary")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (generated data is reused)")
    ap.add_argument("--near-threshold", type=int, default=4, help="near duplicates: Hamming distance, both sides")
    ap.add_argument("--pil-procs", default="1",
                    help="process counts for the plain PIL peer, e.g. 1,2 (1 always runs: the target's reference)")
    ap.add_argument("--venv", default=os.path.join(ROOT, ".venv-bench"), help="the venv with Pillow and imagehash")
    ap.add_argument("--gen-python", default="/usr/bin/python3", help="a Python with cv2 and numpy (the generator)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-drop", action="store_true",
                    help="never drop the page cache (e.g. while another benchmark runs on the machine)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.jpegs = a.jpegs or max(50, int(100_000 * a.scale))
    a.tar_bytes = a.tar_bytes or max(1 * MiB, int(4 * GiB * a.scale))
    a.parts = [p for p in a.parts.split(",") if p]
    bad = [p for p in a.parts if p not in PARTS]
    if bad:
        ap.error(f"unknown parts {bad}; known: {PARTS}")
    a.pil_procs = [int(x) for x in a.pil_procs.split(",") if x]
    return a


def child(argv):
    if argv[0] == "idx-to-files":
        idx_to_files(argv[1], argv[2])
    elif argv[0] == "gen-jpegs":
        print(json.dumps(gen_jpegs(argv[1], int(argv[2]), int(argv[3]), os.cpu_count() or 1)), flush=True)
    else:
        raise SystemExit(f"unknown child {argv[0]}")


if __name__ == "__main__":
    args = parse_args()
    if args.child:
        child(args.child)
    else:
        Bench(args).main()
