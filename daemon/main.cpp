// unlinkd: command line, signals and the event loop. Everything that decides
// anything lives in the engine and the pure modules; this file wires them to
// sd-event (ring buffer fd, signals) and to the console.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <grp.h>
#include <sys/epoll.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>

#include "core/cli.h"
#include "core/config.h"
#include "dbus_service.h"
#include "kernel/engine.h"
#include "core/format.h"
#include "journal_sink.h"
#include "kernel/object_keeper.h"
#include "state_store.h"

using namespace unlinkd;

namespace {

// Exit codes, after the LSB init-script conventions systemd also uses.
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;
constexpr int exit_no_permission = 4;
constexpr int exit_not_configured = 6;  // a broken configuration file

// How often the journal gets a summary entry (when something changed).
constexpr std::uint64_t journal_summary_interval_sec = 60;
// With nothing counted the periodic work sleeps: the tick polls this rarely
// (for counts that move without events, i.e. with streaming off), and an
// event from the kernel wakes everything at once.
constexpr std::uint64_t idle_poll_sec = 30;

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
    Options options;
    std::string config_path;
    Config config;
    std::string state_dir;
    BusService* bus = nullptr;
    JournalSink* journal = nullptr;
    bool ready = false;
    std::string last_status;
    Totals journal_summary_base{};
    std::uint64_t journal_summary_usec = 0;  // CLOCK_MONOTONIC of the base
    sd_event* loop = nullptr;
    sd_event_source* tick = nullptr;
    std::uint64_t tick_count = 0;  // deletes + failures at the last tick
    bool tick_idle = false;        // the tick polls every idle_poll_sec
};

// The journal's summary entry, when the counts moved since the last one.
void journal_summary(Daemon& d, std::uint64_t now_usec)
{
    auto now = d.engine->counters();
    if (now.deletes != d.journal_summary_base.deletes || now.failures != d.journal_summary_base.failures)
        JournalSink::send_summary(now, d.journal_summary_base, top_processes(d.engine->processes(), 5),
                                  (now_usec - d.journal_summary_usec + 500'000) / 1'000'000,
                                  mode_name(d.engine->attached_mode()));
    d.journal_summary_base = now;
    d.journal_summary_usec = now_usec;
}

void notify(const std::string& message) { sd_notify(0, message.c_str()); }

void schedule_standbys(Daemon& d)
{
    sd_event_source* src = nullptr;
    sd_event_add_defer(
        d.loop, &src,
        [](sd_event_source* s, void* userdata) {
            auto n = static_cast<Daemon*>(userdata)->engine->prepare_standbys();
            if (n)
                spdlog::debug("{} attach modes preloaded for fast switches", n);
            sd_event_source_disable_unref(s);
            return 0;
        },
        &d);
}

// STATUS= for `systemctl status`, sent only when it changes.
void update_status(Daemon& d, const std::string& prefix = {})
{
    std::string text = prefix + status_text(mode_name(d.engine->attached_mode()), d.engine->totals());
    if (text == d.last_status)
        return;
    d.last_status = text;
    notify("STATUS=" + text);
}

// READY=1 once the probes are attached (before the loop starts) and the bus
// name is ours: from then on everything a client or systemd expects works.
void on_name_acquired(Daemon& d)
{
    if (d.ready)
        return;
    d.ready = true;
    update_status(d);
    notify("READY=1");
}

BusOptions bus_options_of(const Config& c)
{
    BusOptions b;
    b.max_signals_per_sec = c.max_signals_per_sec;
    b.recent_events = c.recent_events;
    b.reader_group = c.reader_group;
    return b;
}

std::optional<std::vector<std::string>> command_line_filters(const Options& o)
{
    if (o.filters.empty())
        return std::nullopt;
    return o.filters;
}

// A reader group that does not exist would silently narrow who may read.
Status check_reader_group(const Config& c)
{
    if (getgrnam(c.reader_group.c_str()))
        return ok();
    return Error{EINVAL, "configuration key \"reader_group\": no group named \"" + c.reader_group + "\" on this system"};
}

void remember_runtime_change(Daemon& d)
{
    RuntimeState state;
    state.mode = d.engine->requested_mode();
    state.filters = d.engine->filters();
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    state.saved_usec = static_cast<std::int64_t>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1000;
    if (auto s = save_runtime_state(d.state_dir, state); !s)
        spdlog::warn("{}; the change holds until the daemon stops", s.error().message);
    else
        spdlog::info("saved the filters and mode to {} (they apply at the next start until {} changes)",
                     d.state_dir, d.config_path);
}

// SIGHUP: read the file again. A broken file changes nothing.
void reload(Daemon& d)
{
    notify("RELOADING=1");
    auto loaded = load_config_file(d.config_path, d.options.config_path.has_value());
    Status valid = loaded ? check_reader_group(loaded->config) : Status(loaded.error());
    if (!valid) {
        spdlog::error("reload failed, keeping the previous configuration: {}", valid.error().message);
        update_status(d, "configuration error, previous one kept; ");
        notify("READY=1");
        return;
    }
    const Config& c = loaded->config;
    if (c.max_processes != d.config.max_processes || c.ring_buffer_kib != d.config.ring_buffer_kib)
        spdlog::warn("max_processes and ring_buffer_kib size the kernel maps: they change at the next start after "
                     "a stop (a restart keeps the maps and their counts)");
    if (d.journal)
        d.journal->set_rate(c.max_journal_per_sec);
    auto budget = stream_budget(c, d.options.foreground);
    if (auto s = d.engine->set_streaming(budget.stream, budget.per_sec); !s)
        spdlog::error("reload: {}", s.error().message);
    d.bus->reconfigure(bus_options_of(c));

    auto state = load_runtime_state(d.state_dir);
    auto effective = choose_effective(c, loaded->mtime_usec, state, d.options.mode, command_line_filters(d.options));
    std::vector<std::string> changed;
    if (!(effective.mode == d.engine->requested_mode())) {
        auto before = d.engine->attached_mode();
        if (auto r = d.engine->set_mode(effective.mode); !r)
            spdlog::error("reload: cannot switch to {} mode, staying in {}: {}", requested_mode_name(effective.mode),
                          mode_name(d.engine->attached_mode()), r.error().message);
        else
            changed.push_back("RequestedAttachMode");
        if (d.engine->attached_mode() != before) {
            changed.push_back("AttachMode");
            schedule_standbys(d);
        }
    }
    if (effective.filters != d.engine->filters()) {
        if (auto r = d.engine->set_filters(effective.filters); !r)
            spdlog::error("reload: cannot install the filters: {}", r.error().message);
        else
            changed.push_back("Filters");
    }
    d.bus->properties_changed(changed);
    d.config = c;
    spdlog::info("configuration reloaded from {} (mode from the {}, filters from the {})", d.config_path,
                 effective.mode_from, effective.filters_from);
    update_status(d);
    notify("READY=1");
}

// Every summary_interval_sec while counts move: STATUS=, the bus's Summary,
// and every minute a journal summary entry. Idle: every idle_poll_sec.
int on_tick(sd_event_source* source, std::uint64_t usec, void* userdata)
{
    auto& d = *static_cast<Daemon*>(userdata);
    auto c = d.engine->counters();
    bool moved = c.deletes + c.failures != d.tick_count;
    d.tick_count = c.deletes + c.failures;
    if (moved && d.ready)
        update_status(d);
    if (moved)
        d.bus->send_summary();
    if (d.journal && usec - d.journal_summary_usec >= journal_summary_interval_sec * 1'000'000)
        journal_summary(d, usec);
    d.tick_idle = !moved;
    sd_event_source_set_time(source, usec + (moved ? d.config.summary_interval_sec : idle_poll_sec) * 1'000'000);
    return 0;
}

// Something was deleted: the periodic work runs again at its own cadence.
void wake_tick(Daemon& d)
{
    if (!d.tick_idle)
        return;
    d.tick_idle = false;
    std::uint64_t now = 0;
    sd_event_now(sd_event_source_get_event(d.tick), CLOCK_MONOTONIC, &now);
    sd_event_source_set_time(d.tick, now + d.config.summary_interval_sec * 1'000'000);
}

void print_summary(Daemon& d)
{
    auto totals = d.engine->totals();
    auto processes = top_processes(d.engine->processes(), SIZE_MAX);
    if (d.options.json) {
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
    wake_tick(d);
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
    if (info->ssi_signo == SIGHUP) {
        reload(d);
        return 0;
    }
    notify("STOPPING=1");
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
    // Under systemd stderr goes to the journal, which adds its own prefix.
    logger->set_pattern(std::getenv("JOURNAL_STREAM") ? "%^%l%$: %v" : "unlinkd: %^%l%$: %v");
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

    Daemon d;
    d.options = *options;
    d.config_path = options->config_path.value_or(default_config_path);
    auto loaded = load_config_file(d.config_path, options->config_path.has_value());
    Status valid = loaded ? check_reader_group(loaded->config) : Status(loaded.error());
    if (!valid) {
        spdlog::error("{}", valid.error().message);
        notify("STATUS=configuration error: " + valid.error().message);
        return exit_not_configured;
    }
    d.config = loaded->config;
    d.state_dir = state_directory();
    auto effective = choose_effective(d.config, loaded->mtime_usec, load_runtime_state(d.state_dir), options->mode,
                                      command_line_filters(*options));

    // Blocked before anything is attached: a SIGTERM that comes while the
    // engine starts waits for the loop and detaches cleanly.
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGUSR1, SIGHUP})
        sigaddset(&mask, sig);
    sigprocmask(SIG_BLOCK, &mask, nullptr);

    const char* pin_dir = std::getenv("UNLINKD_PIN_DIR");
    auto keeper = ObjectKeeper::make(pin_dir && *pin_dir ? pin_dir : default_pin_directory);

    EngineOptions engine_options;
    engine_options.mode = effective.mode;
    engine_options.filters = effective.filters;
    engine_options.sizes.max_processes = d.config.max_processes;
    engine_options.sizes.ring_buffer_bytes = d.config.ring_buffer_kib * 1024;
    engine_options.keeper = keeper.get();
    auto budget = stream_budget(d.config, options->foreground);
    engine_options.stream_events = budget.stream;
    engine_options.stream_per_sec = budget.per_sec;
    engine_options.inherited = keeper->take_inherited();
    auto engine = Engine::make(engine_options);
    if (!engine) {
        spdlog::error("{}", engine.error().message);
        notify("STATUS=cannot start: " + engine.error().message);
        if (engine.error().code == EPERM)
            return exit_no_permission;
        return engine.error().code == EINVAL ? exit_usage : exit_failure;
    }
    Engine& e = **engine;
    d.engine = &e;
    for (const auto& s : e.modes())
        if (!s.supported)
            spdlog::info("{}", s.reason);
    if (!e.filters().empty()) {
        std::string list;
        for (const auto& f : e.filters())
            list += " " + f;
        spdlog::info("filters:{} (from the {})", list, effective.filters_from);
    }
    spdlog::info("attached in {} mode (requested {}): {}", mode_name(e.attached_mode()),
                 requested_mode_name(e.requested_mode()), mode_description(e.attached_mode()));
    spdlog::info("the mode came from the {}", effective.mode_from);
    spdlog::info("maps and probes are kept in {} across restarts", keeper->where());
    d.journal_summary_base = e.counters();

    sd_event* loop = nullptr;
    if (int r = sd_event_default(&loop); r < 0) {
        spdlog::error("cannot create the event loop: {}", std::strerror(-r));
        return exit_failure;
    }
    for (int sig : {SIGTERM, SIGINT, SIGUSR1, SIGHUP})
        sd_event_add_signal(loop, nullptr, sig, on_signal, &d);
    // WATCHDOG=1 from the loop itself, at half of WatchdogSec=: a stuck loop
    // (not just a live process) gets the service restarted.
    sd_event_set_watchdog(loop, 1);

    BusOptions bus_options = bus_options_of(d.config);
    bus_options.address = options->bus_address;
    bus_options.on_name_acquired = [&d] { on_name_acquired(d); };
    bus_options.on_runtime_change = [&d] {
        remember_runtime_change(d);
        schedule_standbys(d);
    };
    BusService bus(loop, e, bus_options);
    d.bus = &bus;
    // The console in the foreground, the journal otherwise (spec section 6).
    ConsoleSink console(options->json);
    JournalSink journal(loop, d.config.max_journal_per_sec, [&e] { return e.counters().events_unstreamed; });
    if (!options->foreground)
        d.journal = &journal;
    FanOut sinks({options->foreground ? static_cast<EventSink*>(&console) : &journal, &bus});
    e.set_sink(&sinks);
    bus.start();

    sd_event_add_time_relative(loop, &d.tick, CLOCK_MONOTONIC, d.config.summary_interval_sec * 1'000'000, 0,
                               on_tick, &d);
    sd_event_source_set_enabled(d.tick, SD_EVENT_ON);
    sd_event_now(loop, CLOCK_MONOTONIC, &d.journal_summary_usec);

    sd_event_add_io(loop, nullptr, e.events_fd(), EPOLLIN, on_events, &d);
    // Once the loop runs (READY=1 is not held up by it), and after each
    // mode switch (once the caller has its reply): load the other working
    // modes so a mode switch only attaches.
    d.loop = loop;
    schedule_standbys(d);
    int r = sd_event_loop(loop);
    sd_event_source_disable_unref(d.tick);

    e.drain();
    e.set_sink(nullptr);
    if (d.journal) {
        std::uint64_t now = 0;
        sd_event_now(loop, CLOCK_MONOTONIC, &now);
        journal_summary(d, now);
    }
    sd_event_unref(loop);
    // Pins go on a clean exit (their links detach as the engine closes them);
    // systemd's store stays for a restart or is emptied by `systemctl stop`.
    keeper->release();
    if (options->json && options->foreground)
        print_summary(d);
    else
        std::fflush(stdout);
    return r < 0 ? exit_failure : 0;
}
