// Privileged integration tests. They fail, never skip, without root: CI runs
// as root and a skipped privileged test would hide a broken harness.
// Catch2's implementation (std::regex inside) trips GCC 12's
// -Wmaybe-uninitialized under -fsanitize=address,undefined: a false
// positive in library code, silenced for this include only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#pragma GCC diagnostic pop
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "kernel/bpf_engine.h"

int main(int argc, char** argv)
{
    if (geteuid() != 0) {
        std::fprintf(stderr, "unlinkd-integration-tests must run as root (it loads BPF programs)\n");
        return 1;
    }
    // Daemons started by these tests keep their runtime state and crash pins
    // in private places: nothing of the machine's own unlinkd is read or
    // changed, and one test's leftovers cannot feed the next one's counts.
    char state[] = "/tmp/unlinkd-test-state-XXXXXX";
    if (!mkdtemp(state)) {
        std::perror("mkdtemp");
        return 1;
    }
    setenv("STATE_DIRECTORY", state, 1);
    setenv("UNLINKD_PIN_DIR", ("/sys/fs/bpf/unlinkd-test-" + std::to_string(getpid())).c_str(), 1);
    spdlog::set_level(spdlog::level::warn);
    unlinkd::install_libbpf_logger();
    int rc = Catch::Session().run(argc, argv);
    std::error_code ignored;  // a leftover temporary directory is no test failure
    std::filesystem::remove_all(state, ignored);
    return rc;
}
