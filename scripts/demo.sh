#!/usr/bin/env bash
# strata's main job, end to end on the embedded default (a local repository):
# create an encrypted repository, store Debian's Fashion-MNIST files and a directory tree,
# store them again (deduplicated), verify every byte, restore, compare; then ingest
# Fashion-MNIST into a versioned dataset with its labels as queryable records, relabel on a
# branch, diff, roll back, check the audit log, and print the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=Release >/dev/null

strata() { build/strata "$@"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
export STRATA_REPO="$work/lake"
export STRATA_PASSWORD="demo passphrase $(date +%s)"
fmnist=/usr/share/datasets/fashion-mnist

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. create an encrypted repository at $STRATA_REPO"
strata init

step "2. put the Fashion-MNIST dataset and a source tree"
# A directory tree with many small files: headers shipped with the build dependencies.
mkdir -p "$work/tree"
cp -r /usr/include/openssl /usr/include/zstd.h /usr/include/sodium "$work/tree/"
fmnist_id=$(strata put "$fmnist")
tree_id=$(strata put "$work/tree")
echo "fashion-mnist -> $fmnist_id"
echo "tree          -> $tree_id"

step "3. put a new version of the tree (one file changed): only new chunks are stored"
echo "// changed" >> "$work/tree/openssl/ssl.h"
tree2_id=$(strata put --json "$work/tree" | tee "$work/put.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
python3 - "$work/put.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"{p['files']} files, {p['bytes']/1e6:.1f} MB read; {p['new_chunks']} of {p['chunks']} chunks new; "
      f"{p['stored_bytes']/1e3:.1f} kB added")
PY

step "4. list and read back"
strata ls
strata ls -l "${fmnist_id:0:12}"
strata cat "${fmnist_id:0:12}:fashion-mnist/train-labels-idx1-ubyte.gz" | gzip -dc | head -c 16 | od -A d -t u1 | head -2

step "5. verify every byte (decrypt + keyed hash of each object)"
strata verify --read-data

step "6. restore and compare byte for byte"
strata get "$fmnist_id" "$work/restore-fmnist"
strata get "$tree2_id" "$work/restore-tree"
diff -r "$fmnist" "$work/restore-fmnist/fashion-mnist"
diff -r "$work/tree" "$work/restore-tree/tree"
echo "restored trees are identical to the originals"

step "7. a wrong passphrase is refused"
if STRATA_PASSWORD=wrong strata ls 2>&1; then echo "unexpected success"; exit 1; fi

step "8. ingest Fashion-MNIST into a versioned dataset: one commit per source, labels as records"
strata dataset create fmnist
strata ingest "$fmnist/train-images-idx3-ubyte.gz" fmnist@main --prefix train
strata ingest "$fmnist/t10k-images-idx3-ubyte.gz" fmnist@main --prefix test
# The same source again: recognised, nothing stored, no commit.
strata ingest "$fmnist/t10k-images-idx3-ubyte.gz" fmnist@main --prefix test
strata query fmnist@main "SELECT substr(path, 1, instr(path, '/') - 1) AS split, label, count(*) AS images
                          FROM records GROUP BY split, label ORDER BY split, label LIMIT 12"
strata log fmnist@main

step "9. curate into a derived branch: rules, label remapping, duplicates, quarantine, report"
strata curate fmnist@main fmnist@curated --rules examples/curate-fmnist.yaml --report-dir "$work/curation"
strata query fmnist@curated "SELECT label, count(*) AS images FROM records GROUP BY label ORDER BY images DESC LIMIT 3"
echo "report: $(ls "$work/curation")"

step "10. transform the curated images into training shards (deterministic, cached)"
strata transform fmnist@curated --pipeline examples/fmnist-pipeline.yaml --out fmnist@train-ready
# The same input and pipeline again: recognised, nothing recomputed.
strata transform fmnist@curated --pipeline examples/fmnist-pipeline.yaml --out fmnist@train-ready
strata ls fmnist@train-ready:shards
strata tier stage fmnist@train-ready "$work/tier"
strata tier evict "$work/tier"

step "11. branch, relabel (a metadata-only commit), diff, rollback, audit"
strata tag create fmnist@v1 fmnist@main
strata branch create fmnist@relabel fmnist@main
strata meta set fmnist@relabel:train/00000.pgm label=Sandal reviewed=true -m "label fix after review"
strata diff fmnist@v1 fmnist@relabel
strata query fmnist@relabel "SELECT path, label, reviewed FROM records WHERE reviewed"
strata reset fmnist@relabel fmnist@v1
strata audit verify

step "12. repository statistics"
strata stats

step "done"
echo "strata stored, deduplicated, encrypted, verified and restored the data above."
