#!/usr/bin/env bash
# .ci/tidy.sh BUILD_DIR -- clang-tidy (the committed .clang-tidy) over the
# library's sources, using BUILD_DIR's compile_commands.json.  Fails on any
# finding (WarningsAsErrors: '*').
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
# Pinned: the .clang-tidy is written for clang-tidy 14 (Debian 12).
tidy=${CLANG_TIDY:-clang-tidy-14}
[ -f "$build/compile_commands.json" ] || { echo "tidy: no $build/compile_commands.json" >&2; exit 2; }
files=$(python3 - "$build/compile_commands.json" <<'PY'
import json, os, sys
root = os.getcwd()
for c in json.load(open(sys.argv[1])):
    f = os.path.relpath(os.path.join(c["directory"], c["file"]), root)
    if f.split("/")[0] in ("sched", "runtime") and f.endswith(".c"):
        print(f)
PY
)
echo "clang-tidy $($tidy --version | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -1) on $(echo "$files" | wc -l) files"
echo "$files" | xargs -P"$(nproc)" -n2 "$tidy" -p "$build" --quiet 2>/dev/null
