#include "bus_harness.h"

#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace unlinkd::test {

namespace {

// The system bus's own defaults, as Debian's /usr/share/dbus-1/system.conf
// has them: deny by default, everyone may talk to the bus driver.
constexpr const char* bus_config = R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=@DIR@/system_bus_socket</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <includedir>system.d</includedir>
</busconfig>
)";

}  // namespace

std::string dbus_source_dir()
{
    const char* dir = std::getenv("UNLINKD_DBUS_DIR");
    REQUIRE(dir != nullptr);
    return dir;
}

PrivateSystemBus::PrivateSystemBus(const std::string& policy_file, bool start_now)
{
    char tmpl[] = "/tmp/unlinkd-bus-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    chmod(dir_.c_str(), 0755);  // non-root test clients connect to the socket
    std::filesystem::create_directory(dir_ + "/system.d");
    std::filesystem::copy_file(policy_file, dir_ + "/system.d/org.unlinkd.Unlinkd1.conf");
    std::string config = bus_config;
    config.replace(config.find("@DIR@"), 5, dir_);
    std::ofstream(dir_ + "/system-bus.conf") << config;
    address_ = "unix:path=" + dir_ + "/system_bus_socket";
    if (start_now)
        start();
}

void PrivateSystemBus::start()
{
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
        std::string log = dir_ + "/bus.log";
        freopen(log.c_str(), "w", stderr);
        freopen("/dev/null", "w", stdout);
        std::string conf = "--config-file=" + dir_ + "/system-bus.conf";
        execlp("dbus-daemon", "dbus-daemon", conf.c_str(), "--nofork", "--nopidfile", nullptr);
        _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (access((dir_ + "/system_bus_socket").c_str(), F_OK) != 0) {
        int status;
        REQUIRE(waitpid(pid_, &status, WNOHANG) == 0);  // dbus-daemon must not have exited
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

PrivateSystemBus::~PrivateSystemBus()
{
    if (pid_ > 0) {
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
}

std::string PrivateSystemBus::log() const
{
    std::ifstream in(dir_ + "/bus.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace unlinkd::test
