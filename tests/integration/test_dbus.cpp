// The D-Bus API against a real dbus-daemon configured like the system bus,
// with the project's own policy file, the daemon binary serving it, and
// clients as root and as uid 65534 (busctl and an sdbus-c++ client).
#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sdbus-c++/sdbus-c++.h>
#include <set>
#include <sstream>
#include <thread>

#include "bus_harness.h"
#include "harness.h"

using namespace unlinkd;
using namespace unlinkd::test;
using json = nlohmann::json;

namespace {

constexpr const char* name = "org.unlinkd.Unlinkd1";
constexpr const char* path = "/org/unlinkd/Unlinkd1";
constexpr const char* iface = "org.unlinkd.Unlinkd1";

std::string policy_file() { return dbus_source_dir() + "/org.unlinkd.Unlinkd1.conf"; }

// The daemon's arguments to run in the foreground, serving D-Bus on `address`.
std::vector<std::string> bus_args(const std::string& address, const std::vector<std::string>& extra = {})
{
    std::vector<std::string> args{"--foreground", "--bus-address=" + address};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

CommandResult busctl(const std::string& address, std::vector<std::string> args, uid_t uid = 0)
{
    std::vector<std::string> cmd{"busctl", "--address=" + address, "--json=short"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    return run_command(cmd, ProcessOptions::as_uid(uid));
}

// The single out argument of `method` (by value: iterating a member of a
// temporary would dangle).
json call(const std::string& address, const std::string& method, std::vector<std::string> args = {}, uid_t uid = 0)
{
    std::vector<std::string> cmd{"call", name, path, iface, method};
    cmd.insert(cmd.end(), args.begin(), args.end());
    auto o = busctl(address, cmd, uid);
    INFO(method << ": " << o.err);
    REQUIRE(o.code == 0);
    json data = json::parse(o.out)["data"];
    REQUIRE(data.size() == 1);
    return data[0];
}

json property(const std::string& address, const std::string& prop)
{
    auto o = busctl(address, {"get-property", name, path, iface, prop});
    INFO(prop << ": " << o.err);
    REQUIRE(o.code == 0);
    return json::parse(o.out)["data"];
}

bool wait_for_name(const std::string& address, int seconds = 30)
{
    for (int i = 0; i < seconds * 10; ++i) {
        if (busctl(address, {"status", name}).code == 0)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

// The error name of a failed call, through an sdbus-c++ client.
std::string error_of(const std::string& address, const std::function<void(sdbus::IProxy&)>& body, std::string* message = nullptr)
{
    auto connection = sdbus::createSessionBusConnectionWithAddress(address);
    auto proxy = sdbus::createProxy(*connection, name, path);
    proxy->finishRegistration();
    try {
        body(*proxy);
    } catch (const sdbus::Error& e) {
        if (message)
            *message = e.getMessage();
        return e.getName();
    }
    return "";
}

std::set<std::string> members(const std::string& xml)
{
    // Members of the org.unlinkd.Unlinkd1 interface: "method X", "property X T", "signal X".
    std::set<std::string> out;
    auto start = xml.find("<interface name=\"org.unlinkd.Unlinkd1\">");
    REQUIRE(start != std::string::npos);
    auto end = xml.find("</interface>", start);
    std::string body = xml.substr(start, end - start);
    std::regex member(R"re(<(method|signal) name="([A-Za-z]+)"|<property name="([A-Za-z]+)" type="([^"]+)")re");
    for (std::sregex_iterator it(body.begin(), body.end(), member), last; it != last; ++it) {
        if ((*it)[1].matched)
            out.insert((*it)[1].str() + " " + (*it)[2].str());
        else
            out.insert("property " + (*it)[3].str() + " " + (*it)[4].str());
    }
    return out;
}

}  // namespace

TEST_CASE("the live interface is the documented XML", "[dbus]")
{
    PrivateSystemBus bus(policy_file());
    DaemonProcess d(bus_args(bus.address()));
    REQUIRE(wait_for_name(bus.address()));
    auto o = run_command({"busctl", "--address=" + bus.address(), "introspect", "--xml-interface", name, path});
    REQUIRE(o.code == 0);
    std::ifstream in(dbus_source_dir() + "/org.unlinkd.Unlinkd1.xml");
    std::stringstream documented;
    documented << in.rdbuf();
    auto live = members(o.out), doc = members(documented.str());
    CHECK(doc.size() == 27);
    CHECK(live == doc);
}

TEST_CASE("a known workload's exact counts and events over D-Bus", "[dbus]")
{
    PrivateSystemBus bus(policy_file());
    DaemonProcess d(bus_args(bus.address()));
    REQUIRE(wait_for_name(bus.address()));
    Scratch s;
    for (auto f : {"b1", "b2", "b3"})
        s.create(f);
    pid_t pid = run_child({"ulk-bus"}, [&]() {
        if (chdir(s.dir().c_str()))
            return 1;
        return unlink("b1") || unlink(s.path("b2").c_str()) || unlink("./b3") || unlink("missing") != -1 ? 2 : 0;
    });
    json row;
    for (int i = 0; i < 50 && row.is_null(); ++i) {
        for (const auto& r : call(bus.address(), "GetProcesses"))
            if (r[0] == pid && r[4] == 3 && r[5] == 1)
                row = r;
        if (row.is_null())
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE_FALSE(row.is_null());
    // (uuusttts): pid, uid, loginuid, comm, deletes, failures, last, unit
    CHECK(row[1] == 0);
    CHECK(row[2] == own_loginuid());
    CHECK(row[3] == "ulk-bus");
    CHECK(row[6].get<std::uint64_t>() > 0);

    bool in_top = false;
    for (const auto& r : call(bus.address(), "GetTopProcesses", {"u", "1000"}))
        in_top |= r[0] == pid && r[4] == 3;
    CHECK(in_top);

    // Events reach the daemon through the ring buffer, a moment after the
    // kernel's counts: wait for all four.
    std::vector<json> mine;
    for (int i = 0; i < 50 && mine.size() < 4; ++i) {
        mine.clear();
        for (const auto& e : call(bus.address(), "GetRecentEvents", {"u", "1024"}))
            if (e[1] == pid)
                mine.push_back(e);
        if (mine.size() < 4)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE(mine.size() == 4);
    // (tuuusssiss): time, pid, uid, loginuid, comm, exe, path, result, unit, op
    CHECK(mine[0][6] == s.path("b1"));
    CHECK(mine[1][6] == s.path("b2"));
    CHECK(mine[2][6] == s.path("b3"));
    CHECK(mine[3][6] == s.path("missing"));
    CHECK(mine[3][7] == -ENOENT);
    CHECK(mine[0][7] == 0);
    for (const auto& e : mine) {
        CHECK(e[2] == 0);
        CHECK(e[3] == own_loginuid());
        CHECK(e[4] == "ulk-bus");
        CHECK(e[5] == own_exe());  // a fork of this test binary
        CHECK(e[9] == "unlink");
    }

    CHECK(property(bus.address(), "TotalDeletes").get<std::uint64_t>() >= 3);
    CHECK(property(bus.address(), "Version") == UNLINKD_VERSION);
    CHECK(property(bus.address(), "RequestedAttachMode") == "auto");
    auto supported = property(bus.address(), "SupportedAttachModes");
    CHECK(std::find(supported.begin(), supported.end(), property(bus.address(), "AttachMode")) != supported.end());
}

TEST_CASE("every error: bad rule, bad mode, refused mode, bad count", "[dbus]")
{
    PrivateSystemBus bus(policy_file());
    DaemonProcess d(bus_args(bus.address(), {"--filter=comm=kept"}));
    REQUIRE(wait_for_name(bus.address()));
    std::string msg;
    CHECK(error_of(bus.address(), [](sdbus::IProxy& p) {
              p.callMethod("SetFilters").onInterface(iface).withArguments(std::vector<std::string>{"uid=0", "colour=red"});
          }, &msg) == "org.freedesktop.DBus.Error.InvalidArgs");
    CHECK_THAT(msg, Catch::Contains("\"colour=red\""));
    CHECK(property(bus.address(), "Filters") == json::array({"comm=kept"}));

    std::vector<std::string> huge(5000, "uid=1");
    CHECK(error_of(bus.address(), [&](sdbus::IProxy& p) {
              p.callMethod("SetFilters").onInterface(iface).withArguments(huge);
          }, &msg) == "org.freedesktop.DBus.Error.InvalidArgs");
    CHECK_THAT(msg, Catch::Contains("too many"));

    CHECK(error_of(bus.address(), [](sdbus::IProxy& p) {
              p.callMethod("SetAttachMode").onInterface(iface).withArguments(std::string("turbo"));
          }, &msg) == "org.freedesktop.DBus.Error.InvalidArgs");
    CHECK_THAT(msg, Catch::Contains("turbo"));

    for (Mode m : {Mode::fentry, Mode::kprobe, Mode::tracepoint}) {
        bool supported = false;
        for (const auto& row : call(bus.address(), "GetModeInfo"))
            if (row[0] == std::string(mode_name(m)))
                supported = row[1];
        if (supported)
            continue;
        auto before = property(bus.address(), "AttachMode");
        CHECK(error_of(bus.address(), [m](sdbus::IProxy& p) {
                  p.callMethod("SetAttachMode").onInterface(iface).withArguments(std::string(mode_name(m)));
              }, &msg) == "org.unlinkd.Unlinkd1.Error.ModeUnsupported");
        CHECK_THAT(msg, Catch::Contains(std::string(mode_name(m)) + ": "));
        CHECK(property(bus.address(), "AttachMode") == before);
    }
    CHECK(error_of(bus.address(), [](sdbus::IProxy& p) {
              p.callMethod("GetTopProcesses").onInterface(iface).withArguments(std::uint32_t{0});
          }) == "org.freedesktop.DBus.Error.InvalidArgs");

    // A good change goes through and is announced.
    auto connection = sdbus::createSessionBusConnectionWithAddress(bus.address());
    auto proxy = sdbus::createProxy(*connection, name, path);
    std::atomic<int> changed{0};
    proxy->uponSignal("PropertiesChanged").onInterface("org.freedesktop.DBus.Properties")
        .call([&](const std::string& i, const std::map<std::string, sdbus::Variant>& props, const std::vector<std::string>&) {
            if (i == iface && props.count("Filters"))
                ++changed;
        });
    proxy->finishRegistration();
    connection->enterEventLoopAsync();
    proxy->callMethod("SetFilters").onInterface(iface).withArguments(std::vector<std::string>{"uid=0"});
    CHECK(property(bus.address(), "Filters") == json::array({"uid=0"}));
    for (int i = 0; i < 50 && changed == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(changed == 1);
    connection->leaveEventLoop();
}

TEST_CASE("uid 65534: own processes only, no state changes (the daemon refuses; no polkit on this bus)", "[dbus]")
{
    Scratch s;
    REQUIRE(chmod(s.dir().c_str(), 01777) == 0);
    s.create("mine", 0666);
    REQUIRE(chown(s.path("mine").c_str(), 65534, 65534) == 0);
    s.create("roots");

    SECTION("with the installed policy, the bus passes state changes and the daemon refuses them")
    {
        PrivateSystemBus bus(policy_file());
        DaemonProcess d(bus_args(bus.address()));
        REQUIRE(wait_for_name(bus.address()));
        pid_t nobody = run_child({"ulk-nobody", 65534, 65534}, [&]() { return unlink(s.path("mine").c_str()); });
        pid_t root = run_child({"ulk-root"}, [&]() { return unlink(s.path("roots").c_str()); });
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        auto rows = call(bus.address(), "GetProcesses", {}, 65534);
        bool saw_mine = false;
        for (const auto& r : rows) {
            CHECK(r[1] == 65534);
            saw_mine |= r[0] == nobody;
        }
        CHECK(saw_mine);
        bool root_sees_root = false;
        for (const auto& r : call(bus.address(), "GetProcesses"))
            root_sees_root |= r[0] == root;
        CHECK(root_sees_root);
        for (const auto& e : call(bus.address(), "GetRecentEvents", {"u", "1024"}, 65534))
            CHECK(e[2] == 65534);
        for (auto method : std::vector<std::vector<std::string>>{
                 {"SetFilters", "as", "1", "uid=0"}, {"SetAttachMode", "s", "auto"}, {"Reset"}}) {
            std::vector<std::string> args{"call", name, path, iface};
            args.insert(args.end(), method.begin(), method.end());
            auto o = busctl(bus.address(), args, 65534);
            CHECK(o.code != 0);
            CHECK_THAT(o.err, Catch::Contains("Access denied"));
        }
        CHECK(property(bus.address(), "Filters").empty());
        // The bus policy lets anyone call them (spec section 4): the refusal
        // was the daemon's.
        CHECK(bus.log().find("Rejected") == std::string::npos);
    }

    SECTION("the daemon says why: bad arguments first, then polkit, which is not on this bus")
    {
        PrivateSystemBus bus(policy_file());
        DaemonProcess d(bus_args(bus.address()));
        REQUIRE(wait_for_name(bus.address()));
        // busctl shows every AccessDenied as "Access denied": ask with an
        // sdbus-c++ client (as uid 65534) for the daemon's own message.
        std::string address = bus.address();
        pid_t client = spawn({"ulk-client", 65534, 65534}, [address]() {
            int refused = 0;
            // Bad arguments are InvalidArgs for anyone, without asking polkit.
            std::string bad_msg;
            auto bad = error_of(address, [](sdbus::IProxy& p) {
                auto call = p.createMethodCall(iface, "SetFilters");
                call << std::vector<std::string>{"colour=red"};
                p.callMethod(call);
            }, &bad_msg);
            if (bad != "org.freedesktop.DBus.Error.InvalidArgs" || bad_msg.find("colour=red") == std::string::npos)
                return 100;
            for (const char* method : {"SetFilters", "SetAttachMode", "Reset"}) {
                std::string msg;
                auto err = error_of(address, [method](sdbus::IProxy& p) {
                    auto call = p.createMethodCall(iface, method);
                    if (std::string(method) == "SetFilters")
                        call << std::vector<std::string>{"uid=0"};
                    else if (std::string(method) == "SetAttachMode")
                        call << std::string("auto");
                    p.callMethod(call);
                }, &msg);
                refused += err == "org.freedesktop.DBus.Error.AccessDenied" && msg.find("polkit is not on the bus") != std::string::npos;
            }
            return refused;
        });
        CHECK(wait_child(client) == 3);
        CHECK(bus.log().find("Rejected") == std::string::npos);  // the bus let the calls through
        CHECK(property(bus.address(), "Filters").empty());
    }
}

TEST_CASE("signals: broadcast to root only, Subscribe delivers the subscriber's own events, rate limit",
          "[dbus]")
{
    PrivateSystemBus bus(policy_file());
    DaemonProcess d(bus_args(bus.address()));
    REQUIRE(wait_for_name(bus.address()));
    Scratch s;
    REQUIRE(chmod(s.dir().c_str(), 01777) == 0);

    // Listeners in child processes (the uid is per process), each counting
    // Deleted signals whose comm is ulk-sig for 3 s and exiting with the count.
    auto listener = [&](uid_t uid, bool subscribe) {
        return spawn({"ulk-listener", uid, uid}, [&, subscribe]() {
            auto connection = sdbus::createSessionBusConnectionWithAddress(bus.address());
            std::atomic<int> seen{0};
            std::atomic<int> foreign{0};
            auto on_deleted = [&](std::uint64_t, std::uint32_t, std::uint32_t signal_uid, std::uint32_t,
                                  const std::string& comm, const std::string&, const std::string&, std::int32_t,
                                  const std::string&, const std::string&) {
                if (comm.rfind("ulk-sig", 0) == 0)
                    ++seen;
                if (getuid() != 0 && signal_uid != getuid())
                    ++foreign;
            };
            auto broadcast = sdbus::createProxy(*connection, name, path);
            broadcast->uponSignal("Deleted").onInterface(iface).call(on_deleted);
            broadcast->finishRegistration();
            auto unicast = sdbus::createProxy(*connection, name, "/org/unlinkd/Unlinkd1/Subscription");
            unicast->uponSignal("Deleted").onInterface(iface).call(on_deleted);
            unicast->finishRegistration();
            connection->enterEventLoopAsync();
            if (subscribe)
                broadcast->callMethod("Subscribe").onInterface(iface);
            std::ofstream(s.path("ready-" + std::to_string(getpid()))) << "1";
            std::this_thread::sleep_for(std::chrono::seconds(4));
            connection->leaveEventLoop();
            return foreign > 0 ? 200 : std::min(seen.load(), 199);
        });
    };
    pid_t root_listener = listener(0, false);
    pid_t nobody_listener = listener(65534, false);
    pid_t nobody_subscriber = listener(65534, true);
    for (pid_t p : {root_listener, nobody_listener, nobody_subscriber})
        for (int i = 0; i < 100 && access(s.path("ready-" + std::to_string(p)).c_str(), F_OK) != 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // 3 deletions by root, 2 by nobody.
    for (auto f : {"r1", "r2", "r3"})
        s.create(f);
    for (auto f : {"n1", "n2"}) {
        s.create(f, 0666);
        REQUIRE(chown(s.path(f).c_str(), 65534, 65534) == 0);
    }
    run_child({"ulk-sig-root"}, [&]() {
        return unlink(s.path("r1").c_str()) || unlink(s.path("r2").c_str()) || unlink(s.path("r3").c_str());
    });
    run_child({"ulk-sig-nobody", 65534, 65534}, [&]() {
        return unlink(s.path("n1").c_str()) || unlink(s.path("n2").c_str());
    });
    CHECK(wait_child(root_listener) == 5);      // every broadcast
    CHECK(wait_child(nobody_listener) == 0);    // the policy denies broadcasts
    CHECK(wait_child(nobody_subscriber) == 2);  // its own two, addressed to it

    // Rate limit: 100 signals a second by default, the rest counted.
    auto before = property(bus.address(), "SuppressedSignals").get<std::uint64_t>();
    constexpr unsigned n = 1000;
    pid_t storm = start_storm(s.dir(), "ulk-sig-storm", n, 1);
    REQUIRE(wait_child(storm) == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto suppressed = property(bus.address(), "SuppressedSignals").get<std::uint64_t>() - before;
    CHECK(suppressed >= n - 200);  // at most two one-second windows' worth got through
}

TEST_CASE("the bus started after the daemon: counting goes on, the name is claimed when it appears", "[dbus]")
{
    PrivateSystemBus bus(policy_file(), false);
    DaemonProcess d(bus_args(bus.address()));
    REQUIRE(d.wait_for_err("D-Bus is not available"));
    Scratch s;
    s.create("early");
    pid_t early = run_child({"ulk-early"}, [&]() { return unlink(s.path("early").c_str()); });
    bus.start();
    REQUIRE(wait_for_name(bus.address()));
    bool found = false;
    for (const auto& r : call(bus.address(), "GetProcesses"))
        found |= r[0] == early && r[4] == 1;
    CHECK(found);
    CHECK_THAT(d.err(), Catch::Contains("owning org.unlinkd.Unlinkd1"));
}

TEST_CASE("unlinkctl: tables and JSON, exit codes scripts can trust", "[dbus][unlinkctl]")
{
    const char* ctl_env = std::getenv("UNLINKCTL_BIN");
    REQUIRE(ctl_env != nullptr);
    std::string ctl = ctl_env;
    PrivateSystemBus bus(policy_file());
    auto unlinkctl = [&](std::vector<std::string> args, uid_t uid = 0) {
        std::vector<std::string> cmd{ctl, "--bus-address=" + bus.address()};
        cmd.insert(cmd.end(), args.begin(), args.end());
        return run_command(cmd, ProcessOptions::as_uid(uid));
    };

    auto absent = unlinkctl({"status"});
    CHECK(absent.code == 3);
    CHECK_THAT(absent.err, Catch::Contains("unlinkd is not running"));

    DaemonProcess d(bus_args(bus.address()));
    REQUIRE(wait_for_name(bus.address()));
    Scratch s;
    for (auto f : {"c1", "c2"})
        s.create(f);
    REQUIRE(mkdir(s.path("cd").c_str(), 0755) == 0);
    pid_t pid = run_child({"ulk-ctl"}, [&]() {
        return unlink(s.path("c1").c_str()) || unlink(s.path("c2").c_str()) || rmdir(s.path("cd").c_str());
    });

    json mine;
    for (int i = 0; i < 50 && mine.is_null(); ++i) {
        auto top = unlinkctl({"--json", "top", "1000"});
        REQUIRE(top.code == 0);
        for (const auto& p : json::parse(top.out))
            if (p["pid"] == pid && p["deletes"] == 3)
                mine = p;
        if (mine.is_null())
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE_FALSE(mine.is_null());
    CHECK(mine["comm"] == "ulk-ctl");
    CHECK(mine["failures"] == 0);
    CHECK(mine["loginuid"] == own_loginuid());

    auto table = unlinkctl({"top", "1000"});
    CHECK(table.code == 0);
    CHECK_THAT(table.out, Catch::Contains("PID") && Catch::Contains("AUID") && Catch::Contains("ulk-ctl"));

    int seen = 0;
    json dir;
    for (int i = 0; i < 50 && seen < 3; ++i) {  // events follow the counts by a moment
        auto events = unlinkctl({"--json", "events", "1024"});
        REQUIRE(events.code == 0);
        seen = 0;
        std::istringstream lines(events.out);
        for (std::string line; std::getline(lines, line);) {
            if (line.empty() || json::parse(line)["pid"] != pid)
                continue;
            ++seen;
            if (json::parse(line)["op"] == "rmdir")
                dir = json::parse(line);
        }
        if (seen < 3)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(seen == 3);
    REQUIRE_FALSE(dir.is_null());
    CHECK(dir["path"] == s.path("cd"));
    CHECK(dir["exe"] == own_exe());
    CHECK(dir["loginuid"] == own_loginuid());
    auto event_table = unlinkctl({"events", "1024"});
    CHECK(event_table.code == 0);
    CHECK_THAT(event_table.out, Catch::Contains("AUID") && Catch::Contains("OP") &&
                                    Catch::Contains(" rmdir  ok         " + s.path("cd") + "  " + own_exe()));

    auto status = unlinkctl({"--json", "status"});
    REQUIRE(status.code == 0);
    auto st = json::parse(status.out);
    CHECK(st["attach_mode"] == property(bus.address(), "AttachMode"));
    CHECK(st["total_deletes"].get<std::uint64_t>() >= 2);

    auto bad = unlinkctl({"filter", "colour=red"});
    CHECK(bad.code == 2);
    CHECK_THAT(bad.err, Catch::Contains("\"colour=red\""));

    auto nobody = unlinkctl({"filter", "uid=0"}, 65534);
    CHECK(nobody.code == 4);
    CHECK_THAT(nobody.err, Catch::Contains("polkit is not on the bus"));
    CHECK(unlinkctl({"reset"}, 65534).code == 4);

    auto set = unlinkctl({"--json", "filter", "uid=0", "comm=ulk-ctl"});
    CHECK(set.code == 0);
    CHECK(json::parse(set.out) == json::array({"uid=0", "comm=ulk-ctl"}));
    CHECK(unlinkctl({"filter", "--clear"}).code == 0);
    CHECK(property(bus.address(), "Filters").empty());

    for (const auto& row : call(bus.address(), "GetModeInfo")) {
        if (row[1] == true)
            continue;
        auto before = property(bus.address(), "AttachMode");
        auto refused = unlinkctl({"mode", row[0].get<std::string>()});
        CHECK(refused.code == 5);
        CHECK_THAT(refused.err, Catch::Contains(row[2].get<std::string>()));
        CHECK(property(bus.address(), "AttachMode") == before);
    }
    CHECK(unlinkctl({"mode", "turbo"}).code == 2);
    CHECK(unlinkctl({"frobnicate"}).code == 2);
    CHECK(unlinkctl({"top", "zero"}).code == 2);
}

TEST_CASE("Summary: the processes that changed, once per interval, nothing when nothing changed", "[dbus]")
{
    PrivateSystemBus bus(policy_file());
    DaemonProcess d(bus_args(bus.address(), {"--filter=comm=ulk-sum"}));  // nothing else changes counts
    REQUIRE(wait_for_name(bus.address()));
    Scratch s;
    for (auto f : {"s1", "s2", "s3", "s4"})
        s.create(f);

    auto connection = sdbus::createSessionBusConnectionWithAddress(bus.address());
    auto proxy = sdbus::createProxy(*connection, name, path);
    std::mutex m;
    std::vector<std::vector<std::pair<std::uint32_t, std::uint64_t>>> summaries;  // (pid, deletes) per signal
    proxy->uponSignal("Summary").onInterface(iface).call(
        [&](const std::vector<sdbus::Struct<std::uint32_t, std::uint32_t, std::uint32_t, std::string, std::uint64_t,
                                            std::uint64_t, std::uint64_t, std::string>>& rows) {
            std::vector<std::pair<std::uint32_t, std::uint64_t>> one;
            for (const auto& r : rows)
                one.emplace_back(r.get<0>(), r.get<4>());
            std::lock_guard<std::mutex> lock(m);
            summaries.push_back(one);
        });
    proxy->finishRegistration();
    connection->enterEventLoopAsync();

    pid_t first = run_child({"ulk-sum"}, [&]() { return unlink(s.path("s1").c_str()) || unlink(s.path("s2").c_str()); });
    std::this_thread::sleep_for(std::chrono::milliseconds(3500));  // three intervals: one change
    pid_t second = run_child({"ulk-sum"}, [&]() { return unlink(s.path("s3").c_str()); });
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    connection->leaveEventLoop();

    std::lock_guard<std::mutex> lock(m);
    REQUIRE(summaries.size() == 2);
    CHECK(summaries[0] == std::vector<std::pair<std::uint32_t, std::uint64_t>>{{first, 2}});
    CHECK(summaries[1] == std::vector<std::pair<std::uint32_t, std::uint64_t>>{{second, 1}});
}

TEST_CASE("1000 rapid SetFilters from several clients during a storm: final filter in force, totals exact",
          "[dbus][storm]")
{
    PrivateSystemBus bus(policy_file());
    DaemonProcess d(bus_args(bus.address(), {"--filter=comm=ulk-rapid"}));
    REQUIRE(wait_for_name(bus.address()));
    Scratch s;
    auto before = property(bus.address(), "TotalDeletes").get<std::uint64_t>();
    constexpr unsigned n = 50000;
    pid_t storm = start_storm(s.dir(), "ulk-rapid", n, 2);
    // Two spellings of the same filter: every deletion of the storm counts
    // under both, so any lost or doubled count shows in the total.
    const std::vector<std::string> a{"comm=ulk-rapid"}, b{"uid=0", "comm=ulk-rapid"};
    std::atomic<int> calls{0}, errors{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
        clients.emplace_back([&, c]() {
            auto connection = sdbus::createSessionBusConnectionWithAddress(bus.address());
            auto proxy = sdbus::createProxy(*connection, name, path);
            proxy->finishRegistration();
            for (int i = 0; i < 250; ++i) {
                try {
                    proxy->callMethod("SetFilters").onInterface(iface).withArguments((i + c) % 2 ? a : b);
                    ++calls;
                } catch (const sdbus::Error&) {
                    ++errors;
                }
            }
        });
    for (auto& t : clients)
        t.join();
    REQUIRE(wait_child(storm) == 0);
    CHECK(calls == 1000);
    CHECK(errors == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(property(bus.address(), "TotalDeletes").get<std::uint64_t>() - before == n);

    // The last call wins and is in force.
    call(bus.address(), "GetModeInfo");  // the daemon is alive and answering
    auto o = busctl(bus.address(), {"call", name, path, iface, "SetFilters", "as", "1", "comm=ulk-final"});
    REQUIRE(o.code == 0);
    CHECK(property(bus.address(), "Filters") == json::array({"comm=ulk-final"}));
    auto mid = property(bus.address(), "TotalDeletes").get<std::uint64_t>();
    REQUIRE(wait_child(start_storm(s.dir(), "ulk-rapid", 500, 1)) == 0);
    REQUIRE(wait_child(start_storm(s.dir(), "ulk-final", 700, 1)) == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(property(bus.address(), "TotalDeletes").get<std::uint64_t>() - mid == 700);
}

TEST_CASE("unlinkctl events -f follows the caller's own deletions as they happen", "[dbus][unlinkctl]")
{
    const char* ctl = std::getenv("UNLINKCTL_BIN");
    REQUIRE(ctl != nullptr);
    PrivateSystemBus bus(policy_file());
    DaemonProcess d(bus_args(bus.address()));
    REQUIRE(wait_for_name(bus.address()));
    Scratch s;
    REQUIRE(chmod(s.dir().c_str(), 01777) == 0);

    // unlinkctl events -f --json as uid 65534.
    Process follower({ctl, "--bus-address=" + bus.address(), "--json", "events", "-f", "1"},
                     ProcessOptions::as_uid(65534));
    // Until the subscription is in place deletions go unseen: delete as root
    // and as 65534, round after round, until the follower shows one of its own.
    std::set<pid_t> roots, mine;
    std::string text;
    for (int round = 0; round < 100 && text.find("ulk-f-nobody") == std::string::npos; ++round) {
        std::string r = "root-" + std::to_string(round), m = "mine-" + std::to_string(round);
        s.create(r);
        s.create(m, 0666);
        REQUIRE(chown(s.path(m).c_str(), 65534, 65534) == 0);
        roots.insert(run_child({"ulk-f-root"}, [&]() { return unlink(s.path(r).c_str()); }));
        mine.insert(run_child({"ulk-f-nobody", 65534, 65534}, [&]() { return unlink(s.path(m).c_str()); }));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        text = follower.out();
    }
    int code = follower.stop(SIGTERM);
    CHECK(code >= 0);  // it exited, no signal ended it
    CHECK(code == 0);
    text = follower.out();  // whole, now that the follower has exited: lines read before may be cut
    bool saw_mine = false;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.empty())
            continue;
        auto e = json::parse(line);
        CHECK(e["uid"] == 65534);  // never root's deletions
        CHECK(roots.count(e["pid"].get<pid_t>()) == 0);
        saw_mine |= mine.count(e["pid"].get<pid_t>()) == 1 && e["result"] == 0 && e["comm"] == "ulk-f-nobody";
    }
    INFO("follower output: " << text);
    CHECK(saw_mine);
}

TEST_CASE("per-op totals and per-unit counts over D-Bus, as each caller may see them", "[dbus][metrics]")
{
    PrivateSystemBus bus(policy_file());
    DaemonProcess d(bus_args(bus.address(), {"--filter=comm=ulk-units"}));
    REQUIRE(wait_for_name(bus.address()));
    Scratch s;
    std::string a = "ulk-a-" + std::to_string(getpid()) + ".scope", b = "ulk-b-" + std::to_string(getpid()) + ".scope";
    for (const auto& unit : {a, b})
        REQUIRE((mkdir((cgroup2_root() + "/" + unit).c_str(), 0755) == 0 || errno == EEXIST));
    for (auto f : {"a1", "a2", "b1"})
        s.create(f);
    for (auto dir : {"ad", "bfull", "bfull/keep"})
        REQUIRE(mkdir(s.path(dir).c_str(), 0755) == 0);
    // Unit a: 2 unlinks, 1 rmdir. Unit b: 1 unlink, 1 rmdir that fails.
    pid_t in_a = run_child({"ulk-units", 0, 0, cgroup2_root() + "/" + a}, [&]() {
        return unlink(s.path("a1").c_str()) || unlink(s.path("a2").c_str()) || rmdir(s.path("ad").c_str()) ? 2 : 0;
    });
    pid_t in_b = run_child({"ulk-units", 0, 0, cgroup2_root() + "/" + b}, [&]() {
        return unlink(s.path("b1").c_str()) || rmdir(s.path("bfull").c_str()) != -1 ? 2 : 0;
    });
    REQUIRE(in_a > 0);
    REQUIRE(in_b > 0);
    // The counts are in the maps once the children are gone; the units are
    // looked up from their cgroups by the daemon.
    json units;
    auto row_of = [&](const std::string& unit) {
        for (const auto& r : units)
            if (r[0] == unit)
                return r;
        return json();
    };
    for (int i = 0; i < 50 && (row_of(a).is_null() || row_of(b).is_null()); ++i) {
        units = call(bus.address(), "GetUnitCounts");
        if (row_of(a).is_null() || row_of(b).is_null())
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(row_of(a) == json::array({a, 3, 0}));
    CHECK(row_of(b) == json::array({b, 1, 1}));
    CHECK(units.size() == 2);
    CHECK(property(bus.address(), "DeletesByOp") == json({{"unlink", 3}, {"rmdir", 1}}));
    CHECK(property(bus.address(), "FailuresByOp") == json({{"unlink", 0}, {"rmdir", 1}}));
    CHECK(property(bus.address(), "TotalDeletes") == 4);
    CHECK(property(bus.address(), "EventsUnstreamed") == 0);
    CHECK(property(bus.address(), "LostExits") == 0);
    // Another uid sees none of root's processes, so no unit.
    CHECK(call(bus.address(), "GetUnitCounts", {}, 65534) == json::array());
    for (const auto& unit : {a, b})
        rmdir((cgroup2_root() + "/" + unit).c_str());
}
