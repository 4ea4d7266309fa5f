// The daemon binary as a user runs it: unlinkd --foreground [--json].
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <optional>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "harness.h"

using namespace unlinkd;
using namespace unlinkd::test;
using json = nlohmann::json;

namespace {

std::string daemon_path()
{
    const char* bin = std::getenv("UNLINKD_BIN");
    REQUIRE(bin != nullptr);
    return bin;
}

struct Running {
    pid_t pid = -1;
    int out = -1, err = -1;
    std::string stdout_text, stderr_text;

    Running(pid_t p, int o, int e) : pid(p), out(o), err(e) {}
    Running(Running&& other) noexcept
        : pid(std::exchange(other.pid, -1)), out(std::exchange(other.out, -1)), err(std::exchange(other.err, -1)),
          stdout_text(std::move(other.stdout_text)), stderr_text(std::move(other.stderr_text)) {}
    // A test that fails before stop() must not leave a daemon attached.
    ~Running()
    {
        if (pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
        if (out >= 0)
            close(out);
        if (err >= 0)
            close(err);
    }

    // Reads what is available from both pipes for up to `ms`.
    void pump(int ms)
    {
        pollfd fds[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
        if (poll(fds, 2, ms) <= 0)
            return;
        char buf[65536];
        for (int i = 0; i < 2; ++i) {
            if (!(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            ssize_t n = read(fds[i].fd, buf, sizeof(buf));
            if (n > 0)
                (i == 0 ? stdout_text : stderr_text).append(buf, static_cast<size_t>(n));
        }
    }
    bool wait_for_stderr(const std::string& needle, int ms = 20000)
    {
        for (int waited = 0; waited < ms && stderr_text.find(needle) == std::string::npos; waited += 50)
            pump(50);
        return stderr_text.find(needle) != std::string::npos;
    }
    int stop(int sig = SIGTERM)
    {
        if (sig)
            kill(pid, sig);
        int status = 0;
        // poll() returns at once on a closed pipe: bound by time, not by rounds.
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (std::chrono::steady_clock::now() < deadline) {
            pump(25);
            usleep(5000);
            if (waitpid(pid, &status, WNOHANG) == pid) {
                for (int j = 0; j < 20; ++j)
                    pump(5);
                pid = -1;  // reaped
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
        }
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -2;
    }
};

Running start_daemon(const std::vector<std::string>& args, uid_t uid = 0,
                     const std::function<void()>& before_exec = {})
{
    int out[2], err[2];
    REQUIRE(pipe(out) == 0);
    REQUIRE(pipe(err) == 0);
    std::string bin = daemon_path();
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        use_own_state_directory();
        if (before_exec)
            before_exec();
        if (uid && (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
            _exit(99);
        std::vector<char*> argv{const_cast<char*>(bin.c_str())};
        for (const auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        execv(bin.c_str(), argv.data());
        _exit(98);
    }
    close(out[1]);
    close(err[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    return Running(pid, out[0], err[0]);
}

// The complete lines of `text` as JSON: the daemon may be in the middle of
// writing the last one (a long line reaches the pipe in several writes).
std::vector<json> json_lines(const std::string& text)
{
    std::vector<json> out;
    auto end = text.rfind('\n');
    if (end == std::string::npos)
        return out;
    std::istringstream in(text.substr(0, end + 1));
    std::string line;
    while (std::getline(in, line))
        if (!line.empty())
            out.push_back(json::parse(line));
    return out;
}

}  // namespace

TEST_CASE("unlinkd --foreground --json prints every deletion and a final summary", "[cli]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            for (auto n : {"one", "two", "three"})
                s.create(n);
            auto d = start_daemon({"--foreground", "--json", "--mode=" + std::string(mode_name(mode))});
            REQUIRE(d.wait_for_stderr("attached in " + std::string(mode_name(mode)) + " mode"));
            pid_t pid = run_child({"ulk-cli"}, [&]() {
                if (chdir(s.dir().c_str()))
                    return 1;
                return unlink("one") || unlink(s.path("two").c_str()) || unlink("./three") ||
                               unlink("missing") != -1
                           ? 2
                           : 0;
            });
            for (int i = 0; i < 40 && d.stdout_text.find("missing") == std::string::npos; ++i)
                d.pump(50);
            REQUIRE(d.stop(SIGTERM) == 0);
            auto lines = json_lines(d.stdout_text);
            REQUIRE_FALSE(lines.empty());
            std::vector<json> mine;
            for (const auto& l : lines)
                if (l.contains("pid") && l["pid"] == pid)
                    mine.push_back(l);
            REQUIRE(mine.size() == 4);
            CHECK(mine[0]["path"] == s.path("one"));
            CHECK(mine[0]["path_as_given"] == "one");
            CHECK(mine[1]["path"] == s.path("two"));
            CHECK(mine[2]["path"] == s.path("three"));
            CHECK(mine[3]["path"] == s.path("missing"));
            CHECK(mine[3]["result"] == -ENOENT);
            for (const auto& e : mine) {
                CHECK(e["comm"] == "ulk-cli");
                CHECK(e["mode"] == std::string(mode_name(mode)));
                CHECK(e["op"] == "unlink");
                CHECK(e["uid"] == 0);
                CHECK(e["tid"] == pid);
                CHECK(e["ppid"] == getpid());
                for (auto key : {"time_usec", "gid", "unit"})
                    CHECK(e.contains(key));
            }
            const json& summary = lines.back();
            REQUIRE(summary.contains("totals"));
            CHECK(summary["totals"]["deletes"].get<std::uint64_t>() >= 3);
            bool found = false;
            for (const auto& p : summary["processes"])
                if (p["pid"] == pid) {
                    found = true;
                    CHECK(p["deletes"] == 3);
                    CHECK(p["failures"] == 1);
                    CHECK(p["comm"] == "ulk-cli");
                }
            CHECK(found);
        }
    }
}

TEST_CASE("unlinkd --foreground prints journal-style lines and honours --filter", "[cli]")
{
    Mode mode = test_modes().front();
    Scratch s;
    s.create("kept");
    s.create("dropped");
    auto d = start_daemon({"--foreground", "--mode=" + std::string(mode_name(mode)), "--filter=comm=ulk-text"});
    REQUIRE(d.wait_for_stderr("attached in"));
    CHECK(d.stderr_text.find("filters: comm=ulk-text") != std::string::npos);
    pid_t kept = run_child({"ulk-text"}, [&]() { return unlink(s.path("kept").c_str()); });
    run_child({"ulk-other"}, [&]() { return unlink(s.path("dropped").c_str()); });
    std::string want = "ulk-text[" + std::to_string(kept) + "] uid=0 deleted " + s.path("kept") + "\n";
    for (int i = 0; i < 40 && d.stdout_text.find(want) == std::string::npos; ++i)
        d.pump(50);
    REQUIRE(d.stop(SIGINT) == 0);
    CHECK(d.stdout_text.find(want) != std::string::npos);
    CHECK(d.stdout_text.find("dropped") == std::string::npos);
}

TEST_CASE("SIGUSR1 prints a summary while running", "[cli]")
{
    Mode mode = test_modes().front();
    Scratch s;
    s.create("u1");
    auto d = start_daemon({"--foreground", "--json", "--mode=" + std::string(mode_name(mode))});
    REQUIRE(d.wait_for_stderr("attached in"));
    pid_t pid = run_child({"ulk-usr1"}, [&]() { return unlink(s.path("u1").c_str()); });
    for (int i = 0; i < 40 && d.stdout_text.find("\"ulk-usr1\"") == std::string::npos; ++i)
        d.pump(50);
    kill(d.pid, SIGUSR1);
    auto has_summary = [&] {
        for (const auto& l : json_lines(d.stdout_text))
            if (l.contains("totals"))
                return true;
        return false;
    };
    for (int i = 0; i < 100 && !has_summary(); ++i)
        d.pump(50);
    bool found = false;
    for (const auto& l : json_lines(d.stdout_text))
        if (l.contains("processes"))
            for (const auto& p : l["processes"])
                found |= p["pid"] == pid && p["deletes"] == 1;
    CHECK(found);
    CHECK(d.stop() == 0);
}

TEST_CASE("bad input: clear message, non-zero exit, nothing attached", "[cli]")
{
    auto bad_filter = start_daemon({"--foreground", "--filter=comm=ok", "--filter=size=3"});
    int code = bad_filter.stop(0);  // signal 0: just wait for it to exit
    CHECK(code == 2);
    CHECK_THAT(bad_filter.stderr_text, Catch::Contains("\"size=3\""));

    auto bad_mode = start_daemon({"--foreground", "--mode=turbo"});
    CHECK(bad_mode.stop(0) == 2);
    CHECK_THAT(bad_mode.stderr_text, Catch::Contains("unknown mode \"turbo\""));

    auto not_root = start_daemon({"--foreground"}, 65534);
    CHECK(not_root.stop(0) == 4);
    CHECK_THAT(not_root.stderr_text, Catch::Contains("must run as root"));

    auto help = start_daemon({"--help"});
    CHECK(help.stop(0) == 0);
    CHECK_THAT(help.stdout_text, Catch::Contains("--mode=MODE"));
}

TEST_CASE("--list-modes reports what loads, and why the others do not", "[cli]")
{
    auto d = start_daemon({"--list-modes", "--json"});
    REQUIRE(d.stop(0) == 0);
    auto lines = json_lines(d.stdout_text);
    REQUIRE(lines.size() == 1);
    auto expected = test_modes();
    REQUIRE(lines[0].size() == 3);
    for (const auto& m : lines[0]) {
        auto mode = parse_mode(m["mode"].get<std::string>());
        REQUIRE(mode);
        bool listed = std::find(expected.begin(), expected.end(), *mode) != expected.end();
        if (listed)
            CHECK(m["supported"] == true);
        if (m["supported"] == false)
            CHECK_FALSE(m["reason"].get<std::string>().empty());
    }
}

TEST_CASE("auto picks the first mode that loads and says why the others do not", "[cli]")
{
    // What loads here, as the daemon itself finds out by trying.
    auto probe = start_daemon({"--list-modes", "--json"});
    REQUIRE(probe.stop(0) == 0);
    auto table = json_lines(probe.stdout_text);
    REQUIRE(table.size() == 1);
    std::optional<Mode> best;
    for (Mode m : all_modes)  // auto's order: fentry, kprobe, tracepoint
        for (const auto& row : table[0])
            if (!best && row["mode"] == std::string(mode_name(m)) && row["supported"] == true)
                best = m;
    REQUIRE(best.has_value());
    for (Mode m : test_modes())  // the modes this environment must have load
        for (const auto& row : table[0])
            if (row["mode"] == std::string(mode_name(m)))
                CHECK(row["supported"] == true);

    auto d = start_daemon({"--foreground"});
    REQUIRE(d.wait_for_stderr("attached in"));
    REQUIRE(d.stop() == 0);
    CHECK_THAT(d.stderr_text, Catch::Contains("attached in " + std::string(mode_name(*best)) + " mode (requested auto)"));
    for (const auto& row : table[0])
        if (row["supported"] == false)  // each unavailable mode is explained, in the daemon's words
            CHECK_THAT(d.stderr_text, Catch::Contains(row["reason"].get<std::string>()));
}

TEST_CASE("without tracefs mounted the daemon mounts it and tracepoints still attach", "[cli]")
{
    // In a private mount namespace, so the host keeps its tracefs.
    auto d = start_daemon({"--list-modes", "--json"}, 0, []() {
        if (unshare(CLONE_NEWNS) || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr))
            _exit(97);
        umount2("/sys/kernel/tracing", MNT_DETACH);  // may not be mounted: fine
        umount2("/sys/kernel/debug/tracing", MNT_DETACH);
    });
    REQUIRE(d.stop(0) == 0);
    CHECK_THAT(d.stderr_text, Catch::Contains("mounted tracefs on /sys/kernel/tracing"));
    auto lines = json_lines(d.stdout_text);
    REQUIRE(lines.size() == 1);
    bool tracepoint_ok = false;
    for (const auto& m : lines[0])
        tracepoint_ok |= m["mode"] == "tracepoint" && m["supported"] == true;
    CHECK(tracepoint_ok);
}

TEST_CASE("a configuration file named on the command line must exist", "[cli]")
{
    // (Every other configuration error: tests/integration/lifecycle-test.sh.)
    auto d = start_daemon({"--foreground", "--config=/nonexistent/unlinkd.json"});
    CHECK(d.stop(0) == 6);
    CHECK_THAT(d.stderr_text, Catch::Contains("cannot read the configuration /nonexistent/unlinkd.json"));
}
