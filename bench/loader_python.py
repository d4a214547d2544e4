#!/usr/bin/env python3
"""One epoch (or SECONDS) of shards through strata.torch's ShardIterableDataset in a torch
DataLoader with WORKERS workers; one byte of each batch is touched, as bench/loader_bench does.
Prints {"samples_s", "seconds", "samples", "cpu_s" (this process and its workers), "sink"}.
Run by bench/loader.py --python; needs an interpreter with strata and torch.

  loader_python.py DIR BATCH QUEUE_DEPTH WORKERS SECONDS
"""
import json
import os
import sys
import time

import strata.torch as st


def main():
    d, batch, qd, workers, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    shards = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".shard"))
    ds = st.ShardIterableDataset(shards, batch_size=batch, seed=7, queue_depth=qd)
    t0, c0 = time.perf_counter(), os.times()
    samples, sink = 0, 0
    it = iter(st.DataLoader(ds, num_workers=workers))
    for b in it:
        img = b["image"]
        samples += img.shape[0]
        sink += int(img[img.shape[0] // 2, 0])
        if time.perf_counter() - t0 >= seconds:
            break
    secs = time.perf_counter() - t0
    del it  # stops and reaps the workers, so that their CPU time is counted
    c1 = os.times()
    cpu = sum(c1[i] - c0[i] for i in range(4))  # user, system, children's user and system
    print(json.dumps({"samples_s": samples / secs, "seconds": secs, "samples": samples, "cpu_s": cpu, "sink": sink}))


if __name__ == "__main__":
    main()
