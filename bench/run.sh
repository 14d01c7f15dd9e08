#!/usr/bin/env bash
# bench/run.sh -- build Arbor in Release mode and run the benchmark suite's
# default profile (the README's main job): progress on stderr, a results
# table on stdout.  Installs what it needs on Debian 12 when run as root.
# Extra arguments go to arbor-bench (e.g. --format=result, --profile=full,
# --plot bench.svg).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${ARBOR_BENCH_DIR:-$here/build-release}

need=()
for p in cmake pkg-config gcc libck-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "bench/run.sh: please install: ${need[*]}" >&2
    exit 1
  fi
fi

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DARBOR_BUILD_TESTS=OFF \
  -DARBOR_BUILD_EXAMPLES=OFF -DARBOR_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target arbor-bench >/dev/null
exec "$build/bench/arbor-bench" "$@"
