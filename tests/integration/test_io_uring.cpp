// io_uring's IORING_OP_UNLINKAT reaches do_unlinkat from an io-wq worker
// without a system call: fentry and kprobe see it, syscall tracepoints
// cannot (the documented blind spot of tracepoint mode).
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <cerrno>

#include "harness.h"

using namespace unlinkd;
using namespace unlinkd::test;

TEST_CASE("io_uring unlinks: counted by fentry and kprobe, invisible to tracepoint", "[io_uring]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            s.create("ring1");
            s.create("ring2");
            auto t = start_engine(mode);
            pid_t pid = run_child({"ulk-uring"}, [&]() {
                io_uring ring;
                if (io_uring_queue_init(4, &ring, 0))
                    return 1;
                for (auto name : {"ring1", "ring2"}) {
                    std::string path = s.path(name);  // read by the kernel at submit
                    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
                    io_uring_prep_unlinkat(sqe, AT_FDCWD, path.c_str(), 0);
                    if (io_uring_submit(&ring) != 1)
                        return 2;
                    io_uring_cqe* cqe = nullptr;
                    if (io_uring_wait_cqe(&ring, &cqe) || cqe->res != 0)
                        return 3;
                    io_uring_cqe_seen(&ring, cqe);
                }
                io_uring_queue_exit(&ring);
                return 0;
            });
            t->drain_until([] { return false; }, std::chrono::milliseconds(300));
            // The files are gone either way: io_uring really deleted them.
            CHECK(access(s.path("ring1").c_str(), F_OK) == -1);
            CHECK(access(s.path("ring2").c_str(), F_OK) == -1);
            auto ev = t->collector.for_pid(pid);
            if (mode == Mode::tracepoint) {
                CHECK(ev.empty());
                CHECK(t->processes_of(pid).empty());
            } else {
                REQUIRE(ev.size() == 2);
                CHECK(ev[0].path == s.path("ring1"));
                CHECK(ev[1].path == s.path("ring2"));
                CHECK(ev[0].result == 0);
                CHECK(t->process(pid).deletes == 2);
            }
        }
    }
}

TEST_CASE("io_uring directory removal (AT_REMOVEDIR): op rmdir in fentry and kprobe, invisible to tracepoint",
          "[io_uring][rmdir]")
{
    for (Mode mode : test_modes()) {
        DYNAMIC_SECTION("mode " << mode_name(mode))
        {
            Scratch s;
            REQUIRE(mkdir(s.path("ringdir").c_str(), 0755) == 0);
            REQUIRE(mkdir(s.path("ringfull").c_str(), 0755) == 0);
            s.create("ringfull/keep");
            s.create("ringfile");
            auto t = start_engine(mode);
            pid_t pid = run_child({"ulk-uring-dir"}, [&]() {
                io_uring ring;
                if (io_uring_queue_init(4, &ring, 0))
                    return 1;
                // io_unlinkat: do_rmdir with AT_REMOVEDIR, do_unlinkat without.
                struct Op {
                    const char* name;
                    int flags;
                    int expect;
                };
                for (Op op : {Op{"ringdir", AT_REMOVEDIR, 0}, Op{"ringfull", AT_REMOVEDIR, -ENOTEMPTY},
                              Op{"ringfile", 0, 0}}) {
                    std::string path = s.path(op.name);
                    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
                    io_uring_prep_unlinkat(sqe, AT_FDCWD, path.c_str(), op.flags);
                    if (io_uring_submit(&ring) != 1)
                        return 2;
                    io_uring_cqe* cqe = nullptr;
                    if (io_uring_wait_cqe(&ring, &cqe) || cqe->res != op.expect)
                        return 3;
                    io_uring_cqe_seen(&ring, cqe);
                }
                io_uring_queue_exit(&ring);
                return 0;
            });
            t->drain_until([] { return false; }, std::chrono::milliseconds(300));
            CHECK(access(s.path("ringdir").c_str(), F_OK) == -1);
            CHECK(access(s.path("ringfull/keep").c_str(), F_OK) == 0);
            auto ev = t->collector.for_pid(pid);
            if (mode == Mode::tracepoint) {
                CHECK(ev.empty());
                CHECK(t->processes_of(pid).empty());
            } else {
                REQUIRE(ev.size() == 3);
                CHECK(ev[0].op == "rmdir");
                CHECK(ev[0].path == s.path("ringdir"));
                CHECK(ev[0].result == 0);
                CHECK(ev[1].op == "rmdir");
                CHECK(ev[1].path == s.path("ringfull"));
                CHECK(ev[1].result == -ENOTEMPTY);
                CHECK(ev[2].op == "unlink");
                CHECK(ev[2].path == s.path("ringfile"));
                CHECK(t->process(pid).deletes == 2);
                CHECK(t->process(pid).failures == 1);
            }
        }
    }
}
