// Storm generator: N deletions over T threads on a directory (use tmpfs),
// timing only the deletion phase. Prints one JSON object:
//   {"op":"unlink","deletes":N,"threads":T,"wall_s":..,"ns_per_unlink":..,"pid":P,...}
// ns_per_unlink is wall time x threads / deletes: the cost of one call as a
// thread sees it. pid lets a caller look the storm up in a tracer's
// per-process counts.
//
//   storm DIR [--count N] [--threads T] [--op unlink|unlinkat|fail] [--ready-file PATH]
//
// Ops: unlink(2) of absolute paths; unlinkat(2) of names relative to a
// directory fd; fail: unlinkat(2) of names that do not exist (ENOENT), which
// still enter and return from do_unlinkat.
// --ready-file: created (an open, not an unlink) when the files exist and the
// timed phase starts, so a driver can act during the storm (mode switches).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: storm DIR [--count N] [--threads T] [--op unlink|unlinkat|fail] [--ready-file PATH]\n");
        return 2;
    }
    std::string dir = argv[1], op = "unlink", ready_file;
    unsigned count = 100000, threads = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--count")
            count = static_cast<unsigned>(std::stoul(v));
        else if (k == "--threads")
            threads = static_cast<unsigned>(std::stoul(v));
        else if (k == "--op")
            op = v;
        else if (k == "--ready-file")
            ready_file = v;
        else {
            std::fprintf(stderr, "storm: unknown option %s\n", k.c_str());
            return 2;
        }
    }
    if (op != "unlink" && op != "unlinkat" && op != "fail") {
        std::fprintf(stderr, "storm: --op is unlink, unlinkat or fail\n");
        return 2;
    }
    // Set up: one directory and its files per thread (not timed).
    std::vector<std::vector<std::string>> names(threads);
    std::vector<int> dirfds(threads);
    for (unsigned t = 0; t < threads; ++t) {
        std::string sub = dir + "/storm-" + std::to_string(getpid()) + "-" + std::to_string(t);
        if (mkdir(sub.c_str(), 0755) && errno != EEXIST) {
            std::perror("mkdir");
            return 1;
        }
        dirfds[t] = open(sub.c_str(), O_RDONLY | O_DIRECTORY);
        unsigned n = count / threads + (t < count % threads ? 1 : 0);
        for (unsigned i = 0; i < n; ++i) {
            std::string name = std::to_string(i);
            if (op != "fail") {
                int fd = openat(dirfds[t], name.c_str(), O_CREAT | O_WRONLY, 0644);
                if (fd < 0) {
                    std::perror("create");
                    return 1;
                }
                close(fd);
            }
            names[t].push_back(op == "unlinkat" || op == "fail" ? name : sub + "/" + name);
        }
    }
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    std::atomic<unsigned> errors{0};
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t)
        workers.emplace_back([&, t]() {
            ++ready;
            while (!go.load())
                ;
            for (const auto& n : names[t]) {
                int r = op == "unlink" ? unlink(n.c_str()) : unlinkat(dirfds[t], n.c_str(), 0);
                if ((r == 0) == (op == "fail"))
                    ++errors;
            }
        });
    while (ready.load() != threads)
        ;
    if (!ready_file.empty())
        close(open(ready_file.c_str(), O_CREAT | O_WRONLY, 0644));
    auto start = std::chrono::steady_clock::now();
    go = true;
    for (auto& w : workers)
        w.join();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (unsigned t = 0; t < threads; ++t) {
        close(dirfds[t]);
        rmdir((dir + "/storm-" + std::to_string(getpid()) + "-" + std::to_string(t)).c_str());
    }
    std::printf("{\"op\":\"%s\",\"deletes\":%u,\"threads\":%u,\"wall_s\":%.6f,\"ns_per_unlink\":%.1f,"
                "\"unexpected_results\":%u,\"pid\":%d}\n",
                op.c_str(), count, threads, wall, wall * 1e9 * threads / count, errors.load(), static_cast<int>(getpid()));
    return errors.load() ? 1 : 0;
}
