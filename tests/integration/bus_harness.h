// A private dbus-daemon that behaves like the system bus (type system,
// default-deny policy) and includes the project's own policy file, as the
// installed system bus would. For the D-Bus integration tests.
#pragma once

#include <memory>
#include <string>

namespace unlinkd::test {

class Process;

class PrivateSystemBus {
public:
    // `policy_file`: the project's dbus/org.unlinkd.Unlinkd1.conf. With
    // `start_now` false the address is known but nothing listens until start().
    explicit PrivateSystemBus(const std::string& policy_file, bool start_now = true);
    void start();
    ~PrivateSystemBus();
    PrivateSystemBus(const PrivateSystemBus&) = delete;
    PrivateSystemBus& operator=(const PrivateSystemBus&) = delete;

    const std::string& address() const { return address_; }
    // The bus log: dbus-daemon writes rejected messages there.
    std::string log() const;

private:
    std::string dir_;
    std::string address_;
    std::unique_ptr<Process> daemon_;  // the dbus-daemon, once started
};

// Where the source tree's dbus/ directory is (for the policy and XML files).
std::string dbus_source_dir();

}  // namespace unlinkd::test
