#!/usr/bin/env python3
"""strata's versioned datasets against git on the same trees, in the same run.

Datasets (sizes times --scale, or set directly with --a-files / --b-files):
  a  real small files: regular files of at most 1 MiB copied from /usr/share, /usr/include,
     then /usr/lib, /usr/local, /usr/bin ... until --a-files (default 200k) or /usr runs out
  b  generated small files: --b-files (default 1,000,000) files of 100..2000 random bytes,
     1000 files per directory
  h  a history of --log-commits (default 10,000) one-file commits, for `log`

Per dataset a and b, both tools, same data, same disk:
  first commit     page cache dropped first; ends with `sync` (git's loose objects are not
                   fsync'd by git itself, strata fsyncs its packs: the final sync makes it fair)
  1-file commit    one file rewritten, then committed; strata both ways: directory scan
                   (`commit NAME@main DIR`) and change list (`--add PATH=SRC`); git both ways:
                   `git commit -a` (index refresh = a scan) and `git add PATH && git commit`
  10-file commit   ten files in ten directories rewritten, committed (scan mode both)
  diff             the two commits that differ in those ten files (`strata diff` vs
                   `git diff --stat`)
  branch, tag      create (strata branch/tag create vs git branch / git tag)
  open             `strata dataset list`: what every strata command pays before its work
                   (process start, key (cached by `strata unlock`, or Argon2id with
                   --no-unlock; also measured once locked), index cache and catalog open)
  checkout         into an empty directory, page cache dropped first, ends with `sync`
                   (strata checkout vs `git worktree add --detach DEST COMMIT`)
Quick operations are the median of --reps (3) runs, warm cache; branch, tag and open the median
of at least 11, strata and git in turns.

History (h): strata commits made one process per commit (`commit --add`); built on /dev/shm
with a cheap key derivation (so building it takes minutes, not hours), stopped at
--log-commits or after --log-budget seconds, whichever comes first, then copied to the work
directory; git's history of the same length is made with `git fast-import`. Timed:
`strata log -n N --json > /dev/null` vs `git log --oneline | wc -l`.

Writes the report (markdown) to bench/results/version_git-<date>.md and prints it.
Run as root so the page cache can be dropped (otherwise cold steps are warm and it says so).

  sudo python3 bench/version_git.py                      # full size: ~35 min on 2 busy cores
  sudo python3 bench/version_git.py --datasets b --log-commits 0   # 1M files alone: ~20 min
  python3 bench/version_git.py --scale 0.01              # quick run (~1 min)
The binary is build-vbench/strata unless --strata says otherwise (see docs/PERFORMANCE.md).
Removing a million-file tree and its copies takes minutes too; it is done at the end of each
dataset and not counted.
"""
import argparse
import json
import datetime
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, cpu_model_and_memory, save_report  # noqa: E402
PASSWORD = "strata-bench-passphrase"
MiB = 1 << 20


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, cwd=None, env=None, check=True, shell=False, stdout=subprocess.PIPE):
    p = subprocess.run(cmd, cwd=cwd, env=env, text=True, shell=shell,
                       stdout=stdout, stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        shown = cmd if shell else " ".join(cmd)
        raise RuntimeError(f"{shown} failed ({p.returncode}):\n{p.stderr}")
    return p


def timed(cmd, **kw):
    t = time.perf_counter()
    p = run(cmd, **kw)
    return time.perf_counter() - t, p


def fmt_s(x):
    if x is None:
        return "–"
    if x < 1:
        return f"{x * 1000:.1f} ms"
    return f"{x:.2f} s"


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.workdir)
        self.strata = os.path.abspath(args.strata)
        self.can_drop = self._check_drop()
        self.env = dict(os.environ)
        self.env["STRATA_PASSWORD"] = PASSWORD
        self.env.update({"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
                         "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org",
                         "GIT_CONFIG_NOSYSTEM": "1", "HOME": os.path.join(self.work, "home")})
        self.rows = []       # (dataset, op, strata_s, git_s, target, note)
        self.notes = []
        self.setup = []      # (what, seconds)
        self.rng = random.Random(42)
        self.pool = os.urandom(4 * MiB)

    # ---- helpers -------------------------------------------------------------------------
    def _check_drop(self):
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            return True
        except OSError:
            log("warning: cannot drop the page cache (not root): cold steps are warm-cache numbers")
            return False

    def drop(self):
        os.sync()
        if self.can_drop:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")

    def settle(self, quiet_s=2.0, limit_s=120.0):
        """sync, then waits (at most limit_s) until the work directory's disk has completed no
        write or discard and has none in flight for quiet_s seconds; returns the seconds waited."""
        os.sync()
        st = os.stat(self.work)
        device = [str(os.major(st.st_dev)), str(os.minor(st.st_dev))]

        def sample():  # (writes completed, discards completed, I/Os in flight) of that device
            with open("/proc/diskstats") as f:
                for x in (line.split() for line in f):
                    if x[:2] == device:
                        return int(x[7]), int(x[14]) if len(x) > 14 else 0, int(x[11])
            return None
        start = time.perf_counter()
        last, quiet_since = sample(), time.perf_counter()
        while last is not None and time.perf_counter() - start < limit_s:
            time.sleep(0.25)
            now = sample()
            if now != last or now[2] != 0:
                quiet_since = time.perf_counter()
            elif time.perf_counter() - quiet_since >= quiet_s:
                break
            last = now
        return time.perf_counter() - start

    def unlock(self, repo):
        # `strata unlock` (unless --no-unlock): commands then skip Argon2id, as a user working
        # in a session would; the repository id, not the path, keys the cached keys.
        if not self.args.no_unlock:
            run(self.s(repo, "unlock", "--for", "6h"), env=self.env)

    def s(self, repo, *a, **kw):
        return [self.strata, "-q", "-r", repo, *a]

    def median(self, fn, reps=None):
        xs = [fn(i) for i in range(reps or self.args.reps)]
        return statistics.median(xs)

    def alternate(self, fa, fb, reps):
        """Medians of fa and fb run in turns, so a slow moment of the machine hits both."""
        xa, xb = [], []
        for i in range(reps):
            xa.append(fa(i))
            xb.append(fb(i))
        return statistics.median(xa), statistics.median(xb)

    def payload(self, lo=100, hi=2000):
        n = self.rng.randint(lo, hi)
        off = self.rng.randrange(0, len(self.pool) - n)
        return self.pool[off:off + n]

    def rewrite(self, path):
        with open(path, "wb") as f:
            f.write(self.payload())

    # ---- datasets ------------------------------------------------------------------------
    def make_a(self, dest, want):
        roots = ["/usr/share", "/usr/include", "/usr/lib", "/usr/local", "/usr/libexec",
                 "/usr/bin", "/usr/sbin", "/usr/src", "/opt"]
        n = 0
        nbytes = 0
        for r in roots:
            for dirpath, dirnames, filenames in os.walk(r):
                if os.path.abspath(dirpath).startswith(self.work):
                    dirnames[:] = []
                    continue
                dirnames.sort()
                for fn in sorted(filenames):
                    src = os.path.join(dirpath, fn)
                    try:
                        st = os.lstat(src)
                    except OSError:
                        continue
                    if not os.path.isfile(src) or os.path.islink(src) or st.st_size > MiB:
                        continue
                    dst = os.path.join(dest, src.lstrip("/"))
                    try:
                        os.makedirs(os.path.dirname(dst), exist_ok=True)
                        shutil.copyfile(src, dst)
                    except OSError:
                        continue
                    n += 1
                    nbytes += st.st_size
                    if n >= want:
                        return n, nbytes
        return n, nbytes

    def make_b(self, dest, want):
        per_dir = 1000
        n = 0
        nbytes = 0
        d = 0
        while n < want:
            dd = os.path.join(dest, f"d{d:04d}")
            os.makedirs(dd)
            for i in range(min(per_dir, want - n)):
                data = self.payload()
                fd = os.open(os.path.join(dd, f"f{i:04d}.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, data)
                os.close(fd)
                n += 1
                nbytes += len(data)
            d += 1
        return n, nbytes

    def pick_files(self, data, k):
        """k distinct files, spread round-robin over the directories (deterministic)."""
        per_dir = []
        for dirpath, dirnames, filenames in os.walk(data):
            dirnames.sort()
            files = [os.path.join(dirpath, f) for f in sorted(filenames)]
            files = [f for f in files if os.path.isfile(f) and not os.path.islink(f)]
            if files:
                per_dir.append(files)
            if len(per_dir) >= 20 * k:
                break
        per = max(8, -(-k // max(1, len(per_dir))))
        per_dir = [fs[::max(1, len(fs) // per)][:per] for fs in per_dir]
        self.rng.shuffle(per_dir)
        out = []
        for r in range(per):
            out += [fs[r] for fs in per_dir if r < len(fs)]
        return out[:k]

    # ---- one dataset, both tools ---------------------------------------------------------
    def bench(self, name, data, nfiles):
        base = os.path.join(self.work, name)
        os.makedirs(base, exist_ok=True)
        repo = os.path.join(base, "strata-repo")
        gd = os.path.join(base, "git-dir")
        env = self.env
        git = ["git", f"--git-dir={gd}", f"--work-tree={data}"]
        ref = f"{name}@main"

        run([self.strata, "-q", "init", repo], env=env)
        self.unlock(repo)
        run(self.s(repo, "dataset", "create", name), env=env)
        run(["git", "init", "-q", "--bare", gd], env=env)
        run(["git", f"--git-dir={gd}", "config", "core.bare", "false"], env=env)
        run(["git", f"--git-dir={gd}", "config", "core.worktree", data], env=env)

        # first commit, cold
        self.drop()
        t0 = time.perf_counter()
        p = run(self.s(repo, "commit", ref, data, "-m", "first"), env=env)
        os.sync()
        t_s = time.perf_counter() - t0
        self.drop()
        t0 = time.perf_counter()
        run(git + ["add", "-A"], env=env)
        run(git + ["-c", "gc.auto=0", "commit", "-q", "-m", "first"], env=env)  # its gc: below
        os.sync()
        t_g = time.perf_counter() - t0
        self.rows.append((name, f"first commit ({nfiles:,} files), cold cache, + sync", t_s, t_g,
                          "at least as fast as git", t_s <= t_g))
        log(f"  [{name}] first commit: strata {fmt_s(t_s)}, git {fmt_s(t_g)}")

        # With this many loose objects, git's `commit` starts `gc --auto` detached: a repack that
        # keeps both cores busy for minutes, under every timing that follows (of both tools). It
        # runs here instead, in the foreground and untimed, so the steps below run on a quiet
        # machine and git on its packed, steady state.
        t0 = time.perf_counter()
        run(git + ["-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"], env=env)
        self.setup.append((f"dataset {name}: git's automatic gc after the first commit (untimed)",
                           time.perf_counter() - t0))

        victims = self.pick_files(data, 40)
        vi = iter(victims)

        # 1-file commit, scan mode
        def s_scan(i):
            f = next(vi)
            self.rewrite(f)
            t, _ = timed(self.s(repo, "commit", ref, data, "-m", f"scan {i}"), env=env)
            run(git + ["add", "-A"], env=env)
            run(git + ["commit", "-q", "-m", f"sync {i}"], env=env)
            return t

        def g_scan(i):
            f = next(vi)
            self.rewrite(f)
            run(self.s(repo, "commit", ref, "--add", f"{os.path.relpath(f, data)}={f}", "-m", "sync"), env=env)
            t, _ = timed(git + ["commit", "-q", "-a", "-m", f"scan {i}"], env=env)
            return t

        def s_list(i):
            f = next(vi)
            self.rewrite(f)
            t, _ = timed(self.s(repo, "commit", ref, "--add", f"{os.path.relpath(f, data)}={f}",
                                "-m", f"list {i}"), env=env)
            run(git + ["commit", "-q", "-a", "-m", f"sync {i}"], env=env)
            return t

        def g_list(i):
            f = next(vi)
            self.rewrite(f)
            run(self.s(repo, "commit", ref, "--add", f"{os.path.relpath(f, data)}={f}", "-m", "sync"), env=env)
            t0 = time.perf_counter()
            run(git + ["add", "--", os.path.relpath(f, data)], cwd=data, env=env)
            run(git + ["commit", "-q", "-m", f"list {i}"], cwd=data, env=env)
            return time.perf_counter() - t0

        a, b = self.median(s_scan), self.median(g_scan)
        # The 200 ms target is for the commit of a known change (the change list below); a scan
        # stats every file of the dataset, so it is held to git's own scan instead.
        self.rows.append((name, "1-file commit: directory scan (strata `commit REF DIR`, git `commit -a`)",
                          a, b, "as fast as git", a <= b))
        log(f"  [{name}] 1-file commit scan: strata {fmt_s(a)}, git {fmt_s(b)}")
        a, b = self.median(s_list), self.median(g_list)
        self.rows.append((name, "1-file commit: change list (strata `--add P=SRC`, git `add P && commit`)",
                          a, b, "< 200 ms", a < 0.2))
        log(f"  [{name}] 1-file commit list: strata {fmt_s(a)}, git {fmt_s(b)}")

        # 10 changes, one commit each side, then diff
        s_a = run(self.s(repo, "log", "-n", "1", ref, "--json"), env=env).stdout
        s_a = json.loads(s_a)[0]["id"][:16]
        g_a = run(git + ["rev-parse", "HEAD"], env=env).stdout.strip()
        ten = [next(vi) for _ in range(10)]
        for f in ten:
            self.rewrite(f)
        t_s10, _ = timed(self.s(repo, "commit", ref, data, "-m", "ten"), env=env)
        t_g10, _ = timed(git + ["commit", "-q", "-a", "-m", "ten"], env=env)
        self.rows.append((name, "10-file commit: directory scan", t_s10, t_g10, "", None))
        s_b = json.loads(run(self.s(repo, "log", "-n", "1", ref, "--json"), env=env).stdout)[0]["id"][:16]
        g_b = run(git + ["rev-parse", "HEAD"], env=env).stdout.strip()
        out = run(self.s(repo, "diff", f"{name}@{s_a}", f"{name}@{s_b}"), env=env).stdout
        nlines = len([l for l in out.splitlines() if l.strip()])
        a = self.median(lambda i: timed(self.s(repo, "diff", f"{name}@{s_a}", f"{name}@{s_b}"),
                                        env=env, stdout=subprocess.DEVNULL)[0])
        b = self.median(lambda i: timed(git + ["diff", "--stat", g_a, g_b], env=env,
                                        stdout=subprocess.DEVNULL)[0])
        self.rows.append((name, f"diff of two commits 10 files apart ({nlines} lines of strata output)",
                          a, b, "< 100 ms", a < 0.1))
        log(f"  [{name}] diff: strata {fmt_s(a)}, git {fmt_s(b)}")

        # branch, tag, and the cost of opening the repository. Written back first, and timed
        # once the disk is quiet, so neither tool's fsyncs wait on what earlier steps left
        # behind (on ext4 an fsync commits the journal; with `discard` the deletions of the
        # steps before keep the disk busy after `sync`). strata's ref change makes two fsyncs,
        # git's none: on a disk still busy, they are most of strata's time.
        waited = self.settle()
        log(f"  [{name}] disk quiet after {waited:.1f} s")
        # These take milliseconds, and one fsync that meets the hypervisor's write-back doubles
        # one: a median of at least 11 (alternating the tools) rather than of --reps.
        quick = max(self.args.reps, 11)
        a, b = self.alternate(lambda i: timed(self.s(repo, "branch", "create", f"{name}@br{i}", ref), env=env)[0],
                              lambda i: timed(git + ["branch", f"br{i}"], env=env)[0], quick)
        self.rows.append((name, "branch create", a, b, "< 10 ms", a < 0.01))
        a, b = self.alternate(lambda i: timed(self.s(repo, "tag", "create", f"{name}@v{i}", ref), env=env)[0],
                              lambda i: timed(git + ["tag", f"v{i}"], env=env)[0], quick)
        self.rows.append((name, "tag create", a, b, "< 10 ms", a < 0.01))
        a, b = self.alternate(lambda i: timed(self.s(repo, "dataset", "list"), env=env)[0],
                              lambda i: timed(git + ["rev-parse", "HEAD"], env=env)[0], quick)
        self.rows.append((name, "open only (strata `dataset list`, git `rev-parse HEAD`)", a, b, "", None))
        log(f"  [{name}] open: strata {fmt_s(a)}")
        if not self.args.no_unlock:
            run(self.s(repo, "lock"), env=env)
            a = self.median(lambda i: timed(self.s(repo, "dataset", "list"), env=env)[0])
            self.rows.append((name, "open only, locked (passphrase: Argon2id)", a, None, "", None))
            self.unlock(repo)

        # checkout into an empty directory, cold
        s_out = os.path.join(base, "co-strata")
        g_out = os.path.join(base, "co-git")
        self.drop()
        t0 = time.perf_counter()
        run(self.s(repo, "checkout", ref, s_out), env=env)
        os.sync()
        t_s = time.perf_counter() - t0
        self.drop()
        t0 = time.perf_counter()
        run(["git", f"--git-dir={gd}", "worktree", "add", "-q", "--detach", g_out, "HEAD"], env=env)
        os.sync()
        t_g = time.perf_counter() - t0
        ns = sum(len(f) for _, _, f in os.walk(s_out))
        ng = sum(len([x for x in f if x != ".git"]) for _, _, f in os.walk(g_out))
        self.rows.append((name, f"checkout into an empty dir, cold cache, + sync ({ns:,} / {ng:,} files)",
                          t_s, t_g, "at least as fast as git", t_s <= t_g))
        log(f"  [{name}] checkout: strata {fmt_s(t_s)}, git {fmt_s(t_g)}")
        if ns != ng:
            self.notes.append(f"{name}: checkout file counts differ: strata {ns}, git {ng}")

        self.sizes.append((name, du(repo), du(gd)))
        if not self.args.keep:
            t0 = time.perf_counter()
            run(["rm", "-rf", s_out, g_out, repo, gd])
            log(f"  [{name}] cleanup {time.perf_counter() - t0:.0f} s")

    # ---- history ---------------------------------------------------------------------------
    def bench_log(self, want):
        env = self.env
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else self.work
        build = os.path.join(shm, f"strata-vbench-hist-{os.getpid()}")
        repo_b = os.path.join(build, "repo")
        src = os.path.join(build, "src")
        os.makedirs(src)
        for i in range(100):
            with open(os.path.join(src, f"f{i:03d}.txt"), "w") as f:
                f.write(f"file {i}\n")
        run([self.strata, "-q", "init", repo_b, "--kdf-mem", "1", "--kdf-ops", "1"], env=env)
        self.unlock(repo_b)
        run(self.s(repo_b, "dataset", "create", "h"), env=env)
        run(self.s(repo_b, "commit", "h@main", src, "-m", "base"), env=env)
        t0 = time.perf_counter()
        n = 1
        window = []
        first100 = None
        tmpf = os.path.join(build, "x")
        while n < want and time.perf_counter() - t0 < self.args.log_budget:
            with open(tmpf, "w") as f:
                f.write(f"version {n}\n")
            t1 = time.perf_counter()
            run(self.s(repo_b, "commit", "h@main", "--add", f"f{n % 100:03d}.txt={tmpf}", "-m", f"c{n}"),
                env=env)
            window.append(time.perf_counter() - t1)
            window = window[-100:]
            n += 1
            if n == 101:
                first100 = statistics.mean(window)
            if n % 1000 == 0:
                log(f"  [h] {n} commits, {statistics.mean(window) * 1000:.0f} ms/commit now")
        build_s = time.perf_counter() - t0
        last100 = statistics.mean(window)
        repo = os.path.join(self.work, "h", "strata-repo")
        os.makedirs(os.path.dirname(repo), exist_ok=True)
        shutil.copytree(repo_b, repo)
        shutil.rmtree(build, ignore_errors=True)
        self.setup.append((f"strata history: {n} commits, one process each (tmpfs, cheap KDF)", build_s))
        self.notes.append(f"history: strata commit time grew from {fmt_s(first100)} (mean of commits 1–100) "
                          f"to {fmt_s(last100)} (last 100, at {n} commits); built in {build_s:.0f} s")

        # git: same number of commits, one file changed each, via fast-import
        gd = os.path.join(self.work, "h", "git-dir")
        run(["git", "init", "-q", "--bare", gd], env=env)
        t0 = time.perf_counter()
        lines = []
        ts = 1700000000
        lines.append("commit refs/heads/main\ncommitter bench <b@e.org> %d +0000\ndata 4\nbase\n" % ts)  # each data block ends with one LF
        for i in range(100):
            c = f"file {i}\n"
            lines.append(f"M 100644 inline f{i:03d}.txt\ndata {len(c)}\n{c}\n")
        for k in range(1, n):
            c = f"version {k}\n"
            msg = f"c{k}"
            lines.append(f"commit refs/heads/main\ncommitter bench <b@e.org> {ts + k} +0000\n"
                         f"data {len(msg)}\n{msg}\nM 100644 inline f{k % 100:03d}.txt\ndata {len(c)}\n{c}\n")
        p = subprocess.run(["git", f"--git-dir={gd}", "fast-import", "--quiet", "--done"], input="".join(lines) + "done\n",
                           text=True, env=env, capture_output=True)
        if p.returncode != 0:
            raise RuntimeError("git fast-import failed: " + p.stderr)
        self.setup.append((f"git history: {n} commits via fast-import", time.perf_counter() - t0))
        gcount = int(run(["git", f"--git-dir={gd}", "rev-list", "--count", "main"], env=env).stdout)

        a = self.median(lambda i: timed(self.s(repo, "log", "-n", str(n + 10), "--json", "h@main"), env=env,
                                        stdout=subprocess.DEVNULL)[0])
        b = self.median(lambda i: timed(f"git --git-dir={gd} log --oneline main | wc -l", shell=True, env=env,
                                        stdout=subprocess.DEVNULL)[0])
        cnt = len(json.loads(run(self.s(repo, "log", "-n", str(n + 10), "--json", "h@main"),
                                               env=env).stdout))
        self.rows.append(("h", f"log of {cnt:,} commits (git: {gcount:,}), warm", a, b, "", None))
        a = self.median(lambda i: timed(self.s(repo, "dataset", "list"), env=env)[0])
        self.rows.append(("h", f"open only at {n:,} commits (cheap KDF repo)", a, None, "", None))
        a, b = self.alternate(lambda i: timed(self.s(repo, "branch", "create", f"h@br{i}", "h@main"), env=env)[0],
                              lambda i: timed(["git", f"--git-dir={gd}", "branch", f"br{i}", "main"], env=env)[0],
                              max(self.args.reps, 11))
        self.rows.append(("h", f"branch create at {n:,} commits (cheap KDF repo)", a, b, "< 10 ms", a < 0.01))
        self.sizes.append(("h", du(repo), du(gd)))
        if not self.args.keep:
            shutil.rmtree(os.path.join(self.work, "h"), ignore_errors=True)

    # ---- main ------------------------------------------------------------------------------
    def main(self):
        a = self.args
        self.sizes = []
        if os.path.exists(self.work):
            run(["rm", "-rf", self.work])
        os.makedirs(self.work, exist_ok=True)
        os.makedirs(self.env["HOME"], exist_ok=True)
        self.started = datetime.datetime.now()
        self.load0 = os.getloadavg()
        wall0 = time.perf_counter()
        for name in [d for d in a.datasets.split(",") if d]:  # --datasets "": the history only
            data = os.path.join(self.work, "data", name)
            if os.path.exists(data):
                shutil.rmtree(data)
            os.makedirs(data)
            if name == "a":
                want = a.a_files or int(200_000 * a.scale)
                t0 = time.perf_counter()
                n, nb = self.make_a(data, want)
                self.setup.append((f"dataset a: copy {n:,} files ({nb / 1e6:.0f} MB) from /usr", time.perf_counter() - t0))
                if n < want:
                    self.notes.append(f"dataset a: this machine has only {n:,} regular files of at most "
                                      f"1 MiB under /usr and /opt (asked for {want:,}); all of them are used")
            elif name == "b":
                want = a.b_files or int(1_000_000 * a.scale)
                t0 = time.perf_counter()
                n, nb = self.make_b(data, want)
                os.sync()
                self.setup.append((f"dataset b: generate {n:,} files ({nb / 1e6:.0f} MB), Python loop + sync",
                                   time.perf_counter() - t0))
            else:
                raise SystemExit(f"unknown dataset {name}")
            log(f"[{name}] {self.setup[-1][0]}: {self.setup[-1][1]:.0f} s")
            self.bench(name, data, n)
            if not a.keep:
                t0 = time.perf_counter()
                run(["rm", "-rf", data])
                log(f"[{name}] data removed in {time.perf_counter() - t0:.0f} s")
        want_log = a.log_commits if a.log_commits is not None else int(10_000 * a.scale)
        if want_log > 0:
            log("[h] building histories")
            self.bench_log(want_log)
        self.load1 = os.getloadavg()
        self.wall = time.perf_counter() - wall0
        save_report("version_git", self.report(), self.started)
        if not a.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def report(self):
        out = []
        w = out.append
        gitv = run(["git", "--version"]).stdout.strip()
        rev = self.args.strata_rev
        if not rev:
            try:
                rev = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.strip()
            except Exception:
                rev = "?"
        w(f"## strata versioning vs git — {self.started:%Y-%m-%d %H:%M}\n")
        w(f"- command: `{' '.join(sys.argv)}`")
        w(f"- machine: {machine()}")
        w(f"- versions: strata {self.strata} (tree at git {rev}), {gitv}")
        w(f"- load average at start / end: {' '.join(f'{x:.2f}' for x in self.load0)} / "
          f"{' '.join(f'{x:.2f}' for x in self.load1)}")
        w(f"- page cache dropped before cold steps: {'yes' if self.can_drop else 'NO (not root)'}")
        w(f"- total wall time: {self.wall / 60:.1f} min\n")
        w("| data | operation | strata | git | git/strata | target | met? |")
        w("|---|---|---:|---:|---:|---|---|")
        for ds, op, s, g, target, ok in self.rows:
            ratio = f"{g / s:.2f}x" if (s and g) else "–"
            met = "" if ok is None else ("yes" if ok else "**no**")
            w(f"| {ds} | {op} | {fmt_s(s)} | {fmt_s(g)} | {ratio} | {target} | {met} |")
        w("\ngit/strata > 1 means strata is faster.\n")
        w("| setup step | seconds |")
        w("|---|---:|")
        for what, sec in self.setup:
            w(f"| {what} | {sec:.1f} |")
        w("\n| data | strata repository | git directory |")
        w("|---|---:|---:|")
        for ds, s, g in self.sizes:
            w(f"| {ds} | {s / 1e6:.1f} MB | {g / 1e6:.1f} MB |")
        if self.notes:
            w("")
            for n in self.notes:
                w(f"- {n}")
        return "\n".join(out) + "\n"


def du(path):
    total = 0
    for dp, _, fs in os.walk(path):
        for f in fs:
            try:
                total += os.lstat(os.path.join(dp, f)).st_size
            except OSError:
                pass
    return total


def machine():
    model, mem = cpu_model_and_memory()
    fs = run(["df", "-T", "/tmp"], check=False).stdout.splitlines()[-1].split()
    return f"{model}; {os.cpu_count()} cores; {mem / (1 << 30):.1f} GiB RAM; work dir on {fs[0]} ({fs[1]})"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="/tmp/strata-vbench")
    p.add_argument("--strata", default=os.path.join(ROOT, "build-vbench", "strata"))
    p.add_argument("--strata-rev", default="", help="the commit the binary was built from (for the report)")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every dataset size")
    p.add_argument("--a-files", type=int, default=0, help="files in dataset a (default 200k x scale)")
    p.add_argument("--b-files", type=int, default=0, help="files in dataset b (default 1M x scale)")
    p.add_argument("--log-commits", type=int, default=None,
                   help="commits in the history (default 10k x scale; 0 skips)")
    p.add_argument("--log-budget", type=float, default=150, help="stop building the strata history after S seconds")
    p.add_argument("--datasets", default="a,b")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--no-unlock", action="store_true",
                   help="do not run `strata unlock`: every strata command derives the key (Argon2id)")
    return p.parse_args()


if __name__ == "__main__":
    Bench(parse_args()).main()
