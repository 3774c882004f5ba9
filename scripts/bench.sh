#!/usr/bin/env bash
# Installs what is missing, builds with optimisation, and runs the benchmarks in
# bench/ against the real cog-server. Figures are printed, never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
bazel build --color=no --curses=no -c opt //server:cog-server //bench:all
bench=bazel-bin/bench/prediction_bench
server=bazel-bin/server/cog-server

$bench --server $server --predictor tests/predictors/echo "$@"
echo "legacy Cog (Python) on the same kind of machine: ~760 req/s, p50 1.2 ms, p99 ~7 ms, ~112 MiB"

$bench --server $server --predictor tests/predictors/file_output --name "10 MiB Path output as a data URI" \
    --body '{"input":{"text":"x","size":10485760}}' --expect '"output":["data:' \
    --requests 40 --warmup 3 --floors=false "$@"
echo "legacy Cog (Python), same 10 MiB data-URI case: ~190 ms p50"

$bench --server $server --predictor tests/predictors/file_output --name "10 MiB Path output uploaded" \
    --body '{"input":{"text":"x","size":10485760}}' --expect '"output":["http://127.0.0.1:' \
    --upload_sink --requests 40 --warmup 3 --floors=false --grpc=false "$@"
echo "(no legacy figure for uploads: the legacy capture measured only the data-URI case)"
