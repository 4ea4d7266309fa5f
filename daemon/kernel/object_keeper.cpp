#include "object_keeper.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace unlinkd {

namespace {

// The kernel's id of a BPF map, program or link: the info structs of all
// three start with (type, id). Tells "same name, other object" apart.
std::uint32_t object_id(int fd)
{
    struct {
        std::uint32_t type;
        std::uint32_t id;
    } info{};
    std::uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
        return 0;
    return info.id;
}

class FdStoreKeeper final : public ObjectKeeper {
public:
    std::string where() const override { return "systemd's file descriptor store"; }

    std::map<std::string, int> take_inherited() override
    {
        std::map<std::string, int> out;
        char** names = nullptr;
        int n = sd_listen_fds_with_names(1, &names);
        if (n < 0) {
            spdlog::warn("cannot take the file descriptors systemd passed: {}", std::strerror(-n));
            return out;
        }
        for (int i = 0; i < n; ++i) {
            int fd = SD_LISTEN_FDS_START + i;
            std::string name = names && names[i] ? names[i] : "";
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            if (name.rfind("map-", 0) == 0 || name.rfind("link-", 0) == 0) {
                out[name] = fd;
                already_kept(name, fd);  // still in the store
            } else {
                close(fd);
            }
        }
        if (names) {
            for (int i = 0; i < n; ++i)
                std::free(names[i]);
            std::free(names);
        }
        return out;
    }

    void release() override {}

protected:
    // FDPOLL=0: map fds report EPOLLERR to poll (only ring buffers are
    // pollable), which would make systemd drop them at once.
    bool store(const std::string& name, int fd) override
    {
        return notify("FDSTORE=1\nFDPOLL=0\nFDNAME=" + name, &fd);
    }
    void remove(const std::string& name) override { notify("FDSTOREREMOVE=1\nFDNAME=" + name, nullptr); }

private:
    static bool notify(const std::string& message, const int* fd)
    {
        int r = sd_pid_notify_with_fds(0, 0, message.c_str(), fd, fd ? 1 : 0);
        if (r <= 0) {
            spdlog::warn("cannot update systemd's file descriptor store ({}): counts may not survive a restart",
                         r < 0 ? std::strerror(-r) : "no NOTIFY_SOCKET");
            return false;
        }
        return true;
    }
};

class PinKeeper final : public ObjectKeeper {
public:
    explicit PinKeeper(std::string directory) : dir_(std::move(directory))
    {
        if (!ensure_bpffs())
            return;
        if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
            spdlog::warn("cannot create {} ({}): counts will not survive a crash of this run", dir_,
                         std::strerror(errno));
            return;
        }
        // One daemon per directory: a second one must not adopt (and then
        // remove) the objects of a running one.
        dir_fd_ = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd_ < 0 || flock(dir_fd_, LOCK_EX | LOCK_NB) != 0) {
            spdlog::warn("another unlinkd keeps its objects in {}; this one's counts will not survive a crash",
                         dir_);
            if (dir_fd_ >= 0)
                close(dir_fd_);
            dir_fd_ = -1;
        }
    }
    ~PinKeeper() override
    {
        if (dir_fd_ >= 0)
            close(dir_fd_);
    }

    std::string where() const override { return dir_fd_ >= 0 ? "pins under " + dir_ : "nowhere"; }

    std::map<std::string, int> take_inherited() override
    {
        std::map<std::string, int> out;
        if (dir_fd_ < 0)
            return out;
        DIR* d = opendir(dir_.c_str());
        if (!d)
            return out;
        while (dirent* entry = readdir(d)) {
            std::string name = entry->d_name;
            if (name == "." || name == "..")
                continue;
            int fd = bpf_obj_get((dir_ + "/" + name).c_str());
            if (fd < 0) {
                spdlog::warn("cannot open the pinned {}/{}: {}", dir_, name, std::strerror(errno));
                continue;
            }
            out[name] = fd;
            already_kept(name, fd);
        }
        closedir(d);
        return out;
    }

    void release() override
    {
        if (dir_fd_ < 0)
            return;
        keep({});
        rmdir(dir_.c_str());
    }

protected:
    bool store(const std::string& name, int fd) override
    {
        if (dir_fd_ < 0)  // no directory of our own: nothing is kept
            return false;
        if (bpf_obj_pin(fd, (dir_ + "/" + name).c_str()) == 0)
            return true;
        spdlog::warn("cannot pin {}/{}: {}; counts may not survive a crash", dir_, name, std::strerror(errno));
        return false;
    }
    void remove(const std::string& name) override { unlinkat(dir_fd_, name.c_str(), 0); }

private:
    // Pins live on a bpf filesystem. Outside systemd nothing may have mounted
    // one on /sys/fs/bpf (a container, a minimal boot): mount it, as tracefs
    // is mounted for tracepoints, or say what to run.
    bool ensure_bpffs() const
    {
        auto slash = dir_.find_last_of('/');
        // Assigned, not built with operator+ or "/": GCC 12's false -Wrestrict (PR 105651).
        std::string parent(dir_, 0, slash == 0 || slash == std::string::npos ? 1 : slash);
        if (on_bpffs(parent))
            return true;
        if (parent == default_bpffs) {
            if (mount("bpf", default_bpffs, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") == 0) {
                spdlog::info("mounted the bpf filesystem on {} (pins keep the counts across a crash)", default_bpffs);
                return true;
            }
            spdlog::warn("no bpf filesystem on {} and mounting one failed ({}); counts will not survive a crash "
                         "of this run; run: mount -t bpf bpf {}",
                         default_bpffs, strerrorname_np(errno), default_bpffs);
            return false;
        }
        spdlog::warn("{} is not on a bpf filesystem: counts will not survive a crash of this run (UNLINKD_PIN_DIR "
                     "must be under a bpffs mount, e.g. /sys/fs/bpf)",
                     dir_);
        return false;
    }
    static bool on_bpffs(const std::string& path)
    {
        struct statfs st {};
        return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
    }
    static constexpr const char* default_bpffs = "/sys/fs/bpf";

    std::string dir_;
    int dir_fd_ = -1;
};

}  // namespace

void ObjectKeeper::already_kept(const std::string& name, int fd) { kept_[name] = object_id(fd); }

void ObjectKeeper::keep(const std::map<std::string, int>& objects)
{
    for (auto it = kept_.begin(); it != kept_.end();) {
        auto want = objects.find(it->first);
        if (want != objects.end() && object_id(want->second) == it->second) {
            ++it;
            continue;
        }
        remove(it->first);
        it = kept_.erase(it);
    }
    for (const auto& [name, fd] : objects)
        if (!kept_.count(name) && store(name, fd))
            kept_[name] = object_id(fd);
}

std::unique_ptr<ObjectKeeper> ObjectKeeper::make(const std::string& pin_directory)
{
    if (const char* socket = std::getenv("NOTIFY_SOCKET"); socket && *socket)
        return std::make_unique<FdStoreKeeper>();
    return std::make_unique<PinKeeper>(pin_directory);
}

}  // namespace unlinkd
