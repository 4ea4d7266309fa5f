// RAII wrappers around the BPF skeleton; the only code that touches libbpf.
//
// BpfMaps owns one set of maps (counts, filters, config, ring buffer). Each
// attach mode is a separate load of the same object that reuses those maps
// (ModeAttachment), so modes can be tried, attached side by side, and
// swapped without ever losing the counts.
#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/filter.h"
#include "core/modes.h"
#include "core/result.h"
#include "unlinkd.h"

struct unlinkd_bpf;
struct bpf_link;

namespace unlinkd {

struct MapSizes {
    std::uint32_t max_processes = 16384;
    std::uint32_t ring_buffer_bytes = 1u << 20;  // rounded up to a power of two pages
};

// BPF objects by name (see object_keeper.h for the names), fd owned by the
// holder of the map.
using NamedObjects = std::map<std::string, int>;

class BpfMaps {
public:
    // Fresh maps, or the maps a previous run left (`inherited`, "map-<name>"
    // fds; those used are closed and erased from it) so their counts carry on.
    // When the inherited maps are incomplete or do not fit this build, fresh
    // maps are made and `adopted()` says so.
    static Result<std::unique_ptr<BpfMaps>> make(const MapSizes& sizes, NamedObjects* inherited = nullptr);
    ~BpfMaps();
    BpfMaps(const BpfMaps&) = delete;
    BpfMaps& operator=(const BpfMaps&) = delete;

    // The fd of the map called `name` (as in unlinkd.bpf.c), or -1.
    int fd(std::string_view name) const;
    int events_fd() const { return fd("events"); }
    bool adopted() const { return adopted_; }
    // Every map by its kept name ("map-<name>").
    NamedObjects objects() const;

    unlinkd_config read_config() const;
    Status write_config(const unlinkd_config& config);

    // Installs `filter` as generation `generation` (newer than the active
    // one) and makes it the active one with one write. Old generations are
    // removed, every few calls, only after synchronize(). On error the
    // active filter is unchanged.
    Status apply_filter(const CompiledFilter& filter, std::uint32_t generation);

    std::vector<unlinkd_totals> read_totals_per_cpu() const;
    std::vector<std::pair<unlinkd_process_key, unlinkd_process>> read_processes() const;
    std::uint64_t count_processes() const;
    // Returns once every BPF program running now has finished (the kernel
    // waits for an RCU grace period when an array of maps is updated).
    Status synchronize();
    // Calls claimed by `attachment_id` whose exit has not run yet (its slot
    // of the open-claim counters; see next_attachment_id).
    std::size_t open_claims(std::uint32_t attachment_id) const;
    // Clears the per-process map and the totals.
    Status reset_counts();

    // A new attachment's id: above every id used with these maps so far,
    // including a previous run's (see attachment_ids_above), and in another
    // claim slot than the ids in `live` (the attachments that may claim calls
    // while this one does).
    // Every caller names `live`: a default of none let two attachments of one
    // hand-over share a slot (ids taken in different seconds often do), and
    // the old one's drain could then end with a call of its own in flight.
    std::uint32_t next_attachment_id(const std::vector<std::uint32_t>& live);
    void attachment_ids_above(std::uint32_t id);

private:
    explicit BpfMaps(unlinkd_bpf* skel) : skel_(skel) {}
    unlinkd_bpf* skel_;
    bool adopted_ = false;
    std::uint32_t last_attachment_id_ = 0;
    // The oldest filter generation a program may still use (apply_filter).
    std::uint32_t oldest_live_generation_ = 0;
};

class ModeAttachment {
public:
    // Loads the mode's programs against `maps` and attaches them, exit
    // programs before entry programs so no call is entered unseen.
    // A trial attachment (`claims_calls` false) runs its programs but never
    // claims a call, so detaching it cannot lose one.
    // `live`: the ids of the attachments that may claim calls beside it.
    static Result<std::unique_ptr<ModeAttachment>> make(BpfMaps& maps, Mode mode, bool claims_calls,
                                                        const std::vector<std::uint32_t>& live);
    // Loads the programs (the verifier's part, the slow one) without
    // attaching them: a standby that attach() puts in place in milliseconds.
    static Result<std::unique_ptr<ModeAttachment>> load(BpfMaps& maps, Mode mode,
                                                        const std::vector<std::uint32_t>& live);
    // The same with an id taken from maps.next_attachment_id() beforehand:
    // touches `maps` only to read its fds, so it may run on a helper thread
    // while the owner's thread keeps using the maps (the Engine's standbys).
    static Result<std::unique_ptr<ModeAttachment>> load_with_id(const BpfMaps& maps, Mode mode, std::uint32_t id,
                                                                bool claims_calls = true);
    // The attachments a previous run left attached (its "link-..." fds, which
    // are erased from `inherited` and owned from here on), one per id. They
    // keep counting until handed over to an attachment of this run.
    static std::vector<std::unique_ptr<ModeAttachment>> adopt(BpfMaps& maps, NamedObjects& inherited);
    // Detaches entry programs first, then exit programs, so calls already
    // inside do_unlinkat are still counted by this mode's exit or another's.
    ~ModeAttachment();
    ModeAttachment(const ModeAttachment&) = delete;
    ModeAttachment& operator=(const ModeAttachment&) = delete;

    // Exit links first, then entry links. Once only: the kernel (6.1)
    // refuses to attach a detached fentry program again.
    Status attach();
    // Entry links first, then exit links.
    void detach();
    bool attached() const { return !entry_links_.empty() || !exit_links_.empty(); }

    Mode mode() const { return mode_; }
    std::uint32_t id() const { return id_; }
    // Whether both run the same instructions: the kernel's tag (a hash of a
    // program's instructions, not of its maps or ids) of each entry and exit
    // program, from the loaded programs or, adopted, from the links' fdinfo.
    // True for two loads of one build in one mode on one kernel.
    bool same_programs(const ModeAttachment& other) const;
    // The links by their kept names ("link-<mode>-<id>-<e|x><n>").
    NamedObjects objects() const;

private:
    // A link made here (libbpf's) or adopted from a previous run (a bare fd).
    struct Link {
        bpf_link* link = nullptr;
        int fd = -1;
        int get_fd() const;
    };
    ModeAttachment(unlinkd_bpf* skel, Mode mode, std::uint32_t id) : skel_(skel), mode_(mode), id_(id) {}
    // "e:<tag>" per entry program and "x:<tag>" per exit program, sorted;
    // empty when one cannot be read.
    std::vector<std::string> program_tags() const;
    unlinkd_bpf* skel_;  // null when adopted
    Mode mode_;
    std::uint32_t id_;
    std::vector<Link> entry_links_;
    std::vector<Link> exit_links_;
};

// Replaces an attachment by another already attached beside it, losing and
// doubling nothing, in steps that never wait: the owner's loop polls
// drained() from a timer and calls finish(), so deletions keep being drained
// and clients served meanwhile.
//
// The old attachment stops claiming new calls at once (the config names it
// retiring; the attachment beside it claims them). A program that read the
// config just before may still claim one, so the kernel's RCU grace period
// (every BPF program running now has finished; ~8 ms here) is awaited on a
// helper thread. Then the calls the old attachment claimed are let return,
// for at most `timeout`, and only then is it detached. Waiting matters: when
// a trampoline image is replaced, the kernel skips its fexit programs for
// calls still inside (bpf_tramp_image_put), and a kretprobe or syscall-exit
// program of a detached mode never runs.
class HandOver {
public:
    HandOver(BpfMaps& maps, std::unique_ptr<ModeAttachment> old, std::chrono::milliseconds timeout);
    // Finishes at once if finish() was not called (shutdown).
    ~HandOver();
    HandOver(const HandOver&) = delete;
    HandOver& operator=(const HandOver&) = delete;

    // The old attachment's claimed calls have all returned, or the timeout
    // passed: finish() may go.
    bool drained();
    // Detaches the old attachment and ends its retiring. Returns how many of
    // its claimed calls were still running (0 unless the timeout passed).
    std::size_t finish();
    const ModeAttachment& old() const { return *old_; }

private:
    BpfMaps& maps_;
    std::unique_ptr<ModeAttachment> old_;
    std::chrono::milliseconds timeout_;
    std::future<Status> grace_;
    std::chrono::steady_clock::time_point deadline_{};
    std::size_t running_ = 0;
};

// Really loads and attaches `mode`, then detaches it: the kernel decides.
ModeStatus probe_mode(BpfMaps& maps, Mode mode);
// Every mode tried that way, against maps of its own (unlinkd --list-modes).
Result<ModeTable> probe_all_modes();

// Mounts tracefs on /sys/kernel/tracing when it is not mounted (libbpf
// needs it to attach tracepoints). Returns an error saying what to do when it
// cannot.
Status ensure_tracefs();

// Routes libbpf's own messages to the daemon's log (debug level, since
// trying a mode that fails is normal).
void install_libbpf_logger();

}  // namespace unlinkd
