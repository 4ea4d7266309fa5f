// The Manager: the one owner of the daemon's state (after systemd's
// oomd-manager): the configuration, the engine (the kernel side), the sinks
// (console or journal, and the bus), the periodic tick, reload, the saved
// runtime state and sd_notify.
//
// Data flows kernel -> engine -> Manager's sinks -> journal/console/bus.
// Control flows bus or SIGHUP -> Manager -> engine -> maps. Every change of
// the mode or the filters, whoever asks, goes through set_mode() or
// set_filters() and ends in after_change(), the one place that decides what
// follows a change: which properties clients are told changed, whether the
// change is saved (spec section 7), whether standbys are rebuilt, STATUS=.
//
// Single-threaded, on the loop's thread, and never waiting: a mode switch
// is a timer that polls the engine's hand-over (and the load of the mode's
// programs, on the engine's helper thread, when no standby was ready), and
// its D-Bus reply is sent when the switch is complete.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cli.h"
#include "core/config.h"
#include "core/control.h"
#include "dbus_service.h"
#include "event_loop.h"
#include "journal_sink.h"
#include "kernel/engine.h"
#include "kernel/object_keeper.h"

namespace unlinkd {

// Exit statuses, after the LSB init-script conventions systemd also uses.
namespace exit_status {
inline constexpr int failure = 1;
inline constexpr int usage = 2;           // bad command line, filter rule or mode
inline constexpr int no_permission = 4;
inline constexpr int not_configured = 6;  // a broken configuration file
}  // namespace exit_status

struct StartFailure {
    int exit_status = exit_status::failure;
    std::string message;
};

class Manager final : public Control {
public:
    // Reads the configuration and the saved state, attaches, and adds its
    // sources to `loop` (signals, the ring buffer, the tick) and connects to
    // the bus. Null with `failure` filled when it cannot start.
    static std::unique_ptr<Manager> make(sd_event* loop, const Options& options, StartFailure& failure);
    ~Manager() override;
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;

    // After the loop ended: the last events, the journal's summary entry, the
    // pins removed (a clean exit), the --json summary.
    void stop();

    // ---- Control: what the bus reads and asks ----
    Mode attached_mode() const override { return engine_->attached_mode(); }
    RequestedMode requested_mode() const override { return engine_->requested_mode(); }
    const ModeTable& modes() const override { return engine_->modes(); }
    std::vector<std::string> filters() const override { return engine_->filters(); }
    Totals counters() const override { return engine_->counters(); }
    Totals totals() const override { return engine_->totals(); }
    std::vector<ProcessStats> processes() override { return engine_->processes(); }
    void set_mode(RequestedMode requested, ModeDone done) override { set_mode(requested, Origin::bus, std::move(done)); }
    Status set_filters(const std::vector<std::string>& rules) override { return set_filters(rules, Origin::bus); }
    Status reset() override;
    void bus_ready() override;

    // SIGHUP: reads the file again; a broken file changes nothing.
    void reload();

private:
    // Who asked for a change. Where the two must differ, after_change() and
    // reload() say why.
    enum class Origin { bus, reload };
    enum class Field { mode, filters };
    // What a change may alter that clients see as properties.
    struct Snapshot {
        Mode attached;
        RequestedMode requested;
        std::vector<std::string> filters;
    };
    struct ModeRequest {
        RequestedMode requested;
        Origin origin;
        ModeDone done;
        Snapshot before;
    };

    Manager(sd_event* loop, const Options& options) : loop_(loop), options_(options) {}
    std::optional<StartFailure> start();
    Status add_sources();

    void set_mode(RequestedMode requested, Origin origin, ModeDone done);
    Status set_filters(const std::vector<std::string>& rules, Origin origin);
    void after_change(Field field, const Snapshot& before, Origin origin);
    Snapshot snapshot() const;
    // Mode switches run one at a time, in the order asked.
    void start_next_switch();
    void finish_switch(const Result<Mode>& result);
    void save_runtime_change(Field field);
    void reload_complete(const std::string& from, const Error* switch_error);
    void schedule_standbys();
    void schedule_engine_work();

    void update_status(const std::string& prefix = {});
    void journal_summary(std::uint64_t now_usec);
    void wake_tick();
    void print_summary();
    BusOptions bus_options() const;

    static int on_signal(sd_event_source* source, const signalfd_siginfo* info, void* self);
    static int on_events(sd_event_source*, int, uint32_t, void* self);
    static int on_tick(sd_event_source* source, std::uint64_t usec, void* self);
    static int on_engine_work(sd_event_source*, std::uint64_t, void* self);

    sd_event* loop_;
    Options options_;
    std::string config_path_;
    Config config_;
    std::optional<std::int64_t> config_mtime_usec_;
    std::string state_dir_;

    std::unique_ptr<ObjectKeeper> keeper_;  // before the engine: it outlives the engine's links
    std::unique_ptr<Engine> engine_;
    std::unique_ptr<BusService> bus_;
    std::unique_ptr<JournalSink> journal_;  // not in the foreground
    std::unique_ptr<EventSink> console_;    // in the foreground
    std::unique_ptr<EventSink> sinks_;      // the above, in turn

    std::deque<ModeRequest> mode_requests_;  // front: the switch running, if switch_running_
    bool switch_running_ = false;

    bool ready_ = false;
    std::string last_status_;
    Totals journal_summary_base_{};
    std::uint64_t journal_summary_usec_ = 0;  // CLOCK_MONOTONIC of the base
    std::uint64_t tick_count_ = 0;            // deletes + failures at the last tick
    bool tick_idle_ = false;                  // the tick polls every idle_poll_sec

    std::vector<EventSource> signal_sources_;
    EventSource events_source_;
    EventSource tick_;
    EventSource engine_work_;  // Engine::advance() while the engine is busy()
};

}  // namespace unlinkd
