// The bad-input sweep (issue 16, part 3): every method and property of the
// live daemon, over a real system-like dbus-daemon with the project's bus
// policy, with wrong signatures, empty and huge arrays, 1 MiB strings,
// extreme counts, unknown modes, as root and as uid 65534. Each case must get
// the error it names (or a correct answer); after each, root's plain Get is
// answered within 100 ms (a contract bound on one answer, not a benchmark)
// and the filters, the mode and the counts are what they were (or, for an
// accepted change, what was asked).
//
// Raw sd-bus, not sdbus-c++, sends the calls: sdbus-c++ types every argument
// at compile time, and a sweep needs arbitrary signatures. Process and event
// rows are read only as far as their first two fields (pid, uid): the rows
// grow fields, the sweep should not care.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bus_harness.h"
#include "harness.h"

using namespace unlinkd;
using namespace unlinkd::test;

namespace {

constexpr const char* name = "org.unlinkd.Unlinkd1";
constexpr const char* main_path = "/org/unlinkd/Unlinkd1";
constexpr const char* sub_path = "/org/unlinkd/Unlinkd1/Subscription";
constexpr const char* iface = "org.unlinkd.Unlinkd1";
constexpr const char* props = "org.freedesktop.DBus.Properties";
constexpr uid_t nobody = 65534;
// The contract's bound for root's answer after a case (issue 16): reported
// as a figure, not asserted, since a loaded CI machine measures itself as
// much as the daemon. What is asserted is that root is answered at all,
// within hang_bound.
constexpr auto answer_bound = std::chrono::milliseconds(100);
constexpr auto hang_bound = std::chrono::seconds(5);

const std::string invalid_args = "org.freedesktop.DBus.Error.InvalidArgs";
const std::string access_denied = "org.freedesktop.DBus.Error.AccessDenied";
const std::string unknown_method = "org.freedesktop.DBus.Error.UnknownMethod";
const std::string unknown_property = "org.freedesktop.DBus.Error.UnknownProperty";
const std::string unknown_interface = "org.freedesktop.DBus.Error.UnknownInterface";
const std::string unknown_object = "org.freedesktop.DBus.Error.UnknownObject";
const std::string read_only = "org.freedesktop.DBus.Error.PropertyReadOnly";
const std::string mode_unsupported = "org.unlinkd.Unlinkd1.Error.ModeUnsupported";
const std::string limits_exceeded = "org.freedesktop.DBus.Error.LimitsExceeded";

struct BusDeleter {
    void operator()(sd_bus* b) const { sd_bus_flush_close_unref(b); }
};
using Bus = std::unique_ptr<sd_bus, BusDeleter>;
struct MessageDeleter {
    void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using Message = std::unique_ptr<sd_bus_message, MessageDeleter>;

// A client connection as `uid`. The bus records the peer's credentials when
// the socket connects (SO_PEERCRED, SO_PEERGROUPS), so a thread that takes
// uid 65534 for itself alone (the raw system calls change one thread's
// credentials; glibc's wrappers would change every thread's) connects, and
// the connection is uid 65534's for good; the test's own threads stay root.
Bus connect_as(const std::string& address, uid_t uid = 0)
{
    sd_bus* bus = nullptr;
    int r = 0;
    std::thread([&]() {
        if (uid != 0 && (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setresgid, -1, uid, -1) != 0 ||
                         syscall(SYS_setresuid, -1, uid, -1) != 0)) {
            r = -errno;
            return;
        }
        if ((r = sd_bus_new(&bus)) < 0 || (r = sd_bus_set_address(bus, address.c_str())) < 0 ||
            (r = sd_bus_set_bus_client(bus, 1)) < 0 || (r = sd_bus_negotiate_fds(bus, 1)) < 0 ||
            (r = sd_bus_start(bus)) < 0)
            return;
        const char* unique = nullptr;
        r = sd_bus_get_unique_name(bus, &unique);  // waits for Hello: authenticated as this thread
    }).join();
    INFO("connecting as uid " << uid << ": " << strerror(-r));
    REQUIRE(r >= 0);
    return Bus(bus);
}

// How a case builds its arguments.
using Args = std::function<void(sd_bus_message*)>;

// Appends one complete type of `sig` starting at `at` with a plain value
// (zero, empty, "/", an empty or one-element array), returns past it.
std::size_t append_value(sd_bus_message* m, const std::string& sig, std::size_t at)
{
    char c = sig[at];
    int r = 0;
    switch (c) {
    case 'y': r = sd_bus_message_append_basic(m, c, std::array<std::uint8_t, 1>{7}.data()); break;
    case 'b': {
        int v = 1;
        r = sd_bus_message_append_basic(m, c, &v);
        break;
    }
    case 'n': case 'q': case 'i': case 'u': case 'x': case 't': case 'd': {
        std::uint64_t v = 0;
        r = sd_bus_message_append_basic(m, c, &v);
        break;
    }
    case 's': r = sd_bus_message_append_basic(m, c, "tracepoint"); break;
    case 'o': r = sd_bus_message_append_basic(m, c, "/"); break;
    case 'g': r = sd_bus_message_append_basic(m, c, "s"); break;
    case 'h': {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        r = sd_bus_message_append_basic(m, c, &fd);
        close(fd);
        break;
    }
    case 'v':
        r = sd_bus_message_append(m, "v", "s", "uid=0");
        break;
    case 'a': {
        std::size_t end = at + 1;
        std::size_t depth = 0;
        // the element type's extent
        do {
            if (sig[end] == '(' || sig[end] == '{')
                ++depth;
            else if (sig[end] == ')' || sig[end] == '}')
                --depth;
            ++end;
        } while (depth > 0 || sig[end - 1] == 'a');
        std::string element = sig.substr(at + 1, end - at - 1);
        REQUIRE(sd_bus_message_open_container(m, 'a', element.c_str()) >= 0);
        append_value(m, element, 0);
        REQUIRE(sd_bus_message_close_container(m) >= 0);
        return end;
    }
    case '(': case '{': {
        char close_c = c == '(' ? ')' : '}';
        std::size_t end = at + 1, depth = 1;
        while (depth) {
            if (sig[end] == '(' || sig[end] == '{')
                ++depth;
            else if (sig[end] == ')' || sig[end] == '}')
                --depth;
            ++end;
        }
        std::string inner = sig.substr(at + 1, end - at - 2);
        REQUIRE(sd_bus_message_open_container(m, c == '(' ? 'r' : 'e', inner.c_str()) >= 0);
        for (std::size_t i = 0; i < inner.size();)
            i = append_value(m, inner, i);
        REQUIRE(sd_bus_message_close_container(m) >= 0);
        (void)close_c;
        return end;
    }
    default: FAIL("no value for type " << c);
    }
    REQUIRE(r >= 0);
    return at + 1;
}

Args with_signature(const std::string& sig)
{
    return [sig](sd_bus_message* m) {
        for (std::size_t i = 0; i < sig.size();)
            i = append_value(m, sig, i);
    };
}
Args no_args() { return [](sd_bus_message*) {}; }
Args a_u32(std::uint32_t v)
{
    return [v](sd_bus_message* m) { REQUIRE(sd_bus_message_append_basic(m, 'u', &v) >= 0); };
}
Args a_string(const std::string& s)
{
    return [s](sd_bus_message* m) { REQUIRE(sd_bus_message_append_basic(m, 's', s.c_str()) >= 0); };
}
Args strings(const std::vector<std::string>& v)
{
    return [v](sd_bus_message* m) {
        REQUIRE(sd_bus_message_open_container(m, 'a', "s") >= 0);
        for (const auto& s : v)
            REQUIRE(sd_bus_message_append_basic(m, 's', s.c_str()) >= 0);
        REQUIRE(sd_bus_message_close_container(m) >= 0);
    };
}
Args prop_args(const std::string& interface, const std::string& property)
{
    return [=](sd_bus_message* m) { REQUIRE(sd_bus_message_append(m, "ss", interface.c_str(), property.c_str()) >= 0); };
}

struct Reply {
    std::string error;    // empty: a method return
    std::string message;  // the error's message
    Message m;
};

Reply call(sd_bus* bus, const std::string& path, const std::string& interface, const std::string& member,
           const Args& args)
{
    sd_bus_message* raw = nullptr;
    REQUIRE(sd_bus_message_new_method_call(bus, &raw, name, path.c_str(), interface.c_str(), member.c_str()) >= 0);
    Message m(raw);
    args(m.get());
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call(bus, m.get(), 30'000'000, &error, &reply);
    Reply out{{}, {}, Message(reply)};
    if (r < 0) {
        out.error = error.name ? error.name : "errno " + std::to_string(-r);
        out.message = error.message ? error.message : "";
    }
    sd_bus_error_free(&error);
    return out;
}

// Rows of an a(...) reply: (pid, uid) of each, the rest skipped.
std::vector<std::pair<std::uint32_t, std::uint32_t>> pid_uid_rows(sd_bus_message* m)
{
    std::vector<std::pair<std::uint32_t, std::uint32_t>> rows;
    const char* contents = nullptr;
    char type = 0;
    REQUIRE(sd_bus_message_peek_type(m, &type, &contents) > 0);
    REQUIRE(type == 'a');
    REQUIRE(sd_bus_message_enter_container(m, 'a', contents) >= 0);
    std::string row(contents);
    while (sd_bus_message_enter_container(m, 'r', row.substr(1, row.size() - 2).c_str()) > 0) {
        std::uint32_t a = 0, b = 0;
        REQUIRE(sd_bus_message_read_basic(m, 'u', &a) >= 0);
        REQUIRE(sd_bus_message_read_basic(m, 'u', &b) >= 0);
        // GetProcesses' rows start pid, uid; GetRecentEvents' start time, pid, uid.
        rows.emplace_back(a, b);
        while (sd_bus_message_at_end(m, false) == 0)
            REQUIRE(sd_bus_message_skip(m, nullptr) >= 0);
        REQUIRE(sd_bus_message_exit_container(m) >= 0);
    }
    REQUIRE(sd_bus_message_exit_container(m) >= 0);
    return rows;
}

std::size_t array_length(sd_bus_message* m)
{
    const char* contents = nullptr;
    char type = 0;
    REQUIRE(sd_bus_message_peek_type(m, &type, &contents) > 0);
    REQUIRE(type == 'a');
    REQUIRE(sd_bus_message_enter_container(m, 'a', contents) >= 0);
    std::size_t n = 0;
    while (sd_bus_message_at_end(m, false) == 0) {
        REQUIRE(sd_bus_message_skip(m, contents) >= 0);
        ++n;
    }
    REQUIRE(sd_bus_message_exit_container(m) >= 0);
    return n;
}

// What the daemon shows and no rejected call may change.
struct Snapshot {
    std::vector<std::string> filters;
    std::string attached, requested;
    std::uint64_t deletes = 0, failures = 0;
    bool operator==(const Snapshot& o) const
    {
        return filters == o.filters && attached == o.attached && requested == o.requested && deletes == o.deletes &&
               failures == o.failures;
    }
};

std::string get_string(sd_bus* bus, const char* property)
{
    sd_bus_error error = SD_BUS_ERROR_NULL;
    char* value = nullptr;
    int r = sd_bus_get_property_string(bus, name, main_path, iface, property, &error, &value);
    INFO(property << ": " << (error.message ? error.message : ""));
    sd_bus_error_free(&error);
    REQUIRE(r >= 0);
    std::string out = value;
    free(value);
    return out;
}

std::uint64_t get_u64(sd_bus* bus, const char* property)
{
    sd_bus_error error = SD_BUS_ERROR_NULL;
    std::uint64_t value = 0;
    int r = sd_bus_get_property_trivial(bus, name, main_path, iface, property, &error, 't', &value);
    sd_bus_error_free(&error);
    REQUIRE(r >= 0);
    return value;
}

Snapshot snapshot(sd_bus* bus)
{
    Snapshot s;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    char** list = nullptr;
    REQUIRE(sd_bus_get_property_strv(bus, name, main_path, iface, "Filters", &error, &list) >= 0);
    sd_bus_error_free(&error);
    for (char** p = list; p && *p; ++p) {
        s.filters.emplace_back(*p);
        free(*p);
    }
    free(list);
    s.attached = get_string(bus, "AttachMode");
    s.requested = get_string(bus, "RequestedAttachMode");
    s.deletes = get_u64(bus, "TotalDeletes");
    s.failures = get_u64(bus, "TotalFailures");
    return s;
}

// One plain Get as root, timed: the daemon answers it within the bound.
std::chrono::microseconds timed_get(sd_bus* bus)
{
    auto start = std::chrono::steady_clock::now();
    std::string version = get_string(bus, "Version");
    auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    CHECK(version == UNLINKD_VERSION);
    return took;
}

enum class Who { root, nobody };

struct Case {
    std::string group;
    std::string what;
    Who who;
    std::string path, interface, member;
    Args args;
    std::string expect;  // the error's name; empty: a method return
    // For a method return: checks the reply; for an error: its message.
    std::function<void(Reply&)> check = {};
    // An accepted change: the state it leaves (then restored).
    std::function<void(Snapshot&)> changes = {};
};

std::string policy_file() { return dbus_source_dir() + "/org.unlinkd.Unlinkd1.conf"; }

bool wait_for_name(sd_bus* bus)
{
    return poll_until([&]() {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                   "GetNameOwner", &error, nullptr, "s", name);
        sd_bus_error_free(&error);
        return r >= 0;
    }, std::chrono::seconds(60), std::chrono::milliseconds(100));
}

std::string first_mode() { return std::string(mode_name(test_modes().front())); }

// The daemon of the sweep: in the foreground (events go to a file), one mode
// asked explicitly (so a SetAttachMode of that mode changes nothing), and a
// filter that keeps the counts to this test's own deletions.
std::vector<std::string> daemon_args(const std::string& address, const std::vector<std::string>& extra = {})
{
    std::vector<std::string> args{"--foreground", "--bus-address=" + address, "--mode=" + first_mode(),
                                  "--filter=comm=ulk-sweep"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

// Known counts to guard: 3 deletions and 1 failure by comm ulk-sweep.
void known_counts(sd_bus* root)
{
    Scratch s;
    for (auto f : {"k1", "k2", "k3"})
        s.create(f);
    run_child({"ulk-sweep"}, [&]() {
        return unlink(s.path("k1").c_str()) || unlink(s.path("k2").c_str()) || unlink(s.path("k3").c_str()) ||
                       unlink(s.path("missing").c_str()) != -1
                   ? 1
                   : 0;
    });
    REQUIRE(poll_until([&]() { return get_u64(root, "TotalDeletes") == 3 && get_u64(root, "TotalFailures") == 1; },
                       std::chrono::seconds(10)));
}

const std::vector<std::pair<std::string, std::string>> methods = {
    {"GetProcesses", ""}, {"GetTopProcesses", "u"}, {"GetRecentEvents", "u"}, {"SetFilters", "as"},
    {"SetAttachMode", "s"}, {"Reset", ""}, {"GetModeInfo", ""}, {"Subscribe", ""}, {"Unsubscribe", ""},
};
const std::vector<std::string> wrong_signatures = {
    "", "u", "s", "t", "i", "b", "y", "d", "o", "g", "h", "v", "as", "au", "ay", "a{sv}", "(ss)", "uu", "su", "us",
    "ss", "asas", "aas",
};

const std::vector<std::pair<std::string, std::string>> properties = {
    {"Version", "s"}, {"AttachMode", "s"}, {"RequestedAttachMode", "s"}, {"SupportedAttachModes", "as"},
    {"Filters", "as"}, {"TotalDeletes", "t"}, {"TotalFailures", "t"}, {"LostEvents", "t"},
    {"TrackedProcesses", "u"}, {"EvictedProcesses", "t"}, {"SuppressedSignals", "t"},
    {"DeletesByOp", "a{st}"}, {"FailuresByOp", "a{st}"}, {"EventsUnstreamed", "t"}, {"LostExits", "t"},
};

std::function<void(Reply&)> message_has(const std::string& text, std::size_t max_length = 4096)
{
    return [=](Reply& r) {
        CHECK_THAT(r.message, Catch::Contains(text));
        CHECK(r.message.size() <= max_length);  // a 1 MiB argument is not echoed back whole
    };
}

std::function<void(Reply&)> variant_of(const std::string& type)
{
    return [=](Reply& r) {
        const char* contents = nullptr;
        char t = 0;
        REQUIRE(sd_bus_message_peek_type(r.m.get(), &t, &contents) > 0);
        CHECK(t == 'v');
        CHECK(std::string(contents ? contents : "") == type);
    };
}

std::function<void(Reply&)> at_most_rows(std::size_t n, Who who)
{
    return [=](Reply& r) {
        auto rows = pid_uid_rows(r.m.get());
        CHECK(rows.size() <= n);
        if (who == Who::nobody)
            for (const auto& row : rows)
                CHECK(row.second == nobody);
    };
}

std::function<void(Reply&)> events_at_most(std::size_t n, Who who)
{
    return [=](Reply& r) {
        const char* contents = nullptr;
        char t = 0;
        REQUIRE(sd_bus_message_peek_type(r.m.get(), &t, &contents) > 0);
        REQUIRE(t == 'a');
        std::string row(contents);
        REQUIRE(sd_bus_message_enter_container(r.m.get(), 'a', contents) >= 0);
        std::size_t count = 0;
        while (sd_bus_message_enter_container(r.m.get(), 'r', row.substr(1, row.size() - 2).c_str()) > 0) {
            std::uint64_t time = 0;
            std::uint32_t pid = 0, uid = 0;
            REQUIRE(sd_bus_message_read(r.m.get(), "tuu", &time, &pid, &uid) >= 0);
            if (who == Who::nobody)
                CHECK(uid == nobody);
            while (sd_bus_message_at_end(r.m.get(), false) == 0)
                REQUIRE(sd_bus_message_skip(r.m.get(), nullptr) >= 0);
            REQUIRE(sd_bus_message_exit_container(r.m.get()) >= 0);
            ++count;
        }
        CHECK(count <= n);
    };
}

std::vector<Case> sweep_cases(const std::vector<std::string>& unsupported_modes)
{
    std::vector<Case> cases;
    auto whos = {Who::root, Who::nobody};
    auto who_name = [](Who w) { return w == Who::root ? "root" : "uid 65534"; };

    // Every method with every wrong signature: sd-bus refuses them before the
    // daemon's code runs, for uid 65534 too (the bus policy lets anyone call
    // the state-changing methods: the daemon decides, after the arguments).
    for (const auto& [method, sig] : methods)
        for (const auto& wrong : wrong_signatures) {
            if (wrong == sig)
                continue;
            for (Who who : whos) {
                // uid 65534: a sample (every fourth signature) is enough to show the order
                if (who == Who::nobody && (&wrong - &wrong_signatures[0]) % 4 != 0)
                    continue;
                std::string expect = invalid_args;
                cases.push_back({"wrong signature", method + "(" + wrong + ") as " + who_name(who), who, main_path,
                                 iface, method, with_signature(wrong), expect,
                                 expect == invalid_args ? message_has("expecting '" + sig + "'")
                                                        : std::function<void(Reply&)>{}});
            }
        }
    // The subscription object has the same methods.
    for (const auto& [method, sig] : methods)
        cases.push_back({"wrong signature", method + "(ss) on the subscription object", Who::root, sub_path, iface,
                         method, with_signature("ss"), invalid_args});

    // Counts.
    for (const char* method : {"GetTopProcesses", "GetRecentEvents"})
        for (std::uint32_t n : {0u, 1u, 2u, 1000u, 1024u, 1025u, 65536u, 0x7fffffffu, 0x80000000u, 0xffffffffu})
            for (Who who : whos) {
                bool events = std::string(method) == "GetRecentEvents";
                cases.push_back({"counts", std::string(method) + "(" + std::to_string(n) + ") as " + who_name(who),
                                 who, main_path, iface, method, a_u32(n), n == 0 ? invalid_args : "",
                                 n == 0 ? message_has("count must be 1 or more")
                                 : events ? events_at_most(n, who)
                                          : at_most_rows(n, who)});
            }
    for (Who who : whos)
        cases.push_back({"counts", std::string("GetProcesses as ") + who_name(who), who, main_path, iface,
                         "GetProcesses", no_args(), "", at_most_rows(SIZE_MAX, who)});

    // Filters: bad rules, huge arrays, 1 MiB strings; as uid 65534 refused by the bus.
    const std::string mib(1 << 20, 'a');
    std::vector<std::pair<std::string, std::vector<std::string>>> bad_rules = {
        {"an empty rule", {""}},
        {"no field", {"=1"}},
        {"no value", {"uid="}},
        {"no operator", {"uid"}},
        {"unknown field", {"colour=red"}},
        {"uppercase field", {"UID=0"}},
        {"double operator", {"uid==0"}},
        {"negative uid", {"uid=-1"}},
        {"uid 2^32", {"uid=4294967296"}},
        {"uid with spaces", {"uid= 0"}},
        {"uid hex", {"uid=0x10"}},
        {"pid 0", {"pid=0"}},
        {"pid 2^64", {"pid=18446744073709551616"}},
        {"comm of 16 bytes", {"comm=0123456789abcdef"}},
        {"relative path", {"path=tmp/x"}},
        {"unit without a suffix", {"unit=cron"}},
        {"unit with a slash", {"unit=a/b.service"}},
        {"a good rule then a bad one", {"uid=0", "colour=red"}},
        {"1 MiB of garbage", {mib}},
        {"a 1 MiB comm", {"comm=" + mib}},
        {"a 1 MiB path", {"path=/" + mib}},
        {"a 1 MiB unit", {"unit=" + mib + ".service"}},
        {"a 1 MiB uid", {"uid=" + std::string(1 << 20, '1')}},
        {"1025 rules", std::vector<std::string>(1025, "uid=1")},
        {"100k rules", std::vector<std::string>(100'000, "uid=1")},
        {"100k empty rules", std::vector<std::string>(100'000, "")},
    };
    for (const auto& [what, rules] : bad_rules)
        cases.push_back({"filters", "SetFilters: " + what, Who::root, main_path, iface, "SetFilters", strings(rules),
                         invalid_args, message_has(rules.size() > 1024 ? "too many filter rules" : "filter rule")});
    // uid 65534: a bad rule is refused before polkit would be asked; a good
    // one goes to polkit, which is not on this private bus: denied, saying so.
    for (const auto& [what, rules] : bad_rules)
        if (rules.size() < 1000)
            cases.push_back({"filters", "SetFilters as uid 65534: " + what, Who::nobody, main_path, iface,
                             "SetFilters", strings(rules), invalid_args, message_has("filter rule")});
    cases.push_back({"filters", "SetFilters as uid 65534: a good rule", Who::nobody, main_path, iface, "SetFilters",
                     strings({"uid=0"}), access_denied, message_has("polkit is not on the bus")});
    // Accepted: the same filter again, 1024 times over (duplicates fold), and
    // the empty list (then restored).
    cases.push_back({"filters", "SetFilters: the filter in force, 1024 times", Who::root, main_path, iface,
                     "SetFilters", strings(std::vector<std::string>(1024, "comm=ulk-sweep")), "", {},
                     [](Snapshot&) {}});
    // Names are bytes (spec 1a): a comm or path with a newline or another
    // control character is a name a user can choose, so a rule may name it.
    for (const std::string rule : {"comm=a\nb", "path=/tmp/\x01\x7f"})
        cases.push_back({"filters", "SetFilters: a control character in " + rule.substr(0, 4), Who::root, main_path,
                         iface, "SetFilters", strings({rule}), "", {}, [rule](Snapshot& s) { s.filters = {rule}; }});
    cases.push_back({"filters", "SetFilters: the empty list", Who::root, main_path, iface, "SetFilters", strings({}),
                     "", {}, [](Snapshot& s) { s.filters.clear(); }});
    cases.push_back({"filters", "SetFilters: 1024 distinct rules", Who::root, main_path, iface, "SetFilters",
                     [](sd_bus_message* m) {
                         std::vector<std::string> rules{"comm=ulk-sweep"};
                         for (int i = 0; i < 1023; ++i)
                             rules.push_back("uid!=" + std::to_string(100000 + i));
                         strings(rules)(m);
                     },
                     "", {}, [](Snapshot& s) {
                         s.filters = {"comm=ulk-sweep"};
                         for (int i = 0; i < 1023; ++i)
                             s.filters.push_back("uid!=" + std::to_string(100000 + i));
                     }});

    // Modes.
    std::vector<std::pair<std::string, std::string>> bad_modes = {
        {"empty", ""}, {"unknown", "turbo"}, {"uppercase", "AUTO"}, {"capitalised", "Tracepoint"},
        {"leading space", " tracepoint"}, {"trailing newline", "tracepoint\n"}, {"a prefix", "trace"},
        {"with a NUL-free control character", "kprobe\x1b[2J"}, {"1 MiB", mib}, {"a list", "fentry,kprobe"},
    };
    for (const auto& [what, mode] : bad_modes) {
        cases.push_back({"modes", "SetAttachMode: " + what, Who::root, main_path, iface, "SetAttachMode",
                         a_string(mode), invalid_args, message_has("unknown attach mode")});
        cases.push_back({"modes", "SetAttachMode as uid 65534: " + what, Who::nobody, main_path, iface,
                         "SetAttachMode", a_string(mode), invalid_args, message_has("unknown attach mode")});
    }
    for (const auto& mode : unsupported_modes)
        cases.push_back({"modes", "SetAttachMode: " + mode + " (refused by this kernel)", Who::root, main_path,
                         iface, "SetAttachMode", a_string(mode), mode_unsupported, message_has(mode + ": ")});
    cases.push_back({"modes", "SetAttachMode: the mode in force", Who::root, main_path, iface, "SetAttachMode",
                     a_string(first_mode()), "", [](Reply& r) {
                         const char* effective = nullptr;
                         REQUIRE(sd_bus_message_read(r.m.get(), "s", &effective) >= 0);
                         CHECK(effective == first_mode());
                     },
                     [](Snapshot&) {}});
    cases.push_back({"modes", "SetAttachMode as uid 65534: the mode in force", Who::nobody, main_path, iface,
                     "SetAttachMode", a_string(first_mode()), access_denied, message_has("polkit is not on the bus")});
    cases.push_back({"modes", "Reset as uid 65534", Who::nobody, main_path, iface, "Reset", no_args(),
                     access_denied, message_has("polkit is not on the bus")});
    for (Who who : whos)
        cases.push_back({"modes", std::string("GetModeInfo as ") + who_name(who), who, main_path, iface,
                         "GetModeInfo", no_args(), "", [](Reply& r) { CHECK(array_length(r.m.get()) == 3); }});

    // Properties.
    for (const auto& [property, type] : properties)
        for (Who who : whos) {
            cases.push_back({"properties", "Get " + property + " as " + who_name(who), who, main_path, props, "Get",
                             prop_args(iface, property), "", variant_of(type)});
            cases.push_back({"properties", "Set " + property + " as " + who_name(who), who, main_path, props, "Set",
                             [property = property, type = type](sd_bus_message* m) {
                                 REQUIRE(sd_bus_message_append(m, "ss", iface, property.c_str()) >= 0);
                                 REQUIRE(sd_bus_message_open_container(m, 'v', type.c_str()) >= 0);
                                 append_value(m, type, 0);
                                 REQUIRE(sd_bus_message_close_container(m) >= 0);
                             },
                             who == Who::root ? read_only : access_denied});
        }
    for (Who who : whos) {
        std::string w = who_name(who);
        cases.push_back({"properties", "Get an unknown property as " + w, who, main_path, props, "Get",
                         prop_args(iface, "Colour"), unknown_property});
        cases.push_back({"properties", "Get a 1 MiB property name as " + w, who, main_path, props, "Get",
                         prop_args(iface, mib), unknown_property});
        cases.push_back({"properties", "Get from an unknown interface as " + w, who, main_path, props, "Get",
                         prop_args("org.example.Nope", "Version"), unknown_property});
        cases.push_back({"properties", "GetAll as " + w, who, main_path, props, "GetAll",
                         [](sd_bus_message* m) { REQUIRE(sd_bus_message_append(m, "s", iface) >= 0); }, "",
                         [](Reply& r) { CHECK(array_length(r.m.get()) == properties.size()); }});
        cases.push_back({"properties", "GetAll of an unknown interface as " + w, who, main_path, props, "GetAll",
                         [](sd_bus_message* m) { REQUIRE(sd_bus_message_append(m, "s", "org.example.Nope") >= 0); },
                         unknown_interface});
        for (const auto& wrong : {"", "s", "su", "as", "(ss)", "u", "us"})
            cases.push_back({"properties", std::string("Get(") + wrong + ") as " + w, who, main_path, props, "Get",
                             with_signature(wrong), invalid_args});
        for (const auto& wrong : {"", "u", "as"})
            cases.push_back({"properties", std::string("GetAll(") + wrong + ") as " + w, who, main_path, props,
                             "GetAll", with_signature(wrong), invalid_args});
        // sd-bus reads the arguments it needs and ignores the rest: the names
        // here ("tracepoint") are then unknown.
        cases.push_back({"properties", "Get(sss) as " + w, who, main_path, props, "Get", with_signature("sss"),
                         unknown_property});
        cases.push_back({"properties", "GetAll(ss) as " + w, who, main_path, props, "GetAll", with_signature("ss"),
                         unknown_interface});
        cases.push_back({"properties", "Get on the subscription object as " + w, who, sub_path, props, "Get",
                         prop_args(iface, "TotalDeletes"), "", variant_of("t")});
    }

    // Members and objects that do not exist; the standard interfaces.
    for (Who who : whos) {
        std::string w = who_name(who);
        cases.push_back({"members", "an unknown method as " + w, who, main_path, iface, "Frobnicate", no_args(),
                         unknown_method});
        cases.push_back({"members", "a method of another interface as " + w, who, main_path,
                         "org.unlinkd.Unlinkd2", "GetProcesses", no_args(), who == Who::root ? unknown_method : access_denied});
        cases.push_back({"members", "an unknown object as " + w, who, "/org/unlinkd/Unlinkd1/Nope", iface,
                         "GetProcesses", no_args(), unknown_object});
        cases.push_back({"members", "Introspect as " + w, who, main_path, "org.freedesktop.DBus.Introspectable",
                         "Introspect", no_args(), "", [](Reply& r) {
                             const char* xml = nullptr;
                             REQUIRE(sd_bus_message_read(r.m.get(), "s", &xml) >= 0);
                             CHECK_THAT(std::string(xml), Catch::Contains("SetFilters"));
                         }});
        cases.push_back({"members", "Ping as " + w, who, main_path, "org.freedesktop.DBus.Peer", "Ping", no_args(),
                         ""});
        // sd-bus answers Peer calls whatever their arguments.
        cases.push_back({"members", "Ping(s) as " + w, who, main_path, "org.freedesktop.DBus.Peer", "Ping",
                         a_string("x"), ""});
        cases.push_back({"members", "GetMachineId as " + w, who, main_path, "org.freedesktop.DBus.Peer",
                         "GetMachineId", no_args(), ""});
        cases.push_back({"members", "Subscribe as " + w, who, main_path, iface, "Subscribe", no_args(), ""});
        cases.push_back({"members", "Subscribe again as " + w, who, main_path, iface, "Subscribe", no_args(), ""});
        cases.push_back({"members", "Subscribe on the subscription object as " + w, who, sub_path, iface,
                         "Subscribe", no_args(), ""});
        cases.push_back({"members", "Unsubscribe as " + w, who, main_path, iface, "Unsubscribe", no_args(), ""});
        cases.push_back({"members", "Unsubscribe again as " + w, who, main_path, iface, "Unsubscribe", no_args(), ""});
    }
    return cases;
}

std::vector<std::string> unsupported_modes(sd_bus* root)
{
    auto r = call(root, main_path, iface, "GetModeInfo", no_args());
    REQUIRE(r.error.empty());
    std::vector<std::string> out;
    REQUIRE(sd_bus_message_enter_container(r.m.get(), 'a', "(sbs)") >= 0);
    const char* mode = nullptr;
    const char* reason = nullptr;
    int supported = 0;
    while (sd_bus_message_read(r.m.get(), "(sbs)", &mode, &supported, &reason) > 0)
        if (!supported)
            out.emplace_back(mode);
    return out;
}

struct Tally {
    std::map<std::string, std::pair<int, int>> groups;  // cases, failures
    std::chrono::microseconds slowest{0};
    int over_bound = 0;  // root Gets after a case slower than answer_bound
    void print(const char* test) const
    {
        int total = 0, failed = 0;
        for (const auto& [group, n] : groups) {
            std::printf("FIGURE sweep %s: %s: %d cases, %d failed\n", test, group.c_str(), n.first, n.second);
            total += n.first;
            failed += n.second;
        }
        std::printf("FIGURE sweep %s: %d cases, %d failed, slowest root Get after a case %.1f ms, %d over %lld ms\n",
                    test, total, failed, slowest.count() / 1000.0, over_bound,
                    static_cast<long long>(answer_bound.count()));
    }
};

// After a case: root's plain Get answered (its time a figure), the state as
// expected.
bool after_case(sd_bus* root, const Snapshot& expected, Tally& tally)
{
    auto took = timed_get(root);
    tally.slowest = std::max(tally.slowest, took);
    tally.over_bound += took >= answer_bound;
    CHECK(took < hang_bound);
    auto now = snapshot(root);
    CHECK(now.filters == expected.filters);
    CHECK(now.attached == expected.attached);
    CHECK(now.requested == expected.requested);
    CHECK(now.deletes == expected.deletes);
    CHECK(now.failures == expected.failures);
    return took < hang_bound && now == expected;
}

// One daemon on a private system-like bus with the project's policy, root
// connected, the known counts made and the state they leave (base).
struct Sweep {
    explicit Sweep(const std::vector<std::string>& extra_args = {})
        : bus(policy_file()), d(daemon_args(bus.address(), extra_args)), root(connect_as(bus.address()))
    {
        REQUIRE(wait_for_name(root.get()));
        known_counts(root.get());
        base = snapshot(root.get());
    }
    PrivateSystemBus bus;
    DaemonProcess d;
    Bus root;
    Snapshot base;
};

}  // namespace

TEST_CASE("sweep: every method and property with bad input, as root and uid 65534", "[dbus][sweep]")
{
    Sweep w;
    auto& bus = w.bus;
    auto& d = w.d;
    auto& root = w.root;
    const Snapshot& base = w.base;
    auto other = connect_as(bus.address(), nobody);
    REQUIRE(base.filters == std::vector<std::string>{"comm=ulk-sweep"});

    auto cases = sweep_cases(unsupported_modes(root.get()));
    CHECK(cases.size() >= 200);
    Tally tally;
    for (auto& c : cases) {
        INFO("case: " << c.what);
        auto reply = call(c.who == Who::root ? root.get() : other.get(), c.path, c.interface, c.member, c.args);
        INFO("reply: " << (reply.error.empty() ? "ok" : reply.error + ": " + reply.message.substr(0, 300)));
        bool good = reply.error == c.expect;
        CHECK(reply.error == c.expect);
        if (good && c.check)
            c.check(reply);
        REQUIRE(d.running());  // the daemon is alive
        Snapshot expected = base;
        if (c.changes && reply.error.empty())
            c.changes(expected);
        good &= after_case(root.get(), expected, tally);
        if (!(expected == base)) {  // an accepted change: back to the base
            auto restore = call(root.get(), main_path, iface, "SetFilters", strings(base.filters));
            REQUIRE(restore.error.empty());
            REQUIRE(snapshot(root.get()) == base);
        }
        auto& g = tally.groups[c.group];
        ++g.first;
        g.second += good ? 0 : 1;
    }
    tally.print("single calls");
    CHECK_THAT(d.err(), !Catch::Contains("error:"));
}

TEST_CASE("sweep: many concurrent callers, good and bad calls mixed", "[dbus][sweep]")
{
    Sweep w;
    auto& bus = w.bus;
    auto& root = w.root;
    const Snapshot& base = w.base;

    // 32 clients (half root, half uid 65534), 25 calls each, all at once.
    constexpr int clients = 32, calls = 25;
    std::vector<Bus> buses;
    for (int i = 0; i < clients; ++i)
        buses.push_back(connect_as(bus.address(), i % 2 ? nobody : 0));
    std::atomic<int> wrong{0}, done{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < clients; ++i)
        threads.emplace_back([&, i]() {
            sd_bus* b = buses[i].get();
            bool is_root = i % 2 == 0;
            for (int k = 0; k < calls; ++k) {
                Reply r;
                std::string expect;
                switch ((i + k) % 5) {
                case 0: r = call(b, main_path, iface, "GetTopProcesses", a_u32(0xffffffffu)); break;
                case 1:
                    // bad arguments: refused before any authorization, for everyone
                    r = call(b, main_path, iface, "SetFilters", strings({"colour=red"}));
                    expect = invalid_args;
                    break;
                case 2:
                    r = call(b, main_path, iface, is_root ? "SetAttachMode" : "Reset",
                             is_root ? a_string("turbo") : no_args());
                    expect = is_root ? invalid_args : access_denied;  // uid 65534: polkit is not on this bus
                    break;
                case 3: r = call(b, main_path, iface, "GetRecentEvents", with_signature("s")); expect = invalid_args; break;
                case 4: r = call(b, main_path, props, "GetAll", [](sd_bus_message* m) { (void)sd_bus_message_append(m, "s", iface); }); break;
                }
                wrong += r.error != expect;
                ++done;
            }
        });
    for (auto& t : threads)
        t.join();
    CHECK(done == clients * calls);
    CHECK(wrong == 0);
    Tally tally;
    tally.groups["concurrent callers"] = {clients * calls, wrong.load()};
    CHECK(after_case(root.get(), base, tally));
    tally.print("concurrent");
}

TEST_CASE("sweep: 250 subscriber connections from one uid, then all gone", "[dbus][sweep]")
{
    Sweep w;
    auto& bus = w.bus;
    auto& root = w.root;
    const Snapshot& base = w.base;
    Tally tally;

    auto subscribe_all = [&](std::vector<Bus>& subs, int& accepted, int& refused) {
        accepted = refused = 0;
        for (auto& b : subs) {
            auto r = call(b.get(), main_path, iface, "Subscribe", no_args());
            if (r.error.empty())
                ++accepted;
            else if (r.error == limits_exceeded && r.message.find("subscriptions") != std::string::npos)
                ++refused;
        }
    };
    std::vector<Bus> subs;
    for (int i = 0; i < 250; ++i)
        subs.push_back(connect_as(bus.address(), nobody));
    int accepted = 0, refused = 0;
    subscribe_all(subs, accepted, refused);
    std::printf("FIGURE sweep subscribers: 250 connections of uid 65534: %d subscribed, %d refused\n", accepted,
                refused);
    CHECK(accepted + refused == 250);  // every call: subscribed, or a clear refusal
    CHECK(accepted == 64);            // the per-uid limit (README)
    CHECK(after_case(root.get(), base, tally));

    // A deletion by uid 65534 reaches every accepted subscriber once.
    Scratch s;
    REQUIRE(chmod(s.dir().c_str(), 01777) == 0);
    s.create("sub", 0666);
    REQUIRE(chown(s.path("sub").c_str(), nobody, nobody) == 0);  // the sticky directory: its owner deletes it
    run_child({"ulk-sweep", nobody, nobody}, [&]() { return unlink(s.path("sub").c_str()); });
    int delivered = 0;
    for (auto& b : subs) {
        bool got = poll_until([&]() {
            for (;;) {
                sd_bus_message* m = nullptr;
                if (sd_bus_process(b.get(), &m) <= 0)
                    break;
                Message owned(m);
                if (m && sd_bus_message_is_signal(m, iface, "Deleted") &&
                    std::string(sd_bus_message_get_path(m)) == sub_path)
                    return true;
            }
            return false;
        }, std::chrono::milliseconds(delivered < accepted ? 3000 : 10), std::chrono::milliseconds(5));
        delivered += got;
    }
    CHECK(delivered == accepted);

    // All leave: their subscriptions go, 64 new ones fit again.
    subs.clear();
    std::vector<Bus> again;
    for (int i = 0; i < 64; ++i)
        again.push_back(connect_as(bus.address(), nobody));
    REQUIRE(poll_until([&]() {
        int a = 0, r = 0;
        std::vector<Bus> probe;
        probe.push_back(connect_as(bus.address(), nobody));
        subscribe_all(probe, a, r);
        call(probe[0].get(), main_path, iface, "Unsubscribe", no_args());
        return a == 1;
    }, std::chrono::seconds(10)));
    subscribe_all(again, accepted, refused);
    CHECK(accepted == 64);
    Snapshot expected = base;
    expected.deletes += 1;  // the subscribers' deletion
    CHECK(after_case(root.get(), expected, tally));
}

TEST_CASE("sweep: clients that disconnect in the middle of a call", "[dbus][sweep]")
{
    Sweep w;
    auto& bus = w.bus;
    auto& d = w.d;
    auto& root = w.root;
    const Snapshot& base = w.base;
    Tally tally;

    // Each: a connection sends the call and closes before the reply.
    std::vector<std::pair<std::string, std::function<void(sd_bus_message*)>>> calls = {
        {"GetProcesses", no_args()},
        {"GetTopProcesses", a_u32(0xffffffffu)},
        {"GetRecentEvents", a_u32(0xffffffffu)},
        {"SetFilters", strings(std::vector<std::string>(100'000, "uid=1"))},
        {"SetFilters", strings({"colour=red"})},
        {"SetAttachMode", a_string("turbo")},
        {"SetAttachMode", a_string(first_mode())},
        {"Subscribe", no_args()},
        {"GetModeInfo", no_args()},
    };
    int cases = 0, failed = 0;
    for (int round = 0; round < 5; ++round)
        for (const auto& [method, args] : calls)
            for (Who who : {Who::root, Who::nobody}) {
                INFO(method << " round " << round);
                auto b = connect_as(bus.address(), who == Who::root ? 0 : nobody);
                sd_bus_message* raw = nullptr;
                REQUIRE(sd_bus_message_new_method_call(b.get(), &raw, name, main_path, iface, method.c_str()) >= 0);
                Message m(raw);
                args(m.get());
                REQUIRE(sd_bus_send(b.get(), m.get(), nullptr) >= 0);
                REQUIRE(sd_bus_flush(b.get()) >= 0);
                b.reset();  // gone before the answer
                ++cases;
                failed += after_case(root.get(), base, tally) ? 0 : 1;
                REQUIRE(d.running());
            }
    tally.groups["disconnect mid-call"] = {cases, failed};
    tally.print("disconnects");
}

TEST_CASE("sweep: a subscriber that never reads its socket, during a storm", "[dbus][sweep]")
{
    char config[] = "/tmp/unlinkd-sweep-config-XXXXXX";
    int fd = mkstemp(config);
    REQUIRE(fd >= 0);
    close(fd);
    // Every deletion a signal: the most the daemon can be asked to send.
    std::ofstream(config) << R"({ "max_signals_per_sec": 1000000 })";
    Sweep w({std::string("--config=") + config});
    unlink(config);
    auto& bus = w.bus;
    auto& d = w.d;
    auto& root = w.root;
    Snapshot base = w.base;

    // Subscribed, and a match for every broadcast too; then never read.
    std::vector<Bus> deaf;
    for (int i = 0; i < 4; ++i) {
        deaf.push_back(connect_as(bus.address(), i % 2 ? nobody : 0));
        REQUIRE(call(deaf.back().get(), main_path, iface, "Subscribe", no_args()).error.empty());
        REQUIRE(sd_bus_add_match(deaf.back().get(), nullptr, "type='signal',interface='org.unlinkd.Unlinkd1'",
                                 nullptr, nullptr) >= 0);
    }
    Scratch s;
    REQUIRE(chmod(s.dir().c_str(), 01777) == 0);
    constexpr unsigned n = 100'000;
    pid_t storm = start_storm(s.dir(), "ulk-sweep", n, 2);
    Tally tally;
    int exit_code = -1;
    int gets = 0, slow = 0;
    while (!reap(storm, exit_code)) {
        auto took = timed_get(root.get());
        tally.slowest = std::max(tally.slowest, took);
        ++gets;
        slow += took >= answer_bound;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE(exit_code == 0);
    std::printf("FIGURE sweep deaf subscribers: %d root Gets during a %u storm, %d over 100 ms, slowest %.1f ms\n",
                gets, n, slow, tally.slowest.count() / 1000.0);
    // Answers during the storm are a figure, not an assertion: they measure
    // the machine's load as much as the daemon (the storm's threads and the
    // daemon share the CPUs). The contract bound holds after the case.
    base.deletes += n;
    REQUIRE(poll_until([&]() { return get_u64(root.get(), "TotalDeletes") == base.deletes; }, std::chrono::seconds(10)));
    CHECK(after_case(root.get(), base, tally));
    CHECK(d.running());
}
