#include <catch2/catch.hpp>

#include "core/path_util.h"
#include "core/unit.h"

using namespace unlinkd;

TEST_CASE("join_normalised joins relative names to the directory", "[path]")
{
    CHECK(join_normalised("/tmp", "a.txt") == "/tmp/a.txt");
    CHECK(join_normalised("/", "a.txt") == "/a.txt");
    CHECK(join_normalised("/home/u", "./x/../y") == "/home/u/y");
    CHECK(join_normalised("/home/u", "../../../etc") == "/etc");
    CHECK(join_normalised("/tmp", "/etc/passwd") == "/etc/passwd");
    CHECK(join_normalised("/anything", "/tmp/../etc/passwd") == "/etc/passwd");
    CHECK(join_normalised("/a", "b//c///d/") == "/a/b/c/d");
    CHECK(join_normalised("/", "..") == "/");
    CHECK(join_normalised("/a/b", ".") == "/a/b");
    CHECK(join_normalised("/a/b", "...") == "/a/b/...");
    CHECK(join_normalised("/a/b", "..x") == "/a/b/..x");
}

TEST_CASE("join_normalised refuses a relative directory", "[path]")
{
    CHECK_FALSE(join_normalised("tmp", "a").has_value());
    CHECK_FALSE(join_normalised("", "a").has_value());
    CHECK(join_normalised("", "/a") == "/a");
}

TEST_CASE("path_is_under compares whole components", "[path]")
{
    CHECK(path_is_under("/home/u", "/home/u"));
    CHECK(path_is_under("/home/u/a.txt", "/home/u"));
    CHECK_FALSE(path_is_under("/home/user/a.txt", "/home/u"));
    CHECK_FALSE(path_is_under("/home", "/home/u"));
    CHECK(path_is_under("/x", "/"));
}

TEST_CASE("fnv1a64 matches the published test vectors", "[path]")
{
    CHECK(fnv1a64("") == 0xcbf29ce484222325ULL);
    CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
    CHECK(fnv1a64("foobar") == 0x85944171f73967e8ULL);
}

TEST_CASE("unit_from_cgroup_path finds the first non-slice unit", "[unit]")
{
    CHECK(unit_from_cgroup_path("/system.slice/cron.service") == "cron.service");
    CHECK(unit_from_cgroup_path("/user.slice/user-1000.slice/user@1000.service/app.slice/x.service") ==
          "user@1000.service");
    CHECK(unit_from_cgroup_path("/user.slice/user-1000.slice/session-3.scope") == "session-3.scope");
    CHECK(unit_from_cgroup_path("/init.scope") == "init.scope");
    CHECK(unit_from_cgroup_path("/") == "");
    CHECK(unit_from_cgroup_path("") == "");
    CHECK(unit_from_cgroup_path("/system.slice") == "");
    CHECK(unit_from_cgroup_path("/docker/abcdef") == "");
    CHECK(unit_from_cgroup_path("/system.slice/unlinkd.service/payload") == "unlinkd.service");
}

TEST_CASE("is_cgroup_unit_name", "[unit]")
{
    CHECK(is_cgroup_unit_name("cron.service"));
    CHECK(is_cgroup_unit_name("user.slice"));
    CHECK(is_cgroup_unit_name("run-u7.scope"));
    CHECK_FALSE(is_cgroup_unit_name("cron"));
    CHECK_FALSE(is_cgroup_unit_name(".service"));
    CHECK_FALSE(is_cgroup_unit_name("a/b.service"));
    CHECK_FALSE(is_cgroup_unit_name("timers.target"));
}
