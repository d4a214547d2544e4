# Sourced by build.sh and python-env.sh. One C++ compiler for the release tree (build/) and the
# Python extension's tree (build-py/), and ccache when it is installed: the two trees compile
# the same sources with the same flags (position-independent, RelWithDebInfo), so each object
# is compiled once. A tree keeps the compiler and launcher it was first configured with.
export CC=${CC:-gcc} CXX=${CXX:-g++}
if command -v ccache >/dev/null; then
  export CMAKE_C_COMPILER_LAUNCHER=${CMAKE_C_COMPILER_LAUNCHER:-ccache}
  export CMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER:-ccache}
  export CCACHE_NOHASHDIR=1  # the trees differ only in their directory (recorded in debug info)
fi
