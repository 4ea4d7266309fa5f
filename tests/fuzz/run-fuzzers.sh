#!/bin/bash
# Every libFuzzer target for SECONDS (default 30) each, two at a time, from
# its seed corpus, in a clang build set up under the main build directory
# (BUILD_DIR/fuzz, -Dfuzz=true) and built only as far as the fuzzers:
#   run-fuzzers.sh BUILD_DIR SOURCE_DIR [SECONDS]
# A crash, sanitizer report, timeout (10 s for one input) or out-of-memory
# fails the run; the input is kept in BUILD_DIR/fuzz/artifacts, to be added
# to tests/fuzz/<target>/ once the bug is fixed. The seed directories are
# only read: what a run finds goes to a scratch corpus.
set -euo pipefail
BUILD=$(realpath "$1"); SRC=$(realpath "$2"); SECONDS_EACH=${3:-30}
F=$BUILD/fuzz
start=$EPOCHSECONDS
if [ ! -f "$F/build.ninja" ]; then
  # -O1, no full debug info (line tables come with the fuzz flags): what
  # OSS-Fuzz uses, and cheaper to compile than -O2 -g.
  CC=clang CXX=clang++ meson setup "$F" "$SRC" -Dfuzz=true -Doptimization=1 -Ddebug=false >/dev/null
fi
targets=(escape filter config record bus-args)
nice -n 10 meson compile -C "$F" "${targets[@]/#/fuzz-}"
built=$EPOCHSECONDS

mkdir -p "$F/artifacts"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
run() {
  local t=$1 dir=${1/-/_}
  mkdir -p "$W/$dir"
  nice -n 10 "$F/tests/fuzz/fuzz-$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$F/artifacts/$dir-" "$W/$dir" "$SRC/tests/fuzz/$dir" \
    >"$W/$dir.log" 2>&1
}
rc=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for t in "${targets[@]:i:2}"; do run "$t" & pids+=($!); done
  for k in "${!pids[@]}"; do
    t=${targets[i + k]}
    if wait "${pids[k]}"; then
      echo "FIGURE fuzz-$t: $(sed -n 's/^stat::number_of_executed_units: *//p' "$W/${t/-/_}.log") inputs in ${SECONDS_EACH}s, no finding"
    else
      echo "fuzz-$t FAILED:"; grep -v '^#' "$W/${t/-/_}.log" | tail -n 60
      rc=1
    fi
  done
done
echo "FIGURE fuzz build $((built - start))s, runs $((EPOCHSECONDS - built))s"
exit $rc
