#!/usr/bin/env python3
"""Image curation in plain Python, the peer of `strata curate` in bench/ingest.py: walks a folder
of images and does what a curation script written with PIL and imagehash does.

For every image file (*.jpg, *.jpeg, *.png by default), in path order:
  1. reads its bytes and takes their SHA-256;
  2. decodes it with PIL (Image.open + load: every pixel, so a truncated file fails) and checks
     its size against --min-width / --min-height;
  3. computes imagehash.phash (64 bits: DCT of the 32x32 grey image, median threshold).
Then, among the images that decoded and passed the size check, in path order (the first of a
group is kept, as `strata curate` does with `keep: first`):
  4. exact duplicates: the same SHA-256 as a kept image;
  5. near duplicates: a perceptual hash at most --threshold bits (Hamming distance) from a kept
     image (candidates from 8 byte-keyed buckets when the threshold is below 8, a linear scan
     otherwise).

--draft decodes JPEGs at a reduced DCT scale (Image.draft("L", (64, 64)): libjpeg still decodes
every block, so a damaged body still fails, but the inverse transforms and the colour conversion
are smaller), the way a script tuned for speed would. --header-only is the floor of any such
script: the header is parsed (Image.open without load) for the size, the whole file is hashed for
exact duplicates, nothing is decoded and no perceptual hash is computed. --procs N decodes and
hashes in N processes (multiprocessing).

Prints one JSON line: counts (images, decode_failed, size_failed, exact_duplicates,
near_duplicates, passed), seconds, images_per_s, and the versions of PIL and imagehash.

Needs Pillow and imagehash (PyPI), e.g. in a virtual environment:
  /usr/bin/python3 -m venv --system-site-packages .venv-bench
  .venv-bench/bin/pip install --upgrade pillow imagehash
  .venv-bench/bin/python bench/curate_pil.py DIR [--threshold 4] [--min-width 32] [--min-height 32]
"""
import argparse
import hashlib
import io
import json
import os
import sys
import time

EXTENSIONS = (".jpg", ".jpeg", ".png")


def list_images(root, extensions):
    """Paths relative to root, sorted as byte strings (the order strata sorts its records in)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for fn in filenames:
            if fn.lower().endswith(extensions):
                out.append(os.path.relpath(os.path.join(dirpath, fn), root))
    out.sort(key=lambda p: p.encode("utf-8", "surrogateescape"))
    return out


class Checker:
    def __init__(self, root, min_width, min_height, header_only, draft):
        self.root = root
        self.min_width = min_width
        self.min_height = min_height
        self.header_only = header_only
        self.draft = draft

    def __call__(self, rel):
        """(rel, sha256 hex, status, phash as int or None); status is ok, decode or size."""
        from PIL import Image

        with open(os.path.join(self.root, rel), "rb") as f:
            data = f.read()
        digest = hashlib.sha256(data).hexdigest()
        try:
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if self.draft:
                im.draft("L", (64, 64))  # JPEG only; other formats ignore it
            if not self.header_only:
                im.load()
        except Exception:  # noqa: BLE001 - any failure to decode is a decode failure
            return rel, digest, "decode", None
        if width < self.min_width or height < self.min_height:
            return rel, digest, "size", None
        if self.header_only:
            return rel, digest, "ok", None
        import imagehash

        return rel, digest, "ok", int(str(imagehash.phash(im)), 16)


def near_duplicates(items, threshold):
    """items: [(rel, phash)] in keep order. Returns the rels that are within `threshold` bits of an
    earlier kept one."""
    found = []
    kept = []
    buckets = [dict() for _ in range(8)]
    for rel, h in items:
        match = False
        if threshold < 8:
            # Two 64-bit hashes within d < 8 bits of each other agree on at least one of 8 bytes.
            for b in range(8):
                for other in buckets[b].get((h >> (8 * b)) & 0xFF, ()):
                    if (h ^ other).bit_count() <= threshold:
                        match = True
                        break
                if match:
                    break
        else:
            match = any((h ^ other).bit_count() <= threshold for other in kept)
        if match:
            found.append(rel)
            continue
        kept.append(h)
        for b in range(8):
            buckets[b].setdefault((h >> (8 * b)) & 0xFF, []).append(h)
    return found


def curate(root, threshold, min_width, min_height, header_only=False, draft=False, procs=1,
           extensions=EXTENSIONS):
    t0 = time.perf_counter()
    rels = list_images(root, extensions)
    check = Checker(root, min_width, min_height, header_only, draft)
    if procs > 1:
        import multiprocessing

        with multiprocessing.Pool(procs) as pool:
            results = list(pool.imap(check, rels, chunksize=64))
    else:
        results = [check(r) for r in rels]
    decode = [r[0] for r in results if r[2] == "decode"]
    size = [r[0] for r in results if r[2] == "size"]
    seen = {}
    exact = []
    unique = []
    for rel, digest, status, h in results:
        if status != "ok":
            continue
        if digest in seen:
            exact.append(rel)
            continue
        seen[digest] = rel
        unique.append((rel, h))
    near = [] if header_only else near_duplicates(unique, threshold)
    seconds = time.perf_counter() - t0
    import PIL

    try:
        import imagehash

        ih = imagehash.__version__
    except ImportError:
        ih = None
    return {
        "images": len(rels), "decode_failed": len(decode), "size_failed": len(size),
        "exact_duplicates": len(exact), "near_duplicates": len(near),
        "passed": len(rels) - len(decode) - len(size) - len(exact) - len(near),
        "seconds": seconds, "images_per_s": len(rels) / seconds if seconds else 0.0,
        "header_only": header_only, "draft": draft, "procs": procs, "threshold": threshold,
        "pil": PIL.__version__, "imagehash": ih,
        "examples": {"decode": decode[:3], "size": size[:3], "exact": exact[:3], "near": near[:3]},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="the folder of images")
    ap.add_argument("--threshold", type=int, default=4, help="near duplicates: Hamming distance of the phashes")
    ap.add_argument("--min-width", type=int, default=1)
    ap.add_argument("--min-height", type=int, default=1)
    ap.add_argument("--header-only", action="store_true", help="parse headers only, no decode, no phash")
    ap.add_argument("--draft", action="store_true", help="decode JPEGs at a reduced DCT scale (Image.draft)")
    ap.add_argument("--procs", type=int, default=1, help="worker processes for decoding and hashing")
    a = ap.parse_args()
    if not os.path.isdir(a.root):
        sys.exit(f"{a.root} is not a directory")
    result = curate(a.root, a.threshold, a.min_width, a.min_height, a.header_only, a.draft, a.procs)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
