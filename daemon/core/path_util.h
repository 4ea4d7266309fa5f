// Path handling shared with the kernel side: the same normalisation the BPF
// programs apply (bpf/unlinkd.bpf.c, build_path) and the same hash the path
// and unit filters are keyed by. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace unlinkd {

// FNV-1a 64, as computed byte by byte in the kernel.
std::uint64_t fnv1a64(std::string_view bytes);

// Joins `name` to the absolute directory `dir` (ignored when `name` is
// absolute) and normalises lexically: "." and empty components vanish, ".."
// drops the previous component and stops at "/". Symlinks are not followed:
// the result is absolute, not canonical. Returns nothing when `dir` is not
// absolute.
std::optional<std::string> join_normalised(std::string_view dir, std::string_view name);

// True when `path` is `prefix` or below it, component by component:
// /home/u covers /home/u and /home/u/a.txt, not /home/user.
bool path_is_under(std::string_view path, std::string_view prefix);

}  // namespace unlinkd
