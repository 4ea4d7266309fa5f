// GetTopProcesses(10) latency with many tracked processes.
//
//   top_latency BUS_ADDRESS DIR [--processes N] [--calls M]
//
// Forks N short-lived processes that each delete one file in DIR (so the
// daemon tracks N processes), waits until TrackedProcesses reaches N, then
// times M calls of GetTopProcesses(10) from one client. Prints one JSON line
// with the median, p99 and max in microseconds.
#include <fcntl.h>
#include <sdbus-c++/sdbus-c++.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "unlinkd1.h"

int main(int argc, char** argv)
{
    if (argc < 3) {
        std::fprintf(stderr, "usage: top_latency BUS_ADDRESS DIR [--processes N] [--calls M]\n");
        return 2;
    }
    std::string address = argv[1], dir = argv[2];
    unsigned processes = 10000, calls = 200;
    for (int i = 3; i + 1 < argc; i += 2) {
        std::string k = argv[i];
        if (k == "--processes")
            processes = static_cast<unsigned>(std::stoul(argv[i + 1]));
        else if (k == "--calls")
            calls = static_cast<unsigned>(std::stoul(argv[i + 1]));
    }
    for (unsigned i = 0; i < processes; ++i) {
        std::string f = dir + "/p" + std::to_string(i);
        close(open(f.c_str(), O_CREAT | O_WRONLY, 0644));
        pid_t pid = fork();
        if (pid == 0)
            _exit(unlink(f.c_str()) ? 1 : 0);
        waitpid(pid, nullptr, 0);
    }
    auto connection = sdbus::createSessionBusConnectionWithAddress(address);
    namespace bus = unlinkd::bus;
    auto proxy = sdbus::createProxy(*connection, bus::name, bus::object_path);
    proxy->finishRegistration();
    std::uint32_t tracked = 0;
    for (int i = 0; i < 100 && tracked < processes; ++i) {
        sdbus::Variant v = proxy->getProperty("TrackedProcesses").onInterface(bus::interface_name);
        tracked = v.get<std::uint32_t>();
        if (tracked < processes)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::vector<double> usec;
    for (unsigned i = 0; i < calls; ++i) {
        std::vector<bus::ProcessRow> rows;
        auto t0 = std::chrono::steady_clock::now();
        proxy->callMethod("GetTopProcesses").onInterface(bus::interface_name).withArguments(std::uint32_t{10}).storeResultsTo(rows);
        usec.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(usec.begin(), usec.end());
    std::printf("{\"tracked_processes\":%u,\"calls\":%u,\"median_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f}\n", tracked,
                calls, usec[usec.size() / 2], usec[usec.size() * 99 / 100], usec.back());
    return tracked >= processes ? 0 : 1;
}
