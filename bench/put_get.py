#!/usr/bin/env python3
"""strata put/get against restic and borg, with fio as the disk's own limit.

Same data, same disk, same run; encrypted repositories on every side; page cache dropped
(sync + drop_caches, when running as root) before every timed operation, so each one reads its
input from the disk. Every timed operation ends with `sync`, so buffered writes that a tool left
in the page cache are paid for inside its time.

Datasets (sizes times --scale):
  1  2 GiB of incompressible files of mixed sizes (1 KiB .. 256 MiB, most bytes in big files)
  2  about 1 GiB of text: /usr/share/doc and /usr/include, topped up with other text files
     found under /usr (source, docs, scripts)
  3  ten versions of one 1 GiB random file; each version changes a further 1% of the bytes in
     runs of 4..64 KiB at random offsets. Versions are put one after another into one repository
     per tool; the repository size after all ten is the dedup result.

Also runs fio (sequential 1 MiB write and read, O_DIRECT and buffered + end_fsync),
build-bench/bench/stages_bench, `openssl speed` (AES-256-GCM, SHA-256) and `zstd -b` on a text
sample, and writes everything as markdown to bench/results/put_get-<date>.md.

  sudo python3 bench/put_get.py                 # full run (about 15 minutes on 2 cores)
  python3 bench/put_get.py --scale 0.1          # quick run
"""
import argparse
import datetime
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, cpu_model_and_memory, save_report  # noqa: E402
GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10
PASSWORD = "strata-bench-passphrase"

TEXT_EXT = {".h", ".hpp", ".hxx", ".c", ".cc", ".cpp", ".py", ".pyi", ".pl", ".pm", ".txt", ".html",
            ".md", ".rst", ".json", ".xml", ".js", ".css", ".sh", ".cmake", ".tcl", ".el", ".svg",
            ".yaml", ".go", ".rs", ".java", ".inc", ".tex"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, cwd=None, env=None, check=True, capture=True):
    p = subprocess.run(cmd, cwd=cwd, env=env, text=True,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return p


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.workdir)
        self.data = os.path.join(self.work, "data")
        self.repos = os.path.join(self.work, "repos")
        self.restore = os.path.join(self.work, "restore")
        self.strata = os.path.abspath(args.strata)
        self.can_drop = self._check_drop()
        self.env = dict(os.environ)
        self.env.update({
            "STRATA_PASSWORD": PASSWORD,
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_CACHE_DIR": os.path.join(self.work, "cache", "restic"),
            "BORG_PASSPHRASE": PASSWORD,
            "BORG_BASE_DIR": os.path.join(self.work, "cache", "borg"),
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "YES",
            "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING": "YES",
        })
        self.rows = []        # (dataset, tool, op, bytes, seconds, cpu_seconds)
        self.sizes = {}       # (dataset, tool) -> repo bytes
        self.versions = {}    # tool -> [repo bytes after version i]
        self.fio = {}
        self.notes = []

    # ---- helpers -------------------------------------------------------------------------
    def _check_drop(self):
        try:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            return True
        except OSError:
            return False

    def drop_caches(self):
        os.sync()
        if self.can_drop:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")

    def timed(self, cmd, cwd=None):
        """Runs cmd then sync; returns (wall seconds, cpu seconds of the command, stdout)."""
        self.drop_caches()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = run(cmd, cwd=cwd, env=self.env)
        os.sync()
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu, p.stdout

    @staticmethod
    def du(path):
        total = 0
        for dp, dns, fns in os.walk(path):
            for fn in fns:
                try:
                    total += os.lstat(os.path.join(dp, fn)).st_size
                except OSError:
                    pass
        return total

    def rm(self, path):
        if os.path.lexists(path):
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)

    # ---- datasets ------------------------------------------------------------------------
    def gen_ds1(self):
        target = int(2 * GiB * self.args.scale)
        d = os.path.join(self.data, "ds1")
        if os.path.isdir(d) and self.du(d) >= target * 0.99:
            return d
        self.rm(d)
        rng = random.Random(1)
        # A quarter of the bytes in small files, a quarter in medium, half in large ones.
        classes = [(target // 4, 1 * KiB, 1 * MiB), (target // 4, 1 * MiB, 32 * MiB),
                   (target - 2 * (target // 4), 32 * MiB, 256 * MiB)]
        n = 0
        for ci, (budget, lo, hi) in enumerate(classes):
            sub = os.path.join(d, f"class{ci}")
            os.makedirs(sub)
            while budget > 0:
                size = min(budget, int(lo * (hi / lo) ** rng.random()))
                with open(os.path.join(sub, f"f{n:05d}.bin"), "wb") as f:
                    left = size
                    while left:
                        k = min(left, 16 * MiB)
                        f.write(os.urandom(k))
                        left -= k
                budget -= size
                n += 1
        log(f"ds1: {n} files, {self.du(d) / 1e6:.0f} MB")
        return d

    def gen_ds2(self):
        target = int(1 * GiB * self.args.scale)
        d = os.path.join(self.data, "ds2")
        if os.path.isdir(d) and os.path.exists(os.path.join(d, ".complete")):
            return d
        self.rm(d)
        os.makedirs(d)
        total = 0

        def copy_file(src, dst):
            nonlocal total
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
                total += os.path.getsize(dst)

        def walk(top, dst_top, filt):
            for dp, dns, fns in os.walk(top):
                dns.sort()
                for fn in sorted(fns):
                    if total >= target:
                        return
                    src = os.path.join(dp, fn)
                    if not (os.path.islink(src) or os.path.isfile(src)) or not filt(src):
                        continue
                    dst = os.path.join(dst_top, os.path.relpath(src, top))
                    if os.path.lexists(dst):
                        continue
                    try:
                        copy_file(src, dst)
                    except OSError:
                        pass

        walk("/usr/share/doc", os.path.join(d, "doc"), lambda p: True)
        walk("/usr/include", os.path.join(d, "include"), lambda p: True)
        walk("/usr", os.path.join(d, "usr"),
             lambda p: not os.path.islink(p) and os.path.splitext(p)[1] in TEXT_EXT
             and not p.startswith(("/usr/share/doc/", "/usr/include/")))
        open(os.path.join(d, ".complete"), "w").close()
        log(f"ds2: {total / 1e6:.0f} MB")
        return d

    def ds3_init(self):
        size = int(1 * GiB * self.args.scale)
        d = os.path.join(self.data, "ds3")
        self.rm(d)
        os.makedirs(d)
        path = os.path.join(d, "big.bin")
        with open(path, "wb") as f:
            left = size
            while left:
                k = min(left, 16 * MiB)
                f.write(os.urandom(k))
                left -= k
        return d, path, size

    @staticmethod
    def ds3_mutate(path, size, rng):
        """Changes 1% of the file in runs of 4..64 KiB at random offsets (in place)."""
        goal = size // 100
        changed = 0
        with open(path, "r+b") as f:
            while changed < goal:
                run_len = min(rng.randint(4 * KiB, 64 * KiB), goal - changed)
                off = rng.randrange(0, size - run_len)
                f.seek(off)
                f.write(rng.randbytes(run_len))
                changed += run_len

    # ---- tools ---------------------------------------------------------------------------
    def init_repo(self, tool, name):
        repo = os.path.join(self.repos, f"{tool}-{name}")
        self.rm(repo)
        if tool == "strata":
            run([self.strata, "-q", "init", repo], env=self.env)
        elif tool == "restic":
            run(["restic", "-q", "-r", repo, "init"], env=self.env)
        elif tool == "borg":
            run(["borg", "init", "-e", "repokey", repo], env=self.env)
        return repo

    def put(self, tool, repo, src, seq):
        if tool == "strata":
            wall, cpu, out = self.timed([self.strata, "-q", "-r", repo, "put", src])
            return wall, cpu, out.strip().splitlines()[-1]
        if tool == "restic":
            wall, cpu, _ = self.timed(["restic", "-q", "-r", repo, "backup", src])
            return wall, cpu, "latest"
        wall, cpu, _ = self.timed(["borg", "create", f"{repo}::v{seq}", src])
        return wall, cpu, f"v{seq}"

    def get(self, tool, repo, ref, dest):
        self.rm(dest)
        os.makedirs(dest)
        if tool == "strata":
            wall, cpu, _ = self.timed([self.strata, "-q", "-r", repo, "get", ref, dest])
        elif tool == "restic":
            wall, cpu, _ = self.timed(["restic", "-q", "-r", repo, "restore", ref, "--target", dest])
        else:
            wall, cpu, _ = self.timed(["borg", "extract", f"{repo}::{ref}"], cwd=dest)
        return wall, cpu

    def same_tree(self, a, b):
        return run(["diff", "-rq", "--no-dereference", a, b], check=False).returncode == 0

    def restored_root(self, tool, dest, src):
        # strata: DEST/<basename>; restic and borg recreate the source's full path.
        if tool == "strata":
            return os.path.join(dest, os.path.basename(src))
        return os.path.join(dest, src.lstrip("/"))

    # ---- benchmarks ----------------------------------------------------------------------
    def bench_dataset(self, name, src):
        nbytes = self.du(src)
        for tool in self.args.tools:
            repo = self.init_repo(tool, name)
            log(f"{name}: {tool} put")
            wall, cpu, ref = self.put(tool, repo, src, 1)
            self.rows.append((name, tool, "put", nbytes, wall, cpu))
            self.sizes[(name, tool)] = self.du(repo)
            dest = os.path.join(self.restore, tool)
            log(f"{name}: {tool} get")
            wall, cpu = self.get(tool, repo, ref, dest)
            self.rows.append((name, tool, "get", nbytes, wall, cpu))
            if tool == "strata" or self.args.verify_all:
                if not self.same_tree(src, self.restored_root(tool, dest, src)):
                    self.notes.append(f"**{tool} restore of {name} differs from the source!**")
            self.rm(dest)
            self.rm(repo)

    def bench_versions(self):
        d, path, size = self.ds3_init()
        repos = {t: self.init_repo(t, "ds3") for t in self.args.tools}
        rng = random.Random(3)
        totals = {t: [0.0, 0.0] for t in self.args.tools}
        for v in range(1, 11):
            if v > 1:
                self.ds3_mutate(path, size, rng)
            for tool in self.args.tools:
                log(f"ds3 v{v}: {tool} put")
                wall, cpu, _ = self.put(tool, repos[tool], d, v)
                totals[tool][0] += wall
                totals[tool][1] += cpu
                self.versions.setdefault(tool, []).append(self.du(repos[tool]))
        for tool in self.args.tools:
            self.rows.append(("ds3", tool, "put x10", 10 * size, totals[tool][0], totals[tool][1]))
            self.sizes[("ds3", tool)] = self.versions[tool][-1]
            self.rm(repos[tool])
        self.rm(d)
        return size

    def bench_fio(self):
        size = max(512 * MiB, int(2 * GiB * self.args.scale))
        f = os.path.join(self.work, "fio.dat")
        jobs = [
            ("write, O_DIRECT, libaio QD16", ["--rw=write", "--direct=1", "--ioengine=libaio", "--iodepth=16"]),
            ("write, buffered + end_fsync", ["--rw=write", "--direct=0", "--ioengine=psync", "--end_fsync=1"]),
            ("read, O_DIRECT, libaio QD16", ["--rw=read", "--direct=1", "--ioengine=libaio", "--iodepth=16"]),
            ("read, buffered", ["--rw=read", "--direct=0", "--ioengine=psync"]),
        ]
        for label, opts in jobs:
            if opts[0] == "--rw=write":
                self.rm(f)
            self.drop_caches()
            p = run(["fio", "--name=seq", f"--filename={f}", "--bs=1M", f"--size={size}",
                     "--output-format=json"] + opts)
            j = json.loads(p.stdout)["jobs"][0]
            side = j["write"] if "write" in opts[0] else j["read"]
            # bw_bytes covers the I/O phase; end_fsync time is in the job's runtime only, so
            # derive the rate from bytes / job runtime to include the flush.
            secs = j["job_runtime"] / 1000.0 if j.get("job_runtime") else side["runtime"] / 1000.0
            self.fio[label] = side["io_bytes"] / secs if secs else side["bw_bytes"]
            log(f"fio {label}: {self.fio[label] / 1e6:.0f} MB/s")
        self.rm(f)

    def bench_stages(self):
        out = {}
        sb = os.path.join(ROOT, "build-bench", "bench", "stages_bench")
        if os.access(sb, os.X_OK):
            p = run([sb, "1"], check=False)
            out["stages_bench"] = (p.stdout + p.stderr).strip() if p.returncode == 0 else \
                f"stages_bench FAILED (exit {p.returncode}):\n{p.stdout}{p.stderr}"
        else:
            out["stages_bench"] = f"{sb} is missing (build it: ninja -C build-bench stages_bench)"
        for alg in ("aes-256-gcm", "sha256"):
            p = run(["openssl", "speed", "-evp", alg, "-bytes", str(MiB), "-seconds", "2"], check=False)
            lines = [l for l in p.stdout.splitlines() if l.strip()]
            out[f"openssl {alg}"] = "\n".join(lines[-2:])
        sample = os.path.join(self.work, "zstd-sample")
        with open(sample, "wb") as w:
            n = 0
            for dp, dns, fns in os.walk(os.path.join(self.data, "ds2")):
                for fn in fns:
                    p = os.path.join(dp, fn)
                    if os.path.isfile(p) and not os.path.islink(p):
                        with open(p, "rb") as r:
                            n += w.write(r.read())
                    if n >= 64 * MiB:
                        break
                if n >= 64 * MiB:
                    break
        p = run(["zstd", "-b1", "-e3", "-i2", sample], check=False)
        # zstd redraws its result line with \r and ends each level with a bare "N#": keep the
        # last complete draw (ratio, compress and decompress speed) before each marker.
        results, last = [], ""
        for seg in re.split(r"[\r\n]", p.stdout + p.stderr):
            m = re.match(r"\s*(\d+)#", seg)
            if seg.count("MB/s") == 2:
                last = seg.strip().lstrip("|/-\\ ")
            elif m and last:
                results.append(f"level {m.group(1)}: {last}")
                last = ""
        out["zstd -b1 -e3 (64 MiB of dataset 2; compress, decompress per core)"] = "\n".join(results) or p.stderr
        self.rm(sample)
        return out

    # ---- report --------------------------------------------------------------------------
    def machine(self):
        model, mem_bytes = cpu_model_and_memory()
        mem = f"{mem_bytes / GiB:.1f} GiB"
        src = run(["findmnt", "-no", "SOURCE,FSTYPE", "-T", self.work], check=False).stdout.strip()
        dev = run(["lsblk", "-dno", "NAME,SIZE,ROTA,MODEL"], check=False).stdout.strip().replace("\n", "; ")
        return f"{model}; {os.cpu_count()} cores; {mem} RAM; disk {src} ({dev})"

    def report(self, stages, ds3_size):
        tools = self.args.tools
        t = {(r[0], r[1], r[2]): r for r in self.rows}
        L = []
        L.append(f"# strata put/get benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}\n")
        L.append(f"- command: `{' '.join(sys.argv)}` (scale {self.args.scale})")
        L.append(f"- machine: {self.machine()}")
        L.append(f"- versions: {run([self.strata, '--version'], check=False).stdout.strip() or 'strata (git ' + run(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'], check=False).stdout.strip() + ')'}, "
                 f"{run(['restic', 'version']).stdout.split(' compiled')[0]}, {run(['borg', '--version']).stdout.strip()}, "
                 f"{run(['fio', '--version']).stdout.strip()}")
        L.append(f"- load average at start: {self.load_at_start} (other jobs share these cores; numbers are lower and noisier when it is above 0)")
        L.append(f"- page cache dropped before each timed step: {'yes' if self.can_drop else 'NO (not root): reads may hit the cache'}; "
                 "each timed step includes a final `sync`")
        L.append("- defaults everywhere: strata (FastCDC 1 MiB avg, zstd-3, AES-256-GCM), restic (repo v2, "
                 "compression auto), borg (`-e repokey`, lz4)\n")
        L.append("## Disk (fio, sequential, 1 MiB blocks)\n")
        L.append("| job | MB/s |\n|---|---:|")
        for k, v in self.fio.items():
            L.append(f"| {k} | {v / 1e6:.0f} |")
        L.append("\n## Throughput\n")
        L.append("MB/s = dataset bytes / wall seconds (1 MB = 10^6 B). cores = CPU seconds / wall seconds.\n")
        hdr = "| dataset | op | bytes | " + " | ".join(f"{x} s | {x} MB/s | {x} cores" for x in tools)
        ratios = [f"strata/{x}" for x in tools if x != "strata"]
        L.append(hdr + " | " + " | ".join(ratios) + " |")
        L.append("|---|---|---:|" + "---:|" * (3 * len(tools) + len(ratios)))
        for ds, ops in (("ds1", ("put", "get")), ("ds2", ("put", "get")), ("ds3", ("put x10",))):
            for op in ops:
                cells = []
                rate = {}
                nbytes = 0
                for x in tools:
                    r = t.get((ds, x, op))
                    if not r:
                        cells += ["-", "-", "-"]
                        continue
                    nbytes = r[3]
                    rate[x] = r[3] / r[4]
                    cells += [f"{r[4]:.1f}", f"{rate[x] / 1e6:.0f}", f"{r[5] / r[4]:.2f}"]
                rs = [f"{rate['strata'] / rate[x]:.2f}x" if 'strata' in rate and x in rate else "-"
                      for x in tools if x != "strata"]
                L.append(f"| {ds} | {op} | {nbytes / 1e6:.0f} MB | " + " | ".join(cells) + " | " + " | ".join(rs) + " |")
        if "strata" in tools and ("ds1", "strata", "put") in t:
            r = t[("ds1", "strata", "put")]
            rate = r[3] / r[4]
            parts = [f"{rate / v * 100:.0f}% of fio {k}" for k, v in self.fio.items() if k.startswith("write")]
            L.append(f"\nstrata put of ds1: {rate / 1e6:.0f} MB/s = " + ", ".join(parts) + ".")
        L.append("\n## Stored size (repository bytes after the puts)\n")
        L.append("| dataset | source | " + " | ".join(tools) + " | " + " | ".join(ratios) + " |")
        L.append("|---|---:|" + "---:|" * (len(tools) + len(ratios)))
        for ds in ("ds1", "ds2", "ds3"):
            src = {"ds3": 10 * ds3_size}.get(ds) or next((r[3] for r in self.rows if r[0] == ds), 0)
            sz = [self.sizes.get((ds, x)) for x in tools]
            if not any(sz):
                continue
            rs = [f"{self.sizes[(ds, 'strata')] / self.sizes[(ds, x)]:.3f}" if (ds, x) in self.sizes and (ds, 'strata') in self.sizes else "-"
                  for x in tools if x != "strata"]
            L.append(f"| {ds} | {src / 1e6:.0f} MB | " + " | ".join(f"{s / 1e6:.0f} MB" if s else "-" for s in sz) +
                     " | " + " | ".join(rs) + " |")
        if self.versions:
            L.append("\n## Dataset 3: repository size after each version (MB)\n")
            L.append("| version | " + " | ".join(tools) + " |")
            L.append("|---:|" + "---:|" * len(tools))
            for v in range(10):
                L.append(f"| {v + 1} | " + " | ".join(f"{self.versions[x][v] / 1e6:.0f}" for x in tools) + " |")
        L.append("\n## Stages (per core) and the libraries' own benchmarks\n")
        for k, v in stages.items():
            L.append(f"### {k}\n\n```\n{v}\n```\n")
        if self.notes:
            L.append("## Notes\n")
            L += [f"- {n}" for n in self.notes]
        return "\n".join(L) + "\n"

    def main(self):
        if not os.access(self.strata, os.X_OK):
            sys.exit(f"no strata binary at {self.strata} (build it, or pass --strata)")
        for tool in self.args.tools:
            if tool != "strata" and shutil.which(tool) is None:
                sys.exit(f"{tool} is not installed")
        if not self.can_drop:
            log("warning: cannot drop the page cache (run as root for cold-cache numbers)")
        self.load_at_start = open("/proc/loadavg").read().split()[:3]
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.repos, exist_ok=True)
        ds1, ds2 = self.gen_ds1(), self.gen_ds2()
        if not self.args.skip_fio:
            self.bench_fio()
        self.bench_dataset("ds1", ds1)
        self.bench_dataset("ds2", ds2)
        ds3_size = self.bench_versions() if not self.args.skip_versions else 0
        stages = self.bench_stages()
        save_report("put_get", self.report(stages, ds3_size), datetime.datetime.now())
        if not self.args.keep:
            self.rm(self.work)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/strata-bench", help="datasets, repositories, restores (removed at the end)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every dataset size (0.1 for a quick run)")
    ap.add_argument("--strata", default=os.path.join(ROOT, "build-bench", "strata"), help="the strata binary")
    ap.add_argument("--tools", default="strata,restic,borg", help="comma-separated subset of strata,restic,borg")
    ap.add_argument("--skip-fio", action="store_true")
    ap.add_argument("--skip-versions", action="store_true", help="skip dataset 3")
    ap.add_argument("--verify-all", action="store_true", help="also compare restic's and borg's restores with the source")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    a.tools = [x for x in a.tools.split(",") if x]
    return a


if __name__ == "__main__":
    Bench(parse_args()).main()
