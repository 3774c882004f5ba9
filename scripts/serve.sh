#!/usr/bin/env bash
# Installs what is missing, builds, and serves the bundled example predictor
# (examples/hello): the Cog HTTP API on port 5000, gRPC on 50051.
# Extra arguments go to cog-server, e.g. --working-directory path/to/model.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
bazel build --color=no --curses=no //server:cog-server
args=("$@")
case " ${args[*]-} " in
  *" --working-directory"* | *" --working_directory"*) ;;
  *) args=(--working-directory examples/hello "${args[@]}") ;;
esac
exec bazel-bin/server/cog-server "${args[@]}"
