#include "bus_harness.h"

#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "harness.h"

namespace unlinkd::test {

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
    const char* template_path = std::getenv("UNLINKD_TEST_BUS_CONF");
    REQUIRE(template_path != nullptr);
    std::ifstream in(template_path);
    REQUIRE(in.good());
    std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (auto at = config.find("@DIR@"); at != std::string::npos; at = config.find("@DIR@"))
        config.replace(at, 5, dir_);
    std::ofstream(dir_ + "/system-bus.conf") << config;
    address_ = "unix:path=" + dir_ + "/system_bus_socket";
    if (start_now)
        start();
}

void PrivateSystemBus::start()
{
    daemon_ = std::make_unique<Process>(
        std::vector<std::string>{"dbus-daemon", "--config-file=" + dir_ + "/system-bus.conf", "--nofork", "--nopidfile"});
    std::string socket = dir_ + "/system_bus_socket";
    poll_until([&]() { return access(socket.c_str(), F_OK) == 0 || !daemon_->running(); }, std::chrono::seconds(10),
               std::chrono::milliseconds(10));
    INFO("dbus-daemon: " << daemon_->err());
    REQUIRE(daemon_->running());  // dbus-daemon must not have exited
    REQUIRE(access(socket.c_str(), F_OK) == 0);
}

PrivateSystemBus::~PrivateSystemBus()
{
    daemon_.reset();  // stopped before its directory goes
    std::filesystem::remove_all(dir_);
}

// dbus-daemon writes rejected messages to its stderr.
std::string PrivateSystemBus::log() const { return daemon_ ? daemon_->err() : std::string(); }

}  // namespace unlinkd::test
