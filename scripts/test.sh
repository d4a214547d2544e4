#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, runs the fuzz targets briefly, the test
# suite under AddressSanitizer + UndefinedBehaviorSanitizer, the Python package's tests
# (scripts/test-python.sh), and the test suite itself (last, so the final lines are ctest's
# summary). Exits non-zero on any failure.
#
#   STRATA_FUZZ_SECONDS=N      seconds per fuzz target (default 15; 0 skips fuzzing)
#   STRATA_SKIP_SANITIZE=1     skip the sanitizer build (quicker local runs)
#   STRATA_CRASH_ITERATIONS=N  SIGKILL iterations of the crash test (default 50)
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
failed=0

scripts/setup.sh || exit 1

echo "== build (release with debug info)"
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo || exit 1

fuzz_seconds=${STRATA_FUZZ_SECONDS:-15}
if [[ "$fuzz_seconds" != 0 ]]; then
  echo "== fuzz targets (${fuzz_seconds}s each)"
  if scripts/build.sh build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
       -DSTRATA_FUZZ=ON -DSTRATA_TESTS=OFF -DSTRATA_BENCH=OFF; then
    for target in build-fuzz/fuzz/*_fuzz; do
      [[ -x "$target" ]] || continue
      corpus="build-fuzz/corpus/$(basename "$target")"
      mkdir -p "$corpus"
      if "$target" "$corpus" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 >"$corpus.log" 2>&1; then
        echo "fuzz $(basename "$target"): ok ($(grep -c . "$corpus.log") log lines)"
      else
        echo "fuzz $(basename "$target"): FAILED"; tail -n 40 "$corpus.log"; failed=1
      fi
    done
  else
    echo "fuzz build FAILED"; failed=1
  fi
fi

if [[ "${STRATA_SKIP_SANITIZE:-0}" != 1 ]]; then
  echo "== test suite under ASan + UBSan"
  if scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DSTRATA_SANITIZE=ON -DSTRATA_BENCH=OFF; then
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
