#!/usr/bin/env bash
# Redundancy benchmark: the disk's sequential write limit (fio) and strata's codec, put, get,
# degraded get and repair (redundancy_bench) in the same run, on the same disk.
# Usage: bench/redundancy.sh BUILD_DIR [DIR=/var/tmp/strata-redundancy-bench] [MiB=512]
set -euo pipefail
build=${1:?usage: bench/redundancy.sh BUILD_DIR [DIR] [MiB]}
dir=${2:-/var/tmp/strata-redundancy-bench}
mib=${3:-512}
mkdir -p "$dir"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(. /etc/os-release; echo "$PRETTY_NAME")"
echo "# fio: sequential write, 1 MiB blocks, O_DIRECT, ${mib} MiB, fsync at end"
fio --name=seqwrite --directory="$dir" --rw=write --bs=1M --size="${mib}M" --direct=1 --end_fsync=1 \
    --ioengine=psync --output-format=terse --terse-version=3 | awk -F';' '{printf "fio seq write %.0f MB/s\n", $48*1024/1e6}'
rm -f "$dir"/seqwrite.*
"$build/bench/redundancy_bench" "$dir/run" "$mib"
