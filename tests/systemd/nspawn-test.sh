#!/bin/bash
# End-to-end test of the Debian package and its unlinkd.service with
# systemd as PID 1, on the host's own kernel: builds the package
# (packaging/build-deb.sh: dpkg-buildpackage, lintian), boots the host's
# root as a systemd-nspawn container (under an overlay: every change goes
# to a tmpfs, so apt and dpkg work and nothing reaches the host) with a real
# dbus-daemon and a real journald, and inside, as systemd units:
# package-checks.sh install (apt installs the .deb), service-checks.sh
# (everything a user does with the service), polkit-checks.sh (who may
# change state, with the real polkitd), desktop-checks.sh (the
# unlinkd-monitor package; an administrator's filter applied from the
# window after polkit asks for the password, under Xvfb),
# package-checks.sh remove (apt remove and purge leave nothing).
#
# Usage (as root): nspawn-test.sh BUILD_DIR [SOURCE_DIR]
#
# Environment:
#   UNLINKD_E2E_DEB      the package to test (unlinkd-monitor_*.deb is taken
#                        from the same directory); unset:
#                        BUILD_DIR/packaging/deb/, built there by
#                        packaging/build-deb.sh when the tree changed
#   UNLINKD_E2E_MODE     attach mode (default tracepoint: the only one the CI
#                        host's kernel loads, see ../shared/notes)
#   UNLINKD_E2E_ISOLATE  1 (default): the daemon in the container counts only
#                        the check script's unit (a filter rule in its
#                        config), since the container shares the kernel with
#                        everything else on the host; 0: count everything
#   UNLINKD_E2E_TIMEOUT  base wait in seconds handed to service-checks.sh (60)
#   UNLINKD_E2E_KEEP=1   keep the staging dir
#
# Logs: BUILD_DIR/tests/systemd/nspawn-out/ (package-checks-*.log,
# service-checks.log, the container's console and journal, the BPF object
# ids the checks saw); the package's build log and lintian's in
# BUILD_DIR/packaging/deb/.
#
# Packages (Debian 12) beyond a build: systemd-container (systemd-nspawn),
# dbus (dbus.service for the container), polkitd (polkit-checks.sh),
# libxml2-utils (xmllint), jq, bpftool, dpkg-dev, debhelper, lintian, scdoc,
# xvfb and xauth (xvfb-run), and Debian's /usr/bin/python3 (tty-agent.py).
#
# The container is always torn down, and afterwards the host is checked for
# leftovers: no process of the container, none of the BPF programs, links or
# maps the daemon held.
set -u

SELF=$(realpath "${BASH_SOURCE[0]}")
HERE=$(dirname "$SELF")
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$HERE/../lib/check.sh"

# -------------------------------------------------------- inner half ---
# Runs in a private mount namespace (unshare -m): boots the container, runs
# the checks, halts the container. Arguments: STAGE OUT MODE ISOLATE TIMEOUT.
inner() {
  local stage=$1 out=$2 mode=$3 isolate=$4 tmo=$5 np cp rc=0 machine=unlinkd-e2e-$$
  # nspawn keeps its runtime state under /run/systemd; a tmpfs there, seen
  # only in this namespace, keeps it apart from the host (no system manager
  # here, or a real one we must not disturb: --register=no --keep-unit).
  mkdir -p /run/systemd && mount -t tmpfs -o mode=755 tmpfs /run/systemd || return 1

  # The container's root: the host's root filesystem under an overlay whose
  # upper layer is a tmpfs, so apt and dpkg can install and nothing reaches
  # the host (nspawn's own --volatile=overlay refuses the host's root).
  local root=$stage/root
  mkdir -p "$stage/ovl" "$root"
  mount -t tmpfs -o mode=755 tmpfs "$stage/ovl" && mkdir -p "$stage/ovl/upper" "$stage/ovl/work" &&
    mount -t overlay overlay -o "lowerdir=/,upperdir=$stage/ovl/upper,workdir=$stage/ovl/work" "$root" || return 1

  # shellcheck disable=SC2054  # the commas are nspawn's
  local args=(-q -b -D "$root" --machine="$machine" --register=no --keep-unit
    --private-network --console=pipe
    # bpf() and perf_event_open() (tracepoints) are outside nspawn's default
    # seccomp filter; CAP_SYS_RAWIO lets the container's systemd mount
    # tracefs; CAP_BPF/CAP_PERFMON are the unit's CapabilityBoundingSet,
    # which can only keep what the container has.
    --system-call-filter='bpf perf_event_open' --capability=CAP_SYS_RAWIO,CAP_BPF,CAP_PERFMON
    --bind-ro="$stage/harness:/run/unlinkd-e2e/harness"
    --bind-ro="$stage/deb:/run/unlinkd-e2e/deb"
    --bind="$out:/run/unlinkd-e2e/out")
  # The root is the host's, /etc included: boot to basic.target (journald,
  # dbus) rather than whatever the host enables, and without timers (a
  # persistent apt-daily would take apt's lock).
  systemd-nspawn "${args[@]}" systemd.unit=basic.target systemd.mask=timers.target \
    systemd.mask=auditd.service systemd.mask=systemd-firstboot.service \
    > "$out/nspawn-console.log" 2>&1 &
  np=$!
  # shellcheck disable=SC2064
  trap "halt_container $np" EXIT
  trap 'exit 130' INT TERM   # so that the EXIT trap runs

  # the container's PID 1: nspawn's child once it runs systemd
  cp=
  container_runs_systemd() {
    cp=$(pgrep -P "$np" | head -1)
    if [ -n "$cp" ] && [ "$(cat "/proc/$cp/comm" 2>/dev/null)" = systemd ]; then return 0; fi
    cp=; return 1
  }
  wait_for 10 container_runs_systemd
  [ -n "$cp" ] || { echo "nspawn-test: the container did not start systemd:"; cat "$out/nspawn-console.log"; return 1; }
  readlink "/proc/$cp/ns/pid" > "$out/container-pidns"
  local C=(nsenter -t "$cp" -a)
  wait_for 10 test -S "/proc/$cp/root/run/systemd/private"
  echo "INFO container PID 1 is host pid $cp; boot state: $(timeout 120 "${C[@]}" systemctl is-system-running --wait 2>&1)"
  "${C[@]}" systemctl --failed --no-legend --no-pager | sed 's/^/INFO failed unit at boot: /'

  # The checks run as units of the container's systemd, as a user's shell
  # would (and so --isolate finds the unit it runs in); output through the
  # bound dir, followed live here.
  run_in_container() { # NAME LOG SCRIPT ARGS...
    local name=$1 log=$2 r=0; shift 2
    : > "$out/$log"
    tail -n +1 -f "$out/$log" &
    local tailpid=$!
    timeout $((tmo * 8 + 120)) "${C[@]}" systemd-run --quiet --wait --collect --unit="$name" \
      --property=StandardOutput=file:/run/unlinkd-e2e/out/"$log" --property=StandardError=inherit \
      --setenv=UNLINKD_E2E_TIMEOUT="$tmo" "$@" || r=$?
    sleep 0.2; kill "$tailpid" 2>/dev/null; wait "$tailpid" 2>/dev/null
    echo "INFO $log: exit status $r"
    return $r
  }
  local deb
  deb=$(cd "$stage/deb" && ls unlinkd_*.deb)
  run_in_container unlinkd-e2e-install package-checks-install.log \
    /run/unlinkd-e2e/harness/systemd/package-checks.sh install "/run/unlinkd-e2e/deb/$deb" || rc=$?
  if [ $rc = 0 ]; then
    local opts=(--mode "$mode" --ids-file /run/unlinkd-e2e/out/bpf-ids)
    [ "$isolate" = 1 ] && opts+=(--isolate)
    run_in_container unlinkd-e2e-checks service-checks.log \
      /run/unlinkd-e2e/harness/systemd/service-checks.sh "${opts[@]}" || rc=$?
    run_in_container unlinkd-e2e-polkit polkit-checks.log \
      /run/unlinkd-e2e/harness/systemd/polkit-checks.sh || rc=$?
    run_in_container unlinkd-e2e-desktop desktop-checks.log \
      /run/unlinkd-e2e/harness/systemd/desktop-checks.sh /run/unlinkd-e2e/deb || rc=$?
    run_in_container unlinkd-e2e-remove package-checks-remove.log \
      /run/unlinkd-e2e/harness/systemd/package-checks.sh remove || rc=$?
  fi
  "${C[@]}" journalctl -q --no-pager -o short-monotonic -b > "$out/container-journal.log" 2>&1
  return $rc
}

# Halt the container (nspawn turns SIGTERM into an orderly shutdown), and
# kill it if it does not go within 30 s.
halt_container() {
  local np=$1
  kill -0 "$np" 2>/dev/null || return 0
  kill -TERM "$np" 2>/dev/null
  if ! wait_for 30 process_gone "$np"; then
    echo "nspawn-test: the container did not halt within 30 s; killing it" >&2
    kill -KILL "$np" 2>/dev/null
  fi
  wait "$np" 2>/dev/null
}

if [ "${1:-}" = --inner ]; then
  shift
  inner "$@"
  exit $?
fi

# -------------------------------------------------------- outer half ---
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [SOURCE_DIR]" >&2; exit 2; }
BUILD_DIR=$(realpath "$1")
SOURCE_DIR=$(realpath "${2:-$HERE/../..}")
MODE=${UNLINKD_E2E_MODE:-tracepoint}
ISOLATE=${UNLINKD_E2E_ISOLATE:-1}
TMO=${UNLINKD_E2E_TIMEOUT:-60}
OUT=$BUILD_DIR/tests/systemd/nspawn-out
T0=$(date +%s%3N)

CHECK_WHAT="host: "
finish() {
  echo "INFO run time $(( ($(date +%s%3N) - T0) / 1000 )) s; logs in $OUT"
  if [ "$FAILS" = 0 ]; then echo "RESULT PASS"; exit 0; fi
  echo "RESULT FAIL ($FAILS failed)"; exit 1
}

[ "$(id -u)" = 0 ] || { echo "nspawn-test: must run as root (systemd-nspawn, BPF)" >&2; exit 1; }
missing=()
for c in systemd-nspawn unshare nsenter bpftool jq perl dbus-daemon dpkg-buildpackage lintian xmllint pkaction pkttyagent xvfb-run xauth; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
[ -f /lib/systemd/system/dbus.service ] || missing+=("dbus.service (package dbus)")
[ -x /lib/systemd/systemd ] || missing+=("/lib/systemd/systemd (package systemd)")
[ -x /usr/lib/polkit-1/polkitd ] || missing+=("polkitd (package polkitd)")
[ -x /usr/bin/python3 ] || missing+=("/usr/bin/python3 (package python3)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "nspawn-test: missing ${missing[*]}; run packaging/install-build-deps.sh" >&2
  exit 1
fi

STAGE=$(mktemp -d /var/tmp/unlinkd-nspawn.XXXXXX)
cleanup() {
  [ "${UNLINKD_E2E_KEEP:-0}" = 1 ] && { echo "INFO kept $STAGE"; return; }
  rm -rf "$STAGE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$OUT"; mkdir -p "$OUT" "$STAGE/harness/systemd" "$STAGE/harness/lib"

# The package, built as a packager would (packaging/build-deb.sh, lintian
# included; again only when a file of the tree changed), or the one given.
mkdir -p "$STAGE/deb"
if [ -z "${UNLINKD_E2E_DEB:-}" ]; then
  t=$(date +%s)
  "$SOURCE_DIR/packaging/build-deb.sh" "$BUILD_DIR/packaging/deb" > "$OUT/build-deb.log" 2>&1 ||
    { tail -30 "$OUT/build-deb.log"; check "packaging/build-deb.sh builds the package, lintian without error" false; finish; }
  echo "INFO packaging/build-deb.sh took $(( $(date +%s) - t )) s:"
  sed 's/^/    /' "$OUT/build-deb.log"
  UNLINKD_E2E_DEB=$(ls "$BUILD_DIR"/packaging/deb/unlinkd_*.deb)
fi
check "the package $UNLINKD_E2E_DEB is a Debian package named unlinkd" \
  eq "$(dpkg-deb -f "$UNLINKD_E2E_DEB" Package 2>&1)" unlinkd
# apt install ./FILE wants the name to end in .deb
cp "$UNLINKD_E2E_DEB" "$STAGE/deb/unlinkd_$(dpkg-deb -f "$UNLINKD_E2E_DEB" Version)_amd64.deb"
MONITOR_DEB=$(ls "$(dirname "$UNLINKD_E2E_DEB")"/unlinkd-monitor_*.deb 2>/dev/null | head -1)
check "the unlinkd-monitor package ${MONITOR_DEB:-(none beside $UNLINKD_E2E_DEB)} is a Debian package named unlinkd-monitor" \
  eq "$(dpkg-deb -f "${MONITOR_DEB:-/nonexistent}" Package 2>&1)" unlinkd-monitor
[ -n "$MONITOR_DEB" ] && cp "$MONITOR_DEB" "$STAGE/deb/unlinkd-monitor_$(dpkg-deb -f "$MONITOR_DEB" Version)_amd64.deb"
echo "INFO package: $(ls "$STAGE/deb")"
# service-checks.sh and the library it sources, in the layout of tests/
cp "$HERE/service-checks.sh" "$HERE/package-checks.sh" "$HERE/polkit-checks.sh" "$HERE/desktop-checks.sh" \
  "$HERE/tty-agent.py" "$STAGE/harness/systemd/"
cp "$HERE/../lib/check.sh" "$STAGE/harness/lib/"

# service-checks.sh recognises our BPF programs by name: every program of
# the source must match its pattern, or "nothing of ours left" means little.
prog_re=$(sed -n "s/^PROG_RE='\(.*\)'.*/\1/p" "$HERE/service-checks.sh")
src_progs=$(grep -A1 -E '^SEC\("(fentry|fexit|kprobe|kretprobe|tracepoint|tp|raw_tracepoint|tp_btf|lsm)/' "$SOURCE_DIR/bpf/unlinkd.bpf.c" |
            sed -n -E 's/^int (BPF_[A-Z_]+\()?([A-Za-z0-9_]+).*/\2/p')
unmatched=$(grep -v -E "$prog_re" <<<"$src_progs")
check "every program of bpf/unlinkd.bpf.c ($(echo $src_progs)) matches service-checks.sh's PROG_RE" \
  test -n "$src_progs" -a -n "$prog_re" -a -z "$unmatched"
echo "INFO host before: unlinkd processes: $(pgrep -a -x unlinkd | tr '\n' ';' || true)"

rc=0
unshare -m --propagation private "$SELF" --inner "$STAGE" "$OUT" "$MODE" "$ISOLATE" "$TMO" || rc=$?
for log in package-checks-install service-checks polkit-checks desktop-checks package-checks-remove; do
  check "$log.sh in the container: RESULT PASS" grep -q '^RESULT PASS' "$OUT/$log.log"
done
check "the checks in the container exit 0 (exit $rc)" eq "$rc" 0

# Leftovers on the host after the teardown.
pidns=$(cat "$OUT/container-pidns" 2>/dev/null)
left_procs() {
  local p
  [ -n "$pidns" ] || return 0
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$pidns" ] && echo "${p#/proc/} $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null | cut -c1-80)"
  done
}
check "the container is gone: no process left in its pid namespace ${pidns:-?}" \
  bash -c '[ -n "$1" ] && [ -z "$2" ] || { echo "    $2"; false; }' _ "$pidns" "$(left_procs)"
left_bpf=$(sort -u "$OUT/bpf-ids" 2>/dev/null | while read -r kind id; do
  [ -n "$kind" ] && bpftool "$kind" show id "$id" >/dev/null 2>&1 && echo "$kind $id"
done)
check "none of the $(sort -u "$OUT/bpf-ids" 2>/dev/null | grep -c .) BPF programs/links/maps the daemon held is left on the host" \
  bash -c '[ -s "$1" ] && [ -z "$2" ] || { echo "    left: $2"; false; }' _ "$OUT/bpf-ids" "$left_bpf"
echo "INFO host after: unlinkd processes: $(pgrep -a -x unlinkd | tr '\n' ';' || true)"
echo "INFO host after: programs named like ours (other users of this kernel included): $(bpftool prog show --json 2>/dev/null |
  jq -r --arg re "$prog_re" '[.[] | select(.name | test($re)) | "\(.id):\(.name)"] | join(" ")')"
finish
