#include "dbus_service.h"

#include <grp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-bus.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>
#include <utility>

#include "core/access.h"
#include "core/bus_args.h"
#include "core/escape.h"
#include "core/filter.h"
#include "core/rate_limit.h"
#include "core/recent_events.h"
#include "event_loop.h"
#include "polkit.h"
#include "unlinkd1.h"
#include "unlinkd1_adaptor.h"

namespace unlinkd {

namespace {

using bus::error_invalid_args;
using bus::error_limits_exceeded;
using bus::error_mode_unsupported;
using bus::EventRow;
using bus::interface_name;
using bus::ProcessRow;

constexpr const char* error_failed = "org.freedesktop.DBus.Error.Failed";
constexpr std::uint64_t retry_usec = 2'000'000;
// Each subscription costs a match rule on the daemon's connection (the bus
// allows 512 by default) and a copy of every signal the subscriber may see:
// a uid opening connection after connection must not make the daemon send
// hundreds of copies of each event. A desktop needs one per session.
constexpr std::size_t max_subscriptions_per_uid = 64;
constexpr std::size_t max_subscriptions = 256;

ProcessRow process_row(const ProcessStats& p)
{
    return ProcessRow{p.pid,     p.uid,      p.loginuid,  escape_name(p.comm),
                      p.deletes, p.failures, p.last_usec, escape_name(p.unit)};
}

EventRow event_row(const Event& e)
{
    return EventRow{e.time_usec, e.pid,    e.uid, e.loginuid, escape_name(e.comm), escape_name(e.exe),
                    escape_name(e.display_path()), e.result, escape_name(e.unit), e.op};
}

// Deleted's arguments are the fields of an event row, one by one.
template <typename... Fields>
void append_fields(sdbus::Signal& signal, const sdbus::Struct<Fields...>& row)
{
    std::apply([&](const auto&... field) { ((signal << field), ...); }, static_cast<const std::tuple<Fields...>&>(row));
}

std::vector<std::uint32_t> group_ids(const std::string& name)
{
    if (const group* g = getgrnam(name.c_str()))
        return {g->gr_gid};
    return {};
}

// sdbus-c++ 1.2's createSessionBusConnectionWithAddress() leaks the sd_bus
// it made when the bus cannot be reached: 1.8 KB at every retry for as long
// as no bus runs at --bus-address (found by tests/sanitize/valgrind-test.sh).
// So the address is tried with sd-bus first, which frees what failed;
// sdbus-c++ only connects to a bus that was there a moment ago.
void try_bus_address(const std::string& address)
{
    sd_bus* bus = nullptr;
    int r = sd_bus_new(&bus);
    if (r >= 0)
        r = sd_bus_set_address(bus, address.c_str());
    if (r >= 0)
        r = sd_bus_set_bus_client(bus, 1);
    if (r >= 0)
        r = sd_bus_start(bus);
    sd_bus_flush_close_unref(bus);
    if (r < 0)
        throw std::runtime_error("cannot connect to " + address + ": " + std::strerror(-r));
}

// A reply that may outlive the handler (the method completes later, from the
// loop), and may find the caller or the bus gone by then. `connected` is
// false once the connection the call came on is torn down: the message's
// sdbus-c++ side points into that connection, so it must not be used.
template <typename... Results>
class LaterReply {
public:
    LaterReply(sdbus::Result<Results...>&& result, std::shared_ptr<const bool> connected)
        : result_(std::make_shared<sdbus::Result<Results...>>(std::move(result))), connected_(std::move(connected))
    {
    }
    void ok(const Results&... values) const
    {
        if (!*connected_)
            return;
        try {
            result_->returnResults(values...);
        } catch (const sdbus::Error& e) {
            spdlog::debug("cannot send a reply: {}", e.what());
        }
    }
    void fail(const char* name, const std::string& message) const
    {
        if (!*connected_)
            return;
        try {
            result_->returnError(sdbus::Error(name, message));
        } catch (const sdbus::Error& e) {
            spdlog::debug("cannot send an error reply: {}", e.what());
        }
    }

private:
    std::shared_ptr<sdbus::Result<Results...>> result_;
    std::shared_ptr<const bool> connected_;
};

}  // namespace

// Everything that exists while connected, plus what outlives a connection.
class BusService::State {
public:
    State(sd_event* loop, Control& control, BusOptions options)
        : loop_(loop),
          control_(control),
          options_(std::move(options)),
          policy_(group_ids(options_.reader_group)),
          signals_(options_.max_signals_per_sec),
          recent_(options_.recent_events)
    {
    }

    ~State() { teardown(); }

    void connect();
    void teardown();
    void schedule_retry();
    void on_event(const Event& e);
    void send_summary();
    class Object;
    // Deleted or Summary from `from`, to `destination` (empty: broadcast).
    static void emit(Object& from, const char* member, const std::string& destination,
                     const std::function<void(sdbus::Signal&)>& append);

    struct Subscriber {
        Caller caller;
        sdbus::Slot watch;  // NameOwnerChanged for this name: it left the bus
    };

    sd_event* loop_;
    Control& control_;
    BusOptions options_;
    AccessPolicy policy_;
    RateLimiter signals_;
    RecentEvents recent_;
    std::map<std::pair<std::uint32_t, std::uint64_t>, std::pair<std::uint64_t, std::uint64_t>> last_summary_;

    std::unique_ptr<sdbus::IConnection> connection_;
    // True while connection_ is this one; replies pending past it see false.
    std::shared_ptr<bool> connected_ = std::make_shared<bool>(false);
    std::unique_ptr<Object> object_;
    // The same interface at bus::subscription_path: its signals go to one
    // subscriber each (see unlinkd1.h); its methods behave as the main one's.
    std::unique_ptr<Object> subscription_object_;
    std::unique_ptr<sdbus::IProxy> bus_driver_;
    // Pending authorizations go with it: torn down first, so that no
    // polkit answer reaches the objects or the Manager after teardown.
    std::unique_ptr<Polkit> polkit_;
    std::unique_ptr<SdEventBus> binding_;
    std::map<std::string, Subscriber> subscribers_;
    EventSource retry_timer_;
    EventSource teardown_later_;
    bool said_unavailable_ = false;
    std::uint64_t backlogged_ = 0;  // Deleted signals not sent: the bus was not keeping up
};

// The org.unlinkd.Unlinkd1 object. Every method: validate, authorize,
// change, reply (as systemd's daemons do).
class BusService::State::Object final : public sdbus::AdaptorInterfaces<org::unlinkd::Unlinkd1_adaptor> {
public:
    Object(sdbus::IConnection& connection, State& state, const char* path)
        : AdaptorInterfaces(connection, path), s_(state)
    {
        registerAdaptor();
    }
    ~Object() { unregisterAdaptor(); }

    void properties_changed(const std::vector<std::string>& names)
    {
        getObject().emitPropertiesChangedSignal(interface_name, names);
    }

    sdbus::IObject& object() { return getObject(); }

private:
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

    // Root changes state at once; any other caller once polkit says so
    // (spec section 4). `apply` runs at most once, for the request exactly
    // as it was validated, and answers through `reply`; a refusal is
    // answered here. The check is asynchronous: the loop goes on while
    // polkit (and perhaps a human) decides.
    template <typename Apply, typename... R>
    void authorized(const char* method, StateChange change, sdbus::Result<R...>&& result, Apply apply)
    {
        auto c = caller();  // may throw: before the reply is taken over
        const sdbus::Message* m = getObject().getCurrentlyProcessedMessage();
        std::string who = m->getSender();
        bool interactive = allows_interactive_authorization(*m);
        LaterReply<R...> reply(std::move(result), s_.connected_);
        if (s_.policy_.may_change_state_directly(c)) {
            apply(reply, c);
            return;
        }
        std::string action(polkit_action_id(change));
        s_.polkit_->check(who, action, interactive,
                          [reply, apply = std::move(apply), c, method, who, action](const Authorization& a) {
                              if (!a.allowed) {
                                  spdlog::info("{} from {} (uid {}) refused: {}", method, who, c.uid, a.message);
                                  reply.fail(a.error.c_str(), a.message);
                                  return;
                              }
                              spdlog::info("{} from {} (uid {}) authorized by polkit ({})", method, who, c.uid, action);
                              apply(reply, c);
                          });
    }

    // Argument checks are pure (core/bus_args.h); a failed one is InvalidArgs.
    template <typename T>
    static T require_valid(Result<T> checked)
    {
        if (!checked)
            throw sdbus::Error(error_invalid_args, checked.error().message);
        return std::move(*checked);
    }
    static void require_count(std::uint32_t count) { require_valid(check_count(count)); }

    std::vector<ProcessStats> visible_processes(const Caller& c)
    {
        auto all = s_.control_.processes();
        std::erase_if(all, [&](const ProcessStats& p) { return !s_.policy_.may_see(c, p.uid); });
        return all;
    }

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

    std::vector<sdbus::Struct<std::string, std::uint64_t, std::uint64_t>> GetUnitCounts() override
    {
        std::vector<sdbus::Struct<std::string, std::uint64_t, std::uint64_t>> out;
        for (const auto& u : unit_stats(visible_processes(caller())))
            out.emplace_back(escape_name(u.unit), u.deletes, u.failures);
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

    void SetFilters(sdbus::Result<>&& result, std::vector<std::string> rules) override
    {
        require_valid(check_filter_rules(rules));
        authorized("SetFilters", StateChange::configure, std::move(result),
                   [&s = s_, rules](const LaterReply<>& reply, const Caller& c) {
            if (auto r = s.control_.set_filters(rules); !r) {
                reply.fail(r.error().code == EINVAL ? error_invalid_args : error_failed, r.error().message);
                return;
            }
            spdlog::info("filters set over D-Bus by uid {}: {} rule(s)", c.uid, rules.size());
            reply.ok();
        });
    }

    void SetAttachMode(sdbus::Result<std::string>&& result, std::string mode) override
    {
        auto requested = require_valid(check_attach_mode(mode));
        authorized("SetAttachMode", StateChange::configure, std::move(result),
                   [&s = s_, requested](const LaterReply<std::string>& reply, const Caller&) {
            s.control_.set_mode(requested, [reply](const Result<Mode>& r) {
                if (r)
                    reply.ok(std::string(mode_name(*r)));
                else
                    reply.fail(error_mode_unsupported, r.error().message);
            });
        });
    }

    void Reset(sdbus::Result<>&& result) override
    {
        authorized("Reset", StateChange::reset, std::move(result), [&s = s_](const LaterReply<>& reply, const Caller& c) {
            if (auto r = s.control_.reset(); !r) {
                reply.fail(error_failed, r.error().message);
                return;
            }
            spdlog::info("counts reset over D-Bus by uid {}", c.uid);
            reply.ok();
        });
    }

    std::vector<sdbus::Struct<std::string, bool, std::string>> GetModeInfo() override
    {
        std::vector<sdbus::Struct<std::string, bool, std::string>> out;
        for (const auto& m : s_.control_.modes())
            out.emplace_back(std::string(mode_name(m.mode)), m.supported, m.reason);
        return out;
    }

    void Subscribe() override
    {
        auto who = sender();
        auto c = caller();
        if (s_.subscribers_.count(who))
            return;
        auto same_uid = std::count_if(s_.subscribers_.begin(), s_.subscribers_.end(),
                                      [&](const auto& entry) { return entry.second.caller.uid == c.uid; });
        if (static_cast<std::size_t>(same_uid) >= max_subscriptions_per_uid)
            throw sdbus::Error(error_limits_exceeded,
                               "uid " + std::to_string(c.uid) + " has " + std::to_string(max_subscriptions_per_uid) +
                                   " subscriptions already, the most one uid may have; Unsubscribe() or close one");
        if (s_.subscribers_.size() >= max_subscriptions)
            throw sdbus::Error(error_limits_exceeded, "unlinkd has " + std::to_string(max_subscriptions) +
                                                          " subscriptions already, the most it serves");
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
    std::string AttachMode() override { return std::string(mode_name(s_.control_.attached_mode())); }
    std::string RequestedAttachMode() override { return requested_mode_name(s_.control_.requested_mode()); }
    std::vector<std::string> SupportedAttachModes() override
    {
        std::vector<std::string> out;
        for (const auto& m : s_.control_.modes())
            if (m.supported)
                out.emplace_back(mode_name(m.mode));
        return out;
    }
    std::vector<std::string> Filters() override { return s_.control_.filters(); }
    std::uint64_t TotalDeletes() override { return s_.control_.counters().deletes; }
    std::uint64_t TotalFailures() override { return s_.control_.counters().failures; }
    std::uint64_t LostEvents() override { return s_.control_.counters().lost_events; }
    std::map<std::string, std::uint64_t> DeletesByOp() override
    {
        auto t = s_.control_.counters();
        return {{"unlink", t.unlink_deletes}, {"rmdir", t.rmdir_deletes}};
    }
    std::map<std::string, std::uint64_t> FailuresByOp() override
    {
        auto t = s_.control_.counters();
        return {{"unlink", t.unlink_failures}, {"rmdir", t.rmdir_failures}};
    }
    std::uint64_t EventsUnstreamed() override { return s_.control_.counters().events_unstreamed; }
    std::uint64_t LostExits() override { return s_.control_.counters().lost_exits; }
    std::uint32_t TrackedProcesses() override
    {
        return static_cast<std::uint32_t>(std::min<std::uint64_t>(s_.control_.totals().tracked_processes, UINT32_MAX));
    }
    std::uint64_t EvictedProcesses() override { return s_.control_.totals().evicted_processes; }
    // Refused by the signal limit or because the bus was not keeping up,
    // plus never streamed by the kernel's budget.
    std::uint64_t SuppressedSignals() override
    {
        return s_.signals_.suppressed_total() + s_.backlogged_ + s_.control_.counters().events_unstreamed;
    }

    State& s_;
};

void BusService::State::connect()
{
    try {
        // The connection first (teardown() frees what uses it before it),
        // then objects and proxies, the name last: once the name is ours,
        // callers find everything in place.
        if (options_.address)
            try_bus_address(*options_.address);
        connection_ = options_.address ? sdbus::createSessionBusConnectionWithAddress(*options_.address)
                                       : sdbus::createSystemBusConnection();
        connected_ = std::make_shared<bool>(true);
        bus_driver_ = sdbus::createProxy(*connection_, "org.freedesktop.DBus", "/org/freedesktop/DBus");
        bus_driver_->finishRegistration();
        polkit_ = std::make_unique<Polkit>(*connection_);
        object_ = std::make_unique<Object>(*connection_, *this, bus::object_path);
        subscription_object_ = std::make_unique<Object>(*connection_, *this, bus::subscription_path);
        connection_->requestName(bus::name);
        binding_ = std::make_unique<SdEventBus>(loop_, *connection_, [this](const std::exception& e) {
            spdlog::warn("lost the D-Bus connection ({}); counting goes on, reconnecting", e.what());
            // Not from inside the binding's own callback: tear down later.
            auto later = add_defer(loop_, "d-bus-teardown", [](sd_event_source*, void* self) {
                auto* state = static_cast<State*>(self);
                state->teardown();
                state->schedule_retry();
                return 0;
            }, this);
            if (later)
                teardown_later_ = std::move(*later);
            else
                spdlog::error("{}", later.error().message);
        });
        said_unavailable_ = false;
        spdlog::info("owning {} on {}", bus::name, options_.address ? *options_.address : std::string("the system bus"));
        control_.bus_ready();
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
    *connected_ = false;
    polkit_.reset();
    binding_.reset();
    subscribers_.clear();
    subscription_object_.reset();
    object_.reset();
    bus_driver_.reset();
    connection_.reset();
}

void BusService::State::schedule_retry()
{
    auto timer = add_timer(loop_, "d-bus-retry", retry_usec, [](sd_event_source*, std::uint64_t, void* self) {
        static_cast<State*>(self)->connect();
        return 0;
    }, this);
    if (timer)
        retry_timer_ = std::move(*timer);
    else
        spdlog::error("{}; unlinkd will not claim {} again until it restarts", timer.error().message, bus::name);
}

void BusService::State::emit(Object& from, const char* member, const std::string& destination,
                             const std::function<void(sdbus::Signal&)>& append)
{
    auto& object = from.object();
    auto signal = object.createSignal(interface_name, member);
    append(signal);
    if (!destination.empty())
        signal.setDestination(destination);
    object.emitSignal(signal);
}

void BusService::State::on_event(const Event& e)
{
    recent_.add(e);
    if (!connection_)
        return;
    // The bus daemon is not keeping up (our socket to it is full: sd-bus
    // queued what it could not write). A signal now would queue behind the
    // others, and so would every reply: callers would wait for seconds in a
    // storm. Dropped and counted instead, as the rate limit's are.
    if (connection_->getEventLoopPollData().events & POLLOUT) {
        ++backlogged_;
        return;
    }
    if (!signals_.allow(loop_now(loop_)))
        return;
    auto row = event_row(e);
    auto append = [&](sdbus::Signal& s) { append_fields(s, row); };
    try {
        emit(*object_, "Deleted", {}, append);
        for (const auto& [name, sub] : subscribers_)
            if (policy_.may_see(sub.caller, e.uid))
                emit(*subscription_object_, "Deleted", name, append);
    } catch (const sdbus::Error& err) {
        spdlog::debug("sending Deleted failed: {}", err.what());
    }
}

void BusService::State::send_summary()
{
    auto processes = control_.processes();
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
    auto rows_for = [&](const Caller* c) {
        std::vector<ProcessRow> rows;
        for (const auto& p : changed)
            if (!c || policy_.may_see(*c, p.uid))
                rows.push_back(process_row(p));
        return rows;
    };
    try {
        auto all = rows_for(nullptr);
        emit(*object_, "Summary", {}, [&](sdbus::Signal& s) { s << all; });
        for (const auto& [name, sub] : subscribers_) {
            auto mine = rows_for(&sub.caller);
            if (!mine.empty())
                emit(*subscription_object_, "Summary", name, [&](sdbus::Signal& s) { s << mine; });
        }
    } catch (const sdbus::Error& err) {
        spdlog::debug("sending Summary failed: {}", err.what());
    }
}

BusService::BusService(sd_event* loop, Control& control, BusOptions options)
    : state_(std::make_unique<State>(loop, control, std::move(options)))
{
}

BusService::~BusService() = default;

void BusService::start() { state_->connect(); }

void BusService::send_summary() { state_->send_summary(); }

void BusService::on_event(const Event& event) { state_->on_event(event); }

void BusService::counts_reset() { state_->last_summary_.clear(); }

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
