#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, runs the test suite under AddressSanitizer +
# UndefinedBehaviorSanitizer and the fuzz targets of that same clang build briefly, the Python
# package's tests (scripts/test-python.sh), and the test suite itself (last, so the final lines
# are ctest's summary). Exits non-zero on any failure.
#
#   STRATA_FUZZ_SECONDS=N      seconds per fuzz target (default 15; 0 skips fuzzing)
#   STRATA_SKIP_SANITIZE=1     skip the sanitizer build, its tests and the fuzz targets
#   STRATA_CRASH_ITERATIONS=N  SIGKILL iterations of the crash test (default 50)
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
failed=0

scripts/setup.sh || exit 1

echo "== build (release with debug info)"
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo || exit 1

# One fuzz target for its time budget; prints one line (and the log's tail on failure).
fuzz_one() {
  local target=$1 corpus seeds=()
  corpus="build-asan/corpus/$(basename "$target")"
  mkdir -p "$corpus"
  # Checked-in seeds (fuzz/seeds/NAME) start the search from valid inputs; new finds go to $corpus.
  [[ -d "fuzz/seeds/$(basename "$target")" ]] && seeds=("fuzz/seeds/$(basename "$target")")
  if "$target" "$corpus" "${seeds[@]}" -max_total_time="$STRATA_FUZZ_SECONDS" -rss_limit_mb=2048 >"$corpus.log" 2>&1; then
    echo "fuzz $(basename "$target"): ok ($(grep -c . "$corpus.log") log lines)"
  else
    echo "fuzz $(basename "$target"): FAILED"; tail -n 40 "$corpus.log"; return 1
  fi
}

if [[ "${STRATA_SKIP_SANITIZE:-0}" != 1 ]]; then
  echo "== sanitizer build (clang, ASan + UBSan, the test suite and the libFuzzer targets)"
  # A tree configured by an older version of this script with another compiler starts over.
  if [[ -f build-asan/CMakeCache.txt ]] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang++' build-asan/CMakeCache.txt; then
    rm -rf build-asan
  fi
  if scripts/build.sh build-asan -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
       -DSTRATA_FUZZ=ON -DSTRATA_BENCH=OFF; then
    export STRATA_FUZZ_SECONDS=${STRATA_FUZZ_SECONDS:-15}
    if [[ "$STRATA_FUZZ_SECONDS" != 0 ]]; then
      echo "== fuzz targets (${STRATA_FUZZ_SECONDS}s each, $jobs at a time)"
      export -f fuzz_one
      printf '%s\n' build-asan/fuzz/*_fuzz | xargs -P "$jobs" -I{} bash -c 'fuzz_one "$1"' _ {} || failed=1
    fi
    echo "== test suite under ASan + UBSan"
    (cd build-asan && STRATA_CRASH_ITERATIONS=${STRATA_CRASH_ITERATIONS_ASAN:-15} \
       ctest -j "$jobs" --output-on-failure --timeout 1200) || failed=1
  else
    echo "sanitizer build FAILED"; failed=1
  fi
fi

echo "== python package (pytest)"
scripts/test-python.sh || failed=1

echo "== test suite"
(cd build && ctest -j "$jobs" --output-on-failure --timeout 1200) || failed=1
exit $failed
