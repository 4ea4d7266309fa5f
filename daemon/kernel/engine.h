// The kernel side as one object: the maps, the attached mode (and the one
// being handed over from), the standbys, filters, and the ring buffer
// consumer. The Manager (daemon/manager.h) owns it and is the only caller of
// its control methods; publishers receive events through EventSink.
// Never waiting, and used from one thread: the owner's loop calls drain()
// when events_fd() is readable, and advance() from a timer while busy(). The
// verifier's loads alone run on a helper thread (see rebuild_standbys()).
#pragma once

#include <array>
#include <chrono>
#include <deque>
#include <future>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/aggregate.h"
#include "bpf_engine.h"
#include "cgroup_units.h"
#include "core/event.h"
#include "core/filter.h"
#include "core/modes.h"
#include "object_keeper.h"
#include "core/result.h"

struct ring_buffer;

namespace unlinkd {

struct EngineOptions {
    RequestedMode mode{};
    std::vector<std::string> filters;
    MapSizes sizes{};
    bool stream_events = true;  // false: count only, never resolve paths
    std::uint32_t stream_per_sec = 0;  // events streamed a second at most (0: all)
    // Where maps and links are kept across restarts (null: nowhere), and what
    // a previous run left there (the engine adopts and owns those fds).
    ObjectKeeper* keeper = nullptr;
    NamedObjects inherited;
};

class Engine {
public:
    // Creates the maps, tries every mode (the kernel decides), attaches the
    // requested one and installs the filters. Fails with a sentence for the
    // user when nothing can be attached or a filter rule is bad.
    static Result<std::unique_ptr<Engine>> make(const EngineOptions& options);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    void set_sink(EventSink* sink) { sink_ = sink; }

    const ModeTable& modes() const { return modes_; }
    Mode attached_mode() const { return attached_->mode(); }
    RequestedMode requested_mode() const { return requested_; }

    // Attaches the new mode beside the old one and starts handing the old one
    // over (HandOver): no deletion is missed or counted twice. Returns the
    // mode now attached at once; the old one is detached later, by
    // advance(). On failure the old mode stays attached and the error
    // carries the kernel's errno and what it means; EBUSY while a hand-over
    // is still running (the Manager queues switches). Never waits for the
    // verifier: when the mode's programs are not loaded yet (no standby), it
    // starts loading them on a helper thread and returns EINPROGRESS; ask
    // again once advance() has collected the load.
    Result<Mode> set_mode(RequestedMode requested);
    // An old attachment (of a switch, or of the previous run) is still being
    // drained.
    bool switching() const { return hand_over_ || !retiring_.empty(); }

    // Standbys: the other modes that work here, loaded (the verifier's part,
    // hundreds of ms, seconds under emulation) but not attached, so that
    // set_mode only attaches: a switch then takes milliseconds. The loads
    // run one at a time on a helper thread; the owner's loop collects them
    // with advance(). Asked for at start and after every switch (a switch
    // consumes the new mode's standby and destroys the old attachment).
    void rebuild_standbys() { standbys_wanted_ = true; }

    // The owner's loop calls this from a timer while busy(): detaches each
    // old attachment once the calls it claimed have returned, collects a
    // finished load and starts the next one. Never waits. True when no
    // hand-over is left (switching() is false).
    bool advance();
    // A hand-over, a load or wanted standbys remain.
    bool busy() const { return switching() || loading_ || standbys_wanted_; }
    // Loads every missing standby and waits for them (tests). The number
    // loaded.
    std::size_t prepare_standbys();

    // All rules or none: a bad rule is rejected by name and the filter in
    // force stays.
    Status set_filters(const std::vector<std::string>& rules);
    std::vector<std::string> filters() const;

    // The per-CPU counters alone: cheap, no walk of the process table
    // (tracked_processes and evicted_processes stay 0).
    Totals counters() const;
    // The counters plus the process table's size and evictions.
    Totals totals() const;
    std::vector<ProcessStats> processes();
    Status reset();

    // What the kernel streams (see unlinkd_config.stream_per_sec).
    Status set_streaming(bool stream_events, std::uint32_t per_sec);

    int events_fd() const;
    // Delivers every complete event ready in the ring buffer to the sink, or
    // the first `budget` of them: the loop serves its other sources (bus
    // calls) between slices of a storm.
    std::size_t drain(std::size_t budget = SIZE_MAX);
    // Records left after a slice keep the ring buffer's fd readable, so the
    // loop calls drain() again.

    BpfMaps& maps() { return *maps_; }
    // The ids of every attachment that may claim calls now (attached,
    // retiring, standby): a new one must take another claim slot.
    std::vector<std::uint32_t> live_attachment_ids() const;

private:
    Engine() = default;
    // Detaches each old attachment whose calls have returned. True when
    // none is left.
    bool continue_switch();
    // Loads `m` on a helper thread (one load at a time).
    void start_load(Mode m);
    // Takes a finished load into its standby slot, or its error into
    // load_error_. Never waits.
    void collect_load();
    // The next mode that wants a standby, if any.
    std::optional<Mode> missing_standby() const;
    // `old` is replaced by attached_: it is drained, then detached.
    void retire(std::unique_ptr<ModeAttachment> old);
    void start_next_hand_over();
    // Hands the keeper what must outlive this process now: the maps, the
    // attached links and those still being drained.
    void keep_objects();
    static int on_ring_record(void* ctx, void* data, std::size_t size);

    std::unique_ptr<BpfMaps> maps_;
    ObjectKeeper* keeper_ = nullptr;
    std::unique_ptr<ModeAttachment> attached_;
    std::unique_ptr<HandOver> hand_over_;                  // the one being drained
    std::deque<std::unique_ptr<ModeAttachment>> retiring_;  // to be drained after it
    std::chrono::steady_clock::time_point switch_begin_{};
    std::array<std::unique_ptr<ModeAttachment>, 3> standby_;  // by Mode; loaded, not attached
    std::array<std::optional<Error>, 3> load_error_;           // by Mode: its last load failed
    bool standbys_wanted_ = false;
    struct Load {
        Mode mode;
        std::future<Result<std::unique_ptr<ModeAttachment>>> result;
    };
    // Declared after maps_, so destroyed before them: the future's
    // destructor waits for the helper thread, which reads the maps' fds.
    std::optional<Load> loading_;
    ModeTable modes_{};
    RequestedMode requested_{};
    std::vector<FilterRule> filter_;
    std::uint32_t generation_ = 0;
    ring_buffer* ring_ = nullptr;
    EventJoiner joiner_;
    EventSink* sink_ = nullptr;
    CgroupUnits units_;
    std::int64_t realtime_offset_ns_ = 0;
    std::size_t delivered_ = 0;
    std::size_t budget_ = SIZE_MAX;
};

// CLOCK_REALTIME - CLOCK_MONOTONIC now, in ns.
std::int64_t realtime_offset_ns();

}  // namespace unlinkd
