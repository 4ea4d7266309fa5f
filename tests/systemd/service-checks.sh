#!/bin/bash
# End-to-end checks of the installed unlinkd.service, run INSIDE a booted
# systemd system as root: an nspawn container on the CI host
# (tests/systemd/nspawn-test.sh) or the full qemu guest of the VM suite
# (tests/vm/guest-full-checks.sh, once per attach mode).
#
# It does what a user does - systemctl, busctl, journalctl, unlinkctl - and
# asserts exact values:
#   start (READY only once the probes are attached and the bus name is
#   owned), status text, the installed bus policy in force, a known workload
#   seen exactly over D-Bus, in the journal and by unlinkctl, the metrics
#   socket and textfile units (the workload's unit count as their users see
#   it), reload /
#   restart / SIGKILL + automatic restart each in the middle of a deletion
#   storm with the storm's counts exact afterwards, the watchdog fed past
#   WatchdogSec, a stop that leaves no BPF program, link, map or pin of ours,
#   and D-Bus activation (then a clean stop again).
#
# Usage: service-checks.sh --mode MODE [--isolate] [--exclusive] [--ids-file FILE]
#   --mode MODE     attach mode written to /etc/unlinkd/unlinkd.json
#                   ({"mode": MODE}); the daemon must attach exactly that
#   --isolate       also write "filters": ["unit=<the unit this script runs
#                   in>"]: on a kernel shared with other work (a container)
#                   the daemon would otherwise see, count and journal every
#                   deletion of the machine, and its 200/s journal limit could
#                   drop the workload's entries. Exact totals become checkable.
#   --exclusive     nothing else on this kernel loads BPF programs named like
#                   ours (a VM guest): also require that no such program or
#                   link exists at all after the stop
#   --ids-file FILE append "prog|link|map ID" for every BPF object of ours
#                   seen, so the caller can check they are gone after teardown
# Environment: UNLINKD_E2E_TIMEOUT (s, default 60): base wait for things
# that take a moment (a restart, journal entries); scale it up under TCG.
# UNLINKD_E2E_STORM_AFTER (default 5000): deletions each storm must still
# make after the reload/restart/crash before it is stopped.
#
# Output: one "CHECK OK|FAIL <what>" line per check, "INFO ..." lines,
# indented detail lines, and last "RESULT PASS" or "RESULT FAIL (...)".
# Exit status 0 only on PASS.
set -u
# check, eq, matches, wait_for; next to this script in every copy of it
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/check.sh"

MODE='' ISOLATE=0 EXCLUSIVE=0 IDS_FILE=''
while [ $# -gt 0 ]; do
  case $1 in
    --mode) MODE=$2; shift 2 ;;
    --mode=*) MODE=${1#--mode=}; shift ;;
    --isolate) ISOLATE=1; shift ;;
    --exclusive) EXCLUSIVE=1; shift ;;
    --ids-file) IDS_FILE=$2; shift 2 ;;
    *) echo "usage: $0 --mode MODE [--isolate] [--exclusive] [--ids-file FILE]" >&2; exit 2 ;;
  esac
done
case $MODE in fentry|kprobe|tracepoint) ;; *) echo "$0: --mode fentry|kprobe|tracepoint required" >&2; exit 2 ;; esac

T=${UNLINKD_E2E_TIMEOUT:-60}
# deletions a storm goes on with after the reload/restart/crash (the VM,
# under TCG, deletes a hundred times slower than the host)
STORM_AFTER=${UNLINKD_E2E_STORM_AFTER:-5000}
UNIT=unlinkd.service
BUS_NAME=org.unlinkd.Unlinkd1
OBJ=/org/unlinkd/Unlinkd1
IFACE=org.unlinkd.Unlinkd1
CONFIG=/etc/unlinkd/unlinkd.json
MSGID_DELETION=1e7a225fb4ed478abe629f4b6b6823ec   # systemd/unlinkd.catalog
# Names of our BPF programs (bpf/unlinkd.bpf.c: fentry/fexit/kprobe/kretprobe
# on do_unlinkat and do_rmdir, tp_sys_enter/exit_unlink, _unlinkat, _rmdir).
# nspawn-test.sh checks that every SEC() program of the source matches this.
PROG_RE='^((fentry|fexit|kprobe|kretprobe)_do_(unlinkat|rmdir)|tp_sys_(enter|exit)_(unlink|unlinkat|rmdir))$'
WL_COMM=e2e-rm        # the workload: coreutils rm under this name (comm = executable's name)
STORM_PREFIX=e2e-st-  # the storms: perl named e2e-st-reload, -restart, -kill, running an embedded script
# Every process of the test has a comm of its own, so its GetProcesses row is
# found by name as well as by pid: a wrong count and a wrong pid (not
# translated into the daemon's pid namespace) are told apart.

CHECK_WHAT="mode=$MODE: "
T_START=$(date +%s)
say() { # INFO lines carry the seconds since the start
  if [[ $1 == INFO* ]]; then echo "INFO [+$(( $(date +%s) - T_START ))s]${1#INFO}"; else echo "$*"; fi
}
detail() { sed 's/^/    /'; }
now_usec() { date +%s%6N; }
jqtest() { jq -e "$@" >/dev/null; }   # a jq condition as a check (quietly)
prop() { systemctl show -P "$1" "$UNIT"; }

BUSCTL=(busctl --system --json=short)
dbus_prop() { "${BUSCTL[@]}" get-property "$BUS_NAME" "$OBJ" "$IFACE" "$1" | jq -c .data; }
get_processes() { "${BUSCTL[@]}" call "$BUS_NAME" "$OBJ" "$IFACE" GetProcesses; }
# The rows (pid uid loginuid comm deletes failures last_usec unit) of one comm, as a JSON array of arrays.
rows_of_comm() { get_processes | jq -c --arg c "$1" '[.data[0][] | select(.[3] == $c)]'; }
# PID of the bus name's owner, asked of the bus driver: unlike a call to the
# name itself this never triggers D-Bus activation.
bus_owner_pid() {
  "${BUSCTL[@]}" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
    GetConnectionUnixProcessID s "$BUS_NAME" 2>/dev/null | jq -r '.data[0]'
}

# ------------------------------------------------------------- setup ---
WORK=$(mktemp -d /tmp/unlinkd-e2e.XXXXXX) || exit 1
WORK=$(realpath "$WORK")     # the daemon reports resolved paths
mkdir -p "$WORK/bin" "$WORK/wl" "$WORK/storm"
CONFIG_BACKUP=
STORM_PIDS=()

cleanup() {
  local p
  for p in "${STORM_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  # leave the service stopped (nothing attached) and the installed config back
  systemctl stop "$UNIT" 2>/dev/null
  if [ -n "$CONFIG_BACKUP" ] && [ -f "$CONFIG_BACKUP" ]; then cp -p "$CONFIG_BACKUP" "$CONFIG"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

OWN_UNIT=$(sed -n 's|^0::.*/||p' /proc/self/cgroup)   # the unit this script runs in (cgroup v2 leaf)
say "INFO mode=$MODE kernel $(uname -r) $(systemctl --version | head -1 | cut -d' ' -f1,2) own unit '$OWN_UNIT' work dir $WORK"

if [ -f "$CONFIG" ]; then CONFIG_BACKUP=$WORK/unlinkd.json.orig; cp -p "$CONFIG" "$CONFIG_BACKUP"; fi
FILTERS_JSON='[]'
if [ "$ISOLATE" = 1 ]; then
  [[ $OWN_UNIT == *.service || $OWN_UNIT == *.scope ]] \
    || { say "CHECK FAIL mode=$MODE: --isolate needs to run in a systemd unit (cgroup leaf '$OWN_UNIT')"; say "RESULT FAIL"; exit 1; }
  FILTERS_JSON=$(jq -cn --arg u "unit=$OWN_UNIT" '[$u]')
fi

cp /usr/bin/rm "$WORK/bin/$WL_COMM"
# The audit login uid and session the workload inherits from this script.
# Without CONFIG_AUDIT there are neither: unlinkd reports them unset.
OWN_LOGINUID=$(cat /proc/self/loginuid 2>/dev/null || echo 4294967295)
OWN_SESSIONID=$(cat /proc/self/sessionid 2>/dev/null || echo 4294967295)
# MESSAGE names the login uid when it is set and is not the uid (0).
AUID_TEXT=
[ "$OWN_LOGINUID" != 4294967295 ] && [ "$OWN_LOGINUID" != 0 ] && AUID_TEXT=" auid=$OWN_LOGINUID"
for a in reload restart kill; do cp /usr/bin/perl "$WORK/bin/$STORM_PREFIX$a"; done
# The storm: ONE process deleting files until told to stop, counting exactly
# what it issued. Open-ended rather than fixed-size so that it surely spans
# the daemon's reload/restart/crash: it starts before, runs through it, and
# goes on until the new daemon has seen more deletions. Direct syscalls
# (x86_64 numbers; unlinkd builds for x86_64 only) because perl's unlink()
# lstat()s first as root and would never issue the failing calls.
# Odd iterations unlink(2) an absolute path, even ones unlinkat(2) a relative
# one; every 50th iteration also unlinkat()s a missing name (ENOENT, a
# failure). Progress (deletes so far) goes to a file every 512 iterations.
cat > "$WORK/storm.pl" <<'PERL'
use strict; use warnings;
my ($dir, $progress, $stop, $result) = @ARGV;
my ($SYS_unlink, $SYS_unlinkat, $AT_FDCWD) = (87, 263, -100);
chdir $dir or die "chdir $dir: $!";
my ($deletes, $failures, $unexpected, $i) = (0, 0, 0, 0);
sub put { my ($f, $s) = @_; open(my $h, '>', "$f.tmp") or die; print $h $s; close $h; rename("$f.tmp", $f) or die; }
while (1) {
    $i++;
    my $name = "s$i";
    open(my $fh, '>', $name) or die "create $name: $!"; close $fh;
    my $r;
    if ($i % 2) { my $p = "$dir/$name"; $r = syscall($SYS_unlink, $p); }
    else        { my $p = $name;        $r = syscall($SYS_unlinkat, $AT_FDCWD, $p, 0); }
    if ($r == 0) { $deletes++ } else { $unexpected++ }
    if ($i % 50 == 0) {
        my $p = "missing-$i";
        $r = syscall($SYS_unlinkat, $AT_FDCWD, $p, 0);
        if ($r == -1 && $!{ENOENT}) { $failures++ } else { $unexpected++ }
    }
    if ($i % 512 == 0) {
        put($progress, "$deletes\n");
        last if -e $stop;
        select(undef, undef, undef, 0.002);   # ~100-200k deletions/s at most: leave the daemon some CPU
    }
}
put($result, "{\"pid\":$$,\"deletes\":$deletes,\"failures\":$failures,\"unexpected\":$unexpected}\n");
PERL

# ---------------------------------------------------------- BPF objects ---
# Few processes and no per-object bpftool calls: under TCG (the VM suite)
# every fork costs, and bpftool even more.

# Every loaded program of the kernel, from one bpftool call: PNAME[id],
# PMAPS[id] (its map ids).
declare -A PNAME=() PMAPS=()
load_progs() {
  local id name maps
  PNAME=() PMAPS=()
  while read -r id name maps; do
    PNAME[$id]=$name PMAPS[$id]=$maps
  done < <(bpftool prog show --json 2>/dev/null | jq -r '.[] | "\(.id) \(.name // "-") \((.map_ids // []) | map(tostring) | join(" "))"')
}
is_our_prog() { [[ ${PNAME[$1]:-} =~ $PROG_RE ]]; }

# Ours: everything the daemon's main process holds, and what PID 1 holds in
# the unit's file descriptor store that belongs to our programs (PID 1 also
# holds systemd's own programs, e.g. sd_fw_* for IPAddressDeny=).
OURS=()
collect_ours() {
  local main kind id progid m
  local -A seen=()
  main=$(prop MainPID)
  load_progs
  while read -r kind id progid; do
    case $kind in
      prog) is_our_prog "$id" || continue; for m in ${PMAPS[$id]}; do seen["map $m"]=1; done ;;
      link) is_our_prog "$progid" || continue; seen["prog $progid"]=1; for m in ${PMAPS[$progid]}; do seen["map $m"]=1; done ;;
      *) continue ;;   # PID 1's maps count only when one of our programs uses them (above)
    esac
    seen["$kind $id"]=1
  done < <(bpf_fds_of 1)
  if [ "$main" != 0 ]; then
    while read -r kind id progid; do
      seen["$kind $id"]=1
      [ "$kind" = link ] && seen["prog $progid"]=1
    done < <(bpf_fds_of "$main")
  fi
  OURS=("${!seen[@]}")
  if [ -n "$IDS_FILE" ]; then printf '%s\n' "${OURS[@]}" >> "$IDS_FILE"; fi
}
ours_summary() {
  local k
  for k in prog link map; do
    printf '%s: %s; ' "${k}s" "$(printf '%s\n' "${OURS[@]}" | sed -n "s/^$k \([0-9]*\).*/\1/p" | sort -n | tr '\n' ' ')"
  done
}
# The objects of OURS that still exist (one bpftool call per kind). Without
# bpftool nothing could be seen to exist: say so instead of answering.
ours_still_there() {
  command -v bpftool >/dev/null || { echo "(bpftool missing)"; return; }
  local k o
  local -A exists=()
  for k in prog link map; do
    for o in $(bpftool "$k" show --json 2>/dev/null | jq -r '.[].id'); do exists["$k $o"]=1; done
  done
  for o in "${OURS[@]}"; do [ -n "${exists[$o]:-}" ] && echo "$o"; done
}
ours_gone() { [ -z "$(ours_still_there)" ]; }
# Every process of this system holding a program or link of ours ("PID kind id name").
holders_of_ours() {
  command -v bpftool >/dev/null || { echo "(bpftool missing: cannot name the programs)"; return; }
  local p kind id progid
  load_progs
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    while read -r kind id progid; do
      case $kind in
        prog) is_our_prog "$id" && echo "pid $p $(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-60): prog $id ${PNAME[$id]}" ;;
        link) is_our_prog "$progid" && echo "pid $p $(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-60): link $id -> prog $progid ${PNAME[$progid]}" ;;
      esac
    done < <(bpf_fds_of "$p")
  done
}
# Programs / links with our names anywhere on this kernel (only meaningful
# when nothing else runs unlinkd here: --exclusive).
global_ours() {
  command -v bpftool >/dev/null || { echo "(bpftool missing)"; return; }
  local id progid
  load_progs
  for id in "${!PNAME[@]}"; do is_our_prog "$id" && echo "prog $id ${PNAME[$id]}"; done
  while read -r id progid; do
    is_our_prog "$progid" && echo "link $id -> prog $progid ${PNAME[$progid]}"
  done < <(bpftool link show --json 2>/dev/null | jq -r '.[] | "\(.id) \(.prog_id)"')
}
pins_empty() { [ ! -e /sys/fs/bpf/unlinkd ] || [ -z "$(ls -A /sys/fs/bpf/unlinkd 2>/dev/null)" ]; }

# ----------------------------------------------------------- the checks ---
tools() {
  local c missing=()
  for c in systemctl busctl dbus-send journalctl unlinkctl jq bpftool setpriv perl; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  [ ${#missing[@]} = 0 ] || { echo "    missing: ${missing[*]}"; return 1; }
}

write_config() {
  # The installed file has comments; a user who sets the mode may as well
  # write just that (every key is optional).
  jq -n --arg m "$MODE" --argjson f "$FILTERS_JSON" \
    'if ($f | length) > 0 then {mode: $m, filters: $f} else {mode: $m} end' > "$CONFIG"
}

# Right after `systemctl start/restart` returned (Type=notify: READY=1 was
# received) the bus name must already be owned, by the main process, and the
# probes attached in the configured mode. No waiting here: that is the point.
check_ready_now() {
  local what=$1 main owner
  main=$(prop MainPID)
  owner=$(bus_owner_pid)
  check "$what: active at once" eq "$(prop ActiveState)/$(prop SubState)" active/running
  check "$what: $BUS_NAME owned by MainPID at once (READY=1 after the bus name)" eq "$owner" "$main"
  check "$what: AttachMode is $MODE at once (READY=1 after the probes)" eq "$(dbus_prop AttachMode 2>&1)" "\"$MODE\""
}

check_start() {
  local st
  # Start from a stopped service: a fresh system may have started it at boot
  # (preset: enabled) with the installed configuration.
  systemctl stop "$UNIT" 2>/dev/null
  systemctl reset-failed "$UNIT" 2>/dev/null
  check "$UNIT is inactive before the test" eq "$(prop ActiveState)" inactive
  write_config
  say "INFO $CONFIG: $(tr -d '\n' < "$CONFIG")"
  check "systemctl start unlinkd succeeds" timeout $((T * 3)) systemctl start "$UNIT"
  LAST_START=$(date +%s)
  check_ready_now "after start"
  check "systemctl is-active unlinkd prints active" eq "$(systemctl is-active "$UNIT")" active
  check "unit is Type=notify with WatchdogSec=30s and Restart=on-failure" \
    eq "$(prop Type) $(prop WatchdogUSec) $(prop Restart)" "notify 30s on-failure"
  st=$(systemctl status --no-pager --lines=0 "$UNIT" 2>&1)
  echo "$st" | detail
  check "systemctl status shows active (running)" matches "$st" 'Active: active \(running\)'
  check "systemctl status shows a status text naming mode $MODE" matches "$st" "Status: \"[^\"]*\\b$MODE\\b[^\"]*\""
  check "systemctl show -p StatusText names mode $MODE and counts" \
    matches "$(systemctl show -p StatusText "$UNIT")" "^StatusText=.*\\b$MODE\\b.*[0-9]"
  check "the installed bus policy is in force: uid 65534 may read, and its Reset reaches the daemon, which refuses it" \
    daemon_refuses_reset
}

daemon_refuses_reset() {
  local out
  # the default policy denies every method call: a read by uid 65534 shows
  # that the installed policy file was loaded
  setpriv --reuid=65534 --regid=65534 --clear-groups \
    dbus-send --system --print-reply --dest="$BUS_NAME" "$OBJ" "$IFACE.GetModeInfo" >/dev/null 2>&1 ||
    { echo "    GetModeInfo refused to uid 65534"; return 1; }
  # dbus-send, not busctl: busctl prints only "Access denied" for any
  # AccessDenied. dbus-send never allows interactive authorization: with
  # polkitd there, the action's default (auth_admin_keep) is a challenge
  # (InteractiveAuthorizationRequired); without it, AccessDenied. Never the
  # bus's "Rejected send message": the policy lets the call through.
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
        dbus-send --system --print-reply --dest="$BUS_NAME" "$OBJ" "$IFACE.Reset" 2>&1) && { echo "    Reset succeeded as uid 65534"; return 1; }
  echo "$out" | detail
  matches "$out" '^Error org\.freedesktop\.DBus\.Error\.(InteractiveAuthorizationRequired: polkit requires authentication|AccessDenied: only root may do this without polkit)'
}

# The workload: one process, coreutils rm named e2e-rm, deletes three files
# given by absolute and relative paths, and fails once (ENOENT).
check_workload() {
  local dir=$WORK/wl pid rc t0 t1 rows exp ents msg
  touch "$dir/abs-1" "$dir/rel-2" "$dir/rel-3"
  t0=$(now_usec)
  (cd "$dir" && exec "$WORK/bin/$WL_COMM" "$dir/abs-1" rel-2 ./rel-3 missing-4 2>/dev/null) &
  pid=$!
  wait "$pid"; rc=$?
  t1=$(now_usec)
  say "INFO workload: $WL_COMM pid $pid exit $rc (1: the missing file)"
  check "workload: rm deleted 3 files and failed on 1" eq "$rc $(ls -A "$dir" | wc -l)" "1 0"

  # Counts are in the kernel's maps the moment the calls returned: exact, no waiting.
  rows=$(rows_of_comm "$WL_COMM")
  echo "$rows" | detail
  check "GetProcesses: one row for comm $WL_COMM: uid 0, 3 deletes, 1 failure" \
    eq "$(jq -c '[.[] | [.[1], .[3], .[4], .[5]]]' <<<"$rows")" "[[0,\"$WL_COMM\",3,1]]"
  check "GetProcesses: its loginuid is the workload's (inherited from this script), $OWN_LOGINUID" \
    eq "$(jq -c '[.[] | .[2]]' <<<"$rows")" "[$OWN_LOGINUID]"
  check "GetProcesses: its pid is the workload's, $pid (pids as seen in the daemon's pid namespace)" \
    eq "$(jq -c '[.[] | .[0]]' <<<"$rows")" "[$pid]"
  check "GetProcesses: its last deletion time lies within the workload" \
    jqtest --argjson a "$t0" --argjson b "$t1" 'length == 1 and .[0][6] >= $a and .[0][6] <= $b' <<<"$rows"
  check "GetProcesses: its unit is the unit it ran in ($OWN_UNIT)" eq "$(jq -r '.[0][7]' <<<"$rows")" "$OWN_UNIT"

  # The journal, as a user asks it: journalctl -u unlinkd UNLINKD_COMM=e2e-rm.
  # Entries follow the kernel through the ring buffer: wait for 4, then give
  # a duplicate a moment to show up. Only entries received since the workload
  # started count (the VM runs this once per mode); not --after-cursor:
  # journalctl 252 combined with a match skips the first matching entry.
  jq_entries() {
    journalctl -q --no-pager -o json -u "$UNIT" UNLINKD_COMM="$WL_COMM" |
      jq -c --arg t0 "$t0" 'select((.__REALTIME_TIMESTAMP | tonumber) >= ($t0 | tonumber))'
  }
  journal_has() { [ "$(jq_entries | wc -l)" -ge "$1" ]; }
  wait_for "$T" journal_has 4
  sleep 1
  # The pid is checked on its own below: here it is masked ("PID").
  ents=$(jq_entries | jq -c '[.UNLINKD_COMM, .UNLINKD_UID, .UNLINKD_PATH, .UNLINKD_PATH_AS_GIVEN, .UNLINKD_RESULT,
                              .UNLINKD_MODE, .MESSAGE_ID, .PRIORITY, (.MESSAGE | sub("^(?<c>[^\\[]*)\\[[0-9]+\\]"; "\(.c)[PID]"))]' | sort)
  echo "$ents" | detail
  exp=$(for e in "abs-1 $dir/abs-1 0 deleted" "rel-2 rel-2 0 deleted" "rel-3 ./rel-3 0 deleted" "missing-4 missing-4 -2 failed"; do
          set -- $e
          msg="${WL_COMM}[PID] uid=0$AUID_TEXT deleted $dir/$1"
          [ "$4" = failed ] && msg="${WL_COMM}[PID] uid=0$AUID_TEXT failed to delete $dir/$1: ENOENT"
          jq -cn --arg c "$WL_COMM" --arg p "$dir/$1" --arg g "$2" --arg r "$3" --arg m "$MODE" \
                 --arg id "$MSGID_DELETION" --arg msg "$msg" '[$c, "0", $p, $g, $r, $m, $id, "6", $msg]'
        done | sort)
  check "journalctl -u unlinkd UNLINKD_COMM=$WL_COMM: exactly the 4 entries (paths, given paths, results, mode, MESSAGE_ID, PRIORITY, MESSAGE)" \
    eq "$ents" "$exp"
  check "journal: UNLINKD_PID and the pid in MESSAGE are the workload's, $pid, on those entries" \
    eq "$(jq_entries | jq -r '"\(.UNLINKD_PID) \(.MESSAGE | capture("\\[(?<p>[0-9]+)\\]").p)"' | sort -u | tr '\n' ';')" "$pid $pid;"
  check "journal: UNLINKD_UNIT of those entries is $OWN_UNIT" \
    eq "$(jq_entries | jq -r .UNLINKD_UNIT | sort -u | tr '\n' ' ')" "$OWN_UNIT "
  check "journal: UNLINKD_OP=unlink, UNLINKD_LOGINUID=$OWN_LOGINUID, UNLINKD_SESSIONID=$OWN_SESSIONID, UNLINKD_EXE=$WORK/bin/$WL_COMM on those entries" \
    eq "$(jq_entries | jq -c '[.UNLINKD_OP, .UNLINKD_LOGINUID, .UNLINKD_SESSIONID, .UNLINKD_EXE]' | sort -u | tr '\n' ' ')" \
       "[\"unlink\",\"$OWN_LOGINUID\",\"$OWN_SESSIONID\",\"$WORK/bin/$WL_COMM\"] "
  check "journal: UNLINKD_TID == UNLINKD_PID and UNLINKD_GID == 0 on those entries" \
    eq "$(jq_entries | jq -c '[.UNLINKD_TID == .UNLINKD_PID, .UNLINKD_GID]' | sort -u | tr '\n' ' ')" '[true,"0"] '

  # unlinkctl, as a user of the client sees it
  local st
  st=$(unlinkctl status --json 2>&1); rc=$?
  echo "$st" | detail
  check "unlinkctl status --json exits 0 with attach_mode $MODE, requested $MODE, filters $FILTERS_JSON" \
    eq "$rc $(jq -c '[.attach_mode, .requested_attach_mode, .filters]' <<<"$st" 2>&1)" "0 [\"$MODE\",\"$MODE\",$FILTERS_JSON]"
  check "unlinkctl status --json agrees with the D-Bus properties (mode, supported modes)" \
    eq "$(jq -c '[.attach_mode, .supported_attach_modes]' <<<"$st" 2>&1)" "[$(dbus_prop AttachMode),$(dbus_prop SupportedAttachModes)]"
  if [ "$ISOLATE" = 1 ]; then
    # only this unit's deletions count: the totals are exactly the workload's
    check "isolated by unit filter: TotalDeletes/TotalFailures are exactly the workload's 3/1" \
      eq "$(jq -c '[.total_deletes, .total_failures]' <<<"$st" 2>&1)" "[3,1]"
  fi
}

# The metrics endpoint as installed: unlinkd-metrics.socket starts one
# unlinkd-metrics@.service per connection, user unlinkd-metrics in group adm (the
# reader group), and the textfile alternative. Right after check_workload:
# with --isolate this unit's count is exactly the workload's 3.
http_get() { # PATH: the raw response of 127.0.0.1:9847 (bash's /dev/tcp: no curl needed)
  ( exec 3<>/dev/tcp/127.0.0.1/9847 && printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" >&3 && cat <&3 ) | tr -d '\r'
}
check_metrics() {
  local resp n prom=/var/lib/prometheus/node-exporter made_dir=
  # (Whether it is enabled depends on the presets: a first boot with no
  # preset files enables everything, as in the nspawn container.)
  check "metrics: unlinkd-metrics.socket starts" systemctl start unlinkd-metrics.socket
  check "metrics: the package made the service's user unlinkd-metrics (sysusers.d), outside adm" \
    eq "$(id -nG unlinkd-metrics 2>&1)" unlinkd-metrics
  resp=$(http_get /metrics)
  local fails_before=$FAILS
  check "metrics: GET /metrics through the socket: 200" eq "$(head -1 <<<"$resp")" "HTTP/1.1 200 OK"
  [ "$FAILS" = "$fails_before" ] || { tail -n 3 <<<"$resp"; journalctl -q --no-pager -u 'unlinkd-metrics@*' -n 10; } | detail
  check "metrics: unlinkd_attach_mode{mode=\"$MODE\"} 1" grep -qxF "unlinkd_attach_mode{mode=\"$MODE\"} 1" <<<"$resp"
  n=$(sed -n "s/^unlinkd_unit_deletes_total{unit=\"$OWN_UNIT\"} //p" <<<"$resp")
  if [ "$ISOLATE" = 1 ]; then
    check "metrics: the socket's service (group adm) sees this unit's 3 deletions" eq "$n" 3
  else
    check "metrics: the socket's service (group adm) sees this unit's deletions (3 or more)" test "${n:-0}" -ge 3
  fi
  check "metrics: GET /nothing: 404" eq "$(http_get /nothing | head -1)" "HTTP/1.1 404 Not Found"
  # Why the unit has SupplementaryGroups=adm: without it, no unit's count.
  resp=$(systemd-run -q --wait --pipe -p DynamicUser=yes -p User=unlinkd-metrics "$(command -v unlinkctl)" metrics 2>&1)
  check "metrics: the same user outside adm gets the totals but no count for this unit" \
    eq "$(grep -c '^unlinkd_deletes_total{op="unlink"}' <<<"$resp") $(grep -c "unit=\"$OWN_UNIT\"" <<<"$resp")" "1 0"
  systemctl stop unlinkd-metrics.socket
  [ -d "$prom" ] || { mkdir -p "$prom"; made_dir=1; }
  check "metrics: unlinkd-metrics-textfile.service succeeds" systemctl start unlinkd-metrics-textfile.service
  check "metrics: it wrote $prom/unlinkd.prom with this unit's count" \
    grep -q "^unlinkd_unit_deletes_total{unit=\"$OWN_UNIT\"} " "$prom/unlinkd.prom"
  [ -z "$made_dir" ] || rm -rf "$prom"
}

# storm_around ACTION: a storm runs before, through and after ACTION; its
# GetProcesses row must then hold exactly what it issued.
storm_around() {
  local action=$1 comm=$STORM_PREFIX$1 sdir=$WORK/storm/$1 pid main0 main1 nres0 nres1 p0 res rows kill_at _
  mkdir -p "$sdir/files"
  collect_ours   # before the storm: under TCG this takes a while
  "$WORK/bin/$comm" "$WORK/storm.pl" "$sdir/files" "$sdir/progress" "$sdir/stop" "$sdir/result" &
  pid=$!; STORM_PIDS+=("$pid")
  if ! wait_for "$T" test -s "$sdir/progress"; then
    check "$action: the storm runs" false; kill -KILL "$pid"; return
  fi
  main0=$(prop MainPID); nres0=$(prop NRestarts)
  say "INFO $action: storm pid $pid at $(cat "$sdir/progress") deletions; MainPID $main0; $(ours_summary)"
  case $action in
    reload)
      check "$action: systemctl reload unlinkd succeeds" timeout "$T" systemctl reload "$UNIT"
      # ExecReload only sends SIGHUP: give the daemon a moment to act on it
      sleep 0.5
      check "$action: same MainPID, still active" eq "$(prop MainPID) $(prop ActiveState)" "$main0 active"
      ;;
    restart)
      check "$action: systemctl restart unlinkd succeeds" timeout $((T * 3)) systemctl restart "$UNIT"
      LAST_START=$(date +%s)
      check_ready_now "$action"
      check "$action: new MainPID" test "$(prop MainPID)" != "$main0"
      ;;
    kill)
      kill_at=$(date +%s)
      check "$action: systemctl kill -s KILL unlinkd succeeds" systemctl kill -s KILL "$UNIT"
      # Restart=on-failure: systemd restarts it on its own after RestartSec
      restarted() { [ "$(prop NRestarts)" = $((nres0 + 1)) ] && [ "$(prop ActiveState)/$(prop SubState)" = active/running ]; }
      wait_for $((T * 3)) restarted
      LAST_START=$(date +%s)
      main1=$(prop MainPID); nres1=$(prop NRestarts)
      check "$action: restarted automatically once (NRestarts $nres0 -> $((nres0 + 1))), active, new MainPID" \
        eq "$nres1 $(prop ActiveState) $([ "$main1" != "$main0" ] && [ "$main1" != 0 ] && echo new-pid || echo "same-pid:$main1")" \
           "$((nres0 + 1)) active new-pid"
      check "$action: $BUS_NAME owned by the new MainPID" eq "$(bus_owner_pid)" "$main1"
      # The same build: no hand-over, which fentry to fentry would lose the
      # results of calls in flight.
      kept_attachment() {
        journalctl -q --no-pager -o cat -u "$UNIT" --since "@$kill_at" |
          grep -q "its $MODE attachment kept, the same programs as this build's; 0 of its attachments to hand over"
      }
      check "$action: the new process kept the killed one's $MODE attachment (it says so in the journal)" \
        wait_for 10 kept_attachment
      ;;
  esac
  # Let the storm go on until the daemon (new or reloaded) has seen more of
  # it, then stop it and compare.
  p0=$(cat "$sdir/progress")
  progressed() { [ "$(cat "$sdir/progress")" -ge $((p0 + STORM_AFTER)) ]; }
  wait_for "$T" progressed
  touch "$sdir/stop"
  wait_for "$T" process_gone "$pid"
  wait "$pid"
  res=$(cat "$sdir/result" 2>/dev/null)
  rows=$(rows_of_comm "$comm" 2>&1)
  say "INFO $action: storm $comm issued $res"
  echo "$rows" | detail
  check "$action: the storm issued only what it meant to (no unexpected results)" \
    jqtest --argjson n "$STORM_AFTER" '.unexpected == 0 and .deletes > $n' <<<"$res"
  check "$action: GetProcesses row of $comm: deletes/failures == issued (nothing lost or doubled across the $action)" \
    eq "$(jq -c '[.[] | [.[3], .[4], .[5]]]' <<<"$rows" 2>&1)" \
       "$(jq -c --arg c "$comm" '[[$c, .deletes, .failures]]' <<<"$res" 2>&1)"
  check "$action: its pid is the storm's, $pid" eq "$(jq -c '[.[] | .[0]]' <<<"$rows" 2>&1)" "[$pid]"
}

# systemctl stop: nothing of ours may stay attached, loaded or pinned.
check_stop() {
  local what=$1 left holders
  collect_ours
  say "INFO before $what: MainPID $(prop MainPID), fd store $(prop NFileDescriptorStore) fds; ours: $(ours_summary)"
  check "$what: we see our BPF programs and links while running" \
    bash -c "printf '%s\n' \"\$@\" | grep -q '^link ' && printf '%s\n' \"\$@\" | grep -q '^prog '" _ "${OURS[@]}"
  check "$what: systemctl stop unlinkd succeeds" timeout $((T * 2)) systemctl stop "$UNIT"
  check "$what: inactive (not failed) afterwards" eq "$(prop ActiveState)" inactive
  check "$what: the file descriptor store is empty" eq "$(prop NFileDescriptorStore)" 0
  # freeing is synchronous for most objects; allow the kernel a moment anyway
  wait_for 10 ours_gone
  left=$(ours_still_there)
  [ -z "$left" ] || echo "$left" | detail
  check "$what: none of our BPF programs, links, maps exists any more (bpftool ... show id)" test -z "$left"
  holders=$(holders_of_ours)
  [ -z "$holders" ] || echo "$holders" | detail
  check "$what: no process here holds a program or link of ours" test -z "$holders"
  check "$what: nothing pinned under /sys/fs/bpf/unlinkd" pins_empty
  if [ "$EXCLUSIVE" = 1 ]; then
    left=$(global_ours)
    [ -z "$left" ] || echo "$left" | detail
    check "$what: bpftool prog/link show lists no program or link named like ours" test -z "$left"
  fi
}

# D-Bus activation: a call to the name starts unlinkd.service.
check_activation() {
  local out
  out=$(timeout $((T * 3)) busctl --system call "$BUS_NAME" "$OBJ" "$IFACE" GetModeInfo 2>&1)
  check "D-Bus activation: a call to $BUS_NAME on a stopped system starts $UNIT and is answered" \
    eq "$(systemctl is-active "$UNIT") ${out%% *}" "active a(sbs)"
  check "D-Bus activation: the activated daemon attached mode $MODE" eq "$(dbus_prop AttachMode 2>&1)" "\"$MODE\""
}

# WatchdogSec= must be fed from the daemon's loop: the same main process
# stays up past the watchdog interval (systemd would kill it with SIGABRT
# and restart it otherwise). The storms take less than that, so wait here.
check_watchdog_fed() {
  local main nres wd until
  main=$(prop MainPID); nres=$(prop NRestarts); wd=$(prop WatchdogUSec)
  [[ $wd =~ ^([0-9]+)s$ ]] && wd=${BASH_REMATCH[1]} || wd=30
  until=$(( LAST_START + wd + 5 ))
  say "INFO watchdog: waiting until $((wd + 5)) s after the last (re)start of the main process ($(( until - $(date +%s) )) s from now)"
  while [ "$(date +%s)" -lt "$until" ] && [ "$(prop MainPID)" = "$main" ]; do sleep 1; done
  check "watchdog: MainPID $main still running $((wd + 5)) s after its start, no restart since (WATCHDOG=1 fed)" \
    eq "$(prop MainPID) $(prop NRestarts) $(prop ActiveState)" "$main $nres active"
}

check_no_watchdog_or_crash() {
  local bad
  bad=$(journalctl -q --no-pager -o cat -u "$UNIT" --since "@$START_SEC" |
        grep -iE 'watchdog timeout|core dump|dumped core|Failed with result' | grep -v "result 'signal'")
  [ -z "$bad" ] || echo "$bad" | detail
  check "no watchdog timeout, core dump or other failure in the unit's journal during the test" test -z "$bad"
}

# ---------------------------------------------------------------- main ---
START_SEC=$(date +%s) LAST_START=$(date +%s)   # journalctl --since: this run only (the VM runs once per mode)
check "tools present (systemctl busctl dbus-send journalctl unlinkctl jq bpftool setpriv perl)" tools
check "unlinkd.service is installed" systemctl cat "$UNIT" >/dev/null
check_start
if [ "$(prop ActiveState)" = active ]; then
  check_workload
  check_metrics
  for a in reload restart kill; do
    if [ "$(prop ActiveState)" = active ]; then storm_around "$a"; else check "$a: the service is active beforehand" false; fi
  done
  check_watchdog_fed
  check_no_watchdog_or_crash
  check_stop "stop"
  check_activation
  check_stop "stop after activation"
fi
if [ "$FAILS" -gt 0 ]; then
  say "INFO journal of $UNIT during the test (last 100 lines, deletion and not-logged entries left out):"
  journalctl -q --no-pager -u "$UNIT" --since "@$START_SEC" -o short-monotonic |
    grep -vE ' (deleted|failed to delete) /| deletions not logged ' | tail -100 | detail
fi
if [ "$FAILS" = 0 ]; then say "RESULT PASS ($CHECKS checks)"; exit 0; fi
say "RESULT FAIL ($FAILS of $CHECKS checks failed)"
exit 1
