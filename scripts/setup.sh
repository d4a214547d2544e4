#!/usr/bin/env bash
# Installs what strata needs to build, test and benchmark (Debian packages). Idempotent: it
# installs only what is missing, so it is cheap to run before every build.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ccache
  libssl-dev libsodium-dev libzstd-dev liblz4-dev libxxhash-dev libisal-dev liburing-dev
  libsqlite3-dev libarchive-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libpqxx-dev postgresql
  libgtest-dev libgmock-dev libbenchmark-dev
  libutf8proc-dev libsentencepiece-dev libjpeg62-turbo-dev libpng-dev
  libyaml-cpp-dev libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  clang libclang-rt-14-dev
  dataset-fashion-mnist
  python3-venv python3-numpy python3-pytest python3-torch
)
if [[ "${1:-}" == "--bench" ]]; then
  PACKAGES+=(restic borgbackup fio)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "strata setup: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
