#!/bin/bash
# VM test suite for unlinkd: runs the project's binaries on Debian's stock
# kernels under qemu (Debian 12's 6.1 and Debian 13's 6.12, two LTS kernels),
# because the CI host's own kernel (lockdown, no kprobes) can only exercise
# the tracepoint attach mode.
#
# Usage: run-vm-suite.sh BUILD_DIR [SOURCE_DIR]
#
# Steps (each timed, see "VMSUITE TIMING" lines):
#   kernel      download the linux-image-*-amd64 of each Debian suite in
#               UNLINKD_VM_KERNELS (Debian 12's through the host's apt, the
#               others through a private apt state in the cache: the host's
#               sources are not changed), extract vmlinux and the few modules
#               the full guest needs (cached per version)
#   fast        busybox initramfs with the integration tests + their shared
#               libraries, booted once per kernel and run: each per-mode run
#               (UNLINKD_VM_MODES) and the [multimode] run is a boot of its own
#   rootfs      debootstrap a minimal Debian 12 with systemd (cached per
#               package list)
#   full        copy of that rootfs + the Debian package (dpkg -i), booted
#               with systemd as PID 1 on Debian 12's kernel; runs
#               tests/vm/guest-full-checks.sh
#   guest       not a test and not in the default steps: a systemd guest
#               for another part of the project (`bench/run.sh --guest`
#               runs the benchmark this way): the full guest's rootfs recipe
#               plus UNLINKD_VM_GUEST_PACKAGES, filled by the caller's
#               UNLINKD_VM_GUEST_STAGE hook, running UNLINKD_VM_GUEST_RUN
#               after boot; passes when the console says "<MARKER> RESULT PASS"
#
# Environment knobs:
#   UNLINKD_VM_CACHE        cache dir (default /var/cache/unlinkd-vm)
#   UNLINKD_VM_STEPS        steps to run (default "fast full")
#   UNLINKD_VM_KERNELS      Debian suites whose stock kernel the fast guest
#                           boots, in order (default "bookworm trixie"); the
#                           full guest and the guest step boot bookworm's
#   UNLINKD_VM_APT_MAX_AGE  seconds before the private apt lists of a suite
#                           other than the host's are refreshed (default 86400)
#   UNLINKD_VM_PARALLEL     1: two workers take the jobs (the full guest's
#                           chain, each fast-guest boot) from one list, longest
#                           first, so two qemu run at once, each one host
#                           thread; 0: one job at a time. Default 1 with 2
#                           CPUs or more, else 0.
#   UNLINKD_VM_TEST_BIN     integration test binary (meson passes it; by hand
#                           the default is BUILD_DIR/tests/integration/unlinkd-integration-tests,
#                           else the only file of that name in BUILD_DIR)
#   UNLINKD_VM_DAEMON_BIN   daemon binary for the fast guest (default
#                           BUILD_DIR/daemon/unlinkd, found the same way)
#   UNLINKD_VM_FAST_TIMEOUT / UNLINKD_VM_FULL_TIMEOUT   seconds per qemu run
#   UNLINKD_VM_MEM, UNLINKD_VM_SMP                       guest size
#   UNLINKD_VM_MODES        attach modes of the fast guest's per-mode runs and
#                           the full guest's service checks (default "fentry
#                           kprobe": tracepoint's run on the host, in every CI
#                           run; on the guest kernels it is in the [multimode]
#                           run and the full guest's transient-unit checks)
#   UNLINKD_VM_ACCEL        qemu -accel value (default tcg,thread=single)
#   UNLINKD_VM_TEST_FILTER  Catch2 test spec of the per-mode runs (default
#                           "~[multimode]~[dbus]"; e.g. "[switch]" to debug one test)
#   UNLINKD_VM_KEEP=1       keep the per-run work dir (images, staging trees)
#   UNLINKD_VM_MIRROR       Debian mirror (default: from the host's apt sources)
# The "guest" step (UNLINKD_VM_GUEST_STAGE and _RUN are required with it):
#   UNLINKD_VM_GUEST_NAME   short name (default guest): the log
#                           BUILD_DIR/tests/vm/NAME-guest.log, the rootfs
#                           cache link NAME.tar, the console marker VM<NAME>
#                           (upper case)
#   UNLINKD_VM_GUEST_STAGE  executable, run on the host as root as
#                           `HOOK TREE BUILD_DIR SOURCE_DIR` once TREE holds the
#                           rootfs and the kernel modules: installs what the
#                           guest needs; it inherits this script's environment
#   UNLINKD_VM_GUEST_RUN    absolute path in the guest of the program run once
#                           booted (a transient unit outside the boot
#                           transaction; the guest powers off if it fails); it
#                           prints "VM<NAME> RESULT PASS|FAIL" on /dev/console
#                           and powers the guest off
#   UNLINKD_VM_GUEST_PACKAGES  Debian packages beyond the full guest's
#                           (comma-separated; a rootfs cached under its own key)
#   UNLINKD_VM_GUEST_TIMEOUT   seconds for its qemu run (default 7200)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [SOURCE_DIR]" >&2; exit 2; }
BUILD_DIR=$(realpath "$1")
SOURCE_DIR=$(realpath "${2:-$HERE/../..}")

CACHE=${UNLINKD_VM_CACHE:-/var/cache/unlinkd-vm}
STEPS=${UNLINKD_VM_STEPS:-fast full}
TEST_BIN=${UNLINKD_VM_TEST_BIN:-$BUILD_DIR/tests/integration/unlinkd-integration-tests}
DAEMON_BIN=${UNLINKD_VM_DAEMON_BIN:-$BUILD_DIR/daemon/unlinkd}
FAST_TIMEOUT=${UNLINKD_VM_FAST_TIMEOUT:-1200}   # s; one boot runs the suite in one mode: ~510 s seen under TCG on CI
FULL_TIMEOUT=${UNLINKD_VM_FULL_TIMEOUT:-1800}  # s; the service checks run per mode: 3-4 min each under TCG
TEST_FILTER=${UNLINKD_VM_TEST_FILTER:-~[multimode]~[dbus]}   # Catch2 test spec of the per-mode runs ([dbus] needs a dbus-daemon, which the busybox guest has not)
VM_MEM=${UNLINKD_VM_MEM:-2G}
VM_SMP=${UNLINKD_VM_SMP:-2}
SUITE=bookworm   # the host's and the rootfs's suite; its kernel boots the systemd guests
KERNEL_SUITES=${UNLINKD_VM_KERNELS:-bookworm trixie}
APT_MAX_AGE=${UNLINKD_VM_APT_MAX_AGE:-86400}
# Single-threaded TCG keeps one host CPU busy per guest (the guest's vCPUs
# take turns on that thread), so with two CPUs the second kernel's fast guest
# runs beside the rest instead of after it (the vm test runs alone in meson:
# is_parallel false).
PARALLEL=${UNLINKD_VM_PARALLEL:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}
# Every mode loads on Debian's stock kernels: the [multimode] run attaches
# them all, the full guest lists and runs each. The per-mode runs (the whole
# integration suite, ~510 s a mode under TCG on CI) are for the modes the
# host cannot run; the host runs the suite in tracepoint mode on every run.
ALL_MODES="fentry kprobe tracepoint"
MODES=${UNLINKD_VM_MODES:-fentry kprobe}
# Single-threaded TCG: with one host thread per vCPU (MTTCG) the stock
# kernel livelocked at do_unlinkat+0 while a trampoline was being patched
# (soft lockup in the fentry attach/detach storm test); see tests/vm/README.md.
VM_ACCEL=${UNLINKD_VM_ACCEL:-tcg,thread=single}

# Packages of the full guest. libbpf1 ... libsdbus-c++1 are the daemon's
# runtime libraries (a Debian package of unlinkd would pull them in); jq lets
# the guest check script parse the daemon's JSON lines; busybox gives tiny
# helpers. Changing this list (or ROOTFS_RECIPE_REV) rebuilds the cached rootfs.
ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,udev,kmod,libbpf1,libsystemd0,libspdlog1.10,libfmt9,libsdbus-c++1,libelf1,zlib1g,busybox,jq,bpftool,procps
ROOTFS_RECIPE_REV=1   # bump when customize_rootfs changes

# Modules the full guest's initramfs loads to mount its ext4 root on
# virtio-blk, in dependency order (Debian builds them as modules).
INITRD_MODULES="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev
  drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci drivers/block/virtio_blk
  lib/crc16 fs/mbcache fs/jbd2/jbd2 crypto/crc32c_generic fs/ext4/ext4"
# Module subtrees copied into the full guest so systemd/udev find what they
# autoload (autofs4, virtio rng, filesystems).
GUEST_MODULE_DIRS="fs lib crypto drivers/virtio drivers/block drivers/char/hw_random net/9p"

OUT=$BUILD_DIR/tests/vm          # logs live here (meson's build dir for tests/vm)
WORK=$OUT/work                   # per-run scratch, removed at the end unless UNLINKD_VM_KEEP=1
# fast-guest-SUITE-RUN.log: one per kernel and run
LOG_FULL=$OUT/full-guest.log
GUEST_NAME=${UNLINKD_VM_GUEST_NAME:-guest}
GUEST_MARKER=VM${GUEST_NAME^^}
LOG_GUEST=$OUT/$GUEST_NAME-guest.log
GUEST_TIMEOUT=${UNLINKD_VM_GUEST_TIMEOUT:-7200}
# With packages added, a rootfs of its own (cached under its own key), so
# the test suite's rootfs stays as it is.
GUEST_ROOTFS_PACKAGES=$ROOTFS_PACKAGES${UNLINKD_VM_GUEST_PACKAGES:+,$UNLINKD_VM_GUEST_PACKAGES}
TIMINGS=()

log() { echo "VMSUITE: $*"; }
die() { echo "VMSUITE ERROR: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

# Run one step in a subshell with errexit, record its wall time, propagate failure.
step() {
  local name=$1 t0 rc; shift
  t0=$(now_ms); log "=== step $name"
  set +e; ( set -e; "$@" ); rc=$?; set -e
  local secs; secs=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN{printf "%.1f", ms/1000}')
  TIMINGS+=("$name=${secs}s(rc=$rc)")
  echo "VMSUITE TIMING $name ${secs}s rc=$rc"
  return "$rc"
}

check_host() {
  [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mkfs ownership); run 'meson test --no-suite vm' otherwise"
  local missing=() c
  for c in qemu-system-x86_64 timeout busybox cpio debootstrap mkfs.ext4 depmod xz zstd file apt-get apt-cache dpkg-deb gzip ldd flock python3 meson; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  [ -x /bin/busybox ] && file -L /bin/busybox | grep -q 'statically linked' \
    || missing+=("busybox-static(/bin/busybox must be static)")
  [ ${#missing[@]} = 0 ] || die "missing host tools: ${missing[*]} (apt-get install qemu-system-x86 busybox-static cpio debootstrap e2fsprogs kmod xz-utils zstd file)"
  mkdir -p "$CACHE" "$OUT"
  rm -rf "$WORK"; mkdir -p "$WORK"
  rm -f "$OUT"/fast-guest-*.log   # an earlier run's logs would confuse the failure digest
}

# Serialize cache population between concurrent runs.
with_cache_lock() { ( flock 9; "$@" ) 9>"$CACHE/.lock"; }

# ---------------------------------------------------------------- kernel ---
# Debian's stock kernels have fentry (BTF + trampolines) and kprobes, unlike
# the CI host. We boot the *uncompressed* vmlinux through qemu's PVH entry
# point: under TCG that skips the slow in-guest decompression of vmlinuz
# (measured ~3 s per boot).

# apt for SUITE's packages, as an array APT_OPTS of -o options. The host's
# own suite: the host's apt as it is. Another suite: the host's Debian
# sources (the same mirrors, keyrings and apt.conf.d, so the same package
# registry) with the suite renamed, in a private sources dir, lists, cache
# and an empty dpkg status under $CACHE/apt/SUITE: the host's apt sources
# and state stay as they are. The lists are refreshed when older than
# APT_MAX_AGE, so a warm run needs no network; if the refresh fails, stale
# lists still name a kernel (likely the cached one).
apt_for_suite() {
  local suite=$1 d=$CACHE/apt/$1
  APT_OPTS=()
  [ "$suite" = "$SUITE" ] && return 0
  APT_OPTS=(-o "Dir::Etc::SourceList=$d/sources.list" -o "Dir::Etc::SourceParts=$d/sources.list.d"
            -o "Dir::State=$d/state" -o "Dir::State::status=$d/status" -o "Dir::Cache=$d/cache")
  local stamp=$d/state/updated
  if [ -f "$stamp" ] && [ $(( $(date +%s) - $(stat -c %Y "$stamp") )) -lt "$APT_MAX_AGE" ]; then
    return 0
  fi
  mkdir -p "$d/sources.list.d" "$d/state/lists/partial" "$d/cache/archives/partial"
  : > "$d/status"
  private_sources "$suite" "$d"
  log "apt-get update of the private $suite lists in $d"
  if apt-get "${APT_OPTS[@]}" update -q >"$d/update.log" 2>&1 && ! grep -q '^[WE]:' "$d/update.log"; then
    touch "$stamp"
  elif compgen -G "$d/state/lists/*_Packages*" >/dev/null; then
    log "WARNING: apt-get update of $suite failed (see $d/update.log); using the lists of $(stat -c %y "$stamp" 2>/dev/null || echo 'an earlier run')"
  else
    cat "$d/update.log" >&2; die "apt-get update of the private $suite lists failed"
  fi
}

# private_sources SUITE DIR: DIR/sources.list.d/debian.sources and
# DIR/sources.list hold the host's Debian entries (those whose suite is the
# host's, deb822 or one-line) with the suite renamed (bookworm-security
# becomes trixie-security); with UNLINKD_VM_MIRROR, that mirror's SUITE and
# SUITE-updates instead.
private_sources() {
  local suite=$1 d=$2 rename
  if [ -n "${UNLINKD_VM_MIRROR:-}" ]; then
    : > "$d/sources.list.d/debian.sources"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
      "$UNLINKD_VM_MIRROR" "$suite" "$UNLINKD_VM_MIRROR" "$suite-updates" > "$d/sources.list"
    return
  fi
  # awk: rename the host's suite in the fields from F on; K=1 once one was
  rename='function ren(f,  i, k) { k = 0; for (i = f; i <= NF; i++) if ($i == from || index($i, from "-") == 1) { $i = to substr($i, length(from) + 1); k = 1 } return k }'
  # deb822: keep the stanzas whose Suites: name the host's suite
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; echo; } \
    | awk -v from="$SUITE" -v to="$suite" "$rename"'
        function flush() { if (keep) printf "%s\n", st; st = ""; keep = 0 }
        /^[ \t]*$/ { flush(); next }
        /^#/ { next }
        $1 == "Suites:" { keep = ren(2) }
        { st = st $0 "\n" }
        END { flush() }' > "$d/sources.list.d/debian.sources"
  # one-line: keep the "deb" lines whose suite is the host's
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } \
    | awk -v from="$SUITE" -v to="$suite" "$rename"'
        $1 == "deb" && ren(2) { print }' > "$d/sources.list"
  [ -s "$d/sources.list.d/debian.sources" ] || [ -s "$d/sources.list" ] \
    || die "no Debian $SUITE entry in the host's apt sources to derive $suite's from (set UNLINKD_VM_MIRROR)"
}

# The versioned package linux-image-amd64 depends on in SUITE.
kernel_pkg() {
  apt-cache "${APT_OPTS[@]}" depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
}

# fetch_kernel SUITE: the cache's kernel/<package>_<version>/ (vmlinux,
# modules subset, config, kver), linked as kernel/SUITE.
fetch_kernel() {
  local suite=$1 kpkg kver_pkg dir; local -a APT_OPTS
  apt_for_suite "$suite"
  kpkg=$(kernel_pkg)
  [ -n "$kpkg" ] || die "apt-cache does not know $suite's linux-image-amd64 (for the host's own suite: run apt-get update)"
  kver_pkg=$(apt-cache "${APT_OPTS[@]}" show --no-all-versions "$kpkg" | awk '/^Version:/{print $2; exit}')
  dir=$CACHE/kernel/${kpkg}_${kver_pkg}
  if [ -f "$dir/.complete" ]; then
    log "kernel $kpkg $kver_pkg ($suite) cached in $dir"
  else
    log "downloading $kpkg $kver_pkg ($suite)"
    local tmp=$CACHE/kernel/.tmp.$$ kver k
    rm -rf "$tmp"; mkdir -p "$tmp"
    (cd "$tmp" && apt-get "${APT_OPTS[@]}" download -q "$kpkg=$kver_pkg" >/dev/null 2>"$tmp/apt.err") \
      || { cat "$tmp/apt.err" >&2; die "apt-get download $kpkg failed"; }
    dpkg-deb -x "$tmp"/*.deb "$tmp/root"
    kver=${kpkg#linux-image-}
    extract_vmlinux "$tmp/root/boot/vmlinuz-$kver" "$tmp/vmlinux"
    # keep only what the guests need, not the whole ~400 MB module tree;
    # Debian 13 ships them in /usr/lib/modules (merged /usr), as .ko.xz
    k=$tmp/root/lib/modules/$kver
    [ -d "$k" ] || k=$tmp/root/usr/lib/modules/$kver
    [ -d "$k" ] || die "$kpkg has no lib/modules/$kver"
    mkdir -p "$tmp/modules/lib/modules/$kver/kernel"
    for d in $GUEST_MODULE_DIRS; do
      mkdir -p "$tmp/modules/lib/modules/$kver/kernel/$d"
      cp -a "$k/kernel/$d/." "$tmp/modules/lib/modules/$kver/kernel/$d/"
    done
    cp "$k"/modules.{order,builtin,builtin.modinfo} "$tmp/modules/lib/modules/$kver/"
    depmod -b "$tmp/modules" "$kver"
    cp "$tmp/root/boot/config-$kver" "$tmp/config"
    echo "$kver" > "$tmp/kver"
    rm -rf "$tmp/root" "$tmp"/*.deb "$tmp/apt.err"
    touch "$tmp/.complete"
    rm -rf "$dir"; mv "$tmp" "$dir"
  fi
  ln -sfn "$dir" "$CACHE/kernel/$suite"
}

# vmlinuz is a bzImage whose payload is compressed: XZ in Debian 12
# (CONFIG_KERNEL_XZ), zstd in Debian 13 (CONFIG_KERNEL_ZSTD). As the
# kernel's scripts/extract-vmlinux does: find each magic and decompress from
# there until the result is the ELF vmlinux (the decompressor complains
# about the bytes after the payload; the output is complete by then).
extract_vmlinux() {
  local vmlinuz=$1 out=$2 pos magic tool
  for magic in '\xfd7zXZ\x00:xz' '\x28\xb5\x2f\xfd:zstd'; do
    tool=${magic##*:}; magic=${magic%:*}
    for pos in $(LC_ALL=C grep -obUaP "$magic" "$vmlinuz" | cut -d: -f1); do
      tail -c+$((pos + 1)) "$vmlinuz" | "$tool" -dc > "$out" 2>/dev/null || true
      file "$out" | grep -q ELF && return 0
    done
  done
  die "could not extract an ELF vmlinux from $vmlinuz"
}

# The cache dir of SUITE's kernel (default: the host's suite, the systemd
# guests' kernel).
kernel_dir() { readlink -f "$CACHE/kernel/${1:-$SUITE}"; }
# ------------------------------------------------------------------ qemu ---
# KVM is not usable on the CI machines (nested virtualization refuses the
# stock kernel), so this is plain TCG emulation: -cpu max gives the guest the
# features fentry's trampolines want. -no-reboot + panic=-1 turn a guest
# panic into a qemu exit; softlockup_panic=1 turns a CPU stuck in the kernel
# for 20 s (seen with a livelocked BPF attach loop) into a panic instead of
# a wait for the timeout; timeout catches the other hangs. Serial output is cleaned of
# CRs and terminal escapes, kept in a log and echoed to stdout (meson's
# test log).
qemu_run() { # KERNEL_DIR LOG TIMEOUT INITRD [extra qemu args...]; QEMU_APPEND: more kernel command line
  local kdir=$1 logf=$2 tmo=$3 initrd=$4 rc; shift 4
  set +e
  # --foreground keeps qemu in our process group, so a test runner that
  # kills the group on its own timeout also ends qemu.
  timeout --foreground --kill-after=10 "$tmo" qemu-system-x86_64 -accel "$VM_ACCEL" -cpu max -smp "$VM_SMP" -m "$VM_MEM" \
    -nographic -no-reboot -nic none \
    -kernel "$kdir/vmlinux" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 softlockup_panic=1 quiet ${QEMU_APPEND:-}" "$@" </dev/null 2>&1 \
    | tr -d '\r' | sed -u 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' | tee "$logf"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "VMSUITE ERROR: qemu timed out after ${tmo}s (log: $logf)" >&2; return 1
  elif [ "$rc" != 0 ]; then
    echo "VMSUITE ERROR: qemu exited with $rc (log: $logf)" >&2; return 1
  fi
}

# Write an initramfs (newc cpio, gzip -1: compression ratio does not matter,
# decompression time under TCG does).
pack_initramfs() { (cd "$1" && find . | cpio -o -H newc --quiet | gzip -1) > "$2"; }

# Copy an executable and every shared library ldd reports for it (including
# the dynamic loader at its PT_INTERP path) into an initramfs tree.
copy_with_libs() { # SRC DEST_IN_TREE TREE
  local src=$1 dst=$2 tree=$3 lib
  install -D -m755 "$src" "$tree$dst"
  if file -L "$src" | grep -q 'dynamically linked'; then
    ldd "$src" | grep -q 'not found' && { ldd "$src" >&2; die "$src: unresolved shared libraries"; }
    for lib in $(ldd "$src" | awk '/=>/{print $3} !/=>/ && $1 ~ /^\//{print $1}'); do
      [ -e "$tree$lib" ] || install -D -m755 "$(readlink -f "$lib")" "$tree$lib"
    done
  fi
}

# ------------------------------------------------------------ fast guest ---
# A binary at its expected path, else the only file of that name in the
# build dir (run by hand, without meson's UNLINKD_VM_*_BIN).
find_built() {
  local want=$1 found
  if [ -x "$want" ]; then echo "$want"; return; fi
  found=$(find "$BUILD_DIR" -name "$(basename "$want")" -type f -perm -u+x -not -path '*/tests/vm/*' 2>/dev/null)
  [ -n "$found" ] && [ "$(wc -l <<<"$found")" = 1 ] || die "built binary not found: $want (set UNLINKD_VM_TEST_BIN / UNLINKD_VM_DAEMON_BIN)"
  echo "$found"
}

# A busybox initramfs is the quickest way to run the test binaries on the
# stock kernel: ~3 s from qemu start to userspace under TCG.
build_fast_initramfs() {
  local t=$WORK/fast-root
  TEST_BIN=$(find_built "$TEST_BIN"); DAEMON_BIN=$(find_built "$DAEMON_BIN")
  log "test binary $TEST_BIN, daemon $DAEMON_BIN"
  rm -rf "$t"; mkdir -p "$t"/{bin,sbin,etc,proc,sys,dev,tmp,run,root}
  install -m755 /bin/busybox "$t/bin/busybox"
  copy_with_libs "$TEST_BIN" /bin/unlinkd-integration-tests "$t"
  copy_with_libs "$DAEMON_BIN" /bin/unlinkd "$t"
  # glibc (>= 2.34) has nss_files built in; tell it to use files only.
  # The tests drop to uid/gid 65534 for EACCES checks; adm is the default
  # reader group.
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$t/etc/passwd"
  printf 'root:x:0:\nadm:x:4:\nnogroup:x:65534:\n' > "$t/etc/group"
  printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' > "$t/etc/nsswitch.conf"
  install -m755 "$HERE/guest-fast-init.sh" "$t/init"
  echo "$ALL_MODES" > "$t/etc/vmsuite-modes"
  printf '%s\n' "$TEST_FILTER" > "$t/etc/vmsuite-filter"
  pack_initramfs "$t" "$WORK/fast-initrd.cpio.gz"
  log "fast initramfs: $(du -h "$WORK/fast-initrd.cpio.gz" | cut -f1) ($(find "$t" -type f | wc -l) files)"
}

# run_fast_guest SUITE RUN: boot the fast guest on SUITE's kernel for one
# run (a mode, or multimode); the initramfs is the same for all, the run is
# on the kernel command line. A boot is ~3 s, the tests are the cost, so one
# boot per run lets two workers share the runs evenly. The guest's markers
# name the kernel it booted (uname -r), so a log line says which kernel
# passed or failed, and a guest that booted another kernel fails.
run_fast_guest() {
  local suite=$1 run=$2 kdir kver logf rc=0 end
  kdir=$(kernel_dir "$suite"); kver=$(cat "$kdir/kver")
  logf=$OUT/fast-guest-$suite-$run.log
  [ -f "$WORK/fast-initrd.cpio.gz" ] || die "no fast initramfs (the fast-initramfs step runs first)"
  log "fast guest on $suite's kernel $kver, run $run (log: $logf)"
  QEMU_APPEND="vmsuite.runs=$run" qemu_run "$kdir" "$logf" "$FAST_TIMEOUT" "$WORK/fast-initrd.cpio.gz" || rc=1
  echo "----- fast guest summary, kernel $kver, run $run ($logf)"
  grep -E '^VMSUITE (BEGIN|END|RESULT|KERNEL)' "$logf" || true
  grep -q "^VMSUITE KERNEL $kver " "$logf" \
    || { echo "VMSUITE ERROR: the guest did not report kernel $kver: $(grep '^VMSUITE KERNEL' "$logf" || echo 'no KERNEL marker')" >&2; rc=1; }
  end=$(awk -v k="kernel=$kver" -v m="mode=$run" '$1 == "VMSUITE" && $2 == "END" && $3 == k && $4 == m' "$logf")
  if [[ $end != *" rc=0 "* ]]; then
    echo "VMSUITE ERROR: fast guest kernel=$kver mode=$run did not pass: ${end:-no END marker (hang, crash or panic?)}" >&2
    rc=1
  fi
  grep -q 'Kernel panic - not syncing' "$logf" && { echo "VMSUITE ERROR: guest kernel panic (kernel $kver)" >&2; rc=1; }
  grep -qx "VMSUITE RESULT kernel=$kver PASS" "$logf" || { echo "VMSUITE ERROR: no 'VMSUITE RESULT kernel=$kver PASS' in $logf" >&2; rc=1; }
  if [ $rc = 0 ]; then echo "VMSUITE FAST kernel=$kver run=$run PASS"; else echo "VMSUITE FAST kernel=$kver run=$run FAIL"; fi
  return $rc
}

# ---------------------------------------------------------------- rootfs ---
apt_mirror() {
  if [ -n "${UNLINKD_VM_MIRROR:-}" ]; then echo "$UNLINKD_VM_MIRROR"; return; fi
  local m
  m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}

rootfs_key() { echo "$SUITE ${1:-$ROOTFS_PACKAGES} rev$ROOTFS_RECIPE_REV" | sha256sum | cut -c1-16; }

# The cached rootfs is a plain tar of a debootstrapped tree: restoring it is
# ~1 s, needs no loop devices, and keeps ownership and device nodes.
# Arguments (the guest step's): the package list and the name of the link
# to the tar; by default the test suite's.
fetch_rootfs() {
  local packages=${1:-$ROOTFS_PACKAGES} link=${2:-current.tar} key tar tmp mirror
  key=$(rootfs_key "$packages"); tar=$CACHE/rootfs/rootfs-$SUITE-$key.tar
  if [ -f "$tar" ]; then log "rootfs cached: $tar"; ln -sfn "$tar" "$CACHE/rootfs/$link"; return; fi
  mirror=$(apt_mirror)
  log "debootstrap $SUITE from $mirror (packages: $packages)"
  tmp=$CACHE/rootfs/.tmp.$$; rm -rf "$tmp"; mkdir -p "$tmp"
  if ! debootstrap --variant=minbase --include="$packages" "$SUITE" "$tmp/tree" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
    tail -30 "$tmp/debootstrap.log" >&2; tail -30 "$tmp/tree/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap failed"
  fi
  customize_rootfs "$tmp/tree"
  tar -C "$tmp/tree" --numeric-owner -cf "$tmp/rootfs.tar" .
  mv "$tmp/rootfs.tar" "$tar"
  rm -rf "$tmp"
  ln -sfn "$tar" "$CACHE/rootfs/$link"
  log "rootfs: $(du -h "$tar" | cut -f1)"
}

# Things every run needs that do not depend on the build: no login prompts,
# passwordless root, the harness's units.
customize_rootfs() {
  local r=$1
  chroot "$r" apt-get clean
  rm -rf "$r"/usr/share/{doc,man,locale,info}/* "$r"/var/lib/apt/lists/*
  echo unlinkd-vm > "$r/etc/hostname"
  echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" > "$r/etc/fstab"
  chroot "$r" passwd -qd root
  ln -sf /dev/null "$r/etc/systemd/system/serial-getty@ttyS0.service"
  rm -f "$r/etc/systemd/system/getty.target.wants/getty@tty1.service"
}

# ------------------------------------------------------------ full guest ---
# Per run: unpack the cached rootfs into a staging tree, `meson install` the
# build into it (as a distribution package would), add kernel modules and the
# check script, and turn the tree into an ext4 image with mkfs.ext4 -d (no
# loop mount needed).
stage_full_rootfs() {
  local s=$WORK/full-root kdir kver
  kdir=$(kernel_dir); kver=$(cat "$kdir/kver")
  rm -rf "$s"; mkdir -p "$s"
  tar -C "$s" -xf "$CACHE/rootfs/current.tar"
  cp -a "$kdir/modules/lib/modules" "$s/lib/"

  # The Debian package, installed as on a real system (dpkg -i in a chroot:
  # the postinst enables unlinkd.service; deb-systemd-invoke does not start
  # it in a chroot, so it starts at the guest's boot). It is built from the
  # tree by packaging/build-deb.sh, again only when the tree changed
  # (tests/systemd uses the same one).
  local deb daemon=/usr/sbin/unlinkd
  deb=$(ls "$BUILD_DIR"/packaging/deb/unlinkd_*.deb 2>/dev/null | head -1)
  log "installing the package $deb into the guest tree (dpkg -i in a chroot)"
  cp "$deb" "$s/tmp/unlinkd.deb"
  chroot "$s" dpkg -i /tmp/unlinkd.deb >"$WORK/dpkg-install.log" 2>&1 \
    || { cat "$WORK/dpkg-install.log" >&2; die "dpkg -i of the package failed (a dependency missing from ROOTFS_PACKAGES?)"; }
  rm -f "$s/tmp/unlinkd.deb"
  [ -x "$s$daemon" ] || die "the package installed no $daemon"
  [ -L "$s/etc/systemd/system/multi-user.target.wants/unlinkd.service" ] \
    || die "the package's postinst did not enable unlinkd.service"
  log "package installed, daemon at $daemon, unlinkd.service enabled"
  # Fail here, loudly, if the guest lacks a runtime library of the build
  # (add its package to ROOTFS_PACKAGES).
  if chroot "$s" ldd "$daemon" | grep 'not found'; then
    die "guest rootfs lacks shared libraries of $daemon: add their Debian packages to ROOTFS_PACKAGES"
  fi

  # The check scripts and the library they source, in the layout of tests/
  # (each finds the others relative to itself).
  local f
  for f in vm/guest-full-checks.sh systemd/service-checks.sh; do
    install -D -m755 "$HERE/../$f" "$s/usr/local/lib/unlinkd-vm/$f"
  done
  install -D -m644 "$HERE/../lib/check.sh" "$s/usr/local/lib/unlinkd-vm/lib/check.sh"
  cat > "$s/etc/unlinkd-vm.env" <<EOF
UNLINKD_DAEMON=$daemon
UNLINKD_VM_MODES="$ALL_MODES"
UNLINKD_VM_SERVICE_MODES="$MODES"
EOF
  install_run_unit "$s" unlinkd-vm unlinkd-vm-checks /usr/local/lib/unlinkd-vm/vm/guest-full-checks.sh VMFULL
  echo "$kver" > "$s/etc/unlinkd-vm.kver"
  make_image "$s" 1024 "$WORK/full.img"
}

# make_image TREE FREE_MB IMAGE: an ext4 image of TREE with FREE_MB to spare
# (mkfs.ext4 -d: no loop mount needed); TREE is removed unless UNLINKD_VM_KEEP.
make_image() {
  local tree=$1 free_mb=$2 img=$3 size_mb
  size_mb=$(( $(du -sm "$tree" | cut -f1) + free_mb ))
  rm -f "$img"; truncate -s "${size_mb}M" "$img"
  mkfs.ext4 -q -F -L root -d "$tree" "$img"
  [ -n "${UNLINKD_VM_KEEP:-}" ] || rm -rf "$tree"
}

# Install path of a build target named $1, from meson's introspection data.

# install_run_unit ROOT UNIT TRANSIENT PROGRAM MARKER: once booted, the
# guest runs PROGRAM as the transient unit TRANSIENT, and powers off if it
# fails. PROGRAM must not run inside the boot transaction (waiting there for
# is-system-running deadlocks): the oneshot UNIT hands it to systemd-run
# --no-block. If boot falls into emergency/rescue mode, the console says so
# with MARKER and the guest powers off instead of waiting for the host timeout.
install_run_unit() {
  local r=$1 unit=$2 transient=$3 program=$4 marker=$5 u=$1/etc/systemd/system
  cat > "$u/$unit.service" <<EOF
[Unit]
Description=unlinkd VM suite: start ${program##*/} outside the boot transaction
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/bin/systemd-run --no-block --unit=$transient --collect \\
  --property=FailureAction=poweroff-force \\
  $program

[Install]
WantedBy=multi-user.target
EOF
  ln -sf "../$unit.service" "$u/multi-user.target.wants/$unit.service"
  install_boot_failure_units "$r" "$marker"
}

# Emergency or rescue mode during boot: say so with MARKER and power off.
install_boot_failure_units() { # ROOT MARKER
  local u=$1/etc/systemd/system t
  for t in emergency rescue; do
    mkdir -p "$u/$t.service.d"
    cat > "$u/$t.service.d/unlinkd-vm.conf" <<EOF
[Service]
ExecStart=
ExecStart=/bin/sh -c 'echo "$2 RESULT FAIL ($t mode reached during boot)" > /dev/console; systemctl status --failed --no-pager > /dev/console 2>&1; sync; /bin/systemctl poweroff -f'
EOF
  done
}

# busybox initramfs that loads virtio-blk + ext4, mounts /dev/vda and
# switch_roots into systemd.
build_full_initramfs() {
  local t=$WORK/full-initrd kdir kver m
  kdir=$(kernel_dir); kver=$(cat "$kdir/kver")
  rm -rf "$t"; mkdir -p "$t"/{bin,proc,sys,dev,newroot,lib/modules}
  install -m755 /bin/busybox "$t/bin/busybox"
  : > "$t/lib/modules/order"
  for m in $INITRD_MODULES; do
    cp "$kdir/modules/lib/modules/$kver/kernel/$m.ko" "$t/lib/modules/"
    basename "$m" >> "$t/lib/modules/order"
  done
  cat > "$t/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "INITRD: insmod $m failed"; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "VMFULL RESULT FAIL (initramfs could not mount /dev/vda)"; poweroff -f; }
umount /proc /sys; mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init "$@"
EOF
  chmod +x "$t/init"
  pack_initramfs "$t" "$WORK/full-initrd.cpio.gz"
}

# The Debian package the full guest installs (packaging/build-deb.sh:
# dpkg-buildpackage and lintian, again only when the tree changed).
build_package() {
  "$SOURCE_DIR/packaging/build-deb.sh" "$BUILD_DIR/packaging/deb" >"$OUT/build-deb.log" 2>&1 \
    || { tail -30 "$OUT/build-deb.log" >&2; die "packaging/build-deb.sh failed (log: $OUT/build-deb.log)"; }
  log "package: $(ls "$BUILD_DIR"/packaging/deb/unlinkd_*.deb)"
}

run_full_guest() {
  local rc=0 t0; t0=$(now_ms)
  stage_full_rootfs
  build_full_initramfs
  log "full guest image staged in $(( ($(now_ms) - t0) / 1000 ))s; booting"
  qemu_run "$(kernel_dir)" "$LOG_FULL" "$FULL_TIMEOUT" "$WORK/full-initrd.cpio.gz" \
    -drive "file=$WORK/full.img,if=virtio,format=raw,cache=unsafe" || rc=1
  echo "----- full guest summary ($LOG_FULL)"
  grep -E '^VMFULL (CHECK|RESULT|SKIP)' "$LOG_FULL" || true
  grep -q '^VMFULL CHECK FAIL' "$LOG_FULL" && rc=1
  grep -q 'Kernel panic - not syncing' "$LOG_FULL" && { echo "VMSUITE ERROR: guest kernel panic" >&2; rc=1; }
  grep -qx 'VMFULL RESULT PASS' "$LOG_FULL" || { echo "VMSUITE ERROR: no 'VMFULL RESULT PASS' in full guest log" >&2; rc=1; }
  [ -n "${UNLINKD_VM_KEEP:-}" ] || rm -f "$WORK/full.img"
  return $rc
}

# ----------------------------------------------------------------- guest ---
# A systemd guest for a caller (bench/run.sh --guest): the full guest's boot
# plumbing with the caller's contents. The caller's hook fills the tree; the
# suite adds the unit that runs UNLINKD_VM_GUEST_RUN once booted and the
# boot-failure units, makes the image and the initramfs, boots it and checks
# the result marker. The console is in LOG_GUEST for the caller to read.
stage_guest_rootfs() {
  local s=$WORK/$GUEST_NAME-root
  [ -x "${UNLINKD_VM_GUEST_STAGE:-}" ] || die "UNLINKD_VM_GUEST_STAGE must name an executable (the guest step's hook)"
  [[ ${UNLINKD_VM_GUEST_RUN:-} == /* ]] || die "UNLINKD_VM_GUEST_RUN must be an absolute path in the guest"
  rm -rf "$s"; mkdir -p "$s"
  tar -C "$s" -xf "$CACHE/rootfs/$GUEST_NAME.tar"
  cp -a "$(kernel_dir)/modules/lib/modules" "$s/lib/"
  log "$UNLINKD_VM_GUEST_STAGE $s $BUILD_DIR $SOURCE_DIR"
  "$UNLINKD_VM_GUEST_STAGE" "$s" "$BUILD_DIR" "$SOURCE_DIR" || die "$UNLINKD_VM_GUEST_STAGE failed"
  [ -x "$s$UNLINKD_VM_GUEST_RUN" ] || die "the hook installed no executable $UNLINKD_VM_GUEST_RUN"
  install_run_unit "$s" "unlinkd-$GUEST_NAME" "unlinkd-$GUEST_NAME-run" "$UNLINKD_VM_GUEST_RUN" "$GUEST_MARKER"
  make_image "$s" 2048 "$WORK/$GUEST_NAME.img"
}

run_guest() {
  local rc=0
  stage_guest_rootfs
  build_full_initramfs
  log "$GUEST_NAME guest staged; booting (timeout ${GUEST_TIMEOUT}s)"
  qemu_run "$(kernel_dir)" "$LOG_GUEST" "$GUEST_TIMEOUT" "$WORK/full-initrd.cpio.gz" \
    -drive "file=$WORK/$GUEST_NAME.img,if=virtio,format=raw,cache=unsafe" || rc=1
  grep -q 'Kernel panic - not syncing' "$LOG_GUEST" && { echo "VMSUITE ERROR: guest kernel panic" >&2; rc=1; }
  grep -qx "$GUEST_MARKER RESULT PASS" "$LOG_GUEST" || { echo "VMSUITE ERROR: no '$GUEST_MARKER RESULT PASS' in $LOG_GUEST" >&2; rc=1; }
  [ -n "${UNLINKD_VM_KEEP:-}" ] || rm -f "$WORK/$GUEST_NAME.img"
  return $rc
}

# -------------------------------------------------------------- schedule ---
# The test steps are independent jobs: "full" (package, rootfs, full guest:
# one chain, ~1200 s on CI) and one fast-guest boot per kernel and run
# ("fast:SUITE:RUN", ~510 s a mode, less for multimode). Two workers (one
# without UNLINKD_VM_PARALLEL) each take the next job of the list (given
# longest first), so the two host CPUs stay busy until the end: a static
# split by kernel left one CPU idle for ~25 min on CI. Each job's output
# goes to WORK/jobs/N.out; run_jobs prints them in list order afterwards.
run_job() { # JOB
  case $1 in
    full) step package build_package && step rootfs with_cache_lock fetch_rootfs && step full-guest run_full_guest ;;
    fast:*:*) local suite=${1#fast:} run=${1##*:}; suite=${suite%%:*}
              step "fast-guest-$(cat "$(kernel_dir "$suite")/kver")-$run" run_fast_guest "$suite" "$run" ;;
    *) die "unknown job $1" ;;
  esac
}

# worker N JOB...: run jobs from the shared list until it is empty
worker() {
  local w=$1 i rc q=$WORK/jobs; shift
  while :; do
    { flock 8; read -r i <"$q/next"; echo $((i + 1)) >"$q/next"; } 8>"$q/lock"
    [ "$i" -lt $# ] || return 0
    local job=${*:i+1:1}
    log "worker $w: job $i $job starts"
    rc=0; run_job "$job" >"$q/$i.out" 2>&1 || rc=$?
    echo "$rc" >"$q/$i.rc"
    log "worker $w: job $i $job ended rc=$rc"
  done
}

# run_jobs JOB...: returns non-zero if any job failed
run_jobs() {
  local q=$WORK/jobs workers=1 w i rc=0 pids=()
  [ "$PARALLEL" = 1 ] && workers=2
  mkdir -p "$q"; echo 0 >"$q/next"
  log "${#} jobs on $workers worker(s): $*"
  for ((w = 1; w <= workers; w++)); do worker "$w" "$@" & pids+=($!); done
  for w in "${pids[@]}"; do wait "$w" || rc=1; done
  for ((i = 0; i < $#; i++)); do
    echo "----- job $i ${*:i+1:1}, rc=$(cat "$q/$i.rc" 2>/dev/null || echo 'none (worker died)')"
    cat "$q/$i.out" 2>/dev/null || true
    [ "$(cat "$q/$i.rc" 2>/dev/null)" = 0 ] || rc=1
    while read -r name secs r; do TIMINGS+=("$name=$secs(${r})"); done \
      < <(awk '$1 == "VMSUITE" && $2 == "TIMING" {print $3, $4, $5}' "$q/$i.out" 2>/dev/null)
  done
  return $rc
}

# What failed, last in the output (a test runner may show only the tail):
# the suite's errors, the failed checks of the full guest, and the first
# Catch2 failures of each fast-guest log, capped.
print_failures() {
  local f
  echo "----- failures"
  grep -h -E '^VMSUITE ERROR|^VMSUITE FAST .* FAIL|^VMFULL CHECK FAIL|^VMFULL RESULT FAIL' "$WORK"/jobs/*.out 2>/dev/null | head -40 || true
  # A failed check's own output (eq's expected/got, a command's error)
  # comes just before its CHECK FAIL line on the guest's console.
  if grep -qs '^VMFULL CHECK FAIL' "$LOG_FULL"; then
    echo "--- failed checks with the lines before them in $LOG_FULL"
    grep -B6 '^VMFULL CHECK FAIL' "$LOG_FULL" | cut -c1-240 | head -60 || true
  fi
  for f in "$OUT"/fast-guest-*.log; do
    grep -qs 'FAILED:' "$f" || continue   # also when the glob matched nothing
    echo "--- first failures in $f"
    grep -B4 -A10 -m3 'FAILED:' "$f" | cut -c1-240 | head -45 || true
  done
  return 0
}

# ------------------------------------------------------------------ main ---
main() {
  local t0 rc=0 s
  t0=$(now_ms)
  check_host
  log "build dir $BUILD_DIR, source dir $SOURCE_DIR, cache $CACHE, steps: $STEPS"
  # before anything starts in the background
  for s in $STEPS; do
    case $s in fast|full|guest|kernel) ;; *) die "unknown step '$s' in UNLINKD_VM_STEPS" ;; esac
  done
  # The kernels the steps boot: the fast guest's, and the host suite's for
  # the systemd guests (full, guest); "kernel" alone fetches them all.
  local kernels=() k
  if [[ " $STEPS " == *" fast "* || " $STEPS " == *" kernel "* ]]; then
    [ -n "${KERNEL_SUITES// }" ] || die "UNLINKD_VM_KERNELS is empty"
    for k in $KERNEL_SUITES; do kernels+=("$k"); done
  fi
  if [[ " $STEPS " =~ \ (full|guest|kernel)\  ]] && [[ " ${kernels[*]} " != *" $SUITE "* ]]; then
    kernels+=("$SUITE")
  fi
  for k in "${kernels[@]}"; do
    step "kernel-$k" with_cache_lock fetch_kernel "$k" || rc=1
  done
  local jobs=() m
  if [ $rc = 0 ]; then
    if [[ " $STEPS " == *" fast "* ]]; then
      step fast-initramfs build_fast_initramfs || rc=1
    fi
    # longest first: the full guest's chain, the per-mode runs, multimode
    [[ " $STEPS " == *" full "* ]] && jobs+=(full)
    if [[ " $STEPS " == *" fast "* ]]; then
      for m in $MODES multimode; do
        for k in $KERNEL_SUITES; do jobs+=("fast:$k:$m"); done
      done
    fi
    if [ $rc = 0 ] && [ ${#jobs[@]} -gt 0 ]; then
      run_jobs "${jobs[@]}" || rc=1
    fi
    if [ $rc = 0 ] && [[ " $STEPS " == *" guest "* ]]; then
      step "$GUEST_NAME-rootfs" with_cache_lock fetch_rootfs "$GUEST_ROOTFS_PACKAGES" "$GUEST_NAME.tar" \
        && step "$GUEST_NAME-guest" run_guest || rc=1
    fi
  fi
  [ $rc = 0 ] || print_failures
  [ -n "${UNLINKD_VM_KEEP:-}" ] || rm -rf "$WORK"
  echo "VMSUITE TIMINGS ${TIMINGS[*]} total=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN{printf "%.1f", ms/1000}')s"
  if [ $rc = 0 ]; then echo "VMSUITE OVERALL PASS"; else echo "VMSUITE OVERALL FAIL (logs: $OUT)"; fi
  return $rc
}

main "$@"
