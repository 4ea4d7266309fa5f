#include "state_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

namespace unlinkd {

namespace {

constexpr const char* state_file = "state.json";

Result<std::string> read_whole(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return Error{errno, std::strerror(errno)};
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

Result<LoadedConfig> load_config_file(const std::string& path, bool required)
{
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        int err = errno;
        if (err == ENOENT && !required)
            return LoadedConfig{};
        return Error{err, "cannot read the configuration " + path + ": " + std::strerror(err)};
    }
    auto text = read_whole(path);
    if (!text)
        return Error{text.error().code, "cannot read the configuration " + path + ": " + text.error().message};
    auto config = parse_config(*text);
    if (!config)
        return Error{config.error().code, path + ": " + config.error().message};
    return LoadedConfig{*config, static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000 + st.st_mtim.tv_nsec / 1000};
}

std::string state_directory()
{
    // systemd may pass several, colon-separated: the first is ours.
    if (const char* dir = std::getenv("STATE_DIRECTORY"); dir && *dir) {
        std::string d(dir);
        return d.substr(0, d.find(':'));
    }
    return default_state_directory;
}

std::optional<RuntimeState> load_runtime_state(const std::string& directory)
{
    std::string path = directory + "/" + state_file;
    auto text = read_whole(path);
    if (!text) {
        if (text.error().code != ENOENT)
            spdlog::warn("cannot read the saved runtime state {}: {}; using the configuration", path,
                         text.error().message);
        return std::nullopt;
    }
    auto state = parse_state(*text);
    if (!state) {
        spdlog::warn("{}: {}; using the configuration", path, state.error().message);
        return std::nullopt;
    }
    return *state;
}

Status save_runtime_state(const std::string& directory, const RuntimeState& state)
{
    if (mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
        int err = errno;
        return Error{err, "cannot create " + directory + ": " + std::strerror(err)};
    }
    std::string path = directory + "/" + state_file;
    std::string tmp = path + ".tmp";
    std::string text = serialize_state(state);
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        return Error{err, "cannot write " + tmp + ": " + std::strerror(err)};
    }
    bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
    int err = errno;
    close(fd);
    if (!written || rename(tmp.c_str(), path.c_str()) != 0) {
        err = written ? errno : err;
        unlink(tmp.c_str());
        return Error{err, "cannot save the runtime state to " + path + ": " + std::strerror(err)};
    }
    return ok();
}

}  // namespace unlinkd
