#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite
# (GoogleTest unit tests, the codec conformance test, end-to-end tests against
# the real binaries), then the core's and the HTTP server's unit tests and the
# fuzz corpora under ASan + UBSan and each fuzz target for a bounded time
# (fuzz/run.sh), and prints a summary ending in "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1
# Bazel's convenience links (bazel-bin, bazel-<folder>, ...) follow the last
# Bazel command; after one with another output base (a sanitizer build, the
# README's by-hand commands) //... would walk into that base's sources and
# fail to load. The next command makes them again.
find . -maxdepth 1 -name 'bazel-*' -type l -delete
bazel test --color=no --curses=no --test_output=errors //... "$@"
status=$?
targets=$(bazel query --color=no --curses=no 'tests(//...)' 2>/dev/null)
# The logs of this run, by path: the bazel-testlogs link in the tree follows the
# last Bazel command, and the ASan one below uses another output base.
default_logs=$(bazel info --color=no bazel-testlogs 2>/dev/null)

# The core's and the HTTP server's unit tests and the fuzz corpora again under
# ASan + UBSan, in an output base of their own (other flags: the default
# build's cache stays).
cache="${XDG_CACHE_HOME:-$HOME/.cache}"
asan=(bazel --output_base="${COG_ASAN_OUTPUT_BASE:-$cache/bazel-cog-asan}")
"${asan[@]}" test --config=asan --build_tests_only --color=no --curses=no --test_output=errors \
    //server/... //gateway/... //fuzz/... || status=1
asan_targets=$("${asan[@]}" query --color=no --curses=no 'tests(//server/... + //gateway/... + //fuzz/...)' 2>/dev/null)
asan_logs=$("${asan[@]}" info --config=asan bazel-testlogs 2>/dev/null)

# Each libFuzzer target for a bounded time (COG_FUZZ_SECONDS each; 0 skips),
# built from the objects above (--config=fuzz only relinks).
if [ "${COG_FUZZ_SECONDS:-15}" != 0 ]; then
  COG_FUZZ_KEEP=0 fuzz/run.sh all "${COG_FUZZ_SECONDS:-15}" || status=1
fi

# One summary: the ASan runs count as targets of their own, //asan/server:...
logs=$(mktemp -d)
for entry in "$default_logs"/*; do ln -s "$(readlink -f "$entry")" "$logs/"; done
ln -s "$asan_logs" "$logs/asan"
python3 scripts/summarize_tests.py "$logs" $targets ${asan_targets//\/\//\/\/asan\/} || status=1
rm -rf "$logs"
exit $status
