#!/usr/bin/env bash
# Builds and installs the Python package into a venv (scripts/python-env.sh) and runs its pytest
# suite. Extra arguments go to pytest.
#
#   STRATA_VENV=DIR   the venv (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/python-env.sh
# From the tests' own directory, so `import strata` finds the installed package, not python/strata.
venv_python=$(cd "${STRATA_VENV:-.venv}" && pwd)/bin/python
cd python/tests
"$venv_python" -m pytest -q -p no:cacheprovider "$@"
