#!/bin/bash
# End-to-end test of the installed unlinkd.service with systemd as PID 1, on
# the host's own kernel: boots the host's /usr as a systemd-nspawn container
# (--volatile=yes: a tmpfs root, /usr read-only) with the build installed
# over it (`meson install --destdir`, laid over /usr and /etc as overlays),
# a real dbus-daemon (the host's dbus package, loading the installed policy
# from /usr/share/dbus-1/system.d) and a real journald, and runs
# service-checks.sh inside as a systemd unit.
#
# Usage (as root): nspawn-test.sh BUILD_DIR [SOURCE_DIR]
#
# Environment:
#   UNLINKD_E2E_MODE     attach mode (default tracepoint: the only one the CI
#                        host's kernel loads, see ../shared/notes)
#   UNLINKD_E2E_ISOLATE  1 (default): the daemon in the container counts only
#                        the check script's unit (a filter rule in its
#                        config), since the container shares the kernel with
#                        everything else on the host; 0: count everything
#   UNLINKD_E2E_TIMEOUT  base wait in seconds handed to service-checks.sh (60)
#   UNLINKD_E2E_KEEP=1   keep the staging dir (the installed tree)
#
# Logs: BUILD_DIR/tests/systemd/nspawn-out/ (service-checks.log, the
# container's console and journal, the BPF object ids the checks saw).
#
# Packages (Debian 12) beyond a build: systemd-container (systemd-nspawn),
# dbus (dbus.service for the container), jq, bpftool.
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

  # shellcheck disable=SC2054  # the commas are nspawn's
  local args=(-q -b -D / --volatile=yes --machine="$machine" --register=no --keep-unit
    --private-network --console=pipe
    # bpf() and perf_event_open() (tracepoints) are outside nspawn's default
    # seccomp filter; CAP_SYS_RAWIO lets the container's systemd mount
    # tracefs; CAP_BPF/CAP_PERFMON are the unit's CapabilityBoundingSet,
    # which can only keep what the container has.
    --system-call-filter='bpf perf_event_open' --capability=CAP_SYS_RAWIO,CAP_BPF,CAP_PERFMON
    # the installed build over the host's /usr (read-only)
    --overlay-ro="/usr:$stage/dest/usr:/usr"
    # a --volatile /etc is nearly empty: give it the alternatives (awk, ...)
    --bind-ro=/etc/alternatives
    # and the host's NSS configuration (nss-systemd): dbus-daemon looks up a
    # caller's uid and refuses one it cannot find, such as the dynamic user
    # of unlinkd-metrics@.service
    --bind-ro=/etc/nsswitch.conf
    --bind-ro="$stage/harness:/run/unlinkd-e2e/harness"
    --bind="$out:/run/unlinkd-e2e/out")
  # the installed /etc parts (the config), writable: the checks write the mode
  local d
  for d in "$stage"/dest/etc/*; do
    [ -d "$d" ] || { echo "nspawn-test: cannot lay $d over /etc (not a directory)" >&2; return 1; }
    mkdir -p "$stage/etc-upper/${d##*/}"
    args+=(--overlay="$d:$stage/etc-upper/${d##*/}:/etc/${d##*/}")
  done
  # arguments after the directory go to the container's systemd: units of
  # the host that fail in any container (no audit, no first-boot wizard)
  systemd-nspawn "${args[@]}" systemd.mask=auditd.service systemd.mask=systemd-firstboot.service \
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

  # The checks run as a unit of the container's systemd, as a user's shell
  # would (and so --isolate finds the unit it runs in); output through the
  # bound dir, followed live here.
  local opts=(--mode "$mode" --ids-file /run/unlinkd-e2e/out/bpf-ids)
  [ "$isolate" = 1 ] && opts+=(--isolate)
  : > "$out/service-checks.log"
  tail -n +1 -f "$out/service-checks.log" &
  local tailpid=$!
  timeout $((tmo * 8 + 120)) "${C[@]}" systemd-run --quiet --wait --collect --unit=unlinkd-e2e-checks \
    --property=StandardOutput=file:/run/unlinkd-e2e/out/service-checks.log --property=StandardError=inherit \
    --setenv=UNLINKD_E2E_TIMEOUT="$tmo" \
    /run/unlinkd-e2e/harness/systemd/service-checks.sh "${opts[@]}" || rc=$?
  sleep 0.2; kill "$tailpid" 2>/dev/null; wait "$tailpid" 2>/dev/null
  echo "INFO service-checks.sh exit status $rc"
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
for c in systemd-nspawn unshare nsenter bpftool jq perl dbus-daemon meson; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
[ -f /lib/systemd/system/dbus.service ] || missing+=("dbus.service (package dbus)")
[ -x /lib/systemd/systemd ] || missing+=("/lib/systemd/systemd (package systemd)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "nspawn-test: missing ${missing[*]}; apt-get install systemd-container dbus jq bpftool" >&2
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

# The build as a package would install it.
if ! DESTDIR="$STAGE/dest" meson install -C "$BUILD_DIR" --no-rebuild --quiet > "$OUT/meson-install.log" 2>&1; then
  cat "$OUT/meson-install.log"; check "meson install --destdir" false; finish
fi
echo "INFO installed: $(cd "$STAGE/dest" && find . -type f | sort | tr '\n' ' ')"
for f in usr/sbin/unlinkd usr/bin/unlinkctl usr/lib/systemd/system/unlinkd.service \
         usr/share/dbus-1/system.d/org.unlinkd.Unlinkd1.conf usr/share/dbus-1/system-services/org.unlinkd.Unlinkd1.service \
         etc/unlinkd/unlinkd.json; do
  check "the build installs /$f" test -f "$STAGE/dest/$f"
done
# service-checks.sh and the library it sources, in the layout of tests/
cp "$HERE/service-checks.sh" "$STAGE/harness/systemd/"
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
check "service-checks.sh in the container: RESULT PASS (exit $rc)" \
  bash -c "[ $rc = 0 ] && grep -q '^RESULT PASS' '$OUT/service-checks.log'"

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
