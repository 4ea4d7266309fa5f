#include "manager.h"

#include <grp.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <systemd/sd-daemon.h>

#include <csignal>
#include <cstdio>
#include <ctime>

#include "core/escape.h"
#include "core/format.h"
#include "state_store.h"

namespace unlinkd {

namespace {

// How often the journal gets a summary entry (when something changed).
constexpr std::uint64_t journal_summary_interval_sec = 60;
// With nothing counted the periodic work sleeps: the tick polls this rarely
// (for counts that move without events, i.e. with streaming off), and an
// event from the kernel wakes everything at once.
constexpr std::uint64_t idle_poll_sec = 30;
// How often a running mode switch looks whether the old attachment drained.
constexpr std::uint64_t switch_poll_usec = 1000;
// How often a load of a mode's programs (the verifier's work, on the
// engine's helper thread) is looked at.
constexpr std::uint64_t load_poll_usec = 10'000;
// Events handed to the sinks per turn of the loop in a storm: a few
// milliseconds of work, so a bus call waits no longer than that.
constexpr std::size_t events_per_dispatch = 256;

void notify(const std::string& message) { sd_notify(0, message.c_str()); }

std::int64_t realtime_usec()
{
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<std::int64_t>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1000;
}

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

// --foreground: one line per deletion on stdout, the journal's MESSAGE or JSON.
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

Result<LoadedConfig> load_checked_config(const std::string& path, bool required)
{
    auto loaded = load_config_file(path, required);
    if (!loaded)
        return loaded.error();
    if (auto s = check_reader_group(loaded->config); !s)
        return s.error();
    return loaded;
}

}  // namespace

std::unique_ptr<Manager> Manager::make(sd_event* loop, const Options& options, StartFailure& failure)
{
    std::unique_ptr<Manager> m(new Manager(loop, options));
    if (auto f = m->start()) {
        failure = *f;
        return nullptr;
    }
    return m;
}

std::optional<StartFailure> Manager::start()
{
    config_path_ = options_.config_path.value_or(default_config_path);
    auto loaded = load_checked_config(config_path_, options_.config_path.has_value());
    if (!loaded) {
        notify("STATUS=configuration error: " + loaded.error().message);
        return StartFailure{exit_status::not_configured, loaded.error().message};
    }
    config_ = loaded->config;
    config_mtime_usec_ = loaded->mtime_usec;
    state_dir_ = state_directory();
    auto effective = choose_effective(config_, config_mtime_usec_, load_runtime_state(state_dir_), options_.mode,
                                      command_line_filters(options_));

    const char* pin_dir = std::getenv("UNLINKD_PIN_DIR");
    keeper_ = ObjectKeeper::make(pin_dir && *pin_dir ? pin_dir : default_pin_directory);

    EngineOptions engine_options;
    engine_options.mode = effective.mode;
    engine_options.filters = effective.filters;
    engine_options.sizes.max_processes = config_.max_processes;
    engine_options.sizes.ring_buffer_bytes = config_.ring_buffer_kib * 1024;
    engine_options.keeper = keeper_.get();
    auto budget = stream_budget(config_, options_.foreground);
    engine_options.stream_events = budget.stream;
    engine_options.stream_per_sec = budget.per_sec;
    engine_options.inherited = keeper_->take_inherited();
    auto engine = Engine::make(engine_options);
    if (!engine) {
        notify("STATUS=cannot start: " + engine.error().message);
        int code = engine.error().code;
        return StartFailure{code == EPERM ? exit_status::no_permission
                            : code == EINVAL ? exit_status::usage
                                             : exit_status::failure,
                            engine.error().message};
    }
    engine_ = std::move(*engine);
    for (const auto& s : engine_->modes())
        if (!s.supported)
            spdlog::info("{}", s.reason);
    if (!engine_->filters().empty()) {
        std::string list;
        for (const auto& f : engine_->filters())
            list += " " + f;
        spdlog::info("filters:{} (from the {})", list, effective.filters_from);
    }
    spdlog::info("attached in {} mode (requested {}): {}", mode_name(engine_->attached_mode()),
                 requested_mode_name(engine_->requested_mode()), mode_description(engine_->attached_mode()));
    spdlog::info("the mode came from the {}", effective.mode_from);
    spdlog::info("maps and probes are kept in {} across restarts", keeper_->where());
    journal_summary_base_ = engine_->counters();

    // The console in the foreground, the journal otherwise (spec section 6).
    if (options_.foreground) {
        console_ = std::make_unique<ConsoleSink>(options_.json);
    } else {
        auto journal = JournalSink::make(loop_, config_.max_journal_per_sec,
                                         [this] { return engine_->counters().events_unstreamed; });
        if (!journal)
            return StartFailure{exit_status::failure, journal.error().message};
        journal_ = std::move(*journal);
    }
    BusOptions bus = bus_options();
    bus.address = options_.bus_address;
    bus_ = std::make_unique<BusService>(loop_, *this, bus);
    sinks_ = std::make_unique<FanOut>(
        std::vector<EventSink*>{console_ ? console_.get() : static_cast<EventSink*>(journal_.get()), bus_.get()});
    engine_->set_sink(sinks_.get());

    if (auto s = add_sources(); !s)
        return StartFailure{exit_status::failure, s.error().message};
    bus_->start();
    // Once the loop runs (READY=1 is not held up by it): load the other
    // working modes so a mode switch only attaches.
    schedule_standbys();
    return std::nullopt;
}

Status Manager::add_sources()
{
    for (int sig : {SIGTERM, SIGINT, SIGUSR1, SIGHUP}) {
        auto s = add_signal(loop_, strsignal(sig), sig, &Manager::on_signal, this);
        if (!s)
            return s.error();
        signal_sources_.push_back(std::move(*s));
    }
    // WATCHDOG=1 from the loop itself, at half of WatchdogSec=: a stuck loop
    // (not just a live process) gets the service restarted.
    sd_event_set_watchdog(loop_, 1);

    auto tick = add_timer(loop_, "tick", config_.summary_interval_sec * 1'000'000, &Manager::on_tick, this);
    auto events = add_io(loop_, "ring-buffer", engine_->events_fd(), EPOLLIN, &Manager::on_events, this);
    // The engine may be handing over a previous run's attachments already.
    auto work = add_timer(loop_, "engine-work", 0, &Manager::on_engine_work, this);
    for (auto* r : {&tick, &events, &work})
        if (!*r)
            return r->error();
    tick_ = std::move(*tick);
    events_source_ = std::move(*events);
    engine_work_ = std::move(*work);
    journal_summary_usec_ = loop_now(loop_);
    return ok();
}

Manager::~Manager()
{
    // Pending switch replies are dropped with their callers' messages.
    mode_requests_.clear();
    if (engine_)
        engine_->set_sink(nullptr);
}

void Manager::stop()
{
    engine_->drain();
    engine_->set_sink(nullptr);
    if (journal_)
        journal_summary(loop_now(loop_));
    // Pins go on a clean exit (their links detach as the engine closes them);
    // systemd's store stays for a restart or is emptied by `systemctl stop`.
    keeper_->release();
    if (options_.json && options_.foreground)
        print_summary();
    else
        std::fflush(stdout);
}

// ---- the change path ----

Manager::Snapshot Manager::snapshot() const
{
    return Snapshot{engine_->attached_mode(), engine_->requested_mode(), engine_->filters()};
}

Status Manager::set_filters(const std::vector<std::string>& rules, Origin origin)
{
    auto before = snapshot();
    if (auto s = engine_->set_filters(rules); !s)
        return s;
    after_change(Field::filters, before, origin);
    return ok();
}

void Manager::set_mode(RequestedMode requested, Origin origin, ModeDone done)
{
    mode_requests_.push_back(ModeRequest{requested, origin, std::move(done), {}});
    start_next_switch();
}

void Manager::start_next_switch()
{
    // One at a time, and not while the engine still hands over a previous
    // run's attachments (it refuses then).
    while (!switch_running_ && !mode_requests_.empty() && !engine_->switching()) {
        auto& request = mode_requests_.front();
        request.before = snapshot();
        auto r = engine_->set_mode(request.requested);
        if (!r && r.error().code == EINPROGRESS) {
            // The mode's programs are being loaded (no standby yet): asked
            // again once advance() has collected the load.
            schedule_engine_work();
            return;
        }
        if (r && engine_->switching()) {
            switch_running_ = true;
            schedule_engine_work();
            return;
        }
        finish_switch(r);  // refused, or already in that mode
    }
}

void Manager::finish_switch(const Result<Mode>& result)
{
    auto request = std::move(mode_requests_.front());
    mode_requests_.pop_front();
    switch_running_ = false;
    if (result)
        after_change(Field::mode, request.before, request.origin);
    if (request.done)
        request.done(result);
}

void Manager::schedule_engine_work() { engine_work_.fire_in(switch_poll_usec); }

// The engine's work in steps, from a timer: a hand-over polled every
// switch_poll_usec (its drain takes milliseconds), a load on the helper
// thread every load_poll_usec (it takes hundreds). Between steps the loop
// drains the ring buffer and serves the bus.
int Manager::on_engine_work(sd_event_source*, std::uint64_t, void* self)
{
    auto& m = *static_cast<Manager*>(self);
    if (m.engine_->advance() && m.switch_running_)
        m.finish_switch(m.engine_->attached_mode());
    m.start_next_switch();  // after a switch, or once a load finished
    if (m.engine_->busy())
        m.engine_work_.fire_in(m.engine_->switching() ? switch_poll_usec : load_poll_usec);
    return 0;
}

// What follows a change, whoever asked:
// - clients are told which of AttachMode, RequestedAttachMode and Filters
//   changed (compared with before, so a no-op tells nothing);
// - a change asked over D-Bus is saved, so it survives restarts until the
//   file changes (spec section 7). A reload's is not: it applies what the
//   file or the saved state already hold, and saving it would turn a
//   --mode or --filter of this run's command line into saved state;
// - a switch consumed the new mode's standby and destroyed the old one:
//   standbys are loaded again;
// - STATUS= shows the mode.
void Manager::after_change(Field field, const Snapshot& before, Origin origin)
{
    std::vector<std::string> changed;
    if (engine_->attached_mode() != before.attached)
        changed.push_back("AttachMode");
    if (!(engine_->requested_mode() == before.requested))
        changed.push_back("RequestedAttachMode");
    if (engine_->filters() != before.filters)
        changed.push_back("Filters");
    bus_->properties_changed(changed);
    if (origin == Origin::bus)
        save_runtime_change(field);
    if (engine_->attached_mode() != before.attached)
        schedule_standbys();
    if (ready_)
        update_status();
}

void Manager::save_runtime_change(Field field)
{
    std::optional<RequestedMode> mode;
    std::optional<std::vector<std::string>> filters;
    if (field == Field::mode)
        mode = engine_->requested_mode();
    else
        filters = engine_->filters();
    auto state = record_runtime_change(load_runtime_state(state_dir_), config_mtime_usec_, mode, filters,
                                       realtime_usec());
    if (auto s = save_runtime_state(state_dir_, state); !s)
        spdlog::warn("{}; the change holds until the daemon stops", s.error().message);
    else
        spdlog::info("saved the {} to {} (they apply at the next start until {} changes)",
                     field == Field::mode ? "mode" : "filters", state_dir_, config_path_);
}

Status Manager::reset()
{
    if (auto s = engine_->reset(); !s)
        return s;
    bus_->counts_reset();
    journal_summary_base_ = engine_->counters();
    tick_count_ = 0;
    return ok();
}

// A reload differs from a D-Bus call in two ways, both on purpose: it applies
// only what differs from what is in force (it re-reads everything, and an
// unchanged filter would still flip a generation), and a part that cannot be
// applied is logged and the rest still applies (there is no caller to
// answer; systemctl sees READY=1 either way).
void Manager::reload()
{
    notify("RELOADING=1");
    auto loaded = load_checked_config(config_path_, options_.config_path.has_value());
    if (!loaded) {
        spdlog::error("reload failed, keeping the previous configuration: {}", loaded.error().message);
        update_status("configuration error, previous one kept; ");
        notify("READY=1");
        return;
    }
    const Config& c = loaded->config;
    if (c.max_processes != config_.max_processes || c.ring_buffer_kib != config_.ring_buffer_kib)
        spdlog::warn("max_processes and ring_buffer_kib size the kernel maps: they change at the next start after "
                     "a stop (a restart keeps the maps and their counts)");
    config_ = c;
    config_mtime_usec_ = loaded->mtime_usec;
    if (journal_)
        journal_->set_rate(c.max_journal_per_sec);
    auto budget = stream_budget(c, options_.foreground);
    if (auto s = engine_->set_streaming(budget.stream, budget.per_sec); !s)
        spdlog::error("reload: {}", s.error().message);
    bus_->reconfigure(bus_options());

    auto effective = choose_effective(c, config_mtime_usec_, load_runtime_state(state_dir_), options_.mode,
                                      command_line_filters(options_));
    if (effective.filters != engine_->filters())
        if (auto s = set_filters(effective.filters, Origin::reload); !s)
            spdlog::error("reload: cannot install the filters: {}", s.error().message);
    std::string from = "mode from the " + std::string(effective.mode_from) + ", filters from the " +
                       effective.filters_from;
    if (effective.mode == engine_->requested_mode()) {
        reload_complete(from, nullptr);
        return;
    }
    // READY=1 once the switch is complete.
    set_mode(effective.mode, Origin::reload,
             [this, from](const Result<Mode>& r) { reload_complete(from, r ? nullptr : &r.error()); });
}

void Manager::reload_complete(const std::string& from, const Error* switch_error)
{
    if (switch_error)
        spdlog::error("reload: cannot switch mode, staying in {}: {}", mode_name(engine_->attached_mode()),
                      switch_error->message);
    spdlog::info("configuration reloaded from {} ({})", config_path_, from);
    update_status();
    notify("READY=1");
}

// ---- publishing ----

void Manager::bus_ready()
{
    // READY=1 once the probes are attached (before the loop starts) and the
    // bus name is ours: from then on everything a client or systemd expects
    // works.
    if (ready_)
        return;
    ready_ = true;
    update_status();
    notify("READY=1");
}

BusOptions Manager::bus_options() const
{
    BusOptions b;
    b.max_signals_per_sec = config_.max_signals_per_sec;
    b.recent_events = config_.recent_events;
    b.reader_group = config_.reader_group;
    return b;
}

// STATUS= for `systemctl status`, sent only when it changes.
void Manager::update_status(const std::string& prefix)
{
    std::string text = prefix + status_text(mode_name(engine_->attached_mode()), engine_->totals());
    if (text == last_status_)
        return;
    last_status_ = text;
    notify("STATUS=" + text);
}

// The journal's summary entry, when the counts moved since the last one.
void Manager::journal_summary(std::uint64_t now_usec)
{
    auto now = engine_->counters();
    if (now.deletes != journal_summary_base_.deletes || now.failures != journal_summary_base_.failures)
        journal_->send_summary(now, journal_summary_base_, top_processes(engine_->processes(), 5),
                               (now_usec - journal_summary_usec_ + 500'000) / 1'000'000,
                               mode_name(engine_->attached_mode()));
    journal_summary_base_ = now;
    journal_summary_usec_ = now_usec;
}

void Manager::print_summary()
{
    auto totals = engine_->totals();
    auto processes = top_processes(engine_->processes(), SIZE_MAX);
    if (options_.json) {
        std::string line = summary_json(totals, processes).dump() + "\n";
        std::fwrite(line.data(), 1, line.size(), stdout);
    } else {
        std::printf("# %llu deleted, %llu failed, %llu lost events, %llu processes\n",
                    static_cast<unsigned long long>(totals.deletes),
                    static_cast<unsigned long long>(totals.failures),
                    static_cast<unsigned long long>(totals.lost_events),
                    static_cast<unsigned long long>(totals.tracked_processes));
        for (const auto& p : processes)
            std::printf("#   %s[%u] uid=%u deleted=%llu failed=%llu\n", escape_name(p.comm).c_str(), p.pid, p.uid,
                        static_cast<unsigned long long>(p.deletes), static_cast<unsigned long long>(p.failures));
    }
    std::fflush(stdout);
}

// ---- loop callbacks ----

// Every summary_interval_sec while counts move: STATUS=, the bus's Summary,
// and every minute a journal summary entry. Idle: every idle_poll_sec.
int Manager::on_tick(sd_event_source*, std::uint64_t usec, void* self)
{
    auto& m = *static_cast<Manager*>(self);
    auto c = m.engine_->counters();
    bool moved = c.deletes + c.failures != m.tick_count_;
    m.tick_count_ = c.deletes + c.failures;
    if (moved && m.ready_)
        m.update_status();
    if (moved)
        m.bus_->send_summary();
    if (m.journal_ && usec - m.journal_summary_usec_ >= journal_summary_interval_sec * 1'000'000)
        m.journal_summary(usec);
    m.tick_idle_ = !moved;
    m.tick_.fire_at(usec + (moved ? m.config_.summary_interval_sec : idle_poll_sec) * 1'000'000);
    return 0;
}

// Something was deleted: the periodic work runs again at its own cadence.
void Manager::wake_tick()
{
    if (!tick_idle_)
        return;
    tick_idle_ = false;
    tick_.fire_in(config_.summary_interval_sec * 1'000'000);
}

int Manager::on_events(sd_event_source*, int, uint32_t, void* self)
{
    auto& m = *static_cast<Manager*>(self);
    // A slice at a time: the ring buffer's fd stays readable while records
    // are left, and the loop serves bus calls in between.
    m.engine_->drain(events_per_dispatch);
    std::fflush(stdout);
    m.wake_tick();
    return 0;
}

int Manager::on_signal(sd_event_source* source, const signalfd_siginfo* info, void* self)
{
    auto& m = *static_cast<Manager*>(self);
    if (info->ssi_signo == SIGUSR1) {
        m.engine_->drain();
        m.print_summary();
        return 0;
    }
    if (info->ssi_signo == SIGHUP) {
        m.reload();
        return 0;
    }
    notify("STOPPING=1");
    return sd_event_exit(sd_event_source_get_event(source), 0);
}

// The other working modes are loaded on the engine's helper thread, one at
// a time, after any switch in progress.
void Manager::schedule_standbys()
{
    engine_->rebuild_standbys();
    schedule_engine_work();
}

}  // namespace unlinkd
