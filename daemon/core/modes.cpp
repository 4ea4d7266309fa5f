#include "modes.h"

#include <cerrno>
#include <cstring>

namespace unlinkd {

// The kernel's internal ENOTSUPP, which BPF syscalls can leak to user space.
constexpr int ENOTSUPP_LINUX = 524;

std::string_view mode_name(Mode mode)
{
    switch (mode) {
    case Mode::fentry: return "fentry";
    case Mode::kprobe: return "kprobe";
    case Mode::tracepoint: return "tracepoint";
    }
    return "unknown";
}

std::string requested_mode_name(RequestedMode requested)
{
    return requested.automatic ? std::string("auto") : std::string(mode_name(requested.mode));
}

std::optional<Mode> parse_mode(std::string_view name)
{
    for (Mode m : all_modes)
        if (name == mode_name(m))
            return m;
    return std::nullopt;
}

std::optional<RequestedMode> parse_requested_mode(std::string_view name)
{
    if (name == "auto")
        return RequestedMode{};
    if (auto m = parse_mode(name))
        return RequestedMode{false, *m};
    return std::nullopt;
}

std::string_view mode_description(Mode mode)
{
    switch (mode) {
    case Mode::fentry:
        return "fentry/fexit on do_unlinkat and do_rmdir: BPF trampolines, no cost to other system calls; "
               "sees unlink(2), unlinkat(2), rmdir(2) and io_uring unlinks and directory removals";
    case Mode::kprobe:
        return "kprobe/kretprobe on do_unlinkat and do_rmdir: sees unlink(2), unlinkat(2), rmdir(2) and "
               "io_uring unlinks and directory removals";
    case Mode::tracepoint:
        return "syscall tracepoints sys_enter/exit_unlink, _unlinkat and _rmdir: sees unlink(2), "
               "unlinkat(2) and rmdir(2) but not io_uring unlinks or directory removals "
               "(IORING_OP_UNLINKAT makes no system call), and puts every system call on the "
               "kernel's slower tracing path";
    }
    return "";
}

static std::string errno_text(int err)
{
    if (err == ENOTSUPP_LINUX)
        return "ENOTSUPP, operation not supported by this kernel";
    const char* name = strerrorname_np(err);
    return std::string(name ? name : "errno " + std::to_string(err)) + ", " + std::strerror(err);
}

std::string explain_unavailable(Mode mode, ProbeStage stage, int err)
{
    std::string what = std::string(mode_name(mode)) + ": ";
    std::string code = " (" + errno_text(err) + ")";

    if (err == EACCES && stage == ProbeStage::load)
        return what + "the kernel's BPF verifier rejected the program" + code +
               "; this kernel differs from what unlinkd was built for. Run "
               "UNLINKD_LOG_LEVEL=debug unlinkd --list-modes to see the verifier's log";
    if (err == EPERM || err == EACCES) {
        if (mode == Mode::fentry)
            return what + "the kernel refused BPF tracing programs" + code +
                   "; kernel lockdown or a security policy forbids them here. "
                   "Boot without lockdown (lockdown=none) or use another mode";
        if (stage == ProbeStage::attach)
            return what + "the kernel refused to open the perf event this mode attaches through" + code +
                   "; that needs CAP_PERFMON, and CAP_SYS_ADMIN where kernel.perf_event_paranoid is 3 (Debian's "
                   "default, which unlinkd.service does not grant). Run sysctl kernel.perf_event_paranoid=2, or "
                   "use fentry mode";
        return what + "the kernel refused the BPF program" + code +
               "; run unlinkd as root (it needs CAP_BPF and CAP_PERFMON)";
    }
    switch (mode) {
    case Mode::fentry:
        if (stage == ProbeStage::load && (err == ESRCH || err == ENOENT || err == EINVAL))
            return what + "the kernel has no BTF for do_unlinkat or do_rmdir, or no BPF trampolines" + code +
                   "; it needs a kernel built with CONFIG_DEBUG_INFO_BTF (5.5 or later) "
                   "exposing /sys/kernel/btf/vmlinux";
        if (err == ENOTSUP || err == EOPNOTSUPP || err == ENOTSUPP_LINUX)
            return what + "this kernel or architecture has no BPF trampolines" + code;
        break;
    case Mode::kprobe:
        if (stage == ProbeStage::attach && (err == ENOENT || err == EOPNOTSUPP || err == ENOTSUP ||
                                            err == EINVAL || err == ENOTSUPP_LINUX))
            return what + "kprobes are not available" + code +
                   "; the kernel was built without CONFIG_KPROBES (no kprobe PMU and no "
                   "kprobe_events in tracefs), or do_unlinkat or do_rmdir cannot be probed";
        break;
    case Mode::tracepoint:
        if (stage == ProbeStage::attach && (err == ENOENT || err == EINVAL))
            return what + "the syscall tracepoints were not found" + code +
                   "; tracefs must be mounted (mount -t tracefs nodev /sys/kernel/tracing) and "
                   "the kernel built with CONFIG_FTRACE_SYSCALLS";
        break;
    }
    static constexpr const char* stage_names[] = {"opening", "loading", "attaching"};
    return what + stage_names[static_cast<int>(stage)] + " the BPF programs failed" + code;
}

std::vector<Mode> candidate_modes(RequestedMode requested)
{
    if (!requested.automatic)
        return {requested.mode};
    return {all_modes.begin(), all_modes.end()};
}

}  // namespace unlinkd
