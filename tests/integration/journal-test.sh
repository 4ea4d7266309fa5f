#!/bin/bash
# The journal sink against a real systemd-journald that only this mount
# namespace sees (the machine's own journal, if any, is untouched).
#   journal-test.sh UNLINKD_BIN SOURCE_DIR     (as root)
# Checks: one entry per deletion with every UNLINKD_* field, exact for a known
# workload; the "N not logged" entry past 200 a second, with logged + not
# logged == deletions; the catalog text through journalctl -x; the summary
# entry written at stop.
set -euo pipefail
BIN=$(realpath "$1"); SRC=$(realpath "$2")
if [ -z "${UNLINKD_JOURNAL_NS:-}" ]; then
  exec env UNLINKD_JOURNAL_NS=1 unshare --mount --propagation private "$0" "$@"
fi
# shellcheck source-path=SCRIPTDIR source=../lib/check.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/check.sh"

T=$(mktemp -d /tmp/unlinkd-journal-XXXXXX); mount -t tmpfs tmpfs "$T"
CAT=$(mktemp -d)
cleanup() { daemon_stop || true; stop_private_journald; umount "$T"; rmdir "$T"; rm -rf "$CAT"; }
trap cleanup EXIT

# A private journald with no rate limit (this test counts entries).
start_private_journald RateLimitBurst=0
# The catalog: the system's plus ours, in a private database.
cp -a /usr/lib/systemd/catalog/. "$CAT/" 2>/dev/null || true
cp "$SRC/systemd/unlinkd.catalog" "$CAT/"
mkdir -p /usr/lib/systemd/catalog /var/lib/systemd/catalog
mount --bind "$CAT" /usr/lib/systemd/catalog
mount -t tmpfs tmpfs /var/lib/systemd/catalog
journalctl --update-catalog

# The daemon without --foreground writes to the journal.
daemon_start "$T/daemon.err" "$BIN" --filter=comm=ulk-jrnl --bus-address=unix:path=/nonexistent
daemon_wait_log 30 "$T/daemon.err" "attached in"

# Workload: coreutils rm named ulk-jrnl (comm comes from the file name).
cp /usr/bin/rm "$T/ulk-jrnl"
touch "$T/a" "$T/b" "$T/c"
(cd "$T" && ./ulk-jrnl "$T/a" b ./c)
"$T/ulk-jrnl" "$T/missing" 2>/dev/null || true
entries() { journalctl -q -o cat UNLINKD_COMM=ulk-jrnl | wc -l; }
at_least_4_entries() { [ "$(entries)" -ge 4 ]; }
wait_for 5 at_least_4_entries || true
journalctl -q -o json UNLINKD_COMM=ulk-jrnl > "$T/entries.json"
check "4 entries for the workload" eq "$(wc -l < "$T/entries.json")" 4
check "every field of the 4 entries" /usr/bin/python3 - "$T" <<'PY'
import json, sys, errno
t = sys.argv[1]
rows = [json.loads(l) for l in open(t + "/entries.json")]
want = [(t + "/a", t + "/a", "0"), (t + "/b", "b", "0"), (t + "/c", "./c", "0"),
        (t + "/missing", t + "/missing", str(-errno.ENOENT))]
ok = True
for r, (path, given, result) in zip(rows, want):
    checks = {
        "MESSAGE_ID": r.get("MESSAGE_ID") == "1e7a225fb4ed478abe629f4b6b6823ec",
        "PRIORITY": r.get("PRIORITY") == "6",
        "UNLINKD_PATH": r.get("UNLINKD_PATH") == path,
        "UNLINKD_PATH_AS_GIVEN": r.get("UNLINKD_PATH_AS_GIVEN") == given,
        "UNLINKD_RESULT": r.get("UNLINKD_RESULT") == result,
        "UNLINKD_UID": r.get("UNLINKD_UID") == "0",
        "UNLINKD_GID": r.get("UNLINKD_GID") == "0",
        "UNLINKD_COMM": r.get("UNLINKD_COMM") == "ulk-jrnl",
        "UNLINKD_MODE": r.get("UNLINKD_MODE") in ("fentry", "kprobe", "tracepoint"),
        "fields": all(k in r for k in ("UNLINKD_PID", "UNLINKD_TID", "UNLINKD_PPID", "UNLINKD_UNIT")),
        "MESSAGE": r.get("MESSAGE", "").startswith("ulk-jrnl[" + r.get("UNLINKD_PID", "?") + "] uid=0 ")
                   and r.get("MESSAGE", "").endswith(path if result == "0" else path + ": ENOENT"),
    }
    for name, good in checks.items():
        print(("ok   " if good else "FAIL ") + path + " " + name + ("" if good else ": " + json.dumps(r)[:300]))
        ok &= good
sys.exit(0 if ok else 1)
PY

# Past 200 a second: one "not logged" entry per second, nothing lost in the sum.
mkdir "$T/many"; (cd "$T/many" && touch $(seq 1 600))
(cd "$T/many" && ../ulk-jrnl -- *)
sleep 2.5
logged=$(journalctl -q -o cat UNLINKD_COMM=ulk-jrnl | grep -c "/many/" || true)
not_logged=$(journalctl -q -o export MESSAGE_ID=56dd6baa98ba4f23bfa30e9b04725d50 | sed -n 's/^UNLINKD_NOT_LOGGED=//p' | paste -sd+ | bc)
echo "storm of 600: logged=$logged not_logged=$not_logged"
check "at most 200 logged per one-second window (the storm spans at most two)" test "$logged" -le 400 -a "$logged" -gt 0
check "logged + not logged == 600" eq "$((logged + not_logged))" 600
not_logged_text() { journalctl -q -o cat MESSAGE_ID=56dd6baa98ba4f23bfa30e9b04725d50 | grep -q "deletions not logged"; }
check "the not-logged entry says so" not_logged_text
journalctl -q -x -n 3 UNLINKD_COMM=ulk-jrnl > "$T/x.txt" 2>&1 || true; head -c 1500 "$T/x.txt"
check "journalctl -x explains a deletion entry" grep -q "asked the" "$T/x.txt"

# At stop, the summary entry: this run's exact counts (the filter keeps them
# to the workload: 3 + 600 deleted, 1 failed).
daemon_stop || true
summary=$(journalctl -q -o export MESSAGE_ID=56dd6baa98ba4f23bfa30e9b04725d50 UNLINKD_TOTAL_DELETES=603 | sed -n 's/^\(UNLINKD_DELETES\|UNLINKD_FAILURES\|UNLINKD_TOTAL_FAILURES\)=/\1 /p' | sort | paste -sd' ')
echo "summary entry: $summary"
check "the summary entry at stop has the exact counts" eq "$summary" "UNLINKD_DELETES 603 UNLINKD_FAILURES 1 UNLINKD_TOTAL_FAILURES 1"
echo "journal: $([ "$FAILS" = 0 ] && echo PASS || echo FAIL) ($CHECKS checks, $FAILS failed)"
exit $((FAILS > 0))
