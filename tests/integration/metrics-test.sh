#!/bin/bash
# Metrics and the shipped journal, with the real engines on loopback only:
# a private system-like bus, a private journald (this mount namespace's
# alone), the daemon on real BPF, Debian's Prometheus and promtool,
# systemd-socket-activate in the socket unit's place, and
# systemd-journal-upload to systemd-journal-remote.
#   metrics-test.sh UNLINKD_BIN UNLINKCTL_BIN SOURCE_DIR UNIT_BUILD_DIR     (as root)
# Checks: the units (systemd-analyze verify says nothing, security's
# exposure is 1.5 or less); for a known workload (7 unlinks and 3 rmdirs that succeed, one of
# each that fails, all by the comm ulk-metrics: rm and rmdir under that name):
#   `unlinkctl metrics`: exact samples per op, promtool check metrics passes,
#     no pid or path label; --output= writes the same text; as another uid
#     the units are empty, unless in the reader group (adm), as the socket's
#     service with DynamicUser=yes and SupplementaryGroups=adm;
#   the endpoint (systemd-socket-activate --accept --inetd, as
#     unlinkd-metrics.socket does): 200 with the text and its content type,
#     404, 405 and 400; the scrape latency (median of 50 GETs) is printed;
#   Prometheus scraping it every second: its query API returns
#     unlinkd_deletes_total 7 (unlink) and 3 (rmdir), and up == 1;
#   the journal: journal-upload sends the private journal to journal-remote,
#     and journalctl --file on what it received finds the 12 entries with
#     every UNLINKD_* field equal to the source journal's, and the known
#     values (path, op, result, comm, uid, exe).
set -euo pipefail
BIN=$(realpath "$1"); CTL=$(realpath "$2"); SRC=$(realpath "$3"); UNITS=$(realpath "$4")
if [ -z "${UNLINKD_METRICS_NS:-}" ]; then
  exec env UNLINKD_METRICS_NS=1 unshare --mount --propagation private "$0" "$@"
fi
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/check.sh"
require_tools prometheus promtool systemd-socket-activate curl jq /lib/systemd/systemd-journal-remote \
  /lib/systemd/systemd-journal-upload

T=$(mktemp -d /tmp/unlinkd-metrics-XXXXXX); mount -t tmpfs tmpfs "$T"; chmod 755 "$T"
export STATE_DIRECTORY=$T/state UNLINKD_PIN_DIR=/sys/fs/bpf/unlinkd-metrics-$$
ACT_PID= PROM_PID= REMOTE_PID=
cleanup() {
  stop_pid "$PROM_PID"; stop_pid "$ACT_PID"; stop_pid "$REMOTE_PID"
  daemon_stop || true
  stop_private_journald; stop_private_bus
  rm -rf "$UNLINKD_PIN_DIR"
  umount "$T"; rmdir "$T"
}
trap cleanup EXIT
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# Loopback ports nobody holds now (the kernel's choice).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- the units, offline: a template is verified as an instance of it
mkdir "$T/units"
cp "$UNITS/unlinkd-metrics@.service" "$T/units/"
cp "$UNITS/unlinkd-metrics@.service" "$T/units/unlinkd-metrics@0.service"
cp "$UNITS/unlinkd-metrics-textfile.service" "$SRC/systemd/unlinkd-metrics.socket" \
   "$SRC/systemd/unlinkd-metrics-textfile.timer" "$T/units/"
for u in unlinkd-metrics@0.service unlinkd-metrics.socket unlinkd-metrics-textfile.service unlinkd-metrics-textfile.timer; do
  check "systemd-analyze verify $u: no complaint" eq \
    "$(systemd-analyze verify --man=no "$T/units/$u" 2>&1 | grep -v "is not executable")" ""
done
for u in unlinkd-metrics@0.service unlinkd-metrics-textfile.service; do
  exposure=$(systemd-analyze security --offline=yes "$T/units/$u" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  check "$u: exposure $exposure, 1.5 or less" awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 1.5) }'
done
check "the socket is not enabled by installing it: [Install] only" grep -qx "WantedBy=sockets.target" "$T/units/unlinkd-metrics.socket"

start_private_bus "$T/bus" "$SRC"
start_private_journald RateLimitBurst=0
daemon_start "$T/daemon.err" "$BIN" --filter=comm=ulk-metrics --bus-address="$BUS"
daemon_wait_log 30 "$T/daemon.err" "attached in"
ctl() { "$CTL" --bus-address="$BUS" "$@"; }
wait_for 10 ctl status >/dev/null

# ---- the workload: coreutils rm and rmdir, both under the comm ulk-metrics
# (comm comes from the file name): rm's unlinkat(2) and rmdir's rmdir(2).
W=$T/work; mkdir "$W" "$T/rm" "$T/rmdir"
cp /usr/bin/rm "$T/rm/ulk-metrics"; cp /usr/bin/rmdir "$T/rmdir/ulk-metrics"
touch "$W"/f{1..7}; mkdir "$W"/d{1..3} "$W/full"; touch "$W/full/keep"
"$T/rm/ulk-metrics" "$W"/f{1..7}
"$T/rmdir/ulk-metrics" "$W"/d{1..3}
"$T/rm/ulk-metrics" "$W/missing" 2>/dev/null && exit 1
"$T/rmdir/ulk-metrics" "$W/full" 2>/dev/null && exit 1

# ---- unlinkctl metrics
ctl metrics > "$T/metrics.txt"
sample() { sed -n "s/^$1 //p" "$T/metrics.txt"; }
check "deletes, op unlink: 7" eq "$(sample 'unlinkd_deletes_total{op="unlink"}')" 7
check "deletes, op rmdir: 3" eq "$(sample 'unlinkd_deletes_total{op="rmdir"}')" 3
check "failures, op unlink: 1" eq "$(sample 'unlinkd_failures_total{op="unlink"}')" 1
check "failures, op rmdir: 1" eq "$(sample 'unlinkd_failures_total{op="rmdir"}')" 1
check "lost events, lost exits: 0" eq "$(sample unlinkd_lost_events_total) $(sample unlinkd_lost_exits_total)" "0 0"
check "one attach mode" matches "$(grep '^unlinkd_attach_mode{' "$T/metrics.txt")" '^unlinkd_attach_mode\{mode="(fentry|kprobe|tracepoint)"\} 1$'
check "build info: the daemon's version" eq "$(grep '^unlinkd_build_info{' "$T/metrics.txt")" \
  "unlinkd_build_info{version=\"$(ctl status --json | jq -r .version)\"} 1"
unit_sum=$(grep '^unlinkd_unit_deletes_total{' "$T/metrics.txt" | awk '{s += $2} END {print s}')
check "the units' deletes sum to the 10 deletions" eq "$unit_sum" 10
check "labels are op, mode, version and unit only" eq \
  "$(grep -v '^#' "$T/metrics.txt" | grep -o '[a-z_]*="' | sort -u | paste -sd' ')" 'mode=" op=" unit=" version="'
check "promtool check metrics: no complaint" eq "$(promtool check metrics < "$T/metrics.txt" 2>&1)" ""
# Another uid sees the totals but only its own processes, so no unit's
# count; the reader group sees them all (the socket's service: user
# unlinkd-metrics, SupplementaryGroups=adm).
# (nobody: dbus-daemon refuses a uid without a passwd entry.)
units_as() { setpriv --reuid=65534 --regid=65534 "$@" "$CTL" --bus-address="$BUS" metrics \
  | awk '/^unlinkd_unit_deletes_total/ {u += $2} /^unlinkd_deletes_total/ {d += $2} END {print d, u}'; }
check "as nobody: deletes 10, units 0" eq "$(units_as --clear-groups)" "10 0"
check "as nobody in adm: deletes 10, units 10" eq "$(units_as --groups="$(getent group adm | cut -d: -f3)")" "10 10"
ctl metrics --output="$T/textfile/unlinkd.prom" 2>/dev/null && exit 1  # no such directory: an error
mkdir "$T/textfile"
ctl metrics --output="$T/textfile/unlinkd.prom"
check "--output writes the same text" cmp "$T/textfile/unlinkd.prom" "$T/metrics.txt"
check "--output leaves no temporary file" eq "$(ls -A "$T/textfile")" unlinkd.prom
check "--output's file is readable by node_exporter" eq "$(stat -c %a "$T/textfile/unlinkd.prom")" 644

# ---- the endpoint, activated per connection as unlinkd-metrics.socket does
EP=$(free_port)
systemd-socket-activate --accept --inetd -l "127.0.0.1:$EP" \
  "$CTL" metrics --http --bus-address="$BUS" 2>"$T/activate.err" &
ACT_PID=$!
wait_for 10 listening "$EP"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check "GET /metrics: 200" eq "$(code "http://127.0.0.1:$EP/metrics")" 200
check "GET /metrics: the same text" eq "$(curl -s "http://127.0.0.1:$EP/metrics")" "$(cat "$T/metrics.txt")"
check "GET /metrics: the text format's content type" eq \
  "$(curl -s -o /dev/null -w '%{content_type}' "http://127.0.0.1:$EP/metrics")" "text/plain; version=0.0.4; charset=utf-8"
check "GET /other: 404" eq "$(code "http://127.0.0.1:$EP/other")" 404
check "POST /metrics: 405" eq "$(code -X POST "http://127.0.0.1:$EP/metrics")" 405
garbage() { python3 - "$EP" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"\x16\x03\x01 not http\r\n\r\n")
print(s.recv(64).split(b"\r\n")[0].decode())
PY
}
check "garbage: 400" eq "$(garbage)" "HTTP/1.1 400 Bad Request"
half_request() { python3 - "$EP" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /metr")
s.shutdown(socket.SHUT_WR)  # and nothing more: answered at once, not after the read timeout
print(s.recv(64).split(b"\r\n")[0].decode())
PY
}
check "a request cut short: 400" eq "$(half_request)" "HTTP/1.1 400 Bad Request"
latency=$(python3 - "$EP" <<'PY'
import http.client, statistics, sys, time
times = []
for _ in range(50):
    start = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
    c.request("GET", "/metrics")
    r = c.getresponse(); r.read(); c.close()
    assert r.status == 200
    times.append((time.perf_counter() - start) * 1000)
print("median %.1f ms, min %.1f, max %.1f (50 GETs)" % (statistics.median(times), min(times), max(times)))
PY
)
echo "scrape latency through socket activation: $latency"

# ---- a real Prometheus scraping it every second
PP=$(free_port)
cat > "$T/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: unlinkd
    static_configs: [{targets: ["127.0.0.1:$EP"]}]
EOF
promtool check config "$T/prometheus.yml" >/dev/null
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
  --web.listen-address="127.0.0.1:$PP" 2>"$T/prometheus.log" &
PROM_PID=$!
query() { curl -s "http://127.0.0.1:$PP/api/v1/query" --data-urlencode "query=$1"; }
scraped() { [ "$(query unlinkd_deletes_total | jq '.data.result | length' 2>/dev/null)" = 2 ]; }
wait_for 60 scraped || { echo "Prometheus did not scrape the endpoint:"; tail -20 "$T/prometheus.log"; }
check "Prometheus: unlinkd_deletes_total by op" eq \
  "$(query unlinkd_deletes_total | jq -c '[.data.result[] | [.metric.op, .value[1]]] | sort')" '[["rmdir","3"],["unlink","7"]]'
check "Prometheus: the scrape is up" eq "$(query 'up{job="unlinkd"}' | jq -r '.data.result[0].value[1]')" 1
check "Prometheus: the units sum to 10" eq "$(query 'sum(unlinkd_unit_deletes_total)' | jq -r '.data.result[0].value[1]')" 10
stop_pid "$PROM_PID"; PROM_PID=
stop_pid "$ACT_PID"; ACT_PID=

# ---- the journal, shipped: journal-upload -> journal-remote on loopback
entries() { journalctl -q -o cat UNLINKD_COMM=ulk-metrics | wc -l; }
twelve_entries() { [ "$(entries)" -ge 12 ]; }
wait_for 10 twelve_entries || true
journalctl -q -o json UNLINKD_COMM=ulk-metrics > "$T/source.json"
check "12 entries in the local journal" eq "$(wc -l < "$T/source.json")" 12
RP=$(free_port); mkdir "$T/remote"
/lib/systemd/systemd-journal-remote --listen-http="127.0.0.1:$RP" --split-mode=none \
  --output="$T/remote/received.journal" \
  2>"$T/remote.err" &
REMOTE_PID=$!
wait_for 10 listening "$RP"
# The private journald's files are in /run/log/journal/MACHINE_ID/.
check "journal-upload: sent the local journal" /lib/systemd/systemd-journal-upload \
  --url="http://127.0.0.1:$RP" --directory="$(echo /run/log/journal/*/)" --follow=no
stop_pid "$REMOTE_PID"; REMOTE_PID=   # journal-remote closes the file on SIGTERM
journalctl -q --file="$T/remote/received.journal" -o json UNLINKD_COMM=ulk-metrics > "$T/received.json"
check "journal-remote received the 12 entries" eq "$(wc -l < "$T/received.json")" 12
check "every UNLINKD_* field, exactly" python3 - "$T" "$W" <<'PY'
import errno, json, sys
t, w = sys.argv[1], sys.argv[2]
src = [json.loads(l) for l in open(t + "/source.json")]
got = [json.loads(l) for l in open(t + "/received.json")]
fields = ["UNLINKD_" + f for f in ("PID", "TID", "PPID", "UID", "GID", "COMM", "LOGINUID", "SESSIONID", "EXE",
                                   "PATH", "PATH_AS_GIVEN", "RESULT", "OP", "MODE", "UNIT")]
want = ([(w + "/f%d" % i, "unlink", "0") for i in range(1, 8)] + [(w + "/d%d" % i, "rmdir", "0") for i in range(1, 4)]
        + [(w + "/missing", "unlink", str(-errno.ENOENT)), (w + "/full", "rmdir", str(-errno.ENOTEMPTY))])
ok = len(got) == len(want) == len(src)
def mine(e):
    return {k: v for k, v in e.items() if k.startswith("UNLINKD_")}
for s, g, (path, op, result) in zip(src, got, want):
    checks = {
        "every field": all(f in g for f in fields),
        "the same UNLINKD_* fields as the source": mine(g) == mine(s),
        "MESSAGE, MESSAGE_ID, PRIORITY": all(g.get(k) == s.get(k) for k in ("MESSAGE", "MESSAGE_ID", "PRIORITY")),
        "path": g.get("UNLINKD_PATH") == path and g.get("UNLINKD_PATH_AS_GIVEN") == path,
        "op": g.get("UNLINKD_OP") == op,
        "result": g.get("UNLINKD_RESULT") == result,
        "comm, uid, exe": (g.get("UNLINKD_COMM"), g.get("UNLINKD_UID"), g.get("UNLINKD_EXE"))
                          == ("ulk-metrics", "0", t + ("/rm" if op == "unlink" else "/rmdir") + "/ulk-metrics"),
    }
    for name, good in checks.items():
        if not good:
            print("FAIL " + path + " " + name + ": " + json.dumps(mine(g))[:400])
        ok &= good
sys.exit(0 if ok else 1)
PY

daemon_stop
echo "metrics: $([ "$FAILS" = 0 ] && echo PASS || echo FAIL) ($CHECKS checks, $FAILS failed)"
exit $((FAILS > 0))
