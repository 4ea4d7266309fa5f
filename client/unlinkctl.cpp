// unlinkctl: talks to unlinkd over D-Bus only (spec section 6).
//
//   unlinkctl [--json] [--bus-address=ADDR] status | top [N] | events [-f] [N]
//             | filter [RULE...|--clear] | mode [MODE] | reset
//             | metrics [--http | --output=FILE]
//
// Exit codes scripts can trust: 0 ok; 1 other failure; 2 bad usage or input
// the daemon rejected (InvalidArgs); 3 unlinkd is not running; 4 not
// permitted (AccessDenied, InteractiveAuthorizationRequired); 5 the kernel
// refuses the attach mode.
#include <fcntl.h>
#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/format.h"
#include "core/metrics.h"
#include "unlinkd1.h"
#include "unlinkd1_proxy.h"

namespace {

using namespace unlinkd;

using json = nlohmann::json;
using bus::EventRow;
using bus::ProcessRow;

enum Exit { ok = 0, failed = 1, usage = 2, not_running = 3, denied = 4, unsupported = 5 };

struct Failure {
    Exit code;
    std::string message;
};

constexpr const char* usage_text =
    "Usage: unlinkctl [--json] [--bus-address=ADDR] COMMAND\n"
    "  status              daemon state, attach mode and totals\n"
    "  top [N]             the N processes with the most deletions (default 10)\n"
    "  events [-f] [N]     the N most recent deletions (default 20); -f: then follow new ones\n"
    "  filter [RULE...]    show the filter, or replace it (root); --clear removes it\n"
    "  mode [MODE]         show attach modes, or switch to auto|fentry|kprobe|tracepoint (root)\n"
    "  reset               clear the counts (root)\n"
    "  metrics             the counters in Prometheus text format (0.0.4)\n"
    "    --output=FILE     write them to FILE atomically (node_exporter's textfile collector)\n"
    "    --http            answer one HTTP request on stdin: GET /metrics (a socket unit's Accept=yes)\n"
    "Exit codes: 0 ok, 1 failure, 2 bad input, 3 unlinkd not running, 4 not permitted,\n"
    "5 attach mode refused by the kernel.\n";

std::string iso_time(std::uint64_t usec)
{
    if (usec == 0)
        return "-";
    std::time_t t = static_cast<std::time_t>(usec / 1000000);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

// Prints rows as aligned columns.
void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows)
{
    std::vector<size_t> width(head.size());
    for (size_t i = 0; i < head.size(); ++i)
        width[i] = head[i].size();
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i)
            width[i] = std::max(width[i], r[i].size());
    auto line = [&](const std::vector<std::string>& r) {
        std::string out;
        for (size_t i = 0; i < r.size(); ++i) {
            std::string cell = r[i];
            if (i + 1 < r.size())
                cell.resize(width[i], ' ');
            out += cell + (i + 1 < r.size() ? "  " : "");
        }
        std::cout << out << "\n";
    };
    line(head);
    for (const auto& r : rows)
        line(r);
}

json process_json(const ProcessRow& r)
{
    return {{"pid", r.get<0>()},     {"uid", r.get<1>()},      {"loginuid", r.get<2>()},  {"comm", r.get<3>()},
            {"deletes", r.get<4>()}, {"failures", r.get<5>()}, {"last_usec", r.get<6>()}, {"unit", r.get<7>()}};
}

json event_json(const EventRow& e)
{
    return {{"time_usec", e.get<0>()}, {"pid", e.get<1>()},  {"uid", e.get<2>()},    {"loginuid", e.get<3>()},
            {"comm", e.get<4>()},      {"exe", e.get<5>()},  {"path", e.get<6>()},   {"result", e.get<7>()},
            {"unit", e.get<8>()},      {"op", e.get<9>()}};
}

// A login uid as auditd shows an unset one.
std::string auid_text(std::uint32_t loginuid)
{
    return loginuid == 4294967295u ? "unset" : std::to_string(loginuid);
}

// Turns the daemon's errors into exit codes; `what` words a refusal.
template <typename F>
auto guarded(const std::string& what, F&& f) -> decltype(f())
{
    try {
        return f();
    } catch (const sdbus::Error& e) {
        const auto& name = e.getName();
        // The daemon says why (polkit refused, needs authentication, or is
        // not there). unlinkctl does not ask for interactive authorization:
        // it has no authentication agent of its own.
        if (name == bus::error_access_denied || name == bus::error_interactive_required)
            throw Failure{denied, what + " was refused: " + e.getMessage()};
        if (name == bus::error_invalid_args)
            throw Failure{usage, e.getMessage()};
        if (name == bus::error_mode_unsupported)
            throw Failure{unsupported, e.getMessage()};
        if (name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner")
            throw Failure{not_running, "unlinkd is not running"};
        throw Failure{failed, name + ": " + e.getMessage()};
    }
}

// The bus, once unlinkd is known to own its name there. Asked before any call:
// a call to the unowned name would start unlinkd by bus activation instead.
std::unique_ptr<sdbus::IConnection> connect(const std::optional<std::string>& address)
{
    std::unique_ptr<sdbus::IConnection> connection;
    try {
        connection = address ? sdbus::createSessionBusConnectionWithAddress(*address) : sdbus::createSystemBusConnection();
    } catch (const sdbus::Error& e) {
        throw Failure{not_running, "cannot reach the D-Bus system bus (" + e.getMessage() + "): unlinkd is not running"};
    }
    bool running = false;
    sdbus::createProxy(*connection, "org.freedesktop.DBus", "/org/freedesktop/DBus")
        ->callMethod("NameHasOwner").onInterface("org.freedesktop.DBus").withArguments(std::string(bus::name)).storeResultsTo(running);
    if (!running)
        throw Failure{not_running, "unlinkd is not running (no " + std::string(bus::name) + " on the bus)"};
    return connection;
}

// One of unlinkd's objects through the proxy class generated from the XML.
// Its signals are matched, and reach on_deleted, only when one is given: each
// match costs a round trip, and on the main object root would get the
// broadcast copy of every Deleted its subscription already brings.
class Unlinkd final : public sdbus::ProxyInterfaces<org::unlinkd::Unlinkd1_proxy> {
public:
    Unlinkd(sdbus::IConnection& c, const char* path, std::function<void(const EventRow&)> on_deleted = {})
        : ProxyInterfaces(c, bus::name, path), on_deleted_(std::move(on_deleted))
    {
        if (on_deleted_)
            registerProxy();
    }
    ~Unlinkd() { unregisterProxy(); }

    // Every property in one round trip (org.freedesktop.DBus.Properties.GetAll).
    std::map<std::string, sdbus::Variant> all_properties()
    {
        std::map<std::string, sdbus::Variant> out;
        getProxy()
            .callMethod("GetAll")
            .onInterface("org.freedesktop.DBus.Properties")
            .withArguments(std::string(bus::interface_name))
            .storeResultsTo(out);
        return out;
    }

private:
    void onDeleted(const std::uint64_t& t, const std::uint32_t& pid, const std::uint32_t& uid,
                   const std::uint32_t& loginuid, const std::string& comm, const std::string& exe,
                   const std::string& path, const std::int32_t& result, const std::string& unit,
                   const std::string& op) override
    {
        on_deleted_({t, pid, uid, loginuid, comm, exe, path, result, unit, op});
    }
    void onSummary(const std::vector<ProcessRow>&) override {}

    std::function<void(const EventRow&)> on_deleted_;
};

std::atomic<sdbus::IConnection*> following{nullptr};  // what SIGINT/SIGTERM stop

class Client {
public:
    Client(const std::optional<std::string>& address, bool json)
        : json_(json), connection_(connect(address)), unlinkd_(*connection_, bus::object_path)
    {
    }

    void status()
    {
        json s = guarded("reading the status", [this] {
            return json{
                {"version", unlinkd_.Version()},
                {"attach_mode", unlinkd_.AttachMode()},
                {"requested_attach_mode", unlinkd_.RequestedAttachMode()},
                {"supported_attach_modes", unlinkd_.SupportedAttachModes()},
                {"filters", unlinkd_.Filters()},
                {"total_deletes", unlinkd_.TotalDeletes()},
                {"total_failures", unlinkd_.TotalFailures()},
                {"lost_events", unlinkd_.LostEvents()},
                {"tracked_processes", unlinkd_.TrackedProcesses()},
                {"evicted_processes", unlinkd_.EvictedProcesses()},
                {"suppressed_signals", unlinkd_.SuppressedSignals()},
            };
        });
        if (json_) {
            std::cout << s.dump() << "\n";
            return;
        }
        std::string filters;
        for (const auto& f : s["filters"]) {
            if (!filters.empty())
                filters += ' ';
            filters += f.get<std::string>();  // not ("" or " ") + f: GCC PR 105651
        }
        std::cout << "unlinkd " << s["version"].get<std::string>() << "\n"
                  << "attach mode:       " << s["attach_mode"].get<std::string>() << " (requested "
                  << s["requested_attach_mode"].get<std::string>() << ")\n"
                  << "filters:           " << (filters.empty() ? "none (every deletion counts)" : filters) << "\n"
                  << "deletions:         " << s["total_deletes"] << "\n"
                  << "failed deletions:  " << s["total_failures"] << "\n"
                  << "processes:         " << s["tracked_processes"] << " tracked, " << s["evicted_processes"]
                  << " evicted\n"
                  << "lost events:       " << s["lost_events"] << "\n"
                  << "suppressed signals: " << s["suppressed_signals"] << "\n";
    }

    void top(std::uint32_t count)
    {
        auto rows = guarded("listing processes", [&] { return unlinkd_.GetTopProcesses(count); });
        if (json_) {
            json out = json::array();
            for (const auto& r : rows)
                out.push_back(process_json(r));
            std::cout << out.dump() << "\n";
            return;
        }
        std::vector<std::vector<std::string>> cells;
        for (const auto& r : rows)
            cells.push_back({std::to_string(r.get<0>()), std::to_string(r.get<1>()), auid_text(r.get<2>()), r.get<3>(),
                             std::to_string(r.get<4>()), std::to_string(r.get<5>()), iso_time(r.get<6>()),
                             r.get<7>().empty() ? "-" : r.get<7>()});
        print_table({"PID", "UID", "AUID", "COMM", "DELETED", "FAILED", "LAST", "UNIT"}, cells);
    }

    void events(std::uint32_t count, bool follow)
    {
        if (follow) {  // SIGINT and SIGTERM end following with exit code 0
            following = connection_.get();
            for (int sig : {SIGINT, SIGTERM})
                std::signal(sig, [](int) { following.load()->leaveEventLoop(); });
        }
        auto rows = guarded("listing events", [&] { return unlinkd_.GetRecentEvents(count); });
        if (!json_)
            std::printf("%-20s %-8s %-6s %-6s %-16s %-6s %-10s %s  %s\n", "TIME", "PID", "UID", "AUID", "COMM", "OP",
                        "RESULT", "PATH", "EXE");
        for (const auto& e : rows)
            print_event(e);
        std::cout.flush();
        if (!follow)
            return;
        // Signals addressed to this client alone, limited to what it may see;
        // matched before subscribing so none is missed.
        Unlinkd subscription(*connection_, bus::subscription_path, [this](const EventRow& e) {
            print_event(e);
            std::cout.flush();
        });
        guarded("subscribing", [this] { unlinkd_.Subscribe(); });
        connection_->enterEventLoop();  // until SIGINT/SIGTERM
    }

    void filter(const std::vector<std::string>& rules, bool clear)
    {
        if (clear || !rules.empty())
            guarded("changing filters", [&] { unlinkd_.SetFilters(rules); });
        auto now = guarded("reading Filters", [this] { return unlinkd_.Filters(); });
        if (json_) {
            std::cout << json(now).dump() << "\n";
            return;
        }
        if (now.empty())
            std::cout << "no filter: every deletion counts\n";
        for (const auto& r : now)
            std::cout << r << "\n";
    }

    void mode(const std::optional<std::string>& wanted)
    {
        if (wanted)
            guarded("changing the attach mode", [&] { unlinkd_.SetAttachMode(*wanted); });
        auto [info, attached, requested] = guarded("reading the modes", [this] {
            return std::tuple{unlinkd_.GetModeInfo(), unlinkd_.AttachMode(), unlinkd_.RequestedAttachMode()};
        });
        if (json_) {
            json modes = json::array();
            for (const auto& m : info)
                modes.push_back({{"mode", m.get<0>()}, {"supported", m.get<1>()}, {"reason", m.get<2>()}});
            std::cout << json{{"attach_mode", attached}, {"requested_attach_mode", requested}, {"modes", modes}}.dump() << "\n";
            return;
        }
        std::cout << "attached: " << attached << " (requested " << requested << ")\n";
        for (const auto& m : info)
            std::cout << "  " << (m.get<1>() ? m.get<0>() + ": available" : m.get<2>()) << "\n";
    }

    // One round trip for the properties, one for the units: a scrape stays
    // cheap for the daemon.
    MetricsInput metrics()
    {
        return guarded("reading the counters", [this] {
            auto p = unlinkd_.all_properties();
            auto get = [&p]<typename T>(const char* name, T) {
                auto it = p.find(name);
                if (it == p.end())
                    throw Failure{failed, std::string("unlinkd has no property ") + name + " (an older daemon?)"};
                return it->second.get<T>();
            };
            using ByOp = std::map<std::string, std::uint64_t>;
            auto deletes = get("DeletesByOp", ByOp{});
            auto failures = get("FailuresByOp", ByOp{});
            MetricsInput in;
            in.version = get("Version", std::string{});
            in.attach_mode = get("AttachMode", std::string{});
            in.unlink_deletes = deletes["unlink"];
            in.rmdir_deletes = deletes["rmdir"];
            in.unlink_failures = failures["unlink"];
            in.rmdir_failures = failures["rmdir"];
            in.lost_events = get("LostEvents", std::uint64_t{});
            in.suppressed_signals = get("SuppressedSignals", std::uint64_t{});
            in.events_unstreamed = get("EventsUnstreamed", std::uint64_t{});
            in.lost_exits = get("LostExits", std::uint64_t{});
            in.tracked_processes = get("TrackedProcesses", std::uint32_t{});
            in.evicted_processes = get("EvictedProcesses", std::uint64_t{});
            for (const auto& u : unlinkd_.GetUnitCounts())
                in.units.push_back({u.get<0>(), u.get<1>(), u.get<2>()});
            return in;
        });
    }

    void reset()
    {
        guarded("resetting the counts", [this] { unlinkd_.Reset(); });
        if (!json_)
            std::cout << "counts reset\n";
    }

private:
    void print_event(const EventRow& e)
    {
        if (json_) {
            std::cout << event_json(e).dump() << "\n";
            return;
        }
        // The path is what the line is about, the executable comes last:
        // both are escaped by the daemon, so neither can break the line.
        std::printf("%-20s %-8u %-6u %-6s %-16s %-6s %-10s %s  %s\n", iso_time(e.get<0>()).c_str(), e.get<1>(),
                    e.get<2>(), auid_text(e.get<3>()).c_str(), e.get<4>().c_str(), e.get<9>().c_str(),
                    errno_name(e.get<7>()).c_str(), e.get<6>().c_str(), e.get<5>().empty() ? "-" : e.get<5>().c_str());
        std::fflush(stdout);
    }

    bool json_;
    std::unique_ptr<sdbus::IConnection> connection_;
    Unlinkd unlinkd_;
};

std::uint32_t parse_count(const std::string& s)
{
    try {
        size_t used = 0;
        unsigned long n = std::stoul(s, &used);
        if (used == s.size() && n > 0 && n <= UINT32_MAX)
            return static_cast<std::uint32_t>(n);
    } catch (const std::exception&) {
    }
    throw Failure{usage, "\"" + s + "\" is not a count (a whole number from 1)"};
}

// Writes `text` to `path` so that a reader sees the old file or the new one,
// never a part: a temporary file beside it (a dot name, which node_exporter's
// *.prom glob skips), flushed to disk, then renamed over it.
void write_atomically(const std::string& path, const std::string& text)
{
    auto slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    if (base.empty())
        throw Failure{usage, "--output needs a file name, not a directory: " + path};
    std::string tmp = dir + "/." + base + ".XXXXXX";
    int fd = mkstemp(tmp.data());
    if (fd < 0)
        throw Failure{failed, "cannot create a file in " + dir + ": " + std::strerror(errno)};
    auto fail = [&](const char* what) {
        int e = errno;
        close(fd);
        unlink(tmp.c_str());
        throw Failure{failed, std::string("cannot ") + what + " " + tmp + ": " + std::strerror(e)};
    };
    // mkstemp makes it 0600; readers such as node_exporter run as another user.
    if (fchmod(fd, 0644) != 0)
        fail("chmod");
    for (size_t done = 0; done < text.size();) {
        ssize_t n = write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("write");
        done += static_cast<size_t>(n);
    }
    if (fsync(fd) != 0)
        fail("sync");
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp.c_str());
        throw Failure{failed, "cannot write " + tmp + ": " + std::strerror(e)};
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        unlink(tmp.c_str());
        throw Failure{failed, "cannot rename " + tmp + " to " + path + ": " + std::strerror(e)};
    }
}

void write_all(int fd, const std::string& data)
{
    for (size_t done = 0; done < data.size();) {
        ssize_t n = write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;  // the peer went away: nothing to tell it
        done += static_cast<size_t>(n);
    }
}

// How long a client has to send its request head, and how much of it is
// read: a scraper sends a few hundred bytes at once; a client that does not
// must not hold the connection (and this process) open.
constexpr auto http_read_timeout = std::chrono::seconds(10);
constexpr size_t http_max_head = 16 * 1024;

// One request on stdin (the connection systemd accepted), the answer on
// stdout. Reads the bus only for a request it will answer with 200.
int serve_http(const std::optional<std::string>& address)
{
    std::string head;
    auto deadline = std::chrono::steady_clock::now() + http_read_timeout;
    bool timed_out = false;
    while (!http_head_complete(head) && head.size() < http_max_head) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{STDIN_FILENO, POLLIN, 0};
        int r = poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            timed_out = true;
            break;
        }
        if (r < 0)
            return failed;
        char buf[4096];
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;  // the peer closed: answer what came
        head.append(buf, static_cast<size_t>(n));
    }
    constexpr const char* text_plain = "text/plain; charset=utf-8";
    if (timed_out && !http_head_complete(head)) {
        write_all(STDOUT_FILENO, http_response(408, text_plain, "no complete request within the time allowed\n"));
        return ok;
    }
    auto answer = http_answer(head);
    if (answer.status != 200) {
        static const char* why[] = {"bad request\n", "only /metrics is here\n", "only GET and HEAD are allowed\n"};
        const char* body = answer.status == 404 ? why[1] : answer.status == 405 ? why[2] : why[0];
        write_all(STDOUT_FILENO, http_response(answer.status, text_plain, body));
        // Answered as it should be: the instance did its job. (A failed exit
        // would leave an instance unit marked failed per stray request.)
        return ok;
    }
    try {
        Client client(address, false);
        write_all(STDOUT_FILENO, http_response(200, metrics_content_type, metrics_text(client.metrics()), answer.head));
        return ok;
    } catch (const Failure& f) {
        // The scrape fails (Prometheus's up == 0) and says why.
        write_all(STDOUT_FILENO, http_response(503, text_plain, "unlinkctl: " + f.message + "\n", answer.head));
        std::cerr << "unlinkctl: " << f.message << "\n";
        return f.code;
    }
}

}  // namespace

int main(int argc, char** argv)
{
    std::vector<std::string> args(argv + 1, argv + argc);
    bool json = false;
    std::optional<std::string> address;
    std::vector<std::string> rest;
    for (const auto& a : args) {
        if (a == "--json")
            json = true;
        else if (a.rfind("--bus-address=", 0) == 0)
            address = a.substr(14);
        else if (a == "--help" || a == "-h") {
            std::cout << usage_text;
            return ok;
        } else
            rest.push_back(a);
    }
    if (rest.empty()) {
        std::cerr << usage_text;
        return usage;
    }
    try {
        std::string command = rest[0];
        std::vector<std::string> operands(rest.begin() + 1, rest.end());
        static const std::vector<std::string> known{"status", "top", "events", "filter", "mode", "reset", "metrics"};
        if (std::find(known.begin(), known.end(), command) == known.end())
            throw Failure{usage, "unknown command \"" + command + "\" (see unlinkctl --help)"};
        if (command == "metrics") {
            if (json)
                throw Failure{usage, "metrics has no --json: its format is Prometheus's"};
            if (operands.size() == 1 && operands[0] == "--http")
                return serve_http(address);
            if (operands.size() > 1 || (operands.size() == 1 && operands[0].rfind("--output=", 0) != 0))
                throw Failure{usage, "wrong arguments for \"metrics\" (see unlinkctl --help)"};
            Client client(address, false);
            auto text = metrics_text(client.metrics());
            if (operands.empty())
                std::cout << text << std::flush;
            else
                write_atomically(operands[0].substr(9), text);
            return ok;
        }
        Client client(address, json);
        if (command == "status" && operands.empty()) {
            client.status();
        } else if (command == "top" && operands.size() <= 1) {
            client.top(operands.empty() ? 10 : parse_count(operands[0]));
        } else if (command == "events") {
            bool follow = false;
            std::uint32_t count = 20;
            for (const auto& o : operands) {
                if (o == "-f" || o == "--follow")
                    follow = true;
                else
                    count = parse_count(o);
            }
            client.events(count, follow);
        } else if (command == "filter") {
            bool clear = std::find(operands.begin(), operands.end(), "--clear") != operands.end();
            if (clear && operands.size() > 1)
                throw Failure{usage, "filter --clear takes no rules"};
            client.filter(clear ? std::vector<std::string>{} : operands, clear);
        } else if (command == "mode" && operands.size() <= 1) {
            client.mode(operands.empty() ? std::nullopt : std::optional(operands[0]));
        } else if (command == "reset" && operands.empty()) {
            client.reset();
        } else {
            throw Failure{usage, "wrong arguments for \"" + command + "\" (see unlinkctl --help)"};
        }
    } catch (const Failure& f) {
        std::cerr << "unlinkctl: " << f.message << "\n";
        return f.code;
    } catch (const sdbus::Error& e) {
        std::cerr << "unlinkctl: " << e.getName() << ": " << e.getMessage() << "\n";
        return failed;
    }
    return ok;
}
