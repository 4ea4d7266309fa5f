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
