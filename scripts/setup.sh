#!/usr/bin/env bash
# Installs, idempotently, every Debian package the build, the server and the tests need.
# Safe to run again: it asks apt-get only for what is missing.
set -euo pipefail

PACKAGES=(
  # Bazel 4.2.3 and the rule sets it would otherwise download.
  bazel-bootstrap bazel-rules-java bazel-platforms
  # C++ toolchain and system libraries (wrapped as Bazel targets via pkg-config).
  g++ pkg-config
  # --config=asan and fuzz: clang with libFuzzer and its sanitizer runtimes, and
  # llvm-symbolizer for readable stacks, lld to link them.
  clang-14 libclang-rt-14-dev llvm lld
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libcurl4-openssl-dev libspdlog-dev libfmt-dev libcpp-httplib-dev nlohmann-json3-dev libsimdjson-dev libre2-dev
  libmagic-dev libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev rapidjson-dev
  # Proto imports: grpc.health.v1 and google/api/annotations.proto.
  grpc-proto golang-github-grpc-ecosystem-grpc-gateway-dev
  # Python: the runner's interpreter, and the real gRPC client the tests use.
  python3 python3-grpcio python3-protobuf
  # Tools the scripts and tests call.
  curl procps wrk
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
