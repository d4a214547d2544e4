#!/usr/bin/env bash
# Builds the Python package (python/) and installs it into a venv; prints nothing on success.
# The venv is made with Debian's Python and --system-site-packages, so it sees python3-torch,
# python3-numpy and python3-pytest (scripts/setup.sh installs them); PyTorch never comes from
# PyPI. Quick when nothing changed: the venv and the build tree (build-py/) are kept, and pip
# recompiles only what changed.
#
#   STRATA_VENV=DIR   the venv (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/compiler-env.sh
venv=${STRATA_VENV:-.venv}
if [[ ! -x "$venv/bin/python" ]]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
# The build requirements live in the venv, so a reinstall needs no isolated build environment.
if ! "$venv/bin/python" -c "import scikit_build_core, nanobind" 2>/dev/null; then
  "$venv/bin/pip" install -q "scikit-build-core>=0.10" "nanobind>=2.4"
fi
# RelWithDebInfo, like build/: the objects they share come from ccache (compiler-env.sh).
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$venv/bin/pip" install -q --no-build-isolation --no-deps \
  --config-settings=cmake.build-type=RelWithDebInfo ./python
