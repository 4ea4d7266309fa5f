#include "bpf_engine.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "unlinkd.skel.h"

namespace unlinkd {

namespace {

constexpr long tracefs_magic = 0x74726163;
constexpr const char* tracefs_path = "/sys/kernel/tracing";

struct ModePrograms {
    std::vector<bpf_program*> entry;
    std::vector<bpf_program*> exit;
};

ModePrograms programs_of(unlinkd_bpf* s, Mode mode)
{
    switch (mode) {
    case Mode::fentry:
        return {{s->progs.fentry_do_unlinkat, s->progs.fentry_do_rmdir},
                {s->progs.fexit_do_unlinkat, s->progs.fexit_do_rmdir}};
    case Mode::kprobe:
        return {{s->progs.kprobe_do_unlinkat, s->progs.kprobe_do_rmdir},
                {s->progs.kretprobe_do_unlinkat, s->progs.kretprobe_do_rmdir}};
    case Mode::tracepoint:
        return {{s->progs.tp_sys_enter_unlinkat, s->progs.tp_sys_enter_unlink, s->progs.tp_sys_enter_rmdir},
                {s->progs.tp_sys_exit_unlinkat, s->progs.tp_sys_exit_unlink, s->progs.tp_sys_exit_rmdir}};
    }
    return {};
}

std::uint32_t round_up_pow2(std::uint32_t n)
{
    std::uint32_t p = 4096;
    while (p < n && p < (1u << 30))
        p <<= 1;
    return p;
}

}  // namespace

void install_libbpf_logger()
{
    libbpf_set_print([](enum libbpf_print_level level, const char* fmt, va_list ap) -> int {
        if (level == LIBBPF_DEBUG && !spdlog::should_log(spdlog::level::trace))
            return 0;
        // Verifier logs run to many kilobytes: size the buffer to the message.
        va_list copy;
        va_copy(copy, ap);
        int n = vsnprintf(nullptr, 0, fmt, copy);
        va_end(copy);
        if (n <= 0)
            return n;
        std::string text(static_cast<size_t>(n) + 1, '\0');
        vsnprintf(text.data(), text.size(), fmt, ap);
        text.resize(static_cast<size_t>(n));
        std::string_view msg(text);
        while (!msg.empty() && msg.back() == '\n')
            msg.remove_suffix(1);
        spdlog::debug("libbpf: {}", msg);
        return n;
    });
}

Status ensure_tracefs()
{
    struct statfs st {};
    if (statfs(tracefs_path, &st) == 0 && st.f_type == tracefs_magic)
        return ok();
    if (mount("nodev", tracefs_path, "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0) {
        spdlog::info("mounted tracefs on {} (needed to attach tracepoints)", tracefs_path);
        return ok();
    }
    int err = errno;
    return Error{err, std::string("tracefs is not mounted on ") + tracefs_path + " and mounting it failed (" +
                          strerrorname_np(err) + "); run: mount -t tracefs nodev " + tracefs_path};
}

// ---- BpfMaps ----

namespace {

// Opens and loads the object with no programs: that creates the maps, or,
// with `reuse`, takes every map from it. Null with errno's error on failure.
Result<unlinkd_bpf*> load_maps(const MapSizes& sizes, const NamedObjects* reuse)
{
    unlinkd_bpf* skel = unlinkd_bpf__open();
    if (!skel) {
        int err = errno;
        return Error{err, std::string("cannot open the BPF object: ") + std::strerror(err)};
    }
    bpf_program* prog;
    bpf_object__for_each_program(prog, skel->obj) bpf_program__set_autoload(prog, false);
    bpf_map__set_max_entries(skel->maps.processes, sizes.max_processes);
    bpf_map__set_max_entries(skel->maps.events, round_up_pow2(sizes.ring_buffer_bytes));
    if (reuse) {
        bpf_map* map;
        bpf_object__for_each_map(map, skel->obj)
        {
            if (bpf_map__is_internal(map))
                continue;
            auto it = reuse->find(std::string("map-") + bpf_map__name(map));
            // A map of another layout (a build with other keys or values)
            // would be taken as it is, and the programs' loads would fail.
            bpf_map_info info{};
            std::uint32_t len = sizeof(info);
            bool fits = it != reuse->end() && bpf_obj_get_info_by_fd(it->second, &info, &len) == 0 &&
                        info.type == bpf_map__type(map) && info.key_size == bpf_map__key_size(map) &&
                        info.value_size == bpf_map__value_size(map);
            int err = it == reuse->end() ? ENOENT : !fits ? EPROTO : bpf_map__reuse_fd(map, it->second) ? errno : 0;
            if (err) {
                unlinkd_bpf__destroy(skel);
                return Error{err, std::string("the kept map ") + bpf_map__name(map) + " is " +
                                      (err == ENOENT   ? std::string("missing")
                                       : err == EPROTO ? std::string("of another build's layout")
                                                       : std::string("unusable: ") + std::strerror(err))};
            }
        }
    }
    if (int err = unlinkd_bpf__load(skel)) {
        unlinkd_bpf__destroy(skel);
        err = -err;
        std::string hint = err == EPERM ? "; run unlinkd as root (it needs CAP_BPF and CAP_PERFMON)" : "";
        return Error{err, std::string("cannot create the BPF maps (") + strerrorname_np(err) + ", " +
                              std::strerror(err) + ")" + hint};
    }
    return skel;
}

}  // namespace

Result<std::unique_ptr<BpfMaps>> BpfMaps::make(const MapSizes& sizes, NamedObjects* inherited)
{
    bool any_kept = false;
    if (inherited)
        for (const auto& [name, fd] : *inherited)
            any_kept |= name.rfind("map-", 0) == 0;
    std::unique_ptr<BpfMaps> maps;
    if (any_kept) {
        auto skel = load_maps(sizes, inherited);
        if (skel) {
            maps.reset(new BpfMaps(*skel));
            maps->adopted_ = true;
            unlinkd_config kept = maps->read_config();
            // The previous run's programs may have used any of the
            // generations up to its active one: the first new one cleans up.
            maps->oldest_live_generation_ = kept.filter_generation - (UNLINKD_FILTER_GENERATIONS - 1);
            // Same sizes do not mean same meaning: the build that made them
            // wrote its ABI version into the config.
            if (auto v = kept.abi_version; v != UNLINKD_ABI_VERSION) {
                spdlog::warn("cannot adopt the maps of the previous run (they are of ABI version {}, this build's "
                             "is {}); starting from zero",
                             v, UNLINKD_ABI_VERSION);
                maps.reset();
            }
        } else {
            spdlog::warn("cannot adopt the maps of the previous run ({}); starting from zero", skel.error().message);
        }
        // Ours now (libbpf duplicated them) or useless: close them either way.
        for (auto it = inherited->begin(); it != inherited->end();) {
            if (it->first.rfind("map-", 0) != 0) {
                ++it;
                continue;
            }
            close(it->second);
            it = inherited->erase(it);
        }
        if (maps)
            return maps;
    }
    auto skel = load_maps(sizes, nullptr);
    if (!skel)
        return skel.error();
    // Generation 0 in a zeroed config: the empty filter, so fresh maps count
    // everything.
    maps.reset(new BpfMaps(*skel));
    return maps;
}

NamedObjects BpfMaps::objects() const
{
    NamedObjects out;
    bpf_map* map;
    bpf_object__for_each_map(map, skel_->obj)
    {
        if (!bpf_map__is_internal(map))
            out[std::string("map-") + bpf_map__name(map)] = bpf_map__fd(map);
    }
    return out;
}

BpfMaps::~BpfMaps() { unlinkd_bpf__destroy(skel_); }

int BpfMaps::fd(std::string_view name) const
{
    bpf_map* map = bpf_object__find_map_by_name(skel_->obj, std::string(name).c_str());
    return map ? bpf_map__fd(map) : -1;
}

unlinkd_config BpfMaps::read_config() const
{
    unlinkd_config c{};
    std::uint32_t zero = 0;
    bpf_map_lookup_elem(bpf_map__fd(skel_->maps.config), &zero, &c);
    return c;
}

Status BpfMaps::write_config(const unlinkd_config& config)
{
    std::uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.config), &zero, &config, BPF_ANY)) {
        int err = errno;
        return Error{err, std::string("cannot write the BPF config: ") + std::strerror(err)};
    }
    return ok();
}

// Attachment ids tell which attachment claimed a call (HandOver). They must
// differ from the ids of a previous run's attachments still claiming calls:
// they start above those, and above a clock that grows faster than ids are
// used (a previous run's ids that were never kept are below it).
std::uint32_t BpfMaps::next_attachment_id(const std::vector<std::uint32_t>& live)
{
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    attachment_ids_above(static_cast<std::uint32_t>(now.tv_sec * 16));
    // An id in the claim slot of another live attachment would make that
    // one's drain wait for this one's claims too (HandOver): skip it. There
    // are fewer live attachments than slots.
    auto taken = [&](std::uint32_t id) {
        for (auto other : live)
            if (UNLINKD_CLAIM_SLOT(other) == UNLINKD_CLAIM_SLOT(id))
                return true;
        return false;
    };
    do
        ++last_attachment_id_;
    while (taken(last_attachment_id_) || last_attachment_id_ == 0);
    return last_attachment_id_;
}

void BpfMaps::attachment_ids_above(std::uint32_t id) { last_attachment_id_ = std::max(last_attachment_id_, id); }

Status BpfMaps::synchronize()
{
    std::uint32_t zero = 0;
    int inner = bpf_map__fd(skel_->maps.sync_inner);
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.sync_outer), &zero, &inner, BPF_ANY)) {
        int err = errno;
        return Error{err, std::string("cannot wait for running BPF programs: ") + std::strerror(err)};
    }
    return ok();
}

Status BpfMaps::apply_filter(const CompiledFilter& filter, std::uint32_t generation)
{
    int rules = bpf_map__fd(skel_->maps.filter_rules);
    unlinkd_config config = read_config();

    // Room for the new generation: once the live ones (consecutive, oldest
    // to active) would be too many, wait until no program can still be using
    // an old one, then drop the rules of all but the active one (and any a
    // previous run left).
    if (generation - oldest_live_generation_ >= UNLINKD_FILTER_GENERATIONS) {
        if (auto s = synchronize(); !s)
            return s.error();
        std::vector<unlinkd_filter_key> stale;
        unlinkd_filter_key key{}, next{};
        const void* prev = nullptr;
        while (bpf_map_get_next_key(rules, prev, &next) == 0) {
            if (next.generation != config.filter_generation)
                stale.push_back(next);
            key = next;
            prev = &key;
        }
        for (const auto& k : stale)
            bpf_map_delete_elem(rules, &k);
        oldest_live_generation_ = config.filter_generation;
    }

    std::vector<unlinkd_filter_key> written;
    auto remove_written = [&] {
        for (const auto& w : written)
            bpf_map_delete_elem(rules, &w);
    };
    auto undo = [&](int err) {
        remove_written();
        return Error{err, std::string("cannot install the filter in the kernel: ") + std::strerror(err)};
    };
    for (const auto& e : filter.entries) {
        unlinkd_filter_key k{};
        k.generation = generation;
        k.field = e.field;
        std::memcpy(k.value, e.value.data(), sizeof(k.value));
        std::uint32_t action = e.action;
        if (bpf_map_update_elem(rules, &k, &action, BPF_ANY))
            return undo(errno);
        written.push_back(k);
    }
    // Two writes: the programs read the generation, then its slot, so the
    // slot must be in place before the flip makes it the active one.
    config.filter_metas[UNLINKD_FILTER_META_SLOT(generation)] = filter.meta;
    if (auto s = write_config(config); !s) {
        remove_written();
        return s.error();
    }
    config.filter_generation = generation;
    return write_config(config);  // the flip
}

std::vector<unlinkd_totals> BpfMaps::read_totals_per_cpu() const
{
    int ncpus = libbpf_num_possible_cpus();
    std::vector<unlinkd_totals> per_cpu(ncpus > 0 ? static_cast<size_t>(ncpus) : 1);
    std::uint32_t zero = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.totals), &zero, per_cpu.data()))
        spdlog::warn("cannot read the totals map: {}", std::strerror(errno));
    return per_cpu;
}

std::vector<std::pair<unlinkd_process_key, unlinkd_process>> BpfMaps::read_processes() const
{
    int fd = bpf_map__fd(skel_->maps.processes);
    std::vector<std::pair<unlinkd_process_key, unlinkd_process>> out;

    // Batched reads: one system call per chunk instead of two per process.
    constexpr std::uint32_t chunk = 1024;
    std::vector<unlinkd_process_key> keys(chunk);
    std::vector<unlinkd_process> values(chunk);
    unlinkd_process_key in_batch{}, out_batch{};
    bool first = true;
    for (;;) {
        std::uint32_t count = chunk;
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &in_batch, &out_batch, keys.data(), values.data(),
                                       &count, nullptr);
        int e = err ? errno : 0;
        for (std::uint32_t i = 0; i < count; ++i)
            out.emplace_back(keys[i], values[i]);
        if (err) {
            if (e != ENOENT)
                spdlog::warn("cannot read the process map: {}", std::strerror(e));
            break;
        }
        in_batch = out_batch;
        first = false;
    }
    return out;
}

std::uint64_t BpfMaps::count_processes() const
{
    int fd = bpf_map__fd(skel_->maps.processes);
    unlinkd_process_key key{}, next{};
    const void* prev = nullptr;
    std::uint64_t n = 0;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        ++n;
        key = next;
        prev = &key;
    }
    return n;
}

std::size_t BpfMaps::open_claims(std::uint32_t attachment_id) const
{
    // Opened first, closed second, in the same copy per CPU; once the
    // attachment opens no more claims only `closed` moves, so this is never
    // below the number still open (unlinkd_totals.claims_closed).
    std::size_t slot = UNLINKD_CLAIM_SLOT(attachment_id);
    std::uint64_t opened = 0, closed = 0;
    for (const auto& cpu : read_totals_per_cpu()) {
        opened += cpu.claims_opened[slot];
        closed += cpu.claims_closed[slot];
    }
    return opened > closed ? static_cast<std::size_t>(opened - closed) : 0;
}

Status BpfMaps::reset_counts()
{
    int fd = bpf_map__fd(skel_->maps.processes);
    unlinkd_process_key key{};
    while (bpf_map_get_next_key(fd, nullptr, &key) == 0)
        bpf_map_delete_elem(fd, &key);
    std::vector<unlinkd_totals> zeros(read_totals_per_cpu().size());
    std::uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.totals), &zero, zeros.data(), BPF_ANY)) {
        int err = errno;
        return Error{err, std::string("cannot reset the totals: ") + std::strerror(err)};
    }
    return ok();
}

// ---- ModeAttachment ----

int ModeAttachment::Link::get_fd() const { return link ? bpf_link__fd(link) : fd; }

Result<std::unique_ptr<ModeAttachment>> ModeAttachment::load(BpfMaps& maps, Mode mode,
                                                             const std::vector<std::uint32_t>& live)
{
    return load_with_id(maps, mode, maps.next_attachment_id(live));
}

Result<std::unique_ptr<ModeAttachment>> ModeAttachment::load_with_id(const BpfMaps& maps, Mode mode,
                                                                     std::uint32_t id, bool claims_calls)
{
    unlinkd_bpf* skel = unlinkd_bpf__open();
    if (!skel) {
        int err = errno;
        return Error{err, explain_unavailable(mode, ProbeStage::open, err)};
    }
    std::unique_ptr<ModeAttachment> self(new ModeAttachment(skel, mode, id));
    skel->rodata->attachment_id = self->id_;
    skel->rodata->claims_calls = claims_calls;

    bpf_map* map;
    bpf_object__for_each_map(map, skel->obj)
    {
        if (bpf_map__is_internal(map))
            continue;  // .rodata: this attachment's own id
        int fd = maps.fd(bpf_map__name(map));
        if (fd < 0 || bpf_map__reuse_fd(map, fd)) {
            int err = fd < 0 ? ENOENT : errno;
            return Error{err, explain_unavailable(mode, ProbeStage::open, err)};
        }
    }
    auto mine = programs_of(skel, mode);
    bpf_program* prog;
    bpf_object__for_each_program(prog, skel->obj) bpf_program__set_autoload(prog, false);
    for (auto* p : mine.entry)
        bpf_program__set_autoload(p, true);
    for (auto* p : mine.exit)
        bpf_program__set_autoload(p, true);
    if (int err = unlinkd_bpf__load(skel))
        return Error{-err, explain_unavailable(mode, ProbeStage::load, -err)};
    return self;
}

Status ModeAttachment::attach()
{
    if (attached())
        return ok();
    if (!skel_)
        return Error{EINVAL, "an adopted attachment cannot be attached again"};
    auto mine = programs_of(skel_, mode_);
    auto attach_all = [](const std::vector<bpf_program*>& progs, std::vector<Link>& links) -> int {
        for (auto* p : progs) {
            bpf_link* link = bpf_program__attach(p);
            if (!link)
                return errno;
            links.push_back(Link{link, -1});
        }
        return 0;
    };
    // Exit programs first: no call is entered without an exit to count it.
    int err = attach_all(mine.exit, exit_links_);
    if (!err)
        err = attach_all(mine.entry, entry_links_);
    if (err) {
        detach();
        return Error{err, explain_unavailable(mode_, ProbeStage::attach, err)};
    }
    return ok();
}

void ModeAttachment::detach()
{
    auto release = [](std::vector<Link>& links) {
        for (auto& l : links) {
            if (l.link)
                bpf_link__destroy(l.link);
            else if (l.fd >= 0)
                close(l.fd);
        }
        links.clear();
    };
    release(entry_links_);
    release(exit_links_);
}

Result<std::unique_ptr<ModeAttachment>> ModeAttachment::make(BpfMaps& maps, Mode mode, bool claims_calls,
                                                             const std::vector<std::uint32_t>& live)
{
    auto a = load_with_id(maps, mode, maps.next_attachment_id(live), claims_calls);
    if (!a)
        return a.error();
    if (auto s = (*a)->attach(); !s)
        return s.error();
    return a;
}

std::vector<std::unique_ptr<ModeAttachment>> ModeAttachment::adopt(BpfMaps& maps, NamedObjects& inherited)
{
    std::map<std::uint32_t, std::unique_ptr<ModeAttachment>> by_id;
    for (auto it = inherited.begin(); it != inherited.end();) {
        // link-<mode>-<id>-<e|x><n>
        char mode_text[16] = {}, kind = 0;
        unsigned id = 0, n = 0;
        auto mode = std::sscanf(it->first.c_str(), "link-%15[a-z]-%u-%c%u", mode_text, &id, &kind, &n) == 4
                        ? parse_mode(mode_text)
                        : std::nullopt;
        if (!mode || (kind != 'e' && kind != 'x')) {
            ++it;
            continue;
        }
        auto& a = by_id[id];
        if (!a)
            a.reset(new ModeAttachment(nullptr, *mode, id));
        (kind == 'e' ? a->entry_links_ : a->exit_links_).push_back(Link{nullptr, it->second});
        maps.attachment_ids_above(id);
        it = inherited.erase(it);
    }
    std::vector<std::unique_ptr<ModeAttachment>> out;
    for (auto& [id, a] : by_id)
        out.push_back(std::move(a));
    return out;
}

std::vector<std::string> ModeAttachment::program_tags() const
{
    std::vector<std::string> tags;
    auto hex = [](const unsigned char* bytes, std::size_t n) {
        std::string out;
        for (std::size_t i = 0; i < n; ++i)
            out += fmt::format("{:02x}", bytes[i]);
        return out;
    };
    if (skel_) {
        auto mine = programs_of(skel_, mode_);
        for (auto [kind, progs] : {std::pair{"e:", &mine.entry}, std::pair{"x:", &mine.exit}})
            for (auto* p : *progs) {
                bpf_prog_info info{};
                __u32 len = sizeof(info);
                if (bpf_program__fd(p) < 0 || bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
                    return {};
                tags.push_back(kind + hex(info.tag, sizeof(info.tag)));
            }
    } else {
        // A link's info names its program's id, not its tag, and opening a
        // program by id takes CAP_SYS_ADMIN; the link's fdinfo has the tag.
        for (auto [kind, links] : {std::pair{"e:", &entry_links_}, std::pair{"x:", &exit_links_}})
            for (const auto& l : *links) {
                std::ifstream in("/proc/self/fdinfo/" + std::to_string(l.get_fd()));
                std::string line, tag;
                while (std::getline(in, line))
                    if (line.rfind("prog_tag:", 0) == 0 && line.find_first_not_of(" \t", 9) != std::string::npos)
                        tag = line.substr(line.find_first_not_of(" \t", 9));
                if (tag.size() != 2 * sizeof(bpf_prog_info{}.tag))
                    return {};
                tags.push_back(kind + tag);
            }
    }
    std::sort(tags.begin(), tags.end());
    return tags;
}

bool ModeAttachment::same_programs(const ModeAttachment& other) const
{
    if (mode_ != other.mode_)
        return false;
    auto mine = program_tags();
    return !mine.empty() && mine == other.program_tags();
}

NamedObjects ModeAttachment::objects() const
{
    NamedObjects out;
    std::string prefix = "link-" + std::string(mode_name(mode_)) + "-" + std::to_string(id_) + "-";
    for (std::size_t i = 0; i < entry_links_.size(); ++i)
        out[prefix + "e" + std::to_string(i)] = entry_links_[i].get_fd();
    for (std::size_t i = 0; i < exit_links_.size(); ++i)
        out[prefix + "x" + std::to_string(i)] = exit_links_[i].get_fd();
    return out;
}

ModeAttachment::~ModeAttachment()
{
    detach();
    if (skel_)
        unlinkd_bpf__destroy(skel_);
}

// ---- HandOver ----

HandOver::HandOver(BpfMaps& maps, std::unique_ptr<ModeAttachment> old, std::chrono::milliseconds timeout)
    : maps_(maps), old_(std::move(old)), timeout_(timeout)
{
    unlinkd_config config = maps_.read_config();
    config.retiring_attachment = old_->id();
    if (auto s = maps_.write_config(config); !s)
        spdlog::warn("{}", s.error().message);
    // A program that read the config before the write may still claim a
    // call for the old attachment: wait for those programs (an RCU grace
    // period, milliseconds) on a thread, so the caller's loop goes on.
    grace_ = std::async(std::launch::async, [&maps = maps_] { return maps.synchronize(); });
}

HandOver::~HandOver()
{
    if (old_)
        finish();
}

bool HandOver::drained()
{
    if (grace_.valid()) {
        if (grace_.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
            return false;
        if (auto s = grace_.get(); !s)
            spdlog::warn("{}", s.error().message);
        deadline_ = std::chrono::steady_clock::now() + timeout_;
    }
    running_ = maps_.open_claims(old_->id());
    return running_ == 0 || std::chrono::steady_clock::now() >= deadline_;
}

std::size_t HandOver::finish()
{
    if (grace_.valid())
        grace_.wait();  // only when cut short (shutdown): the thread uses the maps
    if (running_)
        spdlog::warn("{} deletions claimed by the old {} attachment were still running after {} ms; detaching it "
                     "anyway (their results may not be counted)",
                     running_, mode_name(old_->mode()), timeout_.count());
    old_.reset();  // detaches
    unlinkd_config config = maps_.read_config();
    config.retiring_attachment = 0;
    if (auto s = maps_.write_config(config); !s)
        spdlog::warn("{}", s.error().message);
    return running_;
}

ModeStatus probe_mode(BpfMaps& maps, Mode mode)
{
    auto a = ModeAttachment::make(maps, mode, false, {});  // claims nothing: no slot to keep apart
    if (a)
        return ModeStatus{mode, true, 0, {}};
    return ModeStatus{mode, false, a.error().code, a.error().message};
}

Result<ModeTable> probe_all_modes()
{
    auto maps = BpfMaps::make(MapSizes{});
    if (!maps)
        return maps.error();
    if (auto s = ensure_tracefs(); !s)
        spdlog::warn("{}", s.error().message);
    ModeTable table{};
    for (Mode m : all_modes)
        table[static_cast<size_t>(m)] = probe_mode(**maps, m);
    return table;
}

}  // namespace unlinkd
