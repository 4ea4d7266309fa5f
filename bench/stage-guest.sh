#!/bin/bash
# Fills the qemu guest of `bench/run.sh --guest` with what bench/driver.sh
# needs there. It is the hook of tests/vm/run-vm-suite.sh's "guest" step
# (UNLINKD_VM_GUEST_STAGE), which calls it on the host, as root,
#   stage-guest.sh TREE BUILD_DIR SOURCE_DIR
# once TREE holds the Debian rootfs (the vm suite's, plus bpftrace and auditd)
# and the kernel modules; the suite then adds the unit that runs
# guest-bench.sh once booted, boots the guest and waits for VMBENCH RESULT.
#
# The guest's /opt/unlinkd-bench (the driver runs everything from there, with
# a private bus and the guest's own journald, as on the host):
#   build/daemon/unlinkd, build/bench/{storm,getppid_loop,top_latency}
#                 a meson build dir's layout: driver.sh's BIN_ROOT
#   src/bench/*.sh, src/dbus/org.unlinkd.Unlinkd1.conf,
#   src/tests/dbus/system-bus.conf.in, src/tests/lib/check.sh
#                 the part of the source tree the scripts use: SOURCE_DIR
#   bench.env     the host's BENCH_* knobs (`export -p` lines), for the driver
set -euo pipefail
[ $# = 3 ] || { echo "usage: $0 TREE BUILD_DIR SOURCE_DIR" >&2; exit 2; }
TREE=$1 BUILD=$2 SRC=$3
B=/opt/unlinkd-bench   # bench/run.sh names $B/src/bench/guest-bench.sh as the guest's program

for f in daemon/unlinkd bench/storm bench/getppid_loop bench/top_latency; do
  [ -x "$BUILD/$f" ] || { echo "stage-guest: $BUILD/$f is missing (build first)" >&2; exit 1; }
  install -D -m755 "$BUILD/$f" "$TREE$B/build/$f"
done
for f in "$SRC"/bench/*.sh; do
  install -D -m755 "$f" "$TREE$B/src/bench/${f##*/}"
done
for f in dbus/org.unlinkd.Unlinkd1.conf tests/dbus/system-bus.conf.in tests/lib/check.sh; do
  install -D -m644 "$SRC/$f" "$TREE$B/src/$f"
done
# Fail here, on the host, rather than in the guest half an hour later.
if chroot "$TREE" sh -c "ldd $B/build/daemon/unlinkd $B/build/bench/top_latency" | grep 'not found'; then
  echo "stage-guest: the guest rootfs lacks shared libraries of the build: add their Debian packages to ROOTFS_PACKAGES (tests/vm/run-vm-suite.sh)" >&2
  exit 1
fi
# The host's BENCH_* knobs, for the driver in the guest.
export -p | grep '^declare -x BENCH_' > "$TREE$B/bench.env" || true
# The driver starts auditd by hand (and stops it); the packaged service
# would own the audit socket, so it stays off.
ln -sf /dev/null "$TREE/etc/systemd/system/auditd.service"
