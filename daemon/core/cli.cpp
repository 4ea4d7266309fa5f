#include "cli.h"

#include <cerrno>

namespace unlinkd {

std::string usage_text()
{
    return "Usage: unlinkd [OPTIONS]\n"
           "Counts file and directory deletions (do_unlinkat, do_rmdir) per process with eBPF.\n"
           "\n"
           "  --foreground          log to the console instead of the journal; one line per deletion\n"
           "  --json                with --foreground: one JSON object per deletion, and a summary\n"
           "                        object on SIGUSR1 and at exit; with --list-modes: JSON\n"
           "  --mode=MODE           auto (default), fentry, kprobe or tracepoint\n"
           "  --filter=RULE         FIELD=VALUE or FIELD!=VALUE, FIELD one of pid, uid, loginuid,\n"
           "                        op (unlink|rmdir), comm, path, unit; repeatable (includes of\n"
           "                        a field OR-ed, fields AND-ed, excludes win)\n"
           "  --config=FILE         configuration file (default /etc/unlinkd/unlinkd.json; JSON,\n"
           "                        comments allowed; a missing default file means defaults)\n"
           "  --bus-address=ADDR    D-Bus address to use instead of the system bus\n"
           "  --list-modes          try every attach mode on this kernel, print which load, and exit\n"
           "  --help                show this help\n"
           "  --version             show the version\n"
           "\n"
           "--mode and --filter override the configuration and the saved runtime state.\n"
           "\n"
           "Signals: SIGTERM/SIGINT exit (detaching everything unless systemd keeps the probes for a\n"
           "restart); SIGHUP reloads the configuration; SIGUSR1 prints a summary (with --json).\n"
           "\n"
           "Environment: STATE_DIRECTORY (default /var/lib/unlinkd) holds filters and mode set over\n"
           "D-Bus; UNLINKD_PIN_DIR (default /sys/fs/bpf/unlinkd) keeps the maps and probes across a\n"
           "crash when not run by systemd; UNLINKD_LOG_LEVEL=debug shows libbpf's messages.\n";
}

static Error usage_error(const std::string& what)
{
    return Error{EINVAL, what + " (see unlinkd --help)"};
}

Result<Options> parse_command_line(const std::vector<std::string>& args)
{
    Options o;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value_of = [&](const std::string& name) -> std::optional<std::string> {
            if (a.rfind(name + "=", 0) == 0)
                return a.substr(name.size() + 1);
            if (a == name && i + 1 < args.size())
                return args[++i];
            return std::nullopt;
        };
        auto is = [&](const std::string& name) { return a == name || a.rfind(name + "=", 0) == 0; };

        if (a == "--foreground") {
            o.foreground = true;
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--list-modes") {
            o.list_modes = true;
        } else if (a == "--help" || a == "-h") {
            o.help = true;
        } else if (a == "--version") {
            o.version = true;
        } else if (is("--mode")) {
            auto v = value_of("--mode");
            if (!v)
                return usage_error("--mode needs a value");
            auto m = parse_requested_mode(*v);
            if (!m)
                return usage_error("unknown mode \"" + *v + "\": use auto, fentry, kprobe or tracepoint");
            o.mode = *m;
        } else if (is("--filter")) {
            auto v = value_of("--filter");
            if (!v)
                return usage_error("--filter needs a rule");
            o.filters.push_back(*v);
        } else if (is("--config")) {
            auto v = value_of("--config");
            if (!v || v->empty())
                return usage_error("--config needs a file name");
            o.config_path = *v;
        } else if (is("--bus-address")) {
            auto v = value_of("--bus-address");
            if (!v || v->empty())
                return usage_error("--bus-address needs an address");
            o.bus_address = *v;
        } else {
            return usage_error("unknown option \"" + a + "\"");
        }
    }
    return o;
}

}  // namespace unlinkd
