// unlinkd: the command line, the logger and the loop. The Manager
// (manager.h) owns everything else.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdio>
#include <cstring>

#include "core/cli.h"
#include "kernel/bpf_engine.h"
#include "manager.h"

using namespace unlinkd;

namespace {

// --list-modes: every mode loaded and attached for real, the kernel decides.
int list_modes(bool json)
{
    auto table = probe_all_modes();
    if (!table) {
        spdlog::error("{}", table.error().message);
        return table.error().code == EPERM ? exit_status::no_permission : exit_status::failure;
    }
    auto out = nlohmann::json::array();
    for (const auto& status : *table) {
        std::string name(mode_name(status.mode));
        if (json)
            out.push_back({{"mode", name}, {"supported", status.supported}, {"reason", status.reason}});
        else
            std::printf("%-11s %s\n", name.c_str(), status.supported ? "loads and attaches" : status.reason.c_str());
    }
    if (json)
        std::printf("%s\n", out.dump().c_str());
    return 0;
}

void set_up_logging()
{
    auto logger = spdlog::stderr_logger_mt("unlinkd");
    // Under systemd stderr goes to the journal, which adds its own prefix.
    logger->set_pattern(std::getenv("JOURNAL_STREAM") ? "%^%l%$: %v" : "unlinkd: %^%l%$: %v");
    spdlog::set_default_logger(logger);
    if (const char* level = std::getenv("UNLINKD_LOG_LEVEL"))
        spdlog::set_level(spdlog::level::from_str(level));
    install_libbpf_logger();
}

}  // namespace

int main(int argc, char** argv)
{
    set_up_logging();
    auto options = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
    if (!options) {
        std::fprintf(stderr, "unlinkd: %s\n", options.error().message.c_str());
        return exit_status::usage;
    }
    if (options->help) {
        std::fputs(usage_text().c_str(), stdout);
        return 0;
    }
    if (options->version) {
        std::printf("unlinkd %s\n", UNLINKD_VERSION);
        return 0;
    }
    if (geteuid() != 0) {
        spdlog::error("unlinkd must run as root: it loads BPF programs (CAP_BPF, CAP_PERFMON) and "
                      "may mount tracefs (CAP_SYS_ADMIN)");
        return exit_status::no_permission;
    }
    if (options->list_modes)
        return list_modes(options->json);

    // Blocked before anything is attached: a SIGTERM that comes while the
    // Manager starts waits for the loop and detaches cleanly.
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGUSR1, SIGHUP})
        sigaddset(&mask, sig);
    sigprocmask(SIG_BLOCK, &mask, nullptr);

    sd_event* loop = nullptr;
    if (int r = sd_event_default(&loop); r < 0) {
        spdlog::error("cannot create the event loop: {}", std::strerror(-r));
        return exit_status::failure;
    }
    StartFailure failure;
    auto manager = Manager::make(loop, *options, failure);
    if (!manager) {
        spdlog::error("{}", failure.message);
        sd_event_unref(loop);
        return failure.exit_status;
    }
    int r = sd_event_loop(loop);
    manager->stop();
    manager.reset();
    sd_event_unref(loop);
    return r < 0 ? exit_status::failure : 0;
}
