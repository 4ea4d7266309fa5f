// The core: owns the kernel side (maps, the attached mode, filters, the ring
// buffer consumer) and is the one place where state changes. Publishers
// (console, journal, D-Bus) receive events through EventSink and read counts
// through the accessors; control (mode, filters, reset) goes through the
// methods here. Single-threaded: the caller's event loop calls drain() when
// events_fd() is readable.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
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

class EventSink {
public:
    virtual ~EventSink() = default;
    virtual void on_event(const Event& event) = 0;
};

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

    // Attaches the new mode before detaching the old one: no deletion is
    // missed or counted twice. On failure the old mode stays attached and the
    // error carries the kernel's errno and what it means.
    Result<Mode> set_mode(RequestedMode requested);

    // Loads (without attaching) every other mode that works here, so that
    // set_mode only attaches: a switch then takes milliseconds, not the
    // verifier's hundreds. Slow (one verifier run per mode): call it when
    // idle, at start and after each switch. Returns how many were loaded.
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
    // Delivers every complete event ready in the ring buffer to the sink.
    std::size_t drain();

    BpfMaps& maps() { return *maps_; }

private:
    Engine() = default;
    // Replaces the attachment by `next` without losing a call, and keeps the
    // new set of objects before the old links go.
    void replace_attachment(std::unique_ptr<ModeAttachment>& current, std::unique_ptr<ModeAttachment> next);
    // What the keeper holds while `attachment` is the attached one: the maps
    // and its links.
    NamedObjects kept_objects(const ModeAttachment& attachment) const;
    static int on_ring_record(void* ctx, void* data, std::size_t size);

    std::unique_ptr<BpfMaps> maps_;
    ObjectKeeper* keeper_ = nullptr;
    std::unique_ptr<ModeAttachment> attached_;
    std::array<std::unique_ptr<ModeAttachment>, 3> standby_;  // by Mode; loaded, not attached
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
};

// CLOCK_REALTIME - CLOCK_MONOTONIC now, in ns.
std::int64_t realtime_offset_ns();

}  // namespace unlinkd
