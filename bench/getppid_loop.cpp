// The "unrelated syscall tax": how long one getppid(2) takes. Enabling any
// syscall tracepoint (unlinkd's tracepoint mode, bpftrace on syscalls:*,
// auditd's syscall rules) sends every system call of every task through the
// kernel's slow path; fentry and kprobe on do_unlinkat should not. Prints one
// JSON object: {"calls":N,"ns_per_call":..,"best_ns_per_call":..}
//
//   getppid_loop [--calls N] [--batches B]
//
// The calls run in B batches; ns_per_call is the mean over all of them,
// best_ns_per_call the fastest batch (less exposed to preemption by other
// work on a shared machine).
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

int main(int argc, char** argv)
{
    unsigned long calls = 2000000, batches = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i];
        if (k == "--calls")
            calls = std::stoul(argv[i + 1]);
        else if (k == "--batches")
            batches = std::stoul(argv[i + 1]);
        else {
            std::fprintf(stderr, "usage: getppid_loop [--calls N] [--batches B]\n");
            return 2;
        }
    }
    batches = std::max(1UL, std::min(batches, calls));
    const unsigned long per_batch = calls / batches;
    double total_ns = 0, best = 1e300;
    for (unsigned long b = 0; b < batches; ++b) {
        auto t0 = std::chrono::steady_clock::now();
        // syscall() rather than getppid(): no libc may ever cache it.
        for (unsigned long i = 0; i < per_batch; ++i)
            syscall(SYS_getppid);
        double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
        total_ns += ns;
        best = std::min(best, ns / per_batch);
    }
    std::printf("{\"calls\":%lu,\"ns_per_call\":%.1f,\"best_ns_per_call\":%.1f}\n", per_batch * batches,
                total_ns / (per_batch * batches), best);
    return 0;
}
