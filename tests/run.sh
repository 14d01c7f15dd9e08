#!/usr/bin/env bash
# tests/run.sh -- build Arbor and run every test (the README's test command).
# Installs what it needs on Debian 12 when run as root.  Extra arguments go
# to CMake's configure step (e.g. -DARBOR_SANITIZE=address,undefined).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${ARBOR_BUILD_DIR:-$here/build}

need=()
for p in cmake pkg-config gcc libck-dev libcriterion-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "tests/run.sh: please install: ${need[*]}" >&2
    exit 1
  fi
fi

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=${ARBOR_BUILD_TYPE:-RelWithDebInfo} \
  -DARBOR_BUILD_TESTS=ON -DARBOR_BUILD_EXAMPLES=ON -DARBOR_BUILD_BENCH=ON "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j1
