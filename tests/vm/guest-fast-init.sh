#!/bin/busybox sh
# /init of the fast guest (busybox initramfs built by run-vm-suite.sh).
# Runs the integration tests for each run the host names on the kernel
# command line (vmsuite.runs=fentry,kprobe,multimode: a mode is a per-mode
# run, multimode the [multimode] tests with every mode of /etc/vmsuite-modes)
# and reports on the serial console with markers the host greps; K is
# the running kernel (uname -r), since the host boots this guest on several:
#   VMSUITE KERNEL K ... / VMSUITE BEGIN kernel=K mode=M ...
#   VMSUITE END kernel=K mode=M rc=N ... / VMSUITE RESULT kernel=K PASS|FAIL
# Whatever happens, it ends with poweroff -f (PID 1 must never exit).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin HOME=/root TMPDIR=/tmp LANG=C

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# tracefs: libbpf resolves tracepoint ids there; bpffs: pinning;
# cgroup2: cgroup ids / unit names; tmpfs /tmp: the tests' scratch space.
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpffs /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
chmod 700 /root
hostname unlinkd-vm

up() { cut -d' ' -f1 /proc/uptime; }
K=$(uname -r)
echo
echo "VMSUITE KERNEL $K uptime=$(up)s cpus=$(nproc) mem=$(awk '/MemTotal/{print $2" kB"}' /proc/meminfo)"

MODES=$(cat /etc/vmsuite-modes)
fail=0

# run MODE_LABEL MODES_ENV [catch2 args...]
run() {
  label=$1 modes=$2; shift 2
  echo "VMSUITE BEGIN kernel=$K mode=$label uptime=$(up)s"
  # --use-colour no: the console is a tty, escapes would clutter the log.
  # -d yes: each test case's duration, to see where the guest's time goes.
  # -w NoTests: a filter that matches nothing must fail, not pass silently.
  UNLINKD_TEST_MODES=$modes UNLINKD_BIN=/bin/unlinkd \
    /bin/unlinkd-integration-tests --reporter console -s -d yes --use-colour no -w NoTests "$@" </dev/null 2>&1
  rc=$?
  # start the marker on a fresh line even if the output did not end with one
  echo
  echo "VMSUITE END kernel=$K mode=$label rc=$rc uptime=$(up)s"
  [ "$rc" = 0 ] || fail=$((fail + 1))
}

# Catch2 test spec of the per-mode runs; by default everything but the
# multi-mode tests, which run with every mode listed.
FILTER=$(cat /etc/vmsuite-filter)
RUNS=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^vmsuite\.runs=//p' | tr ',' ' ')
[ -n "$RUNS" ] || { echo "VMSUITE ERROR: no vmsuite.runs= on the kernel command line"; fail=1; }
for r in $RUNS; do
  case $r in
    multimode) run multimode "$(echo "$MODES" | tr ' ' ',')" "[multimode]" ;;
    *) run "$r" "$r" "$FILTER" ;;
  esac
done

if [ "$fail" = 0 ]; then echo "VMSUITE RESULT kernel=$K PASS"; else echo "VMSUITE RESULT kernel=$K FAIL ($fail runs failed)"; fi
sync
poweroff -f
