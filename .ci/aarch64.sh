#!/usr/bin/env bash
# .ci/aarch64.sh -- cross-build for aarch64 and run ctx_selftest under qemu.
#
# For CI: runs as root on a fresh Debian 12 (amd64).  Only tests/ctx_selftest
# runs, because it is single-threaded: multi-threaded programs hang under
# qemu-user here, and Criterion has no arm64 build to link against.
#
# Usage: .ci/aarch64.sh [build-dir]      (default: build-aarch64)
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-aarch64}
mkdir -p "$build"
build=$(cd "$build" && pwd)
sysroot=$build/sysroot
libdir=$sysroot/usr/lib/aarch64-linux-gnu
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get install -y -q --no-install-recommends \
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user cmake pkg-config make

# Concurrency Kit for arm64, unpacked into a sysroot rather than installed:
# libck-dev is Multi-Arch: same, but its generated ck_md.h differs between
# architectures, so installing the arm64 package would remove the amd64 one.
dpkg --add-architecture arm64
apt-get update -q
rm -rf "$sysroot" "$build/debs"
mkdir -p "$sysroot" "$build/debs"
(cd "$build/debs" && apt-get download -q libck-dev:arm64 libck0:arm64)
for deb in "$build"/debs/*.deb; do
  dpkg -x "$deb" "$sysroot"
done

# pkg-config must find the arm64 ck.pc and nothing else: the host's adds
# -D__x86_64__ to the compile flags.
unset PKG_CONFIG_PATH
export PKG_CONFIG_LIBDIR=$libdir/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$sysroot
ck_flags=$(pkg-config --cflags --libs ck)
echo "ck for arm64: $ck_flags"
if [[ $ck_flags == *x86* || $ck_flags != *"-I$sysroot/"* ]]; then
  echo "aarch64.sh: pkg-config does not give the sysroot's arm64 ck" >&2
  exit 1
fi

cat >"$build/aarch64-toolchain.cmake" <<'TOOLCHAIN'
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
TOOLCHAIN

# ARBOR_CRITERION_TESTS=OFF: there is no arm64 Criterion to find.
cmake -S "$src" -B "$build" \
  -DCMAKE_TOOLCHAIN_FILE="$build/aarch64-toolchain.cmake" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DARBOR_BUILD_TESTS=ON -DARBOR_BUILD_EXAMPLES=OFF -DARBOR_BUILD_BENCH=OFF \
  -DARBOR_CRITERION_TESTS=OFF -DARBOR_WERROR=ON
cmake --build "$build" --target arbor_objects ctx_selftest -j "$(nproc)"

# Linked dynamically: -L gives qemu the arm64 loader and libc, and
# LD_LIBRARY_PATH the sysroot's libck.
qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH="$libdir" \
  "$build/tests/ctx_selftest"
