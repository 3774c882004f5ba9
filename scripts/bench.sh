#!/usr/bin/env bash
# Installs what is missing, builds, and runs the benchmarks in bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
bazel build --color=no --curses=no -c opt //server:cog-server //bench:all
bazel-bin/bench/null_predictor_bench --server bazel-bin/server/cog-server \
    --predictor tests/predictors/echo "$@"
