// Privileged integration tests. They fail, never skip, without root: CI runs
// as root and a skipped privileged test would hide a broken harness.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "bpf_engine.h"

int main(int argc, char** argv)
{
    if (geteuid() != 0) {
        std::fprintf(stderr, "unlinkd-integration-tests must run as root (it loads BPF programs)\n");
        return 1;
    }
    spdlog::set_level(spdlog::level::warn);
    unlinkd::install_libbpf_logger();
    return Catch::Session().run(argc, argv);
}
