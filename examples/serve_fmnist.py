#!/usr/bin/env python3
"""Inference on Fashion-MNIST's test set with a model exported for serving.

    strata model export fmnist-cnn@production --format strata /srv/models/fmnist-cnn.strata
    python3 examples/serve_fmnist.py /srv/models/fmnist-cnn.strata --test-shards /tmp/fm-test/shards

The weights are memory-mapped with strata.torch.load_weights: each tensor is a view of the
mapping (no copy, read-only), checked against its hash the first time it is used (--verify full
checks them all before the first batch). The network runs on those views directly through
functional_call, so the weights are never copied into a module. The test shards are
read in order with strata.Dataset; the script prints the accuracy and a JSON summary, and exits
1 below --min-accuracy.
"""
import argparse
import json
import sys
import time

import numpy as np
import torch

import strata
import strata.torch as st
from train_fmnist import Net, Standardize, fields

try:
    from torch.func import functional_call
except ImportError:  # PyTorch before 2.0
    from torch.nn.utils.stateless import functional_call


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", help="a serving file (strata model export --format strata)")
    ap.add_argument("--test-shards", required=True, help="test shards (a directory)")
    ap.add_argument("--verify", default="on_demand", choices=["on_demand", "full", "none"],
                    help="when tensor hashes are checked (default: the first time each is used)")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: one per core)")
    ap.add_argument("--min-accuracy", type=float, default=0.0, help="exit 1 below this accuracy")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.time()
    weights = st.load_weights(args.weights, prefix="model/", verify=args.verify)
    if not weights:
        sys.exit(f"{args.weights}: no tensor named model/...: not a model saved by strata.torch")
    load_seconds = time.time() - t0
    model = Net().eval()
    missing = set(model.state_dict()) - set(weights)
    if missing:
        sys.exit(f"{args.weights}: the network needs tensors the file lacks: {sorted(missing)}")

    test = strata.Dataset(args.test_shards)
    image_field, label_field = fields(test.schema)
    prep = Standardize(test, image_field)
    t1 = time.time()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(test), args.batch_size):
            b = test.read_batch(np.arange(start, min(start + args.batch_size, len(test))))
            logits = functional_call(model, weights, (prep(torch.from_numpy(b[image_field])),))
            correct += int((logits.argmax(1) == torch.from_numpy(b[label_field])).sum())
    seconds = time.time() - t1
    accuracy = correct / len(test)
    print(f"{len(test)} test images, accuracy {accuracy:.4f}, {len(test) / seconds:.0f} images/s "
          f"(weights mapped in {load_seconds * 1e3:.1f} ms)", flush=True)
    print(json.dumps({"test_accuracy": round(accuracy, 4), "images": len(test),
                      "images_per_second": round(len(test) / seconds), "load_ms": round(load_seconds * 1e3, 1)}))
    return 0 if accuracy >= args.min_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
