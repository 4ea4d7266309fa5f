// Where the BPF maps and links wait while the daemon restarts, so that no
// deletion goes uncounted (spec section 6): the maps keep counting and the
// probes stay attached while no daemon process exists.
//
// Under systemd (NOTIFY_SOCKET set) that is the service's file descriptor
// store: a restart or a crash followed by the automatic restart hands the fds
// back, and `systemctl stop` empties the store, which detaches everything.
// Elsewhere it is bpffs pins under /sys/fs/bpf/unlinkd: a crash leaves them
// for the next start, a clean exit removes them.
//
// Objects are named: "map-<map name>" for maps, "link-<mode>-<attachment
// id>-<e|x><n>" for the entry and exit links of one attachment.
#pragma once

#include <map>
#include <memory>
#include <string>

namespace unlinkd {

inline constexpr const char* default_pin_directory = "/sys/fs/bpf/unlinkd";

class ObjectKeeper {
public:
    // The file descriptor store when systemd supervises us, pins otherwise.
    static std::unique_ptr<ObjectKeeper> make(const std::string& pin_directory);
    virtual ~ObjectKeeper() = default;

    // Where the objects are kept, for the log.
    virtual std::string where() const = 0;
    // The objects a previous run left, by name. The caller owns the fds.
    // They count as kept until keep() says otherwise.
    virtual std::map<std::string, int> take_inherited() = 0;
    // Makes the kept set equal to `objects` (name to fd; the fds stay the
    // caller's): drops what is gone or is another object under the same
    // name, stores what is new.
    void keep(const std::map<std::string, int>& objects);
    // A clean exit that must leave nothing behind (pins); the file descriptor
    // store is systemd's to keep over a restart or to empty on stop.
    virtual void release() = 0;

protected:
    // One object into the place, or out of it. store() says if it took.
    virtual bool store(const std::string& name, int fd) = 0;
    virtual void remove(const std::string& name) = 0;
    // An object the place already holds (inherited).
    void already_kept(const std::string& name, int fd);

private:
    std::map<std::string, std::uint32_t> kept_;  // name -> kernel object id
};

}  // namespace unlinkd
