#include "dbus_service.h"

#include <grp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <utility>

#include "core/access.h"
#include "core/rate_limit.h"
#include "core/recent_events.h"
#include "sd_event_bus.h"
#include "unlinkd1.h"
#include "unlinkd1_adaptor.h"

namespace unlinkd {

namespace {

using bus::error_access_denied;
using bus::error_invalid_args;
using bus::error_mode_unsupported;
using bus::EventRow;
using bus::interface_name;
using bus::ProcessRow;
using bus::subscription_path;

constexpr std::uint64_t retry_usec = 2'000'000;

ProcessRow process_row(const ProcessStats& p)
{
    return ProcessRow{p.pid, p.uid, p.comm, p.deletes, p.failures, p.last_usec, p.unit};
}

EventRow event_row(const Event& e)
{
    return EventRow{e.time_usec, e.pid, e.uid, e.comm, e.display_path(), e.result, e.unit};
}

std::uint64_t monotonic_usec(sd_event* loop)
{
    std::uint64_t now = 0;
    sd_event_now(loop, CLOCK_MONOTONIC, &now);
    return now;
}

std::vector<std::uint32_t> group_ids(const std::string& name)
{
    if (const group* g = getgrnam(name.c_str()))
        return {g->gr_gid};
    return {};
}

}  // namespace

// Everything that exists while connected, plus what outlives a connection.
class BusService::State {
public:
    State(sd_event* loop, Engine& engine, BusOptions options)
        : loop_(loop),
          engine_(engine),
          options_(std::move(options)),
          policy_(group_ids(options_.reader_group)),
          signals_(options_.max_signals_per_sec),
          recent_(options_.recent_events)
    {
    }

    ~State()
    {
        retry_timer_ = sd_event_source_disable_unref(retry_timer_);
        teardown();
    }

    void connect();
    void teardown();
    void schedule_retry();
    void on_event(const Event& e);
    void send_summary();

    class Object;
    struct Subscriber {
        Caller caller;
        sdbus::Slot watch;  // NameOwnerChanged for this name: it left the bus
    };

    sd_event* loop_;
    Engine& engine_;
    BusOptions options_;
    AccessPolicy policy_;
    RateLimiter signals_;
    RecentEvents recent_;
    std::map<std::pair<std::uint32_t, std::uint64_t>, std::pair<std::uint64_t, std::uint64_t>> last_summary_;

    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<Object> object_;
    std::unique_ptr<sdbus::IObject> subscription_object_;
    std::unique_ptr<sdbus::IProxy> bus_driver_;
    std::unique_ptr<SdEventBus> binding_;
    std::map<std::string, Subscriber> subscribers_;
    sd_event_source* retry_timer_ = nullptr;
    bool said_unavailable_ = false;
};

// The org.unlinkd.Unlinkd1 object. Every method: validate, authorize,
// change, reply (as systemd's daemons do).
class BusService::State::Object final : public sdbus::AdaptorInterfaces<org::unlinkd::Unlinkd1_adaptor> {
public:
    Object(sdbus::IConnection& connection, State& state) : AdaptorInterfaces(connection, bus::object_path), s_(state)
    {
        registerAdaptor();
    }
    ~Object() { unregisterAdaptor(); }

    void properties_changed(const std::vector<std::string>& names)
    {
        getObject().emitPropertiesChangedSignal(interface_name, names);
    }

    // The sender's uid and groups as the bus daemon recorded them when it
    // connected (not from /proc, which races and may be hidden).
    Caller caller()
    {
        const sdbus::Message* m = getObject().getCurrentlyProcessedMessage();
        std::map<std::string, sdbus::Variant> creds;
        s_.bus_driver_->callMethod("GetConnectionCredentials")
            .onInterface("org.freedesktop.DBus")
            .withArguments(m->getSender())
            .storeResultsTo(creds);
        Caller c{UINT32_MAX, {}};
        if (auto it = creds.find("UnixUserID"); it != creds.end())
            c.uid = it->second.get<std::uint32_t>();
        if (auto it = creds.find("UnixGroupIDs"); it != creds.end())
            c.groups = it->second.get<std::vector<std::uint32_t>>();
        return c;
    }

    std::string sender() { return getObject().getCurrentlyProcessedMessage()->getSender(); }

    void require_root(const Caller& c, const char* what)
    {
        if (!s_.policy_.may_change_state(c))
            throw sdbus::Error(error_access_denied, std::string(what) + " changes unlinkd's state and needs root (caller uid " +
                                                        std::to_string(c.uid) + ")");
    }

    static void require_count(std::uint32_t count)
    {
        if (count == 0)
            throw sdbus::Error(error_invalid_args, "count must be 1 or more");
    }

    std::vector<ProcessStats> visible_processes(const Caller& c)
    {
        auto all = s_.engine_.processes();
        std::erase_if(all, [&](const ProcessStats& p) { return !s_.policy_.may_see(c, p.uid); });
        return all;
    }

private:
    std::vector<ProcessRow> GetProcesses() override
    {
        auto c = caller();
        auto list = visible_processes(c);
        std::sort(list.begin(), list.end(), [](const ProcessStats& a, const ProcessStats& b) {
            return std::tie(a.pid, a.start_ns) < std::tie(b.pid, b.start_ns);
        });
        std::vector<ProcessRow> out;
        for (const auto& p : list)
            out.push_back(process_row(p));
        return out;
    }

    std::vector<ProcessRow> GetTopProcesses(const std::uint32_t& count) override
    {
        require_count(count);
        auto c = caller();
        std::vector<ProcessRow> out;
        for (const auto& p : top_processes(visible_processes(c), count))
            out.push_back(process_row(p));
        return out;
    }

    std::vector<EventRow> GetRecentEvents(const std::uint32_t& count) override
    {
        require_count(count);
        auto c = caller();
        std::vector<EventRow> out;
        for (const auto& e : s_.recent_.newest(count, [&](const Event& ev) { return s_.policy_.may_see(c, ev.uid); }))
            out.push_back(event_row(e));
        return out;
    }

    void SetFilters(const std::vector<std::string>& rules) override
    {
        if (auto parsed = parse_filter_rules(rules); !parsed)
            throw sdbus::Error(error_invalid_args, parsed.error().message);
        require_root(caller(), "SetFilters");
        if (auto r = s_.engine_.set_filters(rules); !r)
            throw sdbus::Error(r.error().code == EINVAL ? error_invalid_args : "org.freedesktop.DBus.Error.Failed",
                               r.error().message);
        spdlog::info("filters set over D-Bus: {} rule(s)", rules.size());
        properties_changed({"Filters"});
        if (s_.options_.on_runtime_change)
            s_.options_.on_runtime_change();
    }

    std::string SetAttachMode(const std::string& mode) override
    {
        auto requested = parse_requested_mode(mode);
        if (!requested)
            throw sdbus::Error(error_invalid_args,
                               "unknown attach mode \"" + mode + "\": use auto, fentry, kprobe or tracepoint");
        require_root(caller(), "SetAttachMode");
        auto before_mode = s_.engine_.attached_mode();
        auto before_request = s_.engine_.requested_mode();
        auto r = s_.engine_.set_mode(*requested);
        if (!r)
            throw sdbus::Error(error_mode_unsupported, r.error().message);
        std::vector<std::string> changed;
        if (s_.engine_.attached_mode() != before_mode)
            changed.push_back("AttachMode");
        if (!(s_.engine_.requested_mode() == before_request))
            changed.push_back("RequestedAttachMode");
        if (!changed.empty())
            properties_changed(changed);
        if (s_.options_.on_runtime_change)
            s_.options_.on_runtime_change();
        return std::string(mode_name(*r));
    }

    void Reset() override
    {
        require_root(caller(), "Reset");
        if (auto r = s_.engine_.reset(); !r)
            throw sdbus::Error("org.freedesktop.DBus.Error.Failed", r.error().message);
        s_.last_summary_.clear();
        spdlog::info("counts reset over D-Bus");
    }

    std::vector<sdbus::Struct<std::string, bool, std::string>> GetModeInfo() override
    {
        std::vector<sdbus::Struct<std::string, bool, std::string>> out;
        for (const auto& m : s_.engine_.modes())
            out.emplace_back(std::string(mode_name(m.mode)), m.supported, m.reason);
        return out;
    }

    void Subscribe() override
    {
        auto who = sender();
        auto c = caller();
        if (s_.subscribers_.count(who))
            return;
        std::string rule =
            "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
            "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" + who + "'";
        State& s = s_;
        auto watch = getObject().getConnection().addMatch(rule, [&s, who](sdbus::Message& msg) {
            std::string name, old_owner, new_owner;
            msg >> name >> old_owner >> new_owner;
            if (new_owner.empty()) {
                std::string gone = name;  // erasing destroys this handler
                s.subscribers_.erase(gone);
            }
        });
        bool still_there = false;  // it may have left before the match existed
        s_.bus_driver_->callMethod("NameHasOwner").onInterface("org.freedesktop.DBus").withArguments(who).storeResultsTo(still_there);
        if (still_there)
            s_.subscribers_.emplace(who, Subscriber{std::move(c), std::move(watch)});
    }

    void Unsubscribe() override { s_.subscribers_.erase(sender()); }

    std::string Version() override { return UNLINKD_VERSION; }
    std::string AttachMode() override { return std::string(mode_name(s_.engine_.attached_mode())); }
    std::string RequestedAttachMode() override { return requested_mode_name(s_.engine_.requested_mode()); }
    std::vector<std::string> SupportedAttachModes() override
    {
        std::vector<std::string> out;
        for (const auto& m : s_.engine_.modes())
            if (m.supported)
                out.emplace_back(mode_name(m.mode));
        return out;
    }
    std::vector<std::string> Filters() override { return s_.engine_.filters(); }
    std::uint64_t TotalDeletes() override { return s_.engine_.counters().deletes; }
    std::uint64_t TotalFailures() override { return s_.engine_.counters().failures; }
    std::uint64_t LostEvents() override { return s_.engine_.counters().lost_events; }
    std::uint32_t TrackedProcesses() override
    {
        return static_cast<std::uint32_t>(std::min<std::uint64_t>(s_.engine_.totals().tracked_processes, UINT32_MAX));
    }
    std::uint64_t EvictedProcesses() override { return s_.engine_.totals().evicted_processes; }
    // Refused by the signal limit, plus never streamed by the kernel's budget.
    std::uint64_t SuppressedSignals() override
    {
        return s_.signals_.suppressed_total() + s_.engine_.counters().events_unstreamed;
    }

    State& s_;
};

void BusService::State::connect()
{
    try {
        auto connection = options_.address ? sdbus::createSessionBusConnectionWithAddress(*options_.address)
                                           : sdbus::createSystemBusConnection();
        // Objects and proxies first, the name last: once the name is ours,
        // callers find everything in place.
        bus_driver_ = sdbus::createProxy(*connection, "org.freedesktop.DBus", "/org/freedesktop/DBus");
        bus_driver_->finishRegistration();
        object_ = std::make_unique<Object>(*connection, *this);
        subscription_object_ = sdbus::createObject(*connection, subscription_path);
        subscription_object_->registerSignal("Deleted")
            .onInterface(interface_name)
            .withParameters<std::uint64_t, std::uint32_t, std::uint32_t, std::string, std::string, std::int32_t,
                            std::string>("time_usec", "pid", "uid", "comm", "path", "result", "unit");
        subscription_object_->registerSignal("Summary")
            .onInterface(interface_name)
            .withParameters<std::vector<ProcessRow>>("processes");
        subscription_object_->finishRegistration();
        connection->requestName(bus::name);
        binding_ = std::make_unique<SdEventBus>(loop_, *connection, [this](const std::exception& e) {
            spdlog::warn("lost the D-Bus connection ({}); counting goes on, reconnecting", e.what());
            // Not from inside the binding's own callback: defer the teardown.
            sd_event_add_defer(loop_, nullptr, [](sd_event_source* src, void* self) {
                auto* state = static_cast<State*>(self);
                sd_event_source_set_enabled(src, SD_EVENT_OFF);
                state->teardown();
                state->schedule_retry();
                return 0;
            }, this);
        });
        connection_ = std::move(connection);
        said_unavailable_ = false;
        spdlog::info("owning {} on {}", bus::name, options_.address ? *options_.address : std::string("the system bus"));
        if (options_.on_name_acquired)
            options_.on_name_acquired();
    } catch (const std::exception& e) {
        teardown();
        if (!said_unavailable_) {
            spdlog::warn("D-Bus is not available ({}); counting goes on, and unlinkd will claim {} when the bus "
                         "appears",
                         e.what(), bus::name);
            said_unavailable_ = true;
        }
        schedule_retry();
    }
}

void BusService::State::teardown()
{
    binding_.reset();
    subscribers_.clear();
    subscription_object_.reset();
    object_.reset();
    bus_driver_.reset();
    connection_.reset();
}

void BusService::State::schedule_retry()
{
    retry_timer_ = sd_event_source_disable_unref(retry_timer_);
    sd_event_add_time_relative(loop_, &retry_timer_, CLOCK_MONOTONIC, retry_usec, 0,
                               [](sd_event_source*, std::uint64_t, void* self) {
                                   static_cast<State*>(self)->connect();
                                   return 0;
                               },
                               this);
}

void BusService::State::on_event(const Event& e)
{
    recent_.add(e);
    if (!connection_)
        return;
    if (!signals_.allow(monotonic_usec(loop_)))
        return;
    try {
        object_->emitDeleted(e.time_usec, e.pid, e.uid, e.comm, e.display_path(), e.result, e.unit);
        for (const auto& [name, sub] : subscribers_) {
            if (!policy_.may_see(sub.caller, e.uid))
                continue;
            auto signal = subscription_object_->createSignal(interface_name, "Deleted");
            signal << e.time_usec << e.pid << e.uid << e.comm << e.display_path() << e.result << e.unit;
            signal.setDestination(name);
            subscription_object_->emitSignal(signal);
        }
    } catch (const sdbus::Error& err) {
        spdlog::debug("sending Deleted failed: {}", err.what());
    }
}

void BusService::State::send_summary()
{
    auto processes = engine_.processes();
    std::vector<ProcessStats> changed;
    std::map<std::pair<std::uint32_t, std::uint64_t>, std::pair<std::uint64_t, std::uint64_t>> now;
    for (const auto& p : processes) {
        auto key = std::make_pair(p.kernel_tgid, p.start_ns);
        auto value = std::make_pair(p.deletes, p.failures);
        now[key] = value;
        auto it = last_summary_.find(key);
        if (it == last_summary_.end() || it->second != value)
            changed.push_back(p);
    }
    last_summary_ = std::move(now);
    if (changed.empty() || !connection_)
        return;
    try {
        std::vector<ProcessRow> rows;
        for (const auto& p : changed)
            rows.push_back(process_row(p));
        object_->emitSummary(rows);
        for (const auto& [name, sub] : subscribers_) {
            std::vector<ProcessRow> mine;
            for (const auto& p : changed)
                if (policy_.may_see(sub.caller, p.uid))
                    mine.push_back(process_row(p));
            if (mine.empty())
                continue;
            auto signal = subscription_object_->createSignal(interface_name, "Summary");
            signal << mine;
            signal.setDestination(name);
            subscription_object_->emitSignal(signal);
        }
    } catch (const sdbus::Error& err) {
        spdlog::debug("sending Summary failed: {}", err.what());
    }
}

BusService::BusService(sd_event* loop, Engine& engine, BusOptions options)
    : state_(std::make_unique<State>(loop, engine, std::move(options)))
{
}

BusService::~BusService() = default;

void BusService::start() { state_->connect(); }

void BusService::send_summary() { state_->send_summary(); }

void BusService::on_event(const Event& event) { state_->on_event(event); }

void BusService::reconfigure(const BusOptions& options)
{
    auto& s = *state_;
    s.options_.max_signals_per_sec = options.max_signals_per_sec;
    s.options_.recent_events = options.recent_events;
    s.options_.reader_group = options.reader_group;
    s.signals_.set_rate(options.max_signals_per_sec);
    s.recent_.set_capacity(options.recent_events);
    s.policy_ = AccessPolicy(group_ids(options.reader_group));
}

void BusService::properties_changed(const std::vector<std::string>& names)
{
    if (!state_->object_ || names.empty())
        return;
    try {
        state_->object_->properties_changed(names);
    } catch (const sdbus::Error& e) {
        spdlog::debug("sending PropertiesChanged failed: {}", e.what());
    }
}

}  // namespace unlinkd
