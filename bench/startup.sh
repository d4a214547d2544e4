#!/bin/bash
# What every strata command pays before its work: process start, key (cached by `strata
# unlock`), catalog and index open. Median of 15 runs of quick commands, wall and CPU time, on a
# fresh repository holding one dataset of N small files (100-2000 bytes, 1000 per directory).
#
#   bench/startup.sh [STRATA_BINARY] [N]     defaults: build/strata, 0 files
set -euo pipefail
B=$(realpath "${1:-build/strata}")
N=${2:-0}
export STRATA_PASSWORD=startup-bench
W=$(mktemp -d /var/tmp/strata-startup.XXXX)
trap 'rm -rf "$W"' EXIT
"$B" init "$W/r" -q
"$B" -r "$W/r" unlock >/dev/null 2>&1
"$B" -r "$W/r" -q dataset create d
if ((N > 0)); then
  python3 - "$W/src" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:04d}")
    if i % 1000 == 0:
        os.makedirs(d)
    with open(os.path.join(d, f"f{i:07d}.bin"), "wb") as f:
        f.write(os.urandom(100 + i % 1900))
PY
  /usr/bin/time -f "first commit of $N files: %e s wall" "$B" -r "$W/r" -q commit d@main "$W/src" -m import >/dev/null
fi
python3 - "$B" "$W/r" <<'PY'
import resource, statistics, subprocess, sys, time
B, R = sys.argv[1], sys.argv[2]
def measure(args, n=15):
    walls, cpus = [], []
    for i in range(n):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([B] + [a.replace("{i}", str(i)) for a in args], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        t1 = time.perf_counter()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        walls.append((t1 - t0) * 1000)
        cpus.append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
    print(f"{' '.join(a for a in args if a not in ('-r', R, '-q')):32s} wall median {statistics.median(walls):6.1f} ms "
          f"(min {min(walls):5.1f})  CPU median {statistics.median(cpus):5.1f} ms")
measure(["--help"])
measure(["-r", R, "dataset", "list"])
measure(["-r", R, "-q", "branch", "create", "d@b{i}", "d@main"])
measure(["-r", R, "-q", "tag", "create", "d@t{i}", "d@main"])
PY
