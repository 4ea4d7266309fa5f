#!/bin/bash
# The measurements of bench/run.sh, without setup: runs the interleaved
# overhead comparisons and the daemon figures, writes one JSON line per
# result to OUT/raw.jsonl. bench/run.sh runs it on the host (with a private
# journald), bench/run.sh --guest inside the qemu guest (with the guest's
# own journald). bench/report.py turns raw.jsonl into the tables and the
# chart.
#
#   driver.sh BIN_ROOT SOURCE_DIR OUT_DIR     (as root)
#
# BIN_ROOT holds daemon/unlinkd and bench/{storm,getppid_loop,top_latency}
# (a meson build dir). Knobs (environment):
#   BENCH_PAIRS           pairs per comparison (default 5)
#   BENCH_AUDITD_PAIRS    pairs for auditd, whose runs are ~20x longer (default: BENCH_PAIRS, at most 5)
#   BENCH_COUNT           deletes per storm (default 200000, over 2 threads)
#   BENCH_EXACT_COUNT     deletes of the exactness and mode-switch storms (1000000)
#   BENCH_GETPPID_CALLS   getppid calls per run (2000000)
#   BENCH_IDLE_SECONDS    idle window for wakeups (10)
#   BENCH_ATTACH_TIMEOUT  seconds a daemon or tracer may take to attach, and to
#                         stop before it is killed (120; bpftrace detaching
#                         kretprobes took over 30 s in the TCG guest)
#   BENCH_MODES           attach modes to measure (default: every mode --list-modes says loads)
#   BENCH_BPFTRACE_HOOKS  hooks for bpftrace (default: tracepoint, plus kprobe
#                         and fentry where the kernel and bpftrace allow them)
#   BENCH_SKIP            space-separated parts to skip: kstats pairs exact idle switch top
#   BENCH_KSTATS_ROUNDS   rounds of the in-BPF cost part (3)
#   BENCH_SWITCHES        SetAttachMode calls of the mode-switch part (6)
#   BENCH_VARIANTS        only these comparisons (names as in raw.jsonl), for debugging
set -Eeuo pipefail   # -E: the ERR trap below reports failures inside functions too
# wait_for, process_gone, the private bus: the tests' shared helpers
# shellcheck source-path=SCRIPTDIR source=../tests/lib/check.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../tests/lib/check.sh"
WAIT_FOR_INTERVAL=0.05   # attach times are measured through these waits

BIN_ROOT=$(realpath "$1"); SRC=$(realpath "$2"); OUT=$(realpath -m "$3")
UNLINKD=$BIN_ROOT/daemon/unlinkd
STORM=$BIN_ROOT/bench/storm
GETPPID=$BIN_ROOT/bench/getppid_loop
PAIRS=${BENCH_PAIRS:-5}
AUDITD_PAIRS=${BENCH_AUDITD_PAIRS:-$(( PAIRS < 5 ? PAIRS : 5 ))}
COUNT=${BENCH_COUNT:-200000}
EXACT_COUNT=${BENCH_EXACT_COUNT:-1000000}
GETPPID_CALLS=${BENCH_GETPPID_CALLS:-2000000}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-10}
ATTACH_TIMEOUT=${BENCH_ATTACH_TIMEOUT:-120}
SKIP=" ${BENCH_SKIP:-} "
THREADS=2
BUS_NAME=org.unlinkd.Unlinkd1
BUS_PATH=/org/unlinkd/Unlinkd1

for f in "$UNLINKD" "$STORM" "$GETPPID"; do
  [ -x "$f" ] || { echo "driver: $f is missing (build first)" >&2; exit 1; }
done
for c in jq busctl dbus-daemon; do
  command -v "$c" >/dev/null || { echo "driver: $c is missing (bench/run.sh installs it)" >&2; exit 1; }
done

mkdir -p "$OUT/logs"
RAW=$OUT/raw.jsonl
: > "$RAW"
T=$(mktemp -d /tmp/unlinkd-bench-XXXXXX)
# Every daemon of this run keeps its pins and saved state (mode, filters set
# over D-Bus) in private places: a daemon of the machine's (or a previous
# run's) must neither be adopted nor inherit a mode switched here.
export UNLINKD_PIN_DIR=/sys/fs/bpf/unlinkd-bench-$$
export STATE_DIRECTORY=$T/state
mkdir -p "$STATE_DIRECTORY"

log() { echo "bench: $(date +%H:%M:%S) $*" >&2; }
now_ns() { date +%s%N; }
emit() { echo "$1" >> "$RAW"; }   # one JSON object per line
# A JSON string from a shell string.
jstr() { jq -Rn --arg s "$1" '$s'; }

# ------------------------------------------------------------ cleanup ---
# Whatever happens (error, ctrl-c), nothing we started stays attached: a
# stray unlinkd or bpftrace keeps taxing every syscall of the machine, and an
# audit rule keeps auditing. Only the processes this script started are
# killed, by pid.
TR_PID=            # the tracer or daemon of the current run
TR_KIND=
BUS_PID=
AUDIT_SAVED=       # auditctl -s values to restore, while auditd is ours
AUDIT_RULE=(-a "always,exit" -F arch=b64 -S "unlink,unlinkat" -k unlinkd-bench)
BG_PIDS=()         # storms started in the background
BPF_STATS_SAVED=   # kernel.bpf_stats_enabled to restore, while part 6 runs

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  ! declare -F stop_tracer >/dev/null || stop_tracer || true
  stop_private_bus
  [ -z "$BPF_STATS_SAVED" ] || sysctl -qw kernel.bpf_stats_enabled="$BPF_STATS_SAVED" || true
  umount "$T/files" 2>/dev/null || true
  rm -rf "$T" "$UNLINKD_PIN_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
# set -e ends the run at the first failing command: say which.
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

# ------------------------------------------------------------- helpers ---
# utime+stime of a process (all its threads), in milliseconds.
cpu_ms() {
  local hz; hz=$(getconf CLK_TCK)
  awk -v hz="$hz" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz) }' "/proc/$1/stat" 2>/dev/null || echo 0
}
hwm_kib() { awk '/^VmHWM:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Context switches (voluntary + involuntary) of every thread of a process:
# each is a wakeup of a thread that had been sleeping or was preempted.
ctxt_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null \
    | awk '/^(voluntary|nonvoluntary)_ctxt_switches:/{n += $2} END{print n + 0}'
}

bus_get() { # PROPERTY -> the value
  busctl --address="$BUS" get-property "$BUS_NAME" "$BUS_PATH" "$BUS_NAME" "$1" | awk '{print $2}'
}
# The deletes and failures the daemon counted for one pid: "DELETES FAILURES"
# (GetProcesses: a(uuusttts), pid uid loginuid comm deletes failures last unit).
bus_process_counts() {
  busctl --address="$BUS" --json=short call "$BUS_NAME" "$BUS_PATH" "$BUS_NAME" GetProcesses \
    | jq -r --argjson pid "$1" '[.data[0][] | select(.[0] == $pid)] | if length == 0 then "0 0" else "\(.[0][4]) \(.[0][5])" end'
}

# The same for a storm's pid, its unlinks only: a storm also removes its
# THREADS directories at the end, and unlinkd counts those rmdirs as
# deletions of that pid (bpftrace's unlink hooks do not see them).
storm_counts() {
  local d f
  read -r d f < <(bus_process_counts "$1")
  echo "$(( d - THREADS )) $f"
}

new_files_dir() {
  umount "$T/files" 2>/dev/null || true
  mkdir -p "$T/files"
  # tmpfs: the storm measures the unlink path, not a disk. Remounted per run
  # so every run starts from an empty directory tree.
  mount -t tmpfs -o size=2g tmpfs "$T/files"
}

storm() { # OP COUNT [extra storm args...] -> storm's JSON line on stdout
  local op=$1 n=$2; shift 2
  new_files_dir
  "$STORM" "$T/files" --count "$n" --threads "$THREADS" --op "$op" "$@"
}
getppid_run() { "$GETPPID" --calls "$GETPPID_CALLS"; }

# ------------------------------------------------------------ services ---
# A private system-type dbus-daemon with the project's bus policy (the
# tests' helper): the daemon's D-Bus side runs against a real bus with real
# access rules, and the machine's own bus, if any, is left alone.
start_bus() { start_private_bus "$T/bus" "$SRC"; }

# ------------------------------------------------------- tracers: start ---
# Each start_* returns once the probes are attached, with TR_PID set, or
# fails (non-zero) with the reason in TR_ERROR.
TR_LOG=; TR_OUT=; TR_ERROR=; TR_ATTACH_MS=0; TR_CPU0=0; TR_KILLED=

COUNT_CONFIG=$T/count-only.json
DEFAULT_CONFIG=$T/defaults.json
CONFIG_SUPPORTED=unknown

# unlinkd in MODE and one of three configurations:
#   count    counting only: a config file turns journal, signals and the
#            recent-events buffer off (needs --config)
#   default  an empty config file (every key at its default, not the
#            machine's /etc/unlinkd/unlinkd.json): journal entries and Deleted
#            signals at their default rates to the real journald and the
#            private bus
#   stream   --foreground --json > /dev/null: every event formatted
start_unlinkd() { # MODE CONFIG [stdout target]
  local mode=$1 config=$2 stdout=${3:-/dev/null} t0
  local args=(--mode="$mode" --bus-address="$BUS")
  case $config in
    count)
      printf '{"mode": "%s", "max_journal_per_sec": 0, "max_signals_per_sec": 0, "recent_events": 0}\n' "$mode" > "$COUNT_CONFIG"
      args+=(--config="$COUNT_CONFIG") ;;
    default) ;;
    stream) args+=(--foreground --json) ;;
  esac
  if [ "$config" != count ] && [ "$CONFIG_SUPPORTED" = yes ]; then
    echo '{}' > "$DEFAULT_CONFIG"; args+=(--config="$DEFAULT_CONFIG")
  fi
  TR_KIND=unlinkd; TR_LOG=$T/unlinkd.log; TR_ERROR=
  : > "$TR_LOG"
  t0=$(now_ns)
  if [ "$stdout" = pipe-summary ]; then
    # Every event line goes through; only the summaries are kept.
    "$UNLINKD" "${args[@]}" > >(grep --line-buffered '^{"processes":.*"totals":' > "$T/summary.jsonl") 2>"$TR_LOG" &
  else
    "$UNLINKD" "${args[@]}" >"$stdout" 2>"$TR_LOG" &
  fi
  TR_PID=$!
  # Attached means the "attached in" line; on the bus means "owning".
  if ! wait_for "$ATTACH_TIMEOUT" unlinkd_ready || ! kill -0 "$TR_PID" 2>/dev/null; then
    TR_ERROR=$(grep -m1 -iE 'error|not supported|refused' "$TR_LOG" || tail -1 "$TR_LOG" || true)
    [ -n "$TR_ERROR" ] || TR_ERROR="no 'attached in' line within ${ATTACH_TIMEOUT}s"
    local rc=0
    if kill -0 "$TR_PID" 2>/dev/null; then stop_tracer; else wait "$TR_PID" || rc=$?; TR_PID=; fi
    TR_ERROR="$TR_ERROR (exit $rc)"
    return 1
  fi
  TR_ATTACH_MS=$(( ($(now_ns) - t0) / 1000000 ))
}
unlinkd_ready() {
  kill -0 "$TR_PID" 2>/dev/null || return 0   # exited: stop waiting, the caller checks
  grep -q "attached in" "$TR_LOG" && grep -q "owning" "$TR_LOG"
}

# bpftrace with the same hooks as unlinkd's MODE:
#   count     an in-kernel map of calls per (pid, failed), printed at exit
#   pidcount  `@[pid] = count()` on the entry: the bare count a user would
#             write, the reference of the in-BPF cost (part 6)
#   print     one line per deletion (pid, comm, name) to a file
bpftrace_script() { # KIND HOOK
  local kind=$1 hook=$2
  echo 'BEGIN { printf("ready\n"); }'   # BEGIN runs once every probe is attached
  case $kind:$hook in
    count:tracepoint) echo 'tracepoint:syscalls:sys_exit_unlink, tracepoint:syscalls:sys_exit_unlinkat { @n[pid, args->ret < 0] = count(); }' ;;
    count:kprobe) echo 'kretprobe:do_unlinkat { @n[pid, (int32)retval < 0] = count(); }' ;;
    count:fentry) echo "$FENTRY_RET:do_unlinkat { @n[pid, (int32)retval < 0] = count(); }" ;;
    pidcount:tracepoint) echo 'tracepoint:syscalls:sys_enter_unlink, tracepoint:syscalls:sys_enter_unlinkat { @[pid] = count(); }' ;;
    pidcount:kprobe) echo 'kprobe:do_unlinkat { @[pid] = count(); }' ;;
    pidcount:fentry) echo "$FENTRY:do_unlinkat { @[pid] = count(); }" ;;
    print:tracepoint) echo 'tracepoint:syscalls:sys_enter_unlink, tracepoint:syscalls:sys_enter_unlinkat { printf("%d %s %s\n", pid, comm, str(args->pathname)); }' ;;
    print:kprobe) echo 'kprobe:do_unlinkat { printf("%d %s %s\n", pid, comm, str(((struct filename *)arg1)->name)); }' ;;
    print:fentry) echo "$FENTRY:do_unlinkat { printf(\"%d %s %s\\n\", pid, comm, str(args->name->name)); }" ;;
  esac
}
start_bpftrace() { # KIND HOOK
  local kind=$1 hook=$2 t0
  bpftrace_script "$kind" "$hook" > "$T/probe.bt"
  TR_KIND=bpftrace; TR_LOG=$T/bpftrace.err; TR_OUT=$T/bpftrace.out; TR_ERROR=
  : > "$TR_LOG"; : > "$TR_OUT"
  t0=$(now_ns)
  # A background job of a non-interactive shell starts with SIGINT ignored,
  # and bpftrace prints its maps only on SIGINT (SIGTERM kills it silently):
  # give it back the default disposition, which bpftrace then handles.
  env --default-signal=INT bpftrace "$T/probe.bt" >"$TR_OUT" 2>"$TR_LOG" &
  TR_PID=$!
  if ! wait_for "$ATTACH_TIMEOUT" bpftrace_ready || ! kill -0 "$TR_PID" 2>/dev/null; then
    TR_ERROR=$(grep -v RLIMIT_MEMLOCK "$TR_LOG" | head -3 | tr '\n' ' ')
    stop_tracer
    return 1
  fi
  TR_ATTACH_MS=$(( ($(now_ns) - t0) / 1000000 ))
}
bpftrace_ready() { ! kill -0 "$TR_PID" 2>/dev/null || grep -q '^ready$' "$TR_OUT"; }

# auditd, started by hand (no systemd here), with the distribution's
# buffer settings (Debian's rules.d/audit.rules) and one syscall rule.
start_auditd() {
  local t0; t0=$(now_ns)
  TR_KIND=auditd; TR_LOG=$T/auditd.log; TR_ERROR=
  if [ "$(audit_status pid)" != 0 ]; then
    TR_ERROR="an auditd already runs (pid $(audit_status pid)); not touching it"
    return 1
  fi
  AUDIT_SAVED="$(audit_status enabled) $(audit_status backlog_limit) $(audit_status backlog_wait_time) $(audit_status failure)"
  auditd -n >"$TR_LOG" 2>&1 &
  TR_PID=$!
  if ! wait_for 30 auditd_ready; then
    TR_ERROR="auditd did not register with the kernel: $(tail -2 "$TR_LOG" | tr '\n' ' ')"
    stop_tracer; return 1
  fi
  auditctl -b 8192 >/dev/null
  auditctl --backlog_wait_time 60000 >/dev/null
  auditctl -f 1 >/dev/null
  auditctl "${AUDIT_RULE[@]}" >/dev/null
  auditctl -e 1 >/dev/null
  TR_ATTACH_MS=$(( ($(now_ns) - t0) / 1000000 ))
}
auditd_ready() { ! kill -0 "$TR_PID" 2>/dev/null || [ "$(audit_status pid)" = "$TR_PID" ]; }
audit_status() { auditctl -s | awk -v k="$1" '$1 == k {print $2}'; }

# -------------------------------------------------------- tracers: stop ---
stop_tracer() {
  [ -n "$TR_PID" ] || return 0
  if [ "$TR_KIND" = auditd ]; then
    # Rule first: auditing stops even if auditd does not.
    auditctl -d "${AUDIT_RULE[@]:1}" >/dev/null 2>&1 || true
    if [ -n "$AUDIT_SAVED" ]; then
      set -- $AUDIT_SAVED
      auditctl -e "$1" >/dev/null 2>&1 || true
      auditctl -b "$2" >/dev/null 2>&1 || true
      auditctl --backlog_wait_time "$3" >/dev/null 2>&1 || true
      auditctl -f "$4" >/dev/null 2>&1 || true
      AUDIT_SAVED=
    fi
  fi
  # unlinkd and auditd stop on SIGTERM, bpftrace prints its maps on SIGINT.
  local sig=TERM; [ "$TR_KIND" = bpftrace ] && sig=INT
  kill -s "$sig" "$TR_PID" 2>/dev/null || true
  TR_KILLED=
  if ! wait_for "$ATTACH_TIMEOUT" process_gone "$TR_PID"; then
    log "$TR_KIND (pid $TR_PID) did not stop in ${ATTACH_TIMEOUT} s; killing it"
    kill -KILL "$TR_PID" 2>/dev/null || true
    TR_KILLED=1
  fi
  wait "$TR_PID" 2>/dev/null || true
  TR_PID=
}

# ------------------------------------------------------- one comparison ---
# Variant names: unlinkd-MODE-CONFIG, bpftrace-KIND-HOOK, auditd.
start_variant() {
  local v=$1
  case $v in
    unlinkd-*) local rest=${v#unlinkd-}; start_unlinkd "${rest%-*}" "${rest##*-}" ;;
    bpftrace-*) local rest=${v#bpftrace-}; start_bpftrace "${rest%-*}" "${rest##*-}" ;;
    auditd) start_auditd ;;
  esac
}

# What the tracer saw of the storm, as a JSON object (read before stopping it
# for the daemon, after stopping it for bpftrace, which prints at exit).
probe_extra() { # VARIANT STORM_PID DELETES_BEFORE(LOST) ...
  local v=$1 pid=$2 lost0=$3 cpu1 hwm counted failed lost
  cpu1=$(cpu_ms "$TR_PID"); hwm=$(hwm_kib "$TR_PID")
  case $v in
    unlinkd-*)
      read -r counted failed < <(storm_counts "$pid")
      lost=$(( $(bus_get LostEvents) - lost0 ))
      stop_tracer ;;
    bpftrace-count-*)
      stop_tracer
      # the map line of the storm's successful calls: "@n[PID, 0]: N"
      counted=$(awk -v k="@n[$pid, 0]:" '($1 " " $2) == k {print $3}' "$TR_OUT"); counted=${counted:-0}
      # killed: it printed no map, which says nothing about its counting
      [ -z "$TR_KILLED" ] || counted=null
      lost=0 ;;
    bpftrace-print-*)
      stop_tracer
      counted=$(grep -c "^$pid " "$TR_OUT" || true)
      # bpftrace says "Lost N events" when its perf buffer overflowed
      lost=$(grep -hoiE '^lost [0-9]+' "$TR_OUT" "$TR_LOG" | awk '{s += $2} END{print s + 0}') ;;
    auditd)
      # Records the kernel could not queue for auditd; with backlog_wait_time
      # the syscall waits instead, so this stays 0 and the storm slows down.
      lost=$(( $(audit_status lost) - lost0 ))
      counted=null
      stop_tracer ;;
  esac
  printf '{"counted":%s,"lost":%s,"cpu_ms":%s,"hwm_kib":%s,"attach_ms":%s}' \
    "${counted:-null}" "${lost:-null}" "$(( cpu1 - TR_CPU0 ))" "${hwm:-0}" "$TR_ATTACH_MS"
}

lost_before() { # VARIANT -> the tracer's loss counter now
  case $1 in
    unlinkd-*) bus_get LostEvents ;;
    auditd) audit_status lost ;;
    *) echo 0 ;;
  esac
}

run_pair() { # ROUND VARIANT
  local round=$1 v=$2 base_storm base_pp probe_storm probe_pp lost0 pid extra others
  # BPF links of others attached right now (a shared machine): their cost is
  # in both runs of the pair; the report counts such pairs.
  others=$(bpftool link 2>/dev/null | grep -cE '^[0-9]+:' || true)
  # A: the baseline, right before B.
  base_storm=$(storm unlink "$COUNT"); base_pp=$(getppid_run)
  # B: the same with the tracer attached.
  if ! start_variant "$v"; then
    log "$v: could not attach: $TR_ERROR"
    emit "{\"type\":\"error\",\"variant\":\"$v\",\"round\":$round,\"error\":$(jstr "$TR_ERROR")}"
    return 1
  fi
  sleep 0.5   # let the start-up work (BTF parsing, journald connection) finish
  lost0=$(lost_before "$v"); TR_CPU0=$(cpu_ms "$TR_PID")
  probe_storm=$(storm unlink "$COUNT"); probe_pp=$(getppid_run)
  pid=$(jq -r .pid <<<"$probe_storm")
  extra=$(probe_extra "$v" "$pid" "$lost0")
  emit "{\"type\":\"pair\",\"variant\":\"$v\",\"round\":$round,\"foreign_bpf_links\":${others:-0},\"base\":{\"storm\":$base_storm,\"getppid\":$base_pp},\"probe\":{\"storm\":$probe_storm,\"getppid\":$probe_pp,\"tracer\":$extra}}"
  log "$v round $round: base $(jq .ns_per_unlink <<<"$base_storm") ns, probe $(jq .ns_per_unlink <<<"$probe_storm") ns, $extra"
}

# ---------------------------------------------------------------- setup ---
start_bus
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true

MODES_JSON=$("$UNLINKD" --list-modes --json 2>"$OUT/logs/list-modes.err") || { cat "$OUT/logs/list-modes.err" >&2; exit 1; }
if [ -n "${BENCH_MODES:-}" ]; then MODES=$BENCH_MODES
else MODES=$(jq -r '[.[] | select(.supported) | .mode] | join(" ")' <<<"$MODES_JSON"); fi
[ -n "$MODES" ] || { echo "driver: no attach mode loads here: $MODES_JSON" >&2; exit 1; }

# bpftrace 0.17 (Debian 12) spells fentry/fexit kfunc/kretfunc; newer ones
# accept fentry/fexit.
FENTRY=kfunc; FENTRY_RET=kretfunc
HOOKS=
if command -v bpftrace >/dev/null; then
  if [ -n "${BENCH_BPFTRACE_HOOKS:-}" ]; then HOOKS=$BENCH_BPFTRACE_HOOKS
  else
    HOOKS=tracepoint
    # The same hooks as unlinkd's other modes, where the kernel allows them
    # (unlinkd found out by loading them; bpftrace needs the same).
    for m in kprobe fentry; do
      jq -e --arg m "$m" '.[] | select(.mode == $m and .supported)' <<<"$MODES_JSON" >/dev/null && HOOKS="$HOOKS $m"
    done
  fi
fi

# Probes of others (a shared machine): their cost is in every baseline too,
# and a syscall tracepoint of theirs taxes getppid in the baseline as well.
FOREIGN_LINKS=$(bpftool link 2>/dev/null | grep -cE '^[0-9]+:' || true)
# (pgrep -a shows kernel threads such as kauditd as "[name]": not tracers)
FOREIGN_PROCS=$( { pgrep -a 'unlinkd|bpftrace|auditd' || true; } | { grep -v '^[0-9]* \[' || true; } | cut -c1-160 \
  | jq -Rsc 'split("\n") | map(select(length > 0))')
emit "$(jq -cn --arg kernel "$(uname -r)" --argjson cpus "$(nproc)" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg cpu_model "$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)" \
  --arg modes "$MODES" --arg hooks "$HOOKS" --argjson list_modes "$MODES_JSON" \
  --arg bpftrace "$(bpftrace --version 2>/dev/null || echo none)" --arg auditd "$(auditctl -v 2>/dev/null || echo none)" \
  --argjson pairs "$PAIRS" --argjson count "$COUNT" --argjson exact_count "$EXACT_COUNT" --argjson threads "$THREADS" \
  --argjson getppid_calls "$GETPPID_CALLS" --argjson auditd_pairs "$AUDITD_PAIRS" \
  --argjson foreign_links "${FOREIGN_LINKS:-0}" --argjson foreign_procs "$FOREIGN_PROCS" \
  '{type:"meta", kernel:$kernel, cpus:$cpus, cpu_model:$cpu_model, date:$date, modes:($modes|split(" ")),
    bpftrace_hooks:($hooks|split(" ")|map(select(. != ""))), list_modes:$list_modes, bpftrace:$bpftrace, auditd:$auditd,
    pairs:$pairs, auditd_pairs:$auditd_pairs, foreign_bpf_links:$foreign_links, foreign_processes:$foreign_procs, count:$count, exact_count:$exact_count, threads:$threads, getppid_calls:$getppid_calls}')"
log "modes: $MODES; bpftrace hooks: ${HOOKS:-none}; $PAIRS pairs of $COUNT deletes on $THREADS threads"

# Counting only needs --config; until the daemon takes it, say so once and
# leave those rows out instead of measuring something else under their name.
probe_config() {
  local m=${MODES%% *}
  if start_unlinkd "$m" count; then
    CONFIG_SUPPORTED=yes; stop_tracer
  else
    CONFIG_SUPPORTED=no
    log "counting-only rows skipped: unlinkd refused the config file: $TR_ERROR"
    emit "{\"type\":\"skipped\",\"what\":\"unlinkd counting only\",\"why\":$(jstr "unlinkd refused --config: $TR_ERROR")}"
  fi
}

VARIANTS=()
build_variants() {
  local m h
  for m in $MODES; do
    [ "$CONFIG_SUPPORTED" = yes ] && VARIANTS+=("unlinkd-$m-count")
    VARIANTS+=("unlinkd-$m-default" "unlinkd-$m-stream")
  done
  for h in $HOOKS; do VARIANTS+=("bpftrace-count-$h"); done
  for h in $HOOKS; do VARIANTS+=("bpftrace-print-$h"); done
  if command -v auditd >/dev/null && command -v auditctl >/dev/null; then VARIANTS+=(auditd)
  else emit '{"type":"skipped","what":"auditd","why":"auditd is not installed"}'; fi
  if [ -z "$HOOKS" ]; then emit '{"type":"skipped","what":"bpftrace","why":"bpftrace is not installed"}'; fi
  if [ -n "${BENCH_VARIANTS:-}" ]; then
    local keep=() v
    for v in "${VARIANTS[@]}"; do [[ " $BENCH_VARIANTS " == *" $v "* ]] && keep+=("$v"); done
    VARIANTS=("${keep[@]}")
  fi
}

# ---------------------------------------------------------------- parts ---
# 1. Interleaved pairs: round-robin over the comparisons, so a drift of the
# machine (another job starting) spreads over all of them.
part_pairs() {
  local r v
  declare -A broken=()
  for r in $(seq 1 "$PAIRS"); do
    for v in "${VARIANTS[@]}"; do
      [ -z "${broken[$v]:-}" ] || continue
      [ "$v" != auditd ] || [ "$r" -le "$AUDITD_PAIRS" ] || continue
      run_pair "$r" "$v" || broken[$v]=1
    done
  done
}

# 2. Exactness at EXACT_COUNT deletes on 2 threads, per mode:
#   default config: the storm's per-process count over D-Bus, lost events;
#     also failing unlinks and unlinkat with a dirfd;
#   every event streamed: the summary after SIGUSR1 gives events streamed and
#     lost; events/s delivered = events streamed / time until the daemon
#     printed the summary that follows them.
part_exact() {
  local m s pid counted failed lost0 lost t0 t1 op n
  for m in $MODES; do
    if ! start_unlinkd "$m" default; then log "exact $m: $TR_ERROR"; continue; fi
    for op in unlink unlinkat fail; do
      n=$EXACT_COUNT; [ "$op" = unlink ] || n=$COUNT
      lost0=$(bus_get LostEvents); TR_CPU0=$(cpu_ms "$TR_PID")
      s=$(storm "$op" "$n"); pid=$(jq .pid <<<"$s")
      read -r counted failed < <(storm_counts "$pid")
      lost=$(( $(bus_get LostEvents) - lost0 ))
      emit "{\"type\":\"exact\",\"mode\":\"$m\",\"config\":\"default\",\"op\":\"$op\",\"issued\":$n,\"deletes\":$counted,\"failures\":$failed,\"lost_events\":$lost,\"cpu_ms\":$(( $(cpu_ms "$TR_PID") - TR_CPU0 )),\"hwm_kib\":$(hwm_kib "$TR_PID"),\"storm\":$s}"
      log "exact $m default $op: issued $n, counted $counted deletes + $failed failures, lost events $lost"
    done
    stop_tracer

    if ! start_unlinkd "$m" stream pipe-summary; then log "exact $m stream: $TR_ERROR"; continue; fi
    : > "$T/summary.jsonl"
    TR_CPU0=$(cpu_ms "$TR_PID")
    t0=$(now_ns)
    s=$(storm unlink "$EXACT_COUNT"); pid=$(jq .pid <<<"$s")
    kill -USR1 "$TR_PID"
    wait_for 120 test -s "$T/summary.jsonl" || log "exact $m stream: no summary after SIGUSR1"
    t1=$(now_ns)
    # process.deletes below: the storm's unlinks only, as storm_counts.
    local summary; summary=$(head -1 "$T/summary.jsonl"); summary=${summary:-null}
    emit "{\"type\":\"exact\",\"mode\":\"$m\",\"config\":\"stream\",\"op\":\"unlink\",\"issued\":$EXACT_COUNT,\"delivery_s\":$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b - a) / 1e9}'),\"cpu_ms\":$(( $(cpu_ms "$TR_PID") - TR_CPU0 )),\"hwm_kib\":$(hwm_kib "$TR_PID"),\"storm\":$s,\"summary_pid\":$pid,\"summary\":$(jq -c --argjson pid "$pid" --argjson threads "$THREADS" '{totals, process: ([.processes[] | select(.pid == $pid)][0] | if . then .deletes -= $threads else . end)}' <<<"$summary" 2>/dev/null || echo null)}"
    log "exact $m stream: $(tail -1 "$RAW" | jq -c '{issued, delivery_s, totals: .summary.totals, process: .summary.process.deletes}')"
    stop_tracer
  done
}

# 3. Wakeups when idle: context switches of every daemon thread over
# IDLE_SECONDS with no deletions of ours (other work on the machine may
# still delete files and wake it: that is counted too).
part_idle() {
  local m c cfgs=default c0 c1
  [ "$CONFIG_SUPPORTED" = yes ] && cfgs="count default"
  for m in $MODES; do
    for c in $cfgs; do
      start_unlinkd "$m" "$c" || { log "idle $m $c: $TR_ERROR"; continue; }
      sleep 2
      c0=$(ctxt_switches "$TR_PID"); local d0; d0=$(bus_get TotalDeletes)
      sleep "$IDLE_SECONDS"
      c1=$(ctxt_switches "$TR_PID"); local d1; d1=$(bus_get TotalDeletes)
      emit "{\"type\":\"idle\",\"mode\":\"$m\",\"config\":\"$c\",\"seconds\":$IDLE_SECONDS,\"switches\":$((c1 - c0)),\"threads\":$(ls /proc/"$TR_PID"/task | wc -l),\"deletes_meanwhile\":$((d1 - d0)),\"hwm_kib\":$(hwm_kib "$TR_PID")}"
      log "idle $m $c: $((c1 - c0)) context switches in ${IDLE_SECONDS}s ($((d1 - d0)) deletions elsewhere meanwhile)"
      stop_tracer
    done
  done
}

# 4. Mode switches during a storm (only where two or more modes load):
# SetAttachMode round trips, timed by the caller, while storms of COUNT
# deletes run back to back (a switch under TCG takes seconds, longer than
# one storm), then every storm's count.
SWITCHES=${BENCH_SWITCHES:-6}
part_switch() {
  local modes i target ms t0 loop issued=0 counted_all=0 failed_all=0 counted failed pid
  read -r -a modes <<<"$MODES"
  if [ ${#modes[@]} -lt 2 ]; then
    emit "{\"type\":\"skipped\",\"what\":\"mode switch\",\"why\":\"only one attach mode loads on this kernel ($MODES)\"}"
    return 0
  fi
  start_unlinkd "${modes[0]}" default || { log "switch: $TR_ERROR"; return 0; }
  rm -f "$T/ready" "$T/stop-storms"; : > "$T/switch-storms.jsonl"
  # Storms until told to stop; each on a fresh tmpfs, each line its result.
  (
    while [ ! -e "$T/stop-storms" ]; do
      new_files_dir
      "$STORM" "$T/files" --count "$COUNT" --threads "$THREADS" --ready-file "$T/ready" >> "$T/switch-storms.jsonl"
    done
  ) &
  loop=$!; BG_PIDS+=("$loop")
  wait_for 600 test -e "$T/ready" || true
  local times=() current=${modes[0]}
  for i in $(seq 1 "$SWITCHES"); do
    # every mode in turn: fentry->kprobe->tracepoint->fentry...
    target=${modes[$(( i % ${#modes[@]} ))]}
    t0=$(now_ns)
    if busctl --address="$BUS" call "$BUS_NAME" "$BUS_PATH" "$BUS_NAME" SetAttachMode s "$target" >/dev/null 2>"$T/switch.err"; then
      ms=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN{printf "%.1f", (b - a) / 1e6}')
      times+=("{\"from\":\"$current\",\"to\":\"$target\",\"ms\":$ms}"); current=$target
      log "switch $current: $ms ms"
    else
      log "switch to $target failed: $(cat "$T/switch.err")"
    fi
    sleep 0.2
  done
  touch "$T/stop-storms"; wait "$loop" || true; BG_PIDS=()
  local storms; storms=$(wc -l < "$T/switch-storms.jsonl")
  while read -r line; do
    pid=$(jq .pid <<<"$line"); issued=$(( issued + $(jq .deletes <<<"$line") ))
    read -r counted failed < <(storm_counts "$pid")
    counted_all=$(( counted_all + counted )); failed_all=$(( failed_all + failed ))
  done < "$T/switch-storms.jsonl"
  emit "{\"type\":\"switch\",\"issued\":$issued,\"deletes\":$counted_all,\"failures\":$failed_all,\"storms\":$storms,\"switches\":[$(IFS=,; echo "${times[*]}")]}"
  log "switch: ${#times[@]} switches during $storms storms, counted $counted_all of $issued"
  stop_tracer
}

# 5. GetTopProcesses(10) with 10k tracked processes (its own bus and daemon).
part_top() {
  local r
  if r=$(bash "$SRC/bench/run-top-latency.sh" "$BIN_ROOT" 2>"$OUT/logs/top-latency.err" | tail -1) && [ -n "$r" ]; then
    emit "{\"type\":\"top\",\"result\":$r}"; log "top: $r"
  else
    emit "{\"type\":\"error\",\"variant\":\"top\",\"error\":$(jstr "$(tail -3 "$OUT/logs/top-latency.err")")}"
  fi
}

# 6. Inside BPF, the kernel's own figure (kernel.bpf_stats_enabled=1): per
# program, run_time_ns and run_cnt before and after a storm of COUNT unlinks,
# for unlinkd in each mode and configuration and for bpftrace on the same
# hooks, in interleaved rounds. The programs are the ones the tracer's
# process holds (bpftool here may lack the pids column); standbys that never
# ran add nothing. Steadier than the wall clock on a shared machine: only
# the time spent in our programs is counted.
KSTATS_ROUNDS=${BENCH_KSTATS_ROUNDS:-3}
kstats_prog_ids() { # PID -> the ids of the BPF programs it holds, one a line
  bpf_fds_of "$1" | awk '$1 == "prog" {print $2} $1 == "link" {print $3}' | sort -un
}
kstats_snapshot() { # IDS... -> {"ID": {name, ns, cnt}} of those programs
  bpftool prog show --json | jq -c --arg ids "$*" '($ids | split(" ") | map(tonumber)) as $want
    | map(select(.id as $i | $want | index($i))) | map({key: (.id | tostring), value: {name, ns: (.run_time_ns // 0), cnt: (.run_cnt // 0)}}) | from_entries'
}
part_kstats() {
  local r v m h ids before after s n
  BPF_STATS_SAVED=$(sysctl -n kernel.bpf_stats_enabled)
  sysctl -qw kernel.bpf_stats_enabled=1
  local kv=()
  for m in $MODES; do
    [ "$CONFIG_SUPPORTED" = yes ] && kv+=("unlinkd-$m-count")
    kv+=("unlinkd-$m-default" "unlinkd-$m-stream")
  done
  for h in $HOOKS; do kv+=("bpftrace-pidcount-$h" "bpftrace-count-$h"); done
  for r in $(seq 1 "$KSTATS_ROUNDS"); do
    for v in "${kv[@]}"; do
      if ! start_variant "$v"; then
        log "kstats $v: could not attach: $TR_ERROR"
        emit "{\"type\":\"error\",\"variant\":\"kstats-$v\",\"round\":$r,\"error\":$(jstr "$TR_ERROR")}"
        continue
      fi
      sleep 0.5
      ids=$(kstats_prog_ids "$TR_PID" | tr '\n' ' ')
      before=$(kstats_snapshot $ids)
      s=$(storm unlink "$COUNT"); n=$(jq .deletes <<<"$s")
      after=$(kstats_snapshot $ids)
      stop_tracer
      # per program that ran: its runs and ns per run; the total per deletion
      emit "$(jq -cn --arg v "$v" --argjson r "$r" --argjson n "$n" --argjson b "$before" --argjson a "$after" '
        [$a | to_entries[] | {name: .value.name, runs: (.value.cnt - ($b[.key].cnt // 0)), ns: (.value.ns - ($b[.key].ns // 0))}
         | select(.runs > 0) | . + {ns_per_run: (.ns / .runs | floor)}] as $p
        | {type: "kstats", variant: $v, round: $r, deletions: $n, programs: $p,
           ns_per_deletion: (if $n > 0 then (($p | map(.ns) | add // 0) / $n | floor) else null end)}')"
      log "kstats $v round $r: $(tail -1 "$RAW" | jq -c '{ns_per_deletion, programs: [.programs[] | "\(.name) \(.ns_per_run)"]}')"
    done
  done
  sysctl -qw kernel.bpf_stats_enabled="$BPF_STATS_SAVED"; BPF_STATS_SAVED=
}

probe_config
build_variants
log "comparisons: ${VARIANTS[*]}"
t_start=$(date +%s)
for part in kstats pairs exact idle switch top; do
  [[ "$SKIP" == *" $part "* ]] && continue
  t0=$(date +%s); log "=== $part"
  "part_$part"
  emit "{\"type\":\"timing\",\"part\":\"$part\",\"seconds\":$(( $(date +%s) - t0 ))}"
done
emit "{\"type\":\"timing\",\"part\":\"total\",\"seconds\":$(( $(date +%s) - t_start ))}"
log "done in $(( $(date +%s) - t_start )) s; results in $RAW"
