// Integration test harness: real BPF programs on the running kernel, driven
// by child processes of known pid, uid and comm. Runs as root only; a run
// without root fails (it never skips).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernel/engine.h"

namespace unlinkd::test {

// UNLINKD_TEST_MODES (comma-separated; default "tracepoint"): the modes that
// must load here. Every exactness test runs in each of them.
std::vector<Mode> test_modes();
// Every mode that loads here (tried for real), in auto's order; includes all
// of test_modes() (REQUIREd).
std::vector<Mode> loadable_modes();

// A tmpfs mounted on a fresh directory under /tmp, removed at destruction:
// fast, private, and its paths cross a mount point.
class Scratch {
public:
    Scratch();
    ~Scratch();
    const std::string& dir() const { return dir_; }
    std::string path(const std::string& name) const { return dir_ + "/" + name; }
    void create(const std::string& name, mode_t mode = 0644) const;

private:
    std::string dir_;
};

struct ChildOptions {
    ChildOptions(std::string comm_ = {}, uid_t uid_ = 0, gid_t gid_ = 0, std::string cgroup_ = {},
                 std::optional<std::uint32_t> loginuid_ = std::nullopt)
        : comm(std::move(comm_)), uid(uid_), gid(gid_), cgroup(std::move(cgroup_)), loginuid(loginuid_) {}
    std::string comm;    // set with PR_SET_NAME before `body`
    uid_t uid;           // switched to (with gid) before `body` when non-zero
    gid_t gid;
    std::string cgroup;  // cgroup v2 directory to join before `body`, if not empty
    // Written to /proc/self/loginuid before the uid switch, as pam_loginuid
    // does at a login: the kernel gives the child a new audit session. Needs
    // CAP_AUDIT_CONTROL (root) and a login uid that is not immutable.
    std::optional<std::uint32_t> loginuid;
};

// The audit login uid and session id of the calling process, as
// /proc/self/loginuid and /proc/self/sessionid say (4294967295: unset).
// REQUIREs the files (CONFIG_AUDIT).
std::uint32_t own_loginuid();
std::uint32_t own_sessionid();
// The absolute path of the running executable (/proc/self/exe).
std::string own_exe();

// Forks a child that sets itself up and runs `body`; the child's exit code
// is body's return value. Returns the child's pid; wait with wait_child().
pid_t spawn(const ChildOptions& options, const std::function<int()>& body);

// Waits for `pid` and returns its exit code (-1 if it did not exit normally).
int wait_child(pid_t pid);
// spawn + wait; REQUIREs exit code 0 and returns the pid.
pid_t run_child(const ChildOptions& options, const std::function<int()>& body);

// Collects every event the engine delivers.
class Collector : public EventSink {
public:
    void on_event(const Event& e) override { events.push_back(e); }
    std::vector<Event> for_pid(std::uint32_t pid) const;
    std::vector<Event> events;
};

struct EngineUnderTest {
    std::unique_ptr<Engine> engine;
    Collector collector;
    // Drains until `done` holds or the deadline passes; returns done().
    bool drain_until(const std::function<bool()>& done,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Drains what is in the ring buffer now (after the kernel has written it).
    void drain_all();
    std::vector<ProcessStats> processes_of(std::uint32_t pid);
    ProcessStats process(std::uint32_t pid);  // REQUIREs exactly one entry
};

// Engine::set_mode, then the hand-over driven to its end as the Manager's
// timer does (a test may wait; the daemon's loop may not).
Result<Mode> switch_mode(Engine& engine, RequestedMode requested);
// Hands `current` over to `next` (already attached) and waits until the old
// one is drained and detached; returns how many of its calls still ran.
std::size_t hand_over_now(BpfMaps& maps, std::unique_ptr<ModeAttachment>& current,
                          std::unique_ptr<ModeAttachment> next);

std::unique_ptr<EngineUnderTest> start_engine(Mode mode, const std::vector<std::string>& filters = {},
                                              bool stream_events = true);

// Starts a child that creates `count` files in `dir` and then deletes them
// from `threads` threads. Returns its pid; wait with wait_child().
// StormOps::unlink_and_rmdir: each thread also creates as many empty directories and deletes
// them alternately with the files (unlink, rmdir, unlink, ...): 2 * count
// deletions, half of each op.
enum class StormOps { unlink, unlink_and_rmdir };
pid_t start_storm(const std::string& dir, const std::string& comm, unsigned count, unsigned threads,
                  StormOps ops = StormOps::unlink);
// True once `pid` has exited; stores its exit code.
bool reap(pid_t pid, int& exit_code);

// The cgroup v2 mount point; REQUIREs one.
std::string cgroup2_root();

// Checks `done` every `every` until it holds (true) or `timeout` has passed
// (false); at least once.
bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every = std::chrono::milliseconds(50));

struct ProcessOptions {
    uid_t uid = 0;                      // run as this uid and gid, no supplementary groups (when non-zero)
    std::vector<std::string> env;       // NAME=VALUE, set for the program
    std::function<void()> before_exec;  // in the child, before the uid switch (e.g. unshare); may _exit()

    static ProcessOptions as_uid(uid_t uid)
    {
        ProcessOptions o;
        o.uid = uid;
        return o;
    }
    static ProcessOptions with_before_exec(std::function<void()> f)
    {
        ProcessOptions o;
        o.before_exec = std::move(f);
        return o;
    }
};

// What a one-shot command printed, and how it ended: its exit code, -1 if a
// signal ended it, -2 if it did not end in time (then it was killed).
struct CommandResult {
    int code;
    std::string out, err;
};

// A program (argv[0], searched in PATH) in a child process. Its stdout and
// stderr go to files, read whenever asked: never to a pipe, where a daemon
// printing a line per deletion would block once the pipe is full and nobody
// reads. The process never outlives the object: the destructor stops it
// (SIGTERM, so a daemon detaches and removes its pins; SIGKILL after 20 s),
// on every way out of a test, a failed REQUIRE included.
class Process {
public:
    explicit Process(const std::vector<std::string>& argv, ProcessOptions options = {});
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    std::string out() const;  // all it wrote to stdout so far
    std::string err() const;  // ... and to stderr
    // True until it exited (reaps it then; the exit status is kept for stop()).
    bool running();
    // Until the stream holds `needle` (true), or the process exited or
    // `timeout` passed without it (false).
    bool wait_for_out(const std::string& needle, std::chrono::milliseconds timeout = std::chrono::seconds(30));
    bool wait_for_err(const std::string& needle, std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Sends `sig` (0: none, just wait) and waits up to `timeout` for the exit:
    // the exit code, -1 if a signal ended it, -2 if it had to be killed.
    int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(20));
    // For one-shot commands: waits for the exit (killed after `timeout`) and
    // returns its code with everything it printed.
    CommandResult finish(std::chrono::milliseconds timeout = std::chrono::seconds(30));

private:
    bool wait_for_text(const std::string& file, const std::string& needle, std::chrono::milliseconds timeout);
    std::string dir_;  // holds the files "out" and "err"
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = 0;
};

// The daemon under test, UNLINKD_BIN, with `args`, in a state directory of
// its own under the run's private one (main.cpp), so filters one test sets
// over D-Bus are not the next test's saved state.
class DaemonProcess : public Process {
public:
    explicit DaemonProcess(const std::vector<std::string>& args, ProcessOptions options = {});
};

// Runs `argv` to its end (Process + finish()).
CommandResult run_command(const std::vector<std::string>& argv, ProcessOptions options = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace unlinkd::test
