#!/bin/bash
# unlinkd's benchmark: overhead on file deletions side by side with bpftrace
# and auditd, exactness, drops, daemon CPU and memory, idle wakeups, the
# syscall tax, mode switches, GetTopProcesses latency. See bench/README.md.
#
#   bench/run.sh [--quick] [--guest] [--pairs N] [--build-dir DIR] [--no-install]   (as root)
#
# On a machine set up by the README (packaging/install-build-deps.sh run):
# installs bpftrace, auditd, gnuplot-nox and jq if missing, builds the
# daemon and the bench programs in the build dir (default: build), runs
# bench/driver.sh in a private mount namespace with a private journald, and
# writes bench/results/host-DATE.{md,png,jsonl} plus latest-host.{md,png}.
# --guest: the same driver in the qemu guest of tests/vm (Debian 12's stock
# kernel, where fentry and kprobe load), written as guest-DATE.* and
# latest-guest.*; smaller storms, as TCG emulation is ~50x slower.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$SRC/build
PAIRS=
QUICK=
GUEST=
INSTALL=1
RESULTS=$SRC/bench/results

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --guest) GUEST=1 ;;
    --pairs) PAIRS=$2; shift ;;
    --pairs=*) PAIRS=${1#*=} ;;
    --build-dir) BUILD=$2; shift ;;
    --build-dir=*) BUILD=${1#*=} ;;
    --results-dir) RESULTS=$2; shift ;;
    --results-dir=*) RESULTS=${1#*=} ;;
    --no-install) INSTALL= ;;
    --in-namespace) exec_in_ns=1 ;;   # internal: set by the re-exec below
    -h|--help) usage ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (BPF, auditd, mounts)" >&2; exit 4; }
BUILD=$(realpath -m "$BUILD")

# Sizes. The default run takes 20-30 minutes on 2 vCPUs; --quick a few.
# In the guest a storm of 20k deletes takes about as long as 1M on the host.
if [ -n "$GUEST" ] && [ -n "$QUICK" ]; then
  export BENCH_PAIRS=${PAIRS:-2} BENCH_COUNT=5000 BENCH_EXACT_COUNT=20000 \
    BENCH_IDLE_SECONDS=5 BENCH_GETPPID_CALLS=50000 BENCH_ATTACH_TIMEOUT=900
elif [ -n "$GUEST" ]; then
  export BENCH_PAIRS=${PAIRS:-5} BENCH_COUNT=${BENCH_COUNT:-20000} BENCH_EXACT_COUNT=${BENCH_EXACT_COUNT:-100000} \
    BENCH_IDLE_SECONDS=${BENCH_IDLE_SECONDS:-10} BENCH_GETPPID_CALLS=${BENCH_GETPPID_CALLS:-200000} BENCH_ATTACH_TIMEOUT=900
elif [ -n "$QUICK" ]; then
  export BENCH_PAIRS=${PAIRS:-3} BENCH_COUNT=50000 BENCH_EXACT_COUNT=200000 \
    BENCH_IDLE_SECONDS=5 BENCH_GETPPID_CALLS=500000
else
  export BENCH_PAIRS=${PAIRS:-20} BENCH_COUNT=${BENCH_COUNT:-200000} BENCH_EXACT_COUNT=${BENCH_EXACT_COUNT:-1000000} \
    BENCH_IDLE_SECONDS=${BENCH_IDLE_SECONDS:-10} BENCH_GETPPID_CALLS=${BENCH_GETPPID_CALLS:-2000000}
fi
[[ "$BENCH_PAIRS" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --pairs wants a positive number" >&2; exit 2; }

# ------------------------------------------------ inside the namespace ---
# A private systemd-journald that only this mount namespace sees, so the
# daemon's default configuration writes to a real journal (the machine may
# run none, and its own journal, if any, is left alone).
if [ -n "${exec_in_ns:-}" ]; then
  # shellcheck source-path=SCRIPTDIR source=../tests/lib/check.sh
  . "$SRC/tests/lib/check.sh"
  # journald's own rate limit stays at its default, as on a real system.
  trap stop_private_journald EXIT
  start_private_journald
  bash "$SRC/bench/driver.sh" "$BUILD" "$SRC" "$BENCH_WORK"
  echo "bench: journal entries written during the run: $(journalctl -q -o cat MESSAGE_ID=1e7a225fb4ed478abe629f4b6b6823ec | wc -l)" >&2
  exit 0
fi

# ----------------------------------------------------------- packages ---
# Idempotent: nothing is fetched when everything is there.
if [ -n "$INSTALL" ]; then
  need=()
  for p in bpftrace auditd gnuplot-nox jq dbus-daemon; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "bench: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # auditd's maintainer script may try to start the service; where no init
    # system runs that fails harmlessly, and the driver starts it by hand.
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${need[@]}"
  fi
fi
# A packaged auditd started by an init system would own the audit netlink
# socket; the driver never takes over one it did not start.

# -------------------------------------------------------------- build ---
t0=$(date +%s)
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$SRC"
meson compile -C "$BUILD" unlinkd storm getppid_loop top_latency

# ------------------------------------------------------------ measure ---
STAMP=$(date -u +%Y%m%d-%H%M%S)
export BENCH_WORK=$BUILD/bench-work/$STAMP
mkdir -p "$BENCH_WORK"
COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
# bench/ itself changes while the harness is developed; anything else
# uncommitted means the figures are not of that commit.
if ! git -C "$SRC" diff --quiet HEAD -- . ':!bench' ':!tests/vm' ':!tests/lib' 2>/dev/null; then COMMIT="$COMMIT+dirty"; fi
label=host; [ -z "$GUEST" ] || label=guest
echo "bench: $label, commit $COMMIT, $BENCH_PAIRS pairs of $BENCH_COUNT deletes; work dir $BENCH_WORK"
rc=0
if [ -n "$GUEST" ]; then
  # The kernel, rootfs and qemu plumbing of the vm suite's "guest" step;
  # what goes into the guest is bench/stage-guest.sh's (the binaries, the
  # scripts, the driver's BENCH_* knobs), plus the tools unlinkd is compared
  # with. guest-bench.sh prints the driver's raw.jsonl on the console.
  # UNLINKD_VM_BENCH_TIMEOUT: seconds the guest may take (default 7200).
  guest_log=$BUILD/tests/vm/bench-guest.log
  rm -f "$guest_log"
  UNLINKD_VM_STEPS=guest UNLINKD_VM_GUEST_NAME=bench UNLINKD_VM_GUEST_PACKAGES=bpftrace,auditd \
  UNLINKD_VM_GUEST_STAGE="$SRC/bench/stage-guest.sh" \
  UNLINKD_VM_GUEST_RUN=/opt/unlinkd-bench/src/bench/guest-bench.sh \
  UNLINKD_VM_GUEST_TIMEOUT=${UNLINKD_VM_BENCH_TIMEOUT:-7200} UNLINKD_VM_MEM=${UNLINKD_VM_MEM:-4G} \
    "$SRC/tests/vm/run-vm-suite.sh" "$BUILD" "$SRC" > "$BENCH_WORK/vm.log" 2>&1 || rc=$?
  grep -E '^(VMSUITE|VMBENCH (KERNEL|RESULT))|^bench: ' "$BENCH_WORK/vm.log" | tail -40 || true
  sed -n 's/^VMBENCH RAW //p' "$guest_log" > "$BENCH_WORK/raw.jsonl" 2>/dev/null || true
  echo "bench: guest: $(wc -l < "$BENCH_WORK/raw.jsonl") result lines (console: $guest_log)"
else
  unshare --mount --propagation private "$0" --in-namespace --build-dir "$BUILD" \
    ${QUICK:+--quick} --pairs "$BENCH_PAIRS" || rc=$?
fi

# ------------------------------------------------------------- report ---
mkdir -p "$RESULTS"
name=$label-$(date -u +%Y-%m-%d)${QUICK:+-quick}
if [ -s "$BENCH_WORK/raw.jsonl" ]; then
  cp "$BENCH_WORK/raw.jsonl" "$RESULTS/$name.jsonl"
  /usr/bin/python3 "$SRC/bench/report.py" "$RESULTS/$name.jsonl" --label "$label" --commit "$COMMIT" \
    --wall-seconds $(( $(date +%s) - t0 )) --md "$RESULTS/$name.md" --png "$RESULTS/$name.png"
  if [ -z "$QUICK" ] && [ $rc = 0 ]; then
    cp "$RESULTS/$name.md" "$RESULTS/latest-$label.md"
    # no chart when no pairs ran (BENCH_SKIP=pairs)
    [ ! -f "$RESULTS/$name.png" ] || cp "$RESULTS/$name.png" "$RESULTS/latest-$label.png"
  fi
  echo "bench: results in $RESULTS/$name.md (chart $name.png, raw $name.jsonl)"
else
  echo "bench: no results (see $BENCH_WORK)" >&2; rc=1
fi

# Nothing of ours may stay attached. Other unlinkd or bpftrace processes on
# a shared machine are somebody else's: listed, not touched.
left=$(pgrep -a -f "$BUILD/daemon/unlinkd" || true)
[ -z "$left" ] || { echo "bench: WARNING: still running: $left" >&2; rc=1; }
auditctl -l 2>/dev/null | grep -q unlinkd-bench && { echo "bench: WARNING: the audit rule is still loaded" >&2; rc=1; }
[ $rc != 0 ] || echo "bench: none of this run's processes or audit rules are left; on the machine now (others'): $(bpftool link 2>/dev/null | grep -cE '^[0-9]+:' || true) BPF links, $(pgrep -c unlinkd || true) unlinkd processes"
echo "bench: took $(( $(date +%s) - t0 )) s"
exit $rc
