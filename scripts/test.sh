#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite
# (GoogleTest unit tests, the codec conformance test, end-to-end tests against
# the real binaries), then prints a summary ending in "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1
bazel test --color=no --curses=no --test_output=errors //... "$@"
status=$?
targets=$(bazel query --color=no --curses=no 'tests(//...)' 2>/dev/null)
python3 scripts/summarize_tests.py bazel-testlogs $targets || status=1
exit $status
