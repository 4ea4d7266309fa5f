// unlinkd: command line, signals and the event loop. Everything that decides
// anything lives in the engine and the pure modules; this file wires them to
// sd-event (ring buffer fd, signals) and to the console.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "dbus_service.h"
#include "engine.h"
#include "format.h"
#include "journal_sink.h"

using namespace unlinkd;

namespace {

// Exit codes, after the LSB init-script conventions systemd also uses.
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;
constexpr int exit_no_permission = 4;

// Hands every event to each publisher in turn.
class FanOut : public EventSink {
public:
    explicit FanOut(std::vector<EventSink*> sinks) : sinks_(std::move(sinks)) {}
    void on_event(const Event& e) override
    {
        for (auto* s : sinks_)
            s->on_event(e);
    }

private:
    std::vector<EventSink*> sinks_;
};

class ConsoleSink : public EventSink {
public:
    explicit ConsoleSink(bool json) : json_(json) {}
    void on_event(const Event& e) override
    {
        std::string line = json_ ? event_json(e).dump() : journal_message(e);
        line += '\n';
        std::fwrite(line.data(), 1, line.size(), stdout);
    }

private:
    bool json_;
};

struct Daemon {
    Engine* engine = nullptr;
    bool json = false;
};

void print_summary(Daemon& d)
{
    auto totals = d.engine->totals();
    auto processes = top_processes(d.engine->processes(), SIZE_MAX);
    if (d.json) {
        std::string line = summary_json(totals, processes).dump() + "\n";
        std::fwrite(line.data(), 1, line.size(), stdout);
    } else {
        std::printf("# %llu deleted, %llu failed, %llu lost events, %llu processes\n",
                    static_cast<unsigned long long>(totals.deletes),
                    static_cast<unsigned long long>(totals.failures),
                    static_cast<unsigned long long>(totals.lost_events),
                    static_cast<unsigned long long>(totals.tracked_processes));
        for (const auto& p : processes)
            std::printf("#   %s[%u] uid=%u deleted=%llu failed=%llu\n", p.comm.c_str(), p.pid, p.uid,
                        static_cast<unsigned long long>(p.deletes), static_cast<unsigned long long>(p.failures));
    }
    std::fflush(stdout);
}

int on_events(sd_event_source*, int, uint32_t, void* userdata)
{
    auto& d = *static_cast<Daemon*>(userdata);
    d.engine->drain();
    std::fflush(stdout);
    return 0;
}

int on_signal(sd_event_source* source, const signalfd_siginfo* info, void* userdata)
{
    auto& d = *static_cast<Daemon*>(userdata);
    if (info->ssi_signo == SIGUSR1) {
        d.engine->drain();
        print_summary(d);
        return 0;
    }
    return sd_event_exit(sd_event_source_get_event(source), 0);
}

int list_modes(bool json)
{
    auto maps = BpfMaps::make(MapSizes{});
    if (!maps) {
        spdlog::error("{}", maps.error().message);
        return maps.error().code == EPERM ? exit_no_permission : exit_failure;
    }
    if (auto s = ensure_tracefs(); !s)
        spdlog::warn("{}", s.error().message);
    auto out = nlohmann::json::array();
    for (Mode m : all_modes) {
        auto status = probe_mode(**maps, m);
        if (json)
            out.push_back({{"mode", std::string(mode_name(m))},
                           {"supported", status.supported},
                           {"reason", status.reason}});
        else
            std::printf("%-11s %s\n", std::string(mode_name(m)).c_str(),
                        status.supported ? "loads and attaches" : status.reason.c_str());
    }
    if (json)
        std::printf("%s\n", out.dump().c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    auto logger = spdlog::stderr_logger_st("unlinkd");
    logger->set_pattern("unlinkd: %^%l%$: %v");
    spdlog::set_default_logger(logger);
    if (const char* level = std::getenv("UNLINKD_LOG_LEVEL"))
        spdlog::set_level(spdlog::level::from_str(level));
    install_libbpf_logger();

    auto options = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
    if (!options) {
        std::fprintf(stderr, "unlinkd: %s\n", options.error().message.c_str());
        return exit_usage;
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
        return exit_no_permission;
    }
    if (options->list_modes)
        return list_modes(options->json);
    if (options->config_path) {
        spdlog::error("--config is not supported by this build yet (configuration files come with a later "
                      "release)");
        return exit_usage;
    }

    // Blocked before anything is attached: a SIGTERM that comes while the
    // engine starts waits for the loop and detaches cleanly.
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGUSR1})
        sigaddset(&mask, sig);
    sigprocmask(SIG_BLOCK, &mask, nullptr);

    EngineOptions engine_options;
    engine_options.mode = options->mode.value_or(RequestedMode{});
    engine_options.filters = options->filters;
    auto engine = Engine::make(engine_options);
    if (!engine) {
        spdlog::error("{}", engine.error().message);
        if (engine.error().code == EPERM)
            return exit_no_permission;
        return engine.error().code == EINVAL ? exit_usage : exit_failure;
    }
    Engine& e = **engine;
    for (const auto& s : e.modes())
        if (!s.supported)
            spdlog::info("{}", s.reason);
    if (!e.filters().empty()) {
        std::string list;
        for (const auto& f : e.filters())
            list += " " + f;
        spdlog::info("filters:{}", list);
    }
    spdlog::info("attached in {} mode (requested {}): {}", mode_name(e.attached_mode()),
                 requested_mode_name(e.requested_mode()), mode_description(e.attached_mode()));

    Daemon d{&e, options->json};

    sd_event* loop = nullptr;
    if (int r = sd_event_default(&loop); r < 0) {
        spdlog::error("cannot create the event loop: {}", std::strerror(-r));
        return exit_failure;
    }
    for (int sig : {SIGTERM, SIGINT, SIGUSR1})
        sd_event_add_signal(loop, nullptr, sig, on_signal, &d);

    BusOptions bus_options;
    bus_options.address = options->bus_address;
    BusService bus(loop, e, bus_options);
    bus.start();
    // The console in the foreground, the journal otherwise (spec section 6).
    ConsoleSink console(options->json);
    JournalSink journal(loop, 200);
    FanOut sinks({options->foreground ? static_cast<EventSink*>(&console) : &journal, &bus});
    e.set_sink(&sinks);

    sd_event_add_io(loop, nullptr, e.events_fd(), EPOLLIN, on_events, &d);
    int r = sd_event_loop(loop);
    sd_event_unref(loop);

    e.drain();
    e.set_sink(nullptr);
    if (options->json && options->foreground)
        print_summary(d);
    else
        std::fflush(stdout);
    return r < 0 ? exit_failure : 0;
}
