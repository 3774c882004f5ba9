#!/usr/bin/env bash
# Builds one libFuzzer target (--config=fuzz: clang, ASan + UBSan) and runs it
# for a bounded time on a scratch copy of its seed corpus.
#
#   fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]
#   fuzz/run.sh frame_fuzzer 60
#   fuzz/run.sh rest_input_fuzzer 600 -jobs=2 -workers=2
#   fuzz/run.sh all 20          # every target, 20 s each
#
# TARGET is frame_fuzzer, data_uri_fuzzer, cog_config_fuzzer, rest_input_fuzzer,
# http_request_fuzzer or all. The build uses the output base of --config=asan (COG_ASAN_OUTPUT_BASE,
# by default under ~/.cache), whose objects --config=fuzz only relinks, and not
# the default one, whose cache would be thrown away.
# Inputs the run finds are left in the scratch folder it prints (removed after
# a clean run when COG_FUZZ_KEEP=0); a crash is written there as crash-<sha1>
# and the script exits non-zero. Replay one with
# the default toolchain: bazel run //fuzz:TARGET -- /path/to/crash-<sha1>
set -euo pipefail
cd "$(dirname "$0")/.."

# Every cc_fuzz_target in fuzz/BUILD.bazel.
mapfile -t TARGETS < <(sed -n 's/^ *name = "\(.*_fuzzer\)",$/\1/p' fuzz/BUILD.bazel)
target="${1:?usage: fuzz/run.sh TARGET|all [SECONDS] [libFuzzer flags...]}"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))

output_base="${COG_ASAN_OUTPUT_BASE:-${XDG_CACHE_HOME:-$HOME/.cache}/bazel-cog-asan}"
if [ "$target" = all ]; then selected=("${TARGETS[@]}"); else selected=("$target"); fi

labels=()
for t in "${selected[@]}"; do labels+=("//fuzz:$t"); done
bazel --output_base="$output_base" build --config=fuzz --color=no --curses=no "${labels[@]}"
bin="$(bazel --output_base="$output_base" info --config=fuzz bazel-bin 2>/dev/null)"

status=0
summary=()
for t in "${selected[@]}"; do
  corpus_name="${t%_fuzzer}"
  work="$(mktemp -d "${TMPDIR:-/tmp}/cog-fuzz-$t.XXXXXX")"
  mkdir -p "$work/corpus"
  echo "fuzz: $t for ${seconds}s (new inputs and crashes in $work)"
  # The first folder receives new inputs; the seed corpus is only read.
  if (cd "$work" && ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
        "$bin/fuzz/$t" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$work/" "$@" corpus "$OLDPWD/fuzz/corpus/$corpus_name") \
        > "$work/log" 2>&1; then
    outcome="no crash"
  else
    outcome="FAILED, see $work/log"
    status=1
    tail -n 60 "$work/log"
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")"
  speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")"
  summary+=("$(printf '%-20s %4ss %10s runs %7s/s  %s' "$t" "$seconds" "${runs:-?}" "${speed:-?}" "$outcome")")
  if [ "$outcome" = "no crash" ] && [ "${COG_FUZZ_KEEP:-1}" = 0 ]; then rm -rf "$work"; fi
done
echo "libFuzzer runs:"
printf '  %s\n' "${summary[@]}"
exit $status
