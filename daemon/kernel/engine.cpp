#include "engine.h"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace unlinkd {

std::int64_t realtime_offset_ns()
{
    timespec real{}, mono{};
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    return (static_cast<std::int64_t>(real.tv_sec) - mono.tv_sec) * 1000000000LL + (real.tv_nsec - mono.tv_nsec);
}

// The daemon's pid namespace, so the kernel reports pids as the daemon (and
// its users, in a container) see them. Its depth cannot be learnt from inside
// (NS_GET_PARENT refuses to look above one's own namespace; in a container
// /proc's NSpid lists one level): "nested" is enough, the BPF side finds the
// namespace among each pid's by its inode.
static void fill_pid_namespace(unlinkd_config& config)
{
    constexpr ino_t initial_pid_namespace = 0xEFFFFFFC;  // PROC_PID_INIT_INO
    struct stat st {};
    if (stat("/proc/self/ns/pid", &st) == 0)
        config.pidns_ino = st.st_ino;
    config.pidns_nested = st.st_ino != initial_pid_namespace;
}

// The root of the daemon's cgroup namespace: what its cgroup2 mount shows
// as the root. Its kernfs id is what a file handle of type FILEID_KERNFS
// starts with. 0 (the real root) when there is no cgroup2 mount to ask.
static void fill_cgroup_namespace(unlinkd_config& config)
{
    constexpr int fileid_kernfs = 0xfe;
    config.cgroupns_root_id = 0;
    std::string path = cgroup2_mount_point();
    if (path.empty())
        return;
    // struct file_handle ends in a flexible array: room for it after.
    constexpr unsigned room = 32;
    alignas(file_handle) unsigned char buffer[sizeof(file_handle) + room] = {};
    auto* handle = reinterpret_cast<file_handle*>(buffer);
    handle->handle_bytes = room;
    int mount_id = 0;
    if (name_to_handle_at(AT_FDCWD, path.c_str(), handle, &mount_id, 0) == 0 && handle->handle_type == fileid_kernfs &&
        handle->handle_bytes >= sizeof(std::uint64_t))
        std::memcpy(&config.cgroupns_root_id, buffer + sizeof(file_handle), sizeof(std::uint64_t));
}

Result<std::unique_ptr<Engine>> Engine::make(const EngineOptions& options)
{
    auto rules = parse_filter_rules(options.filters);
    if (!rules)
        return rules.error();

    std::unique_ptr<Engine> e(new Engine());
    e->keeper_ = options.keeper;
    NamedObjects inherited = options.inherited;
    auto maps = BpfMaps::make(options.sizes, &inherited);
    if (!maps)
        return maps.error();
    e->maps_ = std::move(*maps);
    // A previous run's attachments keep counting into its maps until this
    // run's attachment takes over from them (below). Without its maps they
    // are of no use: closing them detaches them.
    std::vector<std::unique_ptr<ModeAttachment>> adopted;
    if (e->maps_->adopted())
        adopted = ModeAttachment::adopt(*e->maps_, inherited);
    for (const auto& [name, fd] : inherited)
        close(fd);

    // Adopted maps keep their filter generation: the rules in force stay in
    // force until the new ones replace them with one flip.
    unlinkd_config config = e->maps_->adopted() ? e->maps_->read_config() : unlinkd_config{};
    e->generation_ = config.filter_generation;
    config.flags = options.stream_events ? UNLINKD_CONFIG_STREAM_EVENTS : 0;
    config.stream_per_sec = options.stream_per_sec;
    config.retiring_attachment = 0;
    config.abi_version = UNLINKD_ABI_VERSION;
    fill_pid_namespace(config);
    fill_cgroup_namespace(config);
    if (config.pidns_nested || config.cgroupns_root_id > 1)
        spdlog::info("running in a container (pid namespace {}, cgroup namespace root {}): pids and units are "
                     "reported as seen inside it",
                     config.pidns_ino, config.cgroupns_root_id);
    if (auto s = e->maps_->write_config(config); !s)
        return s.error();
    if (auto s = e->set_filters(options.filters); !s)
        return s.error();

    if (auto s = ensure_tracefs(); !s)
        spdlog::warn("{}", s.error().message);

    // Attach the first candidate that works, then try the other modes while
    // it stays attached, so calls in flight during a trial are still seen by
    // its exit programs.
    std::array<bool, 3> tried{};
    std::vector<std::uint32_t> adopted_ids;
    for (const auto& old : adopted)
        adopted_ids.push_back(old->id());
    bool kept = false;
    for (Mode m : candidate_modes(options.mode)) {
        auto a = ModeAttachment::load_with_id(*e->maps_, m, e->maps_->next_attachment_id(adopted_ids));
        if (a) {
            // A previous run's attachment of this mode that runs this build's
            // programs goes on as this run's, the newest if two do: a
            // hand-over would only risk counts, most of all fentry to fentry
            // (attaching and detaching replace the trampoline's image, and
            // the kernel skips the fexit of every call still inside it).
            auto same = std::find_if(adopted.rbegin(), adopted.rend(),
                                     [&](const auto& old) { return old->same_programs(**a); });
            if (same != adopted.rend()) {
                *a = std::move(*same);
                adopted.erase(std::next(same).base());
                kept = true;
            } else if (auto s = (*a)->attach(); !s) {
                a = s.error();
            }
        }
        tried[static_cast<size_t>(m)] = true;
        e->modes_[static_cast<size_t>(m)] =
            a ? ModeStatus{m, true, 0, {}} : ModeStatus{m, false, a.error().code, a.error().message};
        if (a) {
            e->attached_ = std::move(*a);
            break;
        }
    }
    for (Mode m : all_modes)
        if (!tried[static_cast<size_t>(m)])
            e->modes_[static_cast<size_t>(m)] = probe_mode(*e->maps_, m);
    e->requested_ = options.mode;
    if (!e->attached_) {
        const auto& why = options.mode.automatic ? std::string("no attach mode works on this kernel")
                                                 : e->modes_[static_cast<size_t>(options.mode.mode)].reason;
        int code = options.mode.automatic ? ENOTSUP : e->modes_[static_cast<size_t>(options.mode.mode)].error;
        std::string all;
        for (const auto& s : e->modes_)
            if (!s.supported)
                all += "\n  " + s.reason;
        return Error{code, "cannot attach: " + why + (options.mode.automatic ? all : std::string())};
    }

    // The previous run's attachments keep counting until this run's has
    // taken over from them: they are drained and detached one by one
    // (advance(), from the owner's loop).
    if (e->maps_->adopted())
        spdlog::info("carrying on with the counts of the previous run ({}{} of its attachments to hand over)",
                     kept ? "its " + std::string(mode_name(e->attached_->mode())) +
                                " attachment kept, the same programs as this build's; "
                          : std::string(),
                     adopted.size());
    e->switch_begin_ = std::chrono::steady_clock::now();
    for (auto& old : adopted)
        e->retire(std::move(old));
    e->keep_objects();

    e->ring_ = ring_buffer__new(e->maps_->events_fd(), &Engine::on_ring_record, e.get(), nullptr);
    if (!e->ring_) {
        int err = errno;
        return Error{err, std::string("cannot open the ring buffer: ") + std::strerror(err)};
    }
    // libbpf parsed the kernel's BTF for every load (megabytes) and freed
    // it: hand the freed heap back to the kernel instead of keeping it.
    malloc_trim(0);
    return e;
}

Engine::~Engine()
{
    loading_.reset();  // waits for a load in flight: it reads the maps
    if (ring_)
        ring_buffer__free(ring_);
}

Result<Mode> Engine::set_mode(RequestedMode requested)
{
    if (switching())
        return Error{EBUSY, "the previous mode switch is still draining"};
    collect_load();
    Error last{ENOTSUP, "no attach mode works on this kernel"};
    for (Mode m : candidate_modes(requested)) {
        if (m == attached_->mode()) {
            requested_ = requested;
            return m;
        }
        auto& status = modes_[static_cast<size_t>(m)];
        // A failed load is this request's answer (and the next request tries
        // again: a load may fail for want of memory).
        if (auto failed = std::exchange(load_error_[static_cast<size_t>(m)], std::nullopt)) {
            status = ModeStatus{m, false, failed->code, failed->message};
            last = *failed;
            continue;
        }
        auto& standby = standby_[static_cast<size_t>(m)];
        if (!standby) {
            if (!loading_)
                start_load(m);
            return Error{EINPROGRESS, "loading the " + std::string(mode_name(m)) + " programs"};
        }
        switch_begin_ = std::chrono::steady_clock::now();
        auto next = std::move(standby);
        if (auto s = next->attach(); !s) {
            status = ModeStatus{m, false, s.error().code, s.error().message};
            last = s.error();
            continue;
        }
        status = ModeStatus{m, true, 0, {}};
        retire(std::exchange(attached_, std::move(next)));
        keep_objects();
        requested_ = requested;
        return m;
    }
    return last;
}

std::vector<std::uint32_t> Engine::live_attachment_ids() const
{
    std::vector<std::uint32_t> live;
    auto add = [&live](const std::unique_ptr<ModeAttachment>& a) {
        if (a)
            live.push_back(a->id());
    };
    add(attached_);
    for (const auto& a : standby_)
        add(a);
    for (const auto& a : retiring_)
        add(a);
    if (hand_over_)
        live.push_back(hand_over_->old().id());
    return live;
}

void Engine::start_load(Mode m)
{
    // The id is taken here, on the owner's thread; the helper thread only
    // reads the maps' fds and runs the verifier.
    std::uint32_t id = maps_->next_attachment_id(live_attachment_ids());
    const BpfMaps* maps = maps_.get();
    loading_ = Load{m, std::async(std::launch::async, [maps, m, id] { return ModeAttachment::load_with_id(*maps, m, id); })};
}

void Engine::collect_load()
{
    if (!loading_ || loading_->result.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
        return;
    Mode m = loading_->mode;
    auto loaded = loading_->result.get();
    loading_.reset();
    if (!loaded) {
        spdlog::debug("cannot load the {} programs: {}", mode_name(m), loaded.error().message);
        load_error_[static_cast<size_t>(m)] = loaded.error();
    } else if (m != attached_->mode()) {
        spdlog::debug("{} mode preloaded for fast switches", mode_name(m));
        standby_[static_cast<size_t>(m)] = std::move(*loaded);
    }
    malloc_trim(0);  // the load's BTF, freed (see Engine::make)
}

std::optional<Mode> Engine::missing_standby() const
{
    for (Mode m : all_modes) {
        auto i = static_cast<size_t>(m);
        if (!standby_[i] && m != attached_->mode() && modes_[i].supported && !load_error_[i])
            return m;
    }
    return std::nullopt;
}

bool Engine::advance()
{
    bool switch_done = continue_switch();
    collect_load();
    // Standbys wait for the switch: loading beside a hand-over would only
    // slow its drain, and the switch changes which modes want one.
    if (switch_done && standbys_wanted_ && !loading_) {
        if (auto m = missing_standby())
            start_load(*m);
        else
            standbys_wanted_ = false;
    }
    return switch_done;
}

std::size_t Engine::prepare_standbys()
{
    if (loading_) {
        loading_->result.wait();
        collect_load();
    }
    std::size_t loaded = 0;
    for (auto m = missing_standby(); m; m = missing_standby()) {
        start_load(*m);
        loading_->result.wait();
        collect_load();
        if (standby_[static_cast<size_t>(*m)])
            ++loaded;
    }
    standbys_wanted_ = false;
    return loaded;
}

// The old attachment is destroyed once drained, not kept as a standby: the
// kernel (6.1) refused to attach a detached fentry program again. A fresh
// standby for its mode is loaded after the switch (rebuild_standbys()).
void Engine::retire(std::unique_ptr<ModeAttachment> old)
{
    retiring_.push_back(std::move(old));
    if (!hand_over_)
        start_next_hand_over();
}

void Engine::start_next_hand_over()
{
    if (retiring_.empty())
        return;
    auto old = std::move(retiring_.front());
    retiring_.pop_front();
    hand_over_ = std::make_unique<HandOver>(*maps_, std::move(old), std::chrono::seconds(1));
}

bool Engine::continue_switch()
{
    while (hand_over_) {
        if (!hand_over_->drained())
            return false;
        auto done = std::move(hand_over_);
        // The kept set loses the old links before they close, so no kept
        // copy keeps them attached past the drain.
        keep_objects();
        Mode old = done->old().mode();
        done->finish();
        spdlog::info("attach mode {} -> {} in {} ms", mode_name(old), mode_name(attached_->mode()),
                     std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                           switch_begin_)
                         .count());
        start_next_hand_over();
    }
    return true;
}

void Engine::keep_objects()
{
    if (!keeper_)
        return;
    auto objects = maps_->objects();
    objects.merge(attached_->objects());
    if (hand_over_)
        objects.merge(hand_over_->old().objects());
    for (const auto& a : retiring_)
        objects.merge(a->objects());
    keeper_->keep(objects);
}

Status Engine::set_filters(const std::vector<std::string>& rules)
{
    auto parsed = parse_filter_rules(rules);
    if (!parsed)
        return parsed.error();
    if (auto s = maps_->apply_filter(compile_filter(*parsed), generation_ + 1); !s)
        return s.error();
    ++generation_;
    filter_ = std::move(*parsed);
    return ok();
}

std::vector<std::string> Engine::filters() const
{
    std::vector<std::string> out;
    for (const auto& r : filter_)
        out.push_back(r.text());
    return out;
}

Totals Engine::counters() const { return sum_totals(maps_->read_totals_per_cpu(), 0); }

Totals Engine::totals() const
{
    return sum_totals(maps_->read_totals_per_cpu(), maps_->count_processes());
}

std::vector<ProcessStats> Engine::processes()
{
    auto offset = realtime_offset_ns();
    std::vector<ProcessStats> out;
    for (const auto& [key, value] : maps_->read_processes()) {
        out.push_back(to_process_stats(key, value, offset));
        out.back().unit = units_.unit_of(value.cgroup_id);
    }
    return out;
}

Status Engine::set_streaming(bool stream_events, std::uint32_t per_sec)
{
    unlinkd_config config = maps_->read_config();
    config.flags = stream_events ? config.flags | UNLINKD_CONFIG_STREAM_EVENTS
                                 : config.flags & ~std::uint32_t{UNLINKD_CONFIG_STREAM_EVENTS};
    config.stream_per_sec = per_sec;
    return maps_->write_config(config);
}

Status Engine::reset() { return maps_->reset_counts(); }

int Engine::events_fd() const { return ring_buffer__epoll_fd(ring_); }

namespace {
// on_ring_record's return when drain()'s budget is spent: stops libbpf's
// consume loop; no errno libbpf itself returns.
constexpr int budget_spent = -ECANCELED;
}  // namespace

int Engine::on_ring_record(void* ctx, void* data, std::size_t size)
{
    auto* self = static_cast<Engine*>(ctx);
    auto event = self->joiner_.on_record(data, size, self->realtime_offset_ns_);
    if (!event)
        return 0;
    self->units_.learn(event->cgroup_id, event->unit);
    ++self->delivered_;
    if (self->sink_)
        self->sink_->on_event(*event);
    // libbpf stops consuming at a negative return (this record is consumed).
    return self->delivered_ >= self->budget_ ? budget_spent : 0;
}

std::size_t Engine::drain(std::size_t budget)
{
    realtime_offset_ns_ = realtime_offset_ns();
    delivered_ = 0;
    budget_ = budget == 0 ? 1 : budget;
    int n = ring_buffer__consume(ring_);
    if (n < 0 && n != budget_spent)
        spdlog::warn("reading the ring buffer failed: {}", std::strerror(-n));
    return delivered_;
}

}  // namespace unlinkd
