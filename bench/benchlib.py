"""What the benchmark drivers share: logging, running commands, dropping the page cache."""
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


def drop_caches():
    """Writes dirty pages back and drops the page cache (needs root; warns otherwise)."""
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        log(f"cannot drop caches ({e}); numbers include warm caches")
