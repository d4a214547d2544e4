#!/usr/bin/env python3
"""strata's text pipeline against SentencePiece's own Python encoder, same texts, same model.

N documents (words drawn with Zipf's law from the vocabulary of /usr/share/common-licenses,
100 to 400 words each, seeded) are written as .txt files and committed to a fresh repository.
A SentencePiece unigram model (vocab 8000) is trained once with the Python package on those
texts and committed too, so both sides encode with the same model:

  strata, 1 thread     `strata --threads 1 transform` with ops [text, tokenize: {model: ...}]:
                       reads each document from the repository (decrypt, decompress, verify),
                       checks UTF-8, encodes, writes int32 token tensors into shards and stores
                       them as a commit
  strata, 2 threads    the same with --threads 2
  Python loop          one process: for each file, read it (page cache), `sp.encode(text)`;
                       the ids are counted and dropped (nothing is written)
  Python batch         `sp.encode(all_texts, num_threads=1)` on texts already in memory

tokens/s per core = tokens / wall seconds / cores used (CPU seconds are also shown). strata's
number includes work the Python side does not do (repository reads, shard writes, the commit).
Needs the `sentencepiece` package (a venv: /usr/bin/python3 -m venv --system-site-packages
.venv-bench && .venv-bench/bin/pip install sentencepiece).

  .venv-bench/bin/python bench/text_pipeline.py [--docs 20000] [--build build]
"""
import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, cpu_model_and_memory, log, save_report, timed_json  # noqa: E402

PASSWORD = "strata-bench-passphrase"


def vocabulary():
    words = set()
    base = "/usr/share/common-licenses"
    for name in sorted(os.listdir(base)):
        path = os.path.join(base, name)
        if os.path.isfile(path):
            with open(path, errors="replace") as f:
                words.update(w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]{1,20}", f.read()))
    return sorted(words)


def make_docs(dest, n):
    words = vocabulary()
    rng = random.Random(1)
    weights = [1.0 / (k + 1) for k in range(len(words))]
    total_bytes = 0
    for i in range(n):
        body = rng.choices(words, weights=weights, k=rng.randint(100, 400))
        text = " ".join(body).capitalize() + ".\n"
        with open(os.path.join(dest, f"{i:06d}.txt"), "w") as f:
            f.write(text)
        total_bytes += len(text)
    return len(words), total_bytes


def peer(mode, src, model):
    """Runs in the peer's interpreter; prints {tokens, wall, cpu, version} as JSON."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model)
    files = sorted(os.listdir(src))
    tokens = 0
    if mode == "loop":
        start, cpu0 = time.perf_counter(), time.process_time()
        for name in files:
            with open(os.path.join(src, name), encoding="utf-8") as f:
                tokens += len(sp.encode(f.read()))
    else:
        texts = []
        for name in files:
            with open(os.path.join(src, name), encoding="utf-8") as f:
                texts.append(f.read())
        start, cpu0 = time.perf_counter(), time.process_time()
        tokens = sum(len(x) for x in sp.encode(texts, num_threads=1))
    print(json.dumps({"tokens": tokens, "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu0,
                      "version": spm.__version__}))


def run_peer(python, mode, src, model):
    out = subprocess.run([python, os.path.abspath(__file__), "--peer", mode, src, model], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def has_sentencepiece(python):
    return subprocess.run([python, "-c", "import sentencepiece"], capture_output=True).returncode == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--dir", default=None, help="work directory (default: a new one under $TMPDIR, removed)")
    ap.add_argument("--peer", nargs=3, metavar=("MODE", "DIR", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        return peer(*args.peer)
    import sentencepiece as spm
    strata = os.path.join(ROOT, args.build, "strata")
    work = args.dir or tempfile.mkdtemp(prefix="strata-text-bench-")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, STRATA_PASSWORD=PASSWORD, STRATA_NO_PROGRESS="1")
    try:
        src = os.path.join(work, "docs")
        os.makedirs(src, exist_ok=True)
        log(f"writing {args.docs} documents to {src}")
        nwords, src_bytes = make_docs(src, args.docs)
        model_dir = os.path.join(work, "models")
        os.makedirs(model_dir, exist_ok=True)
        log("training the SentencePiece model (Python package)")

        def texts():
            for name in sorted(os.listdir(src)):
                with open(os.path.join(src, name), encoding="utf-8") as f:
                    yield f.read()
        spm.SentencePieceTrainer.train(sentence_iterator=texts(), model_prefix=os.path.join(model_dir, "sp"),
                                       vocab_size=args.vocab, model_type="unigram", minloglevel=2,
                                       max_sentence_length=1 << 20, hard_vocab_limit=False)
        model = os.path.join(model_dir, "sp.model")
        repo = os.path.join(work, "repo")
        subprocess.run([strata, "-q", "init", repo, "--kdf-mem", "8", "--kdf-ops", "1"], env=env, check=True)
        subprocess.run([strata, "-q", "-r", repo, "dataset", "create", "bench"], env=env, check=True)
        subprocess.run([strata, "-q", "-r", repo, "ingest", src, "bench@main", "--prefix", "docs"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([strata, "-q", "-r", repo, "ingest", model_dir, "bench@main", "--prefix", "models"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        pipe = os.path.join(work, "pipeline.yaml")
        with open(pipe, "w") as f:
            f.write("name: bench-tokens\nselect: {prefix: docs/}\nlabel: none\n"
                    "ops: [text, {tokenize: {model: models/sp.model}}]\noutput: {keep_path: false}\n")
        rows = []
        for threads in (1, 2):
            wall, cpu, r = timed_json([strata, "--json", "--threads", str(threads), "-r", repo, "transform",
                                       "bench@main", "--pipeline", pipe, "--out", f"bench@t{threads}"], env)
            assert r["records"] == args.docs, r
            rows.append((f"strata transform, {threads} thread(s)", threads, wall, cpu,
                         f"tokenize+write {r['write_seconds']:.2f} s, store {r['store_seconds']:.2f} s"))
        # This interpreter's sentencepiece (pip's), and Debian's python3-sentencepiece when the
        # system interpreter has it: the same library version as the libsentencepiece strata uses.
        pythons = [sys.executable]
        if has_sentencepiece("/usr/bin/python3") and "/usr/bin/python3" not in pythons:
            pythons.append("/usr/bin/python3")
        loop = run_peer(sys.executable, "loop", src, model)
        tokens = loop["tokens"]
        py_rate, py_cpu_rate = tokens / loop["wall"], tokens / loop["cpu"]
        for python in pythons:
            for mode, what in (("loop", "loop, 1 process: read + encode per file"),
                               ("batch", "batch encode, 1 thread: texts already in memory")):
                r = loop if (python, mode) == (sys.executable, "loop") else run_peer(python, mode, src, model)
                assert r["tokens"] == tokens, (python, mode, r["tokens"], tokens)
                origin = "pip" if python == sys.executable else "Debian"
                rows.append((f"SentencePiece {r['version']} ({origin}) Python {what.split(':')[0]}", 1, r["wall"],
                             r["cpu"], what.split(": ")[1]))
        when = datetime.datetime.now(datetime.timezone.utc)
        model_name, mem = cpu_model_and_memory()
        lines = [
            f"Command: `{' '.join(sys.argv)}`; {when:%Y-%m-%d %H:%M} UTC; {platform.node()}, {model_name}, "
            f"{os.cpu_count()} cores, {mem / 2**30:.0f} GiB; load average {os.getloadavg()[0]:.1f} at the end.",
            f"{args.docs} documents ({src_bytes / 1e6:.1f} MB, words from a {nwords}-word vocabulary), "
            f"{tokens:,} tokens with a unigram model of at most {args.vocab} pieces. strata links Debian's "
            f"libsentencepiece; \"vs Python loop\" compares with the first Python row.",
            "",
            "| run | wall s | tokens/s | tokens/s per core (wall) | vs Python loop | CPU s | tokens per CPU-second "
            "| vs Python loop | notes |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, cores, wall, cpu, notes in rows:
            rate, cpu_rate = tokens / wall, tokens / cpu
            lines.append(f"| {name} | {wall:.2f} | {rate:,.0f} | {rate / cores:,.0f} | {rate / cores / py_rate:.2f}x "
                         f"| {cpu:.2f} | {cpu_rate:,.0f} | {cpu_rate / py_cpu_rate:.2f}x | {notes} |")
        save_report("text_pipeline", "\n".join(lines) + "\n", when)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
