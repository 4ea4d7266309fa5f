#include <catch2/catch.hpp>

#include <cstring>

#include "core/filter.h"
#include "core/path_util.h"

using namespace unlinkd;

static std::vector<FilterRule> parse_ok(const std::vector<std::string>& rules)
{
    auto r = parse_filter_rules(rules);
    INFO((r ? std::string() : r.error().message));
    REQUIRE(r.ok());
    return r.value();
}

static std::string parse_error(const std::vector<std::string>& rules)
{
    auto r = parse_filter_rules(rules);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == EINVAL);
    return r.error().message;
}

TEST_CASE("filter rules parse to canonical text", "[filter]")
{
    auto rules = parse_ok({"pid=0042", "uid!=1000", "comm=rm", "path=/home//u/./x/..", "unit=cron.service"});
    REQUIRE(rules.size() == 5);
    CHECK(rules[0].text() == "pid=42");
    CHECK(rules[1].text() == "uid!=1000");
    CHECK(rules[1].exclude);
    CHECK(rules[2].text() == "comm=rm");
    CHECK(rules[3].text() == "path=/home/u");
    CHECK(rules[4].text() == "unit=cron.service");
}

TEST_CASE("duplicate rules collapse", "[filter]")
{
    CHECK(parse_ok({"uid=1", "uid=1", "uid=01"}).size() == 1);
}

TEST_CASE("a bad rule is named in the error", "[filter]")
{
    CHECK_THAT(parse_error({"uid=1", "colour=red"}), Catch::Contains("\"colour=red\"") && Catch::Contains("unknown field"));
    CHECK_THAT(parse_error({"pid=abc"}), Catch::Contains("\"pid=abc\""));
    CHECK_THAT(parse_error({"pid=0"}), Catch::Contains("greater than 0"));
    CHECK_THAT(parse_error({"uid=-1"}), Catch::Contains("\"uid=-1\""));
    CHECK_THAT(parse_error({"uid=4294967296"}), Catch::Contains("\"uid=4294967296\""));
    CHECK_THAT(parse_error({"comm=abcdefghijklmnop"}), Catch::Contains("15 bytes"));
    CHECK_THAT(parse_error({"comm="}), Catch::Contains("\"comm=\""));
    CHECK_THAT(parse_error({"path=tmp"}), Catch::Contains("absolute"));
    CHECK_THAT(parse_error({"unit=cron"}), Catch::Contains("\"unit=cron\""));
    CHECK_THAT(parse_error({"nonsense"}), Catch::Contains("FIELD=VALUE"));
    CHECK_THAT(parse_error({"=1"}), Catch::Contains("\"=1\""));
    CHECK_THAT(parse_error({std::string("comm=a\0b", 8)}), Catch::Contains("NUL"));
    CHECK_THAT(parse_error({"path=/" + std::string(5000, 'a')}), Catch::Contains("4095"));
}

TEST_CASE("too many rules are refused", "[filter]")
{
    std::vector<std::string> many;
    for (int i = 1; i <= UNLINKD_MAX_FILTER_RULES + 1; ++i)
        many.push_back("pid=" + std::to_string(i));
    CHECK_THAT(parse_error(many), Catch::Contains("too many"));
}

TEST_CASE("compile_filter fills meta bits and one entry per value", "[filter]")
{
    auto c = compile_filter(parse_ok({"uid=1000", "uid=0", "comm!=rm", "path=/tmp", "path!=/tmp"}));
    CHECK(c.meta.include_fields == ((1u << UNLINKD_FILTER_UID) | (1u << UNLINKD_FILTER_PATH)));
    CHECK(c.meta.exclude_fields == ((1u << UNLINKD_FILTER_COMM) | (1u << UNLINKD_FILTER_PATH)));
    REQUIRE(c.entries.size() == 4);  // path include and exclude share a key
    bool saw_path = false, saw_uid1000 = false;
    for (const auto& e : c.entries) {
        if (e.field == UNLINKD_FILTER_PATH) {
            saw_path = true;
            CHECK(e.action == (UNLINKD_FILTER_INCLUDE | UNLINKD_FILTER_EXCLUDE));
            unlinkd_name_hash h;
            std::memcpy(&h, e.value.data(), sizeof(h));
            CHECK(h.fnv1a == fnv1a64("/tmp"));
            CHECK(h.len == 4);
        }
        if (e.field == UNLINKD_FILTER_UID) {
            std::uint32_t uid;
            std::memcpy(&uid, e.value.data(), 4);
            saw_uid1000 |= uid == 1000;
            CHECK(e.action == UNLINKD_FILTER_INCLUDE);
        }
        if (e.field == UNLINKD_FILTER_COMM) {
            CHECK(std::string(reinterpret_cast<const char*>(e.value.data())) == "rm");
            CHECK(e.action == UNLINKD_FILTER_EXCLUDE);
        }
    }
    CHECK(saw_path);
    CHECK(saw_uid1000);
}

TEST_CASE("an empty filter matches everything", "[filter]")
{
    auto c = compile_filter({});
    CHECK(c.meta.include_fields == 0);
    CHECK(c.meta.exclude_fields == 0);
    CHECK(c.entries.empty());
    CHECK(filter_matches({}, FilterSubject{1, 2, "x", "/", "/a"}));
}

TEST_CASE("filter semantics: includes OR per field, fields AND, excludes win", "[filter]")
{
    FilterSubject rm{100, 1000, "rm", "/system.slice/cron.service", "/home/u/a.txt"};
    CHECK(filter_matches(parse_ok({"uid=1000", "uid=0"}), rm));
    CHECK_FALSE(filter_matches(parse_ok({"uid=0"}), rm));
    CHECK(filter_matches(parse_ok({"uid=1000", "comm=rm"}), rm));
    CHECK_FALSE(filter_matches(parse_ok({"uid=1000", "comm=unlink"}), rm));
    CHECK_FALSE(filter_matches(parse_ok({"uid=1000", "comm!=rm"}), rm));
    CHECK(filter_matches(parse_ok({"path=/home/u"}), rm));
    CHECK_FALSE(filter_matches(parse_ok({"path=/home/us"}), rm));
    CHECK_FALSE(filter_matches(parse_ok({"path=/home", "path!=/home/u"}), rm));
    CHECK(filter_matches(parse_ok({"unit=cron.service"}), rm));
    CHECK(filter_matches(parse_ok({"unit=system.slice"}), rm));
    CHECK_FALSE(filter_matches(parse_ok({"unit=ssh.service"}), rm));
    CHECK_FALSE(filter_matches(parse_ok({"pid=101"}), rm));
    CHECK(filter_matches(parse_ok({"pid=101", "pid=100"}), rm));
    FilterSubject unresolved = rm;
    unresolved.path.clear();
    CHECK_FALSE(filter_matches(parse_ok({"path=/"}), unresolved));
    CHECK(filter_matches(parse_ok({"path!=/"}), unresolved));
}

TEST_CASE("op and loginuid rules: parsing, compiled values, semantics", "[filter]")
{
    auto rules = parse_ok({"op=rmdir", "op!=unlink", "loginuid=01000", "loginuid!=4294967295"});
    REQUIRE(rules.size() == 4);
    CHECK(rules[0].text() == "op=rmdir");
    CHECK(rules[1].text() == "op!=unlink");
    CHECK(rules[2].text() == "loginuid=1000");
    CHECK(rules[3].text() == "loginuid!=4294967295");
    CHECK_THAT(parse_error({"op=mkdir"}), Catch::Contains("\"op=mkdir\"") && Catch::Contains("unlink"));
    CHECK_THAT(parse_error({"op="}), Catch::Contains("\"op=\""));
    CHECK_THAT(parse_error({"loginuid=me"}), Catch::Contains("\"loginuid=me\""));
    CHECK_THAT(parse_error({"loginuid=4294967296"}), Catch::Contains("4294967295"));

    // The kernel keys: the enum value of the op, the login uid as __u32.
    auto c = compile_filter(parse_ok({"op=rmdir", "op!=unlink", "loginuid=1000"}));
    CHECK(c.meta.include_fields == ((1u << UNLINKD_FILTER_OP) | (1u << UNLINKD_FILTER_LOGINUID)));
    CHECK(c.meta.exclude_fields == (1u << UNLINKD_FILTER_OP));
    REQUIRE(c.entries.size() == 3);
    int seen = 0;
    for (const auto& e : c.entries) {
        std::uint32_t v;
        std::memcpy(&v, e.value.data(), 4);
        for (std::size_t i = 4; i < e.value.size(); ++i)
            CHECK(e.value[i] == 0);
        if (e.field == UNLINKD_FILTER_OP && e.action == UNLINKD_FILTER_INCLUDE)
            seen += v == UNLINKD_OP_RMDIR;
        if (e.field == UNLINKD_FILTER_OP && e.action == UNLINKD_FILTER_EXCLUDE)
            seen += v == UNLINKD_OP_UNLINK;
        if (e.field == UNLINKD_FILTER_LOGINUID)
            seen += v == 1000 && e.action == UNLINKD_FILTER_INCLUDE;
    }
    CHECK(seen == 3);

    FilterSubject file{100, 0, "rm", "/", "/etc/a", 1000, "unlink"};
    FilterSubject dir{100, 0, "rmdir", "/", "/etc/d", 1000, "rmdir"};
    FilterSubject boot{100, 0, "rmdir", "/", "/etc/d", UNLINKD_ID_UNSET, "rmdir"};
    CHECK(filter_matches(parse_ok({"op=rmdir"}), dir));
    CHECK_FALSE(filter_matches(parse_ok({"op=rmdir"}), file));
    CHECK(filter_matches(parse_ok({"op=rmdir", "op=unlink"}), file));
    CHECK_FALSE(filter_matches(parse_ok({"op!=unlink"}), file));
    CHECK(filter_matches(parse_ok({"loginuid=1000", "op=rmdir"}), dir));
    CHECK_FALSE(filter_matches(parse_ok({"loginuid=1000"}), boot));
    CHECK(filter_matches(parse_ok({"loginuid!=1000"}), boot));
    CHECK_FALSE(filter_matches(parse_ok({"loginuid!=4294967295"}), boot));
    CHECK(filter_matches(parse_ok({"uid=0", "loginuid=1000"}), file));  // root, logged in as 1000
}
