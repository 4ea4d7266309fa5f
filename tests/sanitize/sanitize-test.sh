#!/bin/bash
# The unit and integration suites on an ASan+UBSan build of this tree, set
# up under the main build directory (BUILD_DIR/sanitize) and built only as
# far as those suites need:
#   sanitize-test.sh BUILD_DIR SOURCE_DIR      (as root, for the integration part)
# Any sanitizer report from any process (the test binaries, the daemons and
# unlinkctl they start) halts that process and is written to a log file; a
# log file at the end fails the run. Leak checking is on: outside the
# hardened unit LeakSanitizer can work (it cannot under the unit's ptrace
# restrictions, so the systemd test is not run here).
set -euo pipefail
BUILD=$(realpath "$1"); SRC=$(realpath "$2")
S=$BUILD/sanitize
start=$EPOCHSECONDS
if [ ! -f "$S/build.ninja" ]; then
  # b_lundef=false: the sanitizer runtimes resolve symbols at run time.
  # buildtype=debug (-O0): with the sanitizers, -O2 made the compile 6 times
  # slower (config.cpp: 41 s of CPU against 6.4 s), and the tests' time is
  # the kernel's, not the daemon's. The tree builds with -O2 and the
  # sanitizers too (README); this run is about what they find at run time.
  meson setup "$S" "$SRC" -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
# Only what the suites below run.
targets=(unit-tests unlinkd unlinkctl unlinkd-integration-tests storm)
for t in escape filter config record bus-args; do targets+=("fuzz-$t-regress"); done
# The unit suite holds unlinkd-monitor's model tests when gtkmm is there (-Dmonitor).
if meson introspect "$S" --tests | grep -q '"name": "monitor-model"'; then targets+=(monitor-model-tests); fi
nice -n 10 meson compile -C "$S" "${targets[@]}"
built=$EPOCHSECONDS

LOGS=$S/sanitizer-logs
rm -rf "$LOGS"; mkdir -p "$LOGS"
# halt_on_error: the first report fails the process (and so the test);
# the report itself goes to LOGS, where it cannot be lost in a child's
# closed stderr. detect_stack_use_after_return stays off: it makes every
# frame a heap allocation, too slow for the storms.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:log_path=$LOGS/asan"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$LOGS/ubsan"
rc=0
meson test -C "$S" --no-rebuild --print-errorlogs --suite unit || rc=1
meson test -C "$S" --no-rebuild --print-errorlogs integration journal lifecycle || rc=1
ran=$EPOCHSECONDS

if compgen -G "$LOGS/*" >/dev/null; then
  echo "sanitizer reports:"
  for f in "$LOGS"/*; do echo "--- $f"; cat "$f"; done
  rc=1
fi
echo "FIGURE sanitize build $((built - start))s, tests $((ran - built))s"
exit $rc
