#!/usr/bin/env python3
"""Trains a small CNN on Fashion-MNIST from strata shards with PyTorch on the CPU.

    # shards from the demo's pipeline (scripts/demo.sh step 10), staged on a local disk:
    strata tier stage fmnist@train-ready /tmp/fm && python3 examples/train_fmnist.py --shards /tmp/fm/shards
    # or let the example write plain uint8 shards from Debian's dataset-fashion-mnist itself:
    python3 examples/train_fmnist.py

The training set is read by strata's loader (io_uring, a global shuffle per epoch, batches in
aligned buffers handed to torch without a copy) through strata.torch.ShardIterableDataset; the
test set (t10k) is read in order with strata.Dataset. After every epoch the model and the
loader's resume state are saved to --checkpoint; --resume continues from there. About 90% test
accuracy after 3 epochs, in one to two minutes on two idle cores (about two CPU-minutes).

With --repo and --run, checkpoints go to that strata repository instead, as run RUN (created with
the hyper-parameters as its params; loss and accuracy logged as its metrics): saved
asynchronously after every epoch (and every --checkpoint-every batches), and a second start
resumes from the newest checkpoint that verifies:

    python3 examples/train_fmnist.py --repo /srv/lake --run fm-cnn-1 --checkpoint-every 200
"""
import argparse
import gzip
import json
import os
import struct
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import strata
import strata.torch as st

FMNIST = "/usr/share/datasets/fashion-mnist"
SCHEMA = [{"name": "image", "type": "tensor", "dtype": "uint8", "shape": [28, 28]},
          {"name": "label", "type": "label", "num_classes": 10}]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, cols)
    return np.frombuffer(data, np.uint8, offset=8)


def write_shards(directory, split):
    """Fashion-MNIST's IDX files as shards of uint8 28x28 images and labels."""
    images = read_idx(os.path.join(FMNIST, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(FMNIST, f"{split}-labels-idx1-ubyte.gz"))
    with strata.ShardWriter(directory, SCHEMA, target_size=16 << 20) as w:
        for image, label in zip(images, labels):
            w.add({"image": image, "label": int(label)})
    return directory


def fields(schema):
    image = next(f["name"] for f in schema if f["type"] == "tensor")
    label = next(f["name"] for f in schema if f["type"] == "label")
    return image, label


class Standardize:
    """Images to float [B, 1, H, W] with mean 0 and std 1: uint8 shards are scaled by their
    own statistics; float shards (a pipeline's normalized output) pass through."""

    def __init__(self, dataset, image_field, size=None):
        self.field, self.size = image_field, size
        sample = dataset.read_batch(np.arange(0, len(dataset), max(1, len(dataset) // 5000)))[image_field]
        self.is_float = sample.dtype.kind == "f"
        x = sample.astype(np.float32) / (1.0 if self.is_float else 255.0)
        self.mean, self.std = float(x.mean()), float(x.std())
        if self.is_float:  # already normalized by the pipeline
            self.mean, self.std = 0.0, 1.0

    def __call__(self, images):
        x = images.float()
        if not self.is_float:
            x = x / 255.0
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = (x - self.mean) / self.std
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)
        self.drop = nn.Dropout(0.25)

    def forward(self, x):
        if x.shape[-1] != 28:  # 32x32 pipeline output: the same network on a 28x28 grid
            x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


def evaluate(model, test, prep, image_field, label_field, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(test), batch):
            b = test.read_batch(np.arange(start, min(start + batch, len(test))))
            logits = model(prep(torch.from_numpy(b[image_field])))
            correct += int((logits.argmax(1) == torch.from_numpy(b[label_field])).sum())
    model.train()
    return correct / len(test)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", help="training shards (a directory); default: written from " + FMNIST)
    ap.add_argument("--test-shards", help="test shards; default: written from t10k")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: one per core)")
    ap.add_argument("--checkpoint", help="save model and loader state here after every epoch")
    ap.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    ap.add_argument("--repo", help="strata repository for checkpoints (with --run); passphrase as the CLI finds it")
    ap.add_argument("--password-file", help="the repository's passphrase file")
    ap.add_argument("--run", help="run name in --repo: checkpoints saved there, training resumed from its newest")
    ap.add_argument("--dataset", default="", help="with --run: the dataset version the shards came from (NAME@REF), "
                    "recorded in the run for lineage")
    ap.add_argument("--checkpoint-every", type=int, default=0, help="with --run: also save every N batches")
    ap.add_argument("--min-accuracy", type=float, default=0.0, help="exit 1 below this test accuracy")
    args = ap.parse_args()
    if bool(args.repo) != bool(args.run):
        ap.error("--repo and --run go together")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    tmp = tempfile.TemporaryDirectory(prefix="strata-fmnist-")
    t0 = time.time()
    train_dir = args.shards or write_shards(os.path.join(tmp.name, "train"), "train")
    test_dir = args.test_shards or write_shards(os.path.join(tmp.name, "test"), "t10k")
    if not (args.shards and args.test_shards):
        print(f"wrote shards in {time.time() - t0:.1f}s", flush=True)

    train_records = strata.Dataset(train_dir)
    test = strata.Dataset(test_dir)
    image_field, label_field = fields(train_records.schema)
    test_image, test_label = fields(test.schema)
    prep = Standardize(train_records, image_field)
    size = train_records.schema[[f["name"] for f in train_records.schema].index(image_field)]["shape"][-1]
    test_prep = Standardize(test, test_image, size=size)

    data = st.ShardIterableDataset(train_dir, batch_size=args.batch_size, seed=args.seed)
    loader = st.DataLoader(data, num_workers=args.workers)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    if args.resume and args.checkpoint and os.path.exists(args.checkpoint):
        ck = torch.load(args.checkpoint)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        loader.load_state_dict(ck["loader"])
        print(f"resumed at {ck['loader']}")
    repo = ckpt = runs = None
    step, saved = 0, -1
    if args.run:
        repo = strata.Repository.open(args.repo, password_file=args.password_file)
        runs = strata.Runs(repo)
        if not runs.exists(args.run):
            runs.create(args.run, params={k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "seed")},
                        tags=["fmnist"], dataset=args.dataset)
        if runs.checkpoints(args.run):
            got = st.load(model, opt, repo=repo, run=args.run, loader=loader, rng=True)
            sched.load_state_dict(got["extra"]["scheduler"])
            step = got["step"]
            print(f"resumed run {args.run} from checkpoint {step} at {loader.state_dict()}", flush=True)
        ckpt = st.AsyncCheckpointer(repo, args.run)
    print(f"train: {len(train_records)} records in {len(train_records.paths)} shards ({image_field}: "
          f"{train_records.schema[0].get('dtype')} {train_records.schema[0].get('shape')}); test: {len(test)}",
          flush=True)

    accuracy = 0.0
    while data.epoch < args.epochs:
        epoch, t = data.epoch, time.time()
        seen, loss_sum = 0, 0.0
        for batch in loader:
            x, y = prep(batch[image_field]), batch[label_field]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
            loss_sum += float(loss) * len(y)
            step += 1
            if ckpt and args.checkpoint_every and step % args.checkpoint_every == 0:
                # Returns once the tensors are copied; stored while training goes on.
                ckpt.save(step, model, opt, loader=loader, extra={"scheduler": sched.state_dict()},
                          metrics={"loss": float(loss)})
                saved = step
        sched.step()
        accuracy = evaluate(model, test, test_prep, test_image, test_label)
        print(f"epoch {epoch + 1}: loss {loss_sum / max(seen, 1):.4f}, test accuracy {accuracy:.4f}, "
              f"{seen / (time.time() - t):.0f} samples/s", flush=True)
        if ckpt:
            runs.log_metrics(args.run, step, {"loss": loss_sum / max(seen, 1), "accuracy": accuracy})
            if saved == step:  # the last batch's save holds the scheduler's state before its step
                ckpt.wait()
                runs.delete_checkpoint(args.run, step)
            ckpt.save(step, model, opt, loader=loader, extra={"scheduler": sched.state_dict()},
                      metrics={"accuracy": accuracy}, meta={"epoch": data.epoch})
        elif args.checkpoint:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "loader": loader.state_dict()}, args.checkpoint)
    if ckpt:
        ckpt.close()  # every checkpoint durable (or its error raised)
        runs.set_status(args.run, "finished")
        repo.close()
    print(json.dumps({"test_accuracy": round(accuracy, 4), "epochs": args.epochs,
                      "seconds": round(time.time() - t0, 1)}))
    return 0 if accuracy >= args.min_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
