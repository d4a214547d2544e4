#!/usr/bin/env bash
# strata's main job: the life of a model's data, end to end, on the embedded default (a local
# encrypted repository with its SQLite catalog), on Debian's Fashion-MNIST.
#
#   1. raw data lake   ingest the IDX files (labels as records) plus a folder with a few
#                      duplicated and corrupted images added on purpose; dedup; wrong key refused
#   2. curation        rules, duplicates and corrupt files to quarantine, a report
#   3. transform       train and test sets into training shards (test normalised with the
#                      statistics fitted on train), staged on local disk for the loader
#   4. training        two runs of a small CNN (PyTorch, CPU) through strata's loader with
#                      asynchronous checkpoints; the first is killed (SIGKILL) mid-way and resumed
#   5. deployment      compare the runs, register the better one, alias it production, export it
#                      for serving, run inference on the test set through the memory-mapped
#                      weights, archive the training data under a retention lock, print the
#                      lineage and the governance report, verify the audit log
#
# It ends with a summary of each phase. Everything happens in a temporary directory, removed at
# the end (STRATA_DEMO_KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/setup.sh
echo "== build (release with debug info, the same configuration as scripts/test.sh)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target strata strata-data
echo "== python package (into .venv)"
scripts/python-env.sh
py="$root/.venv/bin/python"

strata() { "$root/build/strata" "$@"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-demo.XXXXXX")
if [[ "${STRATA_DEMO_KEEP:-0}" == 1 ]]; then
  trap 'echo "kept $work: STRATA_REPO=$STRATA_REPO STRATA_PASSWORD=\"$STRATA_PASSWORD\""' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
export STRATA_REPO="$work/lake"
export STRATA_PASSWORD="demo passphrase $(date +%s)"
fmnist=/usr/share/datasets/fashion-mnist
threads=$(nproc)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# jget FILE EXPR: a value from a JSON file, EXPR in Python over `j` (e.g. 'j["commit"]["id"]').
jget() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
now() { date +%s.%N; }
since() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.1f}")' "$1" "$(now)"; }

###############################################################################################
step "phase 1: raw data lake — an encrypted repository at $STRATA_REPO"
t=$(now)
strata init
# Six volumes in distinct failure domains (separate disks in a real lake; directories here) and
# Reed–Solomon 4+2: every pack is striped over them and survives any two lost (docs/DURABILITY.md).
for i in 1 2 3 4 5 6; do
  strata volume add "$work/volumes/d$i" --domain "rack$(( (i + 1) / 2 ))/disk$i" >/dev/null
done
strata volume policy set rs:4+2
strata dataset create fmnist
strata ingest "$fmnist/train-images-idx3-ubyte.gz" fmnist@main --prefix train --json >"$work/ingest-train.json"
strata ingest "$fmnist/t10k-images-idx3-ubyte.gz" fmnist@main --prefix test --json >"$work/ingest-test.json"
echo "train: $(jget "$work/ingest-train.json" 'j["files"]') images, test: $(jget "$work/ingest-test.json" 'j["files"]') images"

# Data as it arrives in practice: a later batch holding three images that are already there
# (under new names) and two files that are not images at all.
mkdir -p "$work/batch2"
strata query fmnist@main "SELECT 'copy-of-' || substr(path, 7) AS file, label FROM records
                          WHERE path IN ('train/00007.pgm', 'train/00042.pgm', 'train/01234.pgm')" --csv \
  | tr -d '\r' >"$work/labels.csv"
for n in 00007 00042 01234; do
  strata cat "fmnist@main:train/$n.pgm" >"$work/batch2/copy-of-$n.pgm"
done
head -c 40 "$work/batch2/copy-of-00007.pgm" >"$work/batch2/truncated.pgm"   # cut off mid-pixels
head -c 900 /dev/urandom >"$work/batch2/noise.pgm"
printf 'truncated.pgm,Shirt\nnoise.pgm,Coat\n' >>"$work/labels.csv"
strata ingest "$work/batch2" fmnist@main --prefix train/batch2 --labels "$work/labels.csv" --json >"$work/ingest-b2.json"
echo "batch 2: $(jget "$work/ingest-b2.json" 'j["files"]') files"
# The same source again: recognised, nothing stored, no commit.
strata ingest "$fmnist/t10k-images-idx3-ubyte.gz" fmnist@main --prefix test
strata query fmnist@main "SELECT substr(path, 1, instr(path, '/') - 1) AS split, count(*) AS images,
                          count(DISTINCT label) AS classes FROM records GROUP BY split"
echo "a wrong passphrase is refused:"
if STRATA_PASSWORD=wrong strata ls 2>&1; then echo "unexpected success"; exit 1; fi
raw_records=$(strata query fmnist@main "SELECT count(*) AS n FROM records" --csv | tail -1 | tr -d '\r')
phase1_s=$(since "$t")

###############################################################################################
step "phase 2: curation — rules, duplicates, quarantine, report"
t=$(now)
strata curate fmnist@main fmnist@curated --rules examples/curate-fmnist.yaml --report-dir "$work/curation" --json >"$work/curate.json"
python3 - "$work/curate.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['records_before']} records in, {r['records_after']} kept; set aside:")
for q in r["quarantined"][:10]:
    print(f"  {q['path']}: [{q['rule']}] {q['reason']}")
PY
# Quarantined records stay queryable, with the rule and reason that set them aside.
strata query fmnist@curated "SELECT coalesce(quarantine_rule, 'kept') AS state, count(*) AS records
                             FROM records GROUP BY state"
echo "report: $(ls "$work/curation" | tr '\n' ' ')"
phase2_s=$(since "$t")

###############################################################################################
step "phase 3: transform — training shards (deterministic, cached), staged for the loader"
t=$(now)
strata transform fmnist@curated --pipeline examples/fmnist-pipeline.yaml --out fmnist@train-ready --json >"$work/xf-train.json"
# The test set with the statistics fitted on the training set (never on the test set itself).
mean=$(jget "$work/xf-train.json" 'j["stats"]["mean"]' | tr -d '[]')
std=$(jget "$work/xf-train.json" 'j["stats"]["std"]' | tr -d '[]')
sed -e "s|^name: fmnist-32|name: fmnist-32-test|" -e "s|prefix: train/|prefix: test/|" \
    -e "s|normalize: {mean: fit, std: fit}|normalize: {mean: [$mean], std: [$std]}|" \
    examples/fmnist-pipeline.yaml >"$work/fmnist-test-pipeline.yaml"
strata transform fmnist@curated --pipeline "$work/fmnist-test-pipeline.yaml" --out fmnist@test-ready --json >"$work/xf-test.json"
# The same input and pipeline again: recognised, nothing recomputed.
strata transform fmnist@curated --pipeline examples/fmnist-pipeline.yaml --out fmnist@train-ready
strata ls fmnist@train-ready:shards
strata tier stage fmnist@train-ready "$work/tier/train"
strata tier stage fmnist@test-ready "$work/tier/test"
train_records=$(jget "$work/xf-train.json" 'j["records"]')
phase3_s=$(since "$t")

###############################################################################################
step "phase 4: training — two runs, asynchronous checkpoints, one killed and resumed"
t=$(now)
# The example trainer reads the staged shards with strata's loader and saves a checkpoint every
# 100 batches and after each epoch (asynchronously: training goes on while it is stored).
# train RUN LR: execs the trainer, so call it only in the background or in a pipeline (a subshell
# that the trainer replaces: $! of `train ... &` is the trainer's pid).
train() {
  cd "$root/examples" && exec "$py" train_fmnist.py --repo "$STRATA_REPO" --run "$1" --lr "$2" \
    --dataset fmnist@train-ready --shards "$work/tier/train/shards" --test-shards "$work/tier/test/shards" \
    --epochs 2 --threads "$threads" --checkpoint-every 100
}
checkpoints() { strata ckpt list "$1" --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0; }
echo "run fm-a (lr 0.002) in the background, killed with SIGKILL once it has saved a checkpoint"
train fm-a 0.002 >"$work/fm-a.log" 2>&1 &
pid=$!
until [[ $(checkpoints fm-a | tail -1) -ge 1 ]]; do
  sleep 2
  if ! kill -0 "$pid" 2>/dev/null; then echo "fm-a ended before it could be killed"; cat "$work/fm-a.log"; exit 1; fi
done
sleep 5  # into the next 100 batches, perhaps while a checkpoint is being stored
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
echo "killed; its checkpoints:"
strata ckpt list fm-a
echo "started again: it resumes from the newest checkpoint that verifies"
train fm-a 0.002 | tee "$work/fm-a2.log"
echo "run fm-b (lr 0.0005)"
train fm-b 0.0005 | tee "$work/fm-b.log"
strata run compare fm-a fm-b
acc_a=$(tail -1 "$work/fm-a2.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["test_accuracy"])')
acc_b=$(tail -1 "$work/fm-b.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["test_accuracy"])')
best=$(python3 -c 'import sys; print("fm-a" if float(sys.argv[1]) >= float(sys.argv[2]) else "fm-b")' "$acc_a" "$acc_b")
best_acc=$([[ $best == fm-a ]] && echo "$acc_a" || echo "$acc_b")
echo "the better run: $best (test accuracy $best_acc)"
phase4_s=$(since "$t")

###############################################################################################
step "phase 5: deployment — register, alias, export, serve; archive, lock, lineage, audit"
t=$(now)
strata model register fmnist-cnn --from "$best" --metric "accuracy=$best_acc" \
  --input "image:F32:?,1,32,32" --output "logits:F32:?,10" --description "Fashion-MNIST CNN, run $best"
strata model alias fmnist-cnn@production 1
strata model show fmnist-cnn@production
# The deployed model's data on a policy of its own: four copies, any three volumes may go (a
# read touches one), including the checkpoint objects it shares with its training run.
strata volume policy set replicate:4 --dataset model.fmnist-cnn
strata volume policy apply
mkdir -p "$work/serve"
strata model export fmnist-cnn@production --format strata "$work/serve/fmnist-cnn.strata"
(cd examples && "$py" serve_fmnist.py "$work/serve/fmnist-cnn.strata" --test-shards "$work/tier/test/shards" \
   --threads "$threads" --min-accuracy 0.8) | tee "$work/serve.log"
served_acc=$(tail -1 "$work/serve.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["test_accuracy"])')
strata model pull fmnist-cnn@production "$work/inference-host"

strata tier evict "$work/tier/train"
strata tier evict "$work/tier/test"
strata archive fmnist@train-ready --tier archive --json >"$work/archive.json"
strata retention lock fmnist@train-ready --mode governance --for 365d --reason "training data of fmnist-cnn v1"
strata retention hold model.fmnist-cnn@v/000000000001 on --reason "deployed to production"
echo "deleting the locked training data is refused:"
if strata branch delete fmnist@train-ready 2>&1; then echo "unexpected success"; exit 1; fi
if command -v dot >/dev/null; then
  strata lineage fmnist-cnn@production --svg "$work/lineage.svg"   # drawn by Graphviz
else
  strata lineage fmnist-cnn@production
fi
echo "which models were trained on the raw data?"
strata lineage --reverse fmnist@main
strata report governance
strata audit verify
strata volume status
strata scrub --deep
strata stats --json >"$work/stats2.json"
phase5_s=$(since "$t")

###############################################################################################
step "summary"
python3 - "$work" "$raw_records" "$train_records" "$best" "$best_acc" "$served_acc" \
  "$phase1_s" "$phase2_s" "$phase3_s" "$phase4_s" "$phase5_s" <<'PY'
import json, os, sys
w, raw, train_records, best, best_acc, served_acc = sys.argv[1:7]
secs = sys.argv[7:12]
J = lambda n: json.load(open(os.path.join(w, n)))
i1, i2, b2, cur, xf, st = J("ingest-train.json"), J("ingest-test.json"), J("ingest-b2.json"), J("curate.json"), J("xf-train.json"), J("stats2.json")
arch = J("archive.json")
mb = lambda b: f"{b / 1e6:.1f} MB"
ingested = i1["bytes"] + i2["bytes"] + b2["bytes"]
rows = [
    ("1 raw data lake", f"{raw} records ({mb(ingested)} of images) ingested; "
                        f"{i1['files'] / max(i1['seconds'], 1e-9):.0f} images/s; encrypted, wrong key refused", secs[0]),
    ("2 curation", f"{cur['records_before']} -> {cur['records_after']} records; "
                   f"{len(cur['quarantined'])} set aside (duplicates, corrupt)", secs[1]),
    ("3 transform", f"{train_records} training records in {len(xf['shards'])} shard(s), "
                    f"{xf['records'] / max(xf['seconds'], 1e-9):.0f} records/s; rerun: cached", secs[2]),
    ("4 training", f"2 runs, fm-a killed mid-way and resumed; best {best}, test accuracy {best_acc}", secs[3]),
    ("5 deployment", f"fmnist-cnn v1 -> production; served accuracy {served_acc} via mapped weights; "
                     f"training shards archived ({mb(arch.get('stored_before', 0))} -> {mb(arch.get('stored_after', 0))}), "
                     f"locked; lineage and audit verified", secs[4]),
]
for name, what, s in rows:
    print(f"{name:16} {float(s):6.1f} s  {what}")
unique, stored = st.get("unique_bytes", 0), st.get("stored_bytes", 0)
if unique and stored:
    print(f"{'repository':16} {'':8}  {mb(stored)} stored (compressed, encrypted) for {mb(unique)} of distinct "
          f"data ({unique / stored:.1f}x), {st['objects']} objects in {st['packs']} packs")
PY
