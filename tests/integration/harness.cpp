#include "harness.h"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "kernel/cgroup_units.h"

namespace unlinkd::test {

namespace {

std::string read_file(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// In the forked child about to exec the daemon: a state directory of its own
// under the run's private one (main.cpp).
void use_own_state_directory()
{
    const char* base = std::getenv("STATE_DIRECTORY");
    if (base)
        setenv("STATE_DIRECTORY", (std::string(base) + "/daemon-" + std::to_string(getpid())).c_str(), 1);
}

std::vector<std::string> daemon_argv(const std::vector<std::string>& args)
{
    const char* bin = std::getenv("UNLINKD_BIN");
    REQUIRE(bin != nullptr);
    std::vector<std::string> argv{bin};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

ProcessOptions with_own_state_directory(ProcessOptions options)
{
    options.before_exec = [then = std::move(options.before_exec)]() {
        use_own_state_directory();
        if (then)
            then();
    };
    return options;
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

}  // namespace

std::vector<Mode> test_modes()
{
    const char* env = std::getenv("UNLINKD_TEST_MODES");
    std::string list = env && *env ? env : "tracepoint";
    std::vector<Mode> out;
    std::stringstream ss(list);
    std::string name;
    while (std::getline(ss, name, ',')) {
        auto m = parse_mode(name);
        if (!m)
            FAIL("UNLINKD_TEST_MODES names an unknown mode: " << name);
        out.push_back(*m);
    }
    return out;
}

std::vector<Mode> loadable_modes()
{
    auto maps = BpfMaps::make(MapSizes{});
    REQUIRE(maps.ok());
    std::vector<Mode> out;
    for (Mode m : all_modes)
        if (probe_mode(**maps, m).supported)
            out.push_back(m);
    for (Mode m : test_modes())
        REQUIRE(std::find(out.begin(), out.end(), m) != out.end());
    return out;
}

Scratch::Scratch()
{
    char tmpl[] = "/tmp/unlinkd-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    REQUIRE(mount("tmpfs", dir_.c_str(), "tmpfs", 0, "mode=0755,size=512m") == 0);
}

Scratch::~Scratch()
{
    umount2(dir_.c_str(), MNT_DETACH);
    rmdir(dir_.c_str());
}

void Scratch::create(const std::string& name, mode_t mode) const
{
    int fd = open(path(name).c_str(), O_CREAT | O_WRONLY | O_TRUNC, mode);
    REQUIRE(fd >= 0);
    close(fd);
}

pid_t spawn(const ChildOptions& o, const std::function<int()>& body)
{
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid > 0)
        return pid;
    // Child: no Catch2 here, only exit codes.
    if (!o.cgroup.empty()) {
        std::ofstream procs(o.cgroup + "/cgroup.procs");
        procs << getpid() << std::flush;
        if (!procs)
            _exit(90);
    }
    if (!o.comm.empty())
        prctl(PR_SET_NAME, o.comm.c_str());
    if (o.loginuid) {
        std::ofstream f("/proc/self/loginuid");
        f << *o.loginuid << std::flush;
        if (!f)
            _exit(92);
    }
    if (o.uid) {
        if (setgroups(0, nullptr) || setresgid(o.gid, o.gid, o.gid) || setresuid(o.uid, o.uid, o.uid))
            _exit(91);
    }
    _exit(body());
}

static std::uint32_t read_id(const char* file)
{
    std::ifstream f(file);
    std::uint32_t id = 0;
    f >> id;
    INFO(file);
    REQUIRE(f);
    return id;
}

std::uint32_t own_loginuid() { return read_id("/proc/self/loginuid"); }
std::uint32_t own_sessionid() { return read_id("/proc/self/sessionid"); }

std::string own_exe()
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf));
    REQUIRE(n > 0);
    return std::string(buf, static_cast<std::size_t>(n));
}

int wait_child(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

pid_t run_child(const ChildOptions& options, const std::function<int()>& body)
{
    pid_t pid = spawn(options, body);
    REQUIRE(wait_child(pid) == 0);
    return pid;
}

std::vector<Event> Collector::for_pid(std::uint32_t pid) const
{
    std::vector<Event> out;
    for (const auto& e : events)
        if (e.pid == pid)
            out.push_back(e);
    return out;
}

bool EngineUnderTest::drain_until(const std::function<bool()>& done, std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        engine->drain();
        if (done())
            return true;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return false;
        pollfd p{engine->events_fd(), POLLIN, 0};
        poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 100)));
    }
}

void EngineUnderTest::drain_all()
{
    // Records are visible once committed; nothing is pending after the
    // children exited, so one consume takes everything.
    engine->drain();
}

std::vector<ProcessStats> EngineUnderTest::processes_of(std::uint32_t pid)
{
    std::vector<ProcessStats> out;
    for (auto& p : engine->processes())
        if (p.pid == pid)
            out.push_back(p);
    return out;
}

ProcessStats EngineUnderTest::process(std::uint32_t pid)
{
    auto list = processes_of(pid);
    INFO("process entries for pid " << pid);
    REQUIRE(list.size() == 1);
    return list.front();
}

std::unique_ptr<EngineUnderTest> start_engine(Mode mode, const std::vector<std::string>& filters, bool stream)
{
    EngineOptions o;
    o.mode = RequestedMode{false, mode};
    o.filters = filters;
    o.stream_events = stream;
    auto e = Engine::make(o);
    INFO("mode " << mode_name(mode) << ": " << (e ? std::string() : e.error().message));
    REQUIRE(e.ok());
    REQUIRE((*e)->attached_mode() == mode);
    auto t = std::make_unique<EngineUnderTest>();
    t->engine = std::move(*e);
    t->engine->set_sink(&t->collector);
    return t;
}

bool reap(pid_t pid, int& exit_code)
{
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) != pid)
        return false;
    exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return true;
}

pid_t start_storm(const std::string& dir, const std::string& comm, unsigned count, unsigned threads, StormOps ops)
{
    const bool with_dirs = ops == StormOps::unlink_and_rmdir;
    return spawn({comm}, [&]() {
        std::vector<std::thread> workers;
        std::atomic<int> failed{0};
        for (unsigned t = 0; t < threads; ++t) {
            workers.emplace_back([&, t]() {
                std::string sub = dir + "/" + comm + "-t" + std::to_string(t);
                mkdir(sub.c_str(), 0755);
                unsigned n = count / threads + (t < count % threads ? 1 : 0);
                std::vector<std::string> files, dirs;
                files.reserve(n);
                for (unsigned i = 0; i < n; ++i) {
                    files.push_back(sub + "/" + std::to_string(i));
                    int fd = open(files.back().c_str(), O_CREAT | O_WRONLY, 0644);
                    if (fd < 0)
                        ++failed;
                    else
                        close(fd);
                    if (with_dirs) {
                        dirs.push_back(sub + "/d" + std::to_string(i));
                        if (mkdir(dirs.back().c_str(), 0755) != 0)
                            ++failed;
                    }
                }
                for (unsigned i = 0; i < n; ++i)
                    if (unlink(files[i].c_str()) != 0 || (with_dirs && rmdir(dirs[i].c_str()) != 0))
                        ++failed;
            });
        }
        for (auto& w : workers)
            w.join();
        return failed.load() == 0 ? 0 : 1;
    });
}

std::string cgroup2_root()
{
    std::string root = cgroup2_mount_point();
    REQUIRE_FALSE(root.empty());
    return root;
}

Result<Mode> switch_mode(Engine& engine, RequestedMode requested)
{
    auto r = engine.set_mode(requested);
    while (!r && r.error().code == EINPROGRESS) {  // no standby: loading
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        engine.advance();
        r = engine.set_mode(requested);
    }
    while (!engine.advance())
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    return r;
}

std::size_t hand_over_now(BpfMaps& maps, std::unique_ptr<ModeAttachment>& current,
                          std::unique_ptr<ModeAttachment> next)
{
    HandOver h(maps, std::exchange(current, std::move(next)), std::chrono::seconds(1));
    while (!h.drained())
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    return h.finish();
}

bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout, std::chrono::milliseconds every)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (done())
            return true;
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(every);
    }
}

Process::Process(const std::vector<std::string>& argv, ProcessOptions o)
{
    REQUIRE_FALSE(argv.empty());
    char tmpl[] = "/tmp/unlinkd-process-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    // Created here, as root: a child that switches to another uid still
    // writes through the descriptors it inherited.
    int out = open((dir_ + "/out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = open((dir_ + "/err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(out >= 0);
    REQUIRE(err >= 0);
    std::vector<std::string> args = argv;  // the child's argv, built before the fork
    std::vector<char*> cargv;
    for (auto& a : args)
        cargv.push_back(a.data());
    cargv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
        // Child: no Catch2 here, only exit codes.
        dup2(out, 1);
        dup2(err, 2);
        for (auto& e : o.env)
            putenv(e.data());  // o is the child's own copy: alive until exec
        if (o.before_exec)
            o.before_exec();
        if (o.uid && (setgroups(0, nullptr) || setresgid(o.uid, o.uid, o.uid) || setresuid(o.uid, o.uid, o.uid)))
            _exit(99);
        execvp(cargv[0], cargv.data());
        _exit(98);
    }
    close(out);
    close(err);
    REQUIRE(pid_ > 0);
}

Process::~Process()
{
    if (running())
        stop(SIGTERM);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

std::string Process::out() const { return read_file(dir_ + "/out"); }
std::string Process::err() const { return read_file(dir_ + "/err"); }

bool Process::running()
{
    if (pid_ <= 0 || reaped_)
        return false;
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == 0)
        return true;
    reaped_ = true;
    status_ = r == pid_ ? exit_code(status) : -1;
    return false;
}

bool Process::wait_for_text(const std::string& file, const std::string& needle, std::chrono::milliseconds timeout)
{
    auto has = [&]() { return read_file(dir_ + "/" + file).find(needle) != std::string::npos; };
    // Whatever it wrote before exiting is in the file by then: one more look.
    return poll_until([&]() { return has() || !running(); }, timeout) && has();
}

bool Process::wait_for_out(const std::string& needle, std::chrono::milliseconds timeout)
{
    return wait_for_text("out", needle, timeout);
}

bool Process::wait_for_err(const std::string& needle, std::chrono::milliseconds timeout)
{
    return wait_for_text("err", needle, timeout);
}

int Process::stop(int sig, std::chrono::milliseconds timeout)
{
    if (running()) {
        if (sig)
            kill(pid_, sig);
        if (!poll_until([this]() { return !running(); }, timeout, std::chrono::milliseconds(10))) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
            reaped_ = true;
            status_ = -2;
        }
    }
    return status_;
}

CommandResult Process::finish(std::chrono::milliseconds timeout)
{
    int code = stop(0, timeout);
    return CommandResult{code, out(), err()};
}

DaemonProcess::DaemonProcess(const std::vector<std::string>& args, ProcessOptions options)
    : Process(daemon_argv(args), with_own_state_directory(std::move(options)))
{
}

CommandResult run_command(const std::vector<std::string>& argv, ProcessOptions options, std::chrono::milliseconds timeout)
{
    return Process(argv, std::move(options)).finish(timeout);
}

}  // namespace unlinkd::test
