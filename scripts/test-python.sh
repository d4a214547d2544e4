#!/usr/bin/env bash
# Builds and installs the Python package (python/) into a venv and runs its pytest suite.
# The venv is made with Debian's Python and --system-site-packages, so it sees python3-torch,
# python3-numpy and python3-pytest (scripts/setup.sh installs them); PyTorch never comes from
# PyPI. Quick when nothing changed: the venv and the build tree (build-py/) are kept, and pip
# recompiles only what changed. Extra arguments go to pytest.
#
#   STRATA_VENV=DIR   the venv (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${STRATA_VENV:-.venv}
if [[ ! -x "$venv/bin/python" ]]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
# The build requirements live in the venv, so a reinstall needs no isolated build environment.
if ! "$venv/bin/python" -c "import scikit_build_core, nanobind" 2>/dev/null; then
  "$venv/bin/pip" install -q "scikit-build-core>=0.10" "nanobind>=2.4"
fi
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$venv/bin/pip" install -q --no-build-isolation --no-deps ./python
# From the tests' own directory, so `import strata` finds the installed package, not python/strata.
venv_python=$(cd "$venv" && pwd)/bin/python
cd python/tests
"$venv_python" -m pytest -q -p no:cacheprovider "$@"
