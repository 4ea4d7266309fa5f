// Attach modes: names, the order `auto` prefers, and the sentences that tell
// a user why a mode is unavailable. Pure: no kernel access here; the BPF
// wrapper (bpf_engine) does the trying and hands back the errno and stage.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unlinkd.h"

namespace unlinkd {

enum class Mode : unsigned char {
    fentry = UNLINKD_MODE_FENTRY,
    kprobe = UNLINKD_MODE_KPROBE,
    tracepoint = UNLINKD_MODE_TRACEPOINT,
};

// `auto` takes the first mode of this list that loads and attaches: fentry has
// no global cost, kprobe is cheap but needs CONFIG_KPROBES, and syscall
// tracepoints put every syscall of every task on the slow path.
inline constexpr std::array<Mode, 3> all_modes{Mode::fentry, Mode::kprobe, Mode::tracepoint};

struct RequestedMode {
    bool automatic = true;
    Mode mode = Mode::fentry;  // meaningful when !automatic
    bool operator==(const RequestedMode&) const = default;
};

std::string_view mode_name(Mode mode);
std::string requested_mode_name(RequestedMode requested);
std::optional<Mode> parse_mode(std::string_view name);
std::optional<RequestedMode> parse_requested_mode(std::string_view name);

// What the mode hooks, and what it cannot see (io_uring for tracepoints).
std::string_view mode_description(Mode mode);

// Where trying a mode failed.
enum class ProbeStage { open, load, attach };

// A sentence a user can act on: what failed, the errno's name, and what to do.
std::string explain_unavailable(Mode mode, ProbeStage stage, int err);

struct ModeStatus {
    Mode mode = Mode::fentry;
    bool supported = false;
    int error = 0;        // positive errno when !supported
    std::string reason;   // empty when supported
};

using ModeTable = std::array<ModeStatus, 3>;  // indexed by Mode

// The modes a request may attach, in the order to try them: `auto` takes
// the first of all_modes that loads, a named mode only itself. The one trial
// order, for the start and for every switch.
std::vector<Mode> candidate_modes(RequestedMode requested);

}  // namespace unlinkd
