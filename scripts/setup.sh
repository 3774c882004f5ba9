#!/usr/bin/env bash
# Installs, idempotently, every Debian package the build, the server and the tests need,
# and the npm packages the manifest tests use. Safe to run again: it asks apt-get and
# npm only for what is missing.
#   --build-only   just what building cog-server needs (deploy/Dockerfile's build stage)
set -euo pipefail

BUILD_ONLY=0
if [ "${1:-}" = "--build-only" ]; then BUILD_ONLY=1; fi

BUILD_PACKAGES=(
  bazel-bootstrap bazel-rules-java bazel-platforms g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libcurl4-openssl-dev libspdlog-dev libfmt-dev libcpp-httplib-dev nlohmann-json3-dev libsimdjson-dev libre2-dev
  libmagic-dev libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev rapidjson-dev
  grpc-proto golang-github-grpc-ecosystem-grpc-gateway-dev python3 binutils
)

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
  # Scale-out tests: a real HTTP load balancer in front of two servers.
  nginx-light
  # Manifest tests: YAML for Python, Node.js for the Kubernetes schemas (npm below).
  python3-yaml nodejs
)
# npm packages the manifest tests use (tests/deploy_manifests_test.py), pinned.
NPM_PACKAGES=(kubernetes-models@4.5.1 typescript@5.4.5)

if [ "$BUILD_ONLY" = 1 ]; then PACKAGES=("${BUILD_PACKAGES[@]}"); fi
# Debian's nodejs ships npm separately; NodeSource's nodejs brings its own.
if [ "$BUILD_ONLY" = 0 ] && ! command -v npm >/dev/null; then PACKAGES+=(npm); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ "$BUILD_ONLY" = 0 ]; then
  npm_missing=()
  for p in "${NPM_PACKAGES[@]}"; do
    if ! npm ls -g --depth=0 "$p" >/dev/null 2>&1; then npm_missing+=("$p"); fi
  done
  if [ "${#npm_missing[@]}" -gt 0 ]; then
    echo "setup: npm installing ${npm_missing[*]}"
    $SUDO npm install -g --no-audit --no-fund --loglevel=error "${npm_missing[@]}"
  fi
fi
