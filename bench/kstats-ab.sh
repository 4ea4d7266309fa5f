#!/bin/bash
# The in-BPF cost of two (or more) builds of the daemon, side by side: part
# kstats of bench/driver.sh on the host, one round per build per turn, so a
# change is measured against its parent (or against an older commit) on the
# same machine at the same time. bpftrace's @[pid] = count() runs in each
# round as the reference.
#
#   bench/kstats-ab.sh [--rounds N] [--mode MODE] NAME=BUILD_DIR NAME=BUILD_DIR ...   (as root)
#
# BUILD_DIR: a meson build dir with daemon/unlinkd built (a `git worktree`
# of the other commit, `meson setup build && meson compile -C build
# daemon/unlinkd`). The bench programs (storm, getppid_loop) come from this
# tree's build dir. Prints one line per tracer and round:
#   NAME VARIANT ns_per_deletion=N programs=name:ns,...
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=3 MODE=tracepoint
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --mode) MODE=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    *=*) break ;;
    *) echo "kstats-ab.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ $# -ge 1 ] || { echo "kstats-ab.sh: name at least one NAME=BUILD_DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "kstats-ab.sh: run as root" >&2; exit 4; }
meson compile -C "$SRC/build" storm getppid_loop top_latency >/dev/null

# driver.sh takes one BIN_ROOT for the daemon and the bench programs: a
# directory per build with its daemon and this tree's programs.
work=$(mktemp -d /tmp/kstats-ab.XXXXXX)
for nb in "$@"; do
  name=${nb%%=*} dir=$(realpath "${nb#*=}")
  [ -x "$dir/daemon/unlinkd" ] || { echo "kstats-ab.sh: $dir/daemon/unlinkd is missing" >&2; exit 1; }
  mkdir -p "$work/$name/daemon" "$work/$name/bench"
  ln -s "$dir/daemon/unlinkd" "$work/$name/daemon/unlinkd"
  for p in storm getppid_loop top_latency; do ln -s "$SRC/build/bench/$p" "$work/$name/bench/$p"; done
done

for r in $(seq 1 "$ROUNDS"); do
  for nb in "$@"; do
    name=${nb%%=*}
    export BENCH_WORK=$work/$name/round-$r
    mkdir -p "$BENCH_WORK"
    BENCH_MODES=$MODE BENCH_SKIP="pairs exact idle switch top" BENCH_KSTATS_ROUNDS=1 \
      BENCH_COUNT=50000 BENCH_PAIRS=1 BENCH_EXACT_COUNT=1 BENCH_IDLE_SECONDS=1 BENCH_GETPPID_CALLS=1 \
      unshare --mount --propagation private "$SRC/bench/run.sh" --in-namespace --build-dir "$work/$name" \
      > "$BENCH_WORK/log" 2>&1 || { echo "kstats-ab.sh: $name round $r failed: $BENCH_WORK/log" >&2; exit 1; }
    jq -r --arg n "$name" 'select(.type == "kstats")
      | "\($n) \(.variant) ns_per_deletion=\(.ns_per_deletion) programs=\([.programs[] | "\(.name):\(.ns_per_run)"] | join(","))"' \
      "$BENCH_WORK/raw.jsonl"
  done
done
echo "kstats-ab.sh: logs in $work" >&2
